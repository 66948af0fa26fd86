"""Training-loop analysis shared by the GG4xx rules.

A *training loop* is the innermost `for`/`while` loop (inside the same function) around
a `.backward()` call. Within one iteration we record, in source order, the calls that
matter to an optimizer: `zero_grad` (or `p.grad = None`), `backward`, an optimizer
`step` (never `scheduler.step()` or `env.step(action)`), and whether each is
*unconditional* (runs on every iteration: not under an `if`, `try` handler, nested
loop or nested `def`) and *straight-line* (additionally not in a nested loop).

Everything is computed from the unit's buckets and the loop's own subtree.
"""

from __future__ import annotations

import ast
import bisect
from dataclasses import dataclass, field

from gradguard.engine.index import Unit, callee_name, dotted_name, keyword
from gradguard.engine.queries import scope_text
from gradguard.engine.torch_facts import NOT_OPTIMIZER_WORDS
from gradguard.engine.values import OPTIMIZER

ZERO = "zero_grad"
BACKWARD = "backward"
STEP = "step"

_LOOPS = (ast.For, ast.AsyncFor, ast.While)
# in-place methods that reset `p.grad` / `p.grad.data`
_GRAD_RESETS = ("zero_", "fill_", "mul_", "copy_")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_OPTIMIZER_PREFIXES = ("torch.optim.", "bitsandbytes.optim.", "apex.optimizers.", "transformers.AdamW")
_NOT_OPTIMIZER_WORDS = NOT_OPTIMIZER_WORDS  # names that hold something else (see torch_facts)


@dataclass
class LoopEvent:
    kind: str  # ZERO / BACKWARD / STEP
    node: ast.AST  # the call (or the `p.grad = None` assignment)
    statement: ast.stmt  # the statement holding it
    optimizer: str | None = None  # receiver of zero_grad / the optimizer a step applies
    unconditional: bool = True  # runs on every iteration of the loop
    straight: bool = True  # unconditional and not inside a nested loop
    retain_graph: bool = False  # backward(retain_graph=True / create_graph=True)

    @property
    def position(self) -> tuple[int, int]:
        return (self.node.lineno, self.node.col_offset)  # type: ignore[attr-defined]


@dataclass
class TrainingLoop:
    loop: ast.AST
    events: list[LoopEvent] = field(default_factory=list)
    nested_zero: bool = False  # a closure / nested def in the loop clears gradients

    def of(self, kind: str, straight: bool = False) -> list[LoopEvent]:
        return [e for e in self.events if e.kind == kind and (e.straight or not straight)]


def enclosing_loop(unit: Unit, node: ast.AST) -> ast.AST | None:
    """The innermost loop around node within the same function (None if none)."""
    for anc in unit.ancestors(node):
        if isinstance(anc, _LOOPS):
            return anc
        if isinstance(anc, _SCOPES):
            return None
    return None


def is_backward_call(call: ast.AST) -> bool:
    return (
        isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "backward"
    )


def retains_graph(call: ast.Call) -> bool:
    """`retain_graph=`/`create_graph=` given as anything but a literal False (a variable may
    be True), or passed positionally."""
    for name in ("retain_graph", "create_graph"):
        value = keyword(call, name)
        if value is not None and not (isinstance(value, ast.Constant) and value.value in (False, None)):
            return True
    if any(kw.arg is None for kw in call.keywords):
        return True  # **kwargs
    return len(call.args) >= 2 and not (
        isinstance(call.args[1], ast.Constant) and call.args[1].value in (False, None)
    )


def training_loops(unit: Unit) -> list[TrainingLoop]:
    """Every loop of the unit that directly iterates a `.backward()` call (cached)."""
    return unit.cache("loops.training_loops", lambda: _training_loops(unit))


def _training_loops(unit: Unit) -> list[TrainingLoop]:
    if "backward" not in scope_text(unit, None):
        return []
    loops: dict[int, TrainingLoop] = {}
    order: list[TrainingLoop] = []
    for call in unit.method_calls("backward"):
        loop = enclosing_loop(unit, call)
        if loop is None or id(loop) in loops:
            continue
        info = _analyse(unit, loop)
        loops[id(loop)] = info
        order.append(info)
    return order


def looks_like_optimizer(unit: Unit, expr: ast.AST) -> str | None:
    """The dotted name of expr when it holds an optimizer, else None. What the value analysis
    knows decides (`torch.optim.X(...)`, an optimizer class of the file, a scheduler or a
    module is not one); only for a value of unknown kind does the name decide (`opt`,
    `optimizer_g`, never `scheduler`/`scaler`/`env`...)."""
    dotted = dotted_name(expr)
    if dotted is None:
        # `self.optimizers()[0]`, `opts[i]`: unknown, treat as not an optimizer
        return None
    value = _value_of(unit, expr)
    if value is not None and value.known:
        return dotted if value.kinds & OPTIMIZER else None
    lowered = dotted.rsplit(".", 1)[-1].lower()
    if any(word in lowered for word in _NOT_OPTIMIZER_WORDS):
        return None
    return dotted if "opt" in lowered else None


