"""The language server's project index of its workspace folders, and workspace diagnostics.

`WorkspaceIndex` keeps one `ProjectIndex` (engine/project.py) of the workspace folders,
whose names are resolved through the `sys.path` of the interpreter the client configured
(initialization option `interpreter`, asked once in a subprocess with a timeout) or the
server's own. The index is built in a background thread and never delays a keystroke's
diagnostics: the thread steps aside while an analysis waits or runs, and until it is
done files are checked with a first, empty index that reads what a file imports from
disk on demand. The finished index is swapped in on the engine thread, with the open
documents' texts laid over it.

The index is not thread-safe: only the engine thread (`GradguardServer._engine`) touches
the live one; the builder works on its own new index until the swap.

- An edited document's summary replaces its file's (`ProjectIndex.update` with the tree
  the analyzer parsed, right after its check); when a fact other files rest on changed,
  the open files that depend on it are checked again (and those it depends on, when its
  explicit `x.backward(grad)` calls or its default dtype changed: those facts flow to the
  files a file imports). When the finished index is swapped in, the open files whose
  cross-file facts (`FileResolver.signature`) differ from the first index's are checked
  again. Files created, changed or deleted on disk come through
  `workspace/didChangeWatchedFiles` (`WATCH_GLOBS`, which the server registers with its
  pyproject.toml watcher).
- `diagnosticMode: workspace` (per workspace folder): every Python file and notebook of
  the folder (`exclude` of `[tool.gradguard]` and `.gitignore` honoured, as by
  `gradguard check`) is checked in the background at start, in worker processes when
  there are many, with `$/progress` ("gradguard: checking 312 files"); files changed on
  disk, and the files depending on them, are checked again; closing a file keeps its
  diagnostics. A closed notebook's findings are published on the `.ipynb` file, on the
  line of the notebook's JSON that holds the cell's source line, with "cell N, line M" in
  front of the message.

This module never imports torch.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import multiprocessing
import os
import pickle
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from gradguard.engine.analyzer import Analyzer, parse
from gradguard.engine.config import Config
from gradguard.engine.files import UnreadableFile, collect_files, collected, matches, read_source
from gradguard.engine.project import ProjectIndex, default_search_paths, package_root
from gradguard.engine.source import split_lines
from gradguard.lsp.documents import TextDoc, _cell_python, content_of, uri_to_path
from gradguard.lsp.settings import ProjectConfigs, Settings, effective_config, excluded_by_setting

if TYPE_CHECKING:
    from collections.abc import Callable

    from gradguard.lsp.server import GradguardServer, Snapshot

log = logging.getLogger("gradguard.lsp.workspace")

WORKSPACE = "workspace"
SUFFIXES = (".py", ".ipynb")
WATCH_GLOBS = ["**/*.py", "**/*.ipynb"]
SYS_PATH_SCRIPT = "import sys, json; print(json.dumps(sys.path))"
SYS_PATH_TIMEOUT = 10.0
MAX_CHARS = 3_000_000  # as the server: larger files are not checked
# Fewer files than this are checked on the engine thread, one at a time between the
# keystrokes' analyses; more in worker processes (starting them costs about a second).
POOL_MIN_FILES = int(os.environ.get("GRADGUARD_WORKSPACE_POOL_MIN", "200"))
CHUNK = 4  # files per worker task (few in flight: exiting waits for those)
PROGRESS_EVERY = 0.2  # seconds between $/progress reports


@dataclass(frozen=True)
class Folder:
    uri: str
    path: str  # as the client names it (not resolved): diagnostics go to URIs under it
    mode: str  # diagnosticMode
    enabled: bool


# -- helpers usable in worker processes ---------------------------------------------------------
def notebook_program(text: str) -> tuple[str, list[tuple[int, int, int, list[str]]]]:
    """A notebook file's code cells as one program, as the server combines an open notebook's
    cells, and where each cell is: (cell index, first line, line count, the cell's lines)."""
    data = json.loads(text)
    parts: list[str] = []
    spans: list[tuple[int, int, int, list[str]]] = []
    line = 0
    for index, cell in enumerate(data.get("cells", ()) if isinstance(data, dict) else ()):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str):
            continue
        code = _cell_python(source)
        if code and not code.endswith(("\n", "\r")):
            code += "\n"
        lines = split_lines(code)
        spans.append((index, line, len(lines), split_lines(source)))
        parts.append(code)
        line += len(lines)
    return "".join(parts), spans


def _json_line_of(raw_lines: list[str], cell: int, source_line: str) -> tuple[int, int, int]:
    """(line, start, end) of a cell's source line in the notebook's JSON text (0-based,
    code points); (line of the cell's "source", 0, 0) when it cannot be told."""
    seen = -1
    start = end = 0
    for number, raw in enumerate(raw_lines):
        if '"cell_type"' in raw:
            seen += 1
            if seen == cell:
                start = number
            elif seen > cell:
                end = number
                break
    else:
        end = len(raw_lines)
    # the cell's "source" key (its outputs, which may hold the same text, come before it)
    source = next((n for n in range(start, end) if '"source":' in raw_lines[n]), start)
    needle = json.dumps(content_of(source_line))[1:-1]
    if needle.strip():
        for number in [*range(source, end), *range(start, source)]:
            column = raw_lines[number].find(needle)
            if column >= 0:
                return number, column, column + len(needle)
    return source, 0, 0


