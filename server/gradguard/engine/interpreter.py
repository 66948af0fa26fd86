"""The binder and evaluator: one pass over a scope that says what every name holds.

`Flow` interprets one function body (or a unit's script statements) abstractly, in
source order, with the values of `gradguard.engine.values`:

* **Bindings.** The environment maps each local name to the value it holds and to the
  definitions (assignment, parameter, `for` target, `with ... as`, import, `def`, ...)
  that reach that point. Branches (`if`, `try`, `match`, `while`/`for` bodies that may
  not run) are joined; a loop body runs until its entry state is stable (at most
  `LOOP_PASSES` times), so a value from the previous iteration reaches the next;
  `return`/`raise`/`break`/`continue` end a path. Comprehensions and lambdas have their
  own scope; names the scope does not bind are looked up in enclosing functions, then the
  module (`Semantics.global_value`).
* **Values.** Every evaluated expression's value is recorded (`value_of(node)`), and so
  are the definitions that reach each name load (`reaching(node)`).
* **Autograd state.** Which tensors an op saved for backward (`State.saved`, by the
  allocation site of the tensor object, views included), whether gradients are enabled
  (`torch.no_grad()` blocks, decorators, `set_grad_enabled(False)`).
* **Events** for the rules: in-place writes (with the saved tensors they hit),
  `backward()` calls, optimizer `step`/`zero_grad`, attribute stores (`self.x = ...`,
  `p.grad = ...`, `p.data = ...`), re-wraps (`torch.tensor(t)`), calls of Function
  instances, returns.

Calls of functions and methods of the same file are evaluated through `Semantics`
(summaries computed with the caller's argument values); torch ops through
`gradguard.engine.torch_facts`. The interpreter never raises on odd code: anything it
does not understand evaluates to `UNKNOWN`.
"""

from __future__ import annotations

import ast
import weakref
from typing import TYPE_CHECKING

from gradguard.engine import integer_use, none_paths, path_facts, shape_flow, torch_facts
from gradguard.engine.index import iter_children
from gradguard.engine.symshape import Shape
from gradguard.engine.values import (
    ANY,
    BOOL,
    BOOL_VALUE,
    BUFFER,
    CALLABLE,
    CLASS,
    CONTAINER,
    CTX,
    DATA,
    DETACH,
    DICT,
    FLOAT,
    FLOAT_VALUE,
    FUNCTION_CLASS,
    FUNCTION_INSTANCE,
    INT,
    INT_VALUE,
    INTEGRAL,
    ITEM,
    LIST,
    MAYBE,
    MODULE,
    NO,
    NO_GRAD,
    NONDIFF,
    NONE,
    NONE_VALUE,
    NOTHING,
    NUMBER,
    NUMPY,
    NUMPY_CUT,
    OBJECT,
    OBJECT_VALUE,
    OPTIMIZER,
    PARAMETER,
    REF,
    REWRAP,
    SCHEDULER,
    SIZE,
    SIZE_VALUE,
    STR,
    STR_VALUE,
    TENSOR,
    TUPLE,
    UNKNOWN,
    YES,
    ZERO_GRAD,
    Cut,
    Value,
    as_integer,
    combine,
    cut,
    element_of,
    floating_dtype,
    join,
    join_all,
)

if TYPE_CHECKING:
    from gradguard.engine.index import ModuleContext
    from gradguard.engine.semantic import Semantics

LOOP_PASSES = 3
TENSORISH = TENSOR | PARAMETER | BUFFER

# -- events ---------------------------------------------------------------------------------
INPLACE = "inplace"  # a tensor modified in place (method_, augmented assignment, item write)
BACKWARD = "backward"  # `<value>.backward(...)`
OPTIMIZER_STEP = "step"
ZERO_GRAD_CALL = "zero_grad"
ATTRIBUTE_STORE = "store"  # `<base>.attr = value`
REWRAP_CALL = "rewrap"  # torch.tensor(t) / as_tensor(...) copying tracked tensors
FUNCTION_INSTANCE_CALL = "fn_instance_call"  # `Fn()(x)` / `f = Fn(); f(x)`
APPEND = "append"  # `xs.append(v)` on a local list
RETURN = "return"
CALL = "call"  # a call of a local function/method/module (for interprocedural rules)
DEAD_TERM = "dead_term"  # `a + b` where `b` was cut from the model `a` reaches: a constant term


class Event:
    """Something a rule may care about, at one node of the scope."""

    __slots__ = ("args", "data", "kind", "node", "nograd", "op", "saved", "statement", "target", "value")

    def __init__(
        self,
        kind: str,
        node: ast.AST,
        statement: ast.stmt | None,
        value: Value,
        *,
        op: str = "",
        target: ast.AST | None = None,
        args: tuple = (),
        saved: tuple = (),
        nograd: ast.AST | None = None,
        data: object = None,
    ) -> None:
        self.kind = kind
        self.node = node
        self.statement = statement
        self.value = value  # the receiver / stored value / backpropagated value
        self.op = op  # in-place op name ("add_", "+=", "setitem"), attribute name for stores
        self.target = target  # the expression written to (in-place) or the store target
        self.args = args  # values of the other operands
        self.saved = saved  # in-place writes: the `Saved` records of the tensors it modified
        self.nograd = nograd  # the no_grad context the event happened in
        self.data = data  # anything else (e.g. retain_graph for backward)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Event({self.kind} {self.op} @{getattr(self.node, 'lineno', '?')})"


class Saved:
    """A tensor an op saved for backward: the op's call node, the op, and whether it saved
    its output ("output") or one of its inputs ("input")."""

    __slots__ = ("certain", "node", "op", "role")

    def __init__(self, node: ast.AST, op: str, role: str, certain: bool) -> None:
        self.node = node
        self.op = op
        self.role = role
        self.certain = certain  # the op certainly recorded a graph (an input certainly required grad)

    def __repr__(self) -> str:  # pragma: no cover
        return f"Saved({self.op} {self.role} @{getattr(self.node, 'lineno', '?')})"


class State:
    """What is known at one point of a scope."""

    __slots__ = ("defs", "env", "nograd", "saved", "splits")

    def __init__(
        self, env: dict, defs: dict, saved: dict, nograd: ast.AST | None, splits: tuple = ()
    ) -> None:
        self.env = env  # name -> Value
        self.defs = defs  # name -> frozenset of definition nodes
        self.saved = saved  # allocation site -> Saved
        self.nograd = nograd  # the node that disabled gradients (with/decorator/statement), or None
        self.splits = splits  # `path_facts.Split`s: earlier `if`s whose arms bound names differently

    def copy(self) -> State:
        return State(dict(self.env), dict(self.defs), dict(self.saved), self.nograd, self.splits)


def _roots_of(state: State, names: frozenset) -> set:
    """The tensor objects the names hold."""
    roots: set = set()
    for name in names:
        value = state.env.get(name)
        if value is not None:
            roots |= value.roots
    return roots


def _reachable_saves(state: State) -> dict:
    """The state's saved tensors that some name still holds (a saved tensor nothing holds can
    never be written again: keeping it would let another path's value seem saved)."""
    if not state.saved:
        return state.saved
    held: set = set()
    for value in state.env.values():
        held.update(value.roots)
        for part in (*(value.items or ()), *([value.elem] if value.elem is not None else [])):
            held.update(part.roots)
    if all(root in held for root in state.saved):
        return state.saved
    return {root: record for root, record in state.saved.items() if root in held}


def merge(states: list[State | None]) -> State | None:
    live = [s for s in states if s is not None]
    if not live:
        return None
    if len(live) == 1:
        return live[0]
    for one in live:
        one.saved = _reachable_saves(one)
    first = live[0]
    env = dict(first.env)
    defs = dict(first.defs)
    saved = dict(first.saved)
    nograd = first.nograd
    for other in live[1:]:
        for name, value in other.env.items():
            mine = env.get(name)
            env[name] = value if mine is None else join(mine, value)
            theirs = other.defs.get(name)
            if theirs:
                current = defs.get(name)
                defs[name] = theirs if not current else current | theirs
        for name in env.keys() - other.env.keys():
            env[name] = join(env[name], NOTHING)  # unbound on that path
        for site, record in other.saved.items():
            if site not in saved:
                saved[site] = record
        if other.nograd is not nograd:
            nograd = nograd or other.nograd
    if saved:
        _exclude_other_paths_saves(env, saved, live)
    splits = first.splits
    if splits:
        splits = tuple(s for s in splits if all(s in other.splits for other in live[1:]))
    return State(env, defs, saved, nograd, splits)


def _exclude_other_paths_saves(env: dict, saved: dict, paths: list[State]) -> None:
    """A merged name holds a saved tensor only if, on some path, it held that tensor while it
    was saved: `residual = h; if c: h = linear(h)` saves `residual`'s tensor on one path,
    and `h` holds it on the other, where nothing saved it."""
    for name, value in env.items():
        if not value.roots or value.roots.isdisjoint(saved):
            continue
        excluded = set()
        for root in value.roots & saved.keys():
            record = saved[root]
            applies = False
            for path in paths:
                held = path.env.get(name)
                if held is None or root not in held.roots:
                    continue
                there = path.saved.get(root)
                if there is not None and (root, there) not in held.unsaved:
                    applies = True
                    break
            if not applies:
                excluded.add((root, record))
        if excluded:
            env[name] = value.evolve(unsaved=value.unsaved | excluded)


def _same(a: State, b: State) -> bool:
    if a.env.keys() != b.env.keys() or a.saved.keys() != b.saved.keys():
        return False
    for name, value in a.env.items():
        if not _same_value(value, b.env[name]):
            return False
    return True


def _same_value(a: Value, b: Value, depth: int = 0) -> bool:
    if a is b:
        return True
    if (
        a.kinds != b.kinds
        or a.grad != b.grad
        or a.leaf != b.leaf
        or a.sources != b.sources
        or a.blocked != b.blocked
        or a.stale != b.stale
        or a.roots != b.roots
        or a.cls != b.cls
        or a.dtype != b.dtype
        or len(a.cuts) != len(b.cuts)
        or (a.shape is not b.shape and a.shape != b.shape)
        or (a.dim is not b.dim and a.dim != b.dim)
    ):
        return False
    if depth > 3:
        return True
    if (a.elem is None) != (b.elem is None):
        return False
    return a.elem is None or _same_value(a.elem, b.elem, depth + 1)


class _LoopFrame:
    __slots__ = ("breaks", "continues", "node")

    def __init__(self, node: ast.AST) -> None:
        self.node = node
        self.breaks: list[State] = []
        self.continues: list[State] = []


_GRAD_DISABLING = frozenset(
    {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad",
     "torch.autograd.inference_mode"}
)  # fmt: skip
_GRAD_ENABLING = frozenset(
    {"torch.enable_grad", "torch.autograd.enable_grad", "torch.autograd.grad_mode.enable_grad"}
)
_GRAD_SETTERS = frozenset({"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"})
_GRAD_QUERIES = frozenset({"torch.is_grad_enabled", "torch.autograd.grad_mode.is_grad_enabled"})

