"""Shapes in the value analysis: what the interpreter knows of tensor shapes and Python ints.

The interpreter (`engine.interpreter`) and the semantics (`engine.semantic`) call this module from a
few hook points, after they computed a value's autograd facts; each hook returns the value evolved
with its shape facts (see `engine.values`: `shape`, `dim`, `layer`). The shapes themselves come
from `engine.symshape` (pure Python, checked against torch's meta kernels); nothing here imports
torch.

What is tracked:

* ints: literal ints, arithmetic on them, `x.size(1)` / `x.shape[1]` / `len(x)`, the names bound by
  `b, t, c = x.size()` (symbols `b`, `t`, `c` when the shape is not known; the tensor then gets the
  shape `[b, t, c]`), attributes of unknown objects (`config.n_embd` becomes the symbol
  `config.n_embd`) and, in a function's natural context, its int parameters (the symbol `in_dim`);
* tensors: factories (`torch.randn(4, 3, 32, 32)`), every op `symshape` models (methods, `torch.*`,
  `F.*`, operators, indexing), layers (`nn.Linear(...)` carries its `symshape.LayerSpec`; calling it
  computes the output), modules of the file (an `Instance`: its `__init__` run with the
  constructor's arguments, so `self.fc` in `forward` is the layer this instance built), and
  `forward`'s inputs from annotations (jaxtyping `Float[Tensor, "b t d"]`,
  `Annotated[Tensor, Shape("b", "t")]`);
* the roots that give concrete shapes: the file's script statements (`model(torch.randn(4, 3, 32,
  32))` in a `__main__` block) and the probe comments (`# gradguard: probe Net() input=(4, 3, 32,
  32)`), evaluated as call contexts of the modules they build.

Errors `symshape` is certain of (a `ShapeError` with a rule code) are recorded on the flow that
found them (`flow.shape_problems`) with what the rules need to word them. `problems(unit)` gathers
those of a unit from its own flows and from the call contexts the roots reach.

Symbols are qualified by where they were made (`b@12`: the `b` bound on line 12), so two `b`s of
different functions are different symbols; `show()` renders them without the qualifier.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING, Any

from gradguard.engine import symshape as ss
from gradguard.engine import torch_facts
from gradguard.engine.symshape import UNKNOWN as UNKNOWN_DIM
from gradguard.engine.symshape import Dim, LayerSpec, Shape, ShapeError
from gradguard.engine.values import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    LIST,
    MODULE,
    NONE,
    NONE_VALUE,
    NUMBER,
    NUMPY,
    OBJECT,
    PARAMETER,
    SIZE,
    STR,
    TENSOR,
    TUPLE,
    UNKNOWN,
    Value,
    join_all,
)

from gradguard.engine.index import dotted_name, statement_start_line
from gradguard.engine.mentions import SCRIPT_ROOTS

if TYPE_CHECKING:
    from gradguard.engine.index import Unit
    from gradguard.engine.interpreter import Arguments, Flow
    from gradguard.engine.semantic import Semantics

TENSORISH = TENSOR | PARAMETER | (1 << 2)  # TENSOR | PARAMETER | BUFFER
UNKNOWN_SHAPE = Shape.unknown()
_QUALIFIER = re.compile(r"@~?\d+")
_LOOP = "@~"  # the qualifier of the symbol of a loop variable (`n@~12`): one value per iteration


# =====================================================================================================
# The lattice
# =====================================================================================================
class Tracked(Shape):
    """A shape that also says where a view merged the batch dimension into another one: `merged` is
    (the view/reshape/flatten node, the dimension 0 before it)."""

    __slots__ = ("merged",)

    def __init__(self, dims: Any, exact: bool, merged: tuple) -> None:
        super().__init__(dims, exact)
        self.merged = merged


def marker(shape: Any) -> tuple | None:
    return shape.merged if isinstance(shape, Tracked) else None


def with_marker(shape: Any, merged: tuple | None) -> Any:
    if merged is None or not isinstance(shape, Shape):
        return shape
    if not shape.exact or not shape.dims or ss.same(shape.dims[0], merged[2]) is not True:
        return shape  # the merged leading dimension did not survive
    return Tracked(shape.dims, shape.exact, merged)


def join_dims(a: Dim, b: Dim) -> Dim:
    return a if a == b else UNKNOWN_DIM


def join_shapes(a: Any, b: Any) -> Any:
    """The shape either of two values may have: equal dims stay, different ones become unknown;
    shapes of different rank keep their common trailing dims (`[..., 10]`)."""
    if a is None or b is None:
        return None
    if isinstance(a, Shape) and isinstance(b, Shape):
        if a == b:
            return a if marker(a) == marker(b) else Shape(a.dims, a.exact)
        if a.exact and b.exact and len(a.dims) == len(b.dims):
            return Shape([join_dims(x, y) for x, y in zip(a.dims, b.dims)])
        n = min(len(a.dims), len(b.dims))
        if n == 0:
            return UNKNOWN_SHAPE
        tail = [join_dims(x, y) for x, y in zip(a.dims[len(a.dims) - n :], b.dims[len(b.dims) - n :])]
        while tail and tail[0].is_unknown:
            tail.pop(0)
        return Shape(tail, exact=False) if tail else UNKNOWN_SHAPE
    return None


def row_shape(shape: Any) -> Any:
    """What iterating over a tensor gives (`for row in x`, `a, b = x`)."""
    if isinstance(shape, Shape) and shape.exact and shape.dims:
        return Shape(shape.dims[1:])
    return None


# =====================================================================================================
# Ints
# =====================================================================================================
_SMALL: dict[int, Value] = {}


def int_value(n: int) -> Value:
    found = _SMALL.get(n)
    if found is None:
        found = Value(INT, grad=0, leaf=0, dim=Dim.const(n))
        if -8 <= n <= 4096:
            _SMALL[n] = found
    return found


TRUE = Value(BOOL, grad=0, leaf=0, dim=Dim.const(1))
FALSE = Value(BOOL, grad=0, leaf=0, dim=Dim.const(0))


def dim_of(value: Value | None) -> Dim:
    if value is None:
        return UNKNOWN_DIM
    d = value.dim
    return d if isinstance(d, Dim) else UNKNOWN_DIM


def symbol(name: str, where: ast.AST | None) -> Dim:
    line = getattr(where, "lineno", 0) if where is not None else 0
    return ss.sym(f"{name}@{line}")


def show(thing: Any) -> str:
    """A Dim / Shape / message for people: symbols without their qualifier (`b@12` -> `b`)."""
    if isinstance(thing, Shape):
        text = ss.format_shape(thing)
    else:
        text = str(thing)
    return _QUALIFIER.sub("", text) if "@" in text else text


_INT_OPS = {ast.Add: "__add__", ast.Sub: "__sub__", ast.Mult: "__mul__", ast.FloorDiv: "__floordiv__"}


def binary_int(op: ast.operator, left: Value, right: Value, result: Value) -> Value:
    """`a + b`, `a * b`, `a // b`, ... of ints (or of unknown values that carry a dim)."""
    if left.dim is None or right.dim is None:
        return result
    a, b = left.dim, right.dim
    method = _INT_OPS.get(op.__class__)
    if method is not None:
        if method == "__floordiv__" and b.value == 0:
            return result
        d = getattr(a, method)(b)
    elif isinstance(op, ast.Mod) and a.value is not None and b.value:
        d = Dim.const(a.value % b.value)
    elif isinstance(op, ast.Pow) and a.value is not None and b.value is not None and 0 <= b.value <= 64:
        d = Dim.const(a.value**b.value)
    else:
        return result
    if result.kinds == INT:
        return int_value(d.value) if d.value is not None else result.evolve(dim=d)
    if result.kinds & ~(INT | ANY) and result.known:
        return result  # a float (`a / b`), a string, ...
    return result.evolve(dim=d)


_COMPARE = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
}  # fmt: skip


def truth(flow: Flow, test: ast.expr) -> bool | None:
    """The value of a branch's test when the analysis knows it (ints and bools of known value,
    None-ness of values whose kinds decide it); None otherwise."""
    kind = test.__class__
    if kind is ast.UnaryOp and isinstance(test.op, ast.Not):  # type: ignore[attr-defined]
        inner = truth(flow, test.operand)  # type: ignore[attr-defined]
        return None if inner is None else not inner
    if kind is ast.BoolOp:
        parts = [truth(flow, v) for v in test.values]  # type: ignore[attr-defined]
        if isinstance(test.op, ast.And):  # type: ignore[attr-defined]
            return False if False in parts else (True if all(p is True for p in parts) else None)
        return True if True in parts else (False if all(p is False for p in parts) else None)
    if isinstance(test, ast.Compare):
        return _compare_truth(flow, test)
    if kind is ast.Constant:
        v = test.value  # type: ignore[attr-defined]
        return bool(v) if v is None or isinstance(v, (bool, int)) else None
    value = flow.values.get(test)
    if value is None:
        return None
    if value.kinds == NONE:
        return False
    if value.kinds in (BOOL, INT) and value.dim is not None and value.dim.value is not None:
        return bool(value.dim.value)
    return None


def _compare_truth(flow: Flow, test: ast.Compare) -> bool | None:
    """`x is None` / `x is not None` by the kinds of x, and comparisons of ints of known value."""
    if len(test.ops) != 1:
        return None
    op = test.ops[0]
    left = flow.values.get(test.left)
    right = flow.values.get(test.comparators[0])
    if left is None or right is None:
        return None
    if isinstance(op, (ast.Is, ast.IsNot)):
        if right.kinds == NONE:
            other = left
        elif left.kinds == NONE:
            other = right
        else:
            return None
        if other.kinds == NONE:
            answer = True
        elif other.known and not other.kinds & NONE and other.kinds:
            answer = False
        else:
            return None
        return answer if isinstance(op, ast.Is) else not answer
    compare_ = _COMPARE.get(op.__class__)
    if compare_ is None or left.is_tensor or right.is_tensor:
        return None
    a, b = dim_of(left).value, dim_of(right).value
    if a is None or b is None or not (left.kinds & (INT | BOOL) and right.kinds & (INT | BOOL)):
        return None
    return bool(compare_(a, b))


def negate(operand: Value, result: Value) -> Value:
    if operand.dim is None:
        return result
    d = -operand.dim
    return int_value(d.value) if d.value is not None else result.evolve(dim=d)


# =====================================================================================================
# Layers and module instances
# =====================================================================================================
class Layer:
    """A torch.nn layer with its bound constructor arguments (`spec`) and the dtype of its
    parameters ("float32" unless converted; None after `.to(...)`/`.type(...)`)."""

    __slots__ = ("dtype", "key", "spec")

    def __init__(self, spec: LayerSpec, key: tuple, dtype: str | None = "float32") -> None:
        self.spec = spec
        self.key = key
        self.dtype = dtype

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layer) and other.key == self.key and other.dtype == self.dtype

    def __hash__(self) -> int:
        return hash((self.key, self.dtype))

    def converted(self, dtype: str | None) -> Layer:
        return Layer(self.spec, self.key, dtype)


class Instance:
    """A module class of this file built with these constructor arguments: its `__init__` is run
    (lazily, once) with them to learn what each `self.<attr>` holds in this instance."""

    __slots__ = ("_attrs", "args", "base", "cls", "dtype", "key", "node")

    def __init__(
        self, cls: str, node: ast.Call, args: Arguments, key: tuple, dtype: str | None = "float32"
    ) -> None:
        self.cls = cls
        self.node = node
        self.args = args
        self.key = key
        self.dtype = dtype
        self._attrs: dict[str, Value] | None = None
        # a subclass of a torch.nn layer without an `__init__` of its own: that layer, built with
        # these arguments (what `super().forward(x)` and an inherited forward compute)
        self.base: Layer | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instance) and other.key == self.key and other.dtype == self.dtype

    def __hash__(self) -> int:
        return hash((self.key, self.dtype))

    def converted(self, dtype: str | None) -> Instance:
        copy = Instance(self.cls, self.node, self.args, self.key, dtype)
        copy._attrs = self._attrs
        copy.base = self.base.converted(dtype) if self.base is not None else None
        return copy

    def attrs(self, semantics: Semantics, flow: Flow, me: Value) -> dict[str, Value]:
        if self._attrs is None:
            self._attrs = {}
            info = semantics.class_info(self.cls)
            init = info.methods.get("__init__") if info is not None else None
            if init is not None:
                from gradguard.engine.interpreter import State

                semantics.last_self_attributes = ()
                semantics.call_function(
                    flow, self.node, init, self.args, State({}, {}, {}, None), self_value=me
                )
                self._attrs = dict(semantics.last_self_attributes)
        return self._attrs


def key_of(value: Value) -> tuple | None:
    """The shape facts of a value, for memoising call summaries."""
    shape, dim, layer = value.shape, value.dim, value.layer
    if shape is None and dim is None and layer is None:
        return None
    return (shape, dim, layer)


def instance(semantics: Semantics, node: ast.Call, cls: str, args: Arguments, value: Value) -> Value:
    """`Net(...)` for a module class of this file: the value knows its constructor arguments."""
    from gradguard.engine.semantic import value_key

    try:
        key = (
            cls,
            tuple(value_key(v) for v in args.positional),
            tuple(sorted((k, value_key(v)) for k, v in args.keywords.items())),
        )
        hash(key)
    except TypeError:
        return value
    made = Instance(cls, node, args, key)
    base = _layer_base(semantics, cls)
    if base is not None:
        converted = call_args(args)
        if converted is not None:
            spec = ss.layer_spec(base, *converted)
            if spec is not None:
                made.base = Layer(spec, (base, key))
    return value.evolve(layer=made)


def _layer_base(semantics: Semantics, cls: str) -> str | None:
    """The torch.nn layer a module class of the file extends, when neither it nor its local bases
    define `__init__` (so the constructor's arguments are the layer's)."""
    seen = 0
    name: str | None = cls
    while name is not None and seen < 8:
        seen += 1
        node = semantics.top.get(name)
        summary = semantics.module.classes.get(name)
        if not isinstance(node, ast.ClassDef) or summary is None:
            return None
        if any(isinstance(s, ast.FunctionDef) and s.name == "__init__" for s in node.body):
            return None
        following = None
        for base in summary.bases:
            if base.startswith("torch.nn.") and base.count(".") == 2 and base.rsplit(".", 1)[1][:1].isupper():
                if base.rsplit(".", 1)[1] not in ("Module", "Sequential", "ModuleList", "ModuleDict"):
                    return base
            elif base in semantics.top:
                following = following or base
        name = following
    return None


def refine(semantics: Semantics, flow: Flow, receiver: Value, attr: str, value: Value | None) -> Value | None:
    """`self.<attr>` of a module instance: the value the class summary knows, with the shape facts
    of what this instance's `__init__` stored. An attribute the file also sets from outside the
    class (`model.fc = nn.Linear(512, 10)`) may hold something else: its shape facts are dropped."""
    if value is None or not semantics.shape_index.concrete:
        return value  # (in a function's natural context the class summary's values are enough)
    replaced = semantics.shape_index.replaced(semantics)
    if replaced and attr in replaced:
        return _without_shapes(value)
    layer = receiver.layer
    if not isinstance(layer, Instance):
        return value
    held = layer.attrs(semantics, flow, receiver).get(attr)
    if held is None:
        return value
    grafted = graft(value, held)
    if layer.dtype != "float32":
        grafted = _convert_module(grafted, layer.dtype)
    return grafted


def _without_shapes(value: Value) -> Value:
    if value.shape is None and value.dim is None and value.layer is None and value.items is None:
        return value
    items = tuple(_without_shapes(v) for v in value.items) if value.items is not None else None
    return value.evolve(shape=None, dim=None, layer=None, items=items)


def graft(natural: Value, inst: Value, depth: int = 0) -> Value:
    if natural is inst or depth > 4:
        return natural
    if natural.kinds == ANY and inst.known and not inst.kinds & TENSORISH:
        return inst  # `self.config`: the object this instance was given
    changes: dict[str, Any] = {}
    if inst.shape is not natural.shape:
        changes["shape"] = inst.shape
    if inst.dim is not natural.dim:
        changes["dim"] = inst.dim
    if inst.layer is not natural.layer:
        changes["layer"] = inst.layer
    if natural.cls is None and inst.cls is not None and natural.kinds == inst.kinds:
        changes["cls"] = inst.cls  # one class in this instance where the class summary joins several
        if natural.node is None:
            changes["node"] = inst.node
    if natural.items is not None and inst.items is not None and len(natural.items) == len(inst.items):
        changes["items"] = tuple(graft(a, b, depth + 1) for a, b in zip(natural.items, inst.items))
    elif natural.items is None and inst.items is not None and natural.kinds == inst.kinds:
        changes["items"] = inst.items  # this instance's list/Sequential has a known length
    if natural.elem is not None and inst.elem is not None:
        changes["elem"] = graft(natural.elem, inst.elem, depth + 1)
    if natural.attrs is None and inst.attrs is not None and natural.kinds & OBJECT:
        changes["attrs"] = inst.attrs
    return natural.evolve(**changes) if changes else natural


def _convert_module(value: Value, dtype: str | None) -> Value:
    layer = value.layer
    if isinstance(layer, (Layer, Instance)) and layer.dtype != dtype:
        return value.evolve(layer=layer.converted(dtype))
    if value.items is not None and value.kinds & MODULE:
        return value.evolve(items=tuple(_convert_module(v, dtype) for v in value.items))
    if value.elem is not None and value.kinds & MODULE:
        return value.evolve(elem=_convert_module(value.elem, dtype))
    return value


def layer_of(module: Value) -> LayerSpec | None:
    layer = module.layer
    return layer.spec if isinstance(layer, Layer) else None


# =====================================================================================================
# Arguments as symshape sees them
# =====================================================================================================
_NO_VALUE = object()


def arg_of(value: Value | None, node: ast.AST | None) -> Any:
    """A call argument as symshape takes it: Shapes for tensors, Dims/ints for sizes, literals,
    tuples of those, LayerSpecs for layers; UNKNOWN (the Dim) for anything not known."""
    if node is not None:
        literal = _literal(node)
        if literal is not _NO_VALUE:
            return literal
        if isinstance(node, (ast.Tuple, ast.List)):
            if any(isinstance(e, ast.Starred) for e in node.elts):
                return UNKNOWN_DIM
            parts = tuple(arg_of(_value_of_elt(value, i), e) for i, e in enumerate(node.elts))
            return list(parts) if isinstance(node, ast.List) else parts
    if value is None:
        return UNKNOWN_DIM
    kinds = value.kinds
    if kinds == BOOL:
        d = value.dim
        return bool(d.value) if isinstance(d, Dim) and d.value is not None else UNKNOWN_DIM
    d = value.dim
    if d is not None:
        n = d.value
        return d if n is None else n
    if kinds & TENSORISH:
        shape = value.shape
        return shape if isinstance(shape, Shape) and value.is_tensor else UNKNOWN_SHAPE
    if kinds == ANY:
        if isinstance(value.shape, Shape):
            return value.shape  # a module's output of unknown kind, with a tensor's shape
        # maybe a tensor (it carries autograd facts), else maybe an int
        return UNKNOWN_SHAPE if value.grad != 0 or value.sources else UNKNOWN_DIM
    if kinds == SIZE:
        shape = value.shape
        return tuple(shape.dims) if isinstance(shape, Shape) and shape.exact else UNKNOWN_DIM
    if kinds in (TUPLE, LIST) and value.items is not None:
        return tuple(arg_of(v, None) for v in value.items)
    if kinds == NONE:
        return None
    if kinds == MODULE:
        return layer_of(value)
    return UNKNOWN_DIM


def starred_items(value: Value) -> tuple | None:
    """The values `*value` spreads into, when its length is known."""
    if value.items is not None and value.kinds & (TUPLE | LIST | SIZE):
        return value.items
    if value.kinds == SIZE and isinstance(value.shape, Shape) and value.shape.exact:
        return size_value(value.shape).items
    return None


def _value_of_elt(value: Value | None, index: int) -> Value | None:
    if value is not None and value.items is not None and index < len(value.items):
        return value.items[index]
    return None


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        v = node.value
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if v is Ellipsis:
            return Ellipsis
        return _NO_VALUE
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
    ):
        v = node.operand.value
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v
    return _NO_VALUE


def call_args(args: Arguments) -> tuple[tuple, dict] | None:
    """The positional and keyword arguments of a call, converted (None with `**kw`, or `*args` of
    unknown length)."""
    node = args.node
    if any(k.arg is None for k in node.keywords):
        return None
    nodes = node.args
    parts: list[Any] = []
    for i, v in enumerate(args.positional):
        sub = nodes[i] if i < len(nodes) else None
        if isinstance(sub, ast.Starred):
            spread = starred_items(v)
            if spread is None:
                return None
            parts.extend(arg_of(item, None) for item in spread)
        else:
            parts.append(arg_of(v, sub))
    positional = tuple(parts)
    by_name = {k.arg: k.value for k in node.keywords}
    keywords = {k: arg_of(v, by_name.get(k)) for k, v in args.keywords.items()}
    return positional, keywords


# =====================================================================================================
# Results of ops as values
# =====================================================================================================
def build(template: Value, result: Any) -> Value | None:
    """A value for a symshape result: `template` (the autograd facts of the op's result) with the
    shape, or a tuple/list of such values; None when the result says nothing."""
    if isinstance(result, Shape):
        return (
            template.evolve(shape=result) if template.kinds & TENSORISH or template.kinds == ANY else template
        )
    if isinstance(result, tuple):
        if result and all(isinstance(d, Dim) for d in result):
            return size_value(Shape(result))
        items = tuple(
            NONE_VALUE if r is None else (build(_tensor_template(template), r) or _tensor_template(template))
            for r in result
        )
        return Value(TUPLE, grad=0, leaf=0, items=items, elem=join_all(items) if items else None)
    if isinstance(result, ss.Repeated):
        elem = _tensor_template(template).evolve(shape=result.item)
        return Value(TUPLE, grad=0, leaf=0, elem=elem)
    if isinstance(result, Dim):
        return int_value(result.value) if result.value is not None else Value(INT, grad=0, leaf=0, dim=result)
    if isinstance(result, int) and not isinstance(result, bool):
        return int_value(result)
    return None


def _tensor_template(template: Value) -> Value:
    if template.kinds & (TUPLE | LIST) and template.elem is not None:
        return template.elem
    if template.kinds & (TUPLE | LIST) and template.items:
        return template.items[0]
    return template


def size_value(shape: Shape) -> Value:
    """`x.size()` / `x.shape`: a torch.Size whose items are the dims."""
    if not shape.exact:
        return Value(SIZE, grad=0, leaf=0, shape=shape)
    items = tuple(
        int_value(d.value) if d.value is not None else Value(INT, grad=0, leaf=0, dim=d) for d in shape.dims
    )
    return Value(SIZE, grad=0, leaf=0, shape=shape, items=items, elem=join_all(items) if items else None)


def _with_result(template: Value, result: Any) -> Value:
    built = build(template, result)
    if built is None:
        return template
    if (
        template.kinds & TUPLE
        and built.kinds & TUPLE
        and template.items is not None
        and built.items is not None
    ):
        if len(template.items) == len(built.items):
            # keep the autograd facts of each item (values, indices) with the shapes
            items = tuple(
                t.evolve(shape=b.shape) if b.shape is not None else t
                for t, b in zip(template.items, built.items)
            )
            return template.evolve(items=items, elem=join_all(items))
    if template.kinds & TUPLE and built.kinds & TUPLE and template.elem is not None:
        elem = template.elem
        if built.items is not None:
            items = tuple(elem.evolve(shape=b.shape) if b.kinds & TENSORISH else b for b in built.items)
            return template.evolve(items=items, elem=join_all(items))
        if built.elem is not None:
            return template.evolve(elem=elem.evolve(shape=built.elem.shape))
    if template.kinds == SIZE or (built.kinds == SIZE and template.kinds & (SIZE | ANY)):
        return built
    if built.kinds == INT and template.kinds & (INT | ANY) and not template.kinds & TENSORISH:
        return built if template.kinds == INT else template.evolve(dim=built.dim)
    if built.kinds & TENSORISH or built.kinds == ANY:
        return built
    if built.kinds == TUPLE and template.kinds & TENSORISH:
        return built  # a layer's (output, state)
    return template


# =====================================================================================================
# Problems (what the rules report)
# =====================================================================================================
class Problem:
    """A certain shape/dtype error found by the value analysis at `node`.

    code: the rule (GG501..GG509); error: symshape's ShapeError (torch's message) or None;
    kind: what was checked ("layer", "op", "binary", "loss", "merged", "softmax", "dtype");
    what: the op or layer (`nn.Linear(400, 120)`, `view`, `@`); inputs: the input shapes;
    data: anything else the rule needs (the layer value, the merging node, ...)."""

    __slots__ = ("code", "data", "error", "flow", "inputs", "kind", "node", "origin", "what")

    def __init__(
        self,
        code: str,
        node: ast.AST,
        kind: str,
        what: str = "",
        error: ShapeError | None = None,
        inputs: tuple = (),
        data: Any = None,
    ) -> None:
        self.code = code
        self.node = node
        self.kind = kind
        self.what = what
        self.error = error
        self.inputs = inputs
        self.data = data
        self.origin: ast.AST | None = None  # set by `problems`: the root's call that led here
        self.flow: Flow | None = None  # set by `_record`: the flow that found it (its values: the fixes')

    @property
    def message(self) -> str:
        return show(self.error.message) if self.error is not None else ""

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Problem({self.code} {self.kind} @{getattr(self.node, 'lineno', '?')}: {self.message})"


def _record(flow: Flow, problem: Problem) -> None:
    problems = flow.shape_problems
    key = (problem.code, problem.node)
    if key not in problems:
        problem.flow = flow
        problems[key] = problem


def _error(
    flow: Flow, node: ast.AST, error: ShapeError, kind: str, what: str, inputs: tuple, data: Any = None
) -> None:
    if error.code is None:
        return
    if (
        error.code in ("GG507", "GG509", "GG508")
        and not error.warning
        and _merged_batch(flow, node, error, inputs)
    ):
        return  # reported once, at the view that merged the batch (GG505)
    _record(flow, Problem(error.code, node, kind, what, error, inputs, data))


def _merged_batch(flow: Flow, node: ast.AST, error: ShapeError, inputs: tuple) -> bool:
    """A mismatch of a tensor whose batch a view merged with one that kept it: the view is the bug."""
    for i, shape in enumerate(inputs):
        merged = marker(shape)
        if merged is None:
            continue
        if isinstance(node, ast.Call) and any(a is merged[0] for a in node.args):
            continue  # `loss(x, t.view(-1))`: the mismatch is the op's own (a target of the wrong shape)
        for j, other in enumerate(inputs):
            if j == i or not isinstance(other, Shape) or not other.exact or not other.dims:
                continue
            if ss.same(other.dims[0], merged[1]) is True:
                _record(
                    flow,
                    Problem("GG505", merged[0], "merged", merged[3], error, (shape, other), (node, merged)),
                )
                return True
    return False


# =====================================================================================================
# Hooks: calls
# =====================================================================================================
_MODELLED = frozenset(ss.op_names()) | {"view", "reshape"}  # what symshape computes (methods and functions)
_LAYERS = frozenset(ss.layer_names())
_VIEWS = frozenset({"view", "reshape", "flatten", "torch.reshape", "torch.flatten"})
_SOFTMAX = frozenset({"softmax", "torch.softmax", "torch.nn.functional.softmax", "torch.special.softmax"})
_LOSS_FUNCTIONS = {
    "torch.nn.functional.cross_entropy": "cross_entropy",
    "torch.nn.functional.nll_loss": "nll_loss",
    "torch.nn.functional.mse_loss": "mse_loss",
    "torch.nn.functional.l1_loss": "l1_loss",
    "torch.nn.functional.smooth_l1_loss": "smooth_l1_loss",
    "torch.nn.functional.binary_cross_entropy": "binary_cross_entropy",
    "torch.nn.functional.binary_cross_entropy_with_logits": "binary_cross_entropy_with_logits",
}
_MATMUL_DTYPE = frozenset({"matmul", "mm", "bmm", "torch.matmul", "torch.mm", "torch.bmm"})
_MODULE_CONVERSIONS = {"double": "float64", "float": "float32", "half": "float16", "bfloat16": "bfloat16"}


def after_call(
    flow: Flow,
    node: ast.Call,
    target: Value,
    attr: str | None,
    args: Arguments,
    result: Value,
    state: Any = None,
) -> Value:
    """Every call's result, after the semantics computed it: `target` is the receiver of a method
    call (`attr` its name) or the callee."""
    kinds = target.kinds
    if attr is None:
        return _function_result(flow, node, target, args, result)
    if kinds == 1 << 22:
        qual = f"{target.cls}.{attr}"
        if qual.startswith("torch."):
            return _torch(flow, node, qual, args, result)
        if qual in _NAMESPACES:
            return _namespace(args, result)
        return result
    if kinds == LIST and attr in ("append", "extend") and state is not None and not flow.natural:
        _grow(node, target, attr, args, state)
        return result
    if attr == "__init__" and state is not None and not flow.natural and _is_super(node):
        _base_init(flow, node, args, state)
        return result
    if attr == "forward" and state is not None and _is_super(node):
        me = state.env.get("self")
        if me is not None and isinstance(me.layer, Instance) and me.layer.base is not None:
            return _base_layer_call(flow, node, me.layer.base, args, result)
        return result
    if _tensorish(target):
        return _method(flow, node, target, attr, args, result)
    if kinds == MODULE and attr in _MODULE_CONVERSIONS or attr in ("to", "type") and kinds == MODULE:
        dtype = _MODULE_CONVERSIONS.get(attr)
        return _convert_module(result, dtype) if result.kinds == MODULE else result
    if kinds == ANY and attr == "size" and result.kinds == SIZE:
        return result
    return result


def _function_result(flow: Flow, node: ast.Call, target: Value, args: Arguments, result: Value) -> Value:
    """The result of calling a qualified name (`torch.cat`, `F.relu`, `nn.Linear`, `len`)."""
    if target.kinds == 1 << 22:  # REF
        qual = target.cls or ""
        if qual.startswith("torch."):
            return _torch(flow, node, qual, args, result)
        if qual.startswith("builtins."):
            return _builtin(qual[9:], args, result)
        if qual in _NAMESPACES:
            return _namespace(args, result)
    return result


def _dtype_argument(flow: Flow, node: ast.Call) -> bool:
    """`t.view(torch.int32)` / `t.view(dtype=...)`: a dtype view."""
    if node.keywords:
        return any(k.arg == "dtype" for k in node.keywords)
    if len(node.args) != 1:
        return False
    qual = flow.module.qualname(node.args[0]) or ""
    return qual.startswith("torch.") and torch_facts.canonical_dtype(qual) is not None


def _method(flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, result: Value) -> Value:
    if attr in _SOFTMAX:
        flow.semantics.shape_index.softmax.add(node)  # its result: probabilities
    if attr not in _MODELLED or attr == "view" and _dtype_argument(flow, node):
        return result  # (`t.view(torch.int32)`: the same memory as another dtype, not a new shape)
    if receiver.shape is None and attr not in _FROM_NOTHING and not _MATMUL_DTYPE.intersection((attr,)):
        return result  # (nothing known of the receiver: nothing known of the result)
    converted = call_args(args)
    if converted is None:
        return result
    positional, keywords = converted
    shape = receiver.shape if isinstance(receiver.shape, Shape) else UNKNOWN_SHAPE
    out = ss.op_output(attr, shape, positional, keywords)
    if out is None and attr in ("view", "reshape") and not shape.exact and not keywords:
        out = _requested(positional)
    if attr in _MATMUL_DTYPE and args.positional:
        receiver_node = node.func.value if isinstance(node.func, ast.Attribute) else None
        _matmul_dtype(
            flow, node, receiver, args.positional[0], f".{attr}()", receiver_node, args.node_of(0, "other")
        )
    if isinstance(out, ShapeError):
        _error(flow, node, out, "op", attr, (shape, *_shapes(positional)))
        return _with_result(result, out.shape) if out.warning and out.shape is not None else result
    if out is None:
        return result
    value = _with_result(result, out)
    if attr in _VIEWS:
        value = _note_view(node, attr, shape, value)
    merged = marker(shape)
    if merged is not None and value.kinds & TENSORISH and value.shape is not None:
        value = value.evolve(shape=with_marker(value.shape, merged))
    return value


def _requested(sizes: tuple) -> Shape | None:
    """`x.view(-1, 320)` of a tensor whose shape is not known: when it runs, the result has the
    requested sizes (the `-1` is unknown)."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    dims = []
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, (int, Dim)):
            return None
        value = size if isinstance(size, int) else size.value
        if value is not None and value < 0:
            if value != -1:
                return None
            dims.append(UNKNOWN_DIM)
        else:
            dims.append(Dim.of(size))
    return Shape(dims) if dims else None


