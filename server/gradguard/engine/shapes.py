"""Static shape and dtype inference for simple, constant cases (GG5xx).

Only what is certain is reported: a shape is a tuple of ints (every dimension known)
or None; a dtype is "float32" / "float64" / "int64" or None. Names are followed back
to their binding in the same scope when that binding is the only candidate (it
dominates the use: same block or an enclosing one, no other binding in between, no
later binding in an enclosing loop).

Everything here reads the unit's buckets or small subtrees; results are cached per scope.
"""

from __future__ import annotations

import ast
import bisect
import math
from collections.abc import Iterator

from gradguard.engine.index import Unit, keyword, position

Shape = tuple[int, ...]

F32, F64, I64 = "float32", "float64", "int64"

_SHAPE_FACTORIES = {"torch.randn", "torch.rand", "torch.zeros", "torch.ones", "torch.empty"}
_FULL = {"torch.full"}
_DTYPES = {
    "torch.float64": F64,
    "torch.double": F64,
    "torch.float32": F32,
    "torch.float": F32,
    "torch.int64": I64,
    "torch.long": I64,
    "numpy.float64": F64,
    "numpy.double": F64,
    "numpy.float32": F32,
    "numpy.single": F32,
    "numpy.int64": I64,
}
_NUMPY_FLOAT_MAKERS = {
    "numpy.random.randn",
    "numpy.random.rand",
    "numpy.random.random",
    "numpy.random.normal",
    "numpy.random.uniform",
    "numpy.random.standard_normal",
    "numpy.zeros",
    "numpy.ones",
    "numpy.empty",
    "numpy.linspace",
    "numpy.eye",
    "numpy.identity",
}
# tensor methods that keep shape and dtype
_SAME = {
    "contiguous",
    "clone",
    "detach",
    "relu",
    "sigmoid",
    "tanh",
    "exp",
    "log",
    "abs",
    "neg",
    "cpu",
    "cuda",
    "requires_grad_",
    "sqrt",
    "square",
    "sin",
    "cos",
    "softmax",
    "log_softmax",
    "clamp",
    "pin_memory",
}
_TORCH_SAME = {
    "torch.relu",
    "torch.sigmoid",
    "torch.tanh",
    "torch.exp",
    "torch.abs",
    "torch.sin",
    "torch.cos",
    "torch.nn.functional.relu",
    "torch.nn.functional.gelu",
    "torch.nn.functional.dropout",
    "torch.softmax",
}
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


class Bindings:
    """Name bindings of one scope (a function, or the script statements)."""

    def __init__(self, unit: Unit, scope: ast.AST | None) -> None:
        self.unit = unit
        self.scope = scope
        self.by_name: dict[str, list[tuple[ast.AST, ast.expr | None]]] = {}
        for node in scope_binders(unit).get(id(scope), ()):
            if isinstance(node, ast.Assign):
                pairs = [(t, node.value if isinstance(t, ast.Name) else None) for t in node.targets]
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)):
                pairs = [(node.target, node.value)]
            elif isinstance(node, ast.AugAssign) or isinstance(node, (ast.For, ast.AsyncFor)):
                pairs = [(node.target, None)]
            else:
                pairs = [(i.optional_vars, None) for i in node.items if i.optional_vars is not None]
            for target, value in pairs:
                if isinstance(target, ast.Name):
                    self.by_name.setdefault(target.id, []).append((node, value))
                    continue
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        self.by_name.setdefault(sub.id, []).append((node, value))
        if scope is not None:
            args = scope.args  # type: ignore[attr-defined]
            for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if arg is not None:
                    self.by_name.setdefault(arg.arg, []).append((scope, None))
        self._sorted: dict[str, list] = {}

    def value_of(self, name: str, use: ast.AST) -> ast.expr | None:
        """The expression bound to name that certainly reaches `use`, or None."""
        entries = self.by_name.get(name)
        if not entries:
            return None
        sorted_entries = self._sorted.get(name)
        if sorted_entries is None:
            sorted_entries = sorted(
                ((position(n), n, v) for n, v in entries if n is not self.scope), key=lambda e: e[0]
            )
            self._sorted[name] = sorted_entries
        use_pos = position(use)
        index = bisect.bisect_left(sorted_entries, use_pos, key=lambda e: e[0])
        chosen = None
        while index > 0:
            index -= 1
            pos, node, value = sorted_entries[index]
            # an assignment binds after its value is evaluated: `x = f(x)` reads the old x
            if isinstance(node, _BINDS_AFTER) and _contains(node, use):
                continue
            chosen = (pos, node, value)
            break
        if chosen is None:
            return None  # only the parameter (or nothing) reaches the use
        _, node, value = chosen
        if value is None:
            return None
        # the binding statement must dominate the use: its block encloses the use
        parent = self.unit.parent(node)
        if parent is None:
            if self.scope is not None:
                return None
        elif not _contains(parent, use):
            return None
        # no re-binding later in a loop that contains the use (loop-carried values)
        for anc in self.unit.ancestors(use):
            if anc is self.scope:
                break
            if isinstance(anc, _LOOPS):
                end = (anc.end_lineno or anc.lineno, anc.end_col_offset or 0)
                for pos, other, _ in sorted_entries:
                    if use_pos < pos <= end and other is not node:
                        return None
        return value