_CUT_METHODS = {"detach": DETACH, "item": ITEM, "tolist": ITEM, "numpy": NUMPY_CUT}
_SAME_OBJECT_METHODS = frozenset({"requires_grad_", "retain_grad", "share_memory_", "pin_memory"})
_DEVICE_METHODS = frozenset({"cpu", "cuda", "to"})
_INT_DTYPES = frozenset({"int64", "int32", "int16", "int8", "uint8", "bool"})
_MODULE_SELF_METHODS = frozenset({"train", "eval", "to", "cuda", "cpu", "float", "half", "double", "bfloat16",
                                  "requires_grad_", "apply", "type", "share_memory"})  # fmt: skip
_MODULE_PARAM_METHODS = frozenset({"parameters", "named_parameters"})
_MODULE_NO_VALUE_METHODS = frozenset({"zero_grad", "register_buffer", "register_parameter", "add_module",
                                      "register_module", "load_state_dict"})  # fmt: skip
_BUILTIN_NUMBERS = {"float": FLOAT, "int": INT, "bool": BOOL, "complex": FLOAT}
_NUMPY_FLOAT_FUNCTIONS = frozenset({"array", "asarray", "zeros", "ones", "empty", "linspace", "eye", "identity",
                                    "randn", "rand", "random", "normal", "uniform", "standard_normal", "full",
                                    "arange", "stack", "concatenate", "load", "loadtxt", "genfromtxt"})  # fmt: skip

DTYPES = {
    "torch.float32": "float32", "torch.float": "float32", "torch.float64": "float64", "torch.double": "float64",
    "torch.float16": "float16", "torch.half": "float16", "torch.bfloat16": "bfloat16", "torch.int64": "int64",
    "torch.long": "int64", "torch.int32": "int32", "torch.int": "int32", "torch.int16": "int16",
    "torch.short": "int16", "torch.int8": "int8", "torch.uint8": "uint8", "torch.bool": "bool",
    "numpy.float64": "float64", "numpy.double": "float64", "numpy.float32": "float32", "numpy.single": "float32",
    "numpy.int64": "int64", "numpy.int32": "int32", "numpy.bool_": "bool", "numpy.uint8": "uint8",
}  # fmt: skip
_DTYPE_METHODS = {"float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16",
                  "long": "int64", "int": "int32", "short": "int16", "bool": "bool", "byte": "uint8",
                  "char": "int8"}  # fmt: skip


def is_float_dtype(dtype: str | None) -> bool:
    return dtype is not None and dtype.startswith(("float", "bfloat", "complex"))