def _shapes(values: tuple) -> tuple:
    return tuple(v for v in values if isinstance(v, Shape))


def _note_view(node: ast.AST, op: str, before: Shape, value: Value) -> Value:
    """A view/reshape/flatten whose leading dimension is no longer the input's: it merged (or
    split) the batch. The result remembers it, for GG505."""
    after = value.shape
    if not (
        isinstance(after, Shape) and after.exact and after.dims and before.exact and len(before.dims) >= 2
    ):
        return value
    first = before.dims[0]
    if ss.same(after.dims[0], first) is not False:
        return value
    # (the view, dim 0 before it, dim 0 after it, its name, the shape before, the shape after)
    return value.evolve(
        shape=Tracked(after.dims, True, (node, first, after.dims[0], op, before, Shape(after.dims)))
    )


def _torch_layer(qual: str, positional: tuple, keywords: dict, result: Value) -> Value:
    """`nn.Linear(4, 8)` and the like: the layer its arguments build."""
    last = qual.rsplit(".", 1)[-1]
    if result.cls == qual or (result.cls or "").rsplit(".", 1)[-1] == last:
        spec = ss.layer_spec(qual, positional, keywords)
        if spec is not None:
            key = (qual, _hashable(positional), _hashable(tuple(sorted(keywords.items()))))
            return result.evolve(layer=Layer(spec, key))
    return result


