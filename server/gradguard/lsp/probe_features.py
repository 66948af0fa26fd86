"""The probe in the editor: code lenses and the `gradguard.runProbe` command.

* "Check gradient flow" above every `nn.Module` subclass and "Run gradcheck" above
  every `torch.autograd.Function` subclass (found statically, without torch);
* `gradguard.runProbe [uri, target?]` runs the probe in a subprocess (asyncio, off the
  event loop; cancelling the request, or `gradguard.cancelProbe [uri]`, kills it),
  only in a trusted workspace and when `gradguard.probe.enable` is on, and publishes
  the findings as diagnostics with source "gradguard-probe" (the server clears them
  when the document changes);
* results are cached by the document's content hash, per target.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import logging
import os
import sys
from collections import OrderedDict
from typing import Any

from lsprotocol import types

from gradguard.engine.finding import Finding
from gradguard.engine.index import ModuleContext
from gradguard.engine.source import SourceFile, utf16_column
from gradguard.lsp.diskread import read_unopened
from gradguard.lsp.documents import uri_to_path

log = logging.getLogger(__name__)

CMD_RUN_PROBE = "gradguard.runProbe"
CMD_CANCEL_PROBE = "gradguard.cancelProbe"
LENS_MODULE = "Check gradient flow"
LENS_FUNCTION = "Run gradcheck"
UNTRUSTED_MESSAGE = (
    "gradguard: the gradient probe executes your code with torch, with your permissions, so it "
    "only runs in a trusted workspace. It is not a security sandbox, and code that wants to can "
    "fake its results. Trust this folder (Workspaces: Manage Workspace Trust) to use it."
)
_CACHE_SIZE = 64


class ProbeState:
    """Per-server probe bookkeeping."""

    def __init__(self) -> None:
        # (uri, content hash, target) -> findings
        self.cache: OrderedDict[tuple[str, str, str | None], list[Finding]] = OrderedDict()
        # uri -> (content hash, {target: findings}) of what is shown now
        self.shown: dict[str, tuple[str, dict[str | None, list[Finding]]]] = {}
        self.running: dict[str, asyncio.Task] = {}
        self.runs = 0  # probe subprocess runs started
        self.progress_count = 0
        self.lenses: dict[str, tuple[str, list[types.CodeLens]]] = {}  # uri -> (content hash, lenses)

    def forget(self, uri: str) -> None:
        """Drop what is kept for a closed document (its lenses, shown and cached results)."""
        self.lenses.pop(uri, None)
        self.shown.pop(uri, None)
        for key in [k for k in self.cache if k[0] == uri]:
            del self.cache[key]

    def remember(self, key: tuple[str, str, str | None], findings: list[Finding]) -> None:
        self.cache[key] = findings
        self.cache.move_to_end(key)
        while len(self.cache) > _CACHE_SIZE:
            self.cache.popitem(last=False)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def probe_targets(text: str) -> list[tuple[str, str, int, int]]:
    """(kind, class name, 0-based line, 0-based UTF-16 column) of every top-level
    nn.Module / autograd.Function subclass; [] when the text does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    source = SourceFile(text)
    module = ModuleContext(tree, source)
    if not module.imports_torch:
        return []
    from gradguard.probe.targets import has_forward

    classes = {s.name: s for s in tree.body if isinstance(s, ast.ClassDef)}
    found = []
    for stmt in tree.body:
        if not isinstance(stmt, ast.ClassDef):
            continue
        if module.is_module_class(stmt.name):
            if not has_forward(stmt, module, classes):
                continue  # nothing to run (a container with act()/evaluate() methods)
            kind = "module"
        elif module.is_function_class(stmt.name):
            kind = "function"
        else:
            continue
        line = stmt.lineno
        column = utf16_column(source.line_text(line), source.char_column(line, stmt.col_offset))
        found.append((kind, stmt.name, line - 1, column))
    return found


def code_lenses(uri: str, text: str) -> list[types.CodeLens]:
    lenses = []
    for kind, name, line, column in probe_targets(text):
        title = LENS_MODULE if kind == "module" else LENS_FUNCTION
        position = types.Position(line=line, character=column)
        lenses.append(
            types.CodeLens(
                range=types.Range(start=position, end=position),
                command=types.Command(title=title, command=CMD_RUN_PROBE, arguments=[uri, name]),
            )
        )
    return lenses


