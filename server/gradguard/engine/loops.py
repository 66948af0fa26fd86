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

from gradguard.engine.dataflow import unit_text
from gradguard.engine.index import Unit, creates_grad_leaf, dotted_name, keyword
from gradguard.engine.values import OPTIMIZER

ZERO = "zero_grad"
BACKWARD = "backward"
STEP = "step"

_LOOPS = (ast.For, ast.AsyncFor, ast.While)
# in-place methods that reset `p.grad` / `p.grad.data`
_GRAD_RESETS = ("zero_", "fill_", "mul_", "copy_")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_OPTIMIZER_PREFIXES = ("torch.optim.", "bitsandbytes.optim.", "apex.optimizers.", "transformers.AdamW")
_NOT_OPTIMIZER_WORDS = (
    "sched",
    "scaler",
    "env",
    "lr",
    "warmup",
    "swa",
    "ema",
    "tqdm",
    "progress",
    "bar",
    "profiler",
)


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
    cached = unit.__dict__.get("_gg_training_loops")
    if cached is not None:
        return cached
    if "backward" not in unit_text(unit):
        unit.__dict__["_gg_training_loops"] = []
        return []
    loops: dict[int, TrainingLoop] = {}
    order: list[TrainingLoop] = []
    from gradguard.engine.shapes import calls_by_attr

    for call in calls_by_attr(unit, "backward"):
        loop = enclosing_loop(unit, call)
        if loop is None or id(loop) in loops:
            continue
        info = _analyse(unit, loop)
        loops[id(loop)] = info
        order.append(info)
    unit.__dict__["_gg_training_loops"] = order
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
    cached = unit.__dict__.get("_gg_loop_relevant")
    if cached is not None:
        return cached
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
    unit.__dict__["_gg_loop_relevant"] = (events, callees)
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
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
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
            name = (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")).lower()
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


# -- data flow for GG404 / GG405 ------------------------------------------------------------

# nn.Module methods that do not run a forward pass
_MODULE_METHODS = {
    "parameters",
    "named_parameters",
    "buffers",
    "named_buffers",
    "children",
    "named_children",
    "modules",
    "named_modules",
    "state_dict",
    "load_state_dict",
    "train",
    "eval",
    "to",
    "cuda",
    "cpu",
    "half",
    "float",
    "double",
    "zero_grad",
    "apply",
    "requires_grad_",
    "register_buffer",
    "register_parameter",
    "add_module",
    "register_forward_hook",
    "register_full_backward_hook",
    "get_submodule",
    "get_parameter",
    "extra_repr",
}
# names of parameters / variables that conventionally hold an nn.Module
_MODEL_WORDS = (
    "model",
    "net",
    "encoder",
    "decoder",
    "generator",
    "discriminator",
    "critic",
    "actor",
    "policy",
)
# method calls whose result no longer carries the autograd graph
_NON_SAVING = {
    "sum",
    "mean",
    "view",
    "reshape",
    "flatten",
    "squeeze",
    "unsqueeze",
    "t",
    "transpose",
    "permute",
    "expand",
    "contiguous",
    "clone",
    "to",
    "add",
    "sub",
    "neg",
    "float",
    "double",
    "cpu",
    "cuda",
    "len",
}
DETACHING = {"detach", "item", "tolist", "numpy", "detach_", "requires_grad_"}


class ScopeFlow:
    """Assignments of one scope (a function, or the script statements) with a cheap
    "does this name carry an autograd graph" analysis. Control flow is ignored except
    for source order: the binding of a name at a point is its last assignment before it."""

    def __init__(self, unit: Unit, scope: ast.AST | None) -> None:
        self.unit = unit
        self.scope = scope
        self.bindings: dict[str, list[tuple[tuple[int, int], ast.stmt, ast.expr | None]]] = {}
        self.modules: set[str] = set()  # local names bound to nn.Module instances
        self.constructed: set[str] = set()  # ... of which built here (`nn.Linear(...)`, `Net()`)
        self.leaves: set[str] = set(unit.module.grad_leaves) if scope is None else set()
        module = unit.module
        from gradguard.engine.shapes import scope_binders

        for node in scope_binders(unit).get(id(scope), ()):
            if isinstance(node, ast.NamedExpr):
                continue
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign):
                targets, value = [node.target], node.value
            elif isinstance(node, ast.AugAssign):
                targets, value = [node.target], node
            elif isinstance(node, (ast.For, ast.AsyncFor)):
                targets, value = [node.target], None
            else:
                targets = [i.optional_vars for i in node.items if i.optional_vars is not None]  # type: ignore[attr-defined]
                value = None
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        self.bindings.setdefault(sub.id, []).append(
                            ((node.lineno, node.col_offset), node, value)
                        )
                        if isinstance(value, ast.Call):
                            if module.is_layer_constructor(value) or module.call_name(value) in (
                                "torch.nn.Parameter",
                                "torch.nn.parameter.Parameter",
                            ):
                                if module.is_layer_constructor(value):
                                    self.modules.add(sub.id)
                                    self.constructed.add(sub.id)
                                else:
                                    self.leaves.add(sub.id)
                            elif creates_grad_leaf(value, module):
                                self.leaves.add(sub.id)
        if scope is not None:
            args = scope.args  # type: ignore[attr-defined]
            for arg in args.posonlyargs + args.args + args.kwonlyargs:
                if any(word in arg.arg.lower() for word in _MODEL_WORDS):
                    self.modules.add(arg.arg)
        self._memo: dict[tuple[str, ast.AST], frozenset] = {}
        self._self_layers: set[str] | None = None

    # -- queries ----------------------------------------------------------------------------
    def binding(self, name: str, before: tuple[int, int]):
        """The last (position, stmt, value) binding name strictly before `before`."""
        best = None
        for entry in self.bindings.get(name, ()):
            if entry[0] < before and (best is None or entry[0] > best[0]):
                best = entry
        return best

    def graph_sources(self, expr: ast.AST, before: tuple[int, int], depth: int = 0) -> frozenset:
        """The graph-carrying bindings (stmt ids) an expression depends on, following
        names back through their assignments; paths through `.detach()`/`.item()` are cut."""
        found: set = set()
        for name, root in self._references(expr):
            if root:
                found.add(("call", root))
                continue
            if name in self.leaves:
                continue
            entry = self.binding(name, before)
            if entry is None:
                continue
            pos, stmt, value = entry
            key = (name, stmt)
            if key in self._memo:
                found |= self._memo[key]
                continue
            if depth > 40 or value is None:
                continue
            self._memo[key] = frozenset()  # cycle guard
            if isinstance(value, ast.AugAssign):
                sub = self.graph_sources(value.value, pos, depth + 1) | self.graph_sources(
                    ast.Name(id=name, ctx=ast.Load()), pos, depth + 1
                )
            else:
                sub = self.graph_sources(value, pos, depth + 1)
            if sub or self._touches_leaf(value):
                sub = sub | {(name, stmt)}
            if self.unit.in_no_grad(stmt):
                sub = frozenset()
            self._memo[key] = frozenset(sub)
            found |= sub
        return frozenset(found)

    def _touches_leaf(self, value: ast.AST) -> bool:
        """Does value use a grad leaf in an op that saves tensors for backward? (`w.sum()`
        and `w + x` save none, so backward through them twice works.)"""
        if not any(name in self.leaves for name, root in self._references(value) if not root):
            return False
        for node in ast.walk(value):
            if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.MatMult, ast.Div, ast.Pow)):
                return True
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name not in _NON_SAVING:
                    return True
        return False

    def _references(self, expr: ast.AST):
        """(name, None) for names read by expr, and (None, call) for module calls, skipping
        detached sub-expressions."""
        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in DETACHING:
                    continue
                if self._is_module_call(func):
                    yield None, node
                stack.extend(node.args)
                stack.extend(k.value for k in node.keywords)
                if isinstance(func, ast.Attribute):
                    stack.append(func.value)
                continue
            if isinstance(node, ast.Attribute):
                if node.attr in ("data", "shape", "dtype", "device", "requires_grad", "grad", "ndim"):
                    continue
                stack.append(node.value)
                continue
            if isinstance(node, ast.Name):
                yield node.id, None
                continue
            if isinstance(node, (ast.Lambda, ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.SetComp)):
                continue
            stack.extend(ast.iter_child_nodes(node))

    def _is_module_call(self, func: ast.AST) -> bool:
        if isinstance(func, ast.Name):
            return func.id in self.modules
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id == "self":
                return func.attr in self._layers_of_self()
            # `model.encoder(x)` / `model.forward(x)`: a submodule of a known module
            return func.value.id in self.modules and func.attr not in _MODULE_METHODS
        return False

    def _layers_of_self(self) -> set[str]:
        if self._self_layers is None:
            layers: set[str] = set()
            cls = self.unit.enclosing_class(self.scope) if self.scope is not None else None
            if cls is not None and self.unit.module.is_module_class(cls.name):
                layers = {n for n, a in self.unit.class_attributes(cls).items() if a.kind == "layer"}
            self._self_layers = layers
        return self._self_layers