class Flow:
    """The abstract interpretation of one scope.

    `func` is the function (None for a unit's script statements); `arguments` the values
    its parameters hold (None: the natural context, every parameter from its annotation/
    default or unknown); `self_value` what its first parameter holds for methods."""

    def __init__(
        self,
        semantics: Semantics,
        func: ast.AST | None,
        body: list[ast.stmt],
        arguments: dict[str, Value] | None = None,
        enclosing: Flow | None = None,
        natural: bool = True,
        class_node: ast.ClassDef | None = None,
    ) -> None:
        # the semantics object owns its flows: a weak reference back keeps trees free of
        # reference cycles (freed by reference counting as soon as a check returns)
        self.semantics = semantics if isinstance(semantics, weakref.ProxyType) else weakref.proxy(semantics)
        self.module = semantics.module
        self.func = func
        self.enclosing = enclosing
        self.natural = natural  # False for a summary computed for one call: its events are not the rules'
        self.class_node = class_node
        self.values: dict[ast.AST, Value] = {}
        self.reaching_defs: dict[ast.AST, frozenset] = {}
        self.events: dict[tuple[str, int], Event] = {}
        self.returns: list[tuple[ast.AST, Value]] = []
        self.declared_global: set[str] = set()
        self.declared_nonlocal: set[str] = set()
        self.mutated: set[ast.AST] = set()  # allocation sites written in place
        # the tensor objects (`Value.roots`) passed where torch takes integers only (an `nn.Embedding`'s
        # ids): they hold integers at every point of the scope, before that use too (no write changes
        # a tensor's dtype)
        self.integer_roots: set[ast.AST] = set()
        self.shape_problems: dict = {}  # (code, node) -> shape_flow.Problem: certain shape errors found here
        self._loops: list[_LoopFrame] = []
        self._statement: ast.stmt | None = None
        self._counter = 0
        self.parameters: dict[str, ast.arg] = {}
        # names whose use in this scope shows they hold integers (an index, a class target)
        self.integer_names, self.class_targets = self._integer_names(func, body)
        state = State({}, {}, {}, None)
        if func is not None:
            self._bind_parameters(func, arguments or {}, state)
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                self._disables_grad(func) or (natural and semantics.called_without_grad(func))
            ):
                state.nograd = func
        self._return_states: list[State] = []
        self.return_points: list[tuple[Value, State]] = []  # what each `return` returns, and the state there
        self._body = body
        self._dead_none: dict[ast.If, bool] | None = None  # `none_paths.dead_none_branches`, when asked
        self.final = self._block(body, state)
        # the state where the scope ends, by falling off its end or by a return
        self.exit_state = merge([self.final, *self._return_states])

    # -- public queries ----------------------------------------------------------------------
    def value_of(self, node: ast.AST) -> Value:
        """The value an expression of this scope had (UNKNOWN when it was never evaluated)."""
        return self.values.get(node, UNKNOWN)

    def reaching(self, name: ast.Name) -> frozenset:
        """The definition nodes that may have bound the name at this load."""
        return self.reaching_defs.get(name, frozenset())

    def assigned_values(self, name: ast.Name) -> list[ast.expr] | None:
        """The values of the definitions that may have bound the name at this load, when there are
        some and each is a plain `name = value`; None otherwise (a parameter, a loop target, unpacking)."""
        defs = self.reaching(name)
        if not defs or not all(
            isinstance(d, ast.Assign) and len(d.targets) == 1 and isinstance(d.targets[0], ast.Name)
            for d in defs
        ):
            return None
        return [d.value for d in defs]

    def events_of(self, *kinds: str) -> list[Event]:
        found = [e for e in self.events.values() if e.kind in kinds]
        found.sort(key=lambda e: (getattr(e.node, "lineno", 0), getattr(e.node, "col_offset", 0)))
        return found

    @property
    def return_value(self) -> Value:
        if not self.returns:
            return NONE_VALUE if self.final is not None else NOTHING
        value = join_all(v for _, v in self.returns)
        if self.final is not None:
            value = join(value, NONE_VALUE)  # falls off the end on some path
        return value

    def final_value(self, name: str) -> Value:
        if self.final is None:
            return UNKNOWN
        return self.final.env.get(name, UNKNOWN)

    # -- set-up --------------------------------------------------------------------------------
    def _integer_names(self, func: ast.AST | None, body: list[ast.stmt]) -> tuple:
        if not body:
            return frozenset(), {}
        cache = self.semantics.integer_names_cache
        key = func if func is not None else body[0]
        found = cache.get(key)
        if found is None:
            found = cache[key] = integer_use.scan(body, self.module)
        return found

    def _as_integer(self, name: str, value: Value, state: State) -> Value:
        """`value` bound to `name`, which the scope uses as integers; left alone when its only
        such use is a `cross_entropy` target and `value` is known to be class probabilities."""
        scores = self.class_targets.get(name)
        if scores is not None and any(
            self._probabilities(value, state.env.get(s, UNKNOWN), s) for s in scores or ("",)
        ):
            return value
        return as_integer(value)

    def _bind_parameters(self, func: ast.AST, arguments: dict[str, Value], state: State) -> None:
        args = func.args  # type: ignore[attr-defined]
        positional = args.posonlyargs + args.args
        defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        every = [*zip(positional, defaults, strict=True)]
        every += [*zip(args.kwonlyargs, args.kw_defaults, strict=True)]
        for arg, default in every:
            self.parameters[arg.arg] = arg
            value = arguments.get(arg.arg)
            if value is None:
                value = self.semantics.parameter_value(self, func, arg, default)
                value = shape_flow.parameter(self, func, arg, default, value)
                if value.kinds & TENSORISH and not value.roots:
                    # the caller's tensor object: its identity for saved-tensor tracking
                    value = value.evolve(sites=frozenset((arg,)), roots=frozenset((arg,)))
            if arg.arg in self.integer_names:
                value = self._as_integer(arg.arg, value, state)
            state.env[arg.arg] = value
            state.defs[arg.arg] = frozenset((arg,))
        for arg, kinds in ((args.vararg, TUPLE), (args.kwarg, DICT)):
            if arg is not None:
                self.parameters[arg.arg] = arg
                value = arguments.get(arg.arg) or Value(kinds, grad=NO, leaf=NO, elem=UNKNOWN)
                state.env[arg.arg] = value
                state.defs[arg.arg] = frozenset((arg,))

    def _disables_grad(self, func: ast.AST) -> bool:
        return disables_grad(self.module, func)

    # -- statements ----------------------------------------------------------------------------
    def _block(self, body: list[ast.stmt], state: State | None) -> State | None:
        for stmt in body:
            if state is None:
                return None
            self._statement = stmt
            handler = _STATEMENTS.get(stmt.__class__)
            state = handler(self, stmt, state) if handler is not None else self._other_statement(stmt, state)
        return state

    def _other_statement(self, stmt: ast.stmt, state: State) -> State | None:
        name = stmt.__class__.__name__
        if name == "TryStar":
            return self._try(stmt, state)
        if name == "Match":
            return self._match(stmt, state)
        if name == "TypeAlias":
            return state
        for child in ast.iter_child_nodes(stmt):
            if isinstance(child, ast.expr):
                self._eval(child, state)
        return state

    def _assign(self, stmt: ast.Assign, state: State) -> State:
        value = self._eval(stmt.value, state)
        for target in stmt.targets:
            self._bind(target, value, stmt.value, state, stmt)
        return state

    def _ann_assign(self, stmt: ast.AnnAssign, state: State) -> State:
        if stmt.value is not None:
            value = self._eval(stmt.value, state)
            self._bind(stmt.target, value, stmt.value, state, stmt)
        return state

    def _aug_assign(self, stmt: ast.AugAssign, state: State) -> State:
        rhs = self._eval(stmt.value, state)
        target = stmt.target
        op = _AUG_NAMES.get(stmt.op.__class__, "op")
        if isinstance(target, ast.Subscript):
            base = self._eval(target.value, state, load=True)
            key = self._eval(target.slice, state)
            if _string_key(target.slice, key) and base.kinds & TENSORISH:
                self._not_a_tensor(target.value, base, state)
            elif base.is_tensor:
                self._inplace(stmt, target.value, base, (rhs,), "setitem", state, index=target)
            return state
        before = self._eval(target, state, load=True)
        path = _self_path(target)
        if before.is_tensor:
            # `t += x` on a tensor runs `t.add_(x)`: the same object, modified in place
            self._note_terms(stmt.op, before, rhs, stmt, state)
            new = self._inplace(stmt, target, before, (rhs,), op + "=", state)
            if path is not None:
                state.env[path] = new
            return state
        new = self._binary(stmt.op, before, rhs, stmt, state)
        if isinstance(target, ast.Name):
            self._set(target.id, new, state, stmt)
        elif isinstance(target, ast.Attribute):
            base = self.values.get(target.value, UNKNOWN)
            self._record(ATTRIBUTE_STORE, stmt, state, new, op=target.attr, target=target, args=(base,))
            if path is not None:
                state.env[path] = new
        return state

    def _expr_statement(self, stmt: ast.Expr, state: State) -> State:
        self._eval(stmt.value, state)
        value = stmt.value
        if isinstance(value, ast.Call):
            name = self.module.call_name(value)
            if name in _GRAD_SETTERS:
                flag = _constant_arg(value, 0, "mode")
                if flag is False:
                    state.nograd = stmt
                elif flag is True:
                    state.nograd = None
        return state

    def _return(self, stmt: ast.Return, state: State) -> None:
        value = self._eval(stmt.value, state) if stmt.value is not None else NONE_VALUE
        self.returns.append((stmt, value))
        self._record(RETURN, stmt, state, value)
        self._return_states.append(state)
        self.return_points.append((value, state))
        return None

    def _raise(self, stmt: ast.Raise, state: State) -> None:
        if stmt.exc is not None:
            self._eval(stmt.exc, state)
        return None

    def _if(self, stmt: ast.If, state: State) -> State | None:
        self._eval(stmt.test, state)
        then_state, else_state = self._narrow(stmt.test, state)
        known = shape_flow.truth(self, stmt.test)  # a test on known ints / None-ness: one branch runs
        if known is None and isinstance(stmt.test, ast.Compare):
            known = self._none_dies().get(stmt)  # (the `None` branch raises later in the block)
        if known is not None:
            return self._block(stmt.body, then_state) if known else self._block(stmt.orelse, else_state)
        if state.splits:
            self._correlated(stmt.test, state, then_state, else_state)
        then_end, else_end = self._block(stmt.body, then_state), self._block(stmt.orelse, else_state)
        end = merge([then_end, else_end])
        if then_end is not None and else_end is not None and end is not None and self.func is not None:
            self._split(stmt, state, then_end, else_end, end)
        if (
            then_end is not None
            and else_end is not None
            and end is not None
            and end.nograd is _unnegated(stmt.test)
        ):
            end.nograd = state.nograd  # (`if torch.is_grad_enabled(): ... else: ...`: both paths go on)
        return end

    def _split(self, stmt: ast.If, before: State, then_end: State, else_end: State, end: State) -> None:
        """Remember, on the joined state, the values of the names the arms of `stmt` bound
        differently, for a later test on the same condition (`path_facts`)."""
        test = stmt.test
        asserted = path_facts.atom(test)
        if asserted is None or asserted[0] not in self._retested():
            return
        roots = path_facts.roots(test)
        if not roots or any(r not in before.env for r in roots):
            return  # a global (a call may change it) or an unbound name
        arms = [(frozenset((asserted,)), then_end.env)]
        negated = (asserted[0], asserted[1], not asserted[2])
        inner = else_end.splits[-1] if else_end.splits else None
        names = {
            n for n, v in end.env.items() if then_end.env.get(n) is not v or else_end.env.get(n) is not v
        }
        if inner is not None and len(stmt.orelse) == 1 and inner.node is stmt.orelse[0]:
            # an `elif` chain: the arms of the inner `if`, each also under `not test`
            names.update(inner.merged)
            for facts, values in inner.arms:
                # a name the inner arm did not bind holds what the else path holds; bound on neither: absent
                held = {n: values.get(n, else_end.env.get(n)) for n in names}
                arms.append((facts | {negated}, {n: v for n, v in held.items() if v is not None}))
            roots = roots | inner.roots
            if any(r not in before.env for r in roots):
                return
        else:
            arms.append((frozenset((negated,)), else_end.env))
        if not names:
            return
        arms = [(facts, {n: values[n] for n in names if n in values}) for facts, values in arms]
        split = path_facts.Split(
            stmt, arms, {n: end.env[n] for n in names}, roots, {r: before.env[r] for r in roots}
        )
        end.splits = (*end.splits[-(path_facts.MAX_SPLITS - 1) :], split)

    def _retested(self) -> frozenset:
        if not self._body:
            return frozenset()
        cache = self.semantics.retested_cache  # syntax only: shared by every flow of the same body
        found = cache.get(self._body[0])
        if found is None:
            found = cache[self._body[0]] = path_facts.retested(self._body)
        return found

    def _correlated(self, test: ast.expr, state: State, then_state: State, else_state: State) -> None:
        """A test identical to (or the negation of, or an `==` against a constant of) an earlier
        one whose arms bound names differently: each branch gets the values of the arms it can
        follow, while nothing the tests read and none of those names changed in between."""
        query = path_facts.atom(test)
        if query is None:
            return
        tested = path_facts.roots(test)
        done: set[str] = set()
        for split in reversed(state.splits):
            truths = [path_facts.truth(query, facts) for facts, _ in split.arms]
            if all(t is None for t in truths):
                continue
            if any(state.env.get(r) is not v for r, v in split.test_values.items()):
                continue
            if path_facts.changed_between(self._body, split.node.test, test, split.roots):
                continue
            for name, merged in split.merged.items():
                if name in done or name in tested or state.env.get(name) is not merged:
                    continue
                if not all(name in values for _, values in split.arms):
                    continue  # unbound on some path
                done.add(name)
                for branch, excluded in ((then_state, False), (else_state, True)):
                    arms = zip(split.arms, truths, strict=True)
                    held = [values[name] for (_, values), t in arms if t is not excluded]
                    if held:
                        branch.env[name] = join_all(held)

    def _none_dies(self) -> dict[ast.If, bool]:
        if self._dead_none is None:
            if not self._body:
                return {}
            # syntax only: shared by every flow of the same body (a function is re-run per call site)
            cache = self.semantics.dead_none_cache
            found = cache.get(self._body[0])
            if found is None:
                found = cache[self._body[0]] = none_paths.dead_none_branches(self._body)
            self._dead_none = found
        return self._dead_none

    def _loop(self, stmt: ast.For | ast.AsyncFor | ast.While, state: State) -> State | None:
        is_for = not isinstance(stmt, ast.While)
        iterated = self._eval(stmt.iter, state) if is_for else None  # type: ignore[union-attr]
        if iterated is not None and (not self.natural or shape_flow.builds(self)):
            items = shape_flow.unrollable(iterated)
            if items is not None:
                return self._unrolled(stmt, items, state)  # type: ignore[arg-type]
        always_enters = (
            self._over_layers(stmt.iter)  # type: ignore[union-attr]
            if is_for
            else _is_true_constant(stmt.test)  # type: ignore[union-attr]
        )
        head = state
        back: State | None = None
        exits: list[State] = []
        frame = _LoopFrame(stmt)
        for _ in range(LOOP_PASSES):
            frame.breaks, frame.continues = [], []
            entry = head.copy()
            if is_for:
                assert iterated is not None  # evaluated above for a `for`
                element = element_of(iterated)
                if iterated.kinds == ANY and element.names:
                    # an unknown iterable (a data loader) hands out a new object each iteration,
                    # not a part of a graph that the iterable holds
                    element = element.evolve(names=frozenset())
                element = self._fresh_items(stmt.iter, element)  # type: ignore[union-attr]
                self._bind(stmt.target, element, None, entry, stmt)  # type: ignore[union-attr,arg-type]
            else:
                self._eval(stmt.test, entry)  # type: ignore[union-attr]
            self._loops.append(frame)
            end = self._block(stmt.body, entry)
            self._loops.pop()
            back = merge([end, *frame.continues])
            if is_for and back is not None:
                back = shape_flow.loop_carried(back, stmt)
            new_head = merge([state, back]) if back is not None else state
            exits = list(frame.breaks)
            if _same(new_head, head):
                head = new_head
                break
            head = new_head
        # the loop ends when the iterator is exhausted / the test is false (from the head),
        # running `else`, or through a `break`
        if not is_for and always_enters:
            normal = None
        elif always_enters:  # after at least one pass: from the end of the body
            normal = self._block(stmt.orelse, back.copy()) if back is not None else None
        else:
            normal = self._block(stmt.orelse, head.copy())
        return merge([normal, *exits])

    def _fresh_items(self, iterable: ast.expr, element: Value) -> Value:
        """`enumerate(loader)` / `zip(loader, ...)` of an unknown iterable (a data loader, a
        progress bar around one): its part of each item is a new object, as for the loader
        itself, not a part of the (perhaps freed) graph the loader is taken to hold."""
        if not (
            isinstance(iterable, ast.Call)
            and isinstance(iterable.func, ast.Name)
            and iterable.func.id in ("enumerate", "zip")
            and element.items is not None
            and not any(isinstance(arg, ast.Starred) for arg in iterable.args)
        ):
            return element
        args = iterable.args[:1] if iterable.func.id == "enumerate" else iterable.args
        offset = 1 if iterable.func.id == "enumerate" else 0
        items = list(element.items)
        for index, arg in enumerate(args):
            source = self.values.get(arg)
            part = index + offset
            if source is not None and source.kinds == ANY and part < len(items):
                items[part] = items[part].evolve(names=frozenset(), stale=frozenset())
        return element.evolve(items=tuple(items))

    def _over_layers(self, iterable: ast.expr) -> bool:
        """Whether a `for` loop iterates over a model's layers (`self.layers`, `enumerate(...)`,
        `zip(...)`, `reversed(...)` of them): such a loop runs at least once. Taking the
        zero-pass path too would let a block's input stand for its output."""
        while isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and iterable.args:
            if iterable.func.id == "enumerate" or iterable.func.id == "reversed":
                iterable = iterable.args[0]
            elif iterable.func.id == "zip":
                return any(self._over_layers(arg) for arg in iterable.args)
            else:
                break
        value = self.values.get(iterable)
        return value is not None and element_of(value).is_module

    def _unrolled(self, stmt: ast.For | ast.AsyncFor, items: tuple, state: State) -> State | None:
        """A call context's `for` over a few values it knows one by one (`range(1, 3)`, a tuple of
        layers): each iteration in turn, exactly."""
        exits: list[State] = []
        current: State | None = state
        for item in items:
            if current is None:
                break
            frame = _LoopFrame(stmt)
            entry = current.copy()
            self._bind(stmt.target, item, None, entry, stmt)
            self._loops.append(frame)
            end = self._block(stmt.body, entry)
            self._loops.pop()
            exits.extend(frame.breaks)
            current = merge([end, *frame.continues])
        normal = self._block(stmt.orelse, current) if current is not None else None
        return merge([normal, *exits])

    def free_graph(self, loss: Value, backward: ast.AST, state: State) -> None:
        """After `backward()` without `retain_graph`, the graph behind `loss` is freed: every
        local value with a graph that `loss` was computed from, or that was computed from
        it (`total = total + loss`), now rests on freed buffers. (`backward` may be the call of a
        helper that backpropagates the loss: `backward_helpers`.)"""
        graph_names = {
            name for name in loss.names if (value := state.env.get(name)) is not None and has_graph(value)
        }
        for name, value in state.env.items():
            if not has_graph(value) or not value.saves or backward in value.stale:
                continue
            if name in graph_names or (value.names and not value.names.isdisjoint(graph_names)):
                state.env[name] = value.evolve(stale=value.stale | {backward})
        if state.saved:
            # a tensor the loss was computed from, saved by one of its ops: the graph that saved it is freed,
            # and an in-place write from here on corrupts nothing a backward reads -- unless a graph a name
            # still holds was computed from it too (torchattacks' EAD: `const` scaled after `cost.backward()`)
            freed = _roots_of(state, loss.names) & state.saved.keys()
            for value in state.env.values():
                if freed and has_graph(value) and value.saves and backward not in value.stale:
                    freed -= _roots_of(state, value.names)
            if freed:
                state.saved = {root: record for root, record in state.saved.items() if root not in freed}

    def _with(self, stmt: ast.With | ast.AsyncWith, state: State) -> State | None:
        saved_mode = state.nograd
        frame = self._loops[-1] if self._loops else None
        left_at = (len(frame.breaks), len(frame.continues)) if frame is not None else (0, 0)
        for item in stmt.items:
            value = self._eval(item.context_expr, state)
            mode = self._grad_mode(item.context_expr)
            if mode is False:
                state.nograd = stmt
            elif mode is True:
                state.nograd = None
            if item.optional_vars is not None:
                self._bind(item.optional_vars, value, None, state, stmt)
        end = self._block(stmt.body, state)
        if end is not None:
            end.nograd = saved_mode
        if frame is not None:
            # a `break`/`continue` leaves the block too: the grad mode is restored on those paths as well
            # (torchattacks' `with torch.no_grad(): ... break` must not make the next loop run without grad)
            for left in (*frame.breaks[left_at[0] :], *frame.continues[left_at[1] :]):
                left.nograd = saved_mode
        return end

    def _grad_mode(self, expr: ast.expr) -> bool | None:
        return grad_mode(self.module, expr)

    def _try(self, stmt: ast.AST, state: State) -> State | None:
        start = state.copy()
        body_end = self._block(stmt.body, state)  # type: ignore[attr-defined]
        # a handler may start anywhere in the body: from the entry or the end state
        handler_entry = merge([start, body_end.copy() if body_end is not None else None])
        outcomes = [self._block(stmt.orelse, body_end) if body_end is not None else None]  # type: ignore[attr-defined]
        for handler in stmt.handlers:  # type: ignore[attr-defined]
            entry = handler_entry.copy() if handler_entry is not None else start.copy()
            if handler.type is not None:
                self._eval(handler.type, entry)
            if handler.name:
                self._set(handler.name, OBJECT_VALUE, entry, handler)
            outcomes.append(self._block(handler.body, entry))
        after = merge(outcomes)
        if stmt.finalbody:  # type: ignore[attr-defined]
            if after is None:
                self._block(stmt.finalbody, handler_entry.copy() if handler_entry else start)  # type: ignore[attr-defined]
                return None
            return self._block(stmt.finalbody, after)  # type: ignore[attr-defined]
        return after

    def _match(self, stmt: ast.AST, state: State) -> State | None:
        subject = self._eval(stmt.subject, state)  # type: ignore[attr-defined]
        outcomes = []
        irrefutable = False
        for case in stmt.cases:  # type: ignore[attr-defined]
            entry = state.copy()
            for node in ast.walk(case.pattern):
                name = getattr(node, "name", None)
                if isinstance(name, str):
                    self._set(name, subject if isinstance(node, ast.MatchAs) else UNKNOWN, entry, node)
            if case.guard is not None:
                self._eval(case.guard, entry)
            outcomes.append(self._block(case.body, entry))
            if isinstance(case.pattern, ast.MatchAs) and case.pattern.pattern is None and case.guard is None:
                irrefutable = True
        if not irrefutable:
            outcomes.append(state)
        return merge(outcomes)

    def _break(self, stmt: ast.Break, state: State) -> None:
        if self._loops:
            self._loops[-1].breaks.append(state)
        return None

    def _continue(self, stmt: ast.Continue, state: State) -> None:
        if self._loops:
            self._loops[-1].continues.append(state)
        return None

    def _def(self, stmt: ast.FunctionDef | ast.AsyncFunctionDef, state: State) -> State:
        for deco in stmt.decorator_list:
            self._eval(deco, state)
        self._set(stmt.name, Value(CALLABLE, grad=NO, leaf=NO, node=stmt), state, stmt)
        return state

    def _class(self, stmt: ast.ClassDef, state: State) -> State:
        for base in stmt.bases:
            self._eval(base, state)
        self._set(stmt.name, Value(CLASS, grad=NO, leaf=NO, cls=stmt.name, node=stmt), state, stmt)
        return state

    def _delete(self, stmt: ast.Delete, state: State) -> State:
        for target in stmt.targets:
            if isinstance(target, ast.Name):
                state.env[target.id] = NOTHING
                state.defs[target.id] = frozenset((stmt,))
            else:
                self._eval(target, state)
        return state

    def _global(self, stmt: ast.Global | ast.Nonlocal, state: State) -> State:
        (self.declared_global if isinstance(stmt, ast.Global) else self.declared_nonlocal).update(stmt.names)
        return state

    def _import(self, stmt: ast.Import | ast.ImportFrom, state: State) -> State:
        for alias in stmt.names:
            if alias.name == "*":
                continue
            if isinstance(stmt, ast.Import):
                local = alias.asname or alias.name.split(".")[0]
                qual = alias.name if alias.asname else local
            else:
                if stmt.level or not stmt.module:
                    qual = None
                else:
                    qual = f"{stmt.module}.{alias.name}"
                local = alias.asname or alias.name
            value = self.semantics.reference(qual) if qual else UNKNOWN
            self._set(local, value, state, stmt)
        return state

    def _assert(self, stmt: ast.Assert, state: State) -> State:
        self._eval(stmt.test, state)
        if stmt.msg is not None:
            self._eval(stmt.msg, state)
        then_state, _ = self._narrow(stmt.test, state)
        return then_state

    def _pass(self, stmt: ast.stmt, state: State) -> State:
        return state

    # -- narrowing -------------------------------------------------------------------------------
    def _narrow(self, test: ast.expr, state: State) -> tuple[State, State]:
        """States for the true and false branches of `test` (copies)."""
        then_state, else_state = state.copy(), state.copy()
        negate = False
        while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            negate = not negate
            test = test.operand
        # `isinstance(x, torch.Tensor)`, `x.requires_grad`, `x is None`, `x is not None`
        kinds = self._isinstance_kinds(test)
        if kinds is not None:
            name, wanted = kinds
            value = state.env.get(name)
            if value is not None and value.kinds != NOTHING.kinds:
                inside = value.kinds & wanted if value.known else wanted
                outside = value.kinds & ~wanted if value.known else ANY
                if inside:
                    then_state.env[name] = value.evolve(kinds=inside)
                if outside and value.known:
                    else_state.env[name] = value.evolve(kinds=outside)
            return (else_state, then_state) if negate else (then_state, else_state)
        if (
            isinstance(test, ast.Attribute)
            and test.attr == "requires_grad"
            and isinstance(test.value, ast.Name)
        ):
            name = test.value.id
            value = state.env.get(name)
            if value is not None and value.kinds & TENSORISH:
                then_state.env[name] = value.evolve(grad=YES)
                else_state.env[name] = value.evolve(grad=NO, sources=frozenset())
                _without_grad_of(else_state, name, value)
        elif (
            isinstance(test, ast.Call)
            and not test.args
            and else_state.nograd is None
            and self.module.call_name(test) in _GRAD_QUERIES
        ):
            # `if torch.is_grad_enabled(): ... else: <inference path>`
            else_state.nograd = test
        elif _is_self_training(test):
            # the branch where the module is not training (`if self.training: ... else: x.log1p_()`):
            # an in-place write there is a deliberate inference-time shortcut, not a write into
            # what a training step's backward needs
            else_state.saved = {}
        elif (
            isinstance(test, ast.Compare)
            and len(test.ops) == 1
            and isinstance(test.left, ast.Name)
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value is None
            and isinstance(test.ops[0], (ast.Is, ast.IsNot))
        ):
            name = test.left.id
            value = state.env.get(name)
            if value is not None:
                none_state, other_state = (then_state, else_state) if isinstance(test.ops[0], ast.Is) else (
                    else_state, then_state)  # fmt: skip
                none_state.env[name] = NONE_VALUE
                if value.kinds != NONE:
                    other_state.env[name] = value.evolve(kinds=value.kinds & ~NONE or ANY)
        return (else_state, then_state) if negate else (then_state, else_state)

    def _isinstance_kinds(self, test: ast.expr) -> tuple[str, int] | None:
        """`isinstance(x, torch.Tensor)` -> ("x", TENSOR | PARAMETER | BUFFER)."""
        if not (
            isinstance(test, ast.Call)
            and isinstance(test.func, ast.Name)
            and test.func.id == "isinstance"
            and len(test.args) == 2
            and isinstance(test.args[0], ast.Name)
        ):
            return None
        classes = test.args[1].elts if isinstance(test.args[1], ast.Tuple) else [test.args[1]]
        wanted = 0
        for cls in classes:
            qual = self.module.qualname(cls) or (cls.id if isinstance(cls, ast.Name) else None)
            kind = _ISINSTANCE_KINDS.get(qual or "")
            if kind is None:
                return None
            wanted |= kind
        return test.args[0].id, wanted

    # -- binding ---------------------------------------------------------------------------------
    def _set(self, name: str, value: Value, state: State, definition: ast.AST) -> None:
        state.env[name] = value
        state.defs[name] = frozenset((definition,))
        if name in self.declared_global or name in self.declared_nonlocal:
            self.semantics.note_global_store(name, value)

    def _bind(
        self, target: ast.expr, value: Value, source: ast.expr | None, state: State, stmt: ast.AST
    ) -> None:
        kind = target.__class__
        if kind is ast.Name:
            if value.kinds == INT and value.dim is None:
                value = shape_flow.named(value, target.id, stmt)  # type: ignore[attr-defined]
            if target.id in self.integer_names:  # type: ignore[attr-defined]
                value = self._as_integer(target.id, value, state)  # type: ignore[attr-defined]
            self._set(target.id, value, state, stmt)  # type: ignore[attr-defined]
            self.values[target] = value
        elif kind is ast.Tuple or kind is ast.List:
            self._bind_sequence(target, value, source, state, stmt)  # type: ignore[arg-type]
        elif kind is ast.Starred:
            self._bind(target.value, value, None, state, stmt)  # type: ignore[attr-defined]
        elif kind is ast.Subscript:
            self._bind_subscript(target, value, state, stmt)  # type: ignore[arg-type]
        elif kind is ast.Attribute:
            self._bind_attribute(target, value, source, state, stmt)  # type: ignore[arg-type]

    def _bind_sequence(
        self, target: ast.Tuple | ast.List, value: Value, source: ast.expr | None, state: State, stmt: ast.AST
    ) -> None:
        """`a, b = ...` / `[a, *rest] = ...`: item by item where the items are known."""
        if value.kinds == SIZE:
            value = shape_flow.unpack(self, target, value, source, state, stmt)  # type: ignore[arg-type]
        elts = target.elts  # type: ignore[attr-defined]
        starred = [i for i, e in enumerate(elts) if isinstance(e, ast.Starred)]
        if (
            isinstance(source, (ast.Tuple, ast.List))
            and not starred
            and len(source.elts) == len(elts)
            and not any(isinstance(e, ast.Starred) for e in source.elts)
        ):
            for sub_target, sub_source in zip(elts, source.elts, strict=True):
                self._bind(sub_target, self.values.get(sub_source, UNKNOWN), sub_source, state, stmt)
            return
        items = value.items
        if items is not None and not starred and len(items) == len(elts):
            for sub_target, item in zip(elts, items, strict=True):
                self._bind(sub_target, item, None, state, stmt)
            return
        part = element_of(value)
        if value.kinds == ANY and len(elts) > 1 and part.names:
            # the items of an unknown call's result (`loss_td, batch = loss_module(batch)`): which
            # of them shares a graph with which is not known, so none is "computed from" the
            # names the call was given (a `backward()` through one does not free the others)
            part = part.evolve(names=frozenset())
        for index, sub_target in enumerate(elts):
            if isinstance(sub_target, ast.Starred):
                self._bind(sub_target.value, Value(LIST, grad=NO, leaf=NO, elem=part), None, state, stmt)
            elif items is not None and not starred and index < len(items):
                self._bind(sub_target, items[index], None, state, stmt)
            else:
                self._bind(sub_target, part, None, state, stmt)

    def _bind_subscript(self, target: ast.Subscript, value: Value, state: State, stmt: ast.AST) -> None:
        """`x[i] = v`: an in-place write into a tensor, or an item of a list or dict."""
        base = self._eval(target.value, state, load=True)  # type: ignore[attr-defined]
        key = self._eval(target.slice, state)  # type: ignore[attr-defined]
        if _string_key(target.slice, key) and base.kinds & TENSORISH:  # type: ignore[attr-defined]
            self._not_a_tensor(target.value, base, state)  # type: ignore[attr-defined]
        elif base.is_tensor:
            self._inplace(stmt, target.value, base, (value,), "setitem", state, index=target)  # type: ignore[attr-defined]
        elif base.kinds & (LIST | DICT) and base.is_only(LIST | DICT | TUPLE):
            if isinstance(target.value, ast.Name):  # type: ignore[attr-defined]
                elem = value if base.elem is None else join(base.elem, value)
                state.env[target.value.id] = base.evolve(elem=elem, items=None)  # type: ignore[attr-defined]

    def _bind_attribute(
        self, target: ast.Attribute, value: Value, source: ast.expr | None, state: State, stmt: ast.AST
    ) -> None:
        """`obj.attr = v`: recorded as an attribute store; `self.x` facts and `requires_grad` flags follow."""
        base = self._eval(target.value, state)  # type: ignore[attr-defined]
        attr = target.attr  # type: ignore[attr-defined]
        # what the attribute held before the store (`self.running_mean` is a buffer)
        path = _self_path(target)
        if path is not None and path in state.env:
            before = state.env[path]
        else:
            before = self.semantics.attribute(self, base, target, state)  # type: ignore[arg-type]
        self._record(ATTRIBUTE_STORE, stmt, state, value, op=attr, target=target, args=(base,), data=before)
        if attr == "requires_grad" and source is not None and _literal(source) is False:
            # `p.requires_grad = False` / `self.emb.weight.requires_grad = False`: what `p`
            # comes from no longer trains
            self.semantics.freeze(base)
        # `self.emb.weight = nn.Parameter(w, requires_grad=False)`: the layer may be frozen
        self.semantics.replace_parameter(base, attr, value)
        holder = _holder_name(target.value)  # type: ignore[attr-defined]
        if attr == "requires_grad" and holder is not None:
            flag = value.kinds == BOOL and source is not None and _literal(source)
            if base.kinds & TENSORISH and flag is not None:
                name = holder
                if flag is True:
                    sources = base.sources | {target} if base.leaf != NO else base.sources
                    state.env[name] = base.evolve(grad=YES, sources=sources)
                    if base.leaf != NO:
                        # torch raises for `t.requires_grad = True` on a non-leaf: past this line `t` is
                        # a leaf, no graph behind it (art's `adv = x.clone().detach(); adv.requires_grad = True`)
                        state.env[name] = state.env[name].evolve(leaf=YES, saves=False, stale=frozenset())
                elif flag is False:
                    state.env[name] = base.evolve(grad=NO)
        if path is not None:
            self.semantics.note_attribute_store(self, path, value)
            state.env[path] = value
            state.defs[path] = frozenset((stmt,))

    # -- in-place writes -----------------------------------------------------------------------
    def _inplace(
        self,
        stmt: ast.AST,
        target: ast.AST,
        before: Value,
        operands: tuple,
        op: str,
        state: State,
        index: ast.AST | None = None,
    ) -> Value:
        hits = tuple(
            state.saved[root]
            for root in before.roots
            if root in state.saved and (root, state.saved[root]) not in before.unsaved
        )
        for root in before.roots:
            self.mutated.add(root)
        self._record(
            INPLACE,
            stmt if isinstance(stmt, ast.stmt) else stmt,
            state,
            before,
            op=op,
            target=index if index is not None else target,
            args=operands,
            saved=hits,
        )
        # the object now also holds what was written into it
        grad = before.grad
        sources = before.sources
        stale = before.stale
        if state.nograd is None:
            for operand in operands:
                if operand.grad > grad:
                    grad = operand.grad
                sources = sources | operand.sources if operand.sources else sources
                stale = stale | operand.stale if operand.stale else stale
        leaf = before.leaf
        if grad == YES and before.grad != YES and before.leaf == YES:
            leaf = NO  # writing tracked values into a tensor gives it history
        new = before.evolve(grad=grad, sources=sources, stale=stale, leaf=leaf)
        if isinstance(target, ast.Name):
            state.env[target.id] = new
        return new

    # -- expressions -----------------------------------------------------------------------------
    def _eval(self, node: ast.AST | None, state: State, load: bool = False) -> Value:
        if node is None:
            return NONE_VALUE
        if state.saved and node in state.saved:
            # this expression makes a new tensor (a loop runs it again): what an op saved of the
            # previous one made here is not this one
            del state.saved[node]
        handler = _EXPRESSIONS.get(node.__class__)
        value = handler(self, node, state) if handler is not None else UNKNOWN
        if state.saved and node in state.saved and state.saved[node].role == "input":
            # saved as an input while this expression's arguments ran (`x = act(norm(x))` in a
            # loop): that was the previous pass's tensor, not the one this expression just made
            del state.saved[node]
        self.values[node] = value
        return value

    def _name(self, node: ast.Name, state: State) -> Value:
        name = node.id
        value = state.env.get(name)
        if value is not None:
            defs = state.defs.get(name)
            if defs:
                self.reaching_defs[node] = defs
            if value is NOTHING:
                return UNKNOWN
            return value.named(name) if value.kinds & TENSORISH else value
        return self._outer(name)

    def _outer(self, name: str) -> Value:
        scope = self.enclosing
        while scope is not None:
            if scope.final is not None and name in scope.final.env:
                return scope.final.env[name]
            scope = scope.enclosing
        return self.semantics.global_value(name)

    def _constant(self, node: ast.Constant, state: State) -> Value:
        value = node.value
        if value is None:
            return NONE_VALUE
        if isinstance(value, bool):
            return shape_flow.TRUE if value else shape_flow.FALSE
        if isinstance(value, int):
            return shape_flow.int_value(value)
        if isinstance(value, float):
            return FLOAT_VALUE
        if isinstance(value, str):
            return STR_VALUE
        return OBJECT_VALUE

    def _attribute(self, node: ast.Attribute, state: State) -> Value:
        path = _self_path(node)
        if path is not None and path in state.env:
            self._eval(node.value, state)
            value = state.env[path]
        else:
            base = self._eval(node.value, state)
            value = self.semantics.attribute(self, base, node, state)
            if (
                value.dim is None
                and (value.kinds == ANY or value.kinds == INT)
                and not base.kinds & TENSORISH
            ):
                value = shape_flow.unknown_attribute(self, node, base, value)
        if path is not None and value.kinds & (TENSORISH | CONTAINER) and value.kinds != ANY:
            return value.named(path)  # (so that what is computed from `self.h` says so)
        return value

    def _subscript(self, node: ast.Subscript, state: State) -> Value:
        base = self._eval(node.value, state)
        index = self._eval(node.slice, state)
        result = self._subscript_facts(node, base, index, state)
        if base.kinds & (TENSORISH | SIZE | TUPLE | LIST):
            result = shape_flow.subscript(self, node, base, index, result)
        return result

    def _subscript_facts(self, node: ast.Subscript, base: Value, index: Value, state: State) -> Value:
        if _string_key(node.slice, index) and (
            base.kinds & TENSORISH or (base.kinds & OBJECT and base.elem is None)
        ):
            # `batch["input_ids"]`, `outputs["loss"]`: a mapping's item, computed from what the
            # mapping was (a model's outputs carry its graph), not a view of it
            self._not_a_tensor(node.value, base, state)
            return combine((base,), kinds=ANY, node=node)
        if base.kinds & TENSORISH and base.is_tensor:
            return self._index_tensor(node, base, index, state)
        if (
            base.items is not None
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, int)
        ):
            position = node.slice.value
            if -len(base.items) <= position < len(base.items):
                return base.items[position]
            return UNKNOWN
        if base.kinds & (CONTAINER | SIZE) and base.is_only(CONTAINER | SIZE | NONE):
            if isinstance(node.slice, ast.Slice):
                return base.evolve(items=None)
            if base.is_only(SIZE):
                return INT_VALUE
            return element_of(base)
        if base.is_only(NUMPY):
            return base
        if base.is_only(OBJECT) and base.cls == "torch.utils.data.TensorDataset" and base.elem is not None:
            # `ds[i]` of a TensorDataset: the tuple of rows (a slice gives batches: not followed)
            return UNKNOWN if isinstance(node.slice, ast.Slice) else base.elem
        if base.is_module and base.elem is not None:
            return base.elem  # `self.layers[i]` of a ModuleList / Sequential / ModuleDict
        if base.kinds & CLASS:
            # `List[int]`, generics; a value of unknown kind indexed (`x[mask]`) keeps no shape
            return base if base.shape is None or base.is_only(CLASS) else base.evolve(shape=None)
        return UNKNOWN

    def _not_a_tensor(self, expr: ast.expr, base: Value, state: State) -> None:
        """`d["key"]`: a tensor is never indexed by a string, so `d` (an unannotated
        `forward(self, batch)` argument taken for a tensor) is a mapping."""
        if isinstance(expr, ast.Name) and state.env.get(expr.id) is not None and base.kinds & TENSORISH:
            state.env[expr.id] = base.evolve(kinds=(base.kinds & ~TENSORISH) | DICT | OBJECT)

    def _index_tensor(self, node: ast.Subscript, base: Value, index: Value, state: State) -> Value:
        """Basic indexing (ints, slices, None, ...) gives a view; a tensor or list index copies."""
        advanced = index.kinds & (TENSORISH | LIST) and index.known and not index.is_only(INT | NONE | BOOL)
        if isinstance(node.slice, ast.Tuple):
            advanced = any(
                self.values.get(e, UNKNOWN).may_be(TENSORISH | LIST)
                and self.values.get(e, UNKNOWN).known
                and not isinstance(e, ast.Slice)
                for e in node.slice.elts
            )
        if advanced:
            result = combine((base,), node=node)
            return result.evolve(dtype=base.dtype, leaf=NO if base.grad == YES else base.leaf)
        # a view: same roots (writes through it modify the base), no new graph leaf
        return base.evolve(kinds=TENSOR, sites=frozenset((node,)), names=base.names)

    def _binop(self, node: ast.BinOp, state: State) -> Value:
        left = self._eval(node.left, state)
        right = self._eval(node.right, state)
        return self._binary(node.op, left, right, node, state)

    def _note_terms(self, op: ast.operator, left: Value, right: Value, node: ast.AST, state: State) -> None:
        """`loss = a + b` where one term reaches a model and the other was cut from one: that
        term is a constant (a dead loss term). The event's target is the dead operand."""
        if not isinstance(op, (ast.Add, ast.Sub)) or not self.natural or state.nograd:
            return  # (under no_grad the sum is itself a constant: a regression target, not a loss)
        if isinstance(node, ast.BinOp):
            operands = (node.left, node.right)
        elif isinstance(node, ast.AugAssign):
            operands = (node.target, node.value)
        else:
            return
        for (dead, live), expr in zip(((left, right), (right, left)), operands, strict=True):
            # a term only next to one that tracks gradients (a tensor that may): summed with data
            # (`batch.rewards + ...`) it is part of a value that is constant as a whole
            tracked = live.grad == YES or (live.grad == MAYBE and live.is_tensor)
            if tracked and live.sources and not dead.sources and dead.blocked and dead.kinds & TENSORISH:
                self._record(DEAD_TERM, node, state, dead, args=(live,), target=expr)

    def _binary(self, op: ast.operator, left: Value, right: Value, node: ast.AST, state: State) -> Value:
        result = self._binary_facts(op, left, right, node, state)
        return shape_flow.binary(self, op, node, left, right, result)

    def _binary_facts(
        self, op: ast.operator, left: Value, right: Value, node: ast.AST, state: State
    ) -> Value:
        self._note_terms(op, left, right, node, state)
        name = _BINARY_OPS.get(op.__class__, "add")
        if left.is_tensor or right.is_tensor:
            return self._tensor_op(name, node, (left, right), state)
        if left.known and right.known:
            if left.is_only(NUMBER) and right.is_only(NUMBER):
                if isinstance(op, ast.Div) or (left.kinds | right.kinds) & FLOAT:
                    return FLOAT_VALUE
                return INT_VALUE
            if left.is_only(STR):
                return STR_VALUE
            if left.is_only(LIST | TUPLE) and right.is_only(LIST | TUPLE) and isinstance(op, ast.Add):
                parts = [v for v in (left.elem, right.elem) if v is not None]
                return Value(left.kinds, grad=NO, leaf=NO, elem=join_all(parts) if parts else None)
            if left.is_only(NUMPY | NUMBER) and right.is_only(NUMPY | NUMBER):
                # numpy arithmetic: no gradient, but where the values were cut from stays known
                merged = combine((left, right))
                return Value(NUMPY, grad=NO, leaf=YES, dtype=left.dtype or right.dtype, cuts=merged.cuts,
                             blocked=merged.blocked, names=merged.names)  # fmt: skip
        if _carries_autograd(left) or _carries_autograd(right):
            # maybe tensors (an unknown call's result, a parameter of the function): keep what
            # autograd would carry, without claiming it is a tensor
            return self._tensor_op(name, node, (left, right), state).evolve(kinds=ANY)
        return UNKNOWN

    def _unaryop(self, node: ast.UnaryOp, state: State) -> Value:
        operand = self._eval(node.operand, state)
        return shape_flow.unary(node.op, operand, self._unary_facts(node, operand, state))

    def _unary_facts(self, node: ast.UnaryOp, operand: Value, state: State) -> Value:
        if isinstance(node.op, ast.Not):
            return BOOL_VALUE
        if operand.kinds & TENSORISH and operand.is_tensor:
            if isinstance(node.op, ast.Invert):
                return cut(operand, NONDIFF, node, TENSOR).evolve(dtype=operand.dtype or "bool")
            return self._tensor_op("neg", node, (operand,), state)
        return operand if operand.is_only(NUMBER) else UNKNOWN

    def _compare(self, node: ast.Compare, state: State) -> Value:
        operands = [self._eval(node.left, state), *(self._eval(c, state) for c in node.comparators)]
        return shape_flow.compare(node, operands, self._compare_facts(node, operands, state))

    def _compare_facts(self, node: ast.Compare, operands: list[Value], state: State) -> Value:
        if all(isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)) for op in node.ops):
            return BOOL_VALUE
        tensors = [v for v in operands if v.kinds & TENSORISH and v.is_tensor]
        if tensors:
            self.discard_saves_of(state, node.left, *node.comparators)
            result = combine(tensors, node=node)
            return cut(result, NONDIFF, node, TENSOR).evolve(dtype="bool")
        if all(v.known and not v.kinds & TENSORISH for v in operands):
            return BOOL_VALUE
        return Value(BOOL | TENSOR, grad=NO, leaf=YES)

    def discard_saves_of(self, state: State, *operands: ast.AST) -> None:
        """An op whose result goes straight into a comparison (`x.abs() > 3`, `(a * b).argmax()`)
        is never reached by backward (nothing differentiable follows it): what it saved cannot
        break a backward."""
        temporaries = {o for o in operands if isinstance(o, (ast.Call, ast.BinOp, ast.UnaryOp))}
        if temporaries and state.saved:
            for root in [r for r, record in state.saved.items() if record.node in temporaries]:
                del state.saved[root]

    def _boolop(self, node: ast.BoolOp, state: State) -> Value:
        values = [self._eval(v, state) for v in node.values]
        return join_all(values)

    def _ifexp(self, node: ast.IfExp, state: State) -> Value:
        self._eval(node.test, state)
        then_state, else_state = self._narrow(node.test, state)
        known = shape_flow.truth(self, node.test)
        if known is not None:
            return self._eval(node.body, then_state) if known else self._eval(node.orelse, else_state)
        return join(self._eval(node.body, then_state), self._eval(node.orelse, else_state))

    def _sequence(self, node: ast.Tuple | ast.List | ast.Set, state: State) -> Value:
        values = tuple(self._eval(e, state) for e in node.elts)
        kind = {ast.Tuple: TUPLE, ast.List: LIST, ast.Set: LIST}[node.__class__]
        if any(isinstance(e, ast.Starred) for e in node.elts):
            parts = [
                element_of(v) if isinstance(e, ast.Starred) else v
                for e, v in zip(node.elts, values, strict=True)
            ]
            return Value(kind, grad=NO, leaf=NO, elem=join_all(parts) if parts else None)
        return Value(
            kind,
            grad=NO,
            leaf=NO,
            elem=join_all(values) if values else None,
            items=values if kind == TUPLE or len(values) <= 8 else None,
        )

    def _dict(self, node: ast.Dict, state: State) -> Value:
        for key in node.keys:
            if key is not None:
                self._eval(key, state)
        values = [self._eval(v, state) for v in node.values]
        parts = [element_of(v) if k is None else v for k, v in zip(node.keys, values, strict=True)]
        return Value(DICT, grad=NO, leaf=NO, elem=join_all(parts) if parts else None)

    def _comprehension(self, node: ast.AST, state: State) -> Value:
        if (
            (not self.natural or shape_flow.builds(self))
            and isinstance(node, ast.ListComp)
            and len(node.generators) == 1
        ):
            unrolled = self._unrolled_comprehension(node, state)
            if unrolled is not None:
                return unrolled
        inner = state.copy()
        for generator in node.generators:  # type: ignore[attr-defined]
            iterated = self._eval(generator.iter, inner)
            self._bind(generator.target, element_of(iterated), None, inner, node)
            for condition in generator.ifs:
                self._eval(condition, inner)
        if isinstance(node, ast.DictComp):
            self._eval(node.key, inner)
            elem = shape_flow.loop_element(self._eval(node.value, inner), node)
            return Value(DICT, grad=NO, leaf=NO, elem=elem)
        elem = shape_flow.loop_element(self._eval(node.elt, inner), node)  # type: ignore[attr-defined]
        kind = LIST if isinstance(node, (ast.ListComp, ast.SetComp)) else OBJECT
        return Value(kind, grad=NO, leaf=NO, elem=elem)

    def _unrolled_comprehension(self, node: ast.ListComp, state: State) -> Value | None:
        """`[f(d) for d in x.shape]` in a call context, over a few known values: a list of known
        length (each element evaluated with its own value)."""
        generator = node.generators[0]
        iterated = self._eval(generator.iter, state.copy())
        items = shape_flow.unrollable(iterated)
        if items is None:
            return None
        elements = []
        for item in items:
            inner = state.copy()
            self._bind(generator.target, item, None, inner, node)
            keep = True
            for condition in generator.ifs:
                self._eval(condition, inner)
                known = shape_flow.truth(self, condition)
                if known is None:
                    return None
                keep = keep and known
            if keep:
                elements.append(self._eval(node.elt, inner))
        values = tuple(elements)
        return Value(LIST, grad=NO, leaf=NO, elem=join_all(values) if values else None, items=values)

    def _starred(self, node: ast.Starred, state: State) -> Value:
        return self._eval(node.value, state)

    def _named_expr(self, node: ast.NamedExpr, state: State) -> Value:
        value = self._eval(node.value, state)
        self._bind(node.target, value, node.value, state, node)
        return value

    def _lambda(self, node: ast.Lambda, state: State) -> Value:
        return Value(CALLABLE, grad=NO, leaf=NO, node=node)

    def _joined_str(self, node: ast.JoinedStr, state: State) -> Value:
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                self._eval(value.value, state)
        return STR_VALUE

    def _slice(self, node: ast.Slice, state: State) -> Value:
        for part in (node.lower, node.upper, node.step):
            if part is not None:
                self._eval(part, state)
        return OBJECT_VALUE

    def _await(self, node: ast.AST, state: State) -> Value:
        value = getattr(node, "value", None)
        if value is not None:
            self._eval(value, state)
        return UNKNOWN

    # -- calls -----------------------------------------------------------------------------------
    def _call(self, node: ast.Call, state: State) -> Value:
        func = node.func
        if isinstance(func, ast.Attribute):
            path = _self_path(func)
            receiver = (
                state.env[path] if path is not None and path in state.env else self._eval(func.value, state)
            )
            if path is not None and path in state.env:
                self._eval(func.value, state)
            self.values[func] = UNKNOWN
            args = self._arguments(node, state)
            if args.positional and receiver.is_only(MODULE | OBJECT) and receiver.cls is not None:
                held = state.env[path] if path is not None and path in state.env else None
                held = held or self.semantics.attribute(self, receiver, func, state)
                self._integer_arguments(node, held, args, state)
            result = self._without_grad(
                self.semantics.method_call(self, node, receiver, func.attr, args, state), node, state
            )
            if receiver.kinds in (REF, ANY) and self.module.call_name(node) is not None:
                self._transformed_arguments(node, self.module.call_name(node), state)
            return shape_flow.after_call(self, node, receiver, func.attr, args, result, state)
        callee = self._eval(func, state)
        args = self._arguments(node, state)
        if callee.kinds in (MODULE, REF) and args.positional:
            self._integer_arguments(node, callee, args, state)
        result = self._without_grad(self.semantics.call(self, node, callee, args, state), node, state)
        if callee.kinds == REF:
            self._transformed_arguments(node, callee.cls, state)
        elif (callee.kinds == CALLABLE and callee.node is None) or (
            callee.kinds == ANY and isinstance(func, ast.Name)
        ):
            self._transformed_arguments(node, None, state)  # (a function of another file, an argument)
        return shape_flow.after_call(self, node, callee, None, args, result, state)

    def _transformed_arguments(self, node: ast.Call, qualname: str | None, state: State) -> None:
        """`quantize_(model, config)`: a module passed to a call that may change it in place (a
        function the file cannot see into, a torch transform such as `prune.l1_unstructured`)
        holds, from there on, attributes that are not known: the call may have replaced its
        parameters (torchao's `quantize_` sets a Linear's weight to a `requires_grad=False`
        Parameter). Calls known to leave a module as it is (`print`, `len`, `copy.deepcopy`,
        torch's functions and classes but its transforms) change nothing. `qualname`: None for
        a callee that is not known at all (an argument)."""
        if (
            qualname is not None
            and (qualname.startswith(_LEAVES_MODULES) or "." not in qualname)
            and not qualname.startswith(_TORCH_TRANSFORMS)
        ):
            return
        for arg in (*node.args, *(k.value for k in node.keywords)):
            if isinstance(arg, ast.Name):
                name: str | None = arg.id
                value = state.env.get(arg.id)
            else:
                name = _self_path(arg)
                value = self.values.get(arg)
            if name is not None and value is not None and value.is_module and transformed(value) is None:
                # (the module as it was, for its calls: a transform keeps what forward computes)
                state.env[name] = value.evolve(attrs=((TRANSFORMED, value),))

    def _integer_arguments(self, node: ast.Call, callee: Value, args: Arguments, state: State) -> None:
        """A torch.nn layer called on integers (`nn.Embedding` ids, a `nn.CrossEntropyLoss` class
        target): that argument, and the name it is taken from, hold integers from here on."""
        if callee.is_module:
            spec = torch_facts.integer_layer_argument(callee.cls or "")
        else:  # `self.criterion = F.cross_entropy`
            spec = torch_facts.integer_function_argument(callee.cls or "") if callee.kinds == REF else None
        if spec is not None:
            self._integer_argument(node, spec, args, state)

    def _integer_argument(
        self, node: ast.Call, spec: torch_facts.IntegerArgument, args: Arguments, state: State
    ) -> None:
        index = spec.position
        if index >= len(args.positional) or index >= len(node.args):
            return
        if spec.condition == "class_index_shape" and self._probabilities(
            args.positional[index], args.positional[0], integer_use.root_name(node.args[0])
        ):
            return  # `cross_entropy(logits, probs)`: float class probabilities, not class indices
        args.positional[index] = as_integer(args.positional[index])
        name = integer_use.root_name(node.args[index])
        if name is not None and name in state.env:
            if len(state.env[name].roots) == 1:  # (one tensor object, not either of several)
                self.integer_roots.update(state.env[name].roots)
            state.env[name] = as_integer(state.env[name])

    def _probabilities(self, target: Value, scores: Value, scores_name: str | None) -> bool:
        """A `cross_entropy` target known to be class probabilities: a float tensor, a softmax's
        output, a tensor of the scores' rank (class indices have one dimension less), or one made
        like the scores (`torch.full_like(logits, eps)`)."""
        if target.dtype is not None and target.dtype != INTEGRAL and floating_dtype(target.dtype):
            return True
        shapes = (target.shape, scores.shape)
        ranks = [s.rank if isinstance(s, Shape) else None for s in shapes]
        if ranks[0] is not None and ranks[0] == ranks[1]:
            return True
        return bool(target.sites) and all(_probability_site(site, scores_name) for site in target.sites)

    def _without_grad(self, value: Value, node: ast.AST, state: State) -> Value:
        """A call's result under `torch.no_grad()`: whatever it computed has no graph."""
        if state.nograd is not None and value.is_only(CONTAINER) and (value.items or value.elem is not None):
            # a tuple a module returned (`proj, embed = teacher(x)`): its tensors have no graph either
            items = value.items and tuple(self._without_grad(item, node, state) for item in value.items)
            elem = value.elem and self._without_grad(value.elem, node, state)
            return value.evolve(items=items, elem=elem)
        if state.nograd is None or value.grad == NO or not (value.kinds & TENSORISH or value.kinds == ANY):
            return value
        if value.kinds & ~(TENSORISH | CONTAINER) and value.kinds != ANY:
            return value  # a module, an optimizer, ...
        result = cut(value, NO_GRAD, state.nograd, value.kinds if value.kinds == ANY else TENSOR)
        return result.evolve(sites=frozenset((node,)), roots=frozenset((node,)))

    def _arguments(self, node: ast.Call, state: State) -> Arguments:
        positional = []
        for arg in node.args:
            value = self._eval(arg, state)
            positional.append(value)
        keywords = {}
        for kw in node.keywords:
            value = self._eval(kw.value, state)
            if kw.arg is not None:
                keywords[kw.arg] = value
        return Arguments(node, positional, keywords)

    # -- tensor ops ------------------------------------------------------------------------------
    def _tensor_op(
        self,
        name: str,
        node: ast.AST,
        operands: tuple,
        state: State,
        facts: torch_facts.OpFacts | None = None,
        keywords: dict | None = None,
    ) -> Value:
        """A differentiable op on tensors (and Python numbers): a new non-leaf tensor that
        requires grad when an operand does; records what the op saved for backward."""
        keywords = keywords or {}
        tensors = [v for v in (*operands, *keywords.values()) if v.kinds & TENSORISH or v.kinds == ANY]
        if state.nograd is not None:
            result = combine(tensors, node=node)
            if result.grad != NO:
                result = cut(result, NO_GRAD, state.nograd, TENSOR)
                result = result.evolve(sites=frozenset((node,)), roots=frozenset((node,)))
            return result.evolve(dtype=_promote(operands))
        result = combine(tensors, node=node).evolve(dtype=_promote(operands))
        facts = facts if facts is not None else torch_facts.function(f"torch.{name}")
        if facts is not None and result.grad != NO:
            self._record_saves(facts, node, operands, keywords, result, state)
        return result

    def _record_saves(
        self,
        facts: torch_facts.OpFacts,
        node: ast.AST,
        operands: tuple,
        keywords: dict,
        result: Value,
        state: State,
    ) -> None:
        """What the op saved for backward (from torch's facts): its output, and inputs, some only
        when another input requires grad (`x * w` saves `x` when `w` does). A save that happens
        only when an input that *may* require grad does is recorded as uncertain."""
        sure = {i for i, v in enumerate(operands) if v.grad == YES} | {
            k for k, v in keywords.items() if v.grad == YES
        }
        # an operand of unknown kind may be a Python number (`x / size[1]`): only tensors count
        maybe = {i for i, v in enumerate(operands) if v.grad != NO and v.is_tensor} | {
            k for k, v in keywords.items() if v.grad != NO and v.is_tensor
        }
        certain = result.grad == YES
        op = facts.canonical
        for index, triggers in facts.saves_outputs:
            if index != 0:
                continue
            verdict = _triggered(triggers, sure, maybe, certain)
            if verdict is not None:
                result.saves = True  # (the result was just built by the caller; nothing else holds it yet)
                for root in result.roots:
                    state.saved[root] = Saved(node, op, "output", verdict)
        for position, triggers in facts.saves_inputs:
            operand = operands[position] if isinstance(position, int) and position < len(operands) else keywords.get(
                position if isinstance(position, str) else "")  # fmt: skip
            if operand is None or not operand.roots:
                continue
            verdict = _triggered(triggers, sure, maybe, certain)
            if verdict is None:
                continue
            result.saves = True
            for root in operand.roots:
                # (an input made here on a loop's previous pass, `x = layer(x)`, shares the site
                # of the result made now: recording it would mark the new result as saved)
                if root not in state.saved and root is not node:
                    state.saved[root] = Saved(node, op, "input", verdict)

    # -- recording -------------------------------------------------------------------------------
    def _record(
        self,
        kind: str,
        node: ast.AST,
        state: State,
        value: Value,
        **fields: object,
    ) -> Event:
        event = Event(kind, node, self._statement, value, nograd=state.nograd, **fields)  # type: ignore[arg-type]
        self.events[(kind, id(node))] = event
        return event


