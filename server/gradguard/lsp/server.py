"""The gradguard language server (pygls 2, stdio).

A thin layer: handlers translate between lsprotocol types and the engine's findings and
fixes. The engine runs in one worker thread (it is not thread-safe, and keeping it off
the event loop lets the server answer while a large file is being checked); results for
a document version that is no longer current are dropped, never published.

This module never imports torch.
"""

from __future__ import annotations

import ast
import asyncio
import bisect
import collections
import concurrent.futures
import ctypes
import dataclasses
import functools
import gc
import logging
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from gradguard import __version__
from gradguard.engine.analyzer import Analyzer, select_fixes, syntax_error_finding
from gradguard.engine.catalog import SyntaxErrorRule, rule_class
from gradguard.engine.config import Config
from gradguard.engine.finding import Finding, Fix, Severity
from gradguard.engine.fix_guard import guard_edits
from gradguard.engine.incremental import IncrementalParser, LineDelta
from gradguard.engine.shape_view import Measured, ShapeView
from gradguard.engine.source import SourceFile
from gradguard.engine.suppression import file_suppression, line_suppression
from gradguard.lsp import documentation
from gradguard.lsp import hover as hover_notes
from gradguard.lsp.documents import (
    UTF8,
    UTF16,
    UTF32,
    Cell,
    CellSpan,
    DocumentStore,
    Notebook,
    TextDoc,
    content_of,
    uri_to_path,
)
from gradguard.lsp.settings import KNOWN_KEYS, ProjectConfigs, Settings, effective_config, parse_settings
from gradguard.lsp.workspace import WATCH_GLOBS, WorkspaceIndex
from gradguard.lsp.workspace import register as register_workspace_commands

log = logging.getLogger("gradguard.lsp")

SERVER_NAME = "gradguard"
FIX_ALL_KIND = "source.fixAll.gradguard"
MAX_ANALYSED_CHARS = 3_000_000  # larger documents are not checked (the server stays responsive)
PARSE_ERRORS = (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError)
# documents that keep their syntax tree and live fixes (the most recently analysed)
HOT_DOCUMENTS = 16
# seconds without an analysis after which the engine runs a full garbage collection (see
# `_analyse_sync`: between keystrokes the collector never walks the documents' trees)
IDLE_COLLECT_SECONDS = 5.0
# units checked again, at most, so that the parser may move the lines below an Enter rather than
# parse them again (see `_nodes_moving`)
MOVE_RECHECKS = 4
# units whose findings the server's analyzers remember
UNIT_CACHE_SIZE = 200_000
# seconds gradguard.fixAll waits for the editor to answer workspace/applyEdit
APPLY_EDIT_TIMEOUT = float(os.environ.get("GRADGUARD_APPLY_EDIT_TIMEOUT") or 20)

CMD_EXPLAIN = "gradguard.explainRule"
CMD_FIX_ALL = "gradguard.fixAll"
CMD_DEBUG_TEXT = "gradguard.debugDocumentText"
CMD_SHOW_DOCS = documentation.CMD_SHOW_DOCS
FIX_ALL_TITLE = "gradguard: Fix All Safe Problems in This File"  # the command's title in VS Code too
CMD_DEBUG_STATS = "gradguard.debugStats"

_SEVERITY = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
    Severity.INFORMATION: types.DiagnosticSeverity.Information,
    Severity.HINT: types.DiagnosticSeverity.Hint,
}
_TAGS = {"unnecessary": types.DiagnosticTag.Unnecessary, "deprecated": types.DiagnosticTag.Deprecated}
_ENCODINGS: dict[str, str] = {
    types.PositionEncodingKind.Utf8: UTF8,
    types.PositionEncodingKind.Utf16: UTF16,
    types.PositionEncodingKind.Utf32: UTF32,
}


# -- conversions (usable by other modules) ---------------------------------------------------
def lsp_range(
    doc: TextDoc, line: int, column: int, end_line: int, end_column: int, encoding: str = UTF16
) -> types.Range:
    """1-based code-point positions -> an LSP range in the client's units, clamped to the text."""
    sl, sc = doc.client_position(line - 1, column - 1, encoding)
    el, ec = doc.client_position(end_line - 1, end_column - 1, encoding)
    el, ec = max((el, ec), (sl, sc))
    return types.Range(types.Position(sl, sc), types.Position(el, ec))


def finding_to_diagnostic(
    finding: Finding,
    doc: TextDoc,
    encoding: str = UTF16,
    tag_support: bool = True,
    config: Config | None = None,
    command_links: bool = False,
) -> types.Diagnostic:
    """A Finding (1-based, code points) -> an LSP Diagnostic for `doc`; its code links to the
    rule's local explanation (see documentation.py)."""
    severity = finding.severity
    if config is not None:
        severity = config.severity_for(finding.code, severity)
    link = documentation.docs_link(finding.code, command_links)
    tags = [_TAGS[t] for t in finding.tags if t in _TAGS] if tag_support else []
    return types.Diagnostic(
        range=lsp_range(doc, finding.line, finding.column, finding.end_line, finding.end_column, encoding),
        message=finding.message,
        severity=_SEVERITY.get(Severity(severity), types.DiagnosticSeverity.Warning),
        code=finding.code,
        code_description=types.CodeDescription(href=link) if link else None,
        source=finding.source,
        tags=tags or None,
    )


def _text_edit(doc: TextDoc, edit: Any, encoding: str) -> types.TextEdit:
    return types.TextEdit(
        range=lsp_range(doc, edit.start_line, edit.start_column, edit.end_line, edit.end_column, encoding),
        new_text=edit.new_text,
    )


def minimal_edit(old: str, new: str) -> tuple[int, int, str]:
    """(start offset, end offset in old, replacement) turning old into new."""
    limit = min(len(old), len(new))
    start = 0
    while start < limit and old[start] == new[start]:
        start += 1
    end_old, end_new = len(old), len(new)
    while end_old > start and end_new > start and old[end_old - 1] == new[end_new - 1]:
        end_old -= 1
        end_new -= 1
    return start, end_old, new[start:end_new]


# -- protocol ---------------------------------------------------------------------------------
class _InvalidRequest:
    """A request whose params did not match the protocol: answered with an error instead
    of being dropped (pygls would otherwise never answer it)."""

    def __init__(self, msg_id: Any, method: str, error: Exception) -> None:
        self.id = msg_id
        self.method = method
        self.error = error
        self.jsonrpc = "2.0"