def _contains(outer: ast.AST, inner: ast.AST) -> bool:
    start = position(outer)
    end = (getattr(outer, "end_lineno", None) or start[0], getattr(outer, "end_col_offset", None) or 0)
    return start <= position(inner) and position(inner) < end


_BINDS_AFTER = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)


_BINDERS = (
    ast.Assign,
    ast.AnnAssign,
    ast.AugAssign,
    ast.For,
    ast.AsyncFor,
    ast.With,
    ast.AsyncWith,
    ast.NamedExpr,
)


def scope_binders(unit: Unit) -> dict[int, list[ast.AST]]:
    """Binding statements (assignments, for/with targets, walrus) grouped by the id of
    their enclosing function (id(None) for module level), in source order; one pass."""
    cached = unit.__dict__.get("_gg_binders")
    if cached is None:
        cached = {}
        for kind in _BINDERS:  # one type at a time: a merged list would need a sort
            for node in unit.nodes_of(kind):
                cached.setdefault(id(unit.enclosing_function(node)), []).append(node)
        unit.__dict__["_gg_binders"] = cached
    return cached


def named_calls(unit: Unit) -> list[tuple[ast.Call, str | None]]:
    """Every call of the unit with its resolved qualified name, in source order (cached:
    resolving names is the most repeated work of the GG5xx rules)."""
    cached = unit.__dict__.get("_gg_named_calls")
    if cached is None:
        call_name = unit.module.call_name
        cached = unit.__dict__["_gg_named_calls"] = [(c, call_name(c)) for c in unit.calls()]
    return cached


def calls_by_attr(unit: Unit, *names: str) -> list[ast.Call]:
    """`<anything>.name(...)` calls for any of the names, in source order (index cached)."""
    index = unit.__dict__.get("_gg_calls_by_attr")
    if index is None:
        index = {}
        for call in unit.calls():
            func = call.func
            if isinstance(func, ast.Attribute):
                index.setdefault(func.attr, []).append(call)
        unit.__dict__["_gg_calls_by_attr"] = index
    if len(names) == 1:
        return list(index.get(names[0], ()))
    found = [c for name in names for c in index.get(name, ())]
    found.sort(key=lambda c: (c.lineno, c.col_offset))
    return found


def nn_bound_names(unit: Unit) -> frozenset[str]:
    """Names assigned anywhere in the unit from a `torch.nn.*(...)` call (a cheap filter
    before looking a callee up)."""
    cached = unit.__dict__.get("_gg_nn_names")
    if cached is None:
        names = set()
        for kind in (ast.Assign, ast.AnnAssign):
            for node in unit.nodes_of(kind):
                value = node.value  # type: ignore[attr-defined]
                if isinstance(value, ast.Call) and (unit.module.call_name(value) or "").startswith(
                    "torch.nn."
                ):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]  # type: ignore[attr-defined]
                    names.update(t.id for t in targets if isinstance(t, ast.Name))
        cached = unit.__dict__["_gg_nn_names"] = frozenset(names)
    return cached


def bindings(unit: Unit, scope: ast.AST | None) -> Bindings:
    cache = unit.__dict__.setdefault("_gg_bindings", {})
    if id(scope) not in cache:
        cache[id(scope)] = Bindings(unit, scope)
    return cache[id(scope)]