_LIKE = frozenset({"zeros_like", "ones_like", "full_like", "rand_like", "empty_like"})


def _probability_site(site: ast.AST, scores: str | None) -> bool:
    """A tensor made here holds class probabilities for the scores named `scores`: a softmax's
    output, or a float tensor made like the scores (`torch.full_like(logits, eps)`)."""
    if not isinstance(site, ast.Call):
        return False
    func = site.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name == "softmax":
        return True
    return (
        name in _LIKE
        and scores is not None
        and bool(site.args)
        and integer_use.root_name(site.args[0]) == scores
    )


class Arguments:
    """The evaluated arguments of a call."""

    __slots__ = ("keywords", "node", "positional")

    def __init__(self, node: ast.Call, positional: list[Value], keywords: dict[str, Value]) -> None:
        self.node = node
        self.positional = positional
        self.keywords = keywords

    def get(self, position: int, name: str) -> Value | None:
        if name in self.keywords:
            return self.keywords[name]
        if 0 <= position < len(self.positional):
            return self.positional[position]
        return None

    def all(self) -> list[Value]:
        return [*self.positional, *self.keywords.values()]

    def node_of(self, position: int, name: str) -> ast.expr | None:
        for kw in self.node.keywords:
            if kw.arg == name:
                return kw.value
        if 0 <= position < len(self.node.args):
            return self.node.args[position]
        return None