class GradguardProtocol(LanguageServerProtocol):
    # the lifecycle the spec asks for (pygls drops requests after `shutdown` unanswered and
    # exits with status 0 on `exit` whether or not `shutdown` came first)
    _initialized = False
    _dropped_warnings = 0

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        # The document store in documents.py applies the change (pygls's TextDocument
        # re-splits the whole text per change and splits at \f and U+2028).
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        try:
            self.workspace.put_text_document(params.text_document)
        except Exception as exc:  # noqa: BLE001 - a malformed URI: not a document we can serve
            self._drop_warning(
                f"didOpen of {params.text_document.uri!r} ignored: {type(exc).__name__}: {exc}"
            )
            return
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.NOTEBOOK_DOCUMENT_DID_OPEN)
    def lsp_notebook_document__did_open(self, params: types.DidOpenNotebookDocumentParams):
        try:
            self.workspace.put_notebook_document(params)
        except Exception as exc:  # noqa: BLE001
            self._drop_warning(f"notebook didOpen of {params.notebook_document.uri!r} ignored: {exc!r}")
            return
        if (handler := self.fm.features.get(types.NOTEBOOK_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def lsp_notebook_document__did_change(self, params: types.DidChangeNotebookDocumentParams):
        try:
            self.workspace.update_notebook_document(params)
        except Exception as exc:  # noqa: BLE001 - a notebook or cell the client never opened
            self._drop_warning(
                f"notebook change of {params.notebook_document.uri!r} refers to a notebook or cell that is "
                f"not open ({type(exc).__name__}: {exc}); the known cells are still updated"
            )
        if (handler := self.fm.features.get(types.NOTEBOOK_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def lsp_notebook_document__did_close(self, params: types.DidCloseNotebookDocumentParams):
        try:
            self.workspace.remove_notebook_document(params)
        except Exception as exc:  # noqa: BLE001
            self._drop_warning(f"notebook didClose of {params.notebook_document.uri!r}: {exc!r}")
        if (handler := self.fm.features.get(types.NOTEBOOK_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args):
        if (handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield handler, args, None
        # pygls iterates the live dict while cancelling, and a cancelled future's callbacks
        # remove entries from it ("dictionary changed size during iteration")
        current = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current and not future.done():
                future.cancel()
        self._shutdown = True

    def _drop_warning(self, text: str) -> None:
        """A message that refers to something the server does not know: a warning in the log
        (the first 20, then every 100th), never an error."""
        self._dropped_warnings += 1
        count = self._dropped_warnings
        if count <= 20 or count % 100 == 0:
            suffix = f" ({count} such messages so far)" if count > 20 else ""
            log.warning("%s%s", text, suffix)
            try:
                self.notify(
                    types.WINDOW_LOG_MESSAGE,
                    types.LogMessageParams(
                        type=types.MessageType.Warning, message=f"gradguard: {text}{suffix}"
                    ),
                )
            except Exception:  # noqa: BLE001 - no transport (tests)
                log.debug("could not log to the client")

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                return _InvalidRequest(data["id"], str(data["method"]), exc)
            raise

    def _error(self, msg_id: Any, code: int, text: str) -> None:
        self._send_data({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": text}})

    def handle_message(self, message):
        method = getattr(message, "method", None)
        is_request = method is not None and getattr(message, "id", None) is not None
        if method == types.EXIT:  # the status (0 after shutdown, else 1) is serve_stdio's
            transport = getattr(self._server, "transport", None)
            if transport is None:
                return super().handle_message(message)  # pygls's own loop: it exits
            transport.stop("exit")
            return None
        if self._shutdown:
            if is_request:
                self._error(message.id, -32600, f"the server is shutting down; {method} is not served")
            else:
                log.debug("%s after shutdown ignored", method)
            return None
        if isinstance(message, _InvalidRequest):
            log.warning("invalid %s request: %s", message.method, message.error)
            self._send_response(
                message.id,
                error=JsonRpcInvalidParams(f"invalid params for {message.method}").to_response_error(),
            )
            return None
        if method == types.INITIALIZE:
            self._initialized = True
        elif not self._initialized and method is not None:
            # before `initialize`: requests get ServerNotInitialized, notifications are dropped
            if is_request:
                self._error(message.id, -32002, f"{method} before initialize")
            return None
        result = super().handle_message(message)
        if len(self._request_futures) > 64:
            self._prune_futures()
        return result

    def _prune_futures(self) -> None:
        """pygls files the future of every notification handled by a generator (didOpen,
        didChange, didClose, the notebook ones) in `_request_futures` and never removes it: one
        future, lock and condition per keystroke. Finished ones are dropped here (a request's
        own callback pops its entry with a default, so dropping it first is harmless)."""
        for msg_id in [k for k, f in self._request_futures.items() if f.done()]:
            self._request_futures.pop(msg_id, None)


# -- server state -----------------------------------------------------------------------------
@dataclass
class Snapshot:
    key: str
    version: Any
    text: str
    lines: list[str]
    path: str
    config: Config
    spans: list[CellSpan] | None = None  # notebooks: where each cell is


@dataclass
class AnalysisState:
    parser: IncrementalParser
    lines: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    version: Any = None
    spans: list[CellSpan] | None = None
    # the tree of the last text that parsed, its version and the semantic model its check built
    # (reused by hovers and inlay hints)
    tree: Any = None
    tree_version: Any = None
    semantics: Any = None


@dataclass
class AnalysisResult:
    snapshot: Snapshot
    findings: list[Finding]
    rule_errors: list = field(default_factory=list)
    syntax_error: bool = False
    seconds: float = 0.0
    published: bool = False


class GradguardServer(LanguageServer):
    # initializationOptions.commandLinks: the client opens `command:` links (the VS Code extension)
    command_links = False

    def __init__(self) -> None:
        super().__init__(
            SERVER_NAME,
            __version__,
            protocol_cls=GradguardProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            notebook_document_sync=types.NotebookDocumentSyncOptions(
                notebook_selector=[
                    types.NotebookDocumentFilterWithCells(
                        notebook="jupyter-notebook", cells=[types.NotebookCellLanguage(language="python")]
                    )
                ]
            ),
        )
        self.store = DocumentStore()
        self.workspace_trusted = False
        self.encoding = UTF16
        self._global_settings = Settings()
        self._folder_settings: dict[str, Settings] = {}
        self._settings_warned: set[str] = set()
        self.projects = ProjectConfigs()
        # the project index of the workspace folders, and workspace diagnostics (workspace.py)
        self.workspace_index = WorkspaceIndex(self)
        self._analyzers: dict[str, Analyzer] = {}
        self._states: dict[str, AnalysisState] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._inflight: dict[str, tuple[Any, asyncio.Future]] = {}  # key -> (version, analysis)
        self._analysed: dict[str, Any] = {}  # key -> the version whose findings are published
        self._hot: collections.OrderedDict[str, None] = collections.OrderedDict()  # engine thread
        self._cold: set[str] = set()  # keys whose published findings lost their live fixes
        self._extras: dict[str, dict[str, list[Finding]]] = {}
        # uri -> (version, findings in that uri's coordinates, config)
        self.published: dict[str, tuple[Any, list[Finding], Config]] = {}
        self._notebook_cells_published: dict[str, set[str]] = {}
        self._logged_errors: set[tuple] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._engine = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="gradguard-engine"
        )
        self.timings: list[float] = []
        self._apply_edits = 0
        self._trim_handle: asyncio.TimerHandle | None = None
        self._collect_handle: asyncio.TimerHandle | None = None
        self._engine_busy_at = 0.0  # when the engine last finished or started some work
        # uri -> ((version, measured shapes), the document's ShapeView): hovers and inlay hints
        self._shape_views: dict[str, tuple[Any, ShapeView]] = {}
        # (uri, version, parse mode, lines re-parsed, analysis ms) of recent analyses
        self.stats: collections.deque = collections.deque(maxlen=1000)

    # -- public API for other modules (probe features, tests) --------------------------------
    def settings_for(self, uri: str | None = None) -> Settings:
        if uri:
            best = ""
            for folder in self._folder_settings:
                if uri.startswith(folder.rstrip("/") + "/") and len(folder) > len(best):
                    best = folder
            if best:
                return self._folder_settings[best]
        return self._global_settings

    def get_document_text(self, uri: str) -> str | None:
        doc = self.store.get(uri)
        return doc.text if doc is not None else None

    def config_for(self, uri: str) -> Config:
        path = uri_to_path(uri)
        directory = os.path.dirname(path) if path != uri else self._root_path()
        return effective_config(self.projects.config_for(directory), self.settings_for(uri))

    def findings_for(self, uri: str) -> list[Finding]:
        """The findings last published for a uri (engine findings and extras)."""
        entry = self.published.get(uri)
        return list(entry[1]) if entry else []

    def set_extra_findings(self, uri: str, key: str, findings: list[Finding]) -> None:
        """Extra findings (e.g. key "probe") shown with the engine's for this uri until the
        document changes or closes. Safe to call from any thread."""
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self.set_extra_findings, uri, key, list(findings))
            return
        self._extras.setdefault(uri, {})[key] = list(findings)
        self._republish(uri)

    def finding_to_diagnostic(self, uri: str, finding: Finding) -> types.Diagnostic:
        doc = self.store.get(uri) or TextDoc(uri, "", None)
        return finding_to_diagnostic(
            finding, doc, self.encoding, self._tag_support(), self.config_for(uri), self.command_links
        )

    # -- helpers ------------------------------------------------------------------------------
    def _root_path(self) -> str | None:
        try:
            root = self.workspace.root_path
        except RuntimeError:
            return None
        return root

    def _tag_support(self) -> bool:
        try:
            caps = self.client_capabilities
        except AttributeError:
            return False
        pd = caps.text_document.publish_diagnostics if caps and caps.text_document else None
        return bool(pd and pd.tag_support)

    def _capability(self, path: str) -> Any:
        node: Any = getattr(self.protocol, "client_capabilities", None)
        for part in path.split("."):
            if node is None:
                return None
            node = getattr(node, part, None)
        return node

    def log_to_client(self, message: str, level: types.MessageType = types.MessageType.Info) -> None:
        log.log({1: logging.ERROR, 2: logging.WARNING}.get(int(level), logging.INFO), "%s", message)
        try:
            self.window_log_message(types.LogMessageParams(type=level, message=message))
        except Exception:  # noqa: BLE001, S110 - no transport yet
            pass

    def report_server_error(self, error: Exception, source: Any) -> None:
        # log instead of popping up a message box for every malformed message
        self.log_to_client(f"gradguard: internal error: {error}", types.MessageType.Error)

    def _warn_settings(self, settings: Settings) -> None:
        for warning in settings.warnings:
            if warning not in self._settings_warned:
                self._settings_warned.add(warning)
                self.log_to_client(warning, types.MessageType.Warning)

    def set_settings(self, raw: Any, folder: str | None = None) -> None:
        if isinstance(raw, dict) and set(raw) == {"gradguard"} and isinstance(raw["gradguard"], dict):
            raw = raw["gradguard"]  # the whole configuration object instead of its section
        settings = parse_settings(raw)
        self._warn_settings(settings)
        if folder:
            self._folder_settings[folder] = settings
        else:
            self._global_settings = settings

    def analyzer_for(self, config: Config) -> Analyzer:
        key = repr(config)
        analyzer = self._analyzers.get(key)
        if analyzer is None:
            if len(self._analyzers) > 8:
                self._analyzers.clear()
            # the per-unit cache must hold every unit of a large file, or each edit re-checks
            # all of them (an LRU smaller than the file misses every time); it holds only the
            # units of open, recently analysed documents (see forget and _cool)
            analyzer = self._analyzers[key] = Analyzer(
                config, cache_size=UNIT_CACHE_SIZE, project=self.workspace_index.index
            )
        return analyzer

    # -- per-document state ---------------------------------------------------------------------
    def forget(self, key: str, uris: list[str] | None = None) -> None:
        """Drop everything kept for a closed document or notebook (and its cells): its
        analysis state, findings, cached units and probe results. Memory goes back to the
        system shortly after a burst of closes."""
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
        for table in (self._states, self._inflight, self._analysed, self._notebook_cells_published):
            table.pop(key, None)
        self._cold.discard(key)
        self._engine.submit(self._hot.pop, key, None)
        for uri in {key, *(uris or ())}:
            self._extras.pop(uri, None)
            self.published.pop(uri, None)
            self._shape_views.pop(uri, None)
        self._logged_errors = {e for e in self._logged_errors if key not in e}
        probe = getattr(self, "probe_state", None)
        if probe is not None:
            for uri in {key, *(uris or ())}:
                probe.forget(uri)
        self._engine.submit(self._forget_units, uri_to_path(key))
        if self._loop is not None:
            if self._trim_handle is not None:
                self._trim_handle.cancel()
            self._trim_handle = self._loop.call_later(1.0, self._engine.submit, _trim_memory)

    def _forget_units(self, path: str) -> None:
        for analyzer in list(self._analyzers.values()):
            analyzer.forget(path)

    def _nodes_moving(self, path: str) -> bool:
        """Engine thread: whether the parser may move nodes of the document in place (the lines
        below an Enter) instead of parsing them again. Cached findings whose fixes would compute
        their edits from them let go first, and their units are checked again: with more than
        MOVE_RECHECKS of them, the parse is cheaper (a large file full of fixable findings)."""
        analyzers = list(self._analyzers.values())
        if sum(len(a.lazy_fix_units(path)) for a in analyzers) > MOVE_RECHECKS:
            return False
        for analyzer in analyzers:
            analyzer.forget_lazy_fixes(path)
        return True

    # -- analysis -----------------------------------------------------------------------------
    def analysis_key(self, uri: str) -> str:
        doc = self.store.get(uri)
        if doc is not None and doc.notebook:
            return doc.notebook
        return uri

    def _version_of(self, key: str) -> Any:
        notebook = self.store.notebooks.get(key)
        if notebook is not None:
            versions: list[Any] = [notebook.version]
            for cell in notebook.cells:
                doc = self.store.get(cell.uri)
                versions.append((cell.uri, cell.kind, doc.version if doc else None))
            return tuple(versions)
        doc = self.store.get(key)
        return doc.version if doc is not None else None

    def _snapshot(self, key: str) -> Snapshot | None:
        notebook = self.store.notebooks.get(key)
        if notebook is not None:
            text, spans = self.store.combined(notebook)
            config = self.config_for(key)
            source = SourceFile(text)
            return Snapshot(key, self._version_of(key), text, source.lines, uri_to_path(key), config, spans)
        doc = self.store.get(key)
        if doc is None:
            return None
        return Snapshot(key, doc.version, doc.text, list(doc.lines), uri_to_path(key), self.config_for(key))

    def analysable(self, uri: str) -> bool:
        doc = self.store.get(uri)
        if doc is None:
            return uri in self.store.notebooks
        if doc.notebook:
            return True
        if doc.language_id not in ("python", "") and not uri.endswith((".py", ".pyi")):
            return False
        return uri.startswith(("file:", "untitled:")) or uri.endswith((".py", ".pyi"))

    def schedule(self, uri: str, delay: float | None = None, *, recheck: bool = False) -> None:
        """Analyse a document after `delay` seconds (the debounce by default). `recheck`: its
        text is unchanged but what it rests on changed (another file, the project index), so
        the findings published for this version, or being computed for it, are outdated."""
        key = self.analysis_key(uri)
        if recheck:
            self._analysed.pop(key, None)
            self._inflight.pop(key, None)
        settings = self.settings_for(key)
        if delay is None:
            delay = settings.debounce_ms / 1000.0
        previous = self._tasks.pop(key, None)
        if previous is not None and not previous.done():
            previous.cancel()  # a newer edit cancels the work for the older version
        self._tasks[key] = asyncio.ensure_future(self._analyse_and_publish(key, delay))

    async def _analyse_and_publish(self, key: str, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if key in self._analysed and self._analysed[key] == self._version_of(key):
            return  # a request (codeAction, hover...) published this version meanwhile
        result = await self.analyse(key)
        if result is None:
            return
        if self._version_of(key) != result.snapshot.version:
            return  # outdated: a newer version is on its way
        self._publish(key, result)

    async def analyse(self, key: str) -> AnalysisResult | None:
        """Analyse the current text of a document or notebook (in the engine thread). A request
        that needs the findings of a version being analysed already waits for that analysis
        instead of queueing a second one behind it."""
        settings = self.settings_for(key)
        version = self._version_of(key)
        running = self._inflight.get(key)
        if running is not None and running[0] == version and not running[1].cancelled():
            return await asyncio.shield(running[1])
        snapshot = self._snapshot(key)
        if (
            snapshot is None
            or not settings.enable
            or not self.analysable(key)
            or self.projects.is_excluded(snapshot.path)
            or self.workspace_index.excluded(snapshot.path)  # gradguard.exclude
        ):
            if snapshot is not None:
                return AnalysisResult(snapshot, [])
            return None
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._engine, self._analyse_sync, snapshot)
        self._inflight[key] = (snapshot.version, future)
        self.workspace_index.foreground += 1  # the index being built in the background waits
        future.add_done_callback(lambda done: self._inflight_done(key, done))
        # shielded: a cancelled caller (a newer edit) does not cancel it for the others
        return await asyncio.shield(future)

    def _inflight_done(self, key: str, future: asyncio.Future) -> None:
        self.workspace_index.foreground -= 1
        running = self._inflight.get(key)
        if running is not None and running[1] is future:
            del self._inflight[key]

    def _analyse_sync(self, snap: Snapshot) -> AnalysisResult | None:
        """Engine thread. The cyclic garbage collector is paused for the whole analysis, and
        what it leaves is frozen (`gc.freeze`: set aside, still freed by reference counting):
        otherwise the first allocation after it collects the tens of thousands of nodes an
        edit parsed (the lines below an Enter), and every tenth one walks them again, up to
        30 ms on the next keystroke (the engine makes no reference cycles: nothing to find
        there). A full collection runs when the engine is idle (`_collect_if_grown`)."""
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            return self._analyse_now(snap)
        finally:
            self._engine_busy_at = time.monotonic()
            if paused:
                gc.freeze()
                gc.enable()
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._collect_when_idle)

    def _collect_when_idle(self) -> None:
        """Loop thread: a full collection (`_collect_if_grown`) once the engine has had nothing to
        do for IDLE_COLLECT_SECONDS (no analysis, no request: it may take seconds on a large heap)."""
        if self._collect_handle is not None:
            self._collect_handle.cancel()
        assert self._loop is not None
        self._collect_handle = self._loop.call_later(IDLE_COLLECT_SECONDS, self._collect_if_idle)

    def _collect_if_idle(self) -> None:
        self._collect_handle = None
        if time.monotonic() - self._engine_busy_at < IDLE_COLLECT_SECONDS or self._inflight:
            self._collect_when_idle()
            return
        self._engine.submit(_collect_if_grown)

    def _analyse_now(self, snap: Snapshot) -> AnalysisResult | None:
        if self._version_of(snap.key) != snap.version:
            return None  # superseded before it started
        started = time.perf_counter()
        state = self._states.get(snap.key)
        if state is None:
            moving = functools.partial(self._nodes_moving, snap.path)
            state = self._states[snap.key] = AnalysisState(IncrementalParser(snap.path, on_move=moving))
        if len(snap.text) > MAX_ANALYSED_CHARS:
            if ("too-large", snap.key) not in self._logged_errors:
                self._logged_errors.add(("too-large", snap.key))
                self.log_to_client_threadsafe(
                    f"gradguard: {snap.key} has {len(snap.text):,} characters; files over "
                    f"{MAX_ANALYSED_CHARS:,} are not checked"
                )
            state.findings, state.lines, state.version = [], snap.lines, snap.version
            return AnalysisResult(snap, [])
        analyzer = self.analyzer_for(snap.config)
        rule_errors: list = []
        syntax = False
        try:
            tree = state.parser.parse(snap.text, snap.lines)
            state.tree, state.tree_version, state.semantics = tree, snap.version, None
        except PARSE_ERRORS as exc:
            syntax = True
            findings = self._kept_while_broken(state, snap)
            if snap.config.enabled(SyntaxErrorRule.code):
                findings.append(syntax_error_finding(exc, SourceFile(snap.text, snap.path), snap.path))
        else:
            self.workspace_index.buffer_changed(snap, tree)
            try:
                result = analyzer.check(snap.text, snap.path, tree)
                findings, rule_errors = result.findings, result.errors
                state.semantics = result.semantics
            except Exception:  # the engine itself failed: keep the server alive
                log.exception("analysis failed for %s", snap.key)
                self.log_to_client_threadsafe(
                    f"gradguard: internal error while checking {snap.key}:\n{traceback.format_exc()}",
                    types.MessageType.Error,
                )
                findings = []
        state.findings, state.lines, state.version, state.spans = (
            findings,
            snap.lines,
            snap.version,
            snap.spans,
        )
        seconds = time.perf_counter() - started
        parse = state.parser.stats
        mode = "syntax-error" if syntax else parse.mode
        self.stats.append((snap.key, snap.version, mode, parse.reparsed_lines, round(seconds * 1000, 3)))
        self._touch(snap.key)
        return AnalysisResult(snap, list(findings), rule_errors, syntax, seconds)

    # -- bounded per-document memory (engine thread) ---------------------------------------------
    def _touch(self, key: str) -> None:
        """Only the HOT_DOCUMENTS most recently analysed documents keep their syntax tree (for
        incremental parsing) and live fixes (which hold the tree and the engine's indexes:
        hundreds of KB per document); the others keep their text and findings, and are
        parsed again when they are next edited or asked for fixes."""
        hot = self._hot
        hot[key] = None
        hot.move_to_end(key)
        while len(hot) > HOT_DOCUMENTS:
            cold, _ = hot.popitem(last=False)
            self._cool(cold)

    def _cool(self, key: str) -> None:
        state = self._states.get(key)
        if state is not None:
            state.parser.reset()
            # the tree and semantic model (hovers, inlay hints) are built again when asked for
            state.tree, state.tree_version, state.semantics = None, None, None
            state.findings = [_detached(f) for f in state.findings]
        self._forget_units(uri_to_path(key))
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._cool_published, key)

    def _cool_published(self, key: str) -> None:
        if key in self._hot or key not in self._states:
            return  # analysed again meanwhile, or closed
        for uri in self._uris_of(key):
            entry = self.published.get(uri)
            if entry is not None:
                self.published[uri] = (entry[0], [_detached(f) for f in entry[1]], entry[2])
        self._cold.add(key)

    @staticmethod
    def _kept_while_broken(state: AnalysisState, snap: Snapshot) -> list[Finding]:
        """The last findings moved along with the edits since, while the file does not parse."""
        if not state.lines:
            return []
        change = LineDelta.between(state.lines, snap.lines)
        region_deleted = change.new_end < change.start
        kept: list[Finding] = []
        for finding in state.findings:
            if finding.code == SyntaxErrorRule.code:
                continue
            line, end_line = change.map_line(finding.line), change.map_line(finding.end_line)
            if (
                line is not None
                and end_line is not None
                and line - finding.line == end_line - finding.end_line
            ):
                kept.append(finding.shifted(line - finding.line))  # outside the edit: moved as a whole
                continue
            # touched by the edit: lines inside the changed region keep their number (the
            # region starts at the same line before and after), clamped to its new end
            if line is None:
                if region_deleted:
                    continue
                line = min(finding.line, change.new_end)
            if end_line is None:
                end_line = line if region_deleted else min(finding.end_line, change.new_end)
            end_line = max(end_line, line)
            kept.append(dataclasses.replace(finding, line=line, end_line=end_line, fix=None, alternatives=[]))
        return kept

    def log_to_client_threadsafe(
        self, message: str, level: types.MessageType = types.MessageType.Info
    ) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.log_to_client, message, level)
        else:
            log.info("%s", message)

    def _report_rule_errors(self, result: AnalysisResult) -> None:
        for error in result.rule_errors:
            ident = (error.code, error.path, error.line, error.traceback.strip().splitlines()[-1:].__repr__())
            if ident in self._logged_errors:
                continue
            self._logged_errors.add(ident)
            self.log_to_client(
                f"gradguard: rule {error.code} failed on {error.path}:{error.line}; the other rules' "
                f"findings are shown.\n{error.traceback}",
                types.MessageType.Error,
            )

    def _publish(self, key: str, result: AnalysisResult) -> None:
        if result.published:
            return  # two waiters of one analysis: published once
        result.published = True
        self._analysed[key] = result.snapshot.version
        self._report_rule_errors(result)
        self.timings.append(result.seconds)
        del self.timings[:-1000]
        snap = result.snapshot
        if snap.spans is None:
            self._publish_uri(key, result.findings, snap.config)
            return
        # notebook: each finding goes to its own cell
        per_cell: dict[str, list[Finding]] = {span.uri: [] for span in snap.spans}
        for finding in result.findings:
            span = _span_for(snap.spans, finding.line - 1)
            if span is None:
                continue
            local = finding.shifted(-span.start)
            if local.end_line > span.count:
                local = dataclasses.replace(
                    local,
                    end_line=span.count,
                    end_column=len(content_of(_line(self.store.get(span.uri), span.count))) + 1,
                )
            per_cell[span.uri].append(local)
        previous = self._notebook_cells_published.get(key, set())
        for uri in previous - set(per_cell):
            if self.store.get(uri) is not None:
                self._publish_uri(uri, [], snap.config)
        self._notebook_cells_published[key] = set(per_cell)
        for uri, findings in per_cell.items():
            self._publish_uri(uri, findings, snap.config)

    def _publish_uri(self, uri: str, findings: list[Finding], config: Config) -> None:
        doc = self.store.get(uri)
        if doc is None:
            return
        self.published[uri] = (doc.version, findings, config)
        self._send_diagnostics(uri)

    def _send_diagnostics(self, uri: str) -> None:
        doc = self.store.get(uri)
        entry = self.published.get(uri)
        if doc is None:
            return
        findings = list(entry[1]) if entry else []
        config = entry[2] if entry else self.config_for(uri)
        for extra in self._extras.get(uri, {}).values():
            findings.extend(extra)
        tags = self._tag_support()
        diagnostics = [
            finding_to_diagnostic(f, doc, self.encoding, tags, config, self.command_links) for f in findings
        ]
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=doc.version)
        )

    def _republish(self, uri: str) -> None:
        doc = self.store.get(uri)
        if doc is None:
            return
        entry = self.published.get(uri)
        if entry is not None and entry[0] != doc.version:
            # the findings belong to an older text: move them along with the edits
            state = self._states.get(self.analysis_key(uri))
            if state is None or state.spans is not None:
                self.published[uri] = (doc.version, [], entry[2])
            else:
                snap = Snapshot(uri, doc.version, doc.text, list(doc.lines), uri_to_path(uri), entry[2])
                self.published[uri] = (doc.version, self._kept_while_broken(state, snap), entry[2])
        self._send_diagnostics(uri)

    def clear_diagnostics(self, uri: str) -> None:
        self.published.pop(uri, None)
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    async def current_findings(self, uri: str) -> tuple[TextDoc, list[Finding]] | None:
        """Findings for the document's current version (analysing it now if needed)."""
        doc = self.store.get(uri)
        if doc is None:
            return None
        entry = self.published.get(uri)
        key = self.analysis_key(uri)
        if entry is None or entry[0] != doc.version or key in self._cold:
            self._cold.discard(key)
            result = await self.analyse(key)
            if result is None or self._version_of(key) != result.snapshot.version:
                return None
            self._publish(key, result)
            entry = self.published.get(uri)
            if entry is None:
                return doc, []
        findings = list(entry[1])
        for extra in self._extras.get(uri, {}).values():
            findings.extend(extra)
        return doc, findings

    def shape_view(self, uri: str, measured: dict) -> ShapeView | None:
        """The shapes of a document's current version (in the engine thread; cached per version).
        Notebook cells are not covered."""
        doc = self.store.get(uri)
        if doc is None or doc.notebook is not None or len(doc.text) > MAX_ANALYSED_CHARS:
            return None
        key = (doc.version, tuple(sorted(measured.items())))
        cached = self._shape_views.get(uri)
        if cached is not None and cached[0] == key:
            return cached[1]
        state = self._states.get(uri)
        current = state if state is not None and state.tree_version == doc.version else None
        tree = current.tree if current else None
        semantics = current.semantics if current else None
        text = doc.text
        if tree is None:
            try:
                tree = ast.parse(text)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                return cached[1] if cached is not None and cached[0][0] == doc.version else None
        table = {k: Measured(v[0], v[1]) for k, v in measured.items()}
        view = ShapeView(tree, SourceFile(text, uri_to_path(uri)), table, semantics)
        self._shape_views[uri] = (key, view)
        while len(self._shape_views) > 16:
            self._shape_views.pop(next(iter(self._shape_views)))
        return view

    def measured_shapes(self, uri: str) -> dict:
        state = getattr(self, "probe_state", None)
        if state is None:
            return {}
        try:
            return probe_features.measured_shapes(self, state, uri)
        except Exception as exc:  # noqa: BLE001 - measured shapes are an extra
            log.info("measured shapes unavailable: %s", exc)
            return {}

    def shape_hover(self, uri: str, line: int, column: int, measured: dict) -> str | None:
        view = self.shape_view(uri, measured)
        return view.hover(line, column) if view is not None else None

    def shape_hints(self, uri: str, first: int, last: int, mode: str, measured: dict) -> list:
        view = self.shape_view(uri, measured)
        return view.inlay_hints(first, last, mode) if view is not None else []

    async def in_engine(self, function, *args):
        loop = asyncio.get_running_loop()
        self._engine_busy_at = time.monotonic()
        try:
            return await loop.run_in_executor(self._engine, function, *args)
        finally:
            self._engine_busy_at = time.monotonic()

    def reanalyse_all(self) -> None:
        self._analysed.clear()  # the configuration changed: same versions, new findings
        keys = {self.analysis_key(uri) for uri in self.store.docs}
        for key in keys:
            if not self.settings_for(key).enable:
                for uri in self._uris_of(key):
                    self.clear_diagnostics(uri)
                continue
            self.schedule(key, 0, recheck=True)

    def _uris_of(self, key: str) -> list[str]:
        notebook = self.store.notebooks.get(key)
        if notebook is not None:
            return [c.uri for c in notebook.cells]
        return [key]

    # -- edits --------------------------------------------------------------------------------
    def workspace_edit(
        self, edits_by_uri: dict[str, list[types.TextEdit]], versions: dict[str, Any] | None = None
    ) -> types.WorkspaceEdit:
        """`versions`: the document versions the edits were computed for (default: current)."""
        if self._capability("workspace.workspace_edit.document_changes"):
            changes = []
            for uri, edits in edits_by_uri.items():
                doc = self.store.get(uri)
                version = versions[uri] if versions and uri in versions else (doc.version if doc else None)
                changes.append(
                    types.TextDocumentEdit(
                        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
                        edits=edits,
                    )
                )
            return types.WorkspaceEdit(document_changes=changes)
        return types.WorkspaceEdit(changes=edits_by_uri)

    def fix_edits(self, doc: TextDoc, fix: Fix) -> list[types.TextEdit] | None:
        """LSP edits of a fix (computing them: may use libcst); None when not applicable."""
        edits = fix.edits
        if not edits:
            return None
        line_count = len(doc.lines)
        for edit in edits:
            if edit.start_line > line_count + 1 or edit.end_line > line_count + 1:
                return None  # does not belong to this text (notebook edit spilling out of its cell)
        if not doc.notebook:
            # as --fix does: the file's line endings, comments of replaced code kept
            guarded = guard_edits(SourceFile(doc.text), edits, {})
            if not guarded:
                return None
            edits = guarded
        return [_text_edit(doc, e, self.encoding) for e in edits]

    def fix_all_edits(self, uri: str) -> tuple[dict[str, list[types.TextEdit]], int, dict[str, Any]]:
        """Safe fixes for a whole document (runs in the engine thread), with the versions
        of the documents they were computed for."""
        key = self.analysis_key(uri)
        versions = {u: d.version for u in self._uris_of(key) if (d := self.store.get(u)) is not None}
        edits, count = self._fix_all_edits(uri)
        now = {u: d.version for u in self._uris_of(key) if (d := self.store.get(u)) is not None}
        if now != versions:
            return {}, 0, versions  # the text changed meanwhile
        return edits, count, versions

    def _fix_all_edits(self, uri: str) -> tuple[dict[str, list[types.TextEdit]], int]:
        doc = self.store.get(uri)
        if doc is None:
            return {}, 0
        key = self.analysis_key(uri)
        config = self.config_for(key)
        analyzer = self.analyzer_for(config)
        notebook = self.store.notebooks.get(key)
        if notebook is None:
            text = doc.text
            new_text, applied = analyzer.fix(text, uri_to_path(uri))
            if not applied or new_text == text:
                return {}, 0
            start, end, replacement = minimal_edit(text, new_text)
            source = SourceFile(text)
            sl, sc = _line_col(source, start)
            el, ec = _line_col(source, end)
            edit = types.TextEdit(range=lsp_range(doc, sl, sc, el, ec, self.encoding), new_text=replacement)
            return {uri: [edit]}, applied
        # notebooks: one pass of non-overlapping safe fixes, each kept inside its cell
        text, spans = self.store.combined(notebook)
        result = analyzer.check(text, uri_to_path(key))
        fixes = [f.fix.edits for f in result.findings if f.fix is not None and f.fix.safe]

        def in_one_cell(edits: list) -> bool:
            span = _span_for(spans, edits[0].start_line - 1)
            return span is not None and all(
                span.start < e.start_line <= span.start + span.count + 1
                and span.start < e.end_line <= span.start + span.count + 1
                for e in edits
            )

        edits_by_uri: dict[str, list[types.TextEdit]] = {}
        applied = 0
        for edits in select_fixes(fixes, in_one_cell):
            span = _span_for(spans, edits[0].start_line - 1)
            if span is None or (cell := self.store.get(span.uri)) is None:
                continue
            edits_by_uri.setdefault(span.uri, []).extend(
                _text_edit(cell, e.shifted(-span.start), self.encoding) for e in edits
            )
            applied += 1
        return edits_by_uri, applied


def _detached(finding: Finding) -> Finding:
    """The finding without what its lazy fixes hold on to (the syntax tree, the engine's
    indexes): a fix not computed yet keeps its title and kind but no edits."""

    def plain(fix: Fix) -> Fix:
        computed = fix._edits if fix._edits is not None else []
        return Fix(fix.title, fix.applicability, computed, fix.kind)

    if finding.fix is None and not finding.alternatives:
        return finding
    return dataclasses.replace(
        finding,
        fix=plain(finding.fix) if finding.fix is not None else None,
        alternatives=[plain(a) for a in finding.alternatives],
    )


_frozen_after_collect = [0]  # objects left frozen by the last full collection


def _collect_all() -> None:
    """Engine thread: a full collection, what analyses froze included (see
    `GradguardServer._analyse_sync`); what survives is frozen again."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _frozen_after_collect[0] = gc.get_freeze_count()


def _collect_if_grown() -> None:
    """Engine thread, idle: a full collection once the frozen objects grew by a quarter since the
    last one (the rule of Python's own full collections): reference cycles among them (the
    engine makes none) wait at most that long."""
    if gc.get_freeze_count() > _frozen_after_collect[0] * 1.25:
        _collect_all()


def _trim_memory() -> None:
    """Give memory freed by closed documents back to the system (glibc keeps it otherwise)."""
    _collect_all()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def _line(doc: TextDoc | None, line: int) -> str:
    if doc is None or not 1 <= line <= len(doc.lines):
        return ""
    return doc.lines[line - 1]


def _line_col(source: SourceFile, offset: int) -> tuple[int, int]:
    """0-based offset -> 1-based line and code-point column."""
    lines = source.lines
    starts = [0]
    for text in lines:
        starts.append(starts[-1] + len(text))
    index = bisect.bisect_right(starts, offset) - 1
    if index >= len(lines):  # the very end of the text
        if not lines or content_of(lines[-1]) != lines[-1]:
            return len(lines) + 1, 1
        return len(lines), len(lines[-1]) + 1
    return index + 1, offset - starts[index] + 1


def _span_for(spans: list[CellSpan], line: int) -> CellSpan | None:
    for span in spans:
        if span.start <= line < span.start + span.count:
            return span
    return None


# -- the server and its handlers ----------------------------------------------------------------
server = GradguardServer()


@server.feature(types.INITIALIZE)
def initialize(ls: GradguardServer, params: types.InitializeParams) -> None:
    if _has_running_loop():
        ls._loop, ls._loop_thread = asyncio.get_running_loop(), threading.get_ident()
    options = params.initialization_options
    if isinstance(options, dict):
        ls.workspace_trusted = options.get("workspaceTrusted") is True
        ls.command_links = options.get("commandLinks") is True
        if "settings" in options:
            ls.set_settings(options.get("settings"))
        interpreter = options.get("interpreter")  # whose sys.path resolves installed packages
        if isinstance(interpreter, list) and interpreter and all(isinstance(a, str) for a in interpreter):
            ls.workspace_index.interpreter = list(interpreter)
        for key in options:
            if key not in ("settings", "workspaceTrusted", "commandLinks", "interpreter"):
                ls.log_to_client(
                    f"gradguard: unknown initialization option {key!r} ignored", types.MessageType.Warning
                )
    elif options is not None:
        ls.log_to_client(
            "gradguard: initializationOptions must be an object; ignored", types.MessageType.Warning
        )
    try:
        encoding = ls.protocol.workspace.position_encoding
    except RuntimeError:
        encoding = None
    ls.encoding = _ENCODINGS.get(encoding, UTF16) if encoding else UTF16


def _has_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@server.feature(types.INITIALIZED)
async def initialized(ls: GradguardServer, params: types.InitializedParams) -> None:
    ls._loop, ls._loop_thread = asyncio.get_running_loop(), threading.get_ident()
    await register_file_watchers(ls)
    await pull_configuration(ls)
    await ls.workspace_index.start()


# and the Python files, for the project index; a .gitignore decides which files workspace mode checks
WATCHED_FILES = ["**/pyproject.toml", *WATCH_GLOBS, "**/.gitignore"]


async def register_file_watchers(ls: GradguardServer) -> bool:
    """Ask the client to report changes of every pyproject.toml (their `[tool.gradguard]` applies
    to the open files), as Ruff's server does; did_change_watched_files re-checks open files."""
    if not ls._capability("workspace.did_change_watched_files.dynamic_registration"):
        return False
    registration = types.Registration(
        id="gradguard-config-files",
        method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        register_options=types.DidChangeWatchedFilesRegistrationOptions(
            watchers=[types.FileSystemWatcher(glob_pattern=glob) for glob in WATCHED_FILES]
        ),
    )
    try:
        await asyncio.wait_for(
            ls.client_register_capability_async(types.RegistrationParams(registrations=[registration])),
            timeout=10,
        )
    except Exception as exc:  # noqa: BLE001 - the client may refuse; saving the file still works
        log.warning("registering the pyproject.toml watcher failed: %s", exc)
        return False
    return True


async def pull_configuration(ls: GradguardServer) -> bool:
    if not ls._capability("workspace.configuration"):
        return False
    folders = []
    try:
        folders = [f.uri for f in ls.workspace.folders.values()]
    except (RuntimeError, AttributeError):
        pass
    items = [types.ConfigurationItem(section="gradguard")]
    items += [types.ConfigurationItem(section="gradguard", scope_uri=uri) for uri in folders]
    try:
        values = await asyncio.wait_for(
            ls.workspace_configuration_async(types.ConfigurationParams(items=items)), timeout=10
        )
    except Exception as exc:  # noqa: BLE001 - the client may not answer; keep what we have  # noqa: BLE001
        log.warning("workspace/configuration failed: %s", exc)
        return False
    if not values:
        return False
    if values[0] is not None:
        ls.set_settings(values[0])
    for uri, value in zip(folders, values[1:]):
        if value is not None and value != values[0]:
            ls.set_settings(value, folder=uri)
    return True


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(ls: GradguardServer, params: types.DidChangeConfigurationParams) -> None:
    settings = params.settings
    pushed = isinstance(settings, dict) and "gradguard" in settings
    if pushed and isinstance(settings, dict):
        ls.set_settings(settings["gradguard"])
    pulled = await pull_configuration(ls)
    if not pushed and not pulled and isinstance(settings, dict) and settings and set(settings) <= KNOWN_KEYS:
        ls.set_settings(settings)  # some clients send the section's content directly
    ls.projects.invalidate()
    ls.reanalyse_all()
    ls.workspace_index.configuration_changed()
    probe_features.refresh_inlay_hints(ls)  # `inlayHints.shapes` may have changed


@server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
async def did_change_workspace_folders(
    ls: GradguardServer, params: types.DidChangeWorkspaceFoldersParams
) -> None:
    for removed in params.event.removed or ():
        ls._folder_settings.pop(removed.uri, None)
    await pull_configuration(ls)
    ls.projects.invalidate()
    ls.reanalyse_all()
    ls.workspace_index.configuration_changed()


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched_files(ls: GradguardServer, params: types.DidChangeWatchedFilesParams) -> None:
    if any(change.uri.endswith("pyproject.toml") for change in params.changes):
        ls.projects.invalidate()
        ls.reanalyse_all()
    ls.workspace_index.files_changed(list(params.changes))  # Python files, notebooks, pyproject.toml


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: GradguardServer, params: types.DidOpenTextDocumentParams) -> None:
    item = params.text_document
    ls.store.open(item.uri, item.text, item.version, item.language_id)
    ls._states.pop(item.uri, None)
    ls._analysed.pop(item.uri, None)
    ls.workspace_index.document_opened(item.uri)
    if ls.analysable(item.uri) and ls.settings_for(item.uri).enable:
        ls.schedule(item.uri, 0)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: GradguardServer, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    doc = ls.store.get(uri)
    if doc is None:
        log.warning("didChange for a document that is not open: %s", uri)
        return
    for change in params.content_changes:
        doc.apply_change(change, ls.encoding)
    doc.version = params.text_document.version
    _sync_pygls_document(ls, doc)
    had_extras = bool(ls._extras.pop(uri, None))
    _extras_after_change(ls, uri)
    settings = ls.settings_for(uri)
    if not settings.enable or not ls.analysable(uri):
        return
    if settings.lint_on_change:
        ls.schedule(uri)
    elif had_extras:
        ls._republish(uri)