def check_closed_file(
    analyzer: Analyzer, path: str, uri: str, encoding: str, tags: bool, command_links: bool
) -> list[types.Diagnostic] | None:
    """Diagnostics of a file from disk (None when it cannot be read)."""
    from gradguard.lsp.server import finding_to_diagnostic

    try:
        text = read_source(Path(path))
    except UnreadableFile:
        return None
    if len(text) > MAX_CHARS:
        return []
    config = analyzer.config
    if not path.endswith(".ipynb"):
        findings = analyzer.check(text, path).findings
        doc = TextDoc(uri, text, None)
        return [finding_to_diagnostic(f, doc, encoding, tags, config, command_links) for f in findings]
    try:
        program, spans = notebook_program(text)
    except (ValueError, AttributeError, TypeError):
        return []
    if not program.strip():
        return []
    findings = analyzer.check(program, path).findings
    raw_lines = [content_of(line) for line in split_lines(text)]
    raw_doc = TextDoc(uri, text, None)
    out = []
    for finding in findings:
        span = next((s for s in spans if s[1] <= finding.line - 1 < s[1] + max(s[2], 1)), None)
        if span is None:
            continue
        cell, first, _, cell_lines = span
        local = finding.line - 1 - first
        source_line = cell_lines[local] if local < len(cell_lines) else ""
        line, start, end = _json_line_of(raw_lines, cell, source_line)
        moved = replace(
            finding,
            message=f"cell {cell + 1}, line {local + 1}: {finding.message}",
            line=line + 1,
            column=start + 1,
            end_line=line + 1,
            end_column=end + 1,
            fix=None,
            alternatives=[],
        )
        out.append(finding_to_diagnostic(moved, raw_doc, encoding, tags, config, command_links))
    return out


# worker processes of the workspace check
_worker: dict[str, Any] = {}


def _worker_init(blob: bytes, configs: dict[int, Config], encoding: str, tags: bool, links: bool) -> None:
    """Never raises (a pool would start failing workers forever): `_worker_check` reports it."""
    try:
        os.nice(10)  # the editor's own analyses come first
    except (AttributeError, OSError):
        pass
    try:
        gc.disable()
        index = pickle.loads(blob)
        gc.enable()
        gc.freeze()
    except Exception as exc:  # noqa: BLE001
        _worker["error"] = f"{type(exc).__name__}: {exc}"
        return
    _worker.update(index=index, configs=configs, encoding=encoding, tags=tags, links=links, analyzers={})


def _worker_check(items: list[tuple[str, str, int]]) -> list[tuple[str, str, list | None]]:
    if "error" in _worker:
        raise RuntimeError(f"worker could not start: {_worker['error']}")
    out = []
    for path, uri, config_id in items:
        analyzer = _worker["analyzers"].get(config_id)
        if analyzer is None:
            config = _worker["configs"][config_id]
            analyzer = _worker["analyzers"][config_id] = Analyzer(
                config, cache_size=64, project=_worker["index"]
            )
        try:
            diags = check_closed_file(
                analyzer, path, uri, _worker["encoding"], _worker["tags"], _worker["links"]
            )
        except Exception:
            log.exception("checking %s failed", path)
            diags = None
        out.append((path, uri, diags))
    return out


def interpreter_search_paths(command: list[str], timeout: float = SYS_PATH_TIMEOUT) -> list[str] | None:
    """The `sys.path` of an interpreter (its existing directories, without the server's own
    code); None when it cannot be run in time."""
    env = dict(os.environ)
    own = _own_code_dir()
    if env.get("PYTHONPATH"):
        kept = [p for p in env["PYTHONPATH"].split(os.pathsep) if p and os.path.abspath(p) != own]
        if kept:
            env["PYTHONPATH"] = os.pathsep.join(kept)
        else:
            env.pop("PYTHONPATH")
    try:
        out = subprocess.run(
            [*command, "-c", SYS_PATH_SCRIPT],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=os.path.dirname(own) or None,
            stdin=subprocess.DEVNULL,
        )
        paths = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None
    if not isinstance(paths, list):
        return None
    return _clean_paths(p for p in paths if isinstance(p, str))


def _own_code_dir() -> str:
    """The directory the running gradguard package was imported from."""
    import gradguard

    return os.path.dirname(os.path.dirname(os.path.abspath(gradguard.__file__)))


def _clean_paths(paths) -> list[str]:
    own = _own_code_dir()
    out: list[str] = []
    for entry in paths:
        if not entry:
            continue  # the current directory of `-c`
        entry = os.path.abspath(entry)
        if entry != own and entry not in out and os.path.isdir(entry):
            out.append(entry)
    return out


def fallback_search_paths() -> list[str]:
    """The server's own `sys.path`, without the directory of its own code (the bundled
    libraries of the VS Code extension, or the source tree it runs from)."""
    return _clean_paths(default_search_paths())


class _BuildConfigs(ProjectConfigs):
    """`ProjectConfigs` for one build or workspace check: the pyproject.toml files as they are
    when it starts, each read once. `ProjectConfigs` reads the nearest one afresh for each
    directory (three TOML parses, and its cache lasts 2 s): on a 5,000-file workspace under a
    pyproject.toml with `[tool.gradguard]`, that was ~3,000 parses, most of the index's time.
    Same answers: the nearest pyproject.toml at or above the directory (symlinks resolved)
    whose `tool` table has `gradguard`."""

    def __init__(self) -> None:
        super().__init__()
        self._nearest: dict[str, str | None] = {}  # resolved directory -> its pyproject.toml
        self._tables: dict[str, bool] = {}  # pyproject.toml -> whether it has [tool.gradguard]
        self._loaded: dict[str, tuple[Config, str | None]] = {}  # pyproject.toml -> its config
        self._real: dict[str, str] = {}  # directory -> resolved

    def config_for(self, directory: str | None) -> Config:
        if not directory:
            return Config()
        cached = self._cache.get(directory)
        if cached is not None:
            return cached[1]
        config, origin = Config(), None
        if os.path.isdir(directory):
            found = self._nearest_of(self._resolved(directory))
            if found is not None:
                config, origin = self._load(found)
        self._cache[directory] = (0.0, config, origin)
        return config

    def is_excluded(self, path: str) -> bool:
        """As `ProjectConfigs.is_excluded`, with each directory resolved once (not each file)."""
        if not os.path.isabs(path):
            return False
        directory = os.path.dirname(path)
        config = self.config_for(directory)
        origin = self._cache[directory][2]
        if not config.exclude or not origin:
            return False
        if os.path.islink(path):
            real = str(Path(path).resolve())
        else:
            real = os.path.join(self._resolved(directory), os.path.basename(path))
        base = self._resolved(os.path.dirname(origin)) if not os.path.islink(origin) else None
        if base is None:
            base = str(Path(origin).resolve().parent)
        prefix = base.rstrip(os.sep) + os.sep
        if not real.startswith(prefix):
            return False
        parts = real[len(prefix) :].split(os.sep)
        patterns = list(config.exclude)
        return any(matches("/".join(parts[: i + 1]), parts[i], patterns) for i in range(len(parts)))

    def _resolved(self, directory: str) -> str:
        real = self._real.get(directory)
        if real is None:
            real = self._real[directory] = str(Path(directory).resolve())
        return real

    def _nearest_of(self, directory: str) -> str | None:
        found = self._nearest.get(directory, "")
        if found != "":
            return found
        candidate = os.path.join(directory, "pyproject.toml")
        parent = os.path.dirname(directory)
        if self._has_table(candidate):
            found = candidate
        elif parent != directory:
            found = self._nearest_of(parent)
        else:
            found = None
        self._nearest[directory] = found
        return found

    def _has_table(self, candidate: str) -> bool:
        has = self._tables.get(candidate)
        if has is None:
            from gradguard.engine.config import tomllib

            has = False
            if os.path.isfile(candidate):  # as find_pyproject reads each candidate
                try:
                    with open(candidate, encoding="utf-8") as handle:
                        tool = tomllib.loads(handle.read()).get("tool")
                    has = isinstance(tool, dict) and "gradguard" in tool
                except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                    log.warning("%s: cannot read: %s", candidate, exc)
            self._tables[candidate] = has
        return has

    def _load(self, pyproject: str) -> tuple[Config, str | None]:
        loaded = self._loaded.get(pyproject)
        if loaded is None:
            from gradguard.engine.config import ConfigError, load_config_file

            try:
                loaded = (load_config_file(Path(pyproject)), pyproject)
            except (ConfigError, OSError, ValueError) as exc:
                self.problems.append(f"pyproject.toml [tool.gradguard]: {exc}; using defaults")
                loaded = (Config(), None)
            self._loaded[pyproject] = loaded
        return loaded


