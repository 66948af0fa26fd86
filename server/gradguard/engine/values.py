"""The lattice of abstract values: what a name may hold at one point of a program.

A `Value` is a set of possible *kinds* (tensor, parameter, buffer, module, optimizer,
list of ..., Python int, None, ...) plus the facts that matter to autograd when it is a
tensor. Unknown is always allowed: `UNKNOWN` may be anything, every fact left at its
"don't know" default. Rules report only on facts that are known.

Tensor facts:

* `grad`: whether the tensor requires grad — `NO`, `MAYBE`, `YES`.
* `leaf`: whether it is a leaf of the graph (`NO`, `MAYBE`, `YES`); a leaf that requires
  grad rejects in-place writes.
* `sources`: the roots (parameters, modules, grad leaves, forward's inputs) the value is
  computed from through differentiable ops — where its gradient goes.
* `cuts`: where the graph was cut on the way (`.detach()` on line N, `.item()`, `.data`,
  a `torch.tensor(...)` re-wrap, `torch.no_grad()`, a non-differentiable op such as
  `argmax`), with `blocked`: the roots that the cuts disconnected.
* `dtype`, `shape`: when known. `shape` is a `symshape.Shape` (see `gradguard.engine.shape_flow`):
  a tensor's shape, or the dimensions of a `torch.Size`.
* `sites`/`roots`: the allocation sites (the expression nodes that created the tensor
  object) the value may be, and the sites of the tensors it may be a view of — the
  identity used to follow in-place writes to tensors an op saved for backward.
* `live`: whether a useful (not all-zero) gradient may flow back through the value to
  something other than its `sources` (an operand of unknown grad status, an argument no
  caller shows), when that is known to differ from `grad` (None: not known; see `live_grad`).
  The output of an op whose gradient is zero almost everywhere (`round`, `sign`, ...)
  requires grad, yet sends back none.
* `saves`: the graph behind this value holds tensors saved for backward (a layer, `x * w`,
  `sigmoid`, ...); a graph of `sum`/`add`/views only can be backpropagated twice.
* `stale`: the `backward()` calls (their nodes) that already freed part of the graph
  behind this value — a `backward()` through it raises "Trying to backward through the
  graph a second time" (a graph built before a loop, a hidden state carried from the
  previous iteration, a loss backpropagated twice).

Shape facts (filled by `gradguard.engine.shape_flow`; None when unknown):

* `dim`: the `symshape.Dim` an int-valued value holds (`4`, `b`, `config.n_embd`, `c // 2`).
* `layer`: for a module, what shapes it computes: a `shape_flow.Layer` (a torch.nn layer with
  its bound constructor arguments) or a `shape_flow.Instance` (a module class of this file,
  built with these constructor arguments).

Values are immutable; `evolve` makes a changed copy and `join` merges the values that
reach one point from several paths ("either": a buffer in one branch and a parameter in
the other is both, never the last one written).
"""

from __future__ import annotations

import ast

from gradguard.engine.symshape import Dim as _Dim
from gradguard.engine.symshape import Shape as _Shape

# -- kinds (a bit set: a value may be one of several) ----------------------------------------
TENSOR = 1 << 0
PARAMETER = 1 << 1  # always together with TENSOR
BUFFER = 1 << 2  # always together with TENSOR
MODULE = 1 << 3  # an nn.Module instance (`cls` says which class)
OPTIMIZER = 1 << 4
SCHEDULER = 1 << 5
FUNCTION_CLASS = 1 << 6  # a torch.autograd.Function subclass itself
FUNCTION_INSTANCE = 1 << 7  # `Fn()`: an instance (calling it is the legacy, broken API)
CTX = 1 << 8  # the `ctx` of a custom Function
INT = 1 << 9
FLOAT = 1 << 10
BOOL = 1 << 11
STR = 1 << 12
NONE = 1 << 13
LIST = 1 << 14
TUPLE = 1 << 15
DICT = 1 << 16
CLASS = 1 << 17  # a class object (a module class: calling it builds a module)
CALLABLE = 1 << 18  # a function or lambda
NUMPY = 1 << 19  # a numpy array (never carries gradients)
OBJECT = 1 << 20  # some other object
SIZE = 1 << 21  # a torch.Size / shape tuple
REF = 1 << 22  # a named object reached through an import (`torch`, `nn.Linear`): `cls` is its qualified name

