"""The stdio transport of the language server: LSP base-protocol frames, read defensively.

pygls 2 reads frames with `readline()` and a strict `^Content-Length: (\\d+)\\r\\n$` match, then
`read(n)` of whatever length was announced. A 100 GB length raises MemoryError and ends the
server; a header it does not match (lowercase name, LF-only line ends, padding, a negative or
non-numeric length) is never matched, so every later frame is read as a header and the server
stays alive but deaf. This module replaces that loop (not pygls's protocol: messages still go
through `protocol.structure_message` and `protocol.handle_message`):

* the header section is bounded (`MAX_HEADER_BYTES`); names are case-insensitive, lines may end
  in LF or CRLF, spaces around names and values are ignored (as in HTTP);
* the body is bounded (`MAX_CONTENT_LENGTH`); a longer announced body is skipped while it is
  read, never held;
* a frame that cannot be read is reported to the client: an error response (to the request's id
  when it can be recovered from the broken frame, else to id null, as JSON-RPC says for parse
  errors) and a `window/logMessage` error; then the reader resynchronises on the next
  `Content-Length` header;
* a frame whose announced length is longer than its JSON body is read as intended when the
  boundary is unambiguous (the next frame's header follows the body, or nothing arrives for
  `IDLE_SECONDS` and the bytes so far are one complete JSON value), with a warning;
* the server exits when its input ends, with the status the spec asks for (0 after `shutdown`,
  else 1), and never waits for a reader thread or an engine thread to finish.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import select
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("gradguard.lsp")

MAX_HEADER_BYTES = 8 * 1024
MAX_CONTENT_LENGTH = 128 * 1024 * 1024
IDLE_SECONDS = 0.5
READ_CHUNK = 64 * 1024
SALVAGE_BYTES = 64 * 1024  # how much of a broken frame is searched for its request id

PARSE_ERROR, INVALID_REQUEST = -32700, -32600

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_RESYNC = re.compile(rb"content-length[ \t]*:", re.IGNORECASE)
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DIGITS = re.compile(rb"[0-9]+")
_NO_ID = object()


@dataclass
class Message:
    """A frame's body, decoded from JSON."""

    value: Any
    warning: str | None = None


@dataclass
class Problem:
    """A frame that could not be read; `msg_id` is the request's id when it could be recovered."""

    text: str
    code: int = PARSE_ERROR
    msg_id: Any = _NO_ID


