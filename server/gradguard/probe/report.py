"""Run the probe on a file and turn what the child reported into findings."""

from __future__ import annotations

import ast
import asyncio
import re
import signal
from dataclasses import dataclass, field

from gradguard.engine.finding import Finding, Severity
from gradguard.engine.index import Unit, self_attribute, self_name
from gradguard.probe import PROBE_SOURCE
from gradguard.probe.metadata import GradcheckMismatch, NoGradient, ProbeError
from gradguard.probe.sandbox import MIN_MEMORY_MB, SandboxResult, run_sandboxed
from gradguard.probe.targets import FileTargets, PlanError, Target, backward_return_element, find_targets

MAX_RESTARTS = 2


@dataclass
class TargetNote:
    name: str
    kind: str
    line: int
    summary: str
    seconds: float | None = None
    # for editors (the code lens shows the last result): the child's status ("ok", "error",
    # "cannot-build", "mismatch", ...), trainable parameters checked and how many got no gradient
    status: str | None = None
    checked: int | None = None
    without_gradient: int = 0
    # shapes the meta pass measured: [line, name, dims (None: several), dtype] (see runner.ShapeTracer)
    shapes: list = field(default_factory=list)


@dataclass
class ProbeReport:
    path: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[TargetNote] = field(default_factory=list)
    seconds: float = 0.0
    output_tail: str = ""
    error: str | None = None  # the probe could not run at all (no targets, syntax error)
    nothing_to_probe: bool = False
    isolation: dict = field(default_factory=dict)  # what the run was cut off from (sandbox.py)
    rejected_lines: int = 0  # event lines that did not verify: written by the probed code

    @property
    def isolation_summary(self) -> str:
        from gradguard.probe.sandbox import describe_isolation

        return describe_isolation(self.isolation)


class UnknownTarget(Exception):
    pass


async def probe_source(
    text: str,
    path: str,
    target: str | None = None,
    python: str | None = None,
    timeout: float = 20.0,
    memory_mb: int = 4096,
    cwd: str | None = None,
) -> ProbeReport:
    report = ProbeReport(path)
    try:
        # planning parses the file: off the event loop, so the editor stays responsive
        planned = await asyncio.get_running_loop().run_in_executor(None, find_targets, text, path, target)
    except PlanError as exc:
        report.error = f"cannot probe {path}: {exc}"
        return report
    targets = planned.targets
    if target is not None and not targets:
        names = ", ".join(t.name for t in find_targets(text, path).targets) or "none"
        raise UnknownTarget(f"no nn.Module or autograd.Function named {target!r} in {path} (found: {names})")
    if not targets:
        report.error = f"{path}: no nn.Module (with a forward) or torch.autograd.Function subclass to probe"
        report.nothing_to_probe = True
        return report
    memory_mb = max(memory_mb, MIN_MEMORY_MB)
    budget = max(128, memory_mb - 1024) * 1024 * 1024
    pending = list(targets)
    restarts = 0
    while pending:
        plan = {
            "path": path,
            "source": text,
            "targets": [{**t.to_plan(), "memory_bytes": budget} for t in pending],
        }
        run = await run_sandboxed(plan, python=python, timeout=timeout, memory_mb=memory_mb, cwd=cwd)
        report.seconds += run.seconds
        report.output_tail = run.output_tail
        report.isolation = report.isolation or dict(run.isolation)
        report.rejected_lines += run.rejected_lines
        stopped = _stopped_early(report, planned, pending[0], run, timeout)
        if stopped is not None:
            return stopped
        pending, crashed = _take_results(report, planned, pending, run, timeout)
        if crashed is None and not run.finished and pending:
            # died before starting the first pending target (e.g. while importing torch)
            report.findings.append(_crash_finding(planned, pending[0], run, timeout))
            return _finish(report)
        if crashed is not None:
            restarts += 1
            if restarts > MAX_RESTARTS:
                for t in pending:
                    report.notes.append(
                        TargetNote(t.name, t.kind, t.line, "not probed: earlier targets crashed")
                    )
                break
    return _finish(report)