def _is_self_training(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Attribute)
        and test.attr == "training"
        and isinstance(test.value, ast.Name)
        and test.value.id == "self"
    )


def _without_grad_of(state: State, name: str, value: Value) -> None:
    """Where `name.requires_grad` is False: the values computed from it alone (no other root, no
    other local name) require no grad either, and no op that made them or it saved its output
    (kornia's `conf = softmax(sim)` before `if sim.requires_grad: ... else: conf.mul_(...)`)."""
    roots = set(value.roots)
    allowed = value.names | {name}
    for other, held in state.env.items():
        if (
            other != name
            and name in held.names
            and held.kinds & TENSORISH
            and held.grad != NO
            and held.sources <= value.sources
            and held.names <= allowed
        ):
            state.env[other] = held.evolve(grad=NO, sources=frozenset())
            roots.update(held.roots)
    if state.saved and roots:
        state.saved = {
            root: record
            for root, record in state.saved.items()
            if not (root in roots and record.role == "output")
        }


def _triggered(triggers, sure: set, maybe: set, certain: bool) -> bool | None:
    """Is a tensor saved, given the saving condition from torch's facts? True: certainly,
    False: only if an input that may require grad does, None: not saved (or unknown)."""
    if triggers == torch_facts.ALWAYS:
        return certain
    if triggers == torch_facts.DEPENDS:
        return None
    if any(t in sure for t in triggers):
        return True
    if any(t in maybe for t in triggers):
        return False
    return None