def scope_flow(unit: Unit, scope: ast.AST | None) -> ScopeFlow:
    cache = unit.__dict__.setdefault("_gg_flows", {})
    key = id(scope)
    if key not in cache:
        cache[key] = ScopeFlow(unit, scope)
    return cache[key]


def optimized_modules(unit: Unit) -> set[str]:
    """Dotted names whose `.parameters()` are handed to an optimizer built in this unit
    (`torch.optim.SGD(model.parameters())` -> {"model"}; `self.parameters()` -> {"self"})."""
    cached = unit.__dict__.get("_gg_optimized")
    if cached is not None:
        return cached
    from gradguard.engine.shapes import named_calls

    found: set[str] = set()
    for call, name in named_calls(unit):
        if not name or not name.startswith(_OPTIMIZER_PREFIXES) or "lr_scheduler" in name:
            continue
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            for sub in ast.walk(arg):
                if (
                    isinstance(sub, ast.Call)
                    and isinstance(sub.func, ast.Attribute)
                    and sub.func.attr in ("parameters", "named_parameters")
                ):
                    dotted = dotted_name(sub.func.value)
                    if dotted:
                        found.add(dotted)
                        found.add(dotted.split(".")[0])
    unit.__dict__["_gg_optimized"] = found
    return found


def module_call_root(call: ast.Call) -> str | None:
    """`model(x)` -> "model", `model.body(x)` -> "model", `self.encoder(x)` -> "self.encoder"."""
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"self.{func.attr}" if func.value.id == "self" else func.value.id
    return None