def _torch_result(
    flow: Flow, node: ast.Call, qual: str, positional: tuple, keywords: dict, result: Value
) -> Value:
    """The result of a torch function from symshape's model of it (a shape error is reported)."""
    out = ss.op_output(qual, None, positional, keywords)
    if out is None and qual in ("torch.tensor", "torch.as_tensor", "torch.Tensor", "torch.FloatTensor",
                                "torch.LongTensor") and node.args:  # fmt: skip
        out = _literal_shape(node.args[0])
    if isinstance(out, ShapeError):
        what = qual.rsplit(".", 1)[-1]
        _error(
            flow,
            node,
            out,
            "loss" if qual in _LOSS_FUNCTIONS else "op",
            what,
            _shapes(positional) + _list_shapes(positional),
        )
        return _with_result(result, out.shape) if out.warning and out.shape is not None else result
    if out is None:
        return result
    value = _with_result(result, out)
    if qual in _VIEWS and positional and isinstance(positional[0], Shape):
        value = _note_view(node, qual.rsplit(".", 1)[-1], positional[0], value)
    if positional and isinstance(positional[0], Shape):
        merged = marker(positional[0])
        if merged is not None and value.kinds & TENSORISH and value.shape is not None:
            value = value.evolve(shape=with_marker(value.shape, merged))
    return value


