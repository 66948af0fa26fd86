"""Quick fix: turn an `nn.Module`'s hand-written `backward` into a real `torch.autograd.Function`.

Autograd never calls `nn.Module.backward` (GG101). Users who wrote one on purpose
usually want it to run; this fix moves the module's `forward`/`backward` bodies into

    class <Name>Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx, <inputs>, <parameters and attributes used>): ...
        @staticmethod
        def backward(ctx, grad_output): ...

and makes the module's `forward` return `<Name>Function.apply(...)`:

* `self.<param>` in forward becomes an argument; `self.<stash> = tensor` becomes a
  local that is passed to one `ctx.save_for_backward(...)` (non-tensor stashes such as
  shapes are kept on `ctx`); other attributes set in `__init__` are passed as
  arguments (and kept on `ctx` when backward reads them);
* in backward, stashes and parameters come from `ctx.saved_tensors`,
  `self.<param>.grad = g` becomes a returned gradient in the slot of that parameter,
  a returned input gradient keeps its slot, and every other slot is `None`.

The hand-written math is reproduced as written, right or wrong: `gradcheck` on the new
Function tells which. The decision whether a module can be translated is made on the
`ast` alone (cheap); libcst is imported only when the edits are computed. Anything the
translation cannot map faithfully (backward calling other methods, returns inside
branches, attributes set in other methods, layers, ...) gives no fix at all.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

from gradguard.engine import torch_facts
from gradguard.engine.finding import Applicability, Fix, TextEdit
from gradguard.engine.index import Unit, self_attribute, self_name, statement_start_line
from gradguard.engine.values import BUFFER, PARAMETER, TENSOR

FIX_TITLE = "Convert to torch.autograd.Function"

_BUILTINS = frozenset(dir(builtins))
# Attributes autograd's ctx object already has (generated), and the Function's own method names:
# ours must not shadow them.
_CTX_RESERVED = torch_facts.ctx_attributes() | {"forward", "backward", "jvp", "vjp"}
_PARAM_KINDS = ("parameter", "grad_tensor")  # get a gradient slot
_TENSOR_ATTR_KINDS = ("parameter", "grad_tensor", "buffer")

# What the static type guess knows about tensor expressions.
# Results that are not one tensor: a str / ndarray / list, or a tuple of tensors.


class _Untranslatable(Exception):
    pass


def _fail() -> None:
    raise _Untranslatable


@dataclass
class _Extra:
    """An attribute that becomes an argument of the Function."""

    attr: str
    kind: str  # "parameter" | "grad_tensor" | "buffer" | "config"
    arg: str = ""  # its name in Function.forward


@dataclass
class _Plan:
    class_name: str
    function_name: str
    base: str  # "torch.autograd.Function" as spelled in this module
    import_torch: bool
    inputs: list[str]
    extras: list[_Extra]
    forward_self: str
    backward_self: str
    forward_docstring: bool
    backward_docstring: bool
    # forward: `self.<attr>` -> replacement code
    forward_map: dict[str, str] = field(default_factory=dict)
    # forward stash statements that disappear (`self.x = x`): attr names
    forward_drops: set[str] = field(default_factory=set)
    # forward tail: tensors saved, ctx attributes set before the return
    saved_forward: list[str] = field(default_factory=list)
    ctx_lines: list[str] = field(default_factory=list)
    # backward: `self.<attr>` -> replacement code; `self.<p>.grad` -> local name
    backward_map: dict[str, str] = field(default_factory=dict)
    grad_map: dict[str, str] = field(default_factory=dict)
    saved_backward: list[str] = field(default_factory=list)
    preinit: list[str] = field(default_factory=list)  # grad locals set to None first
    grad_drops: set[str] = field(default_factory=set)  # `self.p.grad = g` lines that disappear
    aug_first: set[str] = field(default_factory=set)  # first write `+=` becomes `=`
    has_return: bool = False
    complete: bool = False
    return_mode: str = "none"  # "none" | "tuple" | "single"
    return_slot: int = 0


# ---------------------------------------------------------------------------------------------
# public API


@dataclass(frozen=True)
class Conversion:
    fix: Fix
    # Every parameter that forward uses gets a gradient from the converted backward.
    # When False, converting takes gradients away from parameters that learn today.
    complete: bool


def conversion_fix(unit: Unit, cls: ast.ClassDef) -> Fix | None:
    """The "Convert to torch.autograd.Function" fix for a module class with a `backward`
    method, or None when the module cannot be translated faithfully (decided on the ast)."""
    conversion = analyse_conversion(unit, cls)
    return conversion.fix if conversion is not None else None


def analyse_conversion(unit: Unit, cls: ast.ClassDef) -> Conversion | None:
    """Like `conversion_fix`, and also tells whether the hand-written backward gives every
    parameter used in forward a gradient."""
    try:
        plan = _analyse(unit, cls)
    except (_Untranslatable, RecursionError):
        return None

    def compute() -> list[TextEdit] | None:
        try:
            return _edits(unit, cls, plan)
        except Exception:  # noqa: BLE001 - never offer broken code
            return None

    return Conversion(Fix(FIX_TITLE, Applicability.UNSAFE, compute), plan.complete)


def sub_layers_used(unit: Unit, cls: ast.ClassDef) -> list[str]:
    """The sub-layers (`self.fc = nn.Linear(...)`) the module's forward or backward uses: why the
    conversion is not offered (their parameters would learn only through the hand-written backward)."""
    attrs = unit.class_attributes(cls)
    used: list[str] = []
    for name in ("forward", "backward"):
        method = unit.methods(cls).get(name)
        me = self_name(method) if isinstance(method, ast.FunctionDef) else None
        if me is None or method is None:
            continue
        for node in ast.walk(method):
            attr = self_attribute(node, me)
            if attr is not None and attr in attrs and attrs[attr].kind == "layer" and attr not in used:
                used.append(attr)
    return used


def convert_module_source(source: str, class_name: str) -> str | None:
    """The whole module text with `class_name` converted, or None when it cannot be."""
    from gradguard.engine.analyzer import parse
    from gradguard.engine.index import ModuleContext
    from gradguard.engine.source import SourceFile, apply_edits

    try:
        tree = parse(source)
    except (SyntaxError, ValueError):
        return None
    src = SourceFile(source)
    module = ModuleContext(tree, src)
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == class_name:
            unit = Unit([stmt], src, module)
            fix = conversion_fix(unit, stmt)
            if fix is None or not fix.edits:
                return None
            return apply_edits(source, fix.edits)
    return None


# ---------------------------------------------------------------------------------------------
# analysis (ast only)


def _pos(node: ast.AST) -> tuple[int, int]:
    return (node.lineno, node.col_offset)


def _end(node: ast.AST) -> tuple[int, int]:
    return (node.end_lineno or node.lineno, node.end_col_offset or 0)


def _has_docstring(func: ast.FunctionDef) -> bool:
    first = func.body[0] if func.body else None
    return (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )


def _fresh(base: str, taken: set[str]) -> str:
    name = base
    index = 1
    while name in taken:
        name = f"{base}_{index}"
        index += 1
    taken.add(name)
    return name


def _names(nodes: list[ast.AST]) -> tuple[set[str], set[str]]:
    """(all names bound, all names loaded) inside a function (args included)."""
    bound: set[str] = set()
    loaded: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound, loaded


def _name_stores_after(nodes: list[ast.AST], name: str, position: tuple[int, int]) -> bool:
    for node in nodes:
        if (
            isinstance(node, ast.Name)
            and node.id == name
            and not isinstance(node.ctx, ast.Load)
            and _pos(node) > position
        ):
            return True
    return False


def _check_body(nodes: list[ast.AST], func: ast.FunctionDef, last_return: ast.Return | None) -> None:
    for node in nodes:
        if node is func:
            continue
        if isinstance(
            node,
            (
                ast.FunctionDef,
                ast.AsyncFunctionDef,
                ast.ClassDef,
                ast.Yield,
                ast.YieldFrom,
                ast.Await,
                ast.Global,
                ast.Nonlocal,
            ),
        ):
            _fail()
        if isinstance(node, ast.Return) and node is not last_return:
            _fail()  # a return inside a branch cannot be mapped
        if isinstance(node, ast.Name) and node.id in ("ctx", "super", "__class__"):
            _fail()


def _check_no_inplace_on_inputs(nodes: list[ast.AST], inputs: set[str], me: str) -> None:
    """In a Function's forward, writing into an input or a parameter needs `ctx.mark_dirty`;
    such modules are left alone."""

    def is_input(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id in inputs) or (
            isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == me
        )

    def writes_input(node: ast.AST) -> bool:
        if isinstance(node, ast.AugAssign):
            return is_input(node.target)
        if isinstance(node, ast.Subscript):
            return not isinstance(node.ctx, ast.Load) and is_input(node.value)
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.endswith("_")
            and not node.func.attr.endswith("__")
            and is_input(node.func.value)
        )

    if any(writes_input(node) for node in nodes):
        _fail()


def _self_uses(unit: Unit, nodes: list[ast.AST], me: str) -> list[ast.Attribute]:
    """Every `self.<attr>` node in func; fails on any other use of `self`."""
    uses = []
    for node in nodes:
        if isinstance(node, ast.Name) and node.id == me:
            parent = unit.parent(node)
            if not (isinstance(parent, ast.Attribute) and parent.value is node):
                _fail()
            uses.append(parent)
    uses.sort(key=_pos)
    return uses


def _tensor_kind(value) -> bool | None:
    """True: a tensor; False: certainly not one; None: unknown."""
    if value.is_tensor:
        return True
    if value.known and not value.kinds & (TENSOR | PARAMETER | BUFFER):
        return False
    return None


def _analyse(unit: Unit, cls: ast.ClassDef) -> _Plan:
    """Decide on the ast whether the module can be translated, and how (raises _Untranslatable)."""
    return _Analysis(unit, cls).plan()


class _Analysis:
    """The steps of `_analyse`; each step reads what the earlier ones found."""

    def __init__(self, unit: Unit, cls: ast.ClassDef) -> None:
        self.unit = unit
        self.cls = cls
        self.module = unit.module

    def plan(self) -> _Plan:
        self._methods()
        self._signatures()
        self._bodies()
        self._attribute_sites()
        self._forward_uses()
        self._backward_uses()
        self._check_backward_names()
        plan = self._new_plan()
        self._plan_stashes(plan)
        self._plan_extras(plan)
        self._plan_grads(plan)
        plan.complete = all(
            extra.attr in plan.grad_map
            for extra in plan.extras
            if extra.kind in _PARAM_KINDS and extra.attr in self.forward_reads
        )
        return plan

    # -- the two methods and their signatures -----------------------------------------------------
    def _methods(self) -> None:
        cls = self.cls
        if self.unit.parent(cls) is not None:
            _fail()
        self.defs = [s for s in cls.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
        def_names = [d.name for d in self.defs]
        if def_names.count("forward") != 1 or def_names.count("backward") != 1:
            _fail()
        methods = self.unit.methods(cls)
        fwd, bwd = methods["forward"], methods["backward"]
        if not isinstance(fwd, ast.FunctionDef) or not isinstance(bwd, ast.FunctionDef):
            _fail()
        if fwd.decorator_list or bwd.decorator_list:
            _fail()
        self.fwd, self.bwd = fwd, bwd

    def _signatures(self) -> None:
        fwd, bwd = self.fwd, self.bwd
        me_f, me_b = self_name(fwd), self_name(bwd)
        if not me_f or not me_b:
            _fail()
        self.me_f, self.me_b = me_f, me_b
        fa, ba = fwd.args, bwd.args
        if fa.vararg or fa.kwarg or fa.kwonlyargs or ba.vararg or ba.kwarg or ba.kwonlyargs:
            _fail()
        f_params = fa.posonlyargs + fa.args
        b_params = ba.posonlyargs + ba.args
        self.inputs = inputs = [a.arg for a in f_params[1:]]
        if not inputs or len(b_params) < 2 or ba.defaults:
            _fail()
        # one gradient per output of forward (checked against its return in `_bodies`)
        self.grad_args = [p.arg for p in b_params[1:]]
        if "ctx" in inputs or "ctx" in self.grad_args:
            _fail()
        # inputs with a constant default (`dim=1`) are taken as non-tensors
        defaults = (
            dict(zip(inputs[len(inputs) - len(fa.defaults) :], fa.defaults, strict=True))
            if fa.defaults
            else {}
        )
        self.constant_inputs = {
            name for name, d in defaults.items() if isinstance(d, ast.Constant) and d.value is not None
        }

    # -- the bodies ---------------------------------------------------------------------------------
    def _bodies(self) -> None:
        cls, fwd, bwd = self.cls, self.fwd, self.bwd
        for func in (fwd, bwd):
            # `"""doc"""; self.x = x`: libcst sees one line where the ast sees the docstring
            block = func.body
            if _has_docstring(func) and len(block) > 1 and (block[0].end_lineno or 0) >= block[1].lineno:
                _fail()
        if (
            cls.body[0].lineno == cls.lineno
            or fwd.body[0].lineno == fwd.lineno
            or bwd.body[0].lineno == bwd.lineno
        ):
            _fail()
        self.f_doc, self.b_doc = _has_docstring(fwd), _has_docstring(bwd)
        self.f_stmts = f_stmts = fwd.body[1:] if self.f_doc else list(fwd.body)
        self.b_stmts = b_stmts = bwd.body[1:] if self.b_doc else list(bwd.body)
        if not f_stmts or not isinstance(f_stmts[-1], ast.Return) or f_stmts[-1].value is None:
            _fail()
        f_return = f_stmts[-1]
        if len(f_stmts) > 1 and (f_stmts[-2].end_lineno or 0) >= f_return.lineno:
            _fail()  # `y = f(x); return y` on one line
        b_return = b_stmts[-1] if b_stmts and isinstance(b_stmts[-1], ast.Return) else None
        if b_return is not None and len(b_stmts) > 1 and (b_stmts[-2].end_lineno or 0) >= b_return.lineno:
            _fail()
        self.b_return = b_return
        self.walked = {id(fwd): list(ast.walk(fwd)), id(bwd): list(ast.walk(bwd))}
        self.f_nodes, self.b_nodes = self.walked[id(fwd)], self.walked[id(bwd)]
        _check_body(self.f_nodes, fwd, f_return)
        outputs = f_return.value.elts if isinstance(f_return.value, (ast.Tuple, ast.List)) else None
        if outputs is not None and (
            not isinstance(f_return.value, ast.Tuple) or any(isinstance(e, ast.Starred) for e in outputs)
        ):
            _fail()  # a list, or a starred output: how many gradients backward receives is unclear
        if len(self.grad_args) != (len(outputs) if outputs is not None else 1):
            _fail()  # backward takes one gradient per output of forward
        _check_no_inplace_on_inputs(self.f_nodes, set(self.inputs), self.me_f)
        _check_body(self.b_nodes, bwd, b_return)

    # -- where each attribute is set ----------------------------------------------------------------
    def _attribute_sites(self) -> None:
        self.stores: dict[str, set[str]] = {}
        self.other_reads: set[str] = set()
        for func in self.defs:
            me = self_name(func) or "self"
            for node in self.walked.get(id(func)) or ast.walk(func):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == me
                ):
                    if not isinstance(node.ctx, ast.Load):
                        self.stores.setdefault(node.attr, set()).add(func.name)
                    elif func.name not in ("forward", "backward"):
                        self.other_reads.add(node.attr)
        if "backward" in self.other_reads:
            _fail()  # someone calls the method we remove
        self.class_level: set[str] = set()
        for stmt in self.cls.body:
            if isinstance(stmt, ast.Assign):
                self.class_level.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
            elif (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and stmt.value is not None
            ):
                self.class_level.add(stmt.target.id)
        self.attrs = self.unit.class_attributes(self.cls)
        self.method_names = {d.name for d in self.defs}

    def kind_of(self, attr: str) -> str:
        """The attribute's role: "stash" (set by forward for backward), a tensor kind, or "config"."""
        if attr in self.stash_assigns:
            if attr in self.attrs and self.attrs[attr].kind in (*_TENSOR_ATTR_KINDS, "layer"):
                _fail()
            if attr in self.other_reads or "backward" in self.stores.get(attr, ()):
                _fail()
            return "stash"
        if attr in self.method_names:
            _fail()
        info = self.attrs.get(attr)
        sites = self.stores.get(attr, set())
        if "forward" in sites or "backward" in sites:
            _fail()
        if info is not None and info.kind in _TENSOR_ATTR_KINDS:
            return info.kind
        if info is not None and info.kind == "layer":
            _fail()
        if sites - {"__init__"}:
            _fail()  # set in some other method: its value at call time is unknown here
        if sites or attr in self.class_level or attr == "training":
            return "config"  # `training` is nn.Module's own flag (train()/eval())
        _fail()  # inherited, a property, or never set
        return ""  # pragma: no cover

    # -- forward's and backward's uses of self ------------------------------------------------------
    def _forward_uses(self) -> None:
        unit = self.unit
        self.f_uses = _self_uses(unit, self.f_nodes, self.me_f)
        self.stash_assigns: dict[str, list[ast.Assign]] = {}
        for use in self.f_uses:
            if not isinstance(use.ctx, ast.Load):
                stmt = unit.parent(use)
                if not (
                    isinstance(stmt, ast.Assign)
                    and len(stmt.targets) == 1
                    and stmt.targets[0] is use
                    and any(stmt is s for s in self.f_stmts)
                ):
                    _fail()  # only `self.s = value` as a statement of forward's own body
                self.stash_assigns.setdefault(use.attr, []).append(stmt)
        first_stash = {attr: min(stmts, key=_pos) for attr, stmts in self.stash_assigns.items()}
        self.forward_reads: list[str] = []
        for use in self.f_uses:
            if not isinstance(use.ctx, ast.Load):
                continue
            parent = unit.parent(use)
            if isinstance(parent, ast.Attribute) and parent.attr == "grad":
                _fail()
            kind = self.kind_of(use.attr)
            if kind == "stash" and _pos(use) <= _end(first_stash[use.attr]):
                _fail()  # reads the value stored by the previous call
            self.forward_reads.append(use.attr)

    def _backward_uses(self) -> None:
        self.grad_writes: dict[str, list[ast.stmt]] = {}
        self.grad_reads: set[str] = set()
        self.backward_reads: list[str] = []
        for use in _self_uses(self.unit, self.b_nodes, self.me_b):
            if not isinstance(use.ctx, ast.Load):
                _fail()  # backward sets an attribute: not mapped
            parent = self.unit.parent(use)
            if isinstance(parent, ast.Attribute) and parent.value is use and parent.attr == "grad":
                self._grad_use(use, parent)
                continue
            self.kind_of(use.attr)
            self.backward_reads.append(use.attr)

    def _grad_use(self, use: ast.Attribute, parent: ast.Attribute) -> None:
        """`self.p.grad = g` / `+= g` (a gradient), or `self.p.grad is None` (a test)."""
        if self.kind_of(use.attr) not in _PARAM_KINDS:
            _fail()
        holder = self.unit.parent(parent)
        if isinstance(parent.ctx, ast.Store):
            if (
                isinstance(holder, ast.Assign) and len(holder.targets) == 1 and holder.targets[0] is parent
            ) or (isinstance(holder, ast.AugAssign) and holder.target is parent):
                self.grad_writes.setdefault(use.attr, []).append(holder)
                return
            _fail()
        if not isinstance(parent.ctx, ast.Load):
            _fail()
        if (
            isinstance(holder, ast.Compare)
            and len(holder.ops) == 1
            and isinstance(holder.ops[0], (ast.Is, ast.IsNot))
            and (
                (holder.left is parent and _is_none(holder.comparators[0]))
                or (holder.comparators[0] is parent and _is_none(holder.left))
            )
        ):
            self.grad_reads.add(use.attr)
            return
        _fail()  # `.grad` used as a value: no equivalent in a Function

    def _check_backward_names(self) -> None:
        """Names backward reads that only forward defines (`grad_output * x`) cannot be mapped."""
        module = self.module
        self.f_bound, self.f_loaded = _names(self.f_nodes)
        self.b_bound, self.b_loaded = _names(self.b_nodes)
        for name in self.b_loaded - self.b_bound:
            if (
                name in _BUILTINS
                or name in module.aliases
                or name in module.classes
                or name in module.functions
            ):
                continue
            if name in self.f_bound:
                _fail()

    def _return_mode(self) -> tuple[str, int]:
        """How backward's return maps to the input gradients: ("none" | "tuple" | "single", slot)."""
        b_return, inputs = self.b_return, self.inputs
        if b_return is None or _is_none(b_return.value):
            return "none", 0
        value = b_return.value
        tensor_inputs = [i for i, name in enumerate(inputs) if name not in self.constant_inputs]
        if isinstance(value, ast.Tuple):
            if len(value.elts) != len(inputs) or any(isinstance(e, ast.Starred) for e in value.elts):
                _fail()  # which gradient belongs to which input is not clear
            return "tuple", 0
        if len(inputs) == 1:
            return "single", 0
        if len(tensor_inputs) == 1:
            return "single", tensor_inputs[0]
        _fail()
        return "none", 0  # pragma: no cover

    # -- the plan -----------------------------------------------------------------------------------
    def _new_plan(self) -> _Plan:
        return_mode, return_slot = self._return_mode()
        order: list[str] = []
        grads_in_order = sorted(self.grad_writes, key=lambda a: _pos(self.grad_writes[a][0]))
        for attr in self.forward_reads + self.backward_reads + grads_in_order:
            if attr not in order and self.kind_of(attr) != "stash":
                order.append(attr)
        extras = [_Extra(attr, self.kind_of(attr)) for attr in order]
        self.f_taken = set(self.f_bound) | set(self.f_loaded) | set(self.inputs) | {"ctx"}
        for extra in extras:
            extra.arg = _fresh(extra.attr, self.f_taken)
        base, import_torch = self._function_base()
        module = self.module
        used_names = set(module.classes) | set(module.functions) | set(module.aliases)
        return _Plan(
            class_name=self.cls.name,
            function_name=_fresh(f"{self.cls.name}Function", used_names),
            base=base,
            import_torch=import_torch,
            inputs=self.inputs,
            extras=extras,
            forward_self=self.me_f,
            backward_self=self.me_b,
            forward_docstring=self.f_doc,
            backward_docstring=self.b_doc,
            has_return=self.b_return is not None,
            return_mode=return_mode,
            return_slot=return_slot,
        )

    def _function_base(self) -> tuple[str, bool]:
        """`torch.autograd.Function` as spelled in this module, and whether `import torch` is needed."""
        aliases = self.module.aliases
        torch_local = next((local for local, q in aliases.items() if q == "torch"), None)
        if torch_local:
            return f"{torch_local}.autograd.Function", False
        spellings = ("torch.autograd", "torch.autograd.Function", "torch.autograd.function.Function")
        base = next(
            (
                f"{local}.Function" if q == "torch.autograd" else local
                for local, q in aliases.items()
                if q in spellings
            ),
            "",
        )
        if base:
            return base, False
        if {"torch"} & (
            self.f_loaded | self.b_loaded | set(self.module.classes) | set(self.module.functions)
        ):
            _fail()
        return "torch.autograd.Function", True

    def _stash_kinds(self) -> dict[str, bool | None]:
        """Which stashes hold tensors (save_for_backward takes those): what the value analysis says
        `forward` stores (a tensor, certainly not one, or unknown)."""
        flow = self.unit.semantics.flow(self.fwd)
        stash_kind: dict[str, bool | None] = {}
        for stmt in self.f_stmts:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and node.targets[0] in self.f_uses:
                    attr = node.targets[0].attr  # type: ignore[attr-defined]
                    kind = _tensor_kind(flow.value_of(node.value))
                    if attr in stash_kind and stash_kind[attr] != kind:
                        kind = None
                    stash_kind[attr] = kind
        return stash_kind

    def _plan_stashes(self, plan: _Plan) -> None:
        """Stashes: tensors become locals (saved when backward reads them); others live on ctx."""
        stash_kind = self._stash_kinds()
        f_taken = self.f_taken
        self.read_in_backward = read_in_backward = set(self.backward_reads)
        self.b_taken = b_taken = set(self.b_bound) | set(self.b_loaded) | {"ctx", *self.grad_args}
        self.ctx_taken = set(_CTX_RESERVED)
        for attr, stmts in self.stash_assigns.items():
            kind = stash_kind.get(attr)
            if kind is False:
                name = _fresh(attr, self.ctx_taken)
                plan.forward_map[attr] = f"ctx.{name}"
                plan.backward_map[attr] = f"ctx.{name}"
                continue
            if kind is None and attr in read_in_backward:
                _fail()  # cannot tell whether save_for_backward may take it
            value = stmts[0].value
            if (
                len(stmts) == 1
                and isinstance(value, ast.Name)
                and value.id in self.f_bound
                and not _name_stores_after(self.f_nodes, value.id, _end(stmts[0]))
            ):
                # `self.x = x`: the statement goes, `x` itself is saved
                plan.forward_drops.add(attr)
                plan.forward_map[attr] = value.id
            if attr not in plan.forward_map:
                plan.forward_map[attr] = _fresh(attr if attr not in f_taken else f"saved_{attr}", f_taken)
            if attr in read_in_backward:
                plan.saved_forward.append(plan.forward_map[attr])
                local = _fresh(attr if attr not in b_taken else f"saved_{attr}", b_taken)
                plan.saved_backward.append(local)
                plan.backward_map[attr] = local

    def _plan_extras(self, plan: _Plan) -> None:
        """Attributes passed as arguments: tensors saved for backward, others kept on ctx."""
        b_taken = self.b_taken
        for extra in plan.extras:
            plan.forward_map[extra.attr] = extra.arg
            if extra.attr not in self.read_in_backward:
                continue
            if extra.kind in _TENSOR_ATTR_KINDS:
                plan.saved_forward.append(extra.arg)
                local = _fresh(extra.attr if extra.attr not in b_taken else f"saved_{extra.attr}", b_taken)
                plan.saved_backward.append(local)
                plan.backward_map[extra.attr] = local
            else:
                name = _fresh(extra.attr, self.ctx_taken)
                plan.ctx_lines.append(f"ctx.{name} = {extra.arg}")
                plan.backward_map[extra.attr] = f"ctx.{name}"

    def _plan_grads(self, plan: _Plan) -> None:
        """Gradients written to `.grad` become locals returned in the parameters' slots."""
        b_top = set(map(id, self.b_stmts))
        for extra in plan.extras:
            attr = extra.attr
            writes = sorted(self.grad_writes.get(attr, []), key=_pos)
            if not writes:
                continue
            nested = any(id(w) not in b_top for w in writes)
            preinit = nested or attr in self.grad_reads
            first = writes[0]
            if isinstance(first, ast.AugAssign):
                if preinit:
                    _fail()  # `None += g` at the first call
                plan.aug_first.add(attr)
            value = first.value
            if (
                len(writes) == 1
                and not preinit
                and isinstance(first, ast.Assign)
                and isinstance(value, ast.Name)
                and not _name_stores_after(self.b_nodes, value.id, _end(first))
                and (value.id in self.b_bound or value.id in self.grad_args)
            ):
                plan.grad_drops.add(attr)
                plan.grad_map[attr] = value.id
                continue
            plan.grad_map[attr] = _fresh(f"grad_{attr}", self.b_taken)
            if preinit:
                plan.preinit.append(plan.grad_map[attr])


