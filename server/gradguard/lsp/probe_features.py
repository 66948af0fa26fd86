"""The probe in the editor: code lenses and the `gradguard.runProbe` command.

* "Check gradient flow" above every `nn.Module` subclass and "Run gradcheck" above
  every `torch.autograd.Function` subclass (found statically, without torch), and "Check gradient
  flow of all modules in this file" above the first module when there are several; after a run the
  lens shows the last result ("✓ all 12 parameters get gradients · 1.1 s");
* `gradguard.runProbe [uri, target?]` runs the probe in a subprocess (asyncio, off the
  event loop; cancelling the request, or `gradguard.cancelProbe [uri]`, kills it),
  only in a trusted workspace and when `gradguard.probe.enable` is on, and publishes
  the findings as diagnostics with source "gradguard-probe";
* a target's results stay (moved along with the edits) until the text of its class changes;
  findings outside every class stay while the whole text is unchanged;
* a notebook's cells are probed as one program, like the static checks see them;
* a module the probe could not build for want of constructor values gets a quick fix that writes
  the `# gradguard: probe Net(...)` comment, filled from a call found in the project if any;
* while the file does not parse, the last lenses stay (moved with the edit), so the code below
  them does not jump while typing;
* runs are cached by the text's content hash, per target.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import hashlib
import logging
import os
import re
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from lsprotocol import types

from gradguard.engine.finding import Applicability, Finding, Fix, Severity, TextEdit
from gradguard.engine.incremental import LineDelta
from gradguard.engine.index import ModuleContext
from gradguard.engine.source import SourceFile, split_lines, utf16_column
from gradguard.lsp.diskread import read_unopened
from gradguard.lsp.documents import CellSpan, uri_to_path

log = logging.getLogger(__name__)

CMD_RUN_PROBE = "gradguard.runProbe"
CMD_CANCEL_PROBE = "gradguard.cancelProbe"
LENS_MODULE = "Check gradient flow"
LENS_FUNCTION = "Run gradcheck"
LENS_ALL = "Check gradient flow of all modules in this file"
LENS_ALL_NOTEBOOK = "Check gradient flow of all modules in this notebook"
UNTRUSTED_MESSAGE = (
    "gradguard: the gradient probe executes your code with torch, with your permissions, so it "
    "only runs in a trusted workspace. It is not a security sandbox, and code that wants to can "
    "fake its results. Trust this folder (Workspaces: Manage Workspace Trust) to use it."
)
_CACHE_SIZE = 64
_PROJECT_SEARCH_FILES = 2000
_PROJECT_SEARCH_SECONDS = 3.0


@dataclass(frozen=True)
class TargetInfo:
    """A probe target as the editor sees it."""

    kind: str  # "module" | "function"
    name: str
    line: int  # 1-based line of `class ...`
    column: int  # 0-based UTF-16 column of `class`
    start: int  # first line of the class, decorators included
    end: int  # last line of the class
    digest: str  # hash of the class's text: its results stay while this is unchanged
    required: tuple[str, ...] = ()  # parameters of __init__ without a default (modules)


@dataclass
class TargetResult:
    """The last probe result of one target, in the coordinates of the current text."""

    name: str
    kind: str
    digest: str
    line: int
    findings: list[Finding]
    title: str


@dataclass
class ProbeSource:
    """What the probe runs for a uri: the file, or a notebook's code cells as one program."""

    key: str  # the file's uri, or the notebook's
    text: str
    path: str
    spans: list[CellSpan] | None = None


