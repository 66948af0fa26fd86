"""Per-function data flow: which values autograd tracks, and where the graph is cut.

One pass over a function's statements in source order (branches are merged, loop
bodies run once) keeps, for every local name, an abstract `Value`:

* `bits` say where the value comes from: `LIVE` (parameters, layers, grad leaves: the
  graph reaches the model), `OPAQUE` (a call we cannot see into: it may be tracked),
  `CUT` (a tracked value passed through `.detach()`, `.data`, `.item()`, a
  `torch.tensor(...)` re-wrap, `float(...)`, ...), `NONDIFF` (a tracked value passed
  through `argmax`, `round`, a comparison, an integer cast: the gradient is zero or
  absent), `NOGRAD` (computed under `torch.no_grad()`/`inference_mode()`), and object
  kinds (`MODULE`: calling it gives a tracked result; `PUREMOD`: a parameter-free layer
  or loss; `OBJ`: an unknown object).
* `origins` are the nodes where CUT/NONDIFF/NOGRAD entered (for messages).
* `names` are the local names the value was computed from ("which names derive from
  which").
* `saved` is the call that produced the value when it is exactly the output of an op
  that saves its output for backward (`sigmoid`, `tanh`, `exp`, `softmax`, `relu`, ...).

The flow of a function is computed lazily, once per Unit (cached on the unit), and it
only looks at the unit and its module context. Rules ask `flow.value(expr)` for any
expression inside the function: name reads are answered from what the pass recorded
at that point of the function.
"""

from __future__ import annotations

import ast
import weakref
from collections.abc import Iterator

from gradguard.engine.index import (
    FunctionNode,
    Unit,
    creates_grad_leaf,
    keyword,
    self_name,
)

LIVE = 1
OPAQUE = 2
CUT = 4
NONDIFF = 8
NOGRAD = 16
MODULE = 32
PUREMOD = 64
OBJ = 128
TENSOR = 256  # certainly a tensor (a torch function's or a layer's result)

TRACKED = LIVE | OPAQUE
DETACHED = CUT | NONDIFF | NOGRAD
_OBJECT_BITS = MODULE | PUREMOD | OBJ
_MAX_ORIGINS = 4

# Ops that save their *output* for backward: an in-place write into that output makes
# backward raise "modified by an inplace operation" (checked with torch 2.13).
SAVES_OUTPUT = frozenset(
    {
        "sigmoid",
        "tanh",
        "exp",
        "exp2",
        "expm1",
        "relu",
        "softmax",
        "log_softmax",
        "sqrt",
        "rsqrt",
        "reciprocal",
    }
)
_SAVES_OUTPUT_QUALNAMES = {
    *(f"torch.{n}" for n in SAVES_OUTPUT),
    *(f"torch.nn.functional.{n}" for n in ("sigmoid", "tanh", "relu", "softmax", "log_softmax")),
    "torch.special.expit",
    "torch.special.exp2",
    "torch.special.expm1",
    "torch.special.softmax",
    "torch.special.log_softmax",
}

# Methods / functions that return a value autograd no longer tracks.
CUT_METHODS = frozenset({"detach", "item", "numpy", "tolist", "detach_"})
CUT_FUNCTIONS = frozenset({"torch.tensor", "torch.from_numpy", "numpy.array", "numpy.asarray"})
LIST_CUT_FUNCTIONS = frozenset({"torch.as_tensor", "torch.Tensor", "torch.FloatTensor"})
CUT_BUILTINS = frozenset({"float", "int", "bool", "complex"})

# Gradient is absent (integer/bool result) or zero almost everywhere.
NONDIFF_NO_GRAD = frozenset(
    {
        "argmax",
        "argmin",
        "long",
        "int",
        "short",
        "byte",
        "bool",
        "char",
        "eq",
        "ne",
        "gt",
        "lt",
        "ge",
        "le",
        "nonzero",
        "argsort",
        "bucketize",
        "searchsorted",
    }
)
NONDIFF_ZERO_GRAD = frozenset({"round", "floor", "ceil", "sign", "trunc", "fix", "heaviside"})
NONDIFF_METHODS = NONDIFF_NO_GRAD | NONDIFF_ZERO_GRAD
INT_DTYPES = frozenset(
    {
        "torch.long",
        "torch.int",
        "torch.int64",
        "torch.int32",
        "torch.int16",
        "torch.int8",
        "torch.uint8",
        "torch.bool",
        "torch.short",
    }
)