def _is_none(node: ast.AST | None) -> bool:
    return node is None or (isinstance(node, ast.Constant) and node.value is None)


# ---------------------------------------------------------------------------------------------
# rewriting (libcst)


def _edits(unit: Unit, cls: ast.ClassDef, plan: _Plan) -> list[TextEdit]:
    source = unit.source
    start = statement_start_line(cls)
    end = cls.end_lineno or cls.lineno
    last = source.line_text(end).rstrip("\r\n")
    text = source.text_between(start, 1, end, len(last) + 1)
    newline = source.newline()
    new_text = _rewrite(text + newline, plan)
    new_text = new_text.removesuffix(newline)
    return [TextEdit(start, 1, end, len(last) + 1, new_text)]


def _rewrite(text: str, plan: _Plan) -> str:
    import libcst as cst

    module = cst.parse_module(text)
    cls = module.body[0]
    if not isinstance(cls, cst.ClassDef) or not isinstance(cls.body, cst.IndentedBlock):
        raise ValueError("not a class")
    writer = _Writer(module, plan)
    fwd = next(s for s in cls.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "forward")
    bwd = next(s for s in cls.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "backward")
    function_cls = writer.function_class(fwd, bwd)
    new_cls = writer.module_class(cls, fwd, bwd)
    new_body: list[cst.BaseStatement] = [function_cls, new_cls]
    if plan.import_torch:
        function_cls = function_cls.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])
        new_body = [writer.statement("import torch"), function_cls, new_cls]
    return module.with_changes(body=new_body).code