def _extras_after_change(ls: GradguardServer, uri: str) -> None:
    """Extras that outlive an edit are set again by their owners (the probe keeps the results of
    classes whose text did not change); the next publish shows them."""
    for name, hook in getattr(ls, "extras_after_change", {}).items():
        try:
            hook(ls, uri)
        except Exception:  # a broken hook must not stop the checks
            log.exception("%s: keeping extra findings after a change failed", name)


def _sync_pygls_document(ls: GradguardServer, doc: TextDoc) -> None:
    """Keep pygls's copy (workspace.get_text_document) current without its per-change re-split."""
    try:
        pygls_doc = ls.workspace._text_documents.get(doc.uri)
    except RuntimeError:
        return
    if pygls_doc is not None:
        pygls_doc._source = doc.text
        pygls_doc.version = doc.version


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: GradguardServer, params: types.DidSaveTextDocumentParams) -> None:
    uri = params.text_document.uri
    if uri.endswith("pyproject.toml"):
        ls.projects.invalidate()
        ls.reanalyse_all()
        return
    if ls.store.get(uri) is not None and ls.analysable(uri) and ls.settings_for(uri).enable:
        ls.schedule(uri, 0)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: GradguardServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.store.close(uri)
    ls.forget(uri)
    if not ls.workspace_index.document_closed(uri):  # workspace mode keeps the file's diagnostics
        ls.clear_diagnostics(uri)