def _stopped_early(report: ProbeReport, planned, first, run, timeout: float) -> ProbeReport | None:
    """The report when the run ended before any target could run (no torch, the file's definitions
    failed or crashed), else None. `first`: the first target the run was to probe."""
    no_torch = next((e for e in run.events if e.get("event") == "no-torch"), None)
    if no_torch is not None:
        report.error = (
            f"the probe needs torch, but {no_torch.get('python')} cannot import it ({no_torch.get('message')}); "
            f"choose the interpreter that has torch (--python, or the editor's Python interpreter)"
        )
        return report
    load_error = next((e for e in run.events if e.get("event") == "load-error"), None)
    if load_error is not None:
        finding = _error_finding(planned, first, load_error["error"], "while running the file's definitions")
        if load_error["error"].get("type") in ("ImportError", "ModuleNotFoundError"):
            # the interpreter lacks a package: the probe could not run, the code is not wrong
            finding.severity = Severity.INFORMATION
            finding.message = f"The probe could not run this file: {finding.message}"
        report.findings.append(finding)
        return _finish(report)
    results = [e for e in run.events if e.get("event") == "result"]
    stage = run.last_stage()
    if not results and not run.finished and (stage is None or not stage.get("target")):
        # died while importing torch or running the file's definitions: nothing to retry
        report.findings.append(_crash_finding(planned, first, run, timeout))
        return _finish(report)
    return None


def _take_results(report: ProbeReport, planned, pending: list, run, timeout: float) -> tuple[list, object]:
    """(the targets still to probe, the one the run crashed in or None): the results of the
    targets the run finished are added to the report, and the crash of the one it did not."""
    results = {e["target"]: e for e in run.events if e.get("event") == "result"}
    done = []
    crashed = None
    for t in pending:
        if t.name in results:
            _add_result(report, planned, t, results[t.name])
            done.append(t)
        elif crashed is None:
            crashed = t
            report.findings.append(_crash_finding(planned, t, run, timeout))
            report.notes.append(TargetNote(t.name, t.kind, t.line, "the probe process did not finish"))
            done.append(t)
            break
    return [t for t in pending if t not in done], crashed


def apply_config(findings: list[Finding], config) -> list[Finding]:
    """`ignore` and `severity` of [tool.gradguard] / the editor settings apply to the
    probe's codes too (`select` lists static rules, so it does not hide probe results)."""
    if config is None:
        return findings
    from gradguard.engine.config import Config

    ignoring = Config(select=("ALL",), ignore=tuple(config.ignore))
    kept = []
    for finding in findings:
        if not ignoring.enabled(finding.code):
            continue
        finding.severity = config.severity_for(finding.code, finding.severity)
        kept.append(finding)
    return kept


def _finish(report: ProbeReport) -> ProbeReport:
    report.findings.sort(key=lambda f: f.sort_key)
    return report


# -- findings --------------------------------------------------------------------------------------
def _finding(
    rule, planned: FileTargets, node_or_range, message: str, severity: Severity | None = None
) -> Finding:
    if isinstance(node_or_range, tuple):
        line, col, end_line, end_col = node_or_range
    else:
        line, col, end_line, end_col = planned.source.node_range(node_or_range)
    return Finding(
        code=rule.code,
        name=rule.name,
        severity=severity or rule.severity,
        message=message,
        line=line,
        column=col,
        end_line=end_line,
        end_column=end_col,
        path=planned.source.path,
        source=PROBE_SOURCE,
    )


def _class_range(planned: FileTargets, target: Target) -> tuple[int, int, int, int]:
    """`class Net(nn.Module):` header line (not the whole body)."""
    line = target.node.lineno
    text = planned.source.line_text(line).rstrip("\r\n")
    start = len(text) - len(text.lstrip()) + 1
    return line, start, line, len(text) + 1


def _line_range(planned: FileTargets, line: int) -> tuple[int, int, int, int]:
    text = planned.source.line_text(line).rstrip("\r\n")
    start = len(text) - len(text.lstrip()) + 1
    return line, start, line, max(start + 1, len(text) + 1)


def _frame_range(planned: FileTargets, frame: dict) -> tuple[int, int, int, int]:
    line = frame["line"]
    if frame.get("col") is None or frame.get("end_col") is None:
        return _line_range(planned, line)
    end_line = frame.get("end_line") or line
    source = planned.source
    col = source.char_column(line, frame["col"]) + 1
    end_col = source.char_column(end_line, frame["end_col"]) + 1
    if end_line < line or (end_line == line and end_col <= col):
        return _line_range(planned, line)
    return line, col, end_line, end_col


