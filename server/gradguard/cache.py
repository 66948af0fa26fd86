"""The result cache of `gradguard check` (as ruff's `.ruff_cache`): re-checking an unchanged
project reads each file's findings back instead of analysing it again.

A file's result is reused only when nothing it may rest on changed. The cache is split in
*contexts*, one directory each, named by a digest of

- the format of this cache, gradguard's version, the Python version, and the text of every
  source file of the `gradguard` package (a developer's edit to a rule invalidates);
- the effective settings (select, ignore, severity, exclude, --no-project);
- the project index's facts: for every file of the project, its path, module name and
  top-level summary (the classes, their bases, what they hold, the imports, `__all__`...,
  everything `ProjectIndex` answers other files' questions from), and the search path.

Within a context, an entry is named by the file's path and the digest of its text. What the
index read outside the project (installed packages' sources, the directories it listed)
is recorded in the context's `manifest.json` with the size and mtime of each file and the
names of each directory; when any of them differs at the start of a run, no entry of the
context is used. Each run that writes entries adds a token to the manifest together with
what it read, and an entry is used only when its token is in a manifest that checks out:
two runs racing on the manifest can lose each other's entries (misses), never mix them.

So an edit inside a function body misses for that file only; an edit that changes a
top-level fact of any project file (a class gaining a base, a new import, a new file)
starts a new context, and every file is checked again.

Entries are JSON (never pickle: a cache directory is data, a cloned project's included),
written atomically (a temporary file, then `os.replace`). An entry that cannot be read,
does not parse, or belongs to another key is a miss (logged at debug level). A cache
directory that cannot be created or written means no cache, never an error.
`--fix` and `--diff` neither read nor write the cache: fixes are always computed afresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gradguard import __version__
from gradguard.engine.config import Config
from gradguard.engine.finding import Applicability, Finding, Fix, Severity, TextEdit

log = logging.getLogger("gradguard.cache")

CACHE_DIR_NAME = ".gradguard_cache"
FORMAT = 1  # bump when the layout or the entry format changes
MAX_CONTEXTS = 8  # context directories kept (the least recently used are removed)
MAX_TOKENS = 256

_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by gradguard.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)


# -- digests --------------------------------------------------------------------------------------
def _canonical(value: Any) -> Any:
    """A JSON-able form of `value` that does not depend on hash order (sets are sorted)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (frozenset, set)):
        return ["<set>", sorted((_canonical(v) for v in value), key=repr)]
    if isinstance(value, (tuple, list)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return ["<dict>", sorted(([_canonical(k), _canonical(v)] for k, v in value.items()), key=repr)]
    if hasattr(value, "value") and hasattr(value, "name"):  # an enum
        return _canonical(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            type(value).__name__,
            {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)},
        ]
    return repr(value)