class _Progress:
    """One `window/workDoneProgress` (created, begun, reported, ended from the loop thread;
    reports before the client answered the create request are folded into the begin)."""

    def __init__(self, ls: GradguardServer, token: str, title: str) -> None:
        self.ls = ls
        self.token = token
        self.title = title
        self.state = "new"  # new -> creating -> open -> ended
        self.message: str | None = None
        self.percentage: int | None = None
        self.ended: str | None = None

    def start(self) -> None:
        if not self.ls._capability("window.work_done_progress"):
            self.state = "off"
            return
        self.state = "creating"
        asyncio.ensure_future(self._create())

    async def _create(self) -> None:
        try:
            await asyncio.wait_for(self.ls.work_done_progress.create_async(self.token), timeout=10)
        except Exception as exc:  # noqa: BLE001 - the client may refuse: no progress then
            log.info("progress not created: %s", exc)
            self.state = "off"
            return
        self.state = "open"
        self.ls.work_done_progress.begin(
            self.token,
            types.WorkDoneProgressBegin(
                title=self.title, message=self.message, percentage=self.percentage or 0, cancellable=False
            ),
        )
        if self.ended is not None:
            self.end(self.ended)

    def report(self, message: str, percentage: int) -> None:
        self.message, self.percentage = message, percentage
        if self.state == "open":
            self.ls.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def end(self, message: str) -> None:
        if self.state == "creating":
            self.ended = message
        elif self.state == "open":
            self.state = "ended"
            self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))


@dataclass
class _Build:
    generation: int
    folders: tuple[Folder, ...]
    files: list[tuple[str, Folder]]  # collected, as the client names them
    checks: list[tuple[str, Config]]  # workspace-mode files to check, with their config
    index: ProjectIndex | None = None
    blob: bytes | None = None
    seconds: float = 0.0