def freezes_parameters(unit: Unit) -> bool:
    """Does the unit switch `requires_grad` off anywhere (`p.requires_grad = False`,
    `m.requires_grad_(False)`)?"""
    cached = unit.__dict__.get("_gg_freezes")
    if cached is None:
        from gradguard.engine.shapes import calls_by_attr

        cached = False
        for node in unit.nodes_of(ast.Assign):
            if any(isinstance(t, ast.Attribute) and t.attr == "requires_grad" for t in node.targets):  # type: ignore[attr-defined]
                cached = True
                break
        if not cached:
            for call in calls_by_attr(unit, "requires_grad_"):
                arg = call.args[0] if call.args else keyword(call, "requires_grad")
                if arg is not None and not (isinstance(arg, ast.Constant) and arg.value is True):
                    cached = True
                    break
        unit.__dict__["_gg_freezes"] = cached
    return cached


def requires_grad_sources(unit: Unit, flow: ScopeFlow, sources) -> bool:
    """Is some source of a graph certainly tracked by autograd: a grad leaf used in an op
    that saves tensors, or a call of a module that is trained here (handed to an optimizer of
    this unit) or built here / a layer of `self` while nothing in the unit freezes parameters?"""
    optimized = optimized_modules(unit)
    freezes = freezes_parameters(unit)
    for kind, node in sources:
        if kind == "call":
            root = module_call_root(node)
            if root is None:
                continue
            if root in optimized or root.split(".")[0] in optimized:
                return True
            if not freezes and (root.startswith("self.") or root in flow.constructed):
                return True
        else:
            value = getattr(node, "value", None)
            if value is not None and not isinstance(node, ast.AugAssign) and flow._touches_leaf(value):
                return True
    return False