def _probe_settings(ls: Any, uri: str) -> dict:
    try:
        settings = ls.settings_for(uri)
    except Exception:  # noqa: BLE001 - a settings problem must not break the lens
        return {"enable": True, "timeout": 20.0}
    probe = getattr(settings, "probe", None)
    if isinstance(settings, dict):
        probe = settings.get("probe")
    return probe if isinstance(probe, dict) else {"enable": True, "timeout": 20.0}


async def _document_text(ls: Any, uri: str) -> str | None:
    """The open document's text, else the file's (a regular UTF-8 file, bounded, read off the
    event loop: a FIFO or /dev/zero named in a URI must not block the server)."""
    getter = getattr(ls, "get_document_text", None)
    text = getter(uri) if getter is not None else None
    if text is None:
        text = await read_unopened(uri)
    return text


def _show(ls: Any, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
    try:
        ls.window_show_message(types.ShowMessageParams(type=kind, message=message))
    except Exception as exc:  # noqa: BLE001
        log.info("showMessage failed: %s (%s)", exc, message)


def _python(ls: Any, uri: str) -> str:
    settings = _probe_settings(ls, uri)
    return settings.get("python") or os.environ.get("GRADGUARD_PROBE_PYTHON") or sys.executable


async def run_probe_command(ls: Any, state: ProbeState, args: tuple) -> dict:
    from gradguard.probe.report import UnknownTarget, probe_source

    if not args or not isinstance(args[0], str):
        return {"ran": False, "reason": f"{CMD_RUN_PROBE} expects [uri, target?]"}
    uri = args[0]
    target = args[1] if len(args) > 1 and isinstance(args[1], str) and args[1] else None
    if not getattr(ls, "workspace_trusted", False):
        _show(ls, UNTRUSTED_MESSAGE, types.MessageType.Warning)
        return {"ran": False, "reason": "untrusted"}
    settings = _probe_settings(ls, uri)
    if settings.get("enable") is False:
        _show(ls, "gradguard: the gradient probe is disabled (setting gradguard.probe.enable).")
        return {"ran": False, "reason": "disabled"}
    text = await _document_text(ls, uri)
    if text is None:
        return {"ran": False, "reason": "document not found"}
    digest = content_hash(text)
    key = (uri, digest, target)
    cached = key in state.cache
    notes: list[str] = []
    seconds = 0.0
    isolation = ""  # a cached result: said when it ran
    if cached:
        findings = state.cache[key]
    else:
        previous = state.running.pop(uri, None)
        if previous is not None and not previous.done():
            previous.cancel()  # a newer run of the same file wins
        path = uri_to_path(uri)
        timeout = float(settings.get("timeout") or 20.0)
        state.runs += 1
        task = asyncio.ensure_future(
            probe_source(
                text,
                path,
                target=target,
                python=_python(ls, uri),
                timeout=timeout,
                memory_mb=int(settings.get("memoryMb") or 4096),
                cwd=os.path.dirname(path) if os.path.isabs(path) else None,
            )
        )
        state.running[uri] = task
        token = await _begin_progress(
            ls, state, f"gradguard: probing {target or os.path.basename(path)}", task
        )
        try:
            report = await task
        except asyncio.CancelledError:
            task.cancel()
            _show(ls, f"gradguard: probe of {target or os.path.basename(uri_to_path(uri))} cancelled.")
            outer = asyncio.current_task()
            cancelling = getattr(outer, "cancelling", None)
            if cancelling is None or cancelling():
                raise  # the request itself was cancelled
            return {"ran": False, "reason": "cancelled"}
        except UnknownTarget as exc:
            _show(ls, f"gradguard: {exc}", types.MessageType.Warning)
            return {"ran": False, "reason": str(exc)}
        except Exception as exc:
            log.exception("probe failed")
            _show(ls, f"gradguard: the probe could not start: {exc}", types.MessageType.Error)
            return {"ran": False, "reason": str(exc)}
        finally:
            if state.running.get(uri) is task:
                del state.running[uri]
            _end_progress(ls, token, task)
        if report.error:
            _show(ls, f"gradguard: {report.error}", types.MessageType.Warning)
            return {"ran": False, "reason": report.error}
        findings = report.findings
        notes = [f"{n.name}: {n.summary}" for n in report.notes]
        seconds = report.seconds
        isolation = report.isolation_summary
        log.info("probe of %s: %s", uri, isolation)
        state.remember(key, findings)
    # publish only if the document still has the text the probe ran on
    current = await _document_text(ls, uri)
    if current is None or content_hash(current) != digest:
        return {"ran": True, "published": False, "reason": "the document changed while the probe ran"}
    shown_hash, by_target = state.shown.get(uri, ("", {}))
    if shown_hash != digest:
        by_target = {}
    if target is None:
        by_target = {None: findings}
    else:
        by_target.pop(None, None)
        by_target[target] = findings
    state.shown[uri] = (digest, by_target)
    combined = [f for group in by_target.values() for f in group]
    try:
        from gradguard.probe.report import apply_config

        combined = apply_config(combined, ls.config_for(uri))
    except Exception as exc:  # noqa: BLE001 - a config problem must not hide the results
        log.info("probe findings not filtered by config: %s", exc)
    ls.set_extra_findings(uri, "probe", combined)
    what = target or "all targets"
    problems = f"{len(findings)} problem{'s' if len(findings) != 1 else ''}" if findings else "no problems"
    timing = " (cached)" if cached else f" ({seconds:.1f} s)"
    _show(ls, f"gradguard probe, {what}: {problems}{timing}.")
    return {
        "ran": True,
        "published": True,
        "cached": cached,
        "findings": [f.to_dict() for f in findings],
        "notes": notes,
        "seconds": round(seconds, 3),
        "isolation": isolation,
    }


async def _begin_progress(ls: Any, state: ProbeState, title: str, task: asyncio.Task) -> str | None:
    """A cancellable work-done progress when the client supports it: the editor shows the
    run, and its cancel button kills the probe (window/workDoneProgress/cancel)."""
    capabilities = getattr(getattr(ls, "client_capabilities", None), "window", None)
    if not getattr(capabilities, "work_done_progress", False):
        return None
    state.progress_count += 1
    token = f"gradguard-probe-{state.progress_count}"
    progress = ls.work_done_progress
    try:
        await asyncio.wait_for(progress.create_async(token), timeout=5)
        progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=True))
    except Exception as exc:  # noqa: BLE001 - progress is a nicety; the probe runs anyway
        log.info("work done progress unavailable: %s", exc)
        progress.tokens.pop(token, None)
        return None
    future = progress.tokens.get(token)
    if future is not None:
        loop = asyncio.get_running_loop()

        def cancelled(done) -> None:
            if done.cancelled() and not task.done():
                loop.call_soon_threadsafe(task.cancel)

        future.add_done_callback(cancelled)
    return token