def _torch_message(text: str) -> str:
    """PyTorch's message without its trailing hints."""
    text = _first_line(text)
    for cut in (" Hint:", " (Triggered internally"):
        if cut in text:
            text = text[: text.index(cut)]
    return text.rstrip(" .")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _describe_target(target: Target, result: dict | None = None) -> str:
    if target.kind == "module":
        ctor = (result or {}).get("ctor") or (
            target.ctors[0]["text"] if target.ctors else f"{target.name}(...)"
        )
        return f"`{ctor}`"
    return f"`{target.name}.apply`"


def _error_finding(
    planned: FileTargets,
    target: Target,
    error: dict,
    when: str,
    at_class: bool = False,
    result: dict | None = None,
) -> Finding:
    frames = error.get("frames") or []
    kind = error.get("type", "Error")
    message = error.get("message", "")
    if kind in ("os._exit", "SystemExit"):
        text = f"{message} {when}; the probe stopped it (a model must not end the process)"
    else:
        text = f"{kind} {when}: {_torch_message(message)}"
    if result and result.get("input") and "forward" in when:
        text += f" [input {result['input']}, {result.get('input_origin') or 'as given'}]"
    if frames and not at_class:
        return _finding(ProbeError, planned, _frame_range(planned, frames[-1]), text)
    return _finding(ProbeError, planned, _class_range(planned, target), text)


def _stage_words(stage: str, target: Target, result: dict | None) -> str:
    what = _describe_target(target, result)
    return {
        "construct": f"while constructing {what}",
        "construct (meta)": f"while constructing {what}",
        "input (meta)": f"while building the input of {what}",
        "forward (meta)": f"in the forward pass of {what} on the meta device",
        "backward (meta)": f"in the backward pass of {what} on the meta device",
        "forward": f"in the forward pass of {what}",
        "backward": f"in the backward pass of {what}",
        "inputs": f"while building the inputs of {what}",
        "input": f"while building the input of {what}",
        "gradcheck": f"while running gradcheck on {what}",
        "trace": f"while tracing the gradient flow of {what}",
    }.get(stage, f"while probing {what}")


def _add_result(report: ProbeReport, planned: FileTargets, target: Target, result: dict) -> None:
    status = result.get("status")
    note = TargetNote(target.name, target.kind, target.line, "", result.get("seconds"), status=status)
    note.checked = result.get("checked")
    note.shapes = list(result.get("shapes") or [])
    report.notes.append(note)
    reported = 0
    if status == "cannot-build":
        report.findings.append(
            _finding(
                ProbeError,
                planned,
                _class_range(planned, target),
                f"The probe could not run `{target.name}`: {result.get('message')}",
                Severity.INFORMATION,
            )
        )
    elif status == "error":
        error = result["error"]
        stage = error.get("stage") or _guess_stage(error)
        anomaly = error.get("anomaly")
        if anomaly and anomaly.get("line"):
            line = anomaly["line"]
            code = _statement_text(planned, line)
            later = _later_inplace_write(planned, line)
            where = f" on line {later[0]} (`{later[1]}`)" if later else " afterwards"
            text = (
                f"{error.get('type', 'RuntimeError')} in the backward pass of {_describe_target(target, result)}: "
                f"{_torch_message(error.get('message', ''))}. The result of `{code}` (line {line}) is saved for "
                f"backward by {anomaly.get('node') or 'its backward'} and is modified in place{where}; make "
                f"that write out of place (e.g. `torch.where`, `masked_fill`, `clamp`)."
            )
            report.findings.append(_finding(ProbeError, planned, _line_range(planned, line), text))
        else:
            when = _stage_words(stage, target, result)
            if error.get("device") == "meta":
                # found by the first pass, which only computes shapes; the CPU pass did not run
                when += " (found on the meta device, before any real computation)"
            finding = _error_finding(planned, target, error, when, result=result)
            if _needs_gpu(error.get("message", "")):
                # the probe runs on CPU: code written for a GPU is not wrong
                finding.severity = Severity.INFORMATION
                finding.message = f"The probe could not run `{target.name}` on CPU: {finding.message}"
            report.findings.append(finding)
    elif status == "ok" and target.kind == "module":
        findings, reported = _no_gradient_findings(planned, target, result, report)
        report.findings.extend(findings)
    elif status in ("grad-count", "grad-shape", "mismatch"):
        report.findings.append(_gradcheck_finding(planned, target, result))
    note.summary = _summary(target, result, reported)
    note.without_gradient = reported