ANY = (1 << 23) - 1
NUMBER = INT | FLOAT | BOOL
CONTAINER = LIST | TUPLE | DICT
PYTHON_SCALAR = NUMBER | STR | NONE

_KIND_NAMES = (
    (PARAMETER, "parameter"),
    (BUFFER, "buffer"),
    (TENSOR, "tensor"),
    (MODULE, "module"),
    (OPTIMIZER, "optimizer"),
    (SCHEDULER, "lr scheduler"),
    (FUNCTION_CLASS, "autograd.Function class"),
    (FUNCTION_INSTANCE, "autograd.Function instance"),
    (CTX, "ctx"),
    (INT, "int"),
    (FLOAT, "float"),
    (BOOL, "bool"),
    (STR, "str"),
    (NONE, "None"),
    (LIST, "list"),
    (TUPLE, "tuple"),
    (DICT, "dict"),
    (CLASS, "class"),
    (CALLABLE, "function"),
    (NUMPY, "numpy array"),
    (OBJECT, "object"),
    (SIZE, "torch.Size"),
    (REF, "reference"),
)

# -- three-valued facts -----------------------------------------------------------------------
NO = 0
MAYBE = 1
YES = 2


def join3(a: int, b: int) -> int:
    return a if a == b else MAYBE


# How the graph was cut (the `kind` of a Cut).
DETACH = "detach"  # .detach(), .detach_()
ITEM = "item"  # .item(), .tolist(), float(t), int(t)
NUMPY_CUT = "numpy"  # .numpy(), np.array(t)
DATA = "data"  # .data
REWRAP = "rewrap"  # torch.tensor(t) / torch.as_tensor([t, ...]) copies without history
NO_GRAD = "no_grad"  # computed under torch.no_grad() / inference_mode()
NONDIFF = "nondiff"  # argmax, comparisons, integer casts: no gradient at all
ZERO_GRAD = "zero_grad"  # round, floor, sign, ...: gradient zero almost everywhere

MAX_CUTS = 4


class Cut:
    """One place where the graph was cut, and the roots (`Value.sources`) it disconnected."""

    __slots__ = ("blocked", "bypassed", "kind", "node")

    def __init__(
        self, kind: str, node: ast.AST, blocked: frozenset = frozenset(), bypassed: bool = False
    ) -> None:
        self.kind = kind
        self.node = node
        self.blocked = blocked
        # another operand reaches every root it blocked through differentiable ops (the detached
        # term of a straight-through estimator, `x + (torch.round(x) - x).detach()`): the cut is
        # kept (a constant term of a loss is still one) but it is no cause of a loss that is dead
        self.bypassed = bypassed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cut) and other.kind == self.kind and other.node is self.node

    def __hash__(self) -> int:
        return hash((self.kind, id(self.node)))

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Cut({self.kind}@{getattr(self.node, 'lineno', '?')})"


_EMPTY: frozenset = frozenset()