class Inference:
    """Shapes and dtypes of expressions at their place in a unit."""

    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        self.module = unit.module

    # -- integers -----------------------------------------------------------------------------
    def int_value(self, node: ast.AST, depth: int = 0) -> int | None:
        if depth > 20:
            return None
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int)
            and not isinstance(node.value, bool)
        ):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.int_value(node.operand, depth + 1)
            return -inner if inner is not None else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)):
            left, right = self.int_value(node.left, depth + 1), self.int_value(node.right, depth + 1)
            if left is None or right is None:
                return None
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            return left // right if right else None
        if isinstance(node, ast.Name):
            value = self._value(node)
            return self.int_value(value, depth + 1) if value is not None else None
        # x.size(i) / x.shape[i]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "size":
            if len(node.args) == 1:
                shape = self.shape(node.func.value, depth + 1)
                index = self.int_value(node.args[0], depth + 1)
                if shape is not None and index is not None and -len(shape) <= index < len(shape):
                    return shape[index]
            return None
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "shape"
        ):
            shape = self.shape(node.value.value, depth + 1)
            index = self.int_value(node.slice, depth + 1)
            if shape is not None and index is not None and -len(shape) <= index < len(shape):
                return shape[index]
        return None

    def int_list(self, nodes: list[ast.expr], depth: int = 0) -> list[int] | None:
        if len(nodes) == 1 and isinstance(nodes[0], (ast.Tuple, ast.List)):
            nodes = nodes[0].elts
        values = [self.int_value(n, depth + 1) for n in nodes]
        if any(v is None for v in values) or any(isinstance(n, ast.Starred) for n in nodes):
            return None
        return values  # type: ignore[return-value]

    # -- shapes ---------------------------------------------------------------------------------
    def shape(self, node: ast.AST, depth: int = 0) -> Shape | None:
        if depth > 20:
            return None
        if isinstance(node, ast.Name):
            value = self._value(node)
            return self.shape(value, depth + 1) if value is not None else None
        if isinstance(node, ast.Attribute):
            if node.attr == "T":
                inner = self.shape(node.value, depth + 1)
                return tuple(reversed(inner)) if inner is not None else None
            if node.attr == "mT":
                inner = self.shape(node.value, depth + 1)
                if inner is not None and len(inner) >= 2:
                    return inner[:-2] + (inner[-1], inner[-2])
                return None
            if node.attr == "data":
                return self.shape(node.value, depth + 1)
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            return matmul_shape(self.shape(node.left, depth + 1), self.shape(node.right, depth + 1))
        if not isinstance(node, ast.Call):
            return None
        name = self.module.call_name(node)
        if name in _SHAPE_FACTORIES:
            size = keyword(node, "size")
            dims = self.int_list([size] if size is not None else node.args, depth)
            return tuple(dims) if dims is not None and all(d >= 0 for d in dims) else None
        if name in _FULL and node.args:
            dims = self.int_list([node.args[0]], depth)
            return tuple(dims) if dims is not None else None
        if name == "torch.tensor" and node.args:
            return _literal_shape(node.args[0])
        if name in ("torch.nn.Parameter", "torch.nn.parameter.Parameter") and node.args:
            return self.shape(node.args[0], depth + 1)
        if name in _TORCH_SAME and node.args:
            return self.shape(node.args[0], depth + 1)
        if name in ("torch.matmul", "torch.mm", "torch.bmm") and len(node.args) == 2:
            return matmul_shape(self.shape(node.args[0], depth + 1), self.shape(node.args[1], depth + 1))
        if name in ("torch.from_numpy", "torch.as_tensor") and node.args:
            return self.numpy_shape(node.args[0], depth + 1)
        if name == "torch.flatten" and node.args:
            return self._flatten(node.args[0], node.args[1:], node, depth)
        func = node.func
        if not isinstance(func, ast.Attribute) or name is not None:
            return None
        method, receiver = func.attr, func.value
        if method in _SAME or method in ("float", "double", "long", "half", "to", "type"):
            return self.shape(receiver, depth + 1)
        if method in ("view", "reshape"):
            inner = self.shape(receiver, depth + 1)
            dims = self.int_list(node.args, depth)
            if dims is None:
                return None
            return resolve_view(inner, dims)
        if method == "flatten":
            return self._flatten(receiver, node.args, node, depth)
        if method in ("t",) and not node.args:
            inner = self.shape(receiver, depth + 1)
            return tuple(reversed(inner)) if inner is not None and len(inner) <= 2 else None
        if method == "transpose" and len(node.args) == 2:
            inner = self.shape(receiver, depth + 1)
            a, b = self.int_value(node.args[0], depth + 1), self.int_value(node.args[1], depth + 1)
            if inner is None or a is None or b is None:
                return None
            dims = list(inner)
            try:
                dims[a], dims[b] = dims[b], dims[a]
            except IndexError:
                return None
            return tuple(dims)
        if method == "permute":
            inner = self.shape(receiver, depth + 1)
            order = self.int_list(node.args, depth)
            if (
                inner is None
                or order is None
                or sorted(o % len(inner) for o in order) != list(range(len(inner)))
            ):
                return None
            return tuple(inner[o] for o in order)
        if method == "unsqueeze" and len(node.args) == 1:
            inner = self.shape(receiver, depth + 1)
            d = self.int_value(node.args[0], depth + 1)
            if inner is None or d is None:
                return None
            if d < 0:
                d += len(inner) + 1
            if not 0 <= d <= len(inner):
                return None
            return inner[:d] + (1,) + inner[d:]
        if method in ("matmul", "mm", "bmm") and len(node.args) == 1:
            return matmul_shape(self.shape(receiver, depth + 1), self.shape(node.args[0], depth + 1))
        return None

    def _flatten(self, receiver: ast.AST, args: list[ast.expr], call: ast.Call, depth: int) -> Shape | None:
        inner = self.shape(receiver, depth + 1)
        if inner is None:
            return None
        start_node = args[0] if args else keyword(call, "start_dim")
        end_node = args[1] if len(args) > 1 else keyword(call, "end_dim")
        start = self.int_value(start_node, depth + 1) if start_node is not None else 0
        end = self.int_value(end_node, depth + 1) if end_node is not None else -1
        if start is None or end is None or not inner:
            return None
        n = len(inner)
        start, end = start % n, end % n
        if start > end:
            return None
        return inner[:start] + (math.prod(inner[start : end + 1]),) + inner[end + 1 :]

    def numpy_shape(self, node: ast.AST, depth: int = 0) -> Shape | None:
        if isinstance(node, ast.Name):
            value = self._value(node)
            return self.numpy_shape(value, depth + 1) if value is not None and depth < 20 else None
        if isinstance(node, ast.Call):
            name = self.module.call_name(node)
            if name in ("numpy.random.randn", "numpy.random.rand"):
                dims = self.int_list(node.args, depth) if node.args else None
                return tuple(dims) if dims is not None else None
            if name in ("numpy.zeros", "numpy.ones", "numpy.empty") and node.args:
                dims = self.int_list([node.args[0]], depth)
                return tuple(dims) if dims is not None else None
            if name == "numpy.array" and node.args:
                return _literal_shape(node.args[0])
        return None

    # -- dtypes -----------------------------------------------------------------------------------
    def dtype(self, node: ast.AST, depth: int = 0) -> str | None:
        """The dtype of a torch tensor expression, when certain."""
        if depth > 20:
            return None
        if isinstance(node, ast.Name):
            value = self._value(node)
            return self.dtype(value, depth + 1) if value is not None else None
        if isinstance(node, ast.Attribute) and node.attr in ("T", "mT", "data"):
            return self.dtype(node.value, depth + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            left, right = self.dtype(node.left, depth + 1), self.dtype(node.right, depth + 1)
            return left if left == right else None
        if not isinstance(node, ast.Call):
            return None
        name = self.module.call_name(node)
        if name in _SHAPE_FACTORIES or name in (
            "torch.randn_like",
            "torch.full",
            "torch.eye",
            "torch.linspace",
        ):
            explicit = keyword(node, "dtype")
            if explicit is not None:
                return _DTYPES.get(self.module.qualname(explicit) or "")
            return F32
        if name in ("torch.tensor", "torch.as_tensor") and node.args:
            explicit = keyword(node, "dtype")
            if explicit is not None:
                return _DTYPES.get(self.module.qualname(explicit) or "")
            literal = _literal_kind(node.args[0])
            if literal is not None:
                return F32 if literal == "float" else I64
            return self.numpy_dtype(node.args[0], depth + 1)
        if name == "torch.from_numpy" and node.args:
            return self.numpy_dtype(node.args[0], depth + 1)
        if name in ("torch.nn.Parameter", "torch.nn.parameter.Parameter") and node.args:
            return self.dtype(node.args[0], depth + 1)
        if name in _TORCH_SAME and node.args:
            return self.dtype(node.args[0], depth + 1)
        func = node.func
        if not isinstance(func, ast.Attribute) or name is not None:
            return None
        method, receiver = func.attr, func.value
        if method == "double":
            return F64
        if method == "float":
            return F32
        if method == "long":
            return I64
        if method == "to":
            target = node.args[0] if node.args else keyword(node, "dtype")
            if target is None:
                return None
            if (self.module.qualname(target) or "") in _DTYPES:
                return _DTYPES[self.module.qualname(target) or ""]
            if keyword(node, "dtype") is None and len(node.args) == 1 and isinstance(target, ast.Constant):
                return self.dtype(receiver, depth + 1)  # .to("cuda")
            return None
        if method in _SAME or method in (
            "view",
            "reshape",
            "flatten",
            "t",
            "transpose",
            "permute",
            "unsqueeze",
            "squeeze",
        ):
            return self.dtype(receiver, depth + 1)
        return None

    def numpy_dtype(self, node: ast.AST, depth: int = 0) -> str | None:
        if depth > 20:
            return None
        if isinstance(node, ast.Name):
            value = self._value(node)
            return self.numpy_dtype(value, depth + 1) if value is not None else None
        if not isinstance(node, ast.Call):
            return None
        name = self.module.call_name(node)
        explicit = keyword(node, "dtype")
        if explicit is not None:
            return _DTYPES.get(self.module.qualname(explicit) or "")
        if name in _NUMPY_FLOAT_MAKERS:
            return F64
        if name in ("numpy.array", "numpy.asarray") and node.args:
            kind = _literal_kind(node.args[0])
            if kind == "float":
                return F64
            return None
        func = node.func
        if isinstance(func, ast.Attribute) and name is None:
            if func.attr == "astype" and node.args:
                return _DTYPES.get(self.module.qualname(node.args[0]) or "")
            if func.attr in ("reshape", "copy", "T", "transpose", "squeeze"):
                return self.numpy_dtype(func.value, depth + 1)
        return None

    # -- helpers ------------------------------------------------------------------------------------
    def _value(self, name: ast.Name) -> ast.expr | None:
        scope = self.unit.enclosing_function(name)
        return bindings(self.unit, scope).value_of(name.id, name)


def inference(unit: Unit) -> Inference:
    cached = unit.__dict__.get("_gg_inference")
    if cached is None:
        cached = unit.__dict__["_gg_inference"] = Inference(unit)
    return cached


def resolve_view(inner: Shape | None, dims: list[int]) -> Shape | None:
    """The shape `view(*dims)` gives (with one -1 resolved when the input size is known)."""
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        return None
    if -1 not in dims:
        if inner is not None and math.prod(inner) != math.prod(dims):
            return None
        return tuple(dims)
    if inner is None:
        return None
    known = math.prod(d for d in dims if d != -1)
    total = math.prod(inner)
    if known == 0 or total % known:
        return None
    return tuple(total // known if d == -1 else d for d in dims)


def matmul_shape(a: Shape | None, b: Shape | None) -> Shape | None:
    """Result shape of a valid matmul of known shapes (None if unknown or invalid)."""
    if a is None or b is None or not a or not b:
        return None
    if matmul_mismatch(a, b):
        return None
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(a) == 1:
        return b[:-2] + (b[-1],)
    if len(b) == 1:
        return a[:-1]
    batch_a, batch_b = a[:-2], b[:-2]
    batch = []
    for x, y in zip(reversed(batch_a), reversed(batch_b)):
        if x != y and 1 not in (x, y):
            return None
        batch.append(max(x, y))
    longer = batch_a if len(batch_a) > len(batch_b) else batch_b
    batch = list(longer[: len(longer) - len(batch)]) + list(reversed(batch))
    return tuple(batch) + (a[-2], b[-1])


def matmul_mismatch(a: Shape, b: Shape) -> tuple[int, int] | None:
    """(inner dim of a, inner dim of b) when they differ."""
    if not a or not b:
        return None
    left = a[-1]
    right = b[0] if len(b) == 1 else b[-2]
    return (left, right) if left != right else None


def _literal_shape(node: ast.AST) -> Shape | None:
    if isinstance(node, (ast.List, ast.Tuple)):
        if not node.elts:
            return (0,)
        inner = [_literal_shape(e) for e in node.elts]
        if any(s is None for s in inner) or len(set(inner)) != 1:
            return None
        return (len(node.elts),) + inner[0]  # type: ignore[operator]
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return ()
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _literal_shape(node.operand)
    return None


def _literal_kind(node: ast.AST) -> str | None:
    """ "float" when a nested literal has a float, "int" when all ints, None otherwise."""
    kinds = set()
    for sub in _leaves(node):
        if sub is None:
            return None
        kinds.add(sub)
    if not kinds:
        return None
    return "float" if "float" in kinds else "int"


def _leaves(node: ast.AST) -> Iterator[str | None]:
    if isinstance(node, (ast.List, ast.Tuple)):
        for e in node.elts:
            yield from _leaves(e)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        yield from _leaves(node.operand)
    elif isinstance(node, ast.Constant) and isinstance(node.value, float):
        yield "float"
    elif isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        yield "int"
    else:
        yield None