# -- notebooks ----------------------------------------------------------------------------------
def _open_cells(ls: GradguardServer, notebook_uri: str, items) -> None:
    for item in items or ():
        doc = ls.store.open(item.uri, item.text, item.version, item.language_id)
        doc.notebook = notebook_uri


@server.feature(types.NOTEBOOK_DOCUMENT_DID_OPEN)
def notebook_did_open(ls: GradguardServer, params: types.DidOpenNotebookDocumentParams) -> None:
    nb = params.notebook_document
    notebook = Notebook(
        nb.uri, nb.notebook_type, nb.version, [Cell(c.document, int(c.kind)) for c in nb.cells]
    )
    ls.store.notebooks[nb.uri] = notebook
    _open_cells(ls, nb.uri, params.cell_text_documents)
    ls.workspace_index.document_opened(nb.uri)
    ls._states.pop(nb.uri, None)
    ls._analysed.pop(nb.uri, None)
    if ls.settings_for(nb.uri).enable:
        ls.schedule(nb.uri, 0)


@server.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
def notebook_did_change(ls: GradguardServer, params: types.DidChangeNotebookDocumentParams) -> None:
    notebook = ls.store.notebooks.get(params.notebook_document.uri)
    if notebook is None:
        return
    notebook.version = params.notebook_document.version
    cells = params.change.cells
    if cells is not None:
        if cells.structure is not None:
            array = cells.structure.array
            new = [Cell(c.document, int(c.kind)) for c in (array.cells or [])]
            notebook.cells[array.start : array.start + array.delete_count] = new
            _open_cells(ls, notebook.uri, cells.structure.did_open)
            for closed in cells.structure.did_close or ():
                ls.store.close(closed.uri)
                ls._extras.pop(closed.uri, None)
                ls.clear_diagnostics(closed.uri)
        for changed in cells.data or ():
            for cell in notebook.cells:
                if cell.uri == changed.document:
                    cell.kind = int(changed.kind)
        for content in cells.text_content or ():
            doc = ls.store.get(content.document.uri)
            if doc is None:
                continue
            for change in content.changes:
                doc.apply_change(change, ls.encoding)
            doc.version = content.document.version
            ls._extras.pop(doc.uri, None)
    _extras_after_change(ls, notebook.uri)
    settings = ls.settings_for(notebook.uri)
    if settings.enable and settings.lint_on_change:
        ls.schedule(notebook.uri)


