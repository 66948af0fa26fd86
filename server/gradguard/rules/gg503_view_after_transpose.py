"""GG503: `.view()` on a transposed/permuted tensor, merging the dims it swapped."""

from __future__ import annotations

import ast
import math
from collections.abc import Iterator

from gradguard.engine import shape_flow
from gradguard.engine.finding import Applicability, Finding, Severity, TextEdit
from gradguard.engine.index import Unit
from gradguard.engine.interpreter import Flow
from gradguard.engine.queries import unit_text
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.symshape import Shape

_ERROR = "view size is not compatible with input tensor's size and stride"


class ViewAfterTranspose(Rule):
    code = "GG503"
    triggers = (".view",)  # its own pre-check (which also needs a permuting word)
    name = "view-after-transpose"
    summary = (
        "`.view()` on the result of `transpose`/`t`/`permute`/`.T`/`.mT` that merges the swapped dimensions."
    )
    why = (
        "After `transpose`/`permute` the memory is not laid out for the merged shape, so `.view()` raises; "
        "`.reshape()` gives the same values and gradients."
    )
    message = Message("`.view(...)` merges dimensions that `{op}` made non-contiguous; use `.reshape(...)`")
    detail = (
        f'PyTorch raises "{_ERROR} (at least one dimension spans across two contiguous subspaces)"; '
        "`.reshape(...)` gives the same values and gradients (it copies only when it must)."
    )
    explanation = f"""
    `transpose`, `t`, `permute`, `.T` and `.mT` do not move any data: they return a
    view with swapped strides. `.view()` can only reinterpret memory that is laid out
    contiguously for the requested shape, so merging dimensions that the transpose
    swapped fails:

    > RuntimeError: {_ERROR} (at least one dimension spans across two
    > contiguous subspaces). Use .reshape(...) instead.

    Typical cases: `x.transpose(1, 2).view(B, -1)` in attention code and
    `x.permute(0, 2, 3, 1).view(-1)`. Use `.reshape(...)`, which copies only when it
    must (same values, same gradients), or `.contiguous().view(...)`. Views that keep
    the swapped dimensions separate, such as `x.transpose(0, 1).view(T, B, -1)` when
    only the first two dimensions were swapped, work and are not reported.

    **Fix safety.** Safe: `.reshape(...)` returns the same values as `.view(...)` would on a
    contiguous tensor; it copies where a view is impossible, so the result no longer shares memory
    with its input (the `.view` raised there, so nothing relied on sharing).
    """
    severity = Severity.ERROR
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch

            def merge_heads(x, batch, seq):
                x = x.transpose(1, 2).contiguous()
                return x.view(batch, seq, -1)
            """,
            note="contiguous() first",
        ),
        Valid(
            """
            import torch

            def f(x, t, b):
                return x.transpose(0, 1).view(t, b, -1)
            """,
            note="the swapped dims stay separate",
        ),
        Valid(
            """
            import torch

            x = torch.randn(3, 4)
            y = x.t().view(4, 3, 1)
            """,
            note="no dims merged",
        ),
        Valid(
            """
            import torch

            def keys(x, b):
                k = x.view(b, 1, -1).permute(0, 2, 1).view(b, -1)
                t = x.transpose(1, 2).view(b, 64, 7, 7)
                return k, t
            """,
            note="size-1 dims move freely; splitting a transposed dim is a valid view",
        ),
        Valid(
            """
            import torch

            def waveform(hidden_states):
                return hidden_states.squeeze(0).transpose(1, 0).view(-1)
            """,
            note="(1, T) -> (T, 1): flattening works",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Attention(nn.Module):
                def __init__(self, dim=32, heads=4):
                    super().__init__()
                    self.heads = heads
                    self.qkv = nn.Linear(dim, 3 * dim)

                def forward(self, x):
                    b, t, c = x.shape
                    q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
                    out = (q @ k.transpose(-2, -1)).softmax(-1) @ v
                    out = out.transpose(1, 2)
                    return out.view(b, t, c)

            y = Attention()(torch.randn(2, 5, 32))
            """,
            lines=[15],
            fixed="""
            import torch
            import torch.nn as nn

            class Attention(nn.Module):
                def __init__(self, dim=32, heads=4):
                    super().__init__()
                    self.heads = heads
                    self.qkv = nn.Linear(dim, 3 * dim)

                def forward(self, x):
                    b, t, c = x.shape
                    q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
                    out = (q @ k.transpose(-2, -1)).softmax(-1) @ v
                    out = out.transpose(1, 2)
                    return out.reshape(b, t, c)

            y = Attention()(torch.randn(2, 5, 32))
            """,
            raises=_ERROR,
            check_fixed="assert y.shape == (2, 5, 32)",
            note="heads merged back after a transpose: the shapes come from the call below the class",
        ),
        Invalid(
            """
            import torch

            def merge_heads(x, batch):
                # x: (batch, heads, seq, head_dim)
                return x.transpose(1, 2).view(batch, -1)
            """,
            lines=[5],
            fixed="""
            import torch

            def merge_heads(x, batch):
                # x: (batch, heads, seq, head_dim)
                return x.transpose(1, 2).reshape(batch, -1)
            """,
            raises=_ERROR,
            run="merge_heads(torch.randn(2, 3, 4, 5), 2)",
            check_fixed="assert merge_heads(torch.randn(2, 3, 4, 5), 2).shape == (2, 60)",
        ),
        Invalid(
            """
            import torch

            images = torch.randn(8, 3, 32, 32)
            pixels = images.permute(0, 2, 3, 1)
            flat = pixels.view(-1)
            """,
            lines=[5],
            fixed="""
            import torch

            images = torch.randn(8, 3, 32, 32)
            pixels = images.permute(0, 2, 3, 1)
            flat = pixels.reshape(-1)
            """,
            raises=_ERROR,
            check_fixed="assert torch.equal(flat[:3], images[0, :, 0, 0])",
        ),
        Invalid(
            """
            import torch

            w = torch.randn(3, 4)
            v = w.T.view(2, 6)
            """,
            lines=[4],
            fixed="""
            import torch

            w = torch.randn(3, 4)
            v = w.T.reshape(2, 6)
            """,
            raises=_ERROR,
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        text = unit_text(unit)
        if ".view" not in text or not any(
            w in text for w in ("transpose", "permute", ".T", ".t(", ".mT", "swap")
        ):
            return
        semantics = unit.semantics
        for call in unit.method_calls("view"):
            if unit.module.call_name(call) is not None or not call.args or call.keywords:
                continue
            func = call.func
            assert isinstance(func, ast.Attribute)
            scope = unit.enclosing_function(call)
            flow = semantics.flow(scope)
            infer = _Infer(semantics, flow, scope)
            source = _permuting_source(flow, func.value)
            if source is None:
                continue
            perm = _permutation(infer, source)
            if perm is None:
                continue
            op, order, base = perm
            args = call.args
            if len(args) == 1 and isinstance(args[0], (ast.Tuple, ast.List)):
                args = args[0].elts
            if any(isinstance(a, ast.Starred) for a in args):
                continue
            verdict = _exact(infer, base, order, args)
            if verdict is None and not _may_have_unit_dims(flow, base):
                verdict = _structural(infer, order, args)
            if not verdict:
                continue
            _, _, end_line, end_col = unit.node_range(func)
            fix = None
            if unit.source.line_text(end_line)[end_col - 5 : end_col - 1] == "view":
                fix = self.make_fix(
                    "Use `.reshape(...)`", [TextEdit(end_line, end_col - 4, end_line, end_col, "reshape")]
                )
            yield self.finding(unit, call, self.message.format(op=op), fix=fix, detail=self.detail)


class _Infer:
    """Ints and shapes as the value analysis knows them (the contexts the roots reach first: a
    file's own call or probe comment gives concrete sizes)."""

    def __init__(self, semantics, flow: Flow, scope) -> None:
        self.semantics = semantics
        self.flow = flow
        self.scope = scope

    def _value(self, node: ast.AST):
        if self.scope is not None:
            values = shape_flow.values_at(self.semantics, self.scope, node)
            if values:
                joined = values[0]
                for other in values[1:]:
                    if other.shape != joined.shape or other.dim != joined.dim:
                        return None
                return joined
        return self.flow.values.get(node)

    def int_value(self, node: ast.AST) -> int | None:
        literal = shape_flow._literal(node)
        if isinstance(literal, int) and not isinstance(literal, bool):
            return literal
        value = self._value(node)
        if value is None or value.dim is None:
            return None
        return value.dim.value

    def shape(self, node: ast.AST) -> tuple[int, ...] | None:
        value = self._value(node)
        if value is None or not isinstance(value.shape, Shape):
            return None
        return value.shape.ints()


def _definition(flow: Flow, name: ast.Name) -> ast.AST | None:
    """The expression a name was bound to, when one plain assignment reaches it."""
    defs = flow.reaching(name)
    if len(defs) != 1:
        return None
    stmt = next(iter(defs))
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.value
    return None


def _permuting_source(flow: Flow, node: ast.AST) -> ast.AST | None:
    """The transpose/permute expression a view applies to (through one name binding)."""
    if _is_permuting(node):
        return node
    if isinstance(node, ast.Name):
        value = _definition(flow, node)
        if value is not None and _is_permuting(value):
            return value
    return None


def _is_permuting(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr in ("T", "mT")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("transpose", "swapaxes", "swapdims", "t", "permute")
    return False


def _may_have_unit_dims(flow: Flow, node: ast.AST) -> bool:
    """Was the permuted tensor just shaped with a literal 1 (`x.view(b, 1, -1)`,
    `x.unsqueeze(1)`, `x.squeeze(0)`)? Size-1 dims can be moved freely, so the view may
    well work."""
    if isinstance(node, ast.Name):
        value = _definition(flow, node)
        if value is None:
            return False
        node = value
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in ("squeeze", "squeeze_", "unsqueeze", "unsqueeze_"):
            return True
    if isinstance(node, ast.Subscript):
        return any(isinstance(n, ast.Constant) and n.value is None for n in ast.walk(node.slice))
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return False
    if node.func.attr in ("unsqueeze", "unsqueeze_", "expand", "expand_as", "repeat"):
        return True
    if node.func.attr in ("view", "reshape", "new_zeros", "new_ones"):
        args = (
            node.args[0].elts
            if len(node.args) == 1 and isinstance(node.args[0], (ast.Tuple, ast.List))
            else node.args
        )
        return any(isinstance(a, ast.Constant) and a.value == 1 for a in args)
    return False


def _resolve_view(inner: tuple[int, ...] | None, dims: list[int]) -> tuple[int, ...] | None:
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


def _permutation(infer, node: ast.AST) -> tuple[str, list[int] | None, ast.AST] | None:
    """(label, permutation of the leading dims or None for "full reversal of an n-D tensor", receiver)."""
    if isinstance(node, ast.Attribute):
        if node.attr == "T":
            return ".T", [1, 0], node.value
        return None  # .mT: the number of dims is unknown
    call = node
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
    method, receiver = call.func.attr, call.func.value
    if method == "t":
        return ".t()", [1, 0], receiver
    values = [infer.int_value(a) for a in call.args]
    if any(v is None for v in values) or call.keywords:
        return None
    if method in ("transpose", "swapaxes", "swapdims") and len(values) == 2:
        a, b = values
        if a < 0 or b < 0 or a == b:
            return None
        n = max(a, b) + 1
        order = list(range(n))
        order[a], order[b] = order[b], order[a]
        return f"{method}({a}, {b})", order, receiver
    if method == "permute":
        if len(values) == 1:
            return None
        n = len(values)
        order = [v % n for v in values]  # type: ignore[operator]
        if sorted(order) != list(range(n)) or order == list(range(n)):
            return None
        return "permute(" + ", ".join(str(v) for v in values) + ")", order, receiver
    return None


def _exact(infer, base: ast.AST, order: list[int], args: list[ast.expr]) -> bool | None:
    """With a known input shape, decide exactly as PyTorch does (None when unknown)."""
    shape = infer.shape(base)
    dims = [infer.int_value(a) for a in args]
    if shape is None or any(d is None for d in dims) or len(shape) < len(order):
        return None
    if len(order) == 2 and len(shape) != 2 and order == [1, 0]:
        return None  # .T / .t() are only modelled for 2-D tensors
    n = len(shape)
    full = order + list(range(len(order), n))
    strides = [math.prod(shape[i + 1 :]) for i in range(n)]
    sizes = [shape[i] for i in full]
    perm_strides = [strides[i] for i in full]
    target = _resolve_view(tuple(sizes), dims)  # type: ignore[arg-type]
    if target is None:
        return None  # wrong element count: a different error
    return not _view_possible(sizes, perm_strides, list(target))


def _structural(infer, order: list[int], args: list[ast.expr]) -> bool:
    """Without shapes: `.view(-1)` (everything merged) or `.view(a, ..., -1)` whose
    trailing -1 merges swapped dims, assuming each leading argument is one dimension."""
    if len(args) == 1:
        # `.view(-1)` / `.view(n)`; `.view(dtype)` reinterprets bytes and is not a reshape.
        # A 2-D swap is left alone: `(T, 1)` column vectors flatten fine and are common.
        return len(order) >= 3 and infer.int_value(args[0]) is not None
    if infer.int_value(args[-1]) != -1:
        return False
    leading = args[:-1]
    if not all(_single_dim(infer, a) for a in leading):
        return False
    k = len(leading)
    group = order[k:]
    if len(group) < 2:
        return False
    return any(b != a + 1 for a, b in zip(group, group[1:]))


def _single_dim(infer, node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value > 0
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "size":
        return len(node.args) == 1
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "shape"
    ):
        return not isinstance(node.slice, ast.Slice)
    return False


def _view_possible(sizes: list[int], strides: list[int], shape: list[int]) -> bool:
    """ATen's computeStride: can a tensor with these sizes/strides be viewed as shape?"""
    if math.prod(sizes) == 0 or not sizes:
        return True
    view_d = len(shape) - 1
    chunk_base_stride = strides[-1]
    tensor_numel = 1
    view_numel = 1
    for tensor_d in range(len(sizes) - 1, -1, -1):
        tensor_numel *= sizes[tensor_d]
        if tensor_d == 0 or (
            sizes[tensor_d - 1] != 1 and strides[tensor_d - 1] != tensor_numel * chunk_base_stride
        ):
            while view_d >= 0 and (view_numel < tensor_numel or shape[view_d] == 1):
                view_numel *= shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return False
            if tensor_d > 0:
                chunk_base_stride = strides[tensor_d - 1]
                tensor_numel = 1
                view_numel = 1
    return view_d == -1
