"""Reading a file the client has not opened (a code lens or probe run on a `file:` URI).

Only regular files, at most `MAX_FILE_BYTES`, opened without blocking (a FIFO named `x.py`
would otherwise block `open()` until a writer appears) and read in a worker thread, so a slow or
hostile path never holds up the event loop: every other request, `shutdown` included, is
answered meanwhile. Anything else is a logged warning and no text, never an exception.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat

from gradguard.lsp.documents import uri_to_path

log = logging.getLogger("gradguard.lsp")

MAX_FILE_BYTES = 3_000_000  # as MAX_ANALYSED_CHARS: larger files are not checked either


class Unreadable(Exception):
    """Why a file was not read (said in the log)."""


def read_source(path: str, limit: int = MAX_FILE_BYTES) -> str:
    """The text of a regular UTF-8 file of at most `limit` bytes; raises Unreadable."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise Unreadable(f"cannot open it ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable("it is not a regular file")
        if info.st_size > limit:
            raise Unreadable(f"it has {info.st_size:,} bytes (the limit is {limit:,})")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise Unreadable(f"it grew past {limit:,} bytes while being read")
    except OSError as exc:
        raise Unreadable(f"cannot read it ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"it is not UTF-8 (byte {exc.start})") from None


async def read_unopened(uri: str, limit: int = MAX_FILE_BYTES) -> str | None:
    """The text of a `file:` URI's file, read off the event loop; None (and a warning in the
    log) when it is not a readable regular UTF-8 file within the limit."""
    try:
        path = uri_to_path(uri)
    except ValueError:
        path = uri
    if not uri.startswith("file:") or not os.path.isabs(path):
        return None
    try:
        return await asyncio.get_running_loop().run_in_executor(None, read_source, path, limit)
    except Unreadable as exc:
        log.warning("not reading %s: %s", path, exc)
        return None