class Value:
    """An abstract value (immutable; share freely)."""

    __slots__ = (
        "attrs",
        "blocked",
        "cls",
        "cuts",
        "dim",
        "dtype",
        "elem",
        "grad",
        "items",
        "kinds",
        "layer",
        "leaf",
        "live",
        "names",
        "node",
        "roots",
        "shape",
        "sites",
        "sources",
        "saves",
        "stale",
        "unsaved",
    )

    def __init__(
        self,
        kinds: int = ANY,
        *,
        grad: int = MAYBE,
        leaf: int = MAYBE,
        sources: frozenset = _EMPTY,
        cuts: tuple = (),
        blocked: frozenset = _EMPTY,
        dtype: str | None = None,
        shape: object = None,
        sites: frozenset = _EMPTY,
        roots: frozenset = _EMPTY,
        stale: frozenset = _EMPTY,
        saves: bool = False,
        names: frozenset = _EMPTY,
        cls: str | None = None,
        elem: Value | None = None,
        items: tuple | None = None,
        node: ast.AST | None = None,
        attrs: tuple | None = None,
        unsaved: frozenset = _EMPTY,
        dim: _Dim | None = None,
        layer: object = None,
        live: int | None = None,
    ) -> None:
        self.kinds = kinds
        self.grad = grad
        self.leaf = leaf
        self.sources = sources
        self.cuts = cuts
        self.blocked = blocked
        self.dtype = dtype
        self.shape = shape
        self.sites = sites
        self.roots = roots
        self.stale = stale
        self.saves = saves
        self.names = names
        # MODULE / CLASS / FUNCTION_*: the class (a qualified name such as "torch.nn.Linear",
        # or the name of a class of this file); OPTIMIZER: the optimizer class
        self.cls = cls
        # containers: what their elements hold (`items` for a tuple/list of known length)
        self.elem = elem
        self.items = items
        # CALLABLE: the function/lambda node (`elem`: the bound `self` of a method); CLASS: the
        # ClassDef when local
        self.node = node
        # an instance of a class of the file: ((attribute, value), ...) its constructor set
        self.attrs = attrs
        # (root, Saved) pairs that do not apply to this value: after `if c: y = f(x)` the
        # record of `f` saving `x` belongs to the path on which the name no longer holds `x`
        self.unsaved = unsaved
        self.dim = dim
        self.layer = layer
        self.live = live

    # -- kinds ----------------------------------------------------------------------------
    def may_be(self, kinds: int) -> bool:
        return bool(self.kinds & kinds)

    def is_only(self, kinds: int) -> bool:
        """Certainly one of `kinds` (and known)."""
        return self.kinds != ANY and not self.kinds & ~kinds and self.kinds != 0

    @property
    def known(self) -> bool:
        return self.kinds != ANY

    @property
    def is_tensor(self) -> bool:
        return self.is_only(TENSOR | PARAMETER | BUFFER)

    @property
    def is_parameter(self) -> bool:
        return self.is_only(TENSOR | PARAMETER) and bool(self.kinds & PARAMETER)

    @property
    def is_buffer(self) -> bool:
        return self.is_only(TENSOR | BUFFER) and bool(self.kinds & BUFFER)

    @property
    def is_module(self) -> bool:
        return self.is_only(MODULE)

    @property
    def is_optimizer(self) -> bool:
        return self.is_only(OPTIMIZER)

    # -- autograd ---------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        """Certainly a tensor that requires grad."""
        return (
            self.grad == YES and self.kinds & TENSOR != 0 and not self.kinds & ~(TENSOR | PARAMETER | BUFFER)
        )

    @property
    def may_require_grad(self) -> bool:
        return self.grad != NO and bool(self.kinds & (TENSOR | PARAMETER | BUFFER)) or self.kinds == ANY

    @property
    def no_grad(self) -> bool:
        """Certainly carries no gradient (a tensor that does not require grad, or no tensor)."""
        return self.grad == NO

    @property
    def graph_leaf(self) -> bool:
        return self.leaf == YES

    def cuts_of(self, *kinds: str) -> list[Cut]:
        return [c for c in self.cuts if c.kind in kinds]

    # -- copies ------------------------------------------------------------------------------
    def evolve(self, **changes: object) -> Value:
        new = _copy(self)
        for slot, value in changes.items():
            setattr(new, slot, value)
        if new.live is not None and "grad" in changes and "live" not in changes:
            new.live = None  # a grad set from something else: what flows back is that grad
        return new

    def attribute(self, name: str) -> Value | None:
        if self.attrs:
            for key, value in self.attrs:
                if key == name:
                    return value
        return None

    def named_all(self, names: frozenset) -> Value:
        if not names or names <= self.names:
            return self
        return self.evolve(names=self.names | names)

    def named(self, name: str) -> Value:
        if name in self.names:
            return self
        return self.evolve(names=self.names | {name} if self.names else frozenset((name,)))

    def describe_kind(self) -> str:
        if self.kinds == ANY:
            return "unknown"
        words = []
        kinds = self.kinds
        for bit, word in _KIND_NAMES:
            if kinds & bit:
                words.append(word)
                kinds &= ~bit
                if bit in (PARAMETER, BUFFER):
                    kinds &= ~TENSOR
        text = " or ".join(words) or "nothing"
        if self.cls and self.kinds & (MODULE | CLASS | OPTIMIZER | SCHEDULER):
            text += f" ({self.cls})"
        if self.elem is not None and self.kinds & CONTAINER:
            text += f" of {self.elem.describe_kind()}"
        return text

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        parts = [self.describe_kind()]
        if self.kinds & (TENSOR | PARAMETER | BUFFER):
            parts.append(("no", "maybe", "yes")[self.grad] + " grad")
            if self.leaf != MAYBE:
                parts.append("leaf" if self.leaf == YES else "non-leaf")
            if self.sources:
                parts.append(
                    "from " + ",".join(sorted(f"L{getattr(n, 'lineno', '?')}" for n in self.sources))
                )
            if self.blocked:
                parts.append(
                    "blocked " + ",".join(sorted(f"L{getattr(n, 'lineno', '?')}" for n in self.blocked))
                )
            if self.stale:
                parts.append("stale")
            if self.cuts:
                parts.append("cut " + ",".join(repr(c) for c in self.cuts))
            if self.dtype:
                parts.append(self.dtype)
            if self.shape is not None:
                parts.append(str(self.shape))
        if self.dim is not None:
            parts.append(f"dim {self.dim}")
        return f"Value({'; '.join(parts)})"


