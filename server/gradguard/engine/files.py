"""Finding the files to check, reading them safely and writing fixes back safely.

Reading: only regular files are opened for reading (a FIFO named `x.py` would block a
plain `open` forever, `/dev/zero` would never end), the size is bounded, and the file's
encoding is found the way Python finds it (a UTF-8 byte order mark or a PEP 263 coding
cookie, else UTF-8).

Writing (`write_source`): a fix never truncates a file, never writes over an edit made
since the file was read, never re-creates a deleted file, writes through symbolic links
to their target, keeps hard links, owner, group and mode, keeps the encoding and byte
order mark, and refuses read-only files. See `write_source` for how.
"""

from __future__ import annotations

import errno
import fnmatch
import io
import os
import re
import stat
import tempfile
import time
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from gradguard.engine.config import DEFAULT_EXCLUDES

MAX_FILE_BYTES = 20 * 1024 * 1024
NOTEBOOK_SUFFIX = ".ipynb"
SOURCE_SUFFIXES = (".py", ".pyi")

# Temporary files of `write_source`: `.gradguard-<pid>-<random>.tmp` beside the file. The
# name is short (a long file name plus a suffix could overflow NAME_MAX) and carries the
# writer's pid, so a later run can tell a dead run's leftovers from a live run's.
TEMP_PREFIX = ".gradguard-"
TEMP_SUFFIX = ".tmp"
_TEMP_RE = re.compile(r"\A\.gradguard-(\d+)-[A-Za-z0-9_]+\.tmp\Z")
# what releases before 0.2 named them: `.<file name>.<random>.gradguard`
_LEGACY_TEMP_RE = re.compile(r"\A\..+\.[A-Za-z0-9_]{8}\.gradguard\Z")
STALE_AFTER_SECONDS = 3600.0


class UnreadableFile(Exception):
    """A file we will not check (binary, not UTF-8, too large, not a regular file...);
    the message says why."""