class ProbeState:
    """Per-server probe bookkeeping."""

    def __init__(self) -> None:
        # (key, content hash, target) -> (findings, notes, seconds) of a run
        self.cache: OrderedDict[tuple[str, str, str | None], tuple[list[Finding], list, float]] = (
            OrderedDict()
        )
        # key -> {target name: its last result}
        self.results: OrderedDict[str, dict[str, TargetResult]] = OrderedDict()
        # key -> (content hash, findings outside every class)
        self.loose: dict[str, tuple[str, list[Finding]]] = {}
        # key -> the lines its results' positions refer to
        self.lines: dict[str, list[str]] = {}
        self.running: dict[str, asyncio.Task] = {}
        # key -> {class name: the shapes the meta pass measured in it}
        self.shapes: dict[str, dict[str, MeasuredShapes]] = {}
        self.runs = 0  # probe subprocess runs started
        self.progress_count = 0
        self.generation = 0  # bumped whenever results change (the lens titles depend on them)
        # uri -> (cache key, lenses, lines of the uri's text)
        self.lenses: OrderedDict[str, tuple[tuple, list[types.CodeLens], list[str]]] = OrderedDict()

    def forget(self, uri: str) -> None:
        """Drop what is kept for a closed document (its lenses, results and cached runs)."""
        self.lenses.pop(uri, None)
        self.results.pop(uri, None)
        self.loose.pop(uri, None)
        self.lines.pop(uri, None)
        for key in [k for k in self.cache if k[0] == uri]:
            del self.cache[key]

    def remember(self, key: tuple[str, str, str | None], value: tuple[list[Finding], list, float]) -> None:
        self.cache[key] = value
        self.cache.move_to_end(key)
        while len(self.cache) > _CACHE_SIZE:
            self.cache.popitem(last=False)

    def results_for(self, key: str) -> dict[str, TargetResult]:
        results = self.results.setdefault(key, {})
        self.results.move_to_end(key)
        while len(self.results) > _CACHE_SIZE:
            old, _ = self.results.popitem(last=False)
            self.loose.pop(old, None)
            self.lines.pop(old, None)
        return results


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def _required_params(cls: ast.ClassDef) -> tuple[str, ...]:
    init = next(
        (
            s
            for s in cls.body
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == "__init__"
        ),
        None,
    )
    if init is None:
        return ()
    positional = init.args.posonlyargs + init.args.args
    defaults = len(init.args.defaults)
    names = [a.arg for a in positional[1 : len(positional) - defaults]]
    names += [a.arg for a, d in zip(init.args.kwonlyargs, init.args.kw_defaults, strict=True) if d is None]
    return tuple(names)