class _Writer:
    """Builds the Function class and the module's new forward from the module's libcst tree."""

    def __init__(self, module, plan: _Plan) -> None:
        self.plan = plan
        self.config = module.config_for_parsing
        self.indent = module.default_indent
        self.nl = module.default_newline

    def statement(self, code: str):
        import libcst as cst

        return cst.parse_statement(code + self.nl, config=self.config)

    def function_class(self, fwd, bwd):
        """`class <Name>Function(torch.autograd.Function)` with both static methods."""
        import libcst as cst

        plan, nl, indent = self.plan, self.nl, self.indent
        args = ", ".join(["ctx", *plan.inputs, *(e.arg for e in plan.extras)])
        template = cst.parse_module(
            f"class {plan.function_name}({plan.base}):{nl}"
            f"{indent}@staticmethod{nl}"
            f"{indent}def forward({args}):{nl}"
            f"{indent}{indent}pass{nl}",
            config=self.config,
        )
        function_cls = template.body[0]
        assert isinstance(function_cls, cst.ClassDef) and isinstance(function_cls.body, cst.IndentedBlock)
        new_forward = function_cls.body.body[0]
        assert isinstance(new_forward, cst.FunctionDef)
        new_forward = new_forward.with_changes(
            body=fwd.body.with_changes(
                body=self.forward_body(fwd), header=cst.TrailingWhitespace(), footer=()
            )
        )
        return function_cls.with_changes(
            body=function_cls.body.with_changes(body=[new_forward, self.backward_method(bwd)]),
            leading_lines=[],
        )

    def forward_body(self, fwd) -> list:
        """The module's forward statements with `self.<attr>` mapped, stashes dropped and the
        `save_for_backward` / ctx lines before the return."""
        plan = self.plan
        f_body = list(fwd.body.body)
        f_work = f_body[1:] if plan.forward_docstring else f_body
        f_work = _drop_stashes(f_work, plan.forward_self, plan.forward_drops)
        rewriter = _Rewriter(plan.forward_self, plan.forward_map, {}, set())
        f_work = [stmt if isinstance(stmt, _Pending) else stmt.visit(rewriter) for stmt in f_work]
        tail = []
        if plan.saved_forward:
            tail.append(self.statement(f"ctx.save_for_backward({', '.join(plan.saved_forward)})"))
        tail.extend(self.statement(line) for line in plan.ctx_lines)
        # comments of dropped stash lines stay above what replaces them (the save)
        return _attach_pending(f_work[:-1] + tail + f_work[-1:])

    def backward_method(self, bwd):
        """The module's backward as `@staticmethod backward(ctx, grad_output...)`."""
        import libcst as cst

        plan = self.plan
        b_body = list(bwd.body.body)
        b_doc = b_body[:1] if plan.backward_docstring else []
        b_work = b_body[1:] if plan.backward_docstring else b_body
        b_work = _drop_grad_writes(b_work, plan.backward_self, plan.grad_drops)
        rewriter = _Rewriter(plan.backward_self, plan.backward_map, plan.grad_map, plan.aug_first)
        b_work = [stmt if isinstance(stmt, _Pending) else stmt.visit(rewriter) for stmt in b_work]
        prelude = []
        if plan.saved_backward:
            names = ", ".join(plan.saved_backward)
            unpack = (
                f"{names}, = ctx.saved_tensors"
                if len(plan.saved_backward) == 1
                else f"{names} = ctx.saved_tensors"
            )
            prelude.append(self.statement(unpack))
        prelude.extend(self.statement(f"{name} = None") for name in plan.preinit)
        b_work = self._with_return(b_work)
        params = bwd.params
        if params.posonly_params:
            first = params.posonly_params[0].with_changes(name=cst.Name("ctx"), annotation=None)
            params = params.with_changes(posonly_params=[first, *params.posonly_params[1:]])
        else:
            first = params.params[0].with_changes(name=cst.Name("ctx"), annotation=None)
            params = params.with_changes(params=[first, *params.params[1:]])
        leading = list(bwd.leading_lines)
        if not leading or leading[0].comment is not None:
            leading.insert(0, cst.EmptyLine())
        return bwd.with_changes(
            decorators=[cst.Decorator(cst.Name("staticmethod"))],
            params=params,
            body=bwd.body.with_changes(body=_attach_pending(b_doc + prelude + b_work)),
            leading_lines=leading,
        )

    def _with_return(self, b_work: list) -> list:
        """Backward's statements ending with the return of one gradient per argument of `apply`:
        the input gradients it returned in their slots, the `.grad` locals in the parameters'."""
        import libcst as cst

        plan = self.plan
        old_value = None
        if plan.has_return:
            last = b_work[-1]
            assert isinstance(last, cst.SimpleStatementLine) and isinstance(last.body[-1], cst.Return)
            old_value = last.body[-1].value
        slots: list[cst.BaseExpression | None] = [None] * len(plan.inputs)
        if plan.return_mode == "tuple" and isinstance(old_value, cst.Tuple):
            for index, element in enumerate(old_value.elements):
                slots[index] = element.value
        elif plan.return_mode == "single" and old_value is not None:
            slots[plan.return_slot] = old_value
        for extra in plan.extras:
            grad = plan.grad_map.get(extra.attr)
            slots.append(cst.Name(grad) if grad else None)
        values = [value if value is not None else cst.Name("None") for value in slots]
        if len(values) == 1:
            combined: cst.BaseExpression = values[0]
        else:
            combined = cst.Tuple([cst.Element(value) for value in values], lpar=[], rpar=[])
        if not plan.has_return:
            return [*b_work, cst.SimpleStatementLine([cst.Return(combined)])]
        last = b_work[-1]
        assert isinstance(last, cst.SimpleStatementLine)
        ret = last.body[-1]
        assert isinstance(ret, cst.Return)
        new_ret = ret.with_changes(value=combined, whitespace_after_return=cst.SimpleWhitespace(" "))
        return [*b_work[:-1], last.with_changes(body=[*last.body[:-1], new_ret])]

    def module_class(self, cls, fwd, bwd):
        """The module without `backward`, its forward returning `<Name>Function.apply(...)`."""
        import libcst as cst

        plan = self.plan
        f_doc = list(fwd.body.body)[:1] if plan.forward_docstring else []
        call_args = [*plan.inputs, *(f"{plan.forward_self}.{e.attr}" for e in plan.extras)]
        call = self.statement(f"return {plan.function_name}.apply({', '.join(call_args)})")
        module_forward = fwd.with_changes(body=fwd.body.with_changes(body=[*f_doc, call]))
        class_body = [module_forward if stmt is fwd else stmt for stmt in cls.body.body if stmt is not bwd]
        return cls.with_changes(
            body=cls.body.with_changes(body=class_body),
            leading_lines=[cst.EmptyLine(), cst.EmptyLine(), *cls.leading_lines],
        )