@server.feature(types.NOTEBOOK_DOCUMENT_DID_SAVE)
def notebook_did_save(ls: GradguardServer, params: types.DidSaveNotebookDocumentParams) -> None:
    if (
        params.notebook_document.uri in ls.store.notebooks
        and ls.settings_for(params.notebook_document.uri).enable
    ):
        ls.schedule(params.notebook_document.uri, 0)


@server.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
def notebook_did_close(ls: GradguardServer, params: types.DidCloseNotebookDocumentParams) -> None:
    uri = params.notebook_document.uri
    notebook = ls.store.notebooks.pop(uri, None)
    task = ls._tasks.pop(uri, None)
    if task is not None:
        task.cancel()
    ls._states.pop(uri, None)
    uris = {c.uri for c in notebook.cells} if notebook else set()
    uris |= {c.uri for c in params.cell_text_documents}
    for cell_uri in uris:
        ls.store.close(cell_uri)
        ls._extras.pop(cell_uri, None)
        ls.clear_diagnostics(cell_uri)
    ls._notebook_cells_published.pop(uri, None)
    ls.forget(uri, sorted(uris))
    ls.workspace_index.document_closed(uri)  # workspace mode: the notebook's file gets its diagnostics


# -- code actions ---------------------------------------------------------------------------------
def _overlaps(finding: Finding, start: tuple[int, int], end: tuple[int, int]) -> bool:
    """Does the finding (1-based) touch the 0-based code-point range [start, end]?"""
    f_start = (finding.line - 1, finding.column - 1)
    f_end = (finding.end_line - 1, finding.end_column - 1)
    return f_start <= end and start <= f_end