# torch.nn layers without parameters (losses, activations, pooling, dropout, ...).
PARAM_FREE_LAYERS = frozenset(
    {
        "ReLU",
        "ReLU6",
        "LeakyReLU",
        "ELU",
        "SELU",
        "CELU",
        "GELU",
        "SiLU",
        "Mish",
        "Sigmoid",
        "Tanh",
        "Softmax",
        "Softmax2d",
        "LogSoftmax",
        "Softmin",
        "Softplus",
        "Softsign",
        "Softshrink",
        "Hardshrink",
        "Tanhshrink",
        "Hardtanh",
        "Hardswish",
        "Hardsigmoid",
        "LogSigmoid",
        "Threshold",
        "GLU",
        "Dropout",
        "Dropout1d",
        "Dropout2d",
        "Dropout3d",
        "AlphaDropout",
        "FeatureAlphaDropout",
        "Identity",
        "Flatten",
        "Unflatten",
        "MaxPool1d",
        "MaxPool2d",
        "MaxPool3d",
        "AvgPool1d",
        "AvgPool2d",
        "AvgPool3d",
        "AdaptiveAvgPool1d",
        "AdaptiveAvgPool2d",
        "AdaptiveAvgPool3d",
        "AdaptiveMaxPool1d",
        "AdaptiveMaxPool2d",
        "AdaptiveMaxPool3d",
        "LPPool1d",
        "LPPool2d",
        "FractionalMaxPool2d",
        "MaxUnpool1d",
        "MaxUnpool2d",
        "MaxUnpool3d",
        "Upsample",
        "UpsamplingNearest2d",
        "UpsamplingBilinear2d",
        "PixelShuffle",
        "PixelUnshuffle",
        "ChannelShuffle",
        "Fold",
        "Unfold",
        "ZeroPad1d",
        "ZeroPad2d",
        "ZeroPad3d",
        "ConstantPad1d",
        "ConstantPad2d",
        "ConstantPad3d",
        "ReflectionPad1d",
        "ReflectionPad2d",
        "ReflectionPad3d",
        "ReplicationPad1d",
        "ReplicationPad2d",
        "ReplicationPad3d",
        "CircularPad1d",
        "CircularPad2d",
        "CircularPad3d",
        "CosineSimilarity",
        "PairwiseDistance",
        "LocalResponseNorm",
        "CrossMapLRN2d",
    }
)

_PURE_BUILTINS = frozenset(
    {
        "len",
        "range",
        "enumerate",
        "zip",
        "min",
        "max",
        "sum",
        "abs",
        "list",
        "tuple",
        "sorted",
        "reversed",
        "isinstance",
        "print",
        "dict",
        "set",
        "map",
        "filter",
        "iter",
        "next",
        "getattr",
        "hasattr",
        "round",
        "str",
        "repr",
        "any",
        "all",
        "divmod",
        "pow",
        "type",
        "id",
        "super",
    }
)
_NO_RESULT_METHODS = frozenset({"backward", "zero_grad", "step", "append", "extend", "insert", "update"})
_SHAPE_ATTRS = frozenset(
    {
        "shape",
        "dtype",
        "device",
        "ndim",
        "grad",
        "is_cuda",
        "requires_grad",
        "grad_fn",
        "is_leaf",
        "training",
        "layout",
    }
)
_SHAPE_METHODS = frozenset(
    {
        "size",
        "dim",
        "numel",
        "nelement",
        "element_size",
        "stride",
        "type",
        "get_device",
        "is_contiguous",
        "data_ptr",
        "__len__",
    }
)
# methods only tensors have (so the receiver was a tensor, whatever we knew about it)
TENSOR_METHODS = frozenset(
    {
        "view",
        "reshape",
        "permute",
        "transpose",
        "flatten",
        "unflatten",
        "squeeze",
        "unsqueeze",
        "contiguous",
        "expand",
        "expand_as",
        "view_as",
        "reshape_as",
        "masked_fill",
        "clamp",
        "clamp_min",
        "clamp_max",
        "mean",
        "sum",
        "prod",
        "norm",
        "matmul",
        "bmm",
        "mm",
        "log",
        "pow",
        "abs",
        "neg",
        "float",
        "half",
        "double",
        "bfloat16",
        "gather",
        "scatter",
        "index_select",
        "narrow",
        "chunk",
        "split",
        "cumsum",
        "logsumexp",
        "max",
        "min",
        "std",
        "var",
        "t",
        "square",
        "masked_select",
        "repeat",
        "repeat_interleave",
        "flip",
        "roll",
    }
)
_NOT_WRITES = frozenset({"requires_grad_", "share_memory_", "retain_grad_"})
_LIST_MUTATORS = frozenset({"append", "extend", "insert", "add", "update", "setdefault"})
_LOSS_LIKE = ("loss", "crit", "metric", "criterion", "objective")


def is_param_free_layer(qualname: str | None) -> bool:
    if not qualname or not qualname.startswith("torch.nn."):
        return False
    last = qualname.rsplit(".", 1)[1]
    return last.endswith("Loss") or last in PARAM_FREE_LAYERS


class Value:
    """An abstract value (immutable)."""

    __slots__ = ("bits", "is_list", "names", "origins", "saved")

    def __init__(
        self,
        bits: int = 0,
        origins: tuple[ast.AST, ...] = (),
        names: frozenset[str] = frozenset(),
        saved: ast.Call | None = None,
        is_list: bool = False,
    ) -> None:
        self.bits = bits
        self.origins = origins
        self.names = names
        self.saved = saved
        self.is_list = is_list

    # -- questions ---------------------------------------------------------------------
    @property
    def tracked(self) -> bool:
        """Autograd may track this value (it reaches the graph of some parameters)."""
        return bool(self.bits & TRACKED)

    @property
    def live(self) -> bool:
        return bool(self.bits & LIVE)

    @property
    def grad_tensor(self) -> bool:
        """Demonstrably a tensor that autograd tracks (from parameters or layers, or a
        torch op on a value that may be tracked)."""
        return bool(self.bits & LIVE) or (self.bits & (OPAQUE | TENSOR)) == (OPAQUE | TENSOR)

    def only(self, bit: int) -> bool:
        """Has `bit` and nothing that could carry a gradient."""
        return bool(self.bits & bit) and not self.bits & TRACKED

    def origins_of(self, kind: str) -> list[ast.AST]:
        return [o for o in self.origins if getattr(o, "gg_flow_kind", None) == kind]

    def with_bits(self, bits: int) -> Value:
        return Value(bits, self.origins, self.names, None, self.is_list)

    def tensor(self) -> Value:
        """The value as used in arithmetic: object kinds dropped."""
        if not self.bits & _OBJECT_BITS and self.saved is None:
            return self
        return Value(self.bits & ~_OBJECT_BITS, self.origins, self.names, None, self.is_list)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        flags = [n for n, b in _BIT_NAMES if self.bits & b]
        return f"Value({'|'.join(flags) or '-'}, names={sorted(self.names)})"