class _Pending:
    """Comments of a removed statement, to be put before the next one."""

    def __init__(self, lines: list) -> None:
        self.lines = lines


def _comment_lines(line) -> list:
    import libcst as cst

    lines = list(line.leading_lines)
    comment = line.trailing_whitespace.comment
    if comment is not None:
        lines.append(cst.EmptyLine(indent=True, whitespace=cst.SimpleWhitespace(""), comment=comment))
    return lines


def _is_self_attr(node, me: str) -> bool:
    import libcst as cst

    return isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == me


def _is_self_grad(node, me: str) -> str | None:
    import libcst as cst

    if isinstance(node, cst.Attribute) and node.attr.value == "grad" and _is_self_attr(node.value, me):
        return node.value.attr.value
    return None


def _remove_small(statements: list, predicate) -> list:
    """Remove the small statements matching predicate from top-level simple lines; a line
    left empty disappears and hands its comments to the next statement."""
    import libcst as cst

    out: list = []
    for stmt in statements:
        if isinstance(stmt, cst.SimpleStatementLine):
            kept = [small for small in stmt.body if not predicate(small)]
            if len(kept) != len(stmt.body):
                if not kept:
                    out.append(_Pending(_comment_lines(stmt)))
                    continue
                kept[-1] = kept[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
                stmt = stmt.with_changes(body=kept)
        out.append(stmt)
    return out


def _drop_stashes(statements: list, me: str, drops: set[str]) -> list:
    import libcst as cst

    if not drops:
        return statements

    def predicate(small) -> bool:
        return (
            isinstance(small, cst.Assign)
            and len(small.targets) == 1
            and _is_self_attr(small.targets[0].target, me)
            and small.targets[0].target.attr.value in drops
        )

    return _remove_small(statements, predicate)


def _drop_grad_writes(statements: list, me: str, drops: set[str]) -> list:
    import libcst as cst

    if not drops:
        return statements

    def predicate(small) -> bool:
        return (
            isinstance(small, cst.Assign)
            and len(small.targets) == 1
            and _is_self_grad(small.targets[0].target, me) in drops
        )

    # pending comments may trail the last statement: _attach_pending runs again at the end
    return _remove_small(statements, predicate)


def _attach_pending(statements: list) -> list:
    import libcst as cst

    out: list = []
    pending: list = []
    for stmt in statements:
        if isinstance(stmt, _Pending):
            pending.extend(stmt.lines)
            continue
        if pending:
            stmt = stmt.with_changes(leading_lines=[*pending, *stmt.leading_lines])
            pending = []
        out.append(stmt)
    if pending:  # nothing follows: keep the comments with a `pass`
        out.append(cst.SimpleStatementLine([cst.Pass()], leading_lines=pending))
    return out


def _make_rewriter_base():
    import libcst as cst

    class Rewriter(cst.CSTTransformer):
        def __init__(
            self, me: str, attr_map: dict[str, str], grad_map: dict[str, str], aug_first: set[str]
        ) -> None:
            super().__init__()
            self.me = me
            self.attr_map = attr_map
            self.grad_map = grad_map
            self.aug_first = set(aug_first)
            self.written: set[str] = set()

        def leave_Attribute(self, original_node, updated_node):
            param = _is_self_grad(original_node, self.me)
            if param is not None and param in self.grad_map:
                return cst.Name(self.grad_map[param], lpar=updated_node.lpar, rpar=updated_node.rpar)
            if _is_self_attr(original_node, self.me):
                replacement = self.attr_map.get(original_node.attr.value)
                if replacement is not None:
                    node = cst.parse_expression(replacement)
                    return node.with_changes(lpar=updated_node.lpar, rpar=updated_node.rpar)
            return updated_node

        def leave_Assign(self, original_node, updated_node):
            for target in original_node.targets:
                param = _is_self_grad(target.target, self.me)
                if param is not None:
                    self.written.add(param)
            return updated_node

        def leave_AugAssign(self, original_node, updated_node):
            param = _is_self_grad(original_node.target, self.me)
            if param is None:
                return updated_node
            first = param in self.aug_first and param not in self.written
            self.written.add(param)
            if first:
                return cst.Assign(
                    targets=[cst.AssignTarget(updated_node.target)],
                    value=updated_node.value,
                    semicolon=updated_node.semicolon,
                )
            return updated_node

    return Rewriter


_REWRITER = None


def _Rewriter(me: str, attr_map: dict[str, str], grad_map: dict[str, str], aug_first: set[str]):
    global _REWRITER
    if _REWRITER is None:
        _REWRITER = _make_rewriter_base()
    return _REWRITER(me, attr_map, grad_map, aug_first)