def _kind_wanted(kind: str, only: list[str] | None) -> bool:
    if not only:
        return True
    return any(kind == o or kind.startswith(o + ".") for o in only)


def _suppress_edit(doc: TextDoc, finding: Finding, encoding: str) -> types.TextEdit:
    """Add the code to a `# noqa:` / `# gradguard: ignore[...]` comment on the finding's
    line, or add a new `# noqa:` comment at the end of the line."""
    index = max(0, min(finding.line - 1, len(doc.lines) - 1))
    at, text = line_suppression(content_of(doc.lines[index]) if doc.lines else "", finding.code)
    pos = types.Position(*doc.client_position(index, at, encoding))
    return types.TextEdit(range=types.Range(pos, pos), new_text=text)


def _suppress_file_edit(doc: TextDoc, code: str, encoding: str) -> types.TextEdit:
    """Add the code to the file's `# gradguard: noqa: ...` line, or add that line at the top of
    the file (after a shebang and an encoding declaration)."""
    index, at, text = file_suppression(doc.lines, code)
    pos = types.Position(*doc.client_position(index, at, encoding)) if at else types.Position(index, 0)
    return types.TextEdit(range=types.Range(pos, pos), new_text=text)


def _lazy_resolve_supported(ls: GradguardServer) -> bool:
    support = ls._capability("text_document.code_action.resolve_support")
    return bool(support and "edit" in (support.properties or []))