def _later_inplace_write(planned: FileTargets, line: int) -> tuple[int, str] | None:
    """After `g = op(...)` on `line`, the first in-place write to `g` in the same function:
    `g[...] = v`, `g += v`, `g.add_(...)`, `g.data = ...`."""
    for node in ast.walk(planned.tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if not (node.lineno <= line <= (node.end_lineno or node.lineno)):
            continue
        assigned = [
            target
            for s in ast.walk(node)
            if isinstance(s, ast.Assign) and s.lineno == line and len(s.targets) == 1
            for target in s.targets
            if isinstance(target, ast.Name)
        ]
        if not assigned:
            continue
        name = assigned[0].id
        writes: list[tuple[int, str | None]] = []
        for stmt in ast.walk(node):
            if not isinstance(stmt, ast.stmt) or stmt.lineno <= line:
                continue
            hit = False
            if isinstance(stmt, ast.Assign):
                hit = any(
                    isinstance(t, (ast.Subscript, ast.Attribute)) and _root_name(t) == name
                    for t in stmt.targets
                )
                if any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
                    writes.append((stmt.lineno, None))  # rebound: later writes are to something else
                    continue
            elif isinstance(stmt, ast.AugAssign):
                hit = _root_name(stmt.target) == name
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                func = stmt.value.func
                hit = (
                    isinstance(func, ast.Attribute)
                    and func.attr.endswith("_")
                    and not func.attr.endswith("__")
                    and _root_name(func.value) == name
                )
            if hit:
                writes.append((stmt.lineno, planned.source.segment(stmt).splitlines()[0]))
        writes.sort(key=lambda w: w[0])
        if writes and writes[0][1] is not None:
            return writes[0]  # type: ignore[return-value]
        return None
    return None


def _statement_text(planned: FileTargets, line: int) -> str:
    """The code of the statement starting on `line`, without its comment."""
    for node in ast.walk(planned.tree):
        if (
            isinstance(node, ast.stmt)
            and node.lineno == line
            and not isinstance(
                node,
                (
                    ast.FunctionDef,
                    ast.AsyncFunctionDef,
                    ast.ClassDef,
                    ast.If,
                    ast.For,
                    ast.While,
                    ast.With,
                    ast.Try,
                ),
            )
        ):
            return planned.source.segment(node).splitlines()[0]
    return planned.source.line_text(line).strip()


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Subscript, ast.Attribute)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _needs_gpu(message: str) -> bool:
    lowered = message.lower()
    return "cuda" in lowered and any(
        word in lowered
        for word in (
            "not compiled with cuda",
            "nvidia driver",
            "cuda is not available",
            "no cuda gpus",
            "found no nvidia",
        )
    )


def _guess_stage(error: dict) -> str:
    frames = error.get("frames") or []
    if frames:
        function = frames[0].get("function")
        if function == "__init__":
            return "construct"
        if function == "forward":
            return "forward"
        if function == "backward":
            return "backward"
    return ""


def _summary(target: Target, result: dict, reported: int = 0) -> str:
    parts = []
    if target.kind == "module" and result.get("ctor"):
        parts.append(f"built {result['ctor']} ({result.get('ctor_origin', '')})")
    if result.get("input") is not None:
        origin = result.get("input_origin") or ""
        parts.append(f"input {result['input']}" + (f" ({origin})" if origin else ""))
    if result.get("meta"):
        parts.append(f"meta pass: {result['meta']}")
    status = result.get("status")
    if status == "ok" and target.kind == "module":
        parts.append(f"{result.get('checked', 0)} trainable parameters checked, {reported} without gradient")
    elif status == "ok":
        parts.append("gradcheck passed" if not result.get("note") else result["note"])
    elif status == "cannot-build":
        parts.append("could not run")
    else:
        parts.append(status or "")
    return "; ".join(p for p in parts if p)


# -- GG901 ------------------------------------------------------------------------------------------------
_OP_WORDS = {
    "detach": "`.detach()`",
    "detach_": "`.detach_()`",
    "data": "`.data`",
    "no_grad": "code run under `torch.no_grad()`",
    "item": "`.item()`",
    "tolist": "`.tolist()`",
    "numpy": "`.numpy()`",
}