_BIT_NAMES = [
    ("LIVE", LIVE),
    ("OPAQUE", OPAQUE),
    ("CUT", CUT),
    ("NONDIFF", NONDIFF),
    ("NOGRAD", NOGRAD),
    ("MODULE", MODULE),
    ("PUREMOD", PUREMOD),
    ("OBJ", OBJ),
    ("TENSOR", TENSOR),
]
EMPTY = Value()


def union(*values: Value) -> Value:
    values = tuple(v for v in values if v is not None)
    if not values:
        return EMPTY
    if len(values) == 1:
        return values[0]
    bits = 0
    origins: list[ast.AST] = []
    names: frozenset[str] = frozenset()
    is_list = False
    for v in values:
        bits |= v.bits
        for o in v.origins:
            if o not in origins and len(origins) < _MAX_ORIGINS:
                origins.append(o)
        if v.names:
            names = names | v.names if names else v.names
        is_list = is_list or v.is_list
    return Value(bits, tuple(origins), names, None, is_list)


def _mark(node: ast.AST, kind: str) -> ast.AST:
    node.gg_flow_kind = kind  # type: ignore[attr-defined]
    return node


def cut(value: Value, node: ast.AST) -> Value:
    """The value after a graph cut at `node`."""
    if value.bits & TRACKED:
        # did the cut demonstrably remove a gradient path (not just maybe)?
        node.gg_cut_live = bool(value.bits & LIVE) or getattr(node, "gg_cut_live", False)  # type: ignore[attr-defined]
        node.gg_cut_tensor = value.grad_tensor or getattr(node, "gg_cut_tensor", False)  # type: ignore[attr-defined]
        return Value(
            CUT | (value.bits & DETACHED),
            (_mark(node, "cut"),) + value.origins[: _MAX_ORIGINS - 1],
            value.names,
        )
    return value.tensor()


def nondiff(value: Value, node: ast.AST) -> Value:
    if value.bits & TRACKED:
        return Value(
            NONDIFF | (value.bits & DETACHED),
            (_mark(node, "nondiff"),) + value.origins[: _MAX_ORIGINS - 1],
            value.names,
        )
    return value.tensor()


def no_grad(value: Value, node: ast.AST) -> Value:
    if value.bits & TRACKED and not value.bits & (MODULE | PUREMOD):
        return Value(
            NOGRAD | (value.bits & DETACHED),
            (_mark(node, "nograd"),) + value.origins[: _MAX_ORIGINS - 1],
            value.names,
        )
    return value