def _make_copy():
    """`_copy(value)`: a new Value with the same slots, assigned one by one (straight-line code,
    about twice as fast as a loop of getattr/setattr; `evolve` runs for most values)."""
    lines = ["def _copy(self):", "    new = _new(Value)"]
    lines += [f"    new.{slot} = self.{slot}" for slot in Value.__slots__]
    lines.append("    return new")
    namespace = {"Value": Value, "_new": object.__new__}
    exec("\n".join(lines), namespace)  # noqa: S102 - generated from __slots__ only
    return namespace["_copy"]


_copy = _make_copy()

UNKNOWN = Value()
NOTHING = Value(0, grad=NO, leaf=NO)  # no value (an unbound name on some path)
NONE_VALUE = Value(NONE, grad=NO, leaf=NO)
INT_VALUE = Value(INT, grad=NO, leaf=NO)
FLOAT_VALUE = Value(FLOAT, grad=NO, leaf=NO)
BOOL_VALUE = Value(BOOL, grad=NO, leaf=NO)
STR_VALUE = Value(STR, grad=NO, leaf=NO)
OBJECT_VALUE = Value(OBJECT, grad=NO, leaf=NO)
SIZE_VALUE = Value(SIZE, grad=NO, leaf=NO)


def scalar(kind: int) -> Value:
    return {INT: INT_VALUE, FLOAT: FLOAT_VALUE, BOOL: BOOL_VALUE, STR: STR_VALUE, NONE: NONE_VALUE}.get(
        kind, Value(kind, grad=NO, leaf=NO)
    )


def _union_cuts(a: tuple, b: tuple) -> tuple:
    """The cuts of either value; one cut seen through two paths keeps every root it blocked."""
    if not a:
        return b
    if not b or a is b:
        return a
    merged = list(a)
    for cut in b:
        for index, existing in enumerate(merged):
            if existing == cut:
                bypassed = existing.bypassed and cut.bypassed
                if not cut.blocked <= existing.blocked or bypassed != existing.bypassed:
                    merged[index] = Cut(cut.kind, cut.node, existing.blocked | cut.blocked, bypassed)
                break
        else:
            if len(merged) < MAX_CUTS:
                merged.append(cut)
    return tuple(merged)


def _union(a: frozenset, b: frozenset) -> frozenset:
    if not a:
        return b
    if not b or a is b:
        return a
    return a | b