def _value_of(unit: Unit, expr: ast.AST):
    """What `expr` holds where it is evaluated (None outside any analysed scope)."""
    scope = unit.enclosing_function(expr)
    flow = unit.semantics.flow(scope)
    if expr in flow.values:
        return flow.values[expr]
    return None


def step_optimizer(unit: Unit, call: ast.Call) -> str | None:
    """For an optimizer step call, the optimizer's dotted name; None for any other `.step()`."""
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr != "step":
        return None
    receiver = dotted_name(func.value)
    if receiver is not None and "scaler" in receiver.rsplit(".", 1)[-1].lower():
        # AMP: scaler.step(optimizer)
        if call.args:
            return looks_like_optimizer(unit, call.args[0])
        return None
    if len(call.args) > 1 or any(kw.arg not in ("closure",) for kw in call.keywords):
        return None
    if call.args and not isinstance(call.args[0], (ast.Name, ast.Lambda, ast.Attribute)):
        return None
    return looks_like_optimizer(unit, func.value)


def _relevant(unit: Unit) -> tuple[list[ast.AST], list[ast.Call]]:
    """(nodes that may be loop events, calls of plain names / `self.` methods), in source
    order, collected once per unit from the Call/Assign buckets."""
    return unit.cache("loops.relevant", lambda: _collect_relevant(unit))


def _collect_relevant(unit: Unit) -> tuple[list[ast.AST], list[ast.Call]]:
    events: list[ast.AST] = []
    callees: list[ast.Call] = []
    for call in unit.calls():
        func = call.func
        if isinstance(func, ast.Name):
            callees.append(call)
            if "zero_grad" in func.id:
                events.append(call)
        elif isinstance(func, ast.Attribute):
            attr = func.attr
            if (
                "zero_grad" in attr
                or attr in ("backward", "step")
                or (attr in _GRAD_RESETS and _is_grad(func.value))
            ):
                events.append(call)
            if isinstance(func.value, ast.Name) and func.value.id in ("self", "cls"):
                callees.append(call)
    for node in unit.nodes_of(ast.Assign):
        # `p.grad = None`, `p.grad = torch.zeros_like(p)`: any write of `.grad` resets it
        if any(isinstance(t, ast.Attribute) and t.attr == "grad" for t in node.targets):  # type: ignore[attr-defined]
            events.append(node)
    events.sort(key=lambda n: (n.lineno, n.col_offset))  # type: ignore[attr-defined]
    return events, callees


def _is_grad(node: ast.AST) -> bool:
    """`p.grad` or `p.grad.data`."""
    if isinstance(node, ast.Attribute) and node.attr == "data":
        node = node.value
    return isinstance(node, ast.Attribute) and node.attr == "grad"


def _span(node: ast.AST) -> tuple[tuple[int, int], tuple[int, int]]:
    return (
        (node.lineno, node.col_offset),  # type: ignore[attr-defined]
        (node.end_lineno or node.lineno, node.end_col_offset or 0),  # type: ignore[attr-defined]
    )


def _placement(unit: Unit, node: ast.AST, loop: ast.AST) -> tuple[bool, bool, bool] | None:
    """(unconditional, straight, in_nested_scope) of node relative to loop; None when the
    node is not in the loop's body (its iterator/test, or another loop)."""
    unconditional = straight = True
    child = node
    for anc in unit.ancestors(node):
        if anc is loop:
            if child not in getattr(loop, "body", ()):
                return None
            return unconditional, straight, False
        if isinstance(anc, _SCOPES):
            # inside a def/lambda/class in the loop: runs only when called
            return (False, False, True) if loop in unit.ancestors(anc) else None
        if isinstance(anc, ast.If):
            if child is not anc.test:
                unconditional = straight = False
        elif isinstance(anc, (ast.For, ast.AsyncFor, ast.While)):
            head = anc.iter if isinstance(anc, (ast.For, ast.AsyncFor)) else anc.test
            if child is not head:
                unconditional = straight = False
        elif isinstance(anc, ast.ExceptHandler):
            unconditional = straight = False
        elif isinstance(anc, ast.Try) or anc.__class__.__name__ == "TryStar":
            if child in anc.orelse:  # type: ignore[attr-defined]
                unconditional = straight = False
        elif isinstance(anc, (ast.match_case, ast.IfExp, ast.BoolOp, ast.comprehension)) or isinstance(
            anc, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
        ):
            unconditional = straight = False
        child = anc
    return None


def _analyse(unit: Unit, loop: ast.AST) -> TrainingLoop:
    info = TrainingLoop(loop)
    events, _ = _relevant(unit)
    start, end = _span(loop)
    lo = bisect.bisect_left(events, start, key=lambda n: (n.lineno, n.col_offset))  # type: ignore[attr-defined]
    for node in events[lo:]:
        if (node.lineno, node.col_offset) >= end:  # type: ignore[attr-defined]
            break
        placed = _placement(unit, node, loop)
        if placed is None:
            continue
        unconditional, straight, nested = placed
        if isinstance(node, ast.Assign):
            if nested:
                info.nested_zero = True
            else:
                info.events.append(LoopEvent(ZERO, node, node, None, unconditional, straight))
            continue
        assert isinstance(node, ast.Call)
        if nested:
            func = node.func
            name = callee_name(func) or ""
            if "zero_grad" in name or name in _GRAD_RESETS:
                info.nested_zero = True
            continue
        _record_call(unit, info, node, unconditional, straight)
    return info