def _carries_autograd(value: Value) -> bool:
    """Maybe a tensor, with something autograd cares about (it may require grad, reaches a
    model, or was cut from one)."""
    return bool(value.kinds & TENSORISH) and (value.grad != NO or bool(value.sources) or bool(value.cuts))


def has_graph(value: Value) -> bool:
    """A tensor (or unknown object) with autograd history behind it."""
    return (
        value.grad != NO
        and value.leaf != YES
        and (
            bool(value.kinds & TENSORISH)
            and (value.is_tensor or value.kinds == ANY)
            and (value.sources or value.grad == YES)
        )
    )


def _promote(operands) -> str | None:
    """The result dtype of arithmetic on these operands, when known (tensor dtypes win over
    Python numbers; float64 with float32 gives float64)."""
    dtypes = [v.dtype for v in operands if v.kinds & TENSORISH and v.dtype]
    if not dtypes:
        return None
    if INTEGRAL in dtypes:  # an integer (or bool) dtype known by use: which one is not known
        tensors = [v for v in operands if v.kinds & TENSORISH]
        return INTEGRAL if all(v.dtype == INTEGRAL for v in tensors) else None
    if len(set(dtypes)) == 1:
        return dtypes[0]
    if all(is_float_dtype(d) for d in dtypes):
        return "float64" if "float64" in dtypes else None
    floats = [d for d in dtypes if is_float_dtype(d)]
    return floats[0] if len(set(floats)) == 1 else None