class FrameParser:
    """Splits a byte stream into LSP messages. Pure: feed it bytes, it returns what it found."""

    def __init__(self, max_header: int = MAX_HEADER_BYTES, max_body: int = MAX_CONTENT_LENGTH) -> None:
        self.max_header = max_header
        self.max_body = max_body
        self._buf = bytearray()
        self._state = "header"  # "header" | "body" | "skip"
        self._length = 0
        self._scanned = 0  # body state: bytes already searched for a following header
        self._idle_checked = False
        self.skipped = 0  # bytes discarded while resynchronising (for tests and the log)

    @property
    def pending(self) -> bool:
        return bool(self._buf) or self._state != "header"

    def feed(self, data: bytes) -> list[Message | Problem]:
        self._buf += data
        self._idle_checked = False
        out: list[Message | Problem] = []
        while self._step(out):
            pass
        return out

    def idle(self) -> list[Message | Problem]:
        """Nothing arrived for a while: a body shorter than announced may be complete."""
        if self._state != "body" or self._idle_checked or not self._buf:
            return []
        self._idle_checked = True
        value, end = _complete_value(bytes(self._buf))
        if end is None or bytes(self._buf[end:]).strip():
            return []
        out: list[Message | Problem] = [
            Message(value, f"Content-Length {self._length} is longer than the message ({end} bytes)")
        ]
        del self._buf[:]
        self._state = "header"
        return out

    # -- states ---------------------------------------------------------------------------------
    def _step(self, out: list) -> bool:
        if self._state == "header":
            return self._header(out)
        if self._state == "body":
            return self._body(out)
        return self._resync()

    def _header(self, out: list) -> bool:
        buf = self._buf
        start = 0
        while start < len(buf) and buf[start] in b" \t\r\n":
            start += 1  # blank lines between frames
        if start:
            del buf[:start]
        if not buf:
            return False
        match = _HEADER_END.search(buf, 0, self.max_header + 4)
        if match is None:
            if len(buf) > self.max_header:
                self._fail(out, f"a header section longer than {self.max_header} bytes", 0)
                return True
            return False
        headers = bytes(buf[: match.start()])
        body_start = match.end()
        lengths: list[bytes] = []
        for line in headers.split(b"\n"):
            name, colon, value = line.rstrip(b"\r").partition(b":")
            if not colon or not _TOKEN.fullmatch(name.strip()):
                shown = line[:60].decode("ascii", "backslashreplace")
                self._fail(out, f"a header line that is not `Name: value` ({shown!r})", body_start)
                return True
            if name.strip().lower() == b"content-length":
                lengths.append(value.strip())
        if not lengths:
            self._fail(out, "a frame without a Content-Length header", body_start, resync_from=body_start)
            return True
        if len(set(lengths)) > 1:
            shown = ", ".join(v.decode("ascii", "backslashreplace") for v in lengths)
            self._fail(
                out,
                f"a frame with different Content-Length headers ({shown})",
                body_start,
                resync_from=body_start,
            )
            return True
        raw = lengths[0]
        if not _DIGITS.fullmatch(raw):
            shown = raw[:40].decode("ascii", "backslashreplace")
            self._fail(
                out,
                f"Content-Length {shown!r} is not a non-negative decimal number",
                body_start,
                resync_from=body_start,
            )
            return True
        length = int(raw) if len(raw) <= 15 else self.max_body + 1  # no int() of 8,000 digits
        if length > self.max_body:
            self._oversized(out, raw, body_start)
            return True
        del buf[:body_start]
        if length == 0:
            out.append(Problem("a frame with Content-Length 0 (an empty message)", INVALID_REQUEST))
            return True
        self._state, self._length, self._scanned = "body", length, 0
        return True

    def _body(self, out: list) -> bool:
        buf, length = self._buf, self._length
        if len(buf) >= length:
            body = bytes(buf[:length])
            try:
                value = json.loads(body)
            except ValueError:
                value, end = _complete_value(body)
                rest = body[end:].lstrip() if end is not None else b""
                if end is not None and _RESYNC.match(rest):
                    # the announced length ran into the next frame: the body ended at `end`
                    out.append(
                        Message(value, f"Content-Length {length} is longer than the message ({end} bytes)")
                    )
                    del buf[:end]
                    self._state = "header"
                    return True
                self._state = "skip"
                del buf[:length]
                out.append(_unreadable(body, f"a body of {length} bytes that is not one JSON value"))
                return True
            del buf[:length]
            self._state = "header"
            out.append(Message(value))
            return True
        # not all there yet: did the next frame's header already arrive (length too long)?
        begin = max(0, self._scanned - 20)
        self._scanned = len(buf)
        found = _RESYNC.search(buf, begin)
        while found is not None:
            value, end = _complete_value(bytes(buf[: found.start()]))
            if end is not None and not bytes(buf[end : found.start()]).strip():
                out.append(
                    Message(value, f"Content-Length {length} is longer than the message ({end} bytes)")
                )
                del buf[: found.start()]
                self._state = "header"
                return True
            found = _RESYNC.search(buf, found.end())
        return False

    def _resync(self) -> bool:
        found = _RESYNC.search(self._buf)
        if found is None:
            keep = 32  # a header name split between two reads
            if len(self._buf) > keep:
                self.skipped += len(self._buf) - keep
                del self._buf[: len(self._buf) - keep]
            return False
        self.skipped += found.start()
        del self._buf[: found.start()]
        self._state = "header"
        return True

    def _fail(
        self, out: list, why: str, body_start: int, code: int = PARSE_ERROR, resync_from: int = 1
    ) -> None:
        """Report a broken frame and resynchronise on the next `Content-Length` from
        `resync_from` (1: inside a header section that is not well-formed, which may hide a
        real header; the body's start when only the values were wrong). The error answers the
        request in the frame when its id can be read from the bytes after the header, unless
        another frame starts inside the broken header (then those bytes are that frame's body,
        and it is read normally after the resync)."""
        body = b""
        if resync_from == body_start or _RESYNC.search(self._buf, 1, body_start) is None:
            body = bytes(self._buf[body_start : body_start + SALVAGE_BYTES])
            following = _RESYNC.search(body)
            if following is not None:
                body = body[: following.start()]  # the next frame is not part of this one
        out.append(_unreadable(body, why, code))
        del self._buf[:resync_from]
        self.skipped += resync_from
        self._state = "skip"

    def _oversized(self, out: list, raw: bytes, body_start: int) -> None:
        # what was announced is discarded as it arrives (never held), and a real frame is
        # looked for in it in case the length was a lie
        shown = raw[:30].decode("ascii") + ("..." if len(raw) > 30 else "")
        why = f"Content-Length {shown} is over the limit of {self.max_body} bytes"
        self._fail(out, why, body_start, INVALID_REQUEST, resync_from=body_start)