class Flow:
    """The data flow of one function (or of a unit's script statements)."""

    def __init__(self, unit: Unit, func: FunctionNode | None) -> None:
        # the unit caches its flows: a weak reference back keeps trees free of cycles
        self.unit = weakref.proxy(unit)
        self.func = func
        self.module = unit.module
        self.env: dict[str, Value] = {}
        self.loads: dict[int, Value] = {}  # id(Name node) -> value read there
        self.calls: dict[int, Value] = {}  # id(Call node) -> its value
        self.returns: list[tuple[ast.Return, Value]] = []
        # (statement, name, value before) for in-place writes to a local name
        self.inplace: list[tuple[ast.AST, str, Value]] = []
        self._nograd: ast.AST | None = None
        self._self = None
        self._attrs: dict = {}
        self._class_has_weights = False
        self._method_names: set[str] = set()
        self._params: set[str] = set()
        self._plain_self: str | None = None
        self.params = self._params  # the function's parameter names (without self)
        self._setup()
        body = func.body if func is not None else unit.nodes
        if func is not None and unit.decorator_disables_grad(func):
            self._nograd = func
        self._block(body)
        self.final = dict(self.env)

    # -- set-up ------------------------------------------------------------------------------
    def _setup(self) -> None:
        func = self.func
        if func is None:
            for name in self.module.grad_leaves:
                self.env[name] = Value(LIVE, (), frozenset({name}))
            return
        args = func.args
        every = args.posonlyargs + args.args + args.kwonlyargs
        if args.vararg:
            every.append(args.vararg)
        if args.kwarg:
            every.append(args.kwarg)
        cls = self.unit.parent(func)
        if (
            isinstance(cls, ast.ClassDef)
            and self.module.is_module_class(cls.name)
            and self.unit.parent(cls) is None
        ):
            self._self = self_name(func)
            self._attrs = self.unit.class_attributes(cls)
            self._class_has_weights = any(
                info.kind in ("parameter", "layer", "grad_tensor") for info in self._attrs.values()
            )
            self._method_names = set(self.unit.methods(cls))
        elif isinstance(cls, ast.ClassDef) and not any(
            isinstance(d, ast.Name) and d.id == "staticmethod" for d in func.decorator_list
        ):
            self._plain_self = self_name(func)  # a Trainer-style object: its attributes are unknown objects
        for arg in every:
            if arg.arg == self._self:
                continue
            self._params.add(arg.arg)
            self.env[arg.arg] = Value(0, (), frozenset({arg.arg}))

    # -- statements ----------------------------------------------------------------------------
    def _block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self._stmt(stmt)

    def _branches(self, *blocks: list[ast.stmt]) -> None:
        """Run each block from the current environment; afterwards a name holds the union
        of what the branches (or the fall-through, for a missing block) left in it."""
        start = self.env
        results = []
        for block in blocks:
            self.env = dict(start)
            self._block(block)
            results.append(self.env)
        merged = dict(start)
        for env in results:
            for name, value in env.items():
                before = merged.get(name)
                merged[name] = value if before is None or before is value else union(before, value)
        self.env = merged

    def _stmt(self, stmt: ast.stmt) -> None:
        kind = stmt.__class__
        if kind is ast.Assign:
            value = self._eval(stmt.value)
            for target in stmt.targets:
                self._bind(target, value, stmt.value)
        elif kind is ast.AnnAssign:
            if stmt.value is not None:
                self._bind(stmt.target, self._eval(stmt.value), stmt.value)
        elif kind is ast.AugAssign:
            rhs = self._eval(stmt.value)
            target = stmt.target
            if isinstance(target, ast.Name):
                before = self.env.get(target.id, EMPTY)
                self.loads[id(target)] = before
                self.inplace.append((stmt, target.id, before))
                new = union(before.tensor(), rhs.tensor())
                if self._nograd is not None:
                    new = no_grad(new, self._nograd) if not before.tracked else before.tensor()
                self.env[target.id] = new
            else:
                self._write_into(target, rhs, stmt)
        elif kind is ast.Expr:
            self._eval(stmt.value)
            self._side_effects(stmt.value, stmt)
            mode = _grad_mode_switch(self.module, stmt.value)
            if mode is not None:  # `torch.set_grad_enabled(False)` as a statement: from here on
                self._nograd = None if mode else stmt
        elif kind in (ast.For, ast.AsyncFor):
            self._bind(stmt.target, _element(self._eval(stmt.iter)), stmt.iter)
            self._branches(stmt.body, [])
            self._block(stmt.orelse)
        elif kind is ast.While:
            self._eval(stmt.test)
            self._branches(stmt.body, [])
            self._block(stmt.orelse)
        elif kind is ast.If:
            self._eval(stmt.test)
            self._branches(stmt.body, stmt.orelse)
        elif kind in (ast.With, ast.AsyncWith):
            saved = self._nograd
            for item in stmt.items:
                value = self._eval(item.context_expr)
                if item.optional_vars is not None:
                    self._bind(item.optional_vars, value, item.context_expr)
                if self.unit.grad_disabling_context(item):
                    self._nograd = stmt
                elif _grad_enabling(self.module, item.context_expr):
                    self._nograd = None
            self._block(stmt.body)
            self._nograd = saved
        elif kind is ast.Try or kind.__name__ == "TryStar":
            self._block(stmt.body)
            self._branches(*[h.body for h in stmt.handlers], stmt.orelse)
            self._block(stmt.finalbody)
        elif kind is ast.Return:
            value = self._eval(stmt.value) if stmt.value is not None else EMPTY
            self.returns.append((stmt, value))
        elif kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            self.env[stmt.name] = Value(OBJ)
        elif kind.__name__ == "Match":
            self._eval(stmt.subject)
            self._branches(*[case.body for case in stmt.cases])
        elif kind in (
            ast.Assert,
            ast.Raise,
            ast.Delete,
            ast.Global,
            ast.Nonlocal,
            ast.Pass,
            ast.Break,
            ast.Continue,
            ast.Import,
            ast.ImportFrom,
        ):
            return
        else:  # pragma: no cover - future statement kinds
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.expr):
                    self._eval(child)

    def _bind(self, target: ast.expr, value: Value, source: ast.expr | None) -> None:
        if isinstance(target, ast.Name):
            if self._nograd is not None:
                value = no_grad(value, self._nograd)
            self.env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            if (
                isinstance(source, (ast.Tuple, ast.List))
                and len(source.elts) == len(target.elts)
                and not any(isinstance(e, ast.Starred) for e in target.elts)
            ):
                for sub_target, sub_source in zip(target.elts, source.elts):
                    self._bind(sub_target, self._eval(sub_source), sub_source)
            else:
                part = value.tensor() if not value.bits & (MODULE | PUREMOD) else value
                indices_at = 1 if len(target.elts) == 2 and _returns_indices(self.module, source) else -1
                for position, sub_target in enumerate(target.elts):
                    element = Value(part.bits, part.origins, part.names, None, False)
                    if position == indices_at:
                        element = nondiff(element, source)  # `_, pred = out.max(1)`: integer indices
                    self._bind(sub_target, element, None)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, value, None)
        elif isinstance(target, ast.Subscript):
            self._write_into(target, value, target)
        # attribute stores (self.x = ...) are not tracked locally

    def _write_into(self, target: ast.expr, value: Value, stmt: ast.AST) -> None:
        """`x[i] = v` / `x[i] += v`: x now also holds v."""
        base = target
        while isinstance(base, (ast.Subscript, ast.Attribute)):
            base = base.value
        if isinstance(base, ast.Name) and base.id in self.env:
            before = self.env[base.id]
            self.loads[id(base)] = before
            self.inplace.append((stmt, base.id, before))
            if isinstance(target, ast.Subscript):
                self._eval(target.slice)
            new = union(before, value.tensor())
            self.env[base.id] = Value(new.bits, new.origins, new.names, None, new.is_list)

    def _side_effects(self, expr: ast.expr, stmt: ast.AST) -> None:
        """`xs.append(v)` adds v to xs; `x.add_(v)` writes v into x."""
        if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute)):
            return
        receiver = expr.func.value
        if not isinstance(receiver, ast.Name) or receiver.id not in self.env:
            return
        attr = expr.func.attr
        if attr in _LIST_MUTATORS:
            before = self.env[receiver.id]
            added = union(*[self._eval(a) for a in expr.args]) if expr.args else EMPTY
            new = union(before, added.tensor())
            self.env[receiver.id] = Value(new.bits, new.origins, new.names, None, before.is_list)
        elif attr == "requires_grad_":
            flag = expr.args[0] if expr.args else keyword(expr, "requires_grad")
            if flag is None or (isinstance(flag, ast.Constant) and flag.value is True):
                before = self.env[receiver.id]
                self.env[receiver.id] = Value(before.bits | LIVE, before.origins, before.names)
        elif attr.endswith("_") and not attr.startswith("_") and attr not in _NOT_WRITES:
            before = self.env[receiver.id]
            self.inplace.append((stmt, receiver.id, before))
            added = union(*[self._eval(a) for a in expr.args]) if expr.args else EMPTY
            new = union(before.tensor(), added.tensor())
            if attr == "detach_":
                new = cut(before, expr)
            self.env[receiver.id] = new

    # -- expressions ---------------------------------------------------------------------------
    def value(self, expr: ast.expr) -> Value:
        """The value of an expression of this function, as of its place in the function."""
        recorded = self.calls.get(id(expr)) if isinstance(expr, ast.Call) else None
        if recorded is not None:
            return recorded
        if isinstance(expr, ast.Name):
            known = self.loads.get(id(expr))
            if known is not None:
                return known
        saved_env, saved_ng = self.env, self._nograd
        try:
            self.env = _LoadView(self.loads, self.final)
            stmt = self.unit.enclosing_statement(expr)
            self._nograd = self._nograd_at(stmt)
            return self._eval(expr)
        finally:
            self.env, self._nograd = saved_env, saved_ng

    def _nograd_at(self, node: ast.AST | None) -> ast.AST | None:
        for anc in ([node] if node is not None else []) + list(self.unit.ancestors(node) if node else []):
            if anc is self.func:
                return anc if self.func is not None and self.unit.decorator_disables_grad(self.func) else None
            if isinstance(anc, (ast.With, ast.AsyncWith)) and anc is not node:
                if any(self.unit.grad_disabling_context(i) for i in anc.items):
                    return anc
                if any(_grad_enabling(self.module, i.context_expr) for i in anc.items):
                    return None
        return None

    def _eval(self, node: ast.expr | None) -> Value:
        if node is None:
            return EMPTY
        kind = node.__class__
        if kind is ast.Name:
            return self._name(node)
        if kind is ast.Constant:
            return EMPTY
        if kind is ast.Call:
            value = self._call(node)
            if self._nograd is not None:
                value = no_grad(value, self._nograd)
            self.calls[id(node)] = value
            return value
        if kind is ast.Attribute:
            return self._attribute(node)
        if kind is ast.BinOp:
            value = union(self._eval(node.left).tensor(), self._eval(node.right).tensor())
            return no_grad(value, self._nograd) if self._nograd is not None else value
        if kind is ast.UnaryOp:
            value = self._eval(node.operand).tensor()
            if isinstance(node.op, ast.Not):
                return EMPTY
            return no_grad(value, self._nograd) if self._nograd is not None else value
        if kind is ast.Subscript:
            self._eval(node.slice)
            value = self._eval(node.value).tensor()
            index = node.slice
            if (
                isinstance(index, ast.Constant)
                and index.value == 1
                and _returns_indices(self.module, node.value)
            ):
                return nondiff(value, node)
            return Value(value.bits, value.origins, value.names) if value.is_list else value
        if kind is ast.Compare:
            operands = [self._eval(node.left)] + [self._eval(c) for c in node.comparators]
            if all(isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)) for op in node.ops):
                return EMPTY
            return nondiff(union(*[o.tensor() for o in operands]), node)
        if kind is ast.BoolOp:
            return union(*[self._eval(v).tensor() for v in node.values])
        if kind is ast.IfExp:
            self._eval(node.test)
            return union(self._eval(node.body), self._eval(node.orelse))
        if kind in (ast.List, ast.Tuple, ast.Set):
            value = union(*[self._eval(e).tensor() for e in node.elts])
            return Value(value.bits, value.origins, value.names, None, kind is ast.List)
        if kind is ast.Dict:
            for k in node.keys:
                self._eval(k)
            return union(*[self._eval(v).tensor() for v in node.values])
        if kind in (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp):
            return self._comprehension(node)
        if kind is ast.Starred:
            return self._eval(node.value)
        if kind is ast.NamedExpr:
            value = self._eval(node.value)
            self._bind(node.target, value, node.value)
            return value
        if kind is ast.Lambda:
            return Value(OBJ)
        if kind is ast.JoinedStr or kind is ast.FormattedValue:
            return EMPTY
        if kind is ast.Slice:
            self._eval(node.lower)
            self._eval(node.upper)
            self._eval(node.step)
            return EMPTY
        if kind in (ast.Await, ast.Yield, ast.YieldFrom):
            return self._eval(node.value)
        return EMPTY

    def _name(self, node: ast.Name) -> Value:
        name = node.id
        if isinstance(self.env, _LoadView):
            value = self.loads.get(id(node)) or self.env.get(name)
        else:
            value = self.env.get(name)
        if value is None:
            if name == self._self and self._self is not None:
                value = Value(MODULE if self._class_has_weights else OBJ, (), frozenset({name}))
            elif name in self.module.grad_leaves:
                value = Value(LIVE, (), frozenset({name}))
            elif self.module.is_module_class(name):
                value = Value(OBJ)  # the class itself; calling it builds a module
            else:
                value = Value(0, (), frozenset({name}))
        elif value.names and name not in value.names:
            value = Value(value.bits, value.origins, value.names | {name}, value.saved, value.is_list)
        elif not value.names:
            value = Value(value.bits, value.origins, frozenset({name}), value.saved, value.is_list)
        if isinstance(node.ctx, ast.Load):
            self.loads[id(node)] = value
        return value

    def _attribute(self, node: ast.Attribute) -> Value:
        base = node.value
        attr = node.attr
        if self._self is not None and isinstance(base, ast.Name) and base.id == self._self:
            info = self._attrs.get(attr)
            if info is None:
                if attr in self._method_names:
                    return Value(OBJ)
                return Value(OPAQUE | OBJ)
            if info.kind in ("parameter", "grad_tensor"):
                return Value(LIVE, (), frozenset({f"{base.id}.{attr}"}))
            if info.kind == "layer":
                return Value(PUREMOD if is_param_free_layer(info.ctor) else MODULE)
            if info.kind == "buffer":
                return EMPTY
            return Value(OPAQUE | OBJ) if isinstance(info.value, ast.Call) else EMPTY
        if self._plain_self is not None and isinstance(base, ast.Name) and base.id == self._plain_self:
            return Value(OBJ | OPAQUE, (), frozenset({f"{base.id}.{attr}"}))
        if (
            self.module.qualname(node) is not None
            and isinstance(_root(node), ast.Name)
            and _root(node).id not in self.env
        ):
            return EMPTY  # torch.float32, np.pi, ...
        value = self._eval(base)
        if attr == "data":
            return cut(value, node)
        if attr == "indices" and _returns_indices(self.module, base):
            return nondiff(value, node)
        if attr in _SHAPE_ATTRS:
            return EMPTY
        if value.bits & MODULE:
            return Value(MODULE | OPAQUE, (), value.names)
        if value.bits & OBJ:
            return Value(OBJ | OPAQUE, (), value.names)
        return value.tensor()

    def _args(self, call: ast.Call) -> Value:
        parts = [self._eval(a).tensor() for a in call.args]
        parts += [self._eval(k.value).tensor() for k in call.keywords]
        value = union(*parts)
        return Value(value.bits, value.origins, value.names) if value.is_list else value

    def _call(self, call: ast.Call) -> Value:
        func = call.func
        module = self.module
        qual = module.qualname(func)
        if qual is not None and not (isinstance(_root(func), ast.Name) and _root(func).id in self.env):
            return self._known_call(call, qual)
        if isinstance(func, ast.Attribute):
            return self._method_call(call, func)
        if isinstance(func, ast.Name):
            name = func.id
            if name not in self.env and name != self._self:
                if name in CUT_BUILTINS:
                    return cut(self._args(call), call)
                if name in _PURE_BUILTINS:
                    return self._args(call)
                if module.is_module_class(name):
                    self._args(call)
                    return Value(MODULE)
                if name in module.classes:
                    self._args(call)
                    return Value(OBJ | OPAQUE)
            callee = self._name(func)
            args = self._args(call)
            if callee.bits & MODULE:
                return union(Value(LIVE | TENSOR), args)
            if callee.bits & PUREMOD:
                return args.with_bits(args.bits | TENSOR) if args.bits & TRACKED else args
            if any(word in name.lower() for word in _LOSS_LIKE):
                return args
            return union(Value(OPAQUE | OBJ), args)
        callee = self._eval(func)
        args = self._args(call)
        if callee.bits & MODULE:
            return union(Value(LIVE), args)
        if callee.bits & PUREMOD:
            return args
        return union(Value(OPAQUE | OBJ), args)

    def _known_call(self, call: ast.Call, qual: str) -> Value:
        module = self.module
        if module.is_parameter_constructor(call) or creates_grad_leaf(call, module):
            args = self._args(call)
            if qual in CUT_FUNCTIONS and args.bits & (TRACKED | CUT):
                # `torch.tensor(loss.item(), requires_grad=True)`: a new leaf; backward runs
                # but stops at it, nothing reaches the model
                return cut(args, call) if args.bits & TRACKED else args.tensor()
            return Value(LIVE)
        if module.is_layer_constructor(call):
            self._args(call)
            return Value(PUREMOD if is_param_free_layer(qual) else MODULE)
        args = self._args(call)
        if qual in CUT_FUNCTIONS:
            call.gg_rewrap = True  # type: ignore[attr-defined]
            return cut(args, call) if call.args else args
        if qual in LIST_CUT_FUNCTIONS:
            first = call.args[0] if call.args else None
            if isinstance(first, (ast.List, ast.Tuple, ast.ListComp)) or args.is_list:
                call.gg_rewrap = True  # type: ignore[attr-defined]
                return cut(args, call)
            return args
        if qual.startswith("torch."):
            last = qual.rsplit(".", 1)[1]
            if last in NONDIFF_METHODS and qual.count(".") == 1:
                return nondiff(args, call)
            if qual in _SAVES_OUTPUT_QUALNAMES:
                return Value(args.bits, args.origins, args.names, call)
            if qual.startswith(("torch.optim", "torch.utils")):
                return Value(OBJ)
            if last[:1].isupper():  # torch.autograd.Variable(...), torch.distributions.Normal(...)
                return Value(OBJ) if not args.bits & (TRACKED | DETACHED) else args
            return args.with_bits(args.bits | TENSOR) if args.bits & TRACKED else args
        # another library (numpy, math, torchvision, ...): may build models or tensors
        root = qual.split(".")[0]
        if root == "numpy":
            return cut(args, call)  # numpy arrays never carry gradients
        if root in ("math", "random", "statistics", "operator"):
            return args
        return union(Value(OPAQUE | OBJ), args)

    def _method_call(self, call: ast.Call, func: ast.Attribute) -> Value:
        attr = func.attr
        if self._self is not None and isinstance(func.value, ast.Name) and func.value.id == self._self:
            # self.fc(x) / self.loss(a, b) / self.helper(x)
            callee = self._attribute(func)
            args = self._args(call)
            if callee.bits & MODULE:
                return union(Value(LIVE | TENSOR), args)
            if callee.bits & PUREMOD:
                return args.with_bits(args.bits | TENSOR) if args.bits & TRACKED else args
            return union(Value(OPAQUE | OBJ), args)
        if (
            self._plain_self is not None
            and isinstance(func.value, ast.Name)
            and func.value.id == self._plain_self
        ):
            # `self.model(x)` / `self.criterion(out, y)` in a Trainer-style class
            args = self._args(call)
            if any(word in attr.lower() for word in _LOSS_LIKE):
                return args
            return union(Value(OPAQUE | OBJ), args)
        receiver = self._eval(func.value)
        args = self._args(call)
        if attr in CUT_METHODS:
            return cut(receiver, call)
        if attr in NONDIFF_METHODS:
            return nondiff(receiver, call)
        if attr in ("to", "type") and self._int_dtype(call):
            return nondiff(receiver, call)
        if attr in _NO_RESULT_METHODS:
            return EMPTY
        if attr in _SHAPE_METHODS:
            return EMPTY
        if receiver.bits & MODULE:
            if attr in ("parameters", "named_parameters"):
                return Value(LIVE)
            if attr in ("eval", "train", "to", "cuda", "cpu", "float", "half", "double", "requires_grad_"):
                return receiver
            return union(Value(LIVE), args)
        if receiver.bits & PUREMOD:
            return args
        if receiver.bits & OBJ and attr not in SAVES_OUTPUT and attr not in TENSOR_METHODS:
            if any(word in attr.lower() for word in _LOSS_LIKE):
                return args  # `self.criterion(out, y)`: a loss function adds no tracking
            return union(Value(OPAQUE | OBJ), args)
        if attr == "requires_grad_":
            return union(Value(LIVE), receiver.tensor())
        value = union(receiver.tensor(), args)
        if attr in SAVES_OUTPUT or attr in TENSOR_METHODS:
            bits = value.bits | TENSOR if value.bits & TRACKED else value.bits
            return Value(bits, value.origins, value.names, call if attr in SAVES_OUTPUT else None)
        return Value(value.bits, value.origins, value.names, None, attr == "copy" and receiver.is_list)

    def _int_dtype(self, call: ast.Call) -> bool:
        for arg in [*call.args, keyword(call, "dtype")]:
            if arg is not None and self.module.qualname(arg) in INT_DTYPES:
                return True
        return False

    def _comprehension(self, node: ast.AST) -> Value:
        saved = self.env
        self.env = dict(saved) if not isinstance(saved, _LoadView) else saved
        try:
            for gen in node.generators:  # type: ignore[attr-defined]
                iterated = _element(self._eval(gen.iter))
                if not isinstance(self.env, _LoadView):
                    self._bind(gen.target, iterated, None)
                for cond in gen.ifs:
                    self._eval(cond)
            if isinstance(node, ast.DictComp):
                self._eval(node.key)
                value = self._eval(node.value).tensor()
            else:
                value = self._eval(node.elt).tensor()  # type: ignore[attr-defined]
        finally:
            self.env = saved
        return Value(value.bits, value.origins, value.names, None, isinstance(node, ast.ListComp))