_COMPARISONS = {
    "lt",
    "le",
    "gt",
    "ge",
    "eq",
    "ne",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__eq__",
    "__ne__",
    "greater",
    "less",
    "greater_equal",
    "less_equal",
    "equal",
    "not_equal",
}


def _op_words(op: str) -> str:
    if op in _OP_WORDS:
        return _OP_WORDS[op]
    if op in _COMPARISONS:
        return f"a comparison (`{op.strip('_')}`), which has no gradient"
    return f"`{op}`, which has no gradient"


def _definition_site(
    planned: FileTargets, owners: list
) -> tuple[ast.AST | None, str | None, ast.ClassDef | None]:
    """(the statement that defined the parameter or its layer, attribute, owning class)."""
    for index in range(len(owners) - 1, -1, -1):
        cls_name, is_user, attr = owners[index]
        unit = planned.units.get(cls_name)
        if not is_user or unit is None:
            continue
        cls = unit.nodes[0]
        assert isinstance(cls, ast.ClassDef)
        for candidate_cls, candidate_unit in _with_local_bases(planned, cls, unit):
            info = candidate_unit.class_attributes(candidate_cls).get(attr)
            if info is not None:
                return info.node, attr, candidate_cls
        return cls, attr, cls
    return None, None, None


def _with_local_bases(planned: FileTargets, cls: ast.ClassDef, unit: Unit):
    yield cls, unit
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in planned.units:
            base_unit = planned.units[base.id]
            yield from _with_local_bases(planned, base_unit.nodes[0], base_unit)  # type: ignore[arg-type]


def _used_only_elsewhere(planned: FileTargets, cls: ast.ClassDef, attr: str) -> str | None:
    """The name of a non-forward method using `self.attr`, when forward never does."""
    unit = planned.units.get(cls.name)
    if unit is None:
        return None
    methods = unit.methods(cls)
    if "forward" not in methods:
        return None
    reachable = {id(m) for m in unit.methods_reachable_from(cls, "forward")}
    elsewhere = None
    for name, method in methods.items():
        if name == "__init__":
            continue
        me = self_name(method) or "self"
        uses = any(self_attribute(n, me) == attr for n in ast.walk(method) if isinstance(n, ast.Attribute))
        if uses and id(method) in reachable:
            return None
        if uses and elsewhere is None:
            elsewhere = name
    return elsewhere


def _site_node_range(planned: FileTargets, node: ast.AST) -> tuple[int, int, int, int]:
    line, col, end_line, end_col = planned.source.node_range(node)
    if isinstance(node, ast.ClassDef):
        return _line_range(planned, node.lineno)
    if end_line != line:  # a multi-line definition: underline its first line
        return _line_range(planned, line)
    return line, col, end_line, end_col


def _no_gradient_findings(
    planned: FileTargets, target: Target, result: dict, report: ProbeReport
) -> tuple[list[Finding], int]:
    groups: dict[int, dict] = {}
    for param in result.get("params", []):
        node, attr, cls = _definition_site(planned, param.get("owners", []))
        if node is None:
            node, attr, cls = target.node, None, target.node
        if attr is not None and cls is not None:
            other = _used_only_elsewhere(planned, cls, attr)
            if other is not None:
                report.notes.append(
                    TargetNote(
                        target.name,
                        target.kind,
                        target.line,
                        f"{param['name']}: no gradient from forward; `self.{attr}` is used "
                        f"by `{other}` instead (not reported)",
                    )
                )
                continue
        group = groups.setdefault(id(node), {"node": node, "attr": attr, "params": []})
        group["params"].append(param)
    findings = []
    output_detached = result.get("output_requires_grad") is False
    for group in groups.values():
        params = group["params"]
        names = ", ".join(f"`{p['name']}`" for p in params)
        verb = "gets" if len(params) == 1 else "get"
        first = params[0]
        attr = group["attr"]
        severity = None
        if first["grad"] == "zero":
            runs = result.get("zero_runs", 1)
            checked = f"checked with {runs} different inputs" if runs > 1 else "after one backward"
            text = f"{names} {verb} an all-zero gradient ({checked})"
        else:
            stop = first.get("stop")
            if stop is not None:
                op = _op_words(stop.get("op", ""))
                text = f"{names} {verb} no gradient: the path to the output is cut on line {stop['line']} by {op}"
                if stop.get("op") == "no_grad":
                    # running a layer under no_grad is a deliberate choice (a teacher or target
                    # network): say it, but as information
                    severity = Severity.INFORMATION
                    text += (
                        "; if that is intended (a frozen teacher or target network), freeze it with "
                        "`.requires_grad_(False)`"
                    )
            elif first.get("used") is False:
                where = f"`self.{attr}`" if attr else "it"
                text = f"{names} {verb} no gradient: {where} is never used in the forward pass"
            elif output_detached:
                text = f"{names} {verb} no gradient: the output of forward does not require grad"
            elif first.get("used"):
                text = f"{names} {verb} no gradient: its result never reaches the output of forward"
            else:
                text = f"{names} {verb} no gradient"
            text += " (.grad is None after backward)"
        origin = result.get("input_origin") or ""
        if origin.startswith("inferred"):
            # the probe guessed the input: say which, so a shape-dependent forward can be judged
            text += f" [input {result.get('input')}, {origin}]"
        findings.append(
            _finding(NoGradient, planned, _site_node_range(planned, group["node"]), text, severity)
        )
    return findings, sum(len(group["params"]) for group in groups.values())