def _unreadable(body: bytes, why: str, code: int = PARSE_ERROR) -> Problem:
    msg_id = request_id(body)
    return Problem(f"gradguard: could not read a message from the client: {why}", code, msg_id)


def _complete_value(data: bytes) -> tuple[Any, int | None]:
    """(value, end offset) of the JSON value at the start of data, or (None, None)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, None
    stripped = len(text) - len(text.lstrip())
    try:
        value, end = json.JSONDecoder().raw_decode(text, stripped)
    except ValueError:
        return None, None
    return value, len(text[:end].encode("utf-8"))


def request_id(data: bytes) -> Any:
    """The top-level "id" of a (maybe truncated or invalid) JSON-RPC request object: one with a
    top-level "method", or a truncated one without "result"/"error" (a response or a
    notification gets no error answer)."""
    text = data[:SALVAGE_BYTES].decode("utf-8", "replace")
    depth = 0
    index = 0
    key_expected = False
    found_id: Any = _NO_ID
    has_method = has_result = closed = False
    length = len(text)
    while index < length:
        ch = text[index]
        if ch == '"':
            end = index + 1
            while end < length and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= length:
                break
            token = text[index : end + 1]
            index = end + 1
            if depth == 1 and key_expected:
                key, value = _member(token, text[index:])
                has_method = has_method or key == "method"
                has_result = has_result or key in ("result", "error")
                if value is not _NO_ID:
                    found_id = value
                key_expected = False
            continue
        if ch in "{[":
            depth += 1
            key_expected = ch == "{" and depth == 1
        elif ch in "}]":
            depth -= 1
            if depth <= 0:
                closed = True
                break  # the end of the first top-level value: what follows is another message
        elif ch == "," and depth == 1:
            key_expected = True
        index += 1
    # a request has a method; a truncated object may have lost it, unless it is a response
    if (
        isinstance(found_id, (int, str))
        and not isinstance(found_id, bool)
        and (has_method or (not closed and not has_result))
    ):
        return found_id
    return _NO_ID


def _member(token: str, rest: str) -> tuple[Any, Any]:
    """(the key, the id's value or _NO_ID) of a top-level member whose quoted key `token` is
    followed by `rest`; (None, _NO_ID) when `token` is not a key."""
    if not rest.lstrip().startswith(":"):
        return None, _NO_ID
    try:
        key = json.loads(token)
    except ValueError:
        return None, _NO_ID
    if key != "id":
        return key, _NO_ID
    value = re.match(r'\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*"|null)', rest)
    if value is None:
        return key, _NO_ID
    try:
        return key, json.loads(value.group(1))
    except ValueError:
        return key, _NO_ID


# -- running the server on stdio --------------------------------------------------------------------
class StdioTransport:
    """Reads stdin in a daemon thread, hands messages to the protocol on the event loop."""

    def __init__(self, server: Any, stdin_fd: int, parser: FrameParser | None = None) -> None:
        self.server = server
        self.protocol = server.protocol
        self.fd = stdin_fd
        self.parser = parser or FrameParser()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.done: asyncio.Future | None = None
        self.problems = 0

    def stop(self, reason: str = "") -> None:
        """End the server's main loop (thread-safe)."""
        if self.loop is None or self.done is None:
            return

        def finish() -> None:
            if self.done is not None and not self.done.done():
                self.done.set_result(reason)

        try:
            self.loop.call_soon_threadsafe(finish)
        except RuntimeError:  # the loop is already closed
            pass

    async def run(self) -> str:
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        thread = threading.Thread(target=self._read_loop, name="gradguard-stdin", daemon=True)
        thread.start()
        return await self.done

    # -- the reader thread --------------------------------------------------------------------------
    def _read_loop(self) -> None:
        polling = os.name == "posix"
        try:
            while self.done is not None and not self.done.done():
                if polling:
                    try:
                        ready, _, _ = select.select([self.fd], [], [], IDLE_SECONDS)
                    except (OSError, ValueError):
                        ready, polling = [self.fd], False
                    if not ready:
                        if self.parser.pending:
                            self._hand_over(self.parser.idle())
                        continue
                try:
                    data = os.read(self.fd, READ_CHUNK)
                except InterruptedError:
                    continue
                except OSError as exc:
                    log.error("reading stdin failed: %s", exc)
                    break
                if not data:
                    break
                self._hand_over(self.parser.feed(data))
        except Exception:
            log.exception("the stdin reader failed")
        self.stop("input closed")

    def _hand_over(self, items: list[Message | Problem]) -> None:
        """Process items on the event loop and wait until they were (keeps the order and
        bounds how far the reader runs ahead)."""
        if not items or self.loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._dispatch(items), self.loop)
        while True:
            try:
                future.result(timeout=1.0)
                return
            except TimeoutError:
                if self.done is None or self.done.done():
                    return
            except Exception:  # noqa: BLE001 - already logged by _dispatch
                return

    # -- on the event loop ----------------------------------------------------------------------------
    async def _dispatch(self, items: list[Message | Problem]) -> None:
        for item in items:
            if self.done is not None and self.done.done():
                return
            if isinstance(item, Problem):
                self._report(item)
                continue
            if item.warning:
                self._log(f"gradguard: {item.warning}; read it anyway", 2)
            self._deliver(item.value)

    def _deliver(self, value: Any) -> None:
        if not isinstance(value, dict):
            self._report(
                Problem(
                    f"gradguard: a message that is not a JSON object ({type(value).__name__})",
                    INVALID_REQUEST,
                )
            )
            return
        if value.get("jsonrpc") != "2.0":
            msg_id = (
                value.get("id") if "method" in value and isinstance(value.get("id"), (int, str)) else _NO_ID
            )
            self._report(Problem('gradguard: a message without "jsonrpc": "2.0"', INVALID_REQUEST, msg_id))
            return
        try:
            message = self.protocol.structure_message(value)
        except Exception as exc:  # noqa: BLE001
            msg_id = (
                value.get("id") if "method" in value and isinstance(value.get("id"), (int, str)) else _NO_ID
            )
            self._report(
                Problem(f"gradguard: an invalid message ({type(exc).__name__})", INVALID_REQUEST, msg_id)
            )
            return
        try:
            self.protocol.handle_message(message)
        except SystemExit:
            self.stop("exit")
        except Exception:
            log.exception("handling a %s message failed", value.get("method", "response"))

    def _report(self, problem: Problem) -> None:
        self.problems += 1
        if self.problems <= 100 or self.problems % 1000 == 0:
            suffix = f" ({self.problems} so far)" if self.problems > 100 else ""
            self._log(problem.text + suffix, 1)
        msg_id = None if problem.msg_id is _NO_ID else problem.msg_id
        try:
            self.protocol._send_data(
                {"jsonrpc": "2.0", "id": msg_id, "error": {"code": problem.code, "message": problem.text}}
            )
        except Exception:  # noqa: BLE001 - the client went away
            log.warning("could not send an error response")

    def _log(self, text: str, level: int) -> None:
        log.log(logging.ERROR if level == 1 else logging.WARNING, "%s", text)
        try:
            self.protocol._send_data(
                {"jsonrpc": "2.0", "method": "window/logMessage", "params": {"type": level, "message": text}}
            )
        except Exception:  # noqa: BLE001 - the client went away
            log.debug("could not send a log message")