def join(a: Value, b: Value) -> Value:
    """The value that may be either `a` or `b`."""
    if a is b:
        return a
    if a is NOTHING or a.kinds == 0:
        return b
    if b is NOTHING or b.kinds == 0:
        return a
    elem = (
        a.elem if b.elem is None or a.elem is b.elem else (b.elem if a.elem is None else join(a.elem, b.elem))
    )
    items = a.items if a.items == b.items else None
    if items is None and a.items is not None and b.items is not None and len(a.items) == len(b.items):
        items = tuple(join(x, y) for x, y in zip(a.items, b.items, strict=True))
    return Value(
        a.kinds | b.kinds,
        grad=join3(a.grad, b.grad),
        leaf=join3(a.leaf, b.leaf),
        sources=_union(a.sources, b.sources),
        cuts=_union_cuts(a.cuts, b.cuts),
        blocked=_union(a.blocked, b.blocked),
        dtype=a.dtype if a.dtype == b.dtype else None,
        shape=a.shape if a.shape is b.shape or a.shape == b.shape else _join_shape(a.shape, b.shape),
        sites=_union(a.sites, b.sites),
        roots=_union(a.roots, b.roots),
        stale=_union(a.stale, b.stale),
        saves=a.saves or b.saves,
        names=_union(a.names, b.names),
        cls=a.cls if a.cls == b.cls else None,
        elem=elem,
        items=items,
        node=a.node if a.node is b.node else None,
        attrs=a.attrs if a.attrs is b.attrs else None,
        unsaved=_join_unsaved(a, b),
        dim=a.dim if a.dim is b.dim or a.dim == b.dim else None,
        layer=a.layer if a.layer is b.layer or a.layer == b.layer else None,
        live=join3(live_grad(a), live_grad(b)),
    )


def live_grad(value: Value) -> int:
    """Whether a useful (not all-zero) gradient may flow back through the value to something
    other than its `sources` (`NO`, `MAYBE`, `YES`): for a value that reaches no root, whether
    any gradient flows back at all. Outputs of zero-gradient ops send back none; a root (a
    parameter, a leaf that requires grad) sends its own to itself; otherwise, unless known,
    its `grad`."""
    if value.live is not None:
        return min(value.live, value.grad)
    if value.sources and value.leaf == YES:
        return NO
    return value.grad


def _join_unsaved(a: Value, b: Value) -> frozenset:
    """A record stays excluded where the other value excludes it too or does not hold its root."""
    if not a.unsaved and not b.unsaved:
        return _EMPTY
    kept = {pair for pair in a.unsaved if pair in b.unsaved or pair[0] not in b.roots}
    kept.update(pair for pair in b.unsaved if pair[0] not in a.roots)
    return frozenset(kept)


def _join_shape(a: object, b: object) -> object:
    if a is None or b is None:
        return None
    global _join_shapes
    if _join_shapes is None:
        from gradguard.engine import shape_flow

        _join_shapes = shape_flow.join_shapes
    return _join_shapes(a, b)


_join_shapes = None


def join_all(values) -> Value:
    result = NOTHING
    for value in values:
        result = join(result, value)
    return result


def combine(values, *, kinds: int = TENSOR, node: ast.AST | None = None) -> Value:
    """The result of a differentiable op on `values` (a new, non-leaf tensor): it requires
    grad when any input does, carries every input's roots, cuts and staleness."""
    grad = NO
    sources: frozenset = _EMPTY
    blocked: frozenset = _EMPTY
    stale: frozenset = _EMPTY
    names: frozenset = _EMPTY
    cuts: tuple = ()
    unknown = False
    saves = False
    live = NO
    for value in values:
        saves = saves or value.saves
        live = max(live, live_grad(value))
        if value.kinds == ANY and value.dtype != INTEGRAL:  # (an integer by its use carries no gradient)
            unknown = True
        if value.grad > grad:
            grad = value.grad
        sources = _union(sources, value.sources)
        blocked = _union(blocked, value.blocked)
        stale = _union(stale, value.stale)
        names = _union(names, value.names)
        cuts = _union_cuts(cuts, value.cuts)
    if unknown and grad == NO:
        grad = MAYBE
    if unknown and live == NO:
        live = MAYBE
    if cuts:
        cuts = _mark_bypassed(cuts, values)
    sites = frozenset((node,)) if node is not None else _EMPTY
    return Value(
        kinds,
        grad=grad,
        leaf=NO if grad == YES else (YES if grad == NO else MAYBE),
        sources=sources,
        cuts=cuts,
        blocked=blocked,
        stale=stale,
        saves=saves,
        names=names,
        sites=sites,
        roots=sites,
        live=live,
    )