class _LoadView(dict):
    """Name lookup for `Flow.value`: the value recorded at that Name node, else the final one."""

    def __init__(self, loads: dict[int, Value], final: dict[str, Value]) -> None:
        super().__init__(final)
        self._loads = loads


_GRAD_ENABLING = {"torch.enable_grad", "torch.autograd.enable_grad", "torch.autograd.grad_mode.enable_grad"}


def _grad_mode_switch(module, expr: ast.expr) -> bool | None:
    """`torch.set_grad_enabled(False)` -> False, `(True)` -> True, anything else -> None."""
    if not isinstance(expr, ast.Call):
        return None
    if module.call_name(expr) not in ("torch.set_grad_enabled", "torch.autograd.set_grad_enabled"):
        return None
    arg = expr.args[0] if expr.args else keyword(expr, "mode")
    if isinstance(arg, ast.Constant) and isinstance(arg.value, bool):
        return arg.value
    return None


def _grad_enabling(module, expr: ast.expr) -> bool:
    """`torch.enable_grad()`, `torch.set_grad_enabled(True)`, `torch.inference_mode(False)`."""
    if not isinstance(expr, ast.Call):
        return False
    name = module.call_name(expr)
    if name in _GRAD_ENABLING:
        return True
    arg = expr.args[0] if expr.args else keyword(expr, "mode")
    if name in ("torch.set_grad_enabled", "torch.autograd.set_grad_enabled"):
        return isinstance(arg, ast.Constant) and arg.value is True
    if name in ("torch.inference_mode", "torch.autograd.inference_mode", "torch.no_grad"):
        return isinstance(arg, ast.Constant) and arg.value is False
    return False