def parse_targets(text: str) -> list[TargetInfo] | None:
    """Every top-level nn.Module (with a forward) and autograd.Function subclass; None when the
    text does not parse, [] when it does not import torch."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
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
        start = min([line] + [d.lineno for d in stmt.decorator_list])
        end = stmt.end_lineno or line
        column = utf16_column(source.line_text(line), source.char_column(line, stmt.col_offset))
        digest = content_hash("".join(source.lines[start - 1 : end]))
        required = _required_params(stmt) if kind == "module" else ()
        found.append(TargetInfo(kind, stmt.name, line, column, start, end, digest, required))
    return found


def probe_targets(text: str) -> list[tuple[str, str, int, int]]:
    """(kind, class name, 0-based line, 0-based UTF-16 column) of every target; [] when the
    text does not parse."""
    return [(t.kind, t.name, t.line - 1, t.column) for t in parse_targets(text) or []]


def code_lenses(uri: str, text: str) -> list[types.CodeLens]:
    """The lenses of a file without results."""
    return _build_lenses(uri, ProbeSource(uri, text, uri_to_path(uri)), parse_targets(text) or [], {})


def _span_of(spans: list[CellSpan], line: int) -> CellSpan | None:
    """The cell holding a 1-based line of the combined text."""
    for span in spans:
        if span.start < line <= span.start + span.count:
            return span
    return None


def _build_lenses(
    uri: str, src: ProbeSource, infos: list[TargetInfo], results: dict[str, TargetResult]
) -> list[types.CodeLens]:
    lenses = []
    modules = [i for i in infos if i.kind == "module"]
    for info in infos:
        line = info.line - 1
        if src.spans is not None:
            span = _span_of(src.spans, info.line)
            if span is None or span.uri != uri:
                continue
            line -= span.start
        position = types.Position(line=line, character=info.column)
        where = types.Range(start=position, end=position)
        result = results.get(info.name)
        if result is not None and result.digest == info.digest:
            title = result.title
        else:
            title = LENS_MODULE if info.kind == "module" else LENS_FUNCTION
        lenses.append(
            types.CodeLens(
                range=where,
                command=types.Command(title=title, command=CMD_RUN_PROBE, arguments=[uri, info.name]),
            )
        )
        if len(modules) > 1 and info is modules[0]:
            title = LENS_ALL if src.spans is None else LENS_ALL_NOTEBOOK
            lenses.append(
                types.CodeLens(
                    range=where, command=types.Command(title=title, command=CMD_RUN_PROBE, arguments=[uri])
                )
            )
    return lenses


def _kept_lenses(previous: list[types.CodeLens], old: list[str], new: list[str]) -> list[types.CodeLens]:
    """The last lenses moved along with the edit since (the text does not parse now): lines inside
    the edited region keep their number, clamped to its new end; lenses in deleted lines go."""
    change = LineDelta.between(old, new)
    region_deleted = change.new_end < change.start
    kept = []
    for lens in previous:
        line = change.map_line(lens.range.start.line + 1)
        if line is None:
            if region_deleted:
                continue
            line = min(lens.range.start.line + 1, change.new_end)
        position = types.Position(line=line - 1, character=lens.range.start.character)
        kept.append(types.CodeLens(range=types.Range(start=position, end=position), command=lens.command))
    return kept


def _doc_lines(ls: Any, uri: str, fallback: str) -> list[str]:
    store = getattr(ls, "store", None)
    doc = store.get(uri) if store is not None else None
    return list(doc.lines) if doc is not None else split_lines(fallback)


def _open_source(ls: Any, uri: str) -> ProbeSource | None:
    """The probe's source of an open document or notebook (None when it is not open)."""
    store = getattr(ls, "store", None)
    if store is not None:
        doc = store.get(uri)
        notebook_uri = doc.notebook if doc is not None and doc.notebook else uri
        notebook = store.notebooks.get(notebook_uri)
        if notebook is not None:
            text, spans = store.combined(notebook)
            return ProbeSource(notebook_uri, text, uri_to_path(notebook_uri), spans)
    text = _open_text(ls, uri)
    return ProbeSource(uri, text, uri_to_path(uri)) if text is not None else None


async def _probe_source(ls: Any, uri: str) -> ProbeSource | None:
    """The open document's source, else the file's (a regular UTF-8 file, bounded, read off the
    event loop: a FIFO or /dev/zero named in a URI must not block the server)."""
    src = _open_source(ls, uri)
    if src is not None:
        return src
    text = await read_unopened(uri)
    return ProbeSource(uri, text, uri_to_path(uri)) if text is not None else None


def _probe_settings(ls: Any, uri: str) -> dict:
    try:
        settings = ls.settings_for(uri)
    except Exception:  # noqa: BLE001 - a settings problem must not break the lens
        return {"enable": True, "timeout": 20.0}
    probe = getattr(settings, "probe", None)
    if isinstance(settings, dict):
        probe = settings.get("probe")
    return probe if isinstance(probe, dict) else {"enable": True, "timeout": 20.0}


def _open_text(ls: Any, uri: str) -> str | None:
    """The text of an open document, never the disk's: pygls's get_text_document reads an
    unopened file synchronously, which a FIFO named in a URI would block forever."""
    getter = getattr(ls, "get_document_text", None)
    if getter is not None:
        return getter(uri)
    try:
        doc = ls.workspace.text_documents.get(uri)
    except Exception:  # noqa: BLE001
        return None
    return doc.source if doc is not None else None