def _torch(flow: Flow, node: ast.Call, qual: str, args: Arguments, result: Value) -> Value:
    if qual in _SOFTMAX:
        flow.semantics.shape_index.softmax.add(node)  # its result: probabilities
    # dtypes are checked whether or not the shapes are known
    if qual in _MATMUL_DTYPE and len(args.positional) >= 2:
        _matmul_dtype(
            flow,
            node,
            args.positional[0],
            args.positional[1],
            qual,
            args.node_of(0, "input"),
            args.node_of(1, "other"),
        )
    if result.kinds == MODULE:
        last = qual.rsplit(".", 1)[-1]
        if last in ("Sequential", "ModuleDict", "ModuleList"):
            return _container(flow, node, last, args, result)
        if last not in _LAYERS:
            return result
    elif qual not in _MODELLED and qual not in _TORCH_EXTRAS:
        return result
    elif (
        args.positional
        and not _any_shape(args)
        and qual not in _TORCH_FROM_NOTHING
        and not qual.startswith(_FACTORY_PREFIXES)
    ):
        if qual in _LOSS_FUNCTIONS and len(args.positional) >= 2:
            _softmax_into_ce(flow, node, qual, args.positional[0])
        return result  # (no tensor argument of known shape)
    converted = call_args(args)
    if converted is None:
        return result
    positional, keywords = converted
    if result.kinds == MODULE:
        return _torch_layer(qual, positional, keywords, result)
    if qual in ("torch.nn.Parameter", "torch.nn.parameter.Parameter", "torch.nn.Buffer"):
        data = args.get(0, "data")
        if data is not None and isinstance(data.shape, Shape):
            return result.evolve(shape=data.shape)
        return result
    if not positional and "size" in keywords and qual in _SIZE_FACTORIES:
        keywords = dict(keywords)
        positional = (keywords.pop("size"),)
    if qual in _LOSS_FUNCTIONS and len(args.positional) >= 2:
        _softmax_into_ce(flow, node, qual, args.positional[0])
        _ce_target(flow, node, qual, args.positional[0], args.positional[1])
    return _torch_result(flow, node, qual, positional, keywords, result)


# ops whose result says something even when the receiver's shape is unknown (the sizes are written)
_FROM_NOTHING = frozenset({"view", "reshape", "new_zeros", "new_ones", "new_empty", "new_full", "size", "dim",
                           "float", "double", "half", "long", "int", "bool", "to", "type"})  # fmt: skip
_TORCH_FROM_NOTHING = frozenset({"torch.reshape", "torch.tensor", "torch.as_tensor", "torch.Tensor",
                                 "torch.FloatTensor", "torch.LongTensor", "torch.nn.Parameter",
                                 "torch.nn.parameter.Parameter", "torch.nn.Buffer"})  # fmt: skip
_FACTORY_PREFIXES = ("torch.zeros", "torch.ones", "torch.empty", "torch.rand", "torch.full", "torch.arange",
                     "torch.eye", "torch.linspace", "torch.logspace")  # fmt: skip


def _any_shape(args: Arguments) -> bool:
    """Some argument has a known shape (a tensor, a list of tensors, a size)."""
    for value in args.positional:
        if value.shape is not None or value.dim is not None:
            return True
        items = value.items
        if items is not None and any(v.shape is not None or v.dim is not None for v in items):
            return True
        elem = value.elem
        if elem is not None and elem.shape is not None:
            return True
    return any(v.shape is not None or v.dim is not None for v in args.keywords.values())


_TORCH_EXTRAS = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter", "torch.nn.Buffer", "torch.tensor",
                           "torch.as_tensor", "torch.Tensor", "torch.FloatTensor", "torch.LongTensor",
                           *("torch.nn.functional." + n for n in ("cross_entropy", "nll_loss", "mse_loss", "l1_loss",
                             "smooth_l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"))})  # fmt: skip
_SIZE_FACTORIES = frozenset({"torch.zeros", "torch.ones", "torch.empty", "torch.rand", "torch.randn"})


class Members:
    """The modules of an `nn.ModuleDict`, by key."""

    __slots__ = ("key", "members")

    def __init__(self, members: dict[str, Value], key: tuple) -> None:
        self.members = members
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Members) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


def _container(flow: Flow, node: ast.Call, last: str, args: Arguments, result: Value) -> Value:
    """`nn.Sequential(*layers)`: its members when the list's length is known, else the repeated
    element; `nn.ModuleDict(dict(a=..., b=...))` / `({"a": ...})`: its members by key."""
    if last == "Sequential":
        return _sequential(node, args, result)
    if last == "ModuleList" and len(node.args) == 1 and args.positional:
        items = starred_items(args.positional[0])
        if items is not None and all(v.is_module for v in items):
            return result.evolve(items=items, elem=join_all(items) if items else result.elem)
        return result
    if last == "ModuleDict" and len(node.args) == 1:
        found = _dict_members(flow, node.args[0])
        if found is None:
            return result
        key = (node, tuple((k, v.kinds, key_of(v)) for k, v in found.items()))
        try:
            hash(key)
        except TypeError:
            return result
        return result.evolve(layer=Members(found, key))
    return result


def _sequential(node: ast.Call, args: Arguments, result: Value) -> Value:
    """`nn.Sequential(*layers)`: its members when the list's length is known, else the repeated element."""
    if not any(isinstance(a, ast.Starred) for a in node.args):
        return result
    members: list[Value] = []
    repeated: list[Value] = []
    for sub, value in zip(node.args, args.positional):
        if isinstance(sub, ast.Starred):
            spread = starred_items(value)
            if spread is None:
                repeated.append(value.elem if value.elem is not None else UNKNOWN)
            else:
                members.extend(spread)
        else:
            members.append(value)
    if repeated:
        return result.evolve(items=None, elem=join_all(members + repeated))
    return result.evolve(items=tuple(members), elem=join_all(members) if members else None)


def _dict_members(flow: Flow, arg: ast.expr) -> dict[str, Value] | None:
    """The values by key of `dict(a=..., b=...)` or `{"a": ..., "b": ...}` (None for anything else)."""
    found: dict[str, Value] = {}
    if (
        isinstance(arg, ast.Call)
        and isinstance(arg.func, ast.Name)
        and arg.func.id == "dict"
        and not arg.args
    ):
        for kw in arg.keywords:
            if kw.arg is None:
                return None
            found[kw.arg] = flow.value_of(kw.value)
    elif isinstance(arg, ast.Dict):
        for k, v in zip(arg.keys, arg.values):
            if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                return None
            found[k.value] = flow.value_of(v)
    else:
        return None
    return found


def _literal_shape(node: ast.AST, depth: int = 0) -> Shape | None:
    """The shape of `torch.tensor([[1, 2], [3, 4]])`'s data written out."""
    if isinstance(node, (ast.List, ast.Tuple)) and depth < 8:
        if not node.elts:
            return Shape((0,))
        inner = [_literal_shape(e, depth + 1) for e in node.elts]
        first = inner[0]
        if first is None or any(i != first for i in inner):
            return None
        return Shape((len(node.elts), *first.dims))
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
        return Shape(())
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        return Shape(())
    return None


def _list_shapes(values: tuple) -> tuple:
    for v in values:
        if isinstance(v, (tuple, list)):
            return tuple(s for s in v if isinstance(s, Shape))
    return ()


def _hashable(thing: Any) -> Any:
    try:
        hash(thing)
    except TypeError:
        return repr(thing)
    return thing


_NAMESPACES = frozenset({"types.SimpleNamespace", "argparse.Namespace"})


def _namespace(args: Arguments, result: Value) -> Value:
    """`SimpleNamespace(n_embd=32, ...)`: an object whose attributes are known."""
    if args.positional or not args.keywords or any(k.arg is None for k in args.node.keywords):
        return result
    return Value(OBJECT, grad=0, leaf=0, cls="types.SimpleNamespace", attrs=tuple(args.keywords.items()))


def _grow(node: ast.Call, target: Value, attr: str, args: Arguments, state: Any) -> None:
    """`xs.append(v)` / `xs.extend(vs)` in a call context, on a list whose items are known."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)) or target.items is None:
        return
    name = func.value.id
    held = state.env.get(name)
    if held is None or not args.positional:
        return
    added = args.positional[0]
    if attr == "append":
        extra: tuple | None = (added,)
    else:
        extra = starred_items(added)
    if extra is None:
        return
    items = target.items + extra
    if len(items) <= MAX_ITEMS:
        state.env[name] = held.evolve(items=items, elem=join_all(items))


MAX_ITEMS = 64  # lists of known length the analysis keeps item by item
MAX_UNROLL = 16  # iterations of a call context's loop over known values, evaluated one by one


def builds(flow: Flow) -> bool:
    """A module's `__init__`: its loops over a few known values build the layers one by one."""
    func = flow.func
    return getattr(func, "name", None) == "__init__" and flow.class_node is not None


def unrollable(value: Value) -> tuple | None:
    items = value.items
    if items is not None and value.kinds in (LIST, TUPLE, SIZE, MODULE) and len(items) <= MAX_UNROLL:
        return items
    return None


def _range(args: Arguments, result: Value) -> Value:
    """`range(...)` of known bounds (not too long): its items."""
    bounds = [dim_of(v).value for v in args.positional]
    if all(b is not None for b in bounds) and 1 <= len(bounds) <= 3 and (len(bounds) < 3 or bounds[2] != 0):
        numbers = range(*bounds)  # type: ignore[arg-type]
        if len(numbers) <= MAX_ITEMS:
            items = tuple(int_value(n) for n in numbers)
            return result.evolve(items=items)
    return result


def _len(first: Value, result: Value) -> Value:
    """`len(x)`: a tensor's first dim, a tuple's or a size's length."""
    if first.is_tensor and isinstance(first.shape, Shape):
        d = first.shape.at(0) if first.shape.exact and first.shape.dims else UNKNOWN_DIM
        return result.evolve(dim=d) if not d.is_unknown else result
    if first.kinds in (SIZE, TUPLE, LIST) and first.items is not None and first.kinds != LIST:
        return int_value(len(first.items))
    if first.kinds == SIZE and isinstance(first.shape, Shape) and first.shape.exact:
        return int_value(len(first.shape.dims))
    return result