_VALUES_AND_INDICES = frozenset(
    {"max", "min", "topk", "sort", "kthvalue", "mode", "median", "cummax", "cummin"}
)
_ALWAYS_INDICES = frozenset({"topk", "sort", "kthvalue", "mode", "cummax", "cummin"})


def _returns_indices(module, node: ast.AST | None) -> bool:
    """`x.max(1)`, `torch.max(x, dim=1)`, `x.topk(k)`, `torch.sort(x)`: a (values, indices) pair."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    qual = module.qualname(func)
    if qual is not None:
        if not qual.startswith("torch.") or qual.count(".") != 1:
            return False
        name = qual.rsplit(".", 1)[1]
        extra = len(node.args) - 1
    elif isinstance(func, ast.Attribute):
        name = func.attr
        extra = len(node.args)
    else:
        return False
    if name not in _VALUES_AND_INDICES:
        return False
    return name in _ALWAYS_INDICES or extra >= 1 or keyword(node, "dim") is not None


def _element(container: Value) -> Value:
    """What iterating over a value gives: the layers of a ModuleList/Sequential are
    layers; elements of a tensor or list carry its bits."""
    if container.bits & MODULE:
        return Value(MODULE | OPAQUE, (), container.names)
    value = container.tensor()
    return Value(value.bits, value.origins, value.names)


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


# -- cheap text pre-filters ---------------------------------------------------------------------
def node_text(unit: Unit, node: ast.AST) -> str:
    """The source lines a statement spans (a fast superset check before any walking)."""
    cache = unit.__dict__.setdefault("_text_cache", {})
    key = id(node)
    text = cache.get(key)
    if text is None:
        start = getattr(node, "lineno", 1)
        decorators = getattr(node, "decorator_list", None)
        if decorators:
            start = min(start, *(d.lineno for d in decorators))
        end = getattr(node, "end_lineno", None) or start
        text = cache[key] = "".join(unit.source.lines[start - 1 : end])
    return text


def unit_text(unit: Unit) -> str:
    """The source lines of the unit (for a script unit, everything between its first and
    last statement: a superset, which is all a pre-filter needs)."""
    cache = unit.__dict__.get("_unit_text")
    if cache is None:
        first, last = unit.nodes[0], unit.nodes[-1]
        start = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", ()))])
        cache = unit.__dict__["_unit_text"] = "".join(
            unit.source.lines[start - 1 : last.end_lineno or last.lineno]
        )
    return cache


# -- access ------------------------------------------------------------------------------------
def flow_of(unit: Unit, func: FunctionNode | None) -> Flow:
    """The (cached) flow of `func`, or of the unit's script statements when func is None."""
    cache = unit.__dict__.setdefault("_flow_cache", {})
    key = id(func) if func is not None else None
    flow = cache.get(key)
    if flow is None:
        flow = cache[key] = Flow(unit, func)
    return flow