def _holder_name(node: ast.AST) -> str | None:
    """The environment key of a name or a tracked `self.x` path (None for anything else)."""
    if isinstance(node, ast.Name):
        return node.id
    return _self_path(node)


# the `attrs` key of a module after a call that may have changed it in place (its attributes are
# not known); its value is the module as it was
TRANSFORMED = "<transformed module>"


def transformed(value: Value) -> Value | None:
    """The module as it was before a call that may have changed it (None: no such call)."""
    attrs = value.attrs
    if attrs and attrs[0][0] == TRANSFORMED and value.kinds == MODULE:
        return attrs[0][1]
    return None


# callees (qualified-name prefixes) that leave a module they are given as it is; every other call taking
# a module may change it, and these torch ones do (pruning, parametrizations, eager-mode quantization)
_LEAVES_MODULES = ("builtins.", "torch.", "copy.", "logging.", "warnings.", "pprint.", "inspect.", "typing.",
                   "numpy.", "functools.", "itertools.", "operator.", "pickle.", "json.")  # fmt: skip
_TORCH_TRANSFORMS = ("torch.nn.utils.prune.", "torch.nn.utils.parametrize.", "torch.nn.utils.parametrizations.",
                     "torch.nn.utils.weight_norm", "torch.nn.utils.spectral_norm", "torch.ao.quantization.",
                     "torch.quantization.")  # fmt: skip