def _literal_support(ls: GradguardServer) -> bool:
    return bool(ls._capability("text_document.code_action.code_action_literal_support"))


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL_KIND],
        resolve_provider=True,
    ),
)
async def code_action(ls: GradguardServer, params: types.CodeActionParams):
    uri = params.text_document.uri
    current = await ls.current_findings(uri)
    if current is None:
        return None
    doc, findings = current
    version = doc.version
    if not _literal_support(ls):
        return None  # clients without CodeAction literals get commands only: not offered
    encoding = ls.encoding
    start = doc.position(params.range.start.line, params.range.start.character, encoding)
    end = doc.position(params.range.end.line, params.range.end.character, encoding)
    only = list(params.context.only) if params.context and params.context.only else None
    lazy = _lazy_resolve_supported(ls)
    diagnostics_by_key = {}
    for diag in (params.context.diagnostics if params.context else []) or []:
        diagnostics_by_key[(diag.code, diag.range.start.line, diag.range.start.character)] = diag
    actions: list[types.CodeAction] = []
    quickfix = _kind_wanted(types.CodeActionKind.QuickFix, only)
    seen_codes: set[str] = set()
    file_disabled: set[str] = set()
    fix_all_diagnostics: list[types.Diagnostic] = []
    for finding in findings:
        if not quickfix or not _overlaps(finding, start, end):
            continue
        diagnostic = ls.finding_to_diagnostic(uri, finding)
        diagnostic = diagnostics_by_key.get(
            (finding.code, diagnostic.range.start.line, diagnostic.range.start.character), diagnostic
        )
        fix_actions = await _fix_actions(ls, uri, doc, version, finding, diagnostic, lazy)
        if fix_actions is None:
            return None  # the text changed meanwhile: the client asks again
        actions += fix_actions
        if finding.source == "gradguard":
            actions += _suppress_actions(ls, uri, doc, version, finding, diagnostic, file_disabled)
            fix_all_diagnostics.append(diagnostic)
        if finding.code not in seen_codes and rule_class(finding.code) is not None:
            seen_codes.add(finding.code)
            actions.append(_docs_action(finding.code, diagnostic))
    actions += await _fix_all_actions(ls, uri, doc, findings, fix_all_diagnostics, only, lazy)
    return actions or None


async def _fix_actions(
    ls: GradguardServer,
    uri: str,
    doc: TextDoc,
    version: int | None,
    finding: Finding,
    diagnostic: types.Diagnostic,
    lazy: bool,
) -> list[types.CodeAction] | None:
    """A quick fix for the finding's fix and each alternative: with its edit computed now, or
    (`lazy`) on codeAction/resolve. None when the document changed while the edits were computed."""
    actions = []
    fixes = ([finding.fix] if finding.fix else []) + list(finding.alternatives)
    for fix_index, fix in enumerate(fixes):
        data = {
            "uri": uri,
            "version": doc.version,
            "kind": "fix",
            "finding": [finding.code, finding.line, finding.column, finding.end_line, finding.end_column],
            "fix": fix_index,
            "title": fix.title,
        }
        action = types.CodeAction(
            title=fix.title,
            kind=types.CodeActionKind.QuickFix,
            diagnostics=[diagnostic],
            is_preferred=bool(fix_index == 0 and fix.safe),
            data=data,
        )
        if not lazy:
            edits = await ls.in_engine(ls.fix_edits, doc, fix)
            if doc.version != version:
                return None
            if not edits:
                continue
            action.edit = ls.workspace_edit({uri: edits}, {uri: version})
        actions.append(action)
    return actions


def _suppress_actions(
    ls: GradguardServer,
    uri: str,
    doc: TextDoc,
    version: int | None,
    finding: Finding,
    diagnostic: types.Diagnostic,
    file_disabled: set[str],
) -> list[types.CodeAction]:
    """ "Ignore on this line", and (once per code) "Disable for this file"."""
    encoding = ls.encoding
    actions = [
        types.CodeAction(
            title=f"Ignore {finding.code} on this line",
            kind=types.CodeActionKind.QuickFix,
            diagnostics=[diagnostic],
            edit=ls.workspace_edit({uri: [_suppress_edit(doc, finding, encoding)]}, {uri: version}),
        )
    ]
    if finding.code not in file_disabled:
        file_disabled.add(finding.code)
        actions.append(
            types.CodeAction(
                title=f"Disable {finding.code} for this file",
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[diagnostic],
                edit=ls.workspace_edit(
                    {uri: [_suppress_file_edit(doc, finding.code, encoding)]}, {uri: version}
                ),
            )
        )
    return actions


def _docs_action(code: str, diagnostic: types.Diagnostic) -> types.CodeAction:
    return types.CodeAction(
        title=f"Show documentation for {code}",
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[diagnostic],
        command=types.Command(
            title=f"Show documentation for {code}", command=CMD_SHOW_DOCS, arguments=[code]
        ),
    )


async def _fix_all_actions(
    ls: GradguardServer,
    uri: str,
    doc: TextDoc,
    findings: list[Finding],
    fix_all_diagnostics: list[types.Diagnostic],
    only: list[str] | None,
    lazy: bool,
) -> list[types.CodeAction]:
    """The fix-all action, when a finding of the file has a safe fix."""
    has_safe_fix = any(f.fix is not None and f.fix.safe for f in findings)
    # The same fix-all twice: as the source action (`editor.codeActionsOnSave`, "Source Action...")
    # and in the Ctrl+. menu of a gradguard diagnostic, as ESLint and Ruff offer it.
    fix_all_kinds: list[tuple[str, list[types.Diagnostic] | None]] = []
    if has_safe_fix and fix_all_diagnostics:
        fix_all_kinds.append((types.CodeActionKind.QuickFix, fix_all_diagnostics))
    if has_safe_fix and _kind_wanted(FIX_ALL_KIND, only):
        fix_all_kinds.append((FIX_ALL_KIND, None))
    actions = []
    for kind, diagnostics in fix_all_kinds:
        action = types.CodeAction(
            title=FIX_ALL_TITLE,
            kind=kind,
            diagnostics=diagnostics,
            data={"uri": uri, "version": doc.version, "kind": "fixAll"},
        )
        if lazy:
            actions.append(action)  # the edits are computed on codeAction/resolve
        elif only:
            # asked for by kind (e.g. on save): the client wants the edit itself
            edits, count, versions = await ls.in_engine(ls.fix_all_edits, uri)
            if count:
                action.edit = ls.workspace_edit(edits, versions)
                actions.append(action)
        elif ls._capability("workspace.apply_edit"):
            # offered with the lightbulb: never compute every fix of the file just to list it
            # (seconds on a large file); the command computes and applies them when chosen
            action.data = None
            action.command = types.Command(
                title=action.title, command=CMD_FIX_ALL, arguments=[uri, doc.version]
            )
            actions.append(action)
    return actions


@server.feature(types.CODE_ACTION_RESOLVE)
async def code_action_resolve(ls: GradguardServer, action: types.CodeAction) -> types.CodeAction:
    data = action.data if isinstance(action.data, dict) else {}
    uri = data.get("uri")
    if not isinstance(uri, str):
        return action
    current = await ls.current_findings(uri)
    if current is None:
        return action
    doc, findings = current
    if data.get("version") != doc.version:
        return action  # computed for another version of the text: no edit
    if data.get("kind") == "fixAll":
        edits, count, versions = await ls.in_engine(ls.fix_all_edits, uri)
        if count:
            action.edit = ls.workspace_edit(edits, versions)
        return action
    wanted = data.get("finding")
    for finding in findings:
        if [finding.code, finding.line, finding.column, finding.end_line, finding.end_column] != wanted:
            continue
        fixes = ([finding.fix] if finding.fix else []) + list(finding.alternatives)
        index = data.get("fix", 0)
        if isinstance(index, int) and 0 <= index < len(fixes) and fixes[index].title == data.get("title"):
            version = doc.version
            edits = await ls.in_engine(ls.fix_edits, doc, fixes[index])
            if edits and doc.version == version:
                action.edit = ls.workspace_edit({uri: edits}, {uri: version})
        break
    return action