class WriteRefused(Exception):
    """A fixed file was not written (it is unchanged unless the message says otherwise);
    the message says why."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _read_regular(path: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file (at most `limit`); raises UnreadableFile otherwise.
    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"skipped: {_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise UnreadableFile(f"skipped: larger than {limit // (1024 * 1024)} MB")
        chunks = []
        total = 0
        while True:
            try:
                chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            except OSError as exc:
                raise UnreadableFile(f"cannot read: {exc.strerror or exc}") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew while we read it
                raise UnreadableFile(f"skipped: larger than {limit // (1024 * 1024)} MB")
        return b"".join(chunks), info
    finally:
        os.close(fd)


@dataclass
class SourceData:
    """A source file as read: its text and what is needed to write it back the same way."""

    path: str
    text: str
    raw: bytes
    encoding: str = "utf-8"  # the codec of the text after the byte order mark
    bom: bool = False
    stat: os.stat_result | None = field(default=None, repr=False)

    def encode(self, text: str) -> bytes:
        """`text` in this file's encoding (with its byte order mark); raises WriteRefused
        when the encoding cannot represent it."""
        try:
            data = text.encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise WriteRefused(
                f"the fixed text has {text[exc.start : exc.end]!r}, which the file's encoding "
                f"({self.encoding}) cannot represent"
            ) from None
        return (b"\xef\xbb\xbf" + data) if self.bom else data


def decode_source(data: bytes) -> tuple[str, str, bool]:
    """(text, encoding, has BOM) the way Python decodes a source file (PEP 263)."""
    if b"\x00" in data:
        raise UnreadableFile("skipped: binary file (contains NUL bytes)")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        message = str(getattr(exc, "msg", None) or exc)
        if message.startswith("invalid or missing encoding declaration"):
            try:  # the first lines are not UTF-8 and declare no encoding: say where
                data.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise UnreadableFile(f"skipped: not valid UTF-8 (byte {bad.start})") from None
        raise UnreadableFile(f"skipped: {message}") from None
    bom = encoding == "utf-8-sig"
    codec = "utf-8" if bom else encoding
    body = data[3:] if bom else data
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        offset = exc.start + (3 if bom else 0)
        name = "UTF-8" if codec == "utf-8" else codec
        raise UnreadableFile(f"skipped: not valid {name} (byte {offset})") from None
    except LookupError:  # pragma: no cover - detect_encoding checks the codec exists
        raise UnreadableFile(f"skipped: unknown encoding {codec!r}") from None
    return text, codec, bom


def read_source_file(path: str | os.PathLike) -> SourceData:
    """Read a Python source file; raises UnreadableFile with the reason it is skipped."""
    data, info = _read_regular(path)
    text, encoding, bom = decode_source(data)
    return SourceData(str(path), text, data, encoding, bom, info)


def read_source(path: Path) -> str:
    return read_source_file(path).text


def read_notebook_bytes(path: str | os.PathLike) -> bytes:
    return _read_regular(path)[0]


# -- collecting ---------------------------------------------------------------------------------
def _gitignore_patterns(directory: Path) -> list[str]:
    try:
        data, _ = _read_regular(directory / ".gitignore", limit=1024 * 1024)
    except UnreadableFile:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith(("#", "!"))]


def matches(rel: str, name: str, patterns: list[str]) -> bool:
    """Whether an exclude pattern matches `rel` (a relative, `/`-separated path ending in `name`)."""
    for pattern in patterns:
        pat = pattern.rstrip("/")
        if pat.startswith("/"):
            if fnmatch.fnmatch(rel, pat[1:]):
                return True
        elif fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel, f"*/{pat}"):
            return True
    return False


@dataclass
class FileSet:
    files: list[Path]
    missing: list[str]
    # (path, reason) for what could not be walked (an unreadable directory...)
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def _is_venv(directory: Path) -> bool:
    try:
        return (directory / "pyvenv.cfg").exists()
    except OSError:  # unreadable directory: it is reported when the walk reaches it
        return False


def collect_files(
    paths: list[str],
    exclude: tuple[str, ...] = (),
    suffixes: tuple[str, ...] = SOURCE_SUFFIXES,
    each_directory=None,
) -> FileSet:
    """Python files (names ending with one of `suffixes`) under the given paths, sorted;
    excluded directories are skipped. A file named explicitly is always checked (a notebook
    too; anything that is neither a file nor a directory is passed on, and reading it says
    why it is skipped).
    `each_directory()` is called before each directory is read (the language server's
    background walk steps aside there while a file is being checked)."""
    files: list[Path] = []
    missing: list[str] = []
    unreadable: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        try:
            info = path.stat()
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) or exc.errno in (errno.ENOENT, errno.ENOTDIR):
                if os.path.lexists(path):
                    files.append(path)  # a dangling or looping symlink: reading says why
                else:
                    missing.append(raw)
            else:
                unreadable.append((raw, f"cannot read: {exc.strerror or exc}"))
            continue
        if not stat.S_ISDIR(info.st_mode):
            files.append(path)
            continue
        _walk(path, exclude, suffixes, each_directory, files, unreadable)
    unique = sorted(set(files), key=lambda p: str(p))
    return FileSet(unique, missing, unreadable)


def _walk(
    path: Path,
    exclude: tuple[str, ...],
    suffixes: tuple[str, ...],
    each_directory,
    files: list[Path],
    unreadable: list[tuple[str, str]],
) -> None:
    """The files under directory `path` (into `files`), skipping excluded and ignored directories;
    a directory that cannot be read goes into `unreadable`."""
    root_patterns = list(exclude) + _gitignore_patterns(path)

    # iterative, so that deep trees cannot exhaust the recursion limit
    stack = [path]
    while stack:
        current_path = stack.pop()
        if each_directory is not None:
            each_directory()
        try:
            with os.scandir(current_path) as entries:
                listing = [(e.name, *_entry_kind(e)) for e in entries]
        except OSError as exc:
            unreadable.append((str(current_path), f"directory not checked: {exc.strerror or exc}"))
            continue
        patterns = root_patterns + (_gitignore_patterns(current_path) if current_path != path else [])
        subdirs = []
        for name, is_dir, is_link in sorted(listing):
            if is_dir:
                if is_link:
                    continue  # symlinked directories are not followed (they may loop)
                rel = str((current_path / name).relative_to(path))
                if name in DEFAULT_EXCLUDES or name.startswith(".") or matches(rel, name, patterns):
                    continue
                if _is_venv(current_path / name):  # a virtualenv under any name
                    continue
                subdirs.append(current_path / name)
                continue
            if not name.endswith(suffixes):
                continue
            rel = str((current_path / name).relative_to(path))
            if matches(rel, name, patterns):
                continue
            files.append(current_path / name)
        stack.extend(reversed(subdirs))


def _entry_kind(entry: os.DirEntry) -> tuple[bool, bool]:
    """(is a directory, is a symbolic link)"""
    try:
        return entry.is_dir(), entry.is_symlink()
    except OSError:
        return False, False


# -- writing ------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        pass
    try:  # Linux: a zombie (killed, not yet reaped by its new parent) is gone for our purpose
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
        return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] not in (b"Z", b"X")
    except (OSError, ValueError):
        return True


def clean_stale_temporaries(directories: set[str] | list[str], now: float | None = None) -> list[str]:
    """Remove the temporary files a killed run left beside the files it was fixing: ours
    (`.gradguard-<pid>-*.tmp`) whose process is gone or that are older than an hour, and
    empty legacy ones older than a minute. Returns the paths removed."""
    now = time.time() if now is None else now
    removed = []
    for directory in sorted(set(directories)):
        try:
            with os.scandir(directory) as entries:
                candidates = [
                    e for e in entries if e.name.startswith(".") and e.is_file(follow_symlinks=False)
                ]
        except OSError:
            continue
        for entry in candidates:
            match = _TEMP_RE.match(entry.name)
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            age = now - info.st_mtime
            if match:
                stale = not _pid_alive(int(match.group(1))) or age > STALE_AFTER_SECONDS
                if match.group(1) == str(os.getpid()):
                    stale = False  # our own, in flight
            elif _LEGACY_TEMP_RE.match(entry.name):
                stale = info.st_size == 0 and age > 60
            else:
                continue
            if stale:
                try:
                    os.unlink(entry.path)
                    removed.append(entry.path)
                except OSError:
                    pass
    return removed


def _write_all(fd: int, data: bytes, offset: int = 0) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:  # pragma: no cover - pwrite raises instead
            raise OSError(errno.EIO, "short write")
        view = view[written:]
        offset += written


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _error_text(exc: OSError) -> str:
    return exc.strerror or str(exc)


def write_source(source: SourceData, new_text: str, check: bool = True) -> str:
    """Write `new_text` over the file `source` was read from. Returns how it was written
    ("replaced" or "in place"); raises WriteRefused (the file is unchanged) when:

    * the file was changed or deleted since it was read (it is never re-created),
    * it is read-only (no write permission bit for anyone),
    * the new text cannot be encoded in the file's encoding, or does not parse, or
    * writing fails (disk full, file size limit, permissions...).

    A symbolic link is written through to its target. The new text goes to a temporary
    file beside the target (owner, group and mode copied, flushed to disk) that is then
    renamed over it, so a reader or a crash sees the old file or the new one. When a
    rename would lose something -- the file has other hard links, its owner cannot be
    copied, or the directory is not writable -- the file is rewritten in place instead:
    the new bytes, padded with spaces to at least the old length, go in one write, then
    the file is cut to size, so a crash in between leaves the new code followed by blanks
    (still the same program), never a truncated one.
    """
    path = source.path
    if check:
        from gradguard.engine.analyzer import parse  # local: files.py is imported by config users

        try:
            parse(new_text, path)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            raise WriteRefused("internal error: the fixed text does not parse") from None
    data = source.encode(new_text)
    target = os.path.realpath(path)
    directory = os.path.dirname(target) or "."

    def unchanged_or_refuse() -> os.stat_result:
        try:
            current, info = _read_regular(target, limit=max(MAX_FILE_BYTES, len(source.raw)))
        except UnreadableFile as exc:
            if not os.path.lexists(target):
                raise WriteRefused("deleted since it was read (not re-created)") from None
            raise WriteRefused(f"changed since it was read ({exc})") from None
        if current != source.raw:
            raise WriteRefused("changed since it was read; run gradguard again")
        return info

    info = unchanged_or_refuse()
    if not info.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise WriteRefused(f"read-only file (mode {stat.S_IMODE(info.st_mode):04o})")
    if info.st_nlink <= 1:
        done = _replace(target, directory, data, info, unchanged_or_refuse)
        if done:
            return "replaced"
    _rewrite_in_place(target, data, source.raw, info, unchanged_or_refuse)
    return "in place"


def _replace(target: str, directory: str, data: bytes, info: os.stat_result, recheck) -> bool:
    """Write to a temporary file and rename it over `target`. False when the rename would
    not keep the file's owner or the directory does not take new files (the caller then
    writes in place); raises WriteRefused when writing fails."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=TEMP_SUFFIX, dir=directory)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return False  # read-only directory: try in place (the file itself may be writable)
        raise WriteRefused(
            f"cannot create a temporary file beside it: {_error_text(exc)}; not fixed"
        ) from None
    try:
        try:
            mine = os.fstat(fd)
            if (mine.st_uid, mine.st_gid) != (info.st_uid, info.st_gid):
                try:
                    os.fchown(fd, info.st_uid, info.st_gid)
                except OSError:
                    os.close(fd)
                    fd = -1
                    os.unlink(tmp)
                    return False  # renaming would give the file our owner/group
            os.fchmod(fd, stat.S_IMODE(info.st_mode))
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        recheck()  # the last moment: an edit made while we worked is never overwritten
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise WriteRefused(f"cannot write: {_error_text(exc)}") from None
        raise
    _fsync_directory(directory)
    return True