class _StdoutWriter:
    """pygls's writer interface over the real stdout (sys.stdout itself goes to stderr, so a
    stray print() cannot corrupt the stream)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def close(self) -> None:
        try:
            self._stream.flush()
        except Exception:  # noqa: BLE001 - the client went away
            log.debug("could not flush stdout")

    def write(self, data: bytes) -> None:
        with self._lock:
            self._stream.write(data)
            self._stream.flush()


def serve_stdio(server: Any, on_exit: Callable[[], object] | None = None) -> int:
    """Run the server on stdin/stdout until `exit` or the end of input; returns the exit status
    (0 after `shutdown`, else 1)."""
    stdout = sys.stdout.buffer
    sys.stdout = sys.stderr
    server.protocol.set_writer(_StdoutWriter(stdout))
    transport = StdioTransport(server, sys.stdin.fileno())
    server.transport = transport
    reason = "error"
    try:
        reason = asyncio.run(_main(server, transport))
    except (KeyboardInterrupt, SystemExit):
        reason = "interrupted"
    except Exception:
        log.exception("the server's main loop failed")
    finally:
        if on_exit is not None:
            try:
                on_exit()
            except Exception:
                log.exception("cleaning up on exit failed")
    shut_down = bool(getattr(server.protocol, "_shutdown", False))
    code = 0 if shut_down else 1
    log.info("exiting (%s) with status %d", reason, code)
    return code


async def _main(server: Any, transport: StdioTransport) -> str:
    loop = asyncio.get_running_loop()
    for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)):
        if sig is not None:
            try:  # an editor that stops the server with a signal: clean up as on `exit`
                loop.add_signal_handler(sig, transport.stop, signal.Signals(sig).name)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
    reason = await transport.run()
    # stop pending work (analyses, probe runs) so their cleanup runs before the process ends
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=3)
    return reason