def _builtin(name: str, args: Arguments, result: Value) -> Value:
    first = args.positional[0] if args.positional else None
    if name == "range" and first is not None and not args.keywords:
        return _range(args, result)
    if first is None:
        return result
    if name == "enumerate" and first.items is not None and len(args.positional) == 1:
        pairs = tuple(
            Value(TUPLE, grad=0, leaf=0, items=(int_value(i), v)) for i, v in enumerate(first.items)
        )
        return result.evolve(items=pairs)
    if name == "zip" and all(v.items is not None for v in args.positional) and not args.keywords:
        groups = tuple(
            Value(TUPLE, grad=0, leaf=0, items=group) for group in zip(*(v.items for v in args.positional))
        )  # type: ignore[misc]
        return result.evolve(items=groups)
    if name == "reversed" and first.items is not None:
        return result.evolve(items=tuple(reversed(first.items)))
    if name == "len":
        return _len(first, result)
    if name == "int" and first.dim is not None:
        return int_value(first.dim.value) if first.dim.value is not None else result.evolve(dim=first.dim)
    if name in ("max", "min") and len(args.positional) == 2:
        a, b = (dim_of(v) for v in args.positional)
        if a.value is not None and b.value is not None:
            return int_value(max(a.value, b.value) if name == "max" else min(a.value, b.value))
        if not a.is_unknown and a == b:
            return result.evolve(dim=a)
    return result


# =====================================================================================================
# Hooks: layers and modules
# =====================================================================================================
def layer_call(
    flow: Flow,
    node: ast.Call,
    module: Value,
    args: Arguments,
    result: Value,
    state: Any = None,
    member: bool = False,
) -> Value:
    """`layer(x, ...)` of a torch.nn layer: the output shape from its spec."""
    layer = module.layer
    cls = module.cls or ""
    name = cls.rsplit(".", 1)[-1]
    if name == "Softmax":
        flow.semantics.shape_index.softmax.add(node)  # its result: probabilities
    if name == "Sequential" and module.items is None and module.elem is not None and state is not None:
        return _repeated(flow, node, module.elem, args, result, state)
    if name == "CrossEntropyLoss" and args.positional:
        _softmax_into_ce(flow, node, cls, args.positional[0])
        if len(args.positional) >= 2:
            _ce_target(flow, node, cls, args.positional[0], args.positional[1])
    if not isinstance(layer, Layer):
        return result
    if layer.dtype == "float32" and args.positional:
        _layer_dtype(flow, node, module, args.positional[0])
    converted = call_args(args)
    if converted is None:
        return result
    positional, keywords = converted
    inputs = tuple(
        p if isinstance(p, (Shape, tuple)) or p is None else UNKNOWN_SHAPE if p is UNKNOWN_DIM else p
        for p in positional
    )
    out = layer.spec.output(*inputs, **keywords)
    if isinstance(out, ShapeError):
        kind = "loss" if name.endswith("Loss") else "layer"
        first_value = args.positional[0] if args.positional else None
        _error(
            flow,
            node,
            out,
            kind,
            str(layer.spec),
            _shapes(inputs) + _nested_shapes(inputs),
            (module, first_value, member),
        )
        return _with_result(result, out.shape) if out.warning and out.shape is not None else result
    if out is None:
        return result
    value = _with_result(result, out)
    if value.dtype is None and value.kinds & TENSORISH and args.positional:
        dtype = args.positional[0].dtype
        if name in ("Embedding", "EmbeddingBag"):
            value = value.evolve(dtype=layer.dtype)
        elif dtype is not None and dtype.startswith(("float", "bfloat")) and not name.endswith("Loss"):
            value = value.evolve(dtype=dtype)  # a float layer computes in its input's dtype
    first = inputs[0] if inputs else None
    merged = marker(first)
    if merged is not None and value.kinds & TENSORISH and value.shape is not None:
        value = value.evolve(shape=with_marker(value.shape, merged))
    return value


def _repeated(flow: Flow, node: ast.Call, elem: Value, args: Arguments, result: Value, state: Any) -> Value:
    """`nn.Sequential(*[Block(...) for _ in range(n)])(x)`: the block applied n >= 0 times. When one
    application keeps the shape, that is the shape; otherwise the shapes are joined."""
    if not elem.is_module or len(args.positional) != 1 or args.keywords:
        return result
    from gradguard.engine.interpreter import Arguments as _Arguments

    x = args.positional[0]
    shapes = [x.shape]
    value = x
    for _ in range(3):
        value = flow.semantics.module_call(flow, node, elem, _Arguments(node, [value], {}), state)
        if not value.is_tensor or value.shape is None:
            return result
        if value.shape == shapes[-1]:
            break
        shapes.append(value.shape)
    else:
        shapes.append(None)
    joined = shapes[0]
    for other in shapes[1:]:
        joined = join_shapes(joined, other)
    return (
        result.evolve(shape=joined)
        if joined is not None and (result.kinds & TENSORISH or result.kinds == ANY)
        else result
    )


_SEQUENTIAL_MEMBERS = "self.__sequential_members__"


def _is_super(node: ast.Call) -> bool:
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "super"
    )


def _base_init(flow: Flow, node: ast.Call, args: Arguments, state: Any) -> None:
    """`super().__init__(*layers)` in a call context of the `__init__` of a subclass of nn.Sequential:
    the instance remembers its members (a pseudo attribute of the summary, never of the class)."""
    cls = flow.class_node
    if cls is None or getattr(flow.func, "name", "") != "__init__":
        return
    module = flow.semantics.module
    if not any(
        module.qualname(b) in ("torch.nn.Sequential", "torch.nn.modules.container.Sequential")
        for b in cls.bases
    ):
        return
    members: list[Value] = []
    for sub, value in zip(node.args, args.positional):
        if isinstance(sub, ast.Starred):
            spread = starred_items(value)
            if spread is None:
                return
            members.extend(spread)
        else:
            members.append(value)
    if args.keywords or not all(m.is_module for m in members):
        return
    state.env[_SEQUENTIAL_MEMBERS] = Value(TUPLE, grad=0, leaf=0, items=tuple(members))


def _base_layer_call(flow: Flow, node: ast.Call, layer: Layer, args: Arguments, result: Value) -> Value:
    converted = call_args(args)
    if converted is None:
        return result
    inputs = tuple(UNKNOWN_SHAPE if p is UNKNOWN_DIM else p for p in converted[0])
    out = layer.spec.output(*inputs, **converted[1])
    if isinstance(out, ShapeError):
        _error(flow, node, out, "layer", str(layer.spec), _shapes(inputs))
        return result
    if out is None:
        return result
    return _with_result(result if result.kinds != ANY or not isinstance(out, Shape) else result, out)


def base_forward(
    semantics: Semantics,
    flow: Flow,
    node: ast.Call,
    module: Value,
    args: Arguments,
    result: Value,
    state: Any,
) -> Value:
    """Calling an instance of a module class of the file that has no `forward` of its own: a
    subclass of nn.Sequential runs its members in turn; a subclass of a layer is that layer."""
    layer = module.layer
    if not isinstance(layer, Instance):
        return result
    if layer.base is not None:
        return _base_layer_call(flow, node, layer.base, args, result)
    if len(args.positional) != 1 or args.keywords:
        return result
    members = layer.attrs(semantics, flow, module).get(_SEQUENTIAL_MEMBERS[5:])
    if members is None or not members.items:
        return result
    from gradguard.engine.interpreter import Arguments as _Arguments

    value = args.positional[0]
    for member in members.items:
        value = semantics.module_call(flow, node, member, _Arguments(node, [value], {}), state)
    if value.is_tensor and value.shape is not None and (result.kinds & TENSORISH or result.kinds == ANY):
        return result.evolve(shape=value.shape)
    return result


def _nested_shapes(inputs: tuple) -> tuple:
    found: list[Shape] = []
    for item in inputs:
        if isinstance(item, tuple):
            found.extend(s for s in item if isinstance(s, Shape))
    return tuple(found)


def module_attribute(module: Value, attr: str, result: Value) -> Value:
    """`self.fc.in_features`, `self.fc.weight`, ... of a torch.nn layer; a member of a ModuleDict."""
    layer = module.layer
    if isinstance(layer, Members):
        member = layer.members.get(attr)
        return member if member is not None and result.kinds == ANY else result
    spec = layer_of(module)
    if spec is None:
        return result
    params = spec.params
    if attr in params and result.kinds & (INT | ANY) and not result.kinds & TENSORISH:
        v = params[attr]
        d = (
            v
            if isinstance(v, Dim)
            else (Dim.const(v) if isinstance(v, int) and not isinstance(v, bool) else None)
        )
        if d is not None and not d.is_unknown:
            return int_value(d.value) if d.value is not None else result.evolve(dim=d)
        return result
    if result.kinds & TENSORISH:
        shape = _parameter_shape(spec, attr)
        if shape is not None:
            return result.evolve(shape=shape)
    return result


def _parameter_shape(spec: LayerSpec, attr: str) -> Shape | None:
    name, p = spec.name, spec.params

    def d(key: str) -> Dim:
        v = p.get(key)
        return (
            v
            if isinstance(v, Dim)
            else (Dim.const(v) if isinstance(v, int) and not isinstance(v, bool) else UNKNOWN_DIM)
        )

    if name in ("Linear",):
        if attr == "weight":
            return Shape((d("out_features"), d("in_features")))
        if attr == "bias":
            return Shape((d("out_features"),))
    if name in ("Embedding",) and attr == "weight":
        return Shape((d("num_embeddings"), d("embedding_dim")))
    if name.startswith("Conv") and name[-2:] in ("1d", "2d", "3d") and not name.startswith("ConvTranspose"):
        n = int(name[-2])
        if attr == "bias":
            return Shape((d("out_channels"),))
        if attr == "weight":
            k = p.get("kernel_size")
            ks = tuple(k) if isinstance(k, (tuple, list)) else (k,) * n
            if len(ks) != n:
                return None
            groups = d("groups")
            inner = d("in_channels") // groups if groups.value != 1 else d("in_channels")
            return Shape(
                (
                    d("out_channels"),
                    inner,
                    *(ss.dim(x) if isinstance(x, (int, Dim)) else UNKNOWN_DIM for x in ks),
                )
            )
    if name.startswith(("BatchNorm", "InstanceNorm")) and attr in (
        "weight",
        "bias",
        "running_mean",
        "running_var",
    ):
        return Shape((d("num_features"),))
    return None


def _layer_dtype(flow: Flow, node: ast.Call, module: Value, value: Value) -> None:
    name = (module.cls or "").rsplit(".", 1)[-1]
    if value.is_tensor and value.dtype == "float64" and name in _FLOAT32_LAYERS:
        _record(flow, Problem("GG504", node, "dtype", name, data=(module, value)))


_FLOAT32_LAYERS = frozenset({"Linear", "Conv1d", "Conv2d", "Conv3d", "LSTM", "GRU", "RNN"})


def _matmul_dtype(
    flow: Flow, node: ast.AST, left: Value, right: Value, op: str, left_node: Any, right_node: Any
) -> None:
    a, b = left.dtype, right.dtype
    if {a, b} == {"float32", "float64"} and left.is_tensor and right.is_tensor:
        wrong = left_node if a == "float64" else right_node
        _record(flow, Problem("GG504", node, "matmul", op, data=(a, b, wrong)))


_FLOATS = {"float32": "Float", "float64": "Double", "float16": "Half", "bfloat16": "BFloat16"}