def _digest(*parts: Any) -> str:
    text = json.dumps(_canonical(parts), ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def context_digest(*parts: Any) -> str:
    """The name of a context directory: the digest of the fingerprints it is made of."""
    return _digest(*parts)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


_engine: str | None = None


def engine_fingerprint() -> str:
    """The version and the text of every source file of the gradguard package."""
    global _engine
    if _engine is None:
        package = Path(__file__).resolve().parent
        digest = hashlib.sha256(f"{FORMAT}\0{__version__}\0{sys.version}\0".encode())
        for path in sorted(package.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file() or path.suffix in (".pyc", ".pyo"):
                continue
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
        _engine = digest.hexdigest()
    return _engine


def settings_fingerprint(config: Config, no_project: bool) -> str:
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "cache_dir"}
    return _digest(fields, no_project)


def _stable(value: Any) -> Any:
    """`value` with its sets sorted (the facts of a summary: tuples, strings, numbers, sets)."""
    if isinstance(value, (frozenset, set)):
        return tuple(sorted(value, key=repr))
    if isinstance(value, tuple) and any(isinstance(v, (frozenset, set, tuple)) for v in value):
        return tuple(_stable(v) for v in value)
    return value


def project_fingerprint(project: Any) -> str:
    """Every fact the project index may give one file about the others (see the module doc).
    (A repr that still varied between runs could only make entries miss, never hit wrongly.)"""
    digest = hashlib.sha256(repr((project.roots, project.search_paths)).encode("utf-8", "surrogatepass"))
    for path in sorted(project.files):
        entry = project.files[path]
        summary = entry.summary
        facts = [path, entry.module, entry.is_package, entry.root, entry.notebook]
        for f in dataclasses.fields(summary):
            if f.name == "digest":  # hash() of the rest: differs between processes
                continue
            value = getattr(summary, f.name)
            if f.name == "names":  # without the line numbers, which no other file rests on
                value = tuple((name, _stable(binding[:-1])) for name, binding in sorted(value.items()))
            facts.append((f.name, _stable(value)))
        digest.update(repr(facts).encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


def index_reads(project: Any) -> dict[str, dict[str, Any]]:
    """What the index read outside the project's files: installed modules' sources (with their
    size and mtime when read) and the directories it listed (a digest of their names)."""
    if project is None:
        return {"files": {}, "dirs": {}}
    files: dict[str, Any] = {}
    for path, (size, mtime, _summary) in list(project._external.items()):
        files[path] = [size, mtime] if size >= 0 else _stat(path)
    dirs = {d: _names_digest(entries) for d, entries in list(project._listdirs.items())}
    return {"files": files, "dirs": dirs}


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _names_digest(entries: frozenset[str] | None) -> str | None:
    if entries is None:
        return None
    return hashlib.sha256("\0".join(sorted(entries)).encode("utf-8", "surrogatepass")).hexdigest()


def _listing_digest(directory: str) -> str | None:
    try:
        return _names_digest(frozenset(os.listdir(directory)))
    except OSError:
        return None


def _reads_hold(reads: dict[str, dict[str, Any]]) -> bool:
    for path, recorded in reads["files"].items():
        if _stat(path) != recorded:
            log.debug("cache: %s changed", path)
            return False
    for directory, recorded in reads["dirs"].items():
        if _listing_digest(directory) != recorded:
            log.debug("cache: directory %s changed", directory)
            return False
    return True


def merge_reads(*all_reads: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]] | None:
    """The union of several records; None when two disagree about one path."""
    out: dict[str, dict[str, Any]] = {"files": {}, "dirs": {}}
    for reads in all_reads:
        for kind in ("files", "dirs"):
            for key, value in reads[kind].items():
                if key in out[kind] and out[kind][key] != value:
                    return None
                out[kind][key] = value
    return out


# -- findings as JSON ------------------------------------------------------------------------------
def _fix_to_json(fix: Fix) -> dict:
    return {
        "title": fix.title,
        "applicability": fix.applicability.value,
        "kind": fix.kind,
        "edits": [dataclasses.astuple(e) for e in fix.edits],
    }


def _fix_from_json(data: dict) -> Fix:
    edits = [TextEdit(int(a), int(b), int(c), int(d), str(t)) for a, b, c, d, t in data["edits"]]
    return Fix(str(data["title"]), Applicability(data["applicability"]), edits, str(data["kind"]))


def finding_to_json(finding: Finding) -> dict:
    return {
        "code": finding.code,
        "name": finding.name,
        "severity": finding.severity.value,
        "message": finding.message,
        "position": [finding.line, finding.column, finding.end_line, finding.end_column],
        "path": finding.path,
        "fix": _fix_to_json(finding.fix) if finding.fix is not None else None,
        "alternatives": [_fix_to_json(f) for f in finding.alternatives],
        "tags": list(finding.tags),
        "source": finding.source,
        "detail": finding.detail,
        "cell": finding.cell,
    }


def finding_from_json(data: dict) -> Finding:
    line, column, end_line, end_column = (int(v) for v in data["position"])
    cell = data["cell"]
    return Finding(
        code=str(data["code"]),
        name=str(data["name"]),
        severity=Severity(data["severity"]),
        message=str(data["message"]),
        line=line,
        column=column,
        end_line=end_line,
        end_column=end_column,
        path=str(data["path"]),
        fix=_fix_from_json(data["fix"]) if data["fix"] is not None else None,
        alternatives=[_fix_from_json(f) for f in data["alternatives"]],
        tags=tuple(str(t) for t in data["tags"]),
        source=str(data["source"]),
        detail=str(data["detail"]),
        cell=None if cell is None else int(cell),
    )


# -- the cache -------------------------------------------------------------------------------------
def _atomic_write(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def default_cache_dir(config_path: Path | None) -> Path:
    """`.gradguard_cache` beside the pyproject.toml the settings came from, else in the
    current directory (the project root, as ruff has it)."""
    base = config_path.parent if config_path is not None else Path.cwd()
    return base / CACHE_DIR_NAME


class ResultCache:
    """One run's view of the cache: `get` before checking a file, `put` after, `close` at the end."""

    def __init__(self, root: Path, context: str) -> None:
        self.root = root
        self.context = context
        self.directory = root / f"v{FORMAT}" / context
        self.token = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}"  # sorts by time
        self.valid_tokens: set[str] = set()
        self.loaded_reads: dict[str, dict[str, Any]] = {"files": {}, "dirs": {}}
        self.written = 0
        self.hits = 0
        self.misses = 0
        self._load_manifest()

    @classmethod
    def open(cls, root: Path, context: str) -> ResultCache | None:
        """The cache under `root`, or None when it cannot be created (read-only...)."""
        try:
            root.mkdir(parents=True, exist_ok=True)
            tag = root / "CACHEDIR.TAG"
            if not tag.exists():
                _atomic_write(tag, _CACHEDIR_TAG)
            ignore = root / ".gitignore"
            if not ignore.exists():
                _atomic_write(ignore, "# Automatically created by gradguard.\n*\n")
            return cls(root, context)
        except OSError as exc:
            log.debug("cache: %s unusable (%s); checking without a cache", root, exc)
            return None

    # -- the manifest
    def _read_manifest(self) -> tuple[set[str], dict[str, dict[str, Any]]] | None:
        try:
            data = json.loads((self.directory / "manifest.json").read_text(encoding="utf-8"))
            if data.get("format") != FORMAT or data.get("context") != self.context:
                raise ValueError("a foreign manifest")
            tokens = {str(t) for t in data["tokens"]}
            reads = {"files": dict(data["reads"]["files"]), "dirs": dict(data["reads"]["dirs"])}
            return tokens, reads
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.debug("cache: %s/manifest.json ignored (%s)", self.directory, exc)
            return None

    def _load_manifest(self) -> None:
        found = self._read_manifest()
        if found is None:
            return
        tokens, reads = found
        if _reads_hold(reads):
            self.valid_tokens, self.loaded_reads = tokens, reads

    # -- entries
    def _entry_path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def key(self, path: str, digest: str) -> str:
        return _digest(self.context, path, os.path.realpath(path), digest)

    def get(self, key: str) -> list[Finding] | None:
        if not self.valid_tokens:
            self.misses += 1
            return None
        try:
            data = json.loads(self._entry_path(key).read_text(encoding="utf-8"))
            if data.get("format") != FORMAT or data.get("key") != key:
                raise ValueError("a foreign entry")
            if data.get("token") not in self.valid_tokens:
                raise ValueError("written by a run whose reads are not on record")
            findings = [finding_from_json(item) for item in data["findings"]]
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.debug("cache: entry %s ignored (%s)", key, exc)
            self.misses += 1
            return None
        self.hits += 1
        return findings

    def put(self, key: str, findings: list[Finding]) -> None:
        data = {
            "format": FORMAT,
            "key": key,
            "token": self.token,
            "findings": [finding_to_json(f) for f in findings],
        }
        try:
            _atomic_write(self._entry_path(key), json.dumps(data, separators=(",", ":")))
            self.written += 1
        except OSError as exc:
            log.debug("cache: cannot write entry %s (%s)", key, exc)

    def close(self, reads: dict[str, dict[str, Any]]) -> None:
        """Record this run's reads and token (when it wrote entries); drop old contexts."""
        try:
            if self.written:
                self._write_manifest(reads)
            if self.directory.exists():
                os.utime(self.directory)  # recently used: kept by _prune
            self._prune()
        except OSError as exc:
            log.debug("cache: cannot update %s (%s)", self.directory, exc)

    def _write_manifest(self, reads: dict[str, dict[str, Any]]) -> None:
        own = merge_reads(self.loaded_reads, reads)
        if own is None:  # something this run read changed while it ran: record nothing
            return
        tokens = set(self.valid_tokens) | {self.token}
        on_disk = self._read_manifest()
        # another run's record (written since this run started): kept when it still holds and
        # agrees with ours; a record that no longer holds is dropped with its tokens
        if on_disk is not None and (on_disk[1] == self.loaded_reads or _reads_hold(on_disk[1])):
            merged = merge_reads(on_disk[1], own)
            if merged is not None:
                own, tokens = merged, tokens | on_disk[0]
        kept = sorted(tokens)[-MAX_TOKENS:]  # the newest (tokens start with the time)
        if self.token not in kept:
            kept = [*kept[1:], self.token]
        data = {"format": FORMAT, "context": self.context, "tokens": kept, "reads": own}
        _atomic_write(self.directory / "manifest.json", json.dumps(data, separators=(",", ":")))

    def _prune(self) -> None:
        parent = self.root / f"v{FORMAT}"
        try:
            contexts = [p for p in parent.iterdir() if p.is_dir()]
        except OSError:
            return
        if len(contexts) <= MAX_CONTEXTS:
            return

        def age(p: Path) -> float:
            try:
                return p.stat().st_mtime
            except OSError:
                return 0.0

        contexts.sort(key=age)
        for old in contexts[: len(contexts) - MAX_CONTEXTS]:
            if old != self.directory:
                shutil.rmtree(old, ignore_errors=True)
