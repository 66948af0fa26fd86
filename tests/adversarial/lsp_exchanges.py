"""Malformed and hostile LSP exchanges against the real server process (`python -m gradguard lsp`).

Run alone it prints the table of inputs tried / handled / failures:

    PYTHONPATH=server python tests/adversarial/lsp_exchanges.py [-k NAME] [--quick]

Every case starts its own server, writes raw bytes to its stdin and checks what comes back. "Handled"
means: the server neither crashed nor went deaf (it still answers a well-formed request), a broken
frame was reported to the client (an error response or a window/logMessage error), and a frame that
is merely unusual (LF-only lines, lowercase or padded header names) was read as intended.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from adversarial.rawlsp import RawServer, frame, server_env
else:
    from .rawlsp import RawServer, frame, server_env

EXPLAIN = {"command": "gradguard.explainRule", "arguments": ["GG202"]}


def _request(msg_id: int) -> dict:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "workspace/executeCommand", "params": EXPLAIN}


def _body(msg_id: int) -> bytes:
    return json.dumps(_request(msg_id)).encode()


@dataclass
class Outcome:
    handled: bool
    detail: str


@dataclass
class Case:
    name: str
    group: str
    what: str
    run: Callable[[RawServer, Path], Outcome]
    initialize: bool = True
    trusted: bool = False
    capabilities: dict | None = None
    env: dict | None = None  # extra environment of the server


CASES: list[Case] = []


def case(group: str, what: str, initialize: bool = True, trusted: bool = False):
    def register(function: Callable[[RawServer, Path], Outcome]) -> Callable[[RawServer, Path], Outcome]:
        CASES.append(Case(function.__name__, group, what, function, initialize, trusted))
        return function

    return register


def _reported(server: RawServer, msg_id: int | None, timeout: float = 5.0, since: int = 0) -> bool:
    """An error response for msg_id (when the broken frame held a request), else an error
    response to id null or an error logged to the client, after the first `since` messages."""

    def match(message: dict) -> bool:
        if msg_id is not None:
            return message.get("id") == msg_id and "error" in message
        if message.get("id") is None and "error" in message and "method" not in message:
            return True
        return message.get("method") == "window/logMessage" and message["params"].get("type") == 1

    return server.wait_for(match, timeout, since) is not None


def _bad_frame(server: RawServer, data: bytes, msg_id: int | None) -> Outcome:
    """A frame that cannot be read: reported (to the request in it, when there is one), and the
    server still answers afterwards."""
    since = server.mark()
    if not server.write(data):
        return Outcome(False, "the server closed its input")
    reported = _reported(server, msg_id, since=since)
    if not server.alive():
        return Outcome(False, f"the server exited ({server.proc.returncode}) {_last_error(server)}")
    if not server.responsive():
        return Outcome(False, "alive but deaf: a well-formed request afterwards got no answer")
    if not reported:
        return Outcome(False, "still answering, but the broken frame was not reported to the client")
    return Outcome(True, "reported; still answering")


def _read_as_intended(server: RawServer, data: bytes, msg_id: int) -> Outcome:
    """An unusual but unambiguous frame: the request in it is answered."""
    if not server.write(data):
        return Outcome(False, "the server closed its input")
    answer = server.response(msg_id, 10)
    if not server.alive():
        return Outcome(False, f"the server exited ({server.proc.returncode}) {_last_error(server)}")
    if answer is None or not isinstance(answer.get("result"), str):
        deaf = "" if server.responsive(5) else "; deaf afterwards"
        return Outcome(False, f"the request was not answered{deaf}")
    if not server.responsive():
        return Outcome(False, "answered, but deaf afterwards")
    return Outcome(True, "answered")


def _last_error(server: RawServer) -> str:
    lines = [line for line in server.stderr().splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


# -- framing ------------------------------------------------------------------------------------------
@case("framing", "Content-Length: 99999999999 (a 100 GB body announced)")
def huge_length(server: RawServer, tmp: Path) -> Outcome:
    return _bad_frame(server, b"Content-Length: 99999999999\r\n\r\n" + _body(1), 1)


@case("framing", "Content-Length: 2**70 (does not fit in 64 bits)")
def overflow_length(server: RawServer, tmp: Path) -> Outcome:
    return _bad_frame(server, f"Content-Length: {2**70}\r\n\r\n".encode() + _body(1), 1)


@case("framing", "Content-Length: abc")
def non_numeric_length(server: RawServer, tmp: Path) -> Outcome:
    return _bad_frame(server, b"Content-Length: abc\r\n\r\n" + _body(1), 1)


@case("framing", "Content-Length: -5")
def negative_length(server: RawServer, tmp: Path) -> Outcome:
    return _bad_frame(server, b"Content-Length: -5\r\n\r\n" + _body(1), 1)


@case("framing", "Content-Length: 0x40 / 1e2 / +64")
def odd_number_length(server: RawServer, tmp: Path) -> Outcome:
    for msg_id, value in ((1, "0x40"), (2, "1e2"), (3, "+64")):
        outcome = _bad_frame(server, f"Content-Length: {value}\r\n\r\n".encode() + _body(msg_id), msg_id)
        if not outcome.handled:
            return Outcome(False, f"{value}: {outcome.detail}")
    return Outcome(True, "each reported; still answering")


@case("framing", "no Content-Length header (only Content-Type)")
def missing_length(server: RawServer, tmp: Path) -> Outcome:
    data = b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n" + _body(1)
    return _bad_frame(server, data, 1)


@case("framing", "a header line without a colon")
def garbage_header(server: RawServer, tmp: Path) -> Outcome:
    return _bad_frame(server, b"this is not a header\r\n\r\n" + _body(1), 1)


@case("framing", "binary garbage before a frame")
def garbage_before(server: RawServer, tmp: Path) -> Outcome:
    if not server.write(bytes(range(256)) * 4):
        return Outcome(False, "the server closed its input")
    return _read_as_intended(server, frame(_request(7)), 7)


@case("framing", "a 1 MB header line")
def long_header(server: RawServer, tmp: Path) -> Outcome:
    return _bad_frame(server, b"X-Junk: " + b"a" * (1 << 20) + b"\r\n\r\n", None)


@case("framing", "10,000 header lines")
def many_headers(server: RawServer, tmp: Path) -> Outcome:
    data = b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"Content-Length: 2\r\n\r\n{}"
    return _bad_frame(server, data, None)


@case("framing", "two different Content-Length headers")
def duplicate_length(server: RawServer, tmp: Path) -> Outcome:
    body = _body(1)
    data = f"Content-Length: {len(body)}\r\nContent-Length: {len(body) + 7}\r\n\r\n".encode() + body
    return _bad_frame(server, data, 1)


@case("framing", "LF-only line endings")
def lf_only(server: RawServer, tmp: Path) -> Outcome:
    body = _body(5)
    return _read_as_intended(server, f"Content-Length: {len(body)}\n\n".encode() + body, 5)


@case("framing", "lowercase header name")
def lowercase_header(server: RawServer, tmp: Path) -> Outcome:
    body = _body(5)
    return _read_as_intended(server, f"content-length: {len(body)}\r\n\r\n".encode() + body, 5)


@case("framing", "extra spaces around the header name and value")
def padded_header(server: RawServer, tmp: Path) -> Outcome:
    body = _body(5)
    return _read_as_intended(server, f"Content-Length :   {len(body)}  \r\n\r\n".encode() + body, 5)


@case("framing", "Content-Type before Content-Length, unknown headers")
def other_headers(server: RawServer, tmp: Path) -> Outcome:
    body = _body(5)
    data = f"Content-Type: application/vscode-jsonrpc\r\nX-Foo: 1\r\nContent-Length: {len(body)}\r\n\r\n"
    return _read_as_intended(server, data.encode() + body, 5)


@case("framing", "a frame written one byte at a time")
def byte_by_byte(server: RawServer, tmp: Path) -> Outcome:
    data = frame(_request(5))
    for index in range(len(data)):
        if not server.write(data[index : index + 1]):
            return Outcome(False, "the server closed its input")
        if index % 16 == 0:
            time.sleep(0.002)
    return _read_as_intended(server, b"", 5)


@case("framing", "a slow client: the body arrives 1.5 s after the header")
def slow_body(server: RawServer, tmp: Path) -> Outcome:
    body = _body(5)
    server.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
    time.sleep(1.5)
    return _read_as_intended(server, body[10:], 5)


@case("framing", "three messages in one write")
def coalesced(server: RawServer, tmp: Path) -> Outcome:
    if not server.write(frame(_request(5)) + frame(_request(6)) + frame(_request(7))):
        return Outcome(False, "the server closed its input")
    answers = [server.response(i, 10) for i in (5, 6, 7)]
    if not all(answers):
        return Outcome(False, f"answered {sum(1 for a in answers if a)} of 3")
    return Outcome(True, "all answered")


@case("framing", "Content-Length 10 bytes too short")
def length_too_short(server: RawServer, tmp: Path) -> Outcome:
    return _bad_frame(server, frame(_request(1), length=len(_body(1)) - 10), 1)


@case("framing", "Content-Length 40 bytes too long, nothing follows")
def length_too_long_alone(server: RawServer, tmp: Path) -> Outcome:
    data = frame(_request(5), length=len(_body(5)) + 40)
    since = server.mark()
    if not server.write(data):
        return Outcome(False, "the server closed its input")
    answer = server.response(5, 10)
    reported = _reported(server, None, 2, since)
    if not server.alive():
        return Outcome(False, f"the server exited ({server.proc.returncode})")
    if not server.responsive():
        return Outcome(False, "alive but deaf")
    if answer is None and not reported:
        return Outcome(False, "the request was neither answered nor reported")
    return Outcome(True, "answered (the length was reported as wrong)" if answer else "reported")


@case("framing", "Content-Length 40 bytes too long, another frame follows")
def length_too_long_then_frame(server: RawServer, tmp: Path) -> Outcome:
    data = frame(_request(5), length=len(_body(5)) + 40) + frame(_request(6))
    if not server.write(data):
        return Outcome(False, "the server closed its input")
    second = server.response(6, 10)
    if not server.alive():
        return Outcome(False, f"the server exited ({server.proc.returncode})")
    if second is None:
        return Outcome(False, "the following frame was swallowed")
    if not server.responsive():
        return Outcome(False, "alive but deaf")
    return Outcome(True, "the following frame was answered")


@case("framing", "a body that is not JSON")
def not_json(server: RawServer, tmp: Path) -> Outcome:
    return _bad_frame(server, b"Content-Length: 11\r\n\r\nhello world", None)


@case("framing", "a body that is not UTF-8")
def not_utf8(server: RawServer, tmp: Path) -> Outcome:
    body = b'{"jsonrpc": "2.0", "id": 3, "method": "\xff\xfe"}'
    return _bad_frame(server, b"Content-Length: %d\r\n\r\n" % len(body) + body, 3)


@case("framing", 'JSON that is not an object: [], 5, "x", null')
def not_an_object(server: RawServer, tmp: Path) -> Outcome:
    for body in (b"[]", b"5", b'"x"', b"null"):
        outcome = _bad_frame(server, b"Content-Length: %d\r\n\r\n" % len(body) + body, None)
        if not outcome.handled:
            return Outcome(False, f"{body!r}: {outcome.detail}")
    return Outcome(True, "each reported; still answering")


@case("framing", 'a request without "jsonrpc": "2.0"')
def no_jsonrpc_member(server: RawServer, tmp: Path) -> Outcome:
    return _bad_frame(server, frame({"id": 4, "method": "workspace/executeCommand", "params": EXPLAIN}), 4)


@case("framing", "Content-Length: 0")
def zero_length(server: RawServer, tmp: Path) -> Outcome:
    return _bad_frame(server, b"Content-Length: 0\r\n\r\n", None)


@case("framing", "a 300 MB body announced and sent (over the size limit)", initialize=True)
def oversized_body_sent(server: RawServer, tmp: Path) -> Outcome:
    size = 300 * 1024 * 1024
    head = b'{"jsonrpc": "2.0", "id": 9, "method": "x", "params": "'
    tail = b'"}'
    data = b"Content-Length: %d\r\n\r\n" % size + head
    baseline = server.rss_mb()
    if not server.write(data):
        return Outcome(False, "the server closed its input")
    chunk = b"a" * (1 << 20)
    left = size - len(head) - len(tail)
    peak = 0.0
    while left > 0:
        if not server.write(chunk[: min(left, len(chunk))]):
            return Outcome(
                False, f"the server closed its input ({server.wait_exit(5)}) {_last_error(server)}"
            )
        left -= len(chunk)
        if left % (32 << 20) < len(chunk):
            peak = max(peak, server.rss_mb())
    since = server.mark()
    server.write(tail)
    reported = _reported(server, 9, since=since) or _reported(server, None, since=0)
    if not server.alive():
        return Outcome(False, f"the server exited ({server.proc.returncode})")
    if not server.responsive():
        return Outcome(False, "alive but deaf")
    grew = peak - baseline
    if grew > 100:
        return Outcome(False, f"held it in memory (RSS +{grew:.0f} MB)")
    return Outcome(reported, f"skipped (RSS +{grew:.0f} MB)" + ("" if reported else ", not reported"))


@case("framing", "stdin closed in the middle of a frame")
def eof_mid_frame(server: RawServer, tmp: Path) -> Outcome:
    server.write(b'Content-Length: 500\r\n\r\n{"jsonrpc"')
    assert server.proc.stdin is not None
    server.proc.stdin.close()
    code = server.wait_exit(10)
    if code is None:
        return Outcome(False, "still running 10 s after its input closed")
    return Outcome(True, f"exited with {code}")


# -- lifecycle ------------------------------------------------------------------------------------------
@case("lifecycle", "a request after shutdown gets an InvalidRequest error")
def request_after_shutdown(server: RawServer, tmp: Path) -> Outcome:
    if server.call("shutdown") is None:
        return Outcome(False, "shutdown was not answered")
    answer = server.call("workspace/executeCommand", EXPLAIN, timeout=5)
    if answer is None:
        return Outcome(False, "never answered")
    if answer.get("error", {}).get("code") != -32600:
        return Outcome(False, f"answered {answer}")
    server.notify("exit")
    code = server.wait_exit(10)
    return Outcome(code == 0, f"InvalidRequest; exit after shutdown: {code}")


@case("lifecycle", "shutdown before initialize, then initialize", initialize=False)
def initialize_after_early_shutdown(server: RawServer, tmp: Path) -> Outcome:
    early = server.call("shutdown", None, timeout=10)
    if early is None:
        return Outcome(False, "the early shutdown was not answered")
    answer = server.call("initialize", {"processId": None, "rootUri": None, "capabilities": {}}, timeout=20)
    if answer is None:
        return Outcome(False, "initialize after the early shutdown was never answered")
    return Outcome(True, f"shutdown: {early.get('error', {}).get('code', 'ok')}; initialize answered")


@case("lifecycle", "exit without shutdown exits with status 1")
def exit_without_shutdown(server: RawServer, tmp: Path) -> Outcome:
    server.notify("exit")
    code = server.wait_exit(10)
    return Outcome(code == 1, f"exit status {code}")


@case("lifecycle", "exit after shutdown exits with status 0")
def exit_after_shutdown(server: RawServer, tmp: Path) -> Outcome:
    server.call("shutdown")
    server.notify("exit")
    code = server.wait_exit(10)
    return Outcome(code == 0, f"exit status {code}")


@case("lifecycle", "two initialize requests")
def double_initialize(server: RawServer, tmp: Path) -> Outcome:
    answer = server.call("initialize", {"processId": None, "rootUri": None, "capabilities": {}}, timeout=10)
    if answer is None:
        return Outcome(False, "the second initialize was not answered")
    return Outcome(server.responsive(), f"answered ({'error' if 'error' in answer else 'result'})")


@case("lifecycle", "gradguard.fixAll while the client never answers workspace/applyEdit, then shutdown")
def fix_all_unanswered(server: RawServer, tmp: Path) -> Outcome:
    uri = (tmp / "fix.py").as_uri()
    text = "import torch\n\nw = torch.zeros(3, require_grad=True)\n"
    server.open(uri, text)
    if server.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics", 20) is None:
        return Outcome(False, "no diagnostics")
    started = time.monotonic()
    fix_id = server.request("workspace/executeCommand", {"command": "gradguard.fixAll", "arguments": [uri]})
    asked = server.wait_for(lambda m: m.get("method") == "workspace/applyEdit", 10)
    if asked is None:
        return Outcome(False, "the server never asked to apply the edit")
    answer = server.response(fix_id, 40)
    waited = time.monotonic() - started
    if answer is None:
        # the old server waits forever: see what shutdown does meanwhile
        shutdown = server.call("shutdown", None, timeout=10)
        errors = [line for line in server.stderr().splitlines() if "changed size" in line]
        return Outcome(
            False,
            f"no answer after {waited:.0f} s; shutdown {'answered' if shutdown else 'not answered'}"
            + ("; 'dictionary changed size during iteration'" if errors else ""),
        )
    shutdown = server.call("shutdown", None, timeout=10)
    if shutdown is None or "error" in shutdown:
        return Outcome(False, f"shutdown after the timeout: {shutdown}")
    if "changed size" in server.stderr():
        return Outcome(False, "dictionary changed size during iteration")
    result = answer.get("result") or {}
    return Outcome(
        result.get("applied") is False, f"answered after {waited:.1f} s: {result.get('reason', answer)}"
    )


@case("lifecycle", "shutdown while a fixAll waits for workspace/applyEdit")
def shutdown_during_fix_all(server: RawServer, tmp: Path) -> Outcome:
    uri = (tmp / "fix.py").as_uri()
    text = "import torch\n\nw = torch.zeros(3, require_grad=True)\n"
    server.open(uri, text)
    server.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics", 20)
    fix_id = server.request("workspace/executeCommand", {"command": "gradguard.fixAll", "arguments": [uri]})
    if server.wait_for(lambda m: m.get("method") == "workspace/applyEdit", 10) is None:
        return Outcome(False, "the server never asked to apply the edit")
    shutdown = server.call("shutdown", None, timeout=10)
    fix = server.response(fix_id, 5)
    bad = "changed size" in server.stderr()
    if shutdown is None or "error" in shutdown or bad:
        return Outcome(False, f"shutdown: {shutdown}" + ("; dictionary changed size" if bad else ""))
    server.notify("exit")
    code = server.wait_exit(10)
    return Outcome(
        code == 0 and fix is not None, f"shutdown answered, fixAll answered: {fix is not None}, exit {code}"
    )


# -- code lens on files that are not open -----------------------------------------------------------------
def _lens_then_shutdown(server: RawServer, uri: str, budget: float) -> Outcome:
    lens_id = server.request("textDocument/codeLens", {"textDocument": {"uri": uri}})
    started = time.monotonic()
    ok = server.responsive(budget)
    waited = time.monotonic() - started
    lens = server.response(lens_id, 10)
    if not ok:
        shutdown = server.call("shutdown", None, timeout=3)
        return Outcome(
            False,
            f"other requests blocked > {budget:.0f} s; shutdown {'answered' if shutdown else 'blocked'}",
        )
    if lens is None:
        return Outcome(False, f"codeLens never answered (others answered in {waited:.2f} s)")
    shutdown = server.call("shutdown", None, timeout=5)
    if shutdown is None:
        return Outcome(False, "shutdown blocked")
    if "error" in lens:
        return Outcome(
            False, f"codeLens error {lens['error'].get('code')}: {lens['error'].get('message', '')[:80]}"
        )
    return Outcome(True, f"others answered in {waited:.2f} s; lens: {len(lens.get('result') or [])} lenses")


@case("codeLens", "codeLens for an unopened FIFO named *.py")
def lens_fifo(server: RawServer, tmp: Path) -> Outcome:
    path = tmp / "pipe.py"
    os.mkfifo(path)
    return _lens_then_shutdown(server, path.as_uri(), 5)


@case("codeLens", "codeLens for /dev/zero")
def lens_dev_zero(server: RawServer, tmp: Path) -> Outcome:
    return _lens_then_shutdown(server, "file:///dev/zero", 5)


@case("codeLens", "codeLens for an unopened 10 MB file")
def lens_big_file(server: RawServer, tmp: Path) -> Outcome:
    path = tmp / "big.py"
    line = "import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def forward(self, x):\n        return x\n"
    path.write_text(line * (10 * 1024 * 1024 // len(line)))
    return _lens_then_shutdown(server, path.as_uri(), 2)


@case("codeLens", "codeLens for an unopened file that is not UTF-8")
def lens_not_utf8(server: RawServer, tmp: Path) -> Outcome:
    path = tmp / "latin.py"
    path.write_bytes(
        b"import torch.nn as nn\n# caf\xe9\nclass Net(nn.Module):\n    def forward(self, x):\n        return x\n"
    )
    return _lens_then_shutdown(server, path.as_uri(), 5)


@case("codeLens", "codeLens for a directory, a missing file, a malformed file: URI")
def lens_odd_uris(server: RawServer, tmp: Path) -> Outcome:
    for uri in (tmp.as_uri(), (tmp / "missing.py").as_uri(), "file://[::1", "file:///%ff%fe.py", "nonsense"):
        answer = server.call("textDocument/codeLens", {"textDocument": {"uri": uri}}, timeout=10)
        if answer is None or "error" in answer:
            return Outcome(False, f"{uri}: {answer}")
    return Outcome(server.responsive(), "each answered with no lenses")


# -- exceptions that must become handled warnings ------------------------------------------------------
def _no_traceback(server: RawServer, what: str, warned: str | None = None) -> Outcome:
    """No traceback in the log, no error sent to the client, still answering; and, when
    `warned` is given, a warning containing it was logged to the client."""
    if not server.responsive():
        return Outcome(False, "deaf afterwards")
    stderr = server.stderr()
    if "Traceback" in stderr:
        last = [line for line in stderr.splitlines() if line.strip()][-1]
        return Outcome(False, f"traceback in the log: {last[:120]}")
    errors = [m for m in server.log_messages() if m.get("type") == 1]
    if errors:
        return Outcome(False, f"error sent to the client: {errors[-1]['message'][:120]}")
    if warned is not None:
        warnings = [m for m in server.log_messages() if m.get("type") == 2 and warned in m["message"]]
        if not warnings:
            return Outcome(False, f"no warning mentioning {warned!r} was logged")
        what += f" ({len(warnings)} warnings logged)"
    return Outcome(True, what)


@case("exceptions", "didOpen with malformed URIs")
def malformed_uri_did_open(server: RawServer, tmp: Path) -> Outcome:
    for uri in ("file://[::1", "file:///%ff%fe.py", "::::", "file://host:99999999/x.py", "", "untitled:\x00"):
        server.open(uri, "import torch\nx = torch.zeros(3)\nx[x < 0] = 0\n")
    return _no_traceback(server, "ignored with a warning", warned="didOpen of")


@case("exceptions", "notebook edits to cells that were never opened (x200)")
def notebook_unknown_cells(server: RawServer, tmp: Path) -> Outcome:
    nb = (tmp / "n.ipynb").as_uri()
    cell = nb + "#cell0"
    server.notify(
        "notebookDocument/didOpen",
        {
            "notebookDocument": {
                "uri": nb,
                "notebookType": "jupyter-notebook",
                "version": 1,
                "cells": [{"kind": 2, "document": cell}],
            },
            "cellTextDocuments": [
                {"uri": cell, "languageId": "python", "version": 1, "text": "import torch\n"}
            ],
        },
    )
    for version in range(2, 202):
        ghost = f"{nb}#ghost{version}"
        server.notify(
            "notebookDocument/didChange",
            {
                "notebookDocument": {"uri": nb, "version": version},
                "change": {
                    "cells": {
                        "data": [{"kind": 2, "document": ghost}],
                        "textContent": [
                            {"document": {"uri": ghost, "version": 2}, "changes": [{"text": "x = 1\n"}]}
                        ],
                    }
                },
            },
        )
    server.notify(
        "notebookDocument/didChange",
        {
            "notebookDocument": {"uri": nb + "-never-opened", "version": 2},
            "change": {"cells": {"structure": {"array": {"start": 5, "deleteCount": 3}}}},
        },
    )
    return _no_traceback(server, "200 edits to unknown cells ignored", warned="not open")


@case("exceptions", "didChange / didClose for documents that were never opened")
def unknown_document_changes(server: RawServer, tmp: Path) -> Outcome:
    uri = (tmp / "never.py").as_uri()
    for version in range(50):
        server.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": "x"}]},
        )
        server.close_document(uri)
    return _no_traceback(server, "ignored")


# -- code actions on a large file ------------------------------------------------------------------------
BUG = "\n\ndef bad{i}(w):\n    x = torch.zeros(3, require_grad=True)\n    y = torch.relu(x)\n    y[y < 0] = 0\n    return y\n"


def _large_file(lines: int) -> str:
    parts = ["import torch\nimport torch.nn as nn\n"]
    count = 2
    index = 0
    while count < lines:
        parts.append(MODEL.format(i=index) if index % 4 else BUG.format(i=index))
        count += parts[-1].count("\n")
        index += 1
    return "".join(parts)


def _code_action_after_edit(server: RawServer, tmp: Path, resolve: bool) -> tuple[float, dict | None]:
    uri = (tmp / "large.py").as_uri()
    text = _large_file(100_000)
    server.open(uri, text)
    if server.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics", 300) is None:
        return 0.0, None
    line = text.count("\n") - 3
    server.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [
                {
                    "range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 0}},
                    "text": "\n",
                }
            ],
        },
    )
    started = time.monotonic()
    answer = server.call(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": uri},
            "context": {"diagnostics": []},
            "range": {"start": {"line": line - 5, "character": 0}, "end": {"line": line + 2, "character": 0}},
        },
        timeout=120,
    )
    return time.monotonic() - started, answer


def _actions_case(resolve: bool):
    def run(server: RawServer, tmp: Path) -> Outcome:
        seconds, answer = _code_action_after_edit(server, tmp, resolve)
        if answer is None:
            return Outcome(False, f"no answer within {seconds:.0f} s")
        if "error" in answer:
            return Outcome(False, f"error {answer['error']}")
        titles = [a.get("title") for a in answer.get("result") or []]
        budget = 10.0
        return Outcome(
            seconds < budget, f"answered in {seconds:.1f} s ({len(titles)} actions; budget {budget:g} s)"
        )

    return run


def _caps(resolve: bool) -> dict:
    action: dict = {
        "codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["quickfix", "source.fixAll"]}}
    }
    if resolve:
        action["resolveSupport"] = {"properties": ["edit"]}
    return {
        "workspace": {"applyEdit": True, "workspaceEdit": {"documentChanges": True}},
        "textDocument": {"codeAction": action},
    }


CASES.append(
    Case(
        "code_action_large_file_resolve",
        "codeAction",
        "codeAction right after an edit of a 100,000-line file (client with resolve support)",
        _actions_case(True),
        capabilities=_caps(True),
    )
)
CASES.append(
    Case(
        "code_action_large_file_plain",
        "codeAction",
        "codeAction right after an edit of a 100,000-line file (client without resolve)",
        _actions_case(False),
        capabilities=_caps(False),
    )
)


# -- memory ----------------------------------------------------------------------------------------------
MODEL = """\
import torch
import torch.nn as nn