def _ce_target(flow: Flow, node: ast.AST, what: str, logits: Value, target: Value) -> None:
    """`cross_entropy(logits, y)` with `y` of class-index shape but a float dtype."""
    if what.rsplit(".", 1)[-1] not in _CE_NAMES or not target.is_tensor:
        return
    name = _FLOATS.get(target.dtype or "")
    if name is None or not isinstance(logits.shape, Shape) or not isinstance(target.shape, Shape):
        return
    if ss.ce_target_kind(logits.shape, target.shape) != "indices":
        return
    x, t = logits.shape, target.shape
    if not (x.exact and t.exact and len(t.dims) == len(x.dims) - 1):
        return  # a target of the wrong rank is a shape problem, reported as such
    error = ShapeError(f"expected target dtype to be Long or Byte, but got {name}", code="GG509")
    _record(
        flow, Problem("GG509", node, "target_dtype", what.rsplit(".", 1)[-1], error, (x, t), target.dtype)
    )


# (by the whole last name: `binary_cross_entropy` also ends with "cross_entropy", and takes probabilities)
_CE_NAMES = frozenset({"CrossEntropyLoss", "cross_entropy"})


def _softmax_into_ce(flow: Flow, node: ast.AST, what: str, value: Value) -> None:
    """`CrossEntropyLoss()(softmax(...), y)`: the loss applies log_softmax itself."""
    if what.rsplit(".", 1)[-1] not in _CE_NAMES:
        return
    softmax = flow.semantics.shape_index.softmax
    if value.sites and value.is_tensor and value.sites <= softmax:
        _record(flow, Problem("GG509", node, "softmax", what.rsplit(".", 1)[-1], data=value.sites))


# =====================================================================================================
# Hooks: operators, attributes, indexing, names
# =====================================================================================================
_BINARY_NAMES = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
    ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
}  # fmt: skip


def binary(flow: Flow, op: ast.operator, node: ast.AST, left: Value, right: Value, result: Value) -> Value:
    """`a + b`, `a @ b`, ... after the interpreter computed the result's facts."""
    left_tensor = _tensorish(left)
    right_tensor = _tensorish(right)
    if not (left_tensor or right_tensor):
        if isinstance(op, ast.Add) and left.items is not None and right.items is not None:
            if left.kinds in (LIST, TUPLE) and left.kinds == right.kinds and not result.items:
                items = left.items + right.items
                if len(items) <= MAX_ITEMS:
                    return result.evolve(items=items, elem=join_all(items) if items else None)
        return binary_int(op, left, right, result)
    symbol_ = _BINARY_NAMES.get(op.__class__)
    if symbol_ is None:
        return result
    a = left.shape if left_tensor else (_scalar(left))
    b = right.shape if right_tensor else (_scalar(right))
    if (a == 1 or b == 1) and not isinstance(op, ast.MatMult):
        # a Python number with a tensor: the tensor's shape
        shape = b if a == 1 else a
        if isinstance(shape, Shape):
            return result.evolve(shape=shape)
        return result
    if isinstance(op, ast.MatMult):
        if left_tensor and right_tensor and isinstance(node, ast.BinOp):
            _matmul_dtype(flow, node, left, right, "@", node.left, node.right)
    if a is None or b is None:
        known = a if a is not None else b
        if (
            isinstance(op, ast.MatMult)
            or not isinstance(known, Shape)
            or not (result.kinds & TENSORISH or result.kinds == ANY)
        ):
            return result
        # an unknown operand: it may add leading dims and stretch the known one's dims of size 1
        stretched = ss.broadcast(known, None)
        return result.evolve(shape=stretched) if isinstance(stretched, Shape) and stretched.dims else result
    if left_tensor:
        out = ss.op_output(symbol_, a, (b,))
    else:
        out = ss.op_output("__r" + _DUNDER[symbol_][2:], b, (a,)) if symbol_ in _DUNDER else None
    if isinstance(out, ShapeError):
        _error(flow, node, out, "binary", symbol_, (a, b))
        return result
    if not isinstance(out, Shape):
        return result
    merged = marker(a) or marker(b)
    return result.evolve(shape=with_marker(out, merged) if merged else out)


def _tensorish(value: Value) -> bool:
    """A tensor, or a value of unknown kind that has a tensor's shape (a module's output)."""
    if value.kinds & TENSORISH and value.is_tensor:
        return True
    return value.kinds == ANY and isinstance(value.shape, Shape)


_DUNDER = {"+": "__add__", "-": "__sub__", "*": "__mul__", "/": "__truediv__", "@": "__matmul__"}


def _scalar(value: Value) -> Any:
    """A non-tensor operand of arithmetic: a Python number is a 0-d operand; anything else unknown."""
    if value.known and value.is_only(NUMBER):
        return 1
    return None


def compare(node: ast.Compare, operands: list[Value], result: Value) -> Value:
    if not result.is_tensor or len(operands) != 2:
        return result
    shapes = []
    for v in operands:
        if v.is_tensor:
            if not isinstance(v.shape, Shape):
                return result
            shapes.append(v.shape)
        elif v.known and v.is_only(NUMBER):
            shapes.append(Shape(()))
        else:
            return result
    out = ss.broadcast(*shapes)
    return result.evolve(shape=out) if isinstance(out, Shape) else result


def unary(op: ast.unaryop, operand: Value, result: Value) -> Value:
    if isinstance(op, ast.Not):
        return result
    if operand.is_tensor:
        return result.evolve(shape=operand.shape) if operand.shape is not None else result
    if isinstance(op, ast.USub):
        return negate(operand, result)
    if isinstance(op, ast.UAdd):
        return result if result.dim is not None or operand.dim is None else result.evolve(dim=operand.dim)
    return result


def tensor_attribute(base: Value, attr: str, result: Value) -> Value:
    shape = base.shape
    if not isinstance(shape, Shape):
        return result
    if attr == "shape":
        return size_value(shape)
    if attr in ("T", "mT", "H", "mH"):
        out = ss.op_output(attr, shape)
        return result.evolve(shape=out) if isinstance(out, Shape) else result
    if attr == "ndim":
        return int_value(len(shape.dims)) if shape.exact else result
    if attr in ("data", "grad", "real", "imag"):
        return result.evolve(shape=shape)
    return result


def subscript(flow: Flow, node: ast.Subscript, base: Value, index: Value, result: Value) -> Value:
    """`x[...]` of a tensor, `x.shape[i]`/`x.shape[a:b]` of a size."""
    shape = base.shape
    if base.kinds & TENSORISH and base.is_tensor:
        # (the view the interpreter made of the base still has the base's shape)
        unknown = result.evolve(shape=None) if result.shape is not None else result
        if not isinstance(shape, Shape):
            return unknown
        item = _index(flow, node.slice)
        if item is _NO_VALUE:
            return unknown
        out = ss.op_output("__getitem__", shape, (item,))
        if isinstance(out, Shape):
            return result.evolve(shape=out)
        return unknown
    if base.kinds in (SIZE, TUPLE, LIST) and isinstance(node.slice, (ast.UnaryOp, ast.Slice, ast.Constant)):
        dims = shape.dims if base.kinds == SIZE and isinstance(shape, Shape) and shape.exact else None
        items = base.items
        if items is not None:
            seq = list(items)
        elif dims is not None:
            seq = [
                int_value(d.value) if d.value is not None else Value(INT, grad=0, leaf=0, dim=d) for d in dims
            ]
        else:
            return result
        if isinstance(node.slice, ast.Slice):
            bounds = [
                _literal(b) if b is not None else None
                for b in (node.slice.lower, node.slice.upper, node.slice.step)
            ]
            if any(b is _NO_VALUE or (b is not None and not isinstance(b, int)) for b in bounds):
                return result
            part = seq[slice(*bounds)]
            if base.kinds == SIZE:
                return size_value(Shape([dim_of(v) for v in part]))
            return Value(base.kinds, grad=0, leaf=0, items=tuple(part), elem=join_all(part) if part else None)
        position = _literal(node.slice)
        if isinstance(position, int) and not isinstance(position, bool) and -len(seq) <= position < len(seq):
            return seq[position]
    return result


def _index(flow: Flow, node: ast.AST) -> Any:
    """A tensor index as symshape takes it."""
    literal = _literal(node)
    if literal is not _NO_VALUE:
        if isinstance(literal, (float, str)):
            return _NO_VALUE
        return literal
    if isinstance(node, ast.Slice):
        parts: list[int | Dim | None] = []
        for bound in (node.lower, node.upper, node.step):
            if bound is None:
                parts.append(None)
                continue
            v = arg_of(flow.value_of(bound), bound)
            if not isinstance(v, (int, Dim)) or isinstance(v, bool):
                return _NO_VALUE
            parts.append(v)
        return slice(*parts)
    if isinstance(node, ast.Tuple):
        items = tuple(_index(flow, e) for e in node.elts)
        return _NO_VALUE if any(i is _NO_VALUE for i in items) else items
    value = flow.value_of(node)
    if value.is_tensor:
        if not isinstance(value.shape, Shape):
            return _NO_VALUE
        if value.dtype == "bool":
            return ss.Mask(value.shape)
        if value.dtype in ("int64", "int32", "int16", "int8", "uint8"):
            return value.shape
        return _NO_VALUE
    if isinstance(node, ast.List):
        listed = [_literal(e) for e in node.elts]
        return listed if all(isinstance(i, int) and not isinstance(i, bool) for i in listed) else _NO_VALUE
    if value.dim is not None:
        return value.dim
    return _NO_VALUE


def unknown_attribute(flow: Flow, node: ast.Attribute, base: Value, result: Value) -> Value:
    """`config.n_embd` of an unknown object: the symbol `config.n_embd`."""
    if result.dim is not None or result.kinds & ~(ANY) and result.known:
        return result
    text = _dotted(node)
    if text is None:
        return result
    root: ast.expr = node
    while isinstance(root, ast.Attribute):
        root = root.value
    where = None
    if isinstance(root, ast.Name):
        defs = flow.reaching(root)
        if len(defs) == 1:
            where = next(iter(defs))
    if where is None:
        where = flow.func
    return result.evolve(dim=symbol(text, where))


def _dotted(node: ast.AST) -> str | None:
    """`config.n_embd` (at most three attributes deep)."""
    text = dotted_name(node)
    return text if text is not None and text.count(".") <= 3 else None