# -- GG903 ------------------------------------------------------------------------------------------------
def _gradcheck_finding(planned: FileTargets, target: Target, result: dict) -> Finding:
    unit = planned.units[target.name]
    methods = unit.methods(target.node)
    status = result["status"]
    forward = methods.get("forward")
    params = []
    if forward is not None:
        positional = forward.args.posonlyargs + forward.args.args
        params = [a.arg for a in positional[(0 if "setup_context" in methods else 1) :]]
    if status == "grad-count":
        node = backward_return_element(target.node, methods, None)
        text = (
            f"backward returns {result['got']} gradient{'s' if result['got'] != 1 else ''} but forward takes "
            f"{result['expected']} input{'s' if result['expected'] != 1 else ''}: return one per input "
            f"(None for inputs that need none). PyTorch: {result.get('message', '')}"
        )
    elif status == "grad-shape":
        index = result.get("index")
        node = backward_return_element(target.node, methods, index)
        name = f" (`{params[index]}`)" if index is not None and index < len(params) else ""
        text = f"backward returns a gradient of the wrong shape for input {index}{name}. PyTorch: {result.get('message')}"
    else:
        index = result.get("input_index")
        node = backward_return_element(target.node, methods, index)
        name = f" (`{params[index]}`)" if index is not None and index < len(params) else ""
        if index is not None:
            text = (
                f"gradcheck fails: the gradient backward returns for input {index}{name} does not match finite "
                f"differences; largest absolute error {result.get('max_abs_error', float('nan')):.4g} "
                f"(float64, input {result.get('input')})"
            )
        else:
            text = f"gradcheck fails: {result.get('message', '')}"
    # a wrong number or shape of gradients makes PyTorch raise; wrong values train silently
    severity = Severity.ERROR if status in ("grad-count", "grad-shape") else None
    return _finding(GradcheckMismatch, planned, _site_node_range(planned, node), text, severity)


# -- crashes -------------------------------------------------------------------------------------------
_STACK_LINE = re.compile(r'File "(?P<file>.*)", line (?P<line>\d+) in (?P<func>\S+)')


def _crash_finding(planned: FileTargets, target: Target, run: SandboxResult, timeout: float) -> Finding:
    stage = run.last_stage()
    stage_name = stage.get("stage", "") if stage else ""
    when = (
        _stage_words(stage_name, target, None)
        if stage and stage.get("target") == target.name
        else ("while importing torch" if stage_name == "import torch" else "while loading the file")
    )
    where = None
    if run.timed_out:
        lines = [m for m in _STACK_LINE.finditer(run.stack_dump) if m.group("file") == planned.source.path]
        if lines:
            # faulthandler prints the innermost frame first
            where = int(lines[0].group("line"))
        text = f"The probe timed out after {timeout:g} s {when} and was stopped"
        if where:
            text += f"; it was running line {where}"
    else:
        code = run.returncode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = "unknown"
            how = f"was killed by signal {-code} ({name})"
        else:
            how = f"exited with code {code}"
        text = f"The probe process {how} {when}"
        tail = run.output_tail.strip().splitlines()[-3:]
        if tail:
            text += "; last output: " + " | ".join(t[:200] for t in tail)
    rng = _line_range(planned, where) if where else _class_range(planned, target)
    return _finding(ProbeError, planned, rng, text)