def value_at(unit: Unit, expr: ast.expr) -> Value:
    """The value of `expr` in its enclosing function (or the script statements)."""
    return flow_of(unit, unit.enclosing_function(expr)).value(expr)


def backward_calls(unit: Unit) -> Iterator[tuple[ast.Call, Value]]:
    """`<x>.backward(...)` calls of the unit with the value of `<x>`. `backward` methods
    called on objects (`accelerator.backward(loss)`) are skipped."""
    if ".backward(" not in unit_text(unit):
        return
    for call in unit.method_calls("backward"):
        func = call.func
        assert isinstance(func, ast.Attribute)
        if call.args and not call.keywords:
            # `accelerator.backward(loss)`: an object's method, not a tensor's (a tensor's
            # gradient argument is rare and then we simply do not look)
            continue
        yield call, value_at(unit, func.value)


def forward_functions(unit: Unit) -> list[FunctionNode]:
    """`forward` of every nn.Module subclass of the unit."""
    found = []
    for cls in unit.module_classes():
        method = unit.methods(cls).get("forward")
        if method is not None:
            found.append(method)
    return found


def describe(node: ast.AST, unit: Unit, limit: int = 40) -> str:
    """Short source text of a node for messages."""
    text = " ".join(unit.segment(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def walk_function(func: ast.AST) -> Iterator[ast.AST]:
    """Nodes of a function without descending into nested functions, classes and lambdas."""
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(node))


def derives_from(unit: Unit, func: FunctionNode | None, name: str) -> frozenset[str]:
    """Local names the final value of `name` in `func` was computed from."""
    value = flow_of(unit, func).final.get(name)
    return value.names if value is not None else frozenset()


def masked_write(stmt: ast.AST | None) -> tuple[ast.Subscript, str] | None:
    """`x[mask] = v` with a boolean mask: a comparison involving `x` itself, `~m`, or an
    `&`/`|` of such masks. Returns (the subscript target, "x"); None for anything else
    (slices, integer indices, a bare name used as an index). GG202 reports these writes,
    and GG204 leaves them to it."""
    if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
        return None
    target = stmt.targets[0]
    if not isinstance(target, ast.Subscript) or not isinstance(target.value, ast.Name):
        return None
    name = target.value.id
    return (target, name) if _is_mask(target.slice, name) else None


def _is_mask(mask: ast.expr, name: str) -> bool:
    if isinstance(mask, ast.Compare):
        return any(isinstance(n, ast.Name) and n.id == name for n in [mask.left, *mask.comparators])
    if isinstance(mask, ast.UnaryOp) and isinstance(mask.op, ast.Invert):
        return _is_mask(mask.operand, name) or isinstance(mask.operand, ast.Name)
    if isinstance(mask, ast.BinOp) and isinstance(mask.op, (ast.BitAnd, ast.BitOr)):
        return _is_mask(mask.left, name) or _is_mask(mask.right, name)
    return False