class WorkspaceIndex:
    def __init__(self, ls: GradguardServer) -> None:
        self.ls = ls
        self.interpreter: list[str] | None = None  # initialization option `interpreter`
        self.generation = 0
        self.ready = False
        # analyses waiting for or running on the engine thread: the builder steps aside
        self.foreground = 0
        self._index: ProjectIndex | None = None  # the live index: engine thread only
        self._pending_disk: set[str] = set()  # engine thread: changed on disk during a build
        # engine thread: the latest text (and tree) of each buffer whose summary is to be
        # updated; one job drains them all, so a burst of opens costs one graph, not one each
        self._buffers: dict[str, tuple[str, Any]] = {}
        self._rereads: set[str] = set()  # loop thread: closed files to read from disk again
        self._building = False  # a build is in flight (set on the loop thread, read on the engine's)
        self._closed_analyzers: dict[str, Analyzer] = {}  # engine thread
        self._search_paths: list[str] | None = None
        self._key: tuple | None = None
        self._folders: tuple[Folder, ...] = ()
        self._files: dict[str, str] = {}  # the collected files: real path -> path as the client names it
        # workspace diagnostics of files not open: real path -> (uri, diagnostics)
        self.closed: dict[str, tuple[str, list[types.Diagnostic]]] = {}
        self._bulk: asyncio.Task | None = None
        self._recheck: dict[str, None] = {}  # real paths of closed files to check again
        self._drain: asyncio.Task | None = None
        self.timings: dict[str, float] = {}

    # -- the live index (engine thread) ---------------------------------------------------------
    @property
    def index(self) -> ProjectIndex:
        if self._index is None:
            roots = [package_root(f.path) for f in self._current_folders() if os.path.isdir(f.path)]
            self._index = ProjectIndex(roots, fallback_search_paths())
        return self._index

    def buffer_changed(self, snap: Snapshot, tree) -> None:
        """Engine thread, a document parsed for its check: its text is to replace its file's
        summary. That runs as the engine's next job, after the check, so that the document's
        own diagnostics never wait for it (its own check does not need it)."""
        if not os.path.isabs(snap.path) or not self._in_folders(snap.path):
            return
        index = self.index
        if index.file(snap.path) is None:
            # new to the index (a buffer never saved): its summary goes in before its first
            # check, or the check after it would find the file's signature changed and
            # re-check every unit of it (seconds on a large file); the summary is cheap
            try:
                if index.update(snap.path, snap.text, tree):
                    self.ls._engine.submit(self._new_buffer_added, snap.path)
            except RuntimeError:  # shutting down
                pass
            except Exception:
                log.exception("adding %s to the project index failed", snap.path)
            return
        first = not self._buffers
        self._buffers[snap.path] = (snap.text, tree)
        if not first:
            return  # the job already queued takes this text too
        try:
            self.ls._engine.submit(self._update_buffers)
        except RuntimeError:  # shutting down
            self._buffers.clear()

    def _new_buffer_added(self, path: str) -> None:
        """Engine thread: files that imported a module that did not exist may now resolve."""
        self._recheck_dependents([(path, None)])

    def _update_buffers(self) -> None:
        """Engine thread: when a fact other files may rest on changed, the open files that
        depend on it are checked again."""
        pending, self._buffers = self._buffers, {}
        index = self.index
        changed = []
        try:
            for path, (text, tree) in pending.items():
                old = index.file(path)
                if index.update(path, text, tree):
                    changed.append((path, old))
        except Exception:
            log.exception("updating the project index for %d buffer(s) failed", len(pending))
            return
        del pending  # the trees go now, not after the dependents are found
        self._recheck_dependents(changed)

    def _recheck_dependents(self, changed: list[tuple[str, Any]]) -> None:
        """Engine thread: check again the files that rest on the changed summaries ((path, its
        summary before) pairs): the open ones, and in workspace mode the closed ones too (their
        workspace diagnostics then rest on the edited buffer's text, as the open ones' do)."""
        affected: set[str] = set()
        try:
            for path, old in changed:
                affected |= self._affected(self.index, path, old)
        except Exception:
            log.exception("finding the files that rest on %d changed file(s) failed", len(changed))
            return
        if affected:
            self._call_soon(self._after_disk_change, affected)

    @staticmethod
    def _affected(index: ProjectIndex, path: str, old) -> set[str]:
        """The files whose findings may change when `path`'s summary changed from `old`."""
        affected = set(index.dependents(path))
        new = index.file(path)
        if new is not None and (
            old is None
            or old.summary.backward_calls != new.summary.backward_calls
            or old.summary.sets_default_dtype != new.summary.sets_default_dtype
        ):
            affected |= index.dependencies(path)
        before = old.summary if old is not None else None
        after = new.summary if new is not None else None
        if before is None or after is None or not before.same_grad_calls(after):
            # the grad mode of calls to another file's functions (grad_callers)
            affected |= index.grad_call_dependents(before, after)
            # a file that is not there adds nothing to whether the project is inference-only
            mode_before = (before.may_train, before.forward_grad_off) if before else (False, False)
            mode_after = (after.may_train, after.forward_grad_off) if after else (False, False)
            if mode_before != mode_after and index.inference_only() != index.inference_only_with(
                path, before
            ):
                affected |= set(index.files)  # the project became, or stopped being, inference-only (rare)
        affected.discard(index.real_path(path))
        return affected

    def _call_soon(self, callback, *args) -> None:
        loop = self.ls._loop
        if loop is None:
            return
        if threading.get_ident() == self.ls._loop_thread:
            callback(*args)
        else:
            loop.call_soon_threadsafe(callback, *args)

    # -- folders and settings (loop thread) -------------------------------------------------------
    def _current_folders(self) -> tuple[Folder, ...]:
        ls = self.ls
        try:
            uris = [f.uri for f in ls.workspace.folders.values()]
            if not uris and ls.workspace.root_uri:
                uris = [ls.workspace.root_uri]
        except (RuntimeError, AttributeError):
            return ()
        out = []
        for uri in uris:
            path = uri_to_path(uri)
            if path == uri or not os.path.isabs(path):
                continue  # not a file: URI
            settings = ls.settings_for(uri)
            out.append(Folder(uri, os.path.normpath(path), settings.diagnostic_mode, settings.enable))
        return tuple(out)

    def _in_folders(self, path: str) -> bool:
        real = ProjectIndex.real_path(path)
        for folder in self._folders or self._current_folders():
            root = ProjectIndex.real_path(folder.path)
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                return True
        return False

    def _folder_of(self, path: str) -> Folder | None:
        best = None
        for folder in self._folders:
            inside = path == folder.path or path.startswith(folder.path.rstrip(os.sep) + os.sep)
            if inside and (best is None or len(folder.path) > len(best.path)):
                best = folder
        return best

    def excluded(self, path: str) -> bool:
        """Whether `gradguard.exclude` of the workspace folder holding `path` matches it."""
        if not os.path.isabs(path):
            return False
        path = os.path.normpath(path)
        best = None
        for folder in self._folders or self._current_folders():
            inside = path == folder.path or path.startswith(folder.path.rstrip(os.sep) + os.sep)
            if inside and (best is None or len(folder.path) > len(best.path)):
                best = folder
        if best is None:
            return False
        return excluded_by_setting(path, best.path, self.ls.settings_for(best.uri).exclude)

    def workspace_mode(self, folder: Folder | None) -> bool:
        return folder is not None and folder.enabled and folder.mode == WORKSPACE

    def _settings_key(self) -> tuple[tuple, tuple]:
        """(what the index rests on: the folders, what they exclude, the interpreter; what the
        workspace check rests on: each folder's mode and the settings that filter findings)."""
        indexed = []
        checked = []
        for folder in self._current_folders():
            s = self.ls.settings_for(folder.uri)
            indexed.append((folder.uri, folder.path, s.exclude))
            checked.append(
                (
                    folder.uri,
                    folder.mode,
                    folder.enabled,
                    s.select,
                    s.ignore,
                    s.severity,
                    s.show_syntax_errors,
                )
            )
        return (tuple(indexed), tuple(self.interpreter or ())), tuple(checked)

    # -- lifecycle (loop thread) ----------------------------------------------------------------
    async def start(self) -> None:
        """After `initialized` (the server asks to be told about `WATCH_GLOBS` with its
        pyproject.toml watcher): build the index."""
        self.restart("start")

    def configuration_changed(self, force: bool = False) -> None:
        """Settings, workspace folders or a pyproject.toml changed. Only what the change affects
        is done again: the folders, `exclude` or the interpreter, or a folder entering workspace
        mode -> the index is built again (and the workspace checked again); a folder's
        diagnosticMode, enable, select, ignore, severity
        or showSyntaxErrors -> the workspace-mode files are checked again with the index as it is
        (a folder leaving workspace mode loses its closed files' diagnostics at once); anything
        else (debounceMs, the probe, inlay hints) -> nothing here. While the index is still
        being built, any such change starts it again (it read the settings when it started)."""
        if self._key is None:
            return  # not started yet: `start` reads the settings
        key = self._settings_key()
        if force or key[0] != self._key[0] or (key != self._key and (self._building or not self.ready)):
            self.restart("configuration changed")
        elif _entered_workspace_mode(self._key[1], key[1]):
            # the disk is read afresh: files created while only open files were checked may
            # never have reached the index (a watcher event is not guaranteed for every file)
            self.restart("workspace mode")
        elif key[1] != self._key[1]:
            self._key = key
            asyncio.ensure_future(self._check_again("settings changed"))

    async def _check_again(self, reason: str) -> None:
        """The workspace-mode files checked again with the live index (no new index)."""
        generation, folders, settings = self._start_over()
        todo = []
        for path in sorted(self._files.values()):
            folder = self._folder_of(path)
            if folder is not None and self.workspace_mode(folder) and os.path.exists(path):
                todo.append((path, folder))
        log.info("checking %d workspace files again (%s), with the same index", len(todo), reason)
        loop = asyncio.get_running_loop()

        def configs_of() -> list[tuple[str, Config]]:
            configs = _BuildConfigs()  # the pyproject.toml files read afresh, as by a build
            return [
                (path, effective_config(configs.config_for(os.path.dirname(path)), settings[folder.uri]))
                for path, folder in todo
            ]

        checks = await loop.run_in_executor(None, configs_of)
        if generation != self.generation:
            return
        build = _Build(generation, folders, [], checks)
        if len(checks) >= POOL_MIN_FILES:
            # the live index is the engine thread's: it pickles it (once, between analyses)
            build.blob = await self.ls.in_engine(pickle.dumps, self.index, pickle.HIGHEST_PROTOCOL)
            if generation != self.generation:
                return
        if checks:
            self._bulk = asyncio.ensure_future(self._check_workspace(build))

    def _start_over(self) -> tuple[int, tuple[Folder, ...], dict[str, Settings]]:
        """A new generation (a build or check under way stops): the current folders, the
        workspace diagnostics of folders no longer in workspace mode gone at once, and each
        folder's settings. Returns (generation, folders, settings by folder uri)."""
        self.generation += 1
        generation = self.generation
        folders = self._current_folders()
        self._folders = folders
        if self._bulk is not None:
            self._bulk.cancel()
            self._bulk = None
        for real in list(self.closed):
            path = self._files.get(real)
            if path is None or not self.workspace_mode(self._folder_of(path)):
                self._clear_closed(real)
        return generation, folders, {f.uri: self.ls.settings_for(f.uri) for f in folders}

    def restart(self, reason: str) -> None:
        self._building = True
        self._key = self._settings_key()
        generation, folders, settings = self._start_over()
        log.info("building the project index (%s): %d folder(s)", reason, len(folders))
        thread = threading.Thread(
            target=self._build,
            args=(generation, folders, settings),
            name=f"gradguard-index-{generation}",
            daemon=True,
        )
        thread.start()

    # -- the background build (builder thread) --------------------------------------------------
    def _build(self, generation: int, folders: tuple[Folder, ...], settings: dict) -> None:
        started = time.perf_counter()
        paused = gc.isenabled()
        progress: _Progress | None = None
        try:
            self._ensure_search_paths()

            def step_aside() -> None:
                while self.foreground > 0 and generation == self.generation:
                    time.sleep(0.002)  # an analysis is waiting: it goes first

            configs = _BuildConfigs()
            files = self._build_files(folders, settings, configs, step_aside)
            if generation != self.generation:
                return
            roots = [package_root(f.path) for f in folders if os.path.isdir(f.path)]
            index = ProjectIndex(roots, self._search_paths)
            progress = self._progress(
                f"gradguard-index-{generation}", f"gradguard: indexing {len(files)} files"
            )
            if paused:
                gc.disable()  # hundreds of thousands of long-lived objects: nothing to collect
            if not self._index_files(generation, files, index, progress, step_aside):
                return
            index.graph()
            checks = self._build_checks(files, settings, configs)
            build = _Build(generation, folders, files, checks, index)
            if len(checks) >= POOL_MIN_FILES:
                build.blob = pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL)
            build.seconds = time.perf_counter() - started
            self.timings["index_seconds"] = build.seconds
            self._call_soon(progress.end, f"indexed {len(files)} files in {build.seconds:.1f} s")
            log.info("indexed %d files in %.1f s", len(files), build.seconds)
            self._call_soon(self._built, build)
        except Exception:
            log.exception("building the project index failed")
            self._log("gradguard: building the project index failed; see the server log")
            if progress is not None:
                self._call_soon(progress.end, "failed")
        finally:
            if paused:
                gc.enable()

    def _ensure_search_paths(self) -> None:
        """The interpreter's sys.path (read once), or the server's own when it cannot be read."""
        if self._search_paths is not None:
            return
        found = interpreter_search_paths(self.interpreter) if self.interpreter else None
        if self.interpreter and found is None:
            self._log(
                f"gradguard: could not read sys.path of {' '.join(self.interpreter)}; "
                "installed packages are looked up in the server's own"
            )
        self._search_paths = found if found is not None else fallback_search_paths()

    def _build_files(
        self,
        folders: tuple[Folder, ...],
        settings: dict,
        configs: _BuildConfigs,
        step_aside: Callable[[], None],
    ) -> list[tuple[str, Folder]]:
        """The workspace's source files, each once (by real path), with its folder."""
        files: list[tuple[str, Folder]] = []
        seen: set[str] = set()
        for folder in folders:
            if not os.path.isdir(folder.path):
                continue
            exclude = _folder_exclude(folder.path) + settings[folder.uri].exclude
            walk = collect_files([folder.path], exclude, suffixes=SUFFIXES, each_directory=step_aside)
            for file in walk.files:
                path = str(file)
                real = ProjectIndex.real_path(path)
                if real in seen or configs.is_excluded(path):
                    continue
                seen.add(real)
                files.append((path, folder))
        return files

    def _index_files(
        self,
        generation: int,
        files: list[tuple[str, Folder]],
        index: ProjectIndex,
        progress: _Progress,
        step_aside: Callable[[], None],
    ) -> bool:
        """Add every file to the index, reporting progress; False when a newer build cancelled this one."""
        last = time.perf_counter()
        for done, (path, _) in enumerate(files):
            if generation != self.generation:
                self._call_soon(progress.end, "cancelled")
                return False
            step_aside()
            index.add_file(path)
            now = time.perf_counter()
            if now - last > PROGRESS_EVERY:
                last = now
                self._call_soon(
                    progress.report, f"{done}/{len(files)} files", done * 100 // max(1, len(files))
                )
        return True

    def _build_checks(
        self, files: list[tuple[str, Folder]], settings: dict, configs: _BuildConfigs
    ) -> list[tuple[str, Config]]:
        """The files checked in workspace mode, each with its effective configuration."""
        checks: list[tuple[str, Config]] = []
        for path, folder in files:
            if self.workspace_mode(folder):
                config = effective_config(configs.config_for(os.path.dirname(path)), settings[folder.uri])
                checks.append((path, config))
        return checks

    def _log(self, message: str) -> None:
        self._call_soon(self.ls.log_to_client, message, types.MessageType.Warning)

    def _progress(self, token: str, title: str) -> _Progress:
        progress = _Progress(self.ls, token, title)
        self._call_soon(progress.start)
        return progress

    # -- the swap (loop thread, then engine thread) ----------------------------------------------
    def _built(self, build: _Build) -> None:
        if build.generation != self.generation:
            return
        buffers = []
        for key in self._open_keys():
            snap = self.ls._snapshot(key)
            if snap is not None and os.path.isabs(snap.path):
                buffers.append((snap.path, snap.text))
        asyncio.ensure_future(self._swap(build, buffers))

    async def _swap(self, build: _Build, buffers: list[tuple[str, str]]) -> None:
        changed = await self.ls.in_engine(self._swap_sync, build, buffers)
        if build.generation != self.generation:
            return
        self._files = {ProjectIndex.real_path(path): path for path, _ in build.files}
        self.ready = True
        self._recheck_open(changed)  # with what the whole workspace says
        if build.checks:
            self._bulk = asyncio.ensure_future(self._check_workspace(build))
        # workspace diagnostics of files that are gone or no longer checked
        checked = {ProjectIndex.real_path(p) for p, _ in build.checks}
        for real in list(self.closed):
            if real not in checked:
                self._clear_closed(real)

    def _swap_sync(self, build: _Build, buffers: list[tuple[str, str]]) -> set[str]:
        """Engine thread: the new index, with the open documents' texts, becomes the live
        one; returns the open files to check again."""
        if build.generation != self.generation or build.index is None:
            return set()
        index = build.index
        opened = set()
        for path, text in buffers:
            opened.add(index.real_path(path))
            if not self._in_folders(path):
                continue
            try:
                tree = parse(text, path)
            except (SyntaxError, ValueError, MemoryError, RecursionError):
                tree = None
            if tree is not None or not path.endswith(".ipynb"):
                index.update(path, text, tree)
        for path in self._pending_disk:  # changed on disk while the index was built
            if index.real_path(path) not in opened:
                index.add_file(path)
        self._pending_disk.clear()
        self._building = False
        # the open files whose findings may rest on something the first index did not know
        previous = self._index
        same_paths = previous is not None and previous.search_paths == index.search_paths
        changed = set()
        for path, _ in buffers:
            if not same_paths or previous.for_file(path).signature != index.for_file(path).signature:
                changed.add(index.real_path(path))
        self._index = index
        for analyzer in list(self.ls._analyzers.values()) + list(self._closed_analyzers.values()):
            analyzer.project = index
        build.index = None  # the live one now: the loop thread lets go of it
        return changed

    # -- open documents (loop thread) -------------------------------------------------------------
    def _open_keys(self) -> list[str]:
        store = self.ls.store
        keys = [uri for uri, doc in store.docs.items() if doc.notebook is None]
        return keys + list(store.notebooks)

    def _open_by_path(self) -> dict[str, str]:
        out = {}
        for key in self._open_keys():
            path = uri_to_path(key)
            if os.path.isabs(path):
                out[ProjectIndex.real_path(path)] = key
        return out

    def _is_open_path(self, path: str) -> bool:
        return ProjectIndex.real_path(path) in self._open_by_path()

    def _recheck_open(self, paths: set[str]) -> None:
        """Check again the open documents among `paths` (real paths)."""
        opened = self._open_by_path()
        for real in paths:
            key = opened.get(real)
            if key is not None and self.ls.settings_for(key).enable and self.ls.analysable(key):
                self.ls.schedule(key, 0, recheck=True)

    def document_opened(self, uri: str) -> None:
        path = uri_to_path(uri)
        if not os.path.isabs(path):
            return
        real = ProjectIndex.real_path(path)
        entry = self.closed.pop(real, None)
        self._recheck.pop(real, None)
        if entry is not None and (entry[0] != uri or path.endswith(".ipynb")):
            self._publish_closed(entry[0], [])  # under another name (a notebook: its file)

    def document_closed(self, uri: str) -> bool:
        """A document or notebook was closed: its file is read from disk again. Returns whether
        its diagnostics stay (workspace mode: they are checked again from disk)."""
        path = uri_to_path(uri)
        if not os.path.isabs(path):
            return False
        real = ProjectIndex.real_path(path)
        if not self._rereads:
            asyncio.ensure_future(self._reread())  # runs after this turn: takes the others too
        self._rereads.add(path)
        named = self._files.get(real)
        keep = named is not None and self.workspace_mode(self._folder_of(named)) and self.ready
        if keep:
            self.ls.published.pop(uri, None)
            self._queue_recheck({real})
        return keep

    async def _reread(self) -> None:
        """The files of documents closed since the last call, read from disk again at once
        (closing a hundred editors re-reads a hundred files and builds the graph once)."""
        paths, self._rereads = sorted(self._rereads), set()
        if paths:
            affected = await self.ls.in_engine(self._disk_changed_sync, paths)
            self._after_disk_change(affected)

    # -- files changed on disk ---------------------------------------------------------------------
    def files_changed(self, changes: list[types.FileEvent]) -> None:
        """workspace/didChangeWatchedFiles (loop thread)."""
        if any(c.uri.endswith(("pyproject.toml", "/.gitignore")) for c in changes):
            self.configuration_changed(force=True)  # `exclude` or what .gitignore ignores may have changed
            return
        paths = []
        for change in changes:
            path = uri_to_path(change.uri)
            if not os.path.isabs(path) or not path.endswith(SUFFIXES) or not self._in_folders(path):
                continue
            if self._is_open_path(path):
                continue  # the editor's text wins over the disk's
            real = ProjectIndex.real_path(path)
            known = real in self._files
            if change.type != types.FileChangeType.Deleted and not known and not self._collected(path):
                continue  # excluded, ignored, or in a hidden folder
            paths.append(os.path.normpath(path))
            if change.type == types.FileChangeType.Deleted:
                self._files.pop(real, None)
                self._clear_closed(real)
            elif real not in self._files:
                self._files[real] = os.path.normpath(path)
        if paths:
            asyncio.ensure_future(self._disk_changed(paths))

    def _collected(self, path: str) -> bool:
        folder = self._folder_of(os.path.normpath(path))
        if folder is None:
            return False
        exclude = _folder_exclude(folder.path) + self.ls.settings_for(folder.uri).exclude
        if not collected(os.path.normpath(path), folder.path, exclude):
            return False
        return not self.ls.projects.is_excluded(path)

    async def _disk_changed(self, paths: list[str]) -> None:
        affected = await self.ls.in_engine(self._disk_changed_sync, paths)
        self._after_disk_change(affected)

    def _disk_changed_sync(self, paths: list[str]) -> set[str]:
        """Engine thread: re-read files from disk (a deleted one leaves the index); returns
        the real paths of the files whose findings may have changed."""
        index = self.index
        affected: set[str] = set()
        if self._building:
            self._pending_disk.update(paths)  # the index being built may have read them before
        # what rested on each file before, all found on one graph (each change drops it)
        olds = {path: index.file(path) for path in paths}
        before = {path: index.dependents(path) for path, old in olds.items() if old is not None}
        changed = []
        for path in paths:
            try:
                if index.add_file(path):  # a file that is gone is removed
                    changed.append(path)
            except Exception:
                log.exception("re-reading %s failed", path)
                continue
            affected.add(index.real_path(path))
        for path in changed:
            affected |= before.get(path, set()) | self._affected(index, path, olds[path])
        return affected

    def _after_disk_change(self, affected: set[str]) -> None:
        self._recheck_open(affected)
        closed = {
            real
            for real in affected
            if real in self._files
            and self.workspace_mode(self._folder_of(self._files[real]))
            and os.path.exists(real)
        }
        if closed and self.ready:
            self._queue_recheck(closed)

    # -- workspace diagnostics of closed files --------------------------------------------------------
    def _publish_closed(self, uri: str, diagnostics: list[types.Diagnostic]) -> None:
        self.ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics)
        )

    def _clear_closed(self, real: str) -> None:
        entry = self.closed.pop(real, None)
        if entry is not None and entry[1]:
            self._publish_closed(entry[0], [])

    def _store_closed(self, path: str, uri: str, diagnostics: list[types.Diagnostic] | None) -> None:
        real = ProjectIndex.real_path(path)
        if self._is_open_path(path):
            return
        if diagnostics is None:
            self._clear_closed(real)
            return
        old = self.closed.get(real)
        self.closed[real] = (uri, diagnostics)
        if diagnostics or (old is not None and old[1]):
            self._publish_closed(uri, diagnostics)

    def _client_options(self) -> tuple[str, bool, bool]:
        return self.ls.encoding, self.ls._tag_support(), self.ls.command_links

    async def _check_workspace(self, build: _Build) -> None:
        """The first check of every workspace-mode file that is not open."""
        opened = self._open_by_path()
        todo = [(p, c) for p, c in build.checks if ProjectIndex.real_path(p) not in opened]
        total = len(todo)
        progress = _Progress(
            self.ls, f"gradguard-check-{build.generation}", f"gradguard: checking {total} files"
        )
        progress.start()
        started = time.perf_counter()
        done = 0
        problems = 0
        files_with_problems = 0
        last = 0.0

        def account(diagnostics) -> None:
            nonlocal done, problems, files_with_problems, last
            done += 1
            if diagnostics:
                problems += len(diagnostics)
                files_with_problems += 1
            now = time.perf_counter()
            if now - last > PROGRESS_EVERY or done == total:
                last = now
                progress.report(f"{done}/{total} files", done * 100 // max(1, total))

        try:
            self.timings["workers"] = 0
            delivered: set[str] = set()
            if build.blob is not None and len(todo) >= POOL_MIN_FILES:
                try:
                    await self._check_in_workers(build, todo, account, delivered)
                    self.timings["workers"] = max(1, min(4, os.cpu_count() or 1))
                except (OSError, RuntimeError) as exc:
                    log.warning("worker processes failed (%s): checking the rest in the server", exc)
            if len(delivered) < len(todo):
                for path, config in todo:
                    if path in delivered:
                        continue
                    if build.generation != self.generation:
                        raise asyncio.CancelledError
                    diagnostics = await self._check_closed(path, config)
                    account(diagnostics)
            self.timings["check_seconds"] = time.perf_counter() - started
            self.timings["checked_files"] = total
            log.info("checked %d files in %.1f s", total, self.timings["check_seconds"])
            progress.end(
                f"checked {total} files in {self.timings['check_seconds']:.1f} s: "
                f"{problems} problems in {files_with_problems} files"
            )
        except asyncio.CancelledError:
            progress.end("cancelled")
            raise
        finally:
            if self._bulk is asyncio.current_task():
                self._bulk = None
            if self._recheck and self._drain is None:
                self._drain = asyncio.ensure_future(self._drain_rechecks())

    async def _check_in_workers(
        self, build: _Build, todo: list[tuple[str, Config]], account, delivered: set[str]
    ) -> None:
        ids: dict[str, int] = {}
        configs: dict[int, Config] = {}
        items = []
        for path, config in todo:
            key = repr(config)
            if key not in ids:
                ids[key] = len(ids)
                configs[ids[key]] = config
            items.append((path, Path(path).as_uri(), ids[key]))
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if context.get_start_method() == "forkserver":  # imported once, before the workers fork
            context.set_forkserver_preload(["gradguard.lsp.workspace", "gradguard.lsp.server"])
        jobs = max(1, min(4, os.cpu_count() or 1))
        log.info("checking %d files in %d worker processes", len(items), jobs)
        encoding, tags, links = self._client_options()
        loop = asyncio.get_running_loop()
        # multiprocessing's Pool: its workers are daemons, which the server's exit stops at
        # once (a ProcessPoolExecutor's would make it wait for the files they are on)
        pool = context.Pool(
            jobs, initializer=_worker_init, initargs=(build.blob, configs, encoding, tags, links)
        )
        build.blob = None
        results: asyncio.Queue = asyncio.Queue()

        def deliver(value) -> None:
            loop.call_soon_threadsafe(results.put_nowait, value)

        try:
            chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
            position = in_flight = 0
            while position < len(chunks) or in_flight:
                while position < len(chunks) and in_flight < jobs * 2:
                    pool.apply_async(
                        _worker_check, (chunks[position],), callback=deliver, error_callback=deliver
                    )
                    position += 1
                    in_flight += 1
                value = await results.get()
                in_flight -= 1
                if isinstance(value, BaseException):
                    raise RuntimeError(str(value)) from value  # noqa: TRY004 - a worker failed
                for path, uri, diagnostics in value:
                    delivered.add(path)
                    account(diagnostics)
                    if build.generation != self.generation:
                        continue
                    if ProjectIndex.real_path(path) in self._recheck:
                        continue  # changed since: checked again with the live index
                    self._store_closed(path, uri, diagnostics)
                if build.generation != self.generation:
                    raise asyncio.CancelledError
        except BaseException:
            # cancelled (a new build, or the server exits): the workers' results are of no use,
            # so they are killed at once; Pool.terminate would signal them and wait for each.
            # After the kill, terminate can block for good on the task queue's lock a killed
            # worker held: it runs in a daemon thread nobody waits for (not the executor's)
            _kill_workers(pool)
            threading.Thread(target=pool.terminate, name="gradguard-pool-terminate", daemon=True).start()
            raise
        await loop.run_in_executor(None, pool.terminate)

    async def _check_closed(self, path: str, config: Config | None = None) -> list | None:
        """Check one closed file on the engine thread (between the editor's analyses)."""
        if config is None:
            folder = self._folder_of(path)
            if folder is None:
                return None
            config = effective_config(
                self.ls.projects.config_for(os.path.dirname(path)), self.ls.settings_for(folder.uri)
            )
        uri = Path(path).as_uri()
        encoding, tags, links = self._client_options()
        diagnostics = await self.ls.in_engine(
            self._check_closed_sync, path, uri, config, encoding, tags, links
        )
        self._store_closed(path, uri, diagnostics)
        return diagnostics

    def _check_closed_sync(self, path, uri, config, encoding, tags, links):
        key = repr(config)
        analyzer = self._closed_analyzers.get(key)
        if analyzer is None:
            if len(self._closed_analyzers) > 8:
                self._closed_analyzers.clear()
            analyzer = self._closed_analyzers[key] = Analyzer(config, cache_size=256, project=self.index)
        try:
            return check_closed_file(analyzer, path, uri, encoding, tags, links)
        except Exception:
            log.exception("checking %s failed", path)
            return None

    def _queue_recheck(self, reals: set[str]) -> None:
        for real in sorted(reals):
            self._recheck[real] = None
        if self._drain is None and self._bulk is None:
            self._drain = asyncio.ensure_future(self._drain_rechecks())

    async def _drain_rechecks(self) -> None:
        try:
            while self._recheck:
                real = next(iter(self._recheck))
                del self._recheck[real]
                path = self._files.get(real)
                if path is None or not self.workspace_mode(self._folder_of(path)) or self._is_open_path(path):
                    continue
                await self._check_closed(path)
        finally:
            self._drain = None


CMD_DEBUG_WORKSPACE = "gradguard.debugWorkspace"


def register(server: GradguardServer) -> None:
    @server.command(CMD_DEBUG_WORKSPACE)
    def debug_workspace(ls, *args):  # no annotations: pygls evaluates them
        """The state of the workspace index (for tests and benchmarks)."""
        service = ls.workspace_index
        return {
            "ready": service.ready,
            "generation": service.generation,
            "files": len(service._files),
            "closedWithDiagnostics": sum(1 for _, diags in service.closed.values() if diags),
            "checking": service._bulk is not None or service._drain is not None,
            "searchPaths": list(service._search_paths or ()),
            "timings": dict(service.timings),
        }


def _entered_workspace_mode(before: tuple, after: tuple) -> bool:
    """Whether a folder's diagnosticMode became "workspace" (entries of `_settings_key()[1]`)."""
    modes = {entry[0]: entry[1] for entry in before}
    return any(entry[1] == WORKSPACE and modes.get(entry[0]) != WORKSPACE for entry in after)


def _kill_workers(pool) -> None:
    for process in list(getattr(pool, "_pool", ())):  # multiprocessing.Pool's worker processes
        try:
            process.kill()
        except (OSError, ValueError, AttributeError):
            pass


def _folder_exclude(folder: str) -> tuple[str, ...]:
    """`exclude` of the folder's own `[tool.gradguard]` (patterns relative to the folder; a
    pyproject.toml further up or down is applied file by file)."""
    from gradguard.engine.config import ConfigError, find_pyproject, load_config

    try:
        found = find_pyproject(Path(folder))
        if found is None or found.parent.resolve() != Path(folder).resolve():
            return ()
        config, _ = load_config(folder)
    except (ConfigError, OSError, ValueError):
        return ()
    return tuple(config.exclude)