def _end_progress(ls: Any, token: str | None, task: asyncio.Task) -> None:
    if token is None:
        return
    progress = ls.work_done_progress
    try:
        message = "cancelled" if task.cancelled() else "done"
        progress.end(token, types.WorkDoneProgressEnd(message=message))
    except Exception as exc:  # noqa: BLE001
        log.info("work done progress end failed: %s", exc)
    progress.tokens.pop(token, None)


def register(server: Any) -> ProbeState:
    """Add the code lens feature and the probe commands to a pygls 2 LanguageServer."""
    state = ProbeState()
    server.probe_state = state

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    async def code_lens(ls: Any, params: types.CodeLensParams) -> list[types.CodeLens]:
        uri = params.text_document.uri
        if _probe_settings(ls, uri).get("enable") is False:
            return []
        text = await _document_text(ls, uri)
        if text is None:
            return []
        digest = content_hash(text)
        cached = state.lenses.get(uri)
        if cached is not None and cached[0] == digest:
            return cached[1]
        in_engine = getattr(ls, "in_engine", None)  # parsing a big file must not block the loop
        lenses = await in_engine(code_lenses, uri, text) if in_engine else code_lenses(uri, text)
        state.lenses[uri] = (digest, lenses)
        while len(state.lenses) > _CACHE_SIZE:
            state.lenses.pop(next(iter(state.lenses)))
        return lenses

    @server.command(CMD_RUN_PROBE)
    async def run_probe(ls: Any, *args: Any) -> dict:
        return await run_probe_command(ls, state, args)

    @server.command(CMD_CANCEL_PROBE)
    def cancel_probe(ls: Any, *args: Any) -> bool:
        uris = [args[0]] if args and isinstance(args[0], str) else list(state.running)
        cancelled = False
        for uri in uris:
            task = state.running.pop(uri, None)
            if task is not None and not task.done():
                task.cancel()
                cancelled = True
        return cancelled

    return state