def loop_callees(unit: Unit, loop: TrainingLoop) -> set[str]:
    """Names of local functions (`f`) and methods (`self.f`) called in the loop body."""
    _, callees = _relevant(unit)
    start, end = _span(loop.loop)
    found = set()
    for call in callees:
        if start <= (call.lineno, call.col_offset) < end:
            func = call.func
            found.add(func.id if isinstance(func, ast.Name) else f"self.{func.attr}")  # type: ignore[attr-defined]
    return found


def loop_assigned(unit: Unit, loop: TrainingLoop) -> set[str]:
    """Names bound by assignments inside the loop."""
    start, end = _span(loop.loop)
    names = set()
    for node in unit.nodes_of(ast.Assign):
        if start <= (node.lineno, node.col_offset) < end:  # type: ignore[attr-defined]
            for target in node.targets:  # type: ignore[attr-defined]
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
    return names


def _record_call(unit: Unit, info: TrainingLoop, call: ast.Call, unconditional: bool, straight: bool) -> None:
    func = call.func
    statement = unit.enclosing_statement(call)
    if isinstance(func, ast.Name):
        if "zero_grad" in func.id:
            info.events.append(LoopEvent(ZERO, call, statement, None, unconditional, straight))  # type: ignore[arg-type]
        return
    if not isinstance(func, ast.Attribute):
        return
    attr = func.attr
    if "zero_grad" in attr:
        info.events.append(
            LoopEvent(ZERO, call, statement, dotted_name(func.value), unconditional, straight)  # type: ignore[arg-type]
        )
    elif attr in _GRAD_RESETS:
        # p.grad.zero_() / p.grad.data.zero_()
        info.events.append(LoopEvent(ZERO, call, statement, None, unconditional, straight))  # type: ignore[arg-type]
    elif attr == "backward":
        info.events.append(
            LoopEvent(BACKWARD, call, statement, None, unconditional, straight, retains_graph(call))  # type: ignore[arg-type]
        )
    elif attr == "step":
        optimizer = step_optimizer(unit, call)
        if optimizer is not None:
            info.events.append(LoopEvent(STEP, call, statement, optimizer, unconditional, straight))  # type: ignore[arg-type]


def callees_zero_grad(unit: Unit, loop: TrainingLoop) -> bool:
    """Does a function or method called in the iteration mention `zero_grad` (or clear
    `.grad`)? Top-level functions are known through the module summary; methods of the
    enclosing class through the unit."""
    functions = unit.module.functions
    for name in loop_callees(unit, loop):
        if name.startswith("self."):
            cls = unit.enclosing_class(loop.loop)
            if cls is None:
                continue
            method = unit.methods(cls).get(name[5:])
            if method is not None and _mentions_zeroing(method):
                return True
        else:
            summary = functions.get(name)
            if summary is not None and "zero_grad" in summary.calls:
                return True
    # a helper of some other object whose name says it clears gradients
    # (`trainer.reset_grads()`, `agent.zero_all()`, `clear_gradients(model)`)
    start, end = _span(loop.loop)
    for call in unit.calls():
        if start <= (call.lineno, call.col_offset) < end:
            func = call.func
            name = (callee_name(func) or "").lower()
            if name == "zero_grad" or name in _GRAD_RESETS:
                continue  # already a loop event, with its receiver
            if "zero" in name or ("grad" in name and any(w in name for w in ("reset", "clear", "none"))):
                return True
    return False


def _mentions_zeroing(func: ast.AST) -> bool:
    for node in ast.walk(func):
        if isinstance(node, ast.Attribute) and ("zero_grad" in node.attr or node.attr == "grad"):
            return True
        if isinstance(node, ast.Name) and "zero_grad" in node.id:
            return True
    return False


def block_of(unit: Unit, stmt: ast.stmt) -> tuple[ast.AST, str, list[ast.stmt]] | None:
    """(parent, field, list) of the statement list that holds stmt."""
    parent = unit.parent(stmt)
    if parent is None:
        return None
    for name in ("body", "orelse", "finalbody"):
        block = getattr(parent, name, None)
        if isinstance(block, list) and any(s is stmt for s in block):
            return parent, name, block
    return None


def loop_level_statement(unit: Unit, node: ast.AST, loop: ast.AST) -> ast.stmt | None:
    """The statement directly in the loop body (possibly through `with` blocks) that holds node."""
    current = unit.enclosing_statement(node)
    while current is not None:
        parent = unit.parent(current)
        if parent is loop:
            return current
        if not isinstance(parent, (ast.With, ast.AsyncWith, ast.Try)):
            return None
        current = parent
    return None