_LOOP_HEADS = (ast.For, ast.AsyncFor, ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


def named(value: Value, name: str, stmt: ast.AST) -> Value:
    """An int bound to a name without a known value: the symbol of that name. The symbol of a loop
    variable is marked (`n@~12`): it stands for a different value in each iteration."""
    if value.kinds == INT and value.dim is None:
        if isinstance(stmt, _LOOP_HEADS):
            return value.evolve(dim=ss.sym(f"{name}{_LOOP}{getattr(stmt, 'lineno', 0)}"))
        return value.evolve(dim=symbol(name, stmt))
    return value


def loop_carried(state: Any, loop: ast.AST) -> Any:
    """The state at the end of a `for` body, going back to the loop head: what collections hold
    (appended in this iteration) is taken as `loop_element` (widened at the loop head)."""
    widened = {}
    for name, value in state.env.items():
        if value.elem is not None or value.items is not None:
            new = loop_element(value, loop, top=False)
            if new is not value:
                widened[name] = new
    if not widened:
        return state
    state = state.copy()
    state.env.update(widened)
    return state


def _loop_dependent(thing: Any, depth: int, mark: str) -> bool:
    """Whether a layer / module instance / key / shape mentions the symbol of the variable of the
    loop whose symbols end in `mark`."""
    if depth > 8:
        return True
    if isinstance(thing, Dim):
        return any(s.endswith(mark) for s in thing.symbols())
    if isinstance(thing, Shape):
        return any(_loop_dependent(d, depth + 1, mark) for d in thing.dims)
    if isinstance(thing, (Layer, Instance)):
        return _loop_dependent(thing.key, depth + 1, mark)
    if isinstance(thing, (tuple, list, frozenset)):
        return any(_loop_dependent(t, depth + 1, mark) for t in thing)
    return False


def loop_element(value: Value, loop: ast.AST, depth: int = 0, top: bool = True) -> Value:
    """The element of a collection built in the iterations of `loop` (a comprehension's element,
    what a `for` body appends): the facts that mention the loop variable's symbol are dropped, as
    that symbol stands for a different value in each element (`[nn.Linear(n, n - 1) for n in
    sizes]` holds Linear(10, 9), Linear(9, 8), ..., not one Linear(n, n - 1) n times)."""
    mark = f"{_LOOP}{getattr(loop, 'lineno', 0)}"
    changes: dict[str, Any] = {}
    shape = value.shape if top else None
    if isinstance(shape, Shape) and _loop_dependent(shape, 0, mark):
        changes["shape"] = Shape(
            [UNKNOWN_DIM if _loop_dependent(d, 0, mark) else d for d in shape.dims], shape.exact
        )
    if top and value.dim is not None and _loop_dependent(value.dim, 0, mark):
        changes["dim"] = None
    if top and value.layer is not None and _loop_dependent(value.layer, 0, mark):
        changes["layer"] = None
    if depth < 4:
        if value.elem is not None:
            elem = loop_element(value.elem, loop, depth + 1)
            if elem is not value.elem:
                changes["elem"] = elem
        if value.items is not None:
            items = tuple(loop_element(v, loop, depth + 1) for v in value.items)
            if any(a is not b for a, b in zip(items, value.items, strict=True)):
                changes["items"] = items
    return value.evolve(**changes) if changes else value


def unpack(
    flow: Flow, target: ast.Tuple | ast.List, value: Value, source: ast.AST | None, state: Any, stmt: ast.AST
) -> Value:
    """`b, t, c = x.size()` / `x.shape` of a tensor whose shape is not known: the names become
    symbols and `x` gets the shape `[b, t, c]`."""
    if value.kinds != SIZE or value.items is not None:
        return value
    elts = target.elts
    if any(not isinstance(e, ast.Name) for e in elts):
        return value
    shape = value.shape
    if isinstance(shape, Shape) and not shape.exact and len(shape.dims) > len(elts):
        return value
    dims = []
    known_tail = list(shape.dims) if isinstance(shape, Shape) else []
    offset = len(elts) - len(known_tail)
    for i, e in enumerate(elts):
        j = i - offset
        if 0 <= j < len(known_tail) and not known_tail[j].is_unknown:
            dims.append(known_tail[j])
        else:
            dims.append(symbol(e.id, stmt))  # type: ignore[attr-defined]
    new_shape = Shape(dims)
    # the tensor the size came from now has a known rank
    receiver = None
    if (
        isinstance(source, ast.Call)
        and isinstance(source.func, ast.Attribute)
        and source.func.attr == "size"
        and not source.args
    ):
        receiver = source.func.value
    elif isinstance(source, ast.Attribute) and source.attr == "shape":
        receiver = source.value
    if isinstance(receiver, ast.Name) and receiver.id in state.env:
        held = state.env[receiver.id]
        if (held.is_tensor or held.kinds == ANY) and (
            held.shape is None or (isinstance(held.shape, Shape) and not held.shape.exact)
        ):
            state.env[receiver.id] = held.evolve(shape=new_shape)
    return size_value(new_shape)


# =====================================================================================================
# Parameters (natural contexts) and annotations
# =====================================================================================================
def parameter(flow: Flow, func: ast.AST, arg: ast.arg, default: ast.expr | None, value: Value) -> Value:
    """What a parameter holds when the caller did not pass it: in a call context, the default; in
    the natural context, a symbol for an int and the annotated shape for a tensor."""
    if not flow.natural:
        if default is not None:
            literal = _literal(default)
            if isinstance(literal, bool) and value.kinds & BOOL:
                return TRUE if literal else FALSE
            if isinstance(literal, int) and not isinstance(literal, bool) and value.kinds & INT:
                return int_value(literal)
            if value.kinds == ANY and isinstance(default, (ast.Name, ast.Attribute)):
                from gradguard.engine.interpreter import State

                evaluated = flow._eval(default, State({}, {}, {}, None))
                if evaluated.kinds in (1 << 22, 1 << 17):  # REF, CLASS: `act_layer=nn.GELU`
                    return evaluated
        return value
    kinds = value.kinds
    if kinds & TENSORISH:
        shape = annotation_shape(arg.annotation, func)
        if shape is not None:
            return value.evolve(shape=shape)
        return value
    if (kinds == INT or kinds == ANY) and value.dim is None:
        if arg.arg in ("self", "cls"):
            return value
        return value.evolve(dim=symbol(arg.arg, arg))
    return value


def annotation_shape(annotation: ast.expr | None, func: ast.AST) -> Shape | None:
    """`Float[Tensor, "b t d"]` (jaxtyping) or `Annotated[Tensor, Shape("b", "t")]`."""
    if not isinstance(annotation, ast.Subscript):
        return None
    head = annotation.value
    name = head.attr if isinstance(head, ast.Attribute) else head.id if isinstance(head, ast.Name) else ""
    inner = annotation.slice
    if not isinstance(inner, ast.Tuple) or len(inner.elts) < 2:
        return None
    spec = inner.elts[1]
    if name == "Annotated":
        if isinstance(spec, ast.Call) and spec.args:
            words = [a.value if isinstance(a, ast.Constant) else None for a in spec.args]
            if any(w is None for w in words):
                return None
            return _shape_from_words([str(w) for w in words], func)
        return None
    if isinstance(spec, ast.Constant) and isinstance(spec.value, str):
        return _shape_from_words(spec.value.split(), func)
    return None


def _shape_from_words(words: list[str], func: ast.AST) -> Shape | None:
    dims: list[Dim] = []
    exact = True
    for i, word in enumerate(words):
        word = word.strip()
        if word in ("...", "*batch") or word.startswith("*"):
            if i != 0:
                return None
            exact = False
            continue
        if word.lstrip("#").isdigit():
            dims.append(Dim.const(int(word.lstrip("#"))))
        elif word in ("_", "?"):
            dims.append(UNKNOWN_DIM)
        elif word.isidentifier():
            dims.append(symbol(word, func))
        else:
            try:
                d = ss.dim(word)
            except Exception:  # noqa: BLE001 - a word we do not understand: unknown
                d = UNKNOWN_DIM
            dims.append(d if not d.symbols() else d.subs({s: symbol(s, func) for s in d.symbols()}))
    return Shape(dims, exact)


# =====================================================================================================
# Roots, contexts and the problems of a unit
# =====================================================================================================
# `base.attr =` / `base.attr +=` (not `==`): group 1 the base, 2 the attribute, 3 the rest of the line
_ATTRIBUTE_STORE = re.compile(
    r"(?<![\w.])([A-Za-z_][\w.]*)\.([A-Za-z_]\w*)\s*(?:[-+*/@%&|^]|//|\*\*)?=(?!=)([^\n]*)"
)


class _Every(frozenset):
    def __contains__(self, item: object) -> bool:
        return True


_EVERY_NAME = _Every({"*"})


class ShapeIndex:
    """Per `Semantics`: the call contexts of each function and the roots that give concrete shapes."""

    def __init__(self) -> None:
        self.summaries: dict[tuple, Flow] = {}  # call-summary key -> its flow
        self.calls: dict[Flow, list[Flow]] = {}  # caller flow -> the summary flows it called
        self.sites: dict[tuple, ast.AST] = {}  # (caller, callee) -> the call node
        self.by_function: dict[ast.AST, list[Flow]] = {}
        self.softmax: set[ast.AST] = set()  # softmax calls (their results' allocation sites)
        self.source: Any = None  # the file's SourceFile, for the probe comments (set by whoever has it)
        self.probes: dict[str, Flow] = {}  # class name -> the flow of its probe comment
        # evaluating what a root reaches (the script, a probe comment): instances refine `self.<attr>`
        self.concrete = False
        self._roots: list[Flow] | None = None

    def replaced(self, semantics: Semantics) -> frozenset:
        """Attribute names the file assigns on something else than `self` (`model.fc = ...`,
        `setattr(model, "fc", ...)`): what a module's `__init__` stored there may not be what
        `forward` finds. Read from the text (a cheap superset; `a.weight = b.weight`, weights
        tied with the same shape, does not count)."""
        found = self.__dict__.get("_replaced")
        if found is None:
            names = set()
            text = self.source.text if self.source is not None else ast.unparse(semantics.tree)
            for match in _ATTRIBUTE_STORE.finditer(text):
                base, attr, rest = match.group(1), match.group(2), match.group(3)
                if base in ("self", "cls"):
                    continue
                if re.match(r"\s*[\w.]+\." + re.escape(attr) + r"\s*(#.*)?$", rest):
                    continue
                names.add(attr)
            if "setattr(" in text:
                names.add("*")
            found = self.__dict__["_replaced"] = frozenset(names)
        if "*" in found:
            return _EVERY_NAME
        return found

    def note_summary(self, key: tuple, flow: Flow) -> None:
        self.summaries[key] = flow
        if flow.func is not None:
            self.by_function.setdefault(flow.func, []).append(flow)

    def note_call(self, caller: Flow, key: tuple, node: ast.AST | None = None) -> None:
        callee = self.summaries.get(key)
        if callee is None or callee is caller:
            return
        called = self.calls.setdefault(caller, [])
        if callee not in called:
            called.append(callee)
            if node is not None:
                self.sites.setdefault((caller, callee), node)

    def reachable(self, starts: list[Flow]) -> list[Flow]:
        return list(self.paths(starts))

    def paths(self, starts: list[Flow]) -> dict[Flow, Flow | None]:
        """Every flow the starts reach, with the flow that first called it (None for a start)."""
        seen: dict[Flow, Flow | None] = {}
        todo: list[tuple[Flow, Flow | None]] = [(s, None) for s in reversed(starts)]
        while todo:
            flow, parent = todo.pop()
            if flow in seen:
                continue
            seen[flow] = parent
            todo.extend((c, flow) for c in reversed(self.calls.get(flow, ())))
        return seen


SCRIPT_TRIGGERS = ("randn(", "rand(", "zeros(", "ones(", "empty(", "randint(", "tensor(", "from_numpy(",
                    "full(", "arange(", "Tensor(", "linspace(", "eye(", "one_hot(")  # fmt: skip


def roots(semantics: Semantics) -> list[Flow]:
    """The flows that give concrete shapes: the script statements (when they build tensors) and the
    probe comments' contexts."""
    index = semantics.shape_index
    # whether the script builds tensors decides whether it is a root at all: the findings that rest
    # on the roots rest on that too (an edit that adds or removes the script's `model(x)` call)
    semantics.consulted.add(SCRIPT_ROOTS)
    if index._roots is not None:
        return index._roots
    found: list[Flow] = []
    index._roots = found
    concrete = index.concrete
    index.concrete = True
    try:
        _roots(semantics, found)
    finally:
        index.concrete = concrete
    return found


def _roots(semantics: Semantics, found: list[Flow]) -> None:
    index = semantics.shape_index
    script = semantics.script
    if script and _builds_tensors(index.source, script):
        found.append(semantics.flow(None))
    found.extend(_probe_flows(semantics))


def _builds_tensors(source: Any, script: list[ast.stmt]) -> bool:
    """Do the script statements build tensors (a cheap text test when the source is known)?"""
    if source is not None:
        lines = source.lines
        for stmt in script:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                continue
            text = "".join(lines[stmt.lineno - 1 : (stmt.end_lineno or stmt.lineno)])
            if any(t in text for t in SCRIPT_TRIGGERS):
                return True
        return False
    for stmt in script:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call):
                name = (
                    node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                )
                if name + "(" in SCRIPT_TRIGGERS:
                    return True
    return False


