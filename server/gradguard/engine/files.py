"""Finding the Python files to check and reading them safely."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from gradguard.engine.config import DEFAULT_EXCLUDES

MAX_FILE_BYTES = 20 * 1024 * 1024


class UnreadableFile(Exception):
    """A file we will not check (binary, not UTF-8, too large); the message says why."""


def read_source(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableFile(f"skipped: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    if b"\x00" in data:
        raise UnreadableFile("skipped: binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"skipped: not valid UTF-8 (byte {exc.start})") from None
    return text


def _gitignore_patterns(directory: Path) -> list[str]:
    path = directory / ".gitignore"
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith(("#", "!"))]


def _matches(rel: str, name: str, patterns: list[str]) -> bool:
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


def collect_files(
    paths: list[str],
    exclude: tuple[str, ...] = (),
    suffixes: tuple[str, ...] = (".py", ".pyi"),
    each_directory=None,
) -> FileSet:
    """Python files (names ending with one of `suffixes`) under the given paths, sorted;
    excluded directories are skipped. A file named explicitly is always checked.
    `each_directory()` is called before each directory is read (the language server's
    background walk steps aside there while a file is being checked)."""
    files: list[Path] = []
    missing: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            files.append(path)
            continue
        if not path.is_dir():
            missing.append(raw)
            continue
        root_patterns = list(exclude) + _gitignore_patterns(path)
        for current, dirs, names in os.walk(path):
            if each_directory is not None:
                each_directory()
            current_path = Path(current)
            patterns = root_patterns + (_gitignore_patterns(current_path) if current_path != path else [])
            kept = []
            for d in sorted(dirs):
                rel = str((current_path / d).relative_to(path))
                if d in DEFAULT_EXCLUDES or d.startswith(".") or _matches(rel, d, patterns):
                    continue
                if (current_path / d / "pyvenv.cfg").exists():  # a virtualenv under any name
                    continue
                kept.append(d)
            dirs[:] = kept
            for name in sorted(names):
                if not name.endswith(suffixes):
                    continue
                rel = str((current_path / name).relative_to(path))
                if _matches(rel, name, patterns):
                    continue
                files.append(current_path / name)
    unique = sorted(set(files), key=lambda p: str(p))
    return FileSet(unique, missing)


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
            if part in DEFAULT_EXCLUDES or part.startswith(".") or _matches(rel, part, patterns):
                return False
            if (current / part / "pyvenv.cfg").exists():
                return False
        elif _matches(rel, part, patterns):
            return False
        current = current / part
    return True