class Block{i}(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        y = torch.sigmoid(self.fc1(self.norm(x)))
        y[y < 0.5] = 0
        return x + self.fc2(y) * self.scale


"""


@case("memory", "open 2,000 documents at once, then close them: RSS while open and after")
def open_close_many(server: RawServer, tmp: Path) -> Outcome:
    count = int(os.environ.get("GRADGUARD_ADVERSARIAL_DOCS", "500"))
    server.responsive()
    time.sleep(0.5)
    baseline = server.rss_mb()
    uris = [(tmp / f"doc{index}.py").as_uri() for index in range(count)]
    for index, uri in enumerate(uris):
        server.open(uri, "".join(MODEL.format(i=f"{index}_{k}") for k in range(12)))  # ~330 lines
    published: set[str] = set()
    deadline = time.monotonic() + 30 + count * 0.5
    peak = baseline
    while len(published) < count and time.monotonic() < deadline:
        message = server.wait_for(
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] not in published
            ),
            30,
        )
        if message is None:
            break
        published.add(message["params"]["uri"])
        if len(published) % 100 == 0:
            peak = max(peak, server.rss_mb())
    peak = max(peak, server.rss_mb())
    if len(published) < count:
        return Outcome(False, f"only {len(published)} of {count} documents were checked")
    for uri in uris:
        server.close_document(uri)
    server.responsive(120)
    time.sleep(3)  # the server gives memory back a second after the last close
    after = server.rss_mb()
    detail = f"{count} documents: RSS {baseline:.0f} MB, {peak:.0f} MB open, {after:.0f} MB after closing"
    return Outcome(peak - baseline < 200 and after - baseline < 120, detail)


# -- the process tree ----------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _holding(marker: str) -> list[int]:
    """Live processes with marker in their command line or an open file whose path has it (the
    probe may run in its own PID namespace: its own pids mean nothing here)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not _alive(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(int(entry))
                    continue
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if marker in os.readlink(f"/proc/{entry}/fd/{fd}"):
                    found.append(int(entry))
                    break
        except OSError:
            continue
    return found


ESCAPER = """\
import os, subprocess, sys, time
import torch
import torch.nn as nn

MARKER = {marker!r}


def _escape():
    # a session of its own, then a double fork: the classic ways out of a process group
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", MARKER], start_new_session=True)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", MARKER])
        os._exit(0)


class Sleeper(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        _escape()
        self.held = open(MARKER, "w")
        self.held.write("started")
        self.held.flush()
        time.sleep(600)

    def forward(self, x):
        return self.fc(x)
"""


def _start_sleeper(server: RawServer, tmp: Path) -> tuple[str, Outcome | None]:
    marker = str(tmp / f"gg-escaper-{os.getpid()}-{time.monotonic_ns()}")
    path = tmp / "sleeper.py"
    path.write_text(ESCAPER.format(marker=marker))
    uri = path.as_uri()
    server.open(uri, path.read_text())
    server.request(
        "workspace/executeCommand", {"command": "gradguard.runProbe", "arguments": [uri, "Sleeper"]}
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if Path(marker).exists() and Path(marker).read_text() == "started" and len(_holding(marker)) >= 3:
            return marker, None
        time.sleep(0.2)
    return marker, Outcome(False, f"the probe never started the target ({len(_holding(marker))} processes)")


def _survivors(marker: str, seconds: float = 10) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and _holding(marker):
        time.sleep(0.2)
    left = _holding(marker)
    for pid in left:  # clean up what leaked, so the next case starts clean
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left


@case("process tree", "SIGKILL the server mid-probe: no runner or escaped child survives", trusted=True)
def kill_server_mid_probe(server: RawServer, tmp: Path) -> Outcome:
    try:
        import torch  # noqa: F401
    except ImportError:
        return Outcome(True, "skipped: no torch")
    marker, failed = _start_sleeper(server, tmp)
    if failed:
        _survivors(marker, 0)
        return failed
    count = len(_holding(marker))
    time.sleep(0.5)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    left = _survivors(marker)
    if left:
        return Outcome(False, f"{len(left)} of {count} processes survived the killed server")
    return Outcome(True, f"all {count} processes (runner, setsid child, double-forked daemon) gone")


def _signal_mid_probe(sig: int):
    def run(server: RawServer, tmp: Path) -> Outcome:
        try:
            import torch  # noqa: F401
        except ImportError:
            return Outcome(True, "skipped: no torch")
        marker, failed = _start_sleeper(server, tmp)
        if failed:
            _survivors(marker, 0)
            return failed
        count = len(_holding(marker))
        time.sleep(0.5)
        os.kill(server.proc.pid, sig)
        server.proc.wait(15)
        left = _survivors(marker)
        if left:
            return Outcome(False, f"{len(left)} of {count} processes survived")
        return Outcome(True, f"all {count} processes gone")

    return run


CASES.append(
    Case(
        "kill_server_mid_probe_without_namespaces",
        "process tree",
        "SIGKILL the server mid-probe, probe without namespaces: nothing survives",
        _signal_mid_probe(signal.SIGKILL),
        trusted=True,
        env={"GRADGUARD_PROBE_NAMESPACES": "0"},
    )
)
CASES.append(
    Case(
        "sigterm_server_mid_probe_without_namespaces",
        "process tree",
        "SIGTERM the server mid-probe, probe without namespaces: nothing survives",
        _signal_mid_probe(signal.SIGTERM),
        trusted=True,
        env={"GRADGUARD_PROBE_NAMESPACES": "0"},
    )
)


@case("process tree", "exit while a probe runs: nothing survives", trusted=True)
def exit_mid_probe(server: RawServer, tmp: Path) -> Outcome:
    try:
        import torch  # noqa: F401
    except ImportError:
        return Outcome(True, "skipped: no torch")
    marker, failed = _start_sleeper(server, tmp)
    if failed:
        _survivors(marker, 0)
        return failed
    count = len(_holding(marker))
    server.call("shutdown", None, timeout=10)
    server.notify("exit")
    code = server.wait_exit(15)
    left = _survivors(marker)
    if code is None:
        return Outcome(False, "the server did not exit")
    if left:
        return Outcome(False, f"{len(left)} of {count} processes survived the server's exit")
    return Outcome(True, f"exit {code}; all {count} processes gone")


# -- running ---------------------------------------------------------------------------------------------
def run_case(item: Case) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="gg-adv-") as tmp_name:
        tmp = Path(tmp_name)
        server = RawServer(cwd=tmp_name, env=server_env(GRADGUARD_APPLY_EDIT_TIMEOUT="4", **(item.env or {})))
        try:
            if item.initialize:
                options = {"settings": {"debounceMs": 0}, "workspaceTrusted": item.trusted}
                capabilities = item.capabilities or {"workspace": {"applyEdit": True}}
                server.initialize(tmp.as_uri(), capabilities, options)
            try:
                return item.run(server, tmp)
            except Exception as exc:  # noqa: BLE001 - a case that breaks the harness is a failure
                return Outcome(False, f"harness error: {type(exc).__name__}: {exc}")
        finally:
            if server.alive():
                server.proc.kill()
                server.proc.wait(10)
            server.close()


def main(argv: list[str]) -> int:
    selected = CASES
    if "-k" in argv:
        word = argv[argv.index("-k") + 1]
        selected = [c for c in CASES if word in c.name or word in c.group]
    rows = []
    for item in selected:
        started = time.monotonic()
        outcome = run_case(item)
        rows.append((item, outcome, time.monotonic() - started))
        mark = "ok  " if outcome.handled else "FAIL"
        print(f"{mark} {item.group:13} {item.name:34} {outcome.detail}  [{rows[-1][2]:.1f} s]", flush=True)
    print()
    print("| group | inputs tried | handled | failures |")
    print("|---|---|---|---|")
    groups: dict[str, list[bool]] = {}
    for item, outcome, _ in rows:
        groups.setdefault(item.group, []).append(outcome.handled)
    for group, results in groups.items():
        print(f"| {group} | {len(results)} | {sum(results)} | {len(results) - sum(results)} |")
    total = [outcome.handled for _, outcome, _ in rows]
    print(f"| **total** | {len(total)} | {sum(total)} | {len(total) - sum(total)} |")
    return 0 if all(total) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
