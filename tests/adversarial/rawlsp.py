"""A raw LSP client for the real server process: writes bytes to its stdin, reads its frames.

pytest-lsp frames every message correctly; the adversarial cases need to write anything at all
(broken headers, wrong lengths, half messages) and still watch what the server answers.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# GRADGUARD_SERVER_DIR runs another checkout's server (for a before/after comparison)
SERVER_DIR = Path(os.environ.get("GRADGUARD_SERVER_DIR") or ROOT / "server")


def server_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SERVER_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def frame(obj: Any, *, length: int | None = None, header: str = "Content-Length") -> bytes:
    body = json.dumps(obj).encode()
    size = len(body) if length is None else length
    return f"{header}: {size}\r\n\r\n".encode() + body


class RawServer:
    """`python -m gradguard lsp` with raw access to its stdin; its frames are parsed strictly."""

    def __init__(
        self, cwd: str | None = None, env: dict[str, str] | None = None, command: list[str] | None = None
    ):
        self.stderr_file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            command or [sys.executable, "-m", "gradguard", "lsp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            cwd=cwd,
            env=env or server_env(),
        )
        self.messages: queue.Queue = queue.Queue()
        self.received: list[dict] = []
        self._lock = threading.Lock()
        self._next_id = 1000
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    # -- output -------------------------------------------------------------------------------
    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    self.messages.put(None)
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii", "replace").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                self.messages.put({"__bad_frame__": True})
                continue
            body = stream.read(length)
            try:
                message = json.loads(body)
            except ValueError:
                message = {"__bad_body__": body[:200].decode("utf-8", "replace")}
            with self._lock:
                self.received.append(message)
            self.messages.put(message)

    def mark(self) -> int:
        """How many messages were received so far (for `wait_for(..., since=mark)`)."""
        with self._lock:
            return len(self.received)

    def wait_for(self, predicate, timeout: float = 10.0, since: int = 0) -> dict | None:
        """The first message (received after the first `since` ones, or arriving within timeout)
        matching predicate."""
        deadline = time.monotonic() + timeout
        with self._lock:
            for message in self.received[since:]:
                if predicate(message):
                    return message
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                return None
            if message is None:
                self.messages.put(None)  # keep the end marker for later waits
                return None
            if predicate(message):
                return message

    def response(self, msg_id: Any, timeout: float = 10.0) -> dict | None:
        return self.wait_for(lambda m: m.get("id") == msg_id and "method" not in m, timeout)

    def log_messages(self) -> list[dict]:
        with self._lock:
            return [m["params"] for m in self.received if m.get("method") == "window/logMessage"]

    # -- input --------------------------------------------------------------------------------
    def write(self, data: bytes) -> bool:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def send(self, obj: dict) -> bool:
        return self.write(frame(obj))

    def request(self, method: str, params: Any = None, msg_id: Any = None) -> Any:
        msg_id = self.new_id() if msg_id is None else msg_id
        message = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return msg_id

    def notify(self, method: str, params: Any = None) -> None:
        message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def call(self, method: str, params: Any = None, timeout: float = 10.0) -> dict | None:
        return self.response(self.request(method, params), timeout)

    def initialize(self, root_uri: str | None = None, capabilities: dict | None = None, options=None) -> dict:
        params = {
            "processId": os.getpid(),
            "rootUri": root_uri,
            "capabilities": capabilities or {},
            "initializationOptions": options or {"settings": {"debounceMs": 0}},
        }
        answer = self.call("initialize", params, timeout=60)
        assert answer is not None and "result" in answer, answer
        self.notify("initialized", {})
        return answer

    def responsive(self, timeout: float = 10.0) -> bool:
        """Does the server answer a well-formed request?"""
        answer = self.call(
            "workspace/executeCommand", {"command": "gradguard.explainRule", "arguments": ["GG202"]}, timeout
        )
        return bool(answer and isinstance(answer.get("result"), str))

    def open(self, uri: str, text: str, version: int = 1) -> None:
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": version, "text": text}},
        )

    def close_document(self, uri: str) -> None:
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    # -- the process ----------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode("utf-8", "replace")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def wait_exit(self, timeout: float = 10.0) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        if self.alive():
            try:
                self.call("shutdown", None, timeout=5)
                self.notify("exit")
            except Exception:  # noqa: BLE001, S110 - best effort
                pass
            if self.wait_exit(5) is None:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self.stderr_file.close()

    def __enter__(self) -> RawServer:  # noqa: PYI034 - Python 3.10 has no typing.Self
        return self

    def __exit__(self, *exc) -> None:
        self.close()