def _show(ls: Any, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
    try:
        ls.window_show_message(types.ShowMessageParams(type=kind, message=message))
    except Exception as exc:  # noqa: BLE001
        log.info("showMessage failed: %s (%s)", exc, message)


def _python(ls: Any, uri: str) -> str:
    settings = _probe_settings(ls, uri)
    return settings.get("python") or os.environ.get("GRADGUARD_PROBE_PYTHON") or sys.executable


# -- results ------------------------------------------------------------------------------------------
def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _not_run(finding: Finding) -> bool:
    """A finding that says the probe could not run the target (not a problem of the code)."""
    return (
        finding.code == "GG902"
        and finding.severity is Severity.INFORMATION
        and finding.message.startswith("The probe could not run")
    )


def _needs_constructor(finding: Finding) -> bool:
    return _not_run(finding) and "cannot construct" in finding.message


def _error_words(findings: list[Finding]) -> str:
    """ "RuntimeError in the backward pass" from a GG902 message, for the lens."""
    error = next((f for f in findings if f.code == "GG902"), None)
    if error is None:
        return "raised an error"
    head = re.split(r"[:;]", error.message, maxsplit=1)[0]
    head = re.sub(r" of `[^`]*`", "", head).strip()
    return head if 0 < len(head) <= 60 else "raised an error"


def _duration(seconds: float) -> str:
    """How long the target took in the child (building, forward, backward): "40 ms", "1.1 s"."""
    return f"{max(1, round(seconds * 1000))} ms" if seconds < 1 else f"{seconds:.1f} s"


def _result_title(note: Any, findings: list[Finding]) -> str:
    """The lens after a run: what happened, in a few words."""
    seconds = f" · {_duration(note.seconds)}" if note is not None and note.seconds is not None else ""
    status = getattr(note, "status", None)
    problems = [f for f in findings if not _not_run(f)]
    if status == "cannot-build" or (not problems and any(_not_run(f) for f in findings)):
        if any(_needs_constructor(f) for f in findings):
            return "○ not run: needs constructor values (see the quick fix)"
        return "○ not run (see Problems)"
    if note is not None and note.kind == "function":
        if status == "ok" and not problems:
            return f"✓ gradcheck passed{seconds}"
        if status in ("mismatch", "grad-count", "grad-shape"):
            return f"✗ gradcheck fails{seconds}"
        return f"✗ {_error_words(findings)}{seconds}"
    if status == "ok":
        without = getattr(note, "without_gradient", 0) or len([f for f in problems if f.code == "GG901"])
        if not without:
            checked = getattr(note, "checked", None)
            what = f"all {_plural(checked, 'parameter')}" if checked else "all parameters"
            verb = "gets" if checked == 1 else "get"
            return f"✓ {what} {verb} gradients{seconds}"
        return f"✗ {_plural(without, 'parameter')} without gradient{seconds}"
    return f"✗ {_error_words(findings)}{seconds}"


def _store_results(
    state: ProbeState,
    src: ProbeSource,
    target: str | None,
    findings: list[Finding],
    notes: list,
) -> None:
    infos = parse_targets(src.text) or []
    results = state.results_for(src.key)
    by_note = {n.name: n for n in notes}
    ran = [i for i in infos if (i.name == target if target is not None else i.name in by_note)]
    for info in ran:
        own = [f for f in findings if info.start <= f.line <= info.end]
        results[info.name] = TargetResult(
            info.name, info.kind, info.digest, info.line, own, _result_title(by_note.get(info.name), own)
        )
    # the shapes the meta pass measured, kept per class (of every class the run went through) while
    # that class's text is unchanged
    rows = [row for note in notes for row in getattr(note, "shapes", None) or []]
    if rows:
        kept = state.shapes.setdefault(src.key, {})
        for info in infos:
            own_rows = [r for r in rows if info.start <= r[0] <= info.end]
            if own_rows:
                kept[info.name] = MeasuredShapes(info.digest, info.line, own_rows)
    loose = [f for f in findings if not any(i.start <= f.line <= i.end for i in infos)]
    digest = content_hash(src.text)
    previous = state.loose.get(src.key)
    if target is not None and previous is not None and previous[0] == digest:
        loose = previous[1] + [f for f in loose if f not in previous[1]]
    state.loose[src.key] = (digest, loose)
    state.lines[src.key] = split_lines(src.text)
    state.generation += 1


@dataclass
class MeasuredShapes:
    """Shapes the probe's meta pass measured in one class: [line, name, dims or None, dtype] rows,
    in the lines of the text when the class started at `line`."""

    digest: str
    line: int
    rows: list


def measured_shapes(ls: Any, state: ProbeState, uri: str) -> dict[tuple[int, str], tuple]:
    """(line, name) -> (dims or None, dtype) the last probe runs measured in the classes whose text
    has not changed since, in the lines of the current text."""
    kept = state.shapes.get(uri)
    if not kept:
        return {}
    text = _open_text(ls, uri)
    infos = {i.name: i for i in parse_targets(text) or []} if text is not None else {}
    found: dict[tuple[int, str], tuple] = {}
    for name, measured in list(kept.items()):
        info = infos.get(name)
        if info is None or info.digest != measured.digest:
            del kept[name]  # the class changed: what was measured may no longer hold
            continue
        delta = info.line - measured.line
        for line, var, dims, dtype in measured.rows:
            found[(line + delta, var)] = (tuple(dims) if dims is not None else None, dtype)
    return found


def _current_findings(state: ProbeState, src: ProbeSource) -> list[Finding]:
    findings = [f for r in state.results.get(src.key, {}).values() for f in r.findings]
    loose = state.loose.get(src.key)
    if loose is not None and loose[0] == content_hash(src.text):
        findings += loose[1]
    return findings


def _configured(ls: Any, uri: str, findings: list[Finding]) -> list[Finding]:
    try:
        from gradguard.probe.report import apply_config

        return apply_config([dataclasses.replace(f) for f in findings], ls.config_for(uri))
    except Exception as exc:  # noqa: BLE001 - a config problem must not hide the results
        log.info("probe findings not filtered by config: %s", exc)
        return findings


def _per_uri(src: ProbeSource, findings: list[Finding]) -> dict[str, list[Finding]]:
    """The findings in each document's own coordinates (a notebook's: per cell)."""
    if src.spans is None:
        return {src.key: findings}
    out: dict[str, list[Finding]] = {span.uri: [] for span in src.spans}
    for finding in findings:
        span = _span_of(src.spans, finding.line)
        if span is not None:
            out[span.uri].append(finding.shifted(-span.start))
    return out


def _publish(ls: Any, state: ProbeState, src: ProbeSource) -> None:
    for uri, findings in _per_uri(src, _configured(ls, src.key, _current_findings(state, src))).items():
        ls.set_extra_findings(uri, "probe", findings)


def refresh_after_change(ls: Any, uri: str, state: ProbeState) -> None:
    """After an edit: keep each target's results while its class's text is unchanged (moved to
    where the class is now); while the text does not parse, move them with the edit. Sets the
    documents' "probe" extras without publishing (the server publishes after its analysis)."""
    src = _open_source(ls, uri)
    if src is None or not state.results.get(src.key):
        return
    results = state.results[src.key]
    new_lines = split_lines(src.text)
    infos = parse_targets(src.text)
    if infos is None:
        change = LineDelta.between(state.lines.get(src.key, new_lines), new_lines)
        for result in results.values():
            moved = []
            for finding in result.findings:
                line, end = change.map_line(finding.line), change.map_line(finding.end_line)
                if line is not None and end is not None and line - finding.line == end - finding.end_line:
                    moved.append(finding.shifted(line - finding.line))
            result.findings = moved
            result.line = change.map_line(result.line) or result.line
    else:
        by_name = {i.name: i for i in infos}
        for name in list(results):
            result = results[name]
            info = by_name.get(name)
            if info is None or info.digest != result.digest:
                del results[name]  # its class changed: the result no longer says anything
                state.generation += 1
                continue
            if info.line != result.line:
                result.findings = [f.shifted(info.line - result.line) for f in result.findings]
                result.line = info.line
    state.lines[src.key] = new_lines
    extras = getattr(ls, "_extras", None)
    if extras is None:
        return
    for doc_uri, findings in _per_uri(src, _configured(ls, src.key, _current_findings(state, src))).items():
        if findings:
            extras.setdefault(doc_uri, {})["probe"] = findings
        elif doc_uri in extras:
            extras[doc_uri].pop("probe", None)


# -- "needs constructor values": a quick fix that writes the probe comment ------------------------------
def _literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def find_project_call(root: str, name: str, module_stem: str, skip: str = "") -> tuple[str, str, int] | None:
    """A call `Name(20, 64, 3)` with literal arguments somewhere under `root`, in a file that
    imports `name` from a module called `module_stem` (or calls `stem.Name(...)`): (the call's
    text, its path, its line). Bounded in files and time."""
    from gradguard.engine.files import collect_files, read_source

    deadline = time.monotonic() + _PROJECT_SEARCH_SECONDS
    needle = f"{name}("
    try:
        files = collect_files([root]).files[:_PROJECT_SEARCH_FILES]
    except OSError:
        return None
    for path in files:
        if time.monotonic() > deadline:
            break
        if skip and os.path.abspath(path) == os.path.abspath(skip):
            continue
        try:
            text = read_source(path)
        except Exception:  # noqa: BLE001 - unreadable files are skipped
            continue
        if needle not in text or module_stem not in text:
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        found = _literal_call(tree, name, *_how_imported(tree, name, module_stem))
        if found is not None:
            return found[0], str(path), found[1]
    return None


def _how_imported(tree: ast.Module, name: str, module_stem: str) -> tuple[bool, set[str]]:
    """(whether `name` is imported from the module itself, the names the module is imported as)."""
    direct, via_module = False, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == module_stem:
            direct = direct or any(alias.name == name and alias.asname is None for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[-1] == module_stem:
                    via_module.add(alias.asname or alias.name)
    return direct, via_module


def _literal_call(tree: ast.Module, name: str, direct: bool, via_module: set[str]) -> tuple[str, int] | None:
    """(text, line) of the first call of `name` (or `module.name`) whose arguments are all literals."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        named = isinstance(func, ast.Name) and func.id == name and direct
        attribute = (
            isinstance(func, ast.Attribute) and func.attr == name and ast.unparse(func.value) in via_module
        )
        if not (named or attribute):
            continue
        values = list(node.args) + [k.value for k in node.keywords]
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            continue
        if not values or not all(_literal(v) for v in values):
            continue
        args = [ast.unparse(a) for a in node.args] + [
            f"{k.arg}={ast.unparse(k.value)}" for k in node.keywords
        ]
        return f"{name}({', '.join(args)})", node.lineno
    return None


def _constructor_fix(info: TargetInfo, call: str, origin: str | None) -> Fix:
    comment = f"# gradguard: probe {call}"
    title = f"Add `{comment}`" + (f" (as in {origin})" if origin else "")
    edit = TextEdit(info.start, 1, info.start, 1, comment + "\n")
    return Fix(title, Applicability.UNSAFE, [edit])


async def _with_constructor_fixes(ls: Any, src: ProbeSource, findings: list[Finding]) -> list[Finding]:
    if not any(_needs_constructor(f) for f in findings):
        return findings
    infos = {i.name: i for i in parse_targets(src.text) or [] if i.kind == "module"}
    root = None
    try:
        root = ls._root_path()
    except Exception:  # noqa: BLE001
        root = None
    if not root and os.path.isabs(src.path):
        root = os.path.dirname(src.path)
    stem = os.path.splitext(os.path.basename(src.path))[0]
    out = []
    loop = asyncio.get_running_loop()
    for finding in findings:
        info = next((i for i in infos.values() if i.line == finding.line), None)
        if not _needs_constructor(finding) or info is None or finding.fix is not None:
            out.append(finding)
            continue
        found = None
        if root and src.spans is None:
            try:
                found = await loop.run_in_executor(None, find_project_call, root, info.name, stem, src.path)
            except Exception as exc:  # noqa: BLE001 - the fix is offered without the example
                log.info("searching the project for %s(...) failed: %s", info.name, exc)
        if found is not None:
            call, path, line = found
            rel = os.path.relpath(path, root) if root else path
            fix = _constructor_fix(info, call, f"{rel.replace(os.sep, '/')} line {line}")
        else:
            call = f"{info.name}({', '.join(f'{p}=...' for p in info.required)})"
            fix = _constructor_fix(info, call, None)
        out.append(dataclasses.replace(finding, fix=fix))
    return out


# -- the command -----------------------------------------------------------------------------------------
def _summary_message(what: str, findings: list[Finding], notes: list, cached: bool, seconds: float) -> str:
    problems = [f for f in findings if not _not_run(f)]
    not_run = sorted(
        {n.name for n in notes if getattr(n, "status", None) == "cannot-build"}
        | {f.message.split("`")[1] for f in findings if _not_run(f) and f.message.count("`") >= 2}
    )
    parts = []
    if problems or not not_run:
        parts.append(_plural(len(problems), "problem") if problems else "no problems")
    if not_run:
        needs = any(_needs_constructor(f) for f in findings)
        reason = " (it needs constructor values: see the quick fix on the class)" if needs else ""
        parts.append(f"not run: {', '.join(not_run)}{reason}")
    timing = " (cached)" if cached else f" ({seconds:.1f} s)"
    return f"gradguard probe, {what}: {'; '.join(parts)}{timing}."


async def run_probe_command(ls: Any, state: ProbeState, args: tuple) -> dict:

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
    src = await _probe_source(ls, uri)
    if src is None:
        return {"ran": False, "reason": "document not found"}
    digest = content_hash(src.text)
    key = (src.key, digest, target)
    cached = key in state.cache
    isolation = ""  # a cached result: said when it ran
    if cached:
        findings, notes, seconds = state.cache[key]
    else:
        ran = await _run_probe(ls, state, uri, src, target, settings, key)
        if isinstance(ran, dict):
            return ran
        findings, notes, seconds, isolation = ran
    # publish only if the document still has the text the probe ran on
    current = await _probe_source(ls, uri)
    if current is None or content_hash(current.text) != digest:
        return {"ran": True, "published": False, "reason": "the document changed while the probe ran"}
    _store_results(state, src, target, findings, notes)
    _publish(ls, state, src)
    what = target or "all targets"
    _show(ls, _summary_message(what, findings, notes, cached, seconds))
    _refresh_lenses(ls)
    return {
        "ran": True,
        "published": True,
        "cached": cached,
        "findings": [f.to_dict() for f in findings],
        "notes": [f"{n.name}: {n.summary}" for n in notes],
        "lenses": {name: r.title for name, r in state.results.get(src.key, {}).items()},
        "seconds": round(seconds, 3),
        "isolation": isolation,
    }


async def _run_probe(
    ls: Any, state: ProbeState, uri: str, src, target: str | None, settings: dict, key
) -> Any:
    """Probe the document (a newer run of the same file cancels an older one), with progress:
    (findings, notes, seconds, isolation), remembered under `key`; or the command's reply (a dict)
    when it did not run to the end."""
    from gradguard.probe.report import UnknownTarget, probe_source

    previous = state.running.pop(uri, None)
    if previous is not None and not previous.done():
        previous.cancel()  # a newer run of the same file wins
    path = src.path
    timeout = float(settings.get("timeout") or 20.0)
    state.runs += 1
    task = asyncio.ensure_future(
        probe_source(
            src.text,
            path,
            target=target,
            python=_python(ls, uri),
            timeout=timeout,
            memory_mb=int(settings.get("memoryMb") or 4096),
            cwd=os.path.dirname(path) if os.path.isabs(path) else None,
        )
    )
    state.running[uri] = task
    token = await _begin_progress(ls, state, f"gradguard: probing {target or os.path.basename(path)}", task)
    try:
        report = await task
    except asyncio.CancelledError:
        task.cancel()
        _show(ls, f"gradguard: probe of {target or os.path.basename(path)} cancelled.")
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
    findings = await _with_constructor_fixes(ls, src, report.findings)
    notes, seconds = list(report.notes), report.seconds
    isolation = report.isolation_summary
    log.info("probe of %s: %s", uri, isolation)
    state.remember(key, (findings, notes, seconds))
    return findings, notes, seconds, isolation


def _refresh_lenses(ls: Any) -> None:
    """Ask the client to fetch the lenses again (their titles show the new result)."""
    refresh = getattr(getattr(ls, "protocol", None), "client_capabilities", None)
    support = getattr(
        getattr(getattr(refresh, "workspace", None), "code_lens", None), "refresh_support", False
    )
    if not support:
        return
    try:
        ls.workspace_code_lens_refresh(None)
    except Exception as exc:  # noqa: BLE001 - the next edit refreshes them anyway
        log.info("codeLens/refresh failed: %s", exc)
    refresh_inlay_hints(ls)  # measured shapes replace inferred ones


def refresh_inlay_hints(ls: Any) -> None:
    """Ask the client to fetch the inlay hints again (new settings, new measured shapes)."""
    capabilities = getattr(getattr(ls, "protocol", None), "client_capabilities", None)
    support = getattr(
        getattr(getattr(capabilities, "workspace", None), "inlay_hint", None), "refresh_support", False
    )
    if not support:
        return
    try:
        ls.workspace_inlay_hint_refresh(None)
    except Exception as exc:  # noqa: BLE001 - the next edit refreshes them anyway
        log.info("inlayHint/refresh failed: %s", exc)


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
    # called by the server after a document or notebook changes, before it re-publishes
    hooks = getattr(server, "extras_after_change", None)
    if hooks is None:
        hooks = server.extras_after_change = {}
    hooks["probe"] = lambda ls, uri: refresh_after_change(ls, uri, state)

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    async def code_lens(ls: Any, params: types.CodeLensParams) -> list[types.CodeLens]:
        uri = params.text_document.uri
        if _probe_settings(ls, uri).get("enable") is False:
            return []
        src = await _probe_source(ls, uri)
        if src is None:
            return []
        lines = _doc_lines(ls, uri, src.text)
        cache_key = (content_hash(src.text), state.generation)
        cached = state.lenses.get(uri)
        if cached is not None and cached[0] == cache_key:
            return cached[1]
        in_engine = getattr(ls, "in_engine", None)  # parsing a big file must not block the loop
        infos = await in_engine(parse_targets, src.text) if in_engine else parse_targets(src.text)
        if infos is None:
            # the text does not parse: the last lenses stay, moved with the edit, so that the
            # code below them does not jump by a line while typing
            lenses = _kept_lenses(cached[1], cached[2], lines) if cached is not None else []
        else:
            lenses = _build_lenses(uri, src, infos, state.results.get(src.key, {}))
        state.lenses[uri] = (cache_key, lenses, lines)
        state.lenses.move_to_end(uri)
        while len(state.lenses) > _CACHE_SIZE:
            state.lenses.popitem(last=False)
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