def _rewrite_in_place(target: str, data: bytes, old: bytes, info: os.stat_result, recheck) -> None:
    try:
        fd = os.open(target, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise WriteRefused(f"cannot write: {_error_text(exc)}") from None
    try:
        if os.fstat(fd).st_ino != info.st_ino:
            raise WriteRefused("changed since it was read (replaced by another file)")
        recheck()
        padded = data + b" " * max(0, len(old) - len(data))
        try:
            _write_all(fd, padded)
            os.fsync(fd)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        except OSError as exc:
            try:  # put the old text back
                _write_all(fd, old)
                os.ftruncate(fd, len(old))
                os.fsync(fd)
                state = ""
            except OSError:
                state = "; the file may now hold the fixed code followed by blanks"
            raise WriteRefused(f"cannot write: {_error_text(exc)}{state}") from None
    finally:
        os.close(fd)


def collected(path: str | Path, root: str | Path, exclude: tuple[str, ...] = ()) -> bool:
    """Whether `collect_files([root], exclude)` would list `path` (a file under `root`;
    judged by its name, it need not exist any more), by the same rules."""
    path, root = Path(path), Path(root)
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return False
    if not parts:
        return False
    root_patterns = list(exclude) + _gitignore_patterns(root)
    current = root
    for depth, part in enumerate(parts):
        patterns = root_patterns + (_gitignore_patterns(current) if depth else [])
        rel = str(Path(*parts[: depth + 1]))
        if depth < len(parts) - 1:
            if part in DEFAULT_EXCLUDES or part.startswith(".") or matches(rel, part, patterns):
                return False
            if _is_venv(current / part):
                return False
        elif matches(rel, part, patterns):
            return False
        current = current / part
    return True