def probe_flows(semantics: Semantics) -> dict[str, Flow]:
    """The flow of each probe comment (by class name): `Net(...)` built and called on its input."""
    roots(semantics)
    return semantics.shape_index.probes


def _probe_flows(semantics: Semantics) -> list[Flow]:
    source = semantics.shape_index.source
    if source is None or "probe" not in source.text:
        return []
    from gradguard.engine.interpreter import Arguments, Flow, State
    from gradguard.engine.probe_comments import probe_comments

    flows = []
    for name, comment in probe_comments(source, semantics.tree).items():
        if comment.ctor is None or comment.inputs is None or name not in semantics.top:
            continue
        flow = Flow(semantics, None, [], natural=False)
        state = State({}, {}, {}, None)
        call = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=[], keywords=[])
        call.lineno = call.end_lineno = comment.line
        call.col_offset = call.end_col_offset = 0
        call.gradguard_probe = True  # type: ignore[attr-defined]
        model = flow._eval(comment.ctor, state)
        if not model.is_module:
            continue
        inputs = [_probe_input(flow, state, spec, comment.line) for spec in comment.inputs]
        semantics.module_call(flow, call, model, Arguments(call, inputs, {}), state)
        flows.append(flow)
        semantics.shape_index.probes[name] = flow
    return flows


def _probe_input(flow: Flow, state: Any, spec: dict, line: int) -> Value:
    kind = spec.get("kind")
    if kind in ("shape", "long"):
        dtype = "float32" if kind == "shape" else "int64"
        return Value(TENSOR, grad=0, leaf=2, dtype=dtype, shape=Shape(spec.get("shape") or ()))
    if kind == "value":
        v = spec.get("value")
        if v is None:
            return NONE_VALUE
        if isinstance(v, bool):
            return Value(BOOL, grad=0, leaf=0)
        if isinstance(v, int):
            return int_value(v)
        return Value(FLOAT if isinstance(v, float) else STR, grad=0, leaf=0)
    if kind == "expr":
        try:
            expr = ast.parse(spec["expr"], mode="eval").body
        except SyntaxError:
            return UNKNOWN
        for node in ast.walk(expr):
            if hasattr(node, "lineno"):
                node.lineno = node.end_lineno = line  # type: ignore[attr-defined]
                node.col_offset = node.end_col_offset = 0  # type: ignore[attr-defined]
        return flow._eval(expr, state)
    return UNKNOWN


def context_flows(semantics: Semantics, func: ast.AST) -> list[Flow]:
    """The call contexts of `func` that the roots reach (their shapes are concrete)."""
    index = semantics.shape_index
    reached = index.__dict__.get("_reached")
    if reached is None:
        reached = {}
        for flow in index.reachable(roots(semantics)):
            if flow.func is not None:
                reached.setdefault(flow.func, []).append(flow)
        index.__dict__["_reached"] = reached
    return reached.get(func, [])


def values_at(
    semantics: Semantics, func: ast.AST, node: ast.AST, within: list[Flow] | None = None
) -> list[Value]:
    """The value of an expression of `func` in each call context the roots (or `within`) reach."""
    if within is None:
        found = context_flows(semantics, func)
    else:
        found = [f for f in semantics.shape_index.reachable(within) if f.func is func]
    return [f.values[node] for f in found if node in f.values]


def member(receiver: Value, attr: str) -> Value | None:
    """`self.blocks.wte` of an `nn.ModuleDict` whose members are known."""
    layer = receiver.layer
    return layer.members.get(attr) if isinstance(layer, Members) else None


def shape_at(
    semantics: Semantics, func: ast.AST | None, node: ast.AST, within: list[Flow] | None = None
) -> tuple[Value | None, bool]:
    """The value of an expression of `func` as the best context knows it: the join over the contexts
    the roots reach (a probe comment, the script's calls; `within`: only those these flows reach),
    else the natural flow. Returns (value, from_contexts)."""
    if func is not None:
        if within is None:
            found = context_flows(semantics, func)
        else:
            found = [f for f in semantics.shape_index.reachable(within) if f.func is func]
        contexts = [f for f in found if node in f.values]
        if contexts:
            return join_all(f.values[node] for f in contexts), True
        if within is not None:
            return None, False
    flow = semantics.flow(func)
    value = flow.values.get(node)
    return value, False


def may_have_problems(text: str, statement: ast.stmt, module: Any) -> bool:
    """The shape rules' cheap pre-check of a top-level def/class: a module class (a root's context
    may reach its `forward`), or text that can hold a shape problem (the words of `SHAPE_WORDS`, a
    matrix product `@` beyond decorators and docstrings)."""
    if isinstance(statement, ast.ClassDef) and module.is_module_class(statement.name):
        return True
    last = module.__dict__.get("_gg_shape_precheck")
    if last is not None and last[0] is text and last[1] is statement:
        return last[2]  # the shape rules share one unit's answer
    answer = has_shape_words(text) or has_matmul(text, statement)
    module.__dict__["_gg_shape_precheck"] = (text, statement, answer)
    return answer


def has_matmul(text: str, statement: ast.stmt) -> bool:
    """`a @ b` (or `mm(`/`matmul`) in the text: an `@` counts only beyond the statement's own
    decorators (each puts one `@` in the text) and its docstring."""
    if "mm(" in text or "matmul" in text:
        return True
    extra = text.count("@") - len(getattr(statement, "decorator_list", ()))
    if extra > 0:
        extra -= docstring_ats(text, statement)
    return extra > 0


def docstring_ats(text: str, statement: ast.stmt) -> int:
    """The `@`s on the lines that hold nothing but the docstring of `statement` (and maybe a
    trailing comment): none of them can be a matmul. `text` starts at the statement's first
    line (decorators included)."""
    body = getattr(statement, "body", None)
    if not body or "\r" in text:
        return 0
    doc = body[0]
    if not (
        isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)
    ):
        return 0
    if doc.end_lineno is None or doc.end_col_offset is None:
        return 0
    lines = text.split("\n")
    first = doc.lineno - statement_start_line(statement)
    last = doc.end_lineno - statement_start_line(statement)
    if first < 0 or last >= len(lines):
        return 0
    if lines[first].encode()[: doc.col_offset].strip():
        return 0  # code before the docstring on its first line (`def f(): """..."""`)
    rest = lines[last].encode()[doc.end_col_offset :].strip()
    if rest and not rest.startswith(b"#"):
        return 0  # code after it (`"""..."""; y = a @ b`)
    return sum(line.count("@") for line in lines[first : last + 1])


# words a scope's text must contain to hold a shape problem (plain substring tests: much faster than
# one regular expression of alternatives on large texts)
SHAPE_WORDS = (
    "view", "reshape", "flatten", "Linear", "Conv", "Norm", "LSTM", "GRU", "RNN", "Embedding", "Attention",
    "Sequential", "cat(", "stack(", "matmul", "mm(", "einsum", "Loss", "entropy", "nll_loss", "mse_loss",
    "softmax", "expand", "permute", "transpose", "randn", "zeros", "ones", "empty", "rand", "tensor(",
    "float64", "double", "numpy", "squeeze", "interpolate", "pad(", "linear(",
)  # fmt: skip


# what a function's natural context needs to show a certain shape problem on its own (inputs of unknown
# shape give none): sizes written in the code (views, factories), annotations, float64 sources, losses
SHAPE_SOURCES = (
    "view", "reshape", "flatten", "zeros", "ones", "rand", "empty", "tensor(", "Tensor(", "arange", "full(",
    "eye(", "linspace", "Float[", "Annotated[", "from_numpy", "float64", "double", "new_", "CrossEntropyLoss",
    "cross_entropy", "expand", "one_hot",
)  # fmt: skip


def has_shape_words(text: str) -> bool:
    return any(word in text for word in SHAPE_WORDS)


def problems(unit: Unit) -> list[Problem]:
    """The shape problems located in the unit: from its own flows (and the calls they make) and
    from the contexts the roots reach (the script, probe comments). Each problem's `origin` is the
    call in a root that led to it (None when the unit's own code shows it)."""

    def collect() -> list[Problem]:
        from gradguard.engine.queries import scope_text, scopes, unit_contains

        semantics = unit.semantics
        index = semantics.shape_index
        if index.source is None:
            index.source = unit.source
        starts = []
        for scope in scopes(unit):
            text = scope_text(unit, scope)
            if any(word in text for word in SHAPE_SOURCES):
                starts.append(semantics.flow(scope))
        natural = set(starts)
        extra = roots(semantics)
        if extra:
            semantics.consulted.add("")
        starts.extend(extra)
        found: dict[tuple, Problem] = {}
        parents = index.paths(starts)
        for flow in parents:
            if flow.func is not None and not flow.natural:
                top = semantics._top_name(flow.func)
                if top is not None:
                    semantics.consulted.add(top)
            for key, problem in flow.shape_problems.items():
                if (
                    key not in found
                    and unit_contains(unit, problem.node)
                    and not _guarded(unit, problem.node)
                ):
                    problem.origin = _origin(index, parents, flow, natural)
                    found[key] = problem
        return sorted(
            found.values(), key=lambda p: (getattr(p.node, "lineno", 0), getattr(p.node, "col_offset", 0))
        )

    return unit.cache("shape_problems", collect)


_GUARD_WORDS = ("shape", "size", "dim", "ndim", "numel", "len")


def _origin(index: ShapeIndex, parents: dict, flow: Flow, natural: set) -> ast.AST | None:
    """The call in a root (the script, a probe comment) whose context a flow belongs to."""
    node = None
    current: Flow | None = flow
    seen = 0
    while current is not None and seen < 64:
        seen += 1
        parent = parents.get(current)
        if parent is None:
            return None if current in natural else node
        node = index.sites.get((parent, current), node)
        current = parent
    return None


def _guarded(unit: Unit, node: ast.AST) -> bool:
    """Inside a branch whose test looks at shapes (`if x.dim() == 2:`), or a `try` that catches the
    error: the path may never run with these shapes."""
    for parent in unit.ancestors(node):
        if isinstance(parent, (ast.If, ast.While, ast.IfExp)):
            for sub in ast.walk(parent.test):
                if isinstance(sub, ast.Attribute) and sub.attr in _GUARD_WORDS:
                    return True
                if isinstance(sub, ast.Name) and sub.id in ("len", "isinstance"):
                    return True
        elif isinstance(parent, ast.Try) and parent.handlers:
            return True
        elif isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            break
    return False


__all__ = [
    "Instance",
    "Layer",
    "Problem",
    "ShapeIndex",
    "Tracked",
    "after_call",
    "annotation_shape",
    "binary",
    "join_shapes",
    "layer_call",
    "problems",
    "roots",
    "shape_at",
    "show",
]
_ = (NUMPY, UNKNOWN)