# -- hover ----------------------------------------------------------------------------------------
@server.feature(types.TEXT_DOCUMENT_HOVER)
async def hover(ls: GradguardServer, params: types.HoverParams) -> types.Hover | None:
    uri = params.text_document.uri
    doc = ls.store.get(uri)
    if doc is None:
        return None
    line, column = doc.position(params.position.line, params.position.character, ls.encoding)
    entry = ls.published.get(uri)
    findings = list(entry[1]) if entry else []
    for extra in ls._extras.get(uri, {}).values():
        findings.extend(extra)
    markdown = _markdown_supported(ls)
    parts: list[str] = []
    hit_range = None
    seen = set()
    for finding in findings:
        if _overlaps(finding, (line, column), (line, column)) and finding.code not in seen:
            seen.add(finding.code)
            link = documentation.docs_link(finding.code, ls.command_links)
            parts.append(documentation.finding_hover(finding, markdown, link))
            hit_range = lsp_range(
                doc, finding.line, finding.column, finding.end_line, finding.end_column, ls.encoding
            )
    if line < len(doc.lines) and doc.notebook is None:
        try:
            shape = await ls.in_engine(ls.shape_hover, uri, line + 1, column, ls.measured_shapes(uri))
        except Exception:  # noqa: BLE001 - the shape line is an extra; the hover must still answer
            log.exception("shape hover failed for %s", uri)
            shape = None
        if shape:
            parts.insert(0, f"`{shape}`" if markdown else shape)
            if hit_range is None:
                found = hover_notes.word_at(content_of(doc.lines[line]), column)
                if found is not None:
                    _, start, end = found
                    hit_range = types.Range(
                        types.Position(*doc.client_position(line, start, ls.encoding)),
                        types.Position(*doc.client_position(line, end, ls.encoding)),
                    )
    if not parts and line < len(doc.lines):
        note = hover_notes.note_for(content_of(doc.lines[line]), column)
        if note is not None:
            text, start, end = note
            parts.append(text)
            hit_range = types.Range(
                types.Position(*doc.client_position(line, start, ls.encoding)),
                types.Position(*doc.client_position(line, end, ls.encoding)),
            )
    if not parts:
        return None
    value = "\n\n---\n\n".join(parts)
    kind = types.MarkupKind.Markdown if markdown else types.MarkupKind.PlainText
    return types.Hover(contents=types.MarkupContent(kind=kind, value=value), range=hit_range)


# -- inlay hints ----------------------------------------------------------------------------------
@server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False))
async def inlay_hint(ls: GradguardServer, params: types.InlayHintParams) -> list[types.InlayHint]:
    """The shape after assignments (setting `inlayHints.shapes`: forward | all | off)."""
    uri = params.text_document.uri
    mode = ls.settings_for(uri).inlay_shapes
    doc = ls.store.get(uri)
    if mode == "off" or doc is None or doc.notebook is not None or not ls.analysable(uri):
        return []
    first, last = params.range.start.line + 1, params.range.end.line + 1
    try:
        hints = await ls.in_engine(ls.shape_hints, uri, first, last, mode, ls.measured_shapes(uri))
    except Exception:  # noqa: BLE001 - no hints rather than an error popup
        log.exception("inlay hints failed for %s", uri)
        return []
    out = []
    for hint in hints:
        if hint.line - 1 >= len(doc.lines):
            continue
        line, character = doc.client_position(hint.line - 1, hint.column, ls.encoding)
        label = hint.label + (" (measured)" if hint.measured else "")
        out.append(
            types.InlayHint(
                position=types.Position(line=line, character=character),
                label=label,
                kind=types.InlayHintKind.Type,
                tooltip=hint.tooltip or None,
            )
        )
    return out


def _markdown_supported(ls: GradguardServer) -> bool:
    formats = ls._capability("text_document.hover.content_format")
    return bool(formats) and types.MarkupKind.Markdown in formats


# -- commands -------------------------------------------------------------------------------------
@server.command(CMD_EXPLAIN)
def explain_rule(ls: GradguardServer, *args: Any) -> str:
    if not args or not isinstance(args[0], str):
        raise JsonRpcInvalidParams(f'{CMD_EXPLAIN} expects a rule code, e.g. ["GG202"]')
    rule = rule_class(args[0].strip())
    if rule is None:
        raise JsonRpcInvalidParams(f"unknown rule {args[0]!r}")
    return rule.full_explanation()


@server.command(CMD_SHOW_DOCS)
async def show_documentation(ls: GradguardServer, *args: Any) -> bool:
    """Opens the rule's explanation, a local markdown file, in the editor (the VS Code extension
    shows it as a preview itself and never sends this command)."""
    rule = rule_class(str(args[0])) if args else None
    if rule is None:
        return False
    path = documentation.explanation_file(rule.code)
    if path is not None and ls._capability("window.show_document"):
        try:
            result = await ls.window_show_document_async(
                types.ShowDocumentParams(uri=path.as_uri(), external=False, take_focus=True)
            )
            return bool(result and result.success)
        except Exception as exc:  # noqa: BLE001
            log.warning("showDocument failed: %s", exc)
    where = str(path) if path is not None else f"gradguard explain {rule.code}"
    ls.window_show_message(
        types.ShowMessageParams(type=types.MessageType.Info, message=f"{rule.code} {rule.name}: {where}")
    )
    return True


@server.command(CMD_DEBUG_TEXT)
def debug_document_text(ls: GradguardServer, *args: Any) -> str | None:
    if not args or not isinstance(args[0], str):
        raise JsonRpcInvalidParams(f"{CMD_DEBUG_TEXT} expects a document uri")
    return ls.get_document_text(args[0])


@server.command(CMD_DEBUG_STATS)
def debug_stats(ls: GradguardServer, *args: Any) -> list[dict]:
    """Recent analyses (for tests and benchmarks): how each version was parsed and how
    long the engine took, optionally only for one uri."""
    uri = args[0] if args and isinstance(args[0], str) else None
    return [
        {"uri": key, "version": version, "parse": mode, "reparsed_lines": lines, "analysis_ms": ms}
        for key, version, mode, lines, ms in ls.stats
        if uri is None or key == uri
    ]


@server.command(CMD_FIX_ALL)
async def fix_all(ls: GradguardServer, *args: Any) -> dict:
    if not args or not isinstance(args[0], str):
        raise JsonRpcInvalidParams(f"{CMD_FIX_ALL} expects [uri, version?]")
    uri = args[0]
    doc = ls.store.get(uri)
    if doc is None:
        return {"applied": False, "fixes": 0, "reason": "document not open"}
    if len(args) > 1 and args[1] is not None and args[1] != doc.version:
        return {
            "applied": False,
            "fixes": 0,
            "reason": f"document is at version {doc.version}, not {args[1]}",
        }
    edits, count, versions = await ls.in_engine(ls.fix_all_edits, uri)
    if not count:
        return {"applied": False, "fixes": 0, "reason": "nothing to fix"}
    params = types.ApplyWorkspaceEditParams(edit=ls.workspace_edit(edits, versions), label=FIX_ALL_TITLE)
    ls._apply_edits += 1
    msg_id = f"gradguard-apply-edit-{ls._apply_edits}"
    try:
        # a client that never answers must not keep this request (and shutdown) waiting
        result = await asyncio.wait_for(
            ls.protocol.send_request_async(types.WORKSPACE_APPLY_EDIT, params, msg_id=msg_id),
            timeout=APPLY_EDIT_TIMEOUT,
        )
    except asyncio.TimeoutError:
        ls.protocol._request_futures.pop(msg_id, None)  # a late answer is then ignored
        log.warning("workspace/applyEdit not answered within %g s", APPLY_EDIT_TIMEOUT)
        return {
            "applied": False,
            "fixes": 0,
            "reason": f"the editor did not answer workspace/applyEdit within {APPLY_EDIT_TIMEOUT:g} s",
        }
    except Exception as exc:  # noqa: BLE001
        return {"applied": False, "fixes": 0, "reason": f"workspace/applyEdit failed: {exc}"}
    applied = bool(getattr(result, "applied", False))
    return {"applied": applied, "fixes": count if applied else 0}


# -- probe features (code lens, gradguard.runProbe) live in their own module ---------------------
try:
    from gradguard.lsp import probe_features

    probe_features.register(server)
except ImportError as _exc:  # pragma: no cover - depends on the optional module
    log.info("probe features not available: %s", _exc)

register_workspace_commands(server)


def start(log_level: str = "info") -> None:
    """Run the server on stdio (used by `gradguard lsp`); never returns."""
    from gradguard import proctree
    from gradguard.lsp.transport import serve_stdio

    level = getattr(logging, str(log_level).upper(), logging.INFO)
    logging.basicConfig(
        stream=sys.stderr, level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    # pygls logs every message body at INFO: keep its own loggers quiet unless debugging
    logging.getLogger("pygls").setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
    # everything the server starts (probe runs, and whatever they start) stays in its tree:
    # orphans are re-parented to the server, which kills them all when it exits
    if proctree.set_subreaper():
        log.info("the server is the subreaper of the processes it starts")
    code = serve_stdio(server, on_exit=proctree.kill_descendants)
    _exit_now(code)


def _exit_now(code: int) -> None:
    """Exit without waiting for the engine thread (a long analysis) or the stdin reader."""
    logging.shutdown()
    try:
        sys.stderr.flush()
    finally:
        os._exit(code)