def _mark_bypassed(cuts: tuple, values) -> tuple:
    """`cuts` with those marked bypassed whose roots another input reaches differentiably."""
    reached: frozenset = _EMPTY
    for value in values:
        if value.sources and value.grad == YES:  # (`sources`: the roots it reaches differentiably)
            reached = _union(reached, value.sources)
    if not reached or not any(c.blocked and not c.bypassed and c.blocked <= reached for c in cuts):
        return cuts
    return tuple(
        Cut(c.kind, c.node, c.blocked, True) if c.blocked and not c.bypassed and c.blocked <= reached else c
        for c in cuts
    )


def cut(value: Value, kind: str, node: ast.AST, kinds: int | None = None) -> Value:
    """`value` after the graph was cut at `node` (a fresh tensor without history)."""
    blocked = _union(value.blocked, value.sources)
    cuts = value.cuts
    if value.grad != NO or value.sources:
        cuts = _union_cuts((Cut(kind, node, value.sources),), value.cuts)
    return Value(
        kinds if kinds is not None else (value.kinds & (TENSOR | NUMBER | NUMPY | LIST) or TENSOR),
        grad=NO,
        leaf=YES,
        cuts=cuts,
        blocked=blocked,
        dtype=value.dtype,
        shape=value.shape,
        sites=frozenset((node,)),
        roots=frozenset((node,)),
    )  # no `names`: what it was computed from is no longer part of its graph


def tensor_of(value: Value) -> Value:
    """A value used as a tensor operand: object kinds dropped, facts kept."""
    if value.kinds & ~(TENSOR | PARAMETER | BUFFER) == 0:
        return value
    return value.evolve(kinds=TENSOR)


def element_of(value: Value) -> Value:
    """What iterating over or indexing a container gives."""
    if value.elem is not None:
        return value.elem
    if value.items:
        return join_all(value.items)
    if value.kinds & (TENSOR | PARAMETER | BUFFER) and value.is_tensor:
        # a row of a tensor: a view of it (same roots; a view of a leaf counts as the leaf for
        # in-place purposes: torch rejects writes into both)
        shape = value.shape
        if isinstance(shape, _Shape):
            shape = _Shape(shape.dims[1:]) if shape.exact and shape.dims else None
        return value.evolve(kinds=TENSOR, sites=_EMPTY, shape=shape)
    if value.kinds & NUMPY and value.is_only(NUMPY):
        return value
    if value.kinds == ANY and (value.grad != MAYBE or value.sources or value.cuts or value.stale):
        # a part of something unknown carries what the whole carries
        return Value(ANY, grad=value.grad, leaf=MAYBE, sources=value.sources, cuts=value.cuts,
                     blocked=value.blocked, stale=value.stale, saves=value.saves, names=value.names)  # fmt: skip
    return UNKNOWN


# `dtype` of a value whose use shows it holds integers or booleans (an index, a class target),
# which integer dtype not known (see `gradguard.engine.integer_use`)
INTEGRAL = "integer"


def as_integer(value: Value) -> Value:
    """`value` known by its use to hold integers (or booleans): it cannot require grad, so it
    carries no gradient and reaches no root. Unchanged when it is known to be something else
    (a float tensor, a tensor that requires grad, a module, ...)."""
    if value.grad == YES or (value.dtype is not None and _floating(value.dtype)):
        return value
    if value.dtype == INTEGRAL and value.grad == NO and not value.sources:
        return value
    if value.kinds != ANY and (value.kinds & PARAMETER or not value.kinds & TENSOR):
        return value
    return value.evolve(
        grad=NO,
        leaf=YES,
        sources=_EMPTY,
        dtype=value.dtype or INTEGRAL,
        saves=False,
        stale=_EMPTY,
    )


def _floating(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat", "complex", "half", "double"))


floating_dtype = _floating