def _self_path(node: ast.AST) -> str | None:
    """`self.x` / `self.a.b` -> "self.x" / "self.a.b": attribute paths tracked as locals."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "self" and parts and len(parts) <= 2:
        return "self." + ".".join(reversed(parts))
    return None


def _unnegated(test: ast.expr) -> ast.expr:
    while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test = test.operand
    return test


def disables_grad(module: ModuleContext, func: ast.AST) -> bool:
    """The function is decorated `@torch.no_grad()` / `@torch.inference_mode()`."""
    for deco in getattr(func, "decorator_list", ()):
        target = deco.func if isinstance(deco, ast.Call) else deco
        if module.qualname(target) in _GRAD_DISABLING:
            return True
    return False


def grad_mode(module: ModuleContext, expr: ast.expr) -> bool | None:
    """False when the context manager disables gradients, True when it enables them."""
    if not isinstance(expr, ast.Call):
        return None
    name = module.call_name(expr)
    if name in _GRAD_DISABLING:
        flag = _constant_arg(expr, 0, "mode")
        return True if flag is False else False
    if name in _GRAD_ENABLING:
        return True
    if name in _GRAD_SETTERS:
        flag = _constant_arg(expr, 0, "mode")
        return None if flag is None else bool(flag)
    return None


def grad_modes(module: ModuleContext, scope: ast.AST) -> dict[ast.AST, bool | None]:
    """Whether gradients are on at each call directly in `scope`'s body, as the `with` blocks
    around it set them (`with torch.no_grad():` -> False; None where none does), from one walk (a
    scope calling several helpers is walked once, not once per call site)."""
    modes: dict[ast.AST, bool | None] = {}
    body = getattr(scope, "body", ())
    body = body if isinstance(body, list) else [body]
    pending: list[tuple[ast.AST, bool | None]] = [(stmt, None) for stmt in body]
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
    while pending:
        node, mode = pending.pop()
        if isinstance(node, ast.Call):
            modes[node] = mode
        elif isinstance(node, nested):
            continue
        if isinstance(node, (ast.With, ast.AsyncWith)):
            inner = mode
            for item in node.items:
                pending.append((item, mode))
                found = grad_mode(module, item.context_expr)
                inner = inner if found is None else found
            pending.extend((stmt, inner) for stmt in node.body)
            continue
        pending.extend((child, mode) for child in iter_children(node))
    return modes


def _constant_arg(call: ast.Call, position: int, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else None
    if len(call.args) > position and isinstance(call.args[position], ast.Constant):
        return call.args[position].value
    return None


def _literal(node: ast.AST) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def _string_key(index: ast.expr, value: Value | None = None) -> bool:
    """`d["key"]`, `d[f"..."]`, or `d[KEY]` of a name known to hold a string (`KEY = "atom_types"`)."""
    return (
        isinstance(index, ast.JoinedStr)
        or (isinstance(index, ast.Constant) and isinstance(index.value, str))
        or (value is not None and value.known and value.is_only(STR))
    )


def _is_true_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and bool(node.value) is True


_ISINSTANCE_KINDS = {
    "torch.Tensor": TENSORISH, "torch.nn.Parameter": TENSORISH, "torch.nn.Module": MODULE,
    "torch.nn.modules.module.Module": MODULE, "tuple": TUPLE, "list": LIST, "dict": DICT, "int": INT | BOOL,
    "float": FLOAT, "bool": BOOL, "str": STR,
}  # fmt: skip
_AUG_NAMES = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
    ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
}  # fmt: skip
_BINARY_OPS = {
    ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.FloorDiv: "floor_divide",
    ast.Mod: "remainder", ast.Pow: "pow", ast.MatMult: "matmul", ast.BitAnd: "bitwise_and",
    ast.BitOr: "bitwise_or", ast.BitXor: "bitwise_xor",
}  # fmt: skip

_STATEMENTS = {
    ast.Assign: Flow._assign,
    ast.AnnAssign: Flow._ann_assign,
    ast.AugAssign: Flow._aug_assign,
    ast.Expr: Flow._expr_statement,
    ast.Return: Flow._return,
    ast.Raise: Flow._raise,
    ast.If: Flow._if,
    ast.For: Flow._loop,
    ast.AsyncFor: Flow._loop,
    ast.While: Flow._loop,
    ast.With: Flow._with,
    ast.AsyncWith: Flow._with,
    ast.Try: Flow._try,
    ast.Break: Flow._break,
    ast.Continue: Flow._continue,
    ast.FunctionDef: Flow._def,
    ast.AsyncFunctionDef: Flow._def,
    ast.ClassDef: Flow._class,
    ast.Delete: Flow._delete,
    ast.Global: Flow._global,
    ast.Nonlocal: Flow._global,
    ast.Import: Flow._import,
    ast.ImportFrom: Flow._import,
    ast.Assert: Flow._assert,
    ast.Pass: Flow._pass,
}
_EXPRESSIONS = {
    ast.Name: Flow._name,
    ast.Constant: Flow._constant,
    ast.Attribute: Flow._attribute,
    ast.Subscript: Flow._subscript,
    ast.Call: Flow._call,
    ast.BinOp: Flow._binop,
    ast.UnaryOp: Flow._unaryop,
    ast.Compare: Flow._compare,
    ast.BoolOp: Flow._boolop,
    ast.IfExp: Flow._ifexp,
    ast.Tuple: Flow._sequence,
    ast.List: Flow._sequence,
    ast.Set: Flow._sequence,
    ast.Dict: Flow._dict,
    ast.ListComp: Flow._comprehension,
    ast.SetComp: Flow._comprehension,
    ast.GeneratorExp: Flow._comprehension,
    ast.DictComp: Flow._comprehension,
    ast.Starred: Flow._starred,
    ast.NamedExpr: Flow._named_expr,
    ast.Lambda: Flow._lambda,
    ast.JoinedStr: Flow._joined_str,
    ast.Slice: Flow._slice,
    ast.Await: Flow._await,
    ast.Yield: Flow._await,
    ast.YieldFrom: Flow._await,
}

# re-exported for the semantics module
__all__ = [
    "APPEND",
    "ATTRIBUTE_STORE",
    "BACKWARD",
    "CALL",
    "DEAD_TERM",
    "DTYPES",
    "FUNCTION_INSTANCE_CALL",
    "INPLACE",
    "OPTIMIZER_STEP",
    "RETURN",
    "REWRAP_CALL",
    "ZERO_GRAD_CALL",
    "Arguments",
    "Cut",
    "Event",
    "Flow",
    "Saved",
    "State",
    "is_float_dtype",
]

# keep linters quiet about names used only by the semantics module through this one
_ = (CTX, FUNCTION_CLASS, FUNCTION_INSTANCE, MAYBE, MODULE, NONE, NUMPY, OPTIMIZER, SCHEDULER, SIZE_VALUE,
     ZERO_GRAD, DATA, REWRAP, ITEM, OBJECT, STR)  # fmt: skip
