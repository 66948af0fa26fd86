"""Static shape/dtype inference (engine/shapes.py) checked against torch itself."""

import ast
import math
import textwrap

import pytest
from gradguard.engine.index import ModuleContext, Unit, split_units
from gradguard.engine.shapes import F32, F64, I64, inference, matmul_shape, resolve_view
from gradguard.engine.source import SourceFile
from gradguard.rules.gg503_view_after_transpose import _view_possible
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")


def infer_all(code: str):
    """{target name: (shape, dtype)} for every simple assignment, in each unit."""
    code = textwrap.dedent(code)
    tree = ast.parse(code)
    source = SourceFile(code)
    module = ModuleContext(tree, source)
    out = {}
    for _, _, stmts in split_units(tree):
        unit = Unit(stmts, source, module)
        inf = inference(unit)
        for node in unit.nodes_of(ast.Assign):
            target = node.targets[0]
            if isinstance(target, ast.Name):
                out[target.id] = (inf.shape(node.value), inf.dtype(node.value))
    return out


PROGRAM = """
import numpy as np
import torch
n = 3
a = torch.randn(4, 2 * n, 5)
b = a.view(-1, 5)
c = b.T
d = a.transpose(0, 2)
e = a.permute(2, 0, 1).flatten(1)
f = torch.zeros((n, 7), dtype=torch.float64)
g = f.t() @ torch.randn(3, 2, dtype=torch.float64)
h = torch.tensor([[1, 2], [3, 4]])
i = torch.tensor([[1.0, 2.0]])
j = torch.from_numpy(np.random.randn(2, 3))
k = torch.from_numpy(np.zeros((2, 3), dtype=np.float32))
l = a.unsqueeze(-1).reshape(8, -1)
m = torch.flatten(a, 1)
o = a.mT
p = torch.matmul(torch.randn(5, 2, 3), torch.randn(3, 4))
q = torch.ones(2, 3).double().float()
r = a.size(1) * torch.ones(1)
s = torch.nn.Parameter(torch.randn(3, 3))
"""


def test_inferred_shapes_and_dtypes_match_torch():
    inferred = infer_all(PROGRAM)
    namespace = {}
    exec(compile(PROGRAM, "<program>", "exec"), namespace)
    checked = 0
    for name, (shape, dtype) in inferred.items():
        value = namespace[name]
        if not isinstance(value, torch.Tensor):
            continue
        if shape is not None:
            assert tuple(value.shape) == shape, name
            checked += 1
        if dtype is not None:
            assert str(value.dtype) == f"torch.{dtype}", name
    assert checked >= 15
    assert inferred["j"][1] == F64 and inferred["k"][1] == F32 and inferred["h"][1] == I64


def test_unknown_stays_unknown():
    inferred = infer_all(
        """
        import torch
        def f(x, flag):
            y = torch.randn(2, 3)
            if flag:
                y = torch.randn(3, 3)
            z = y
            w = x.view(-1, 4)
            return z, w
        """
    )
    assert inferred["z"] == (None, None)
    assert inferred["w"][0] is None


def test_loop_carried_binding_is_unknown():
    inferred = infer_all(
        """
        import torch
        x = torch.randn(2)
        for _ in range(3):
            y = x
            x = torch.randn(4, 4)
        """
    )
    assert inferred["y"][0] is None


def test_resolve_view_and_matmul_shape():
    assert resolve_view((4, 6), [-1, 3]) == (8, 3)
    assert resolve_view((4, 6), [5, -1]) is None
    assert resolve_view(None, [2, 3]) == (2, 3)
    assert matmul_shape((2, 3), (3, 4)) == (2, 4)
    assert matmul_shape((5, 2, 3), (3, 4)) == (5, 2, 4)
    assert matmul_shape((3,), (3, 4)) == (4,)
    assert matmul_shape((2, 3), (4, 4)) is None


shapes = st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(shape=shapes, data=st.data())
def test_view_possible_agrees_with_torch(shape, data):
    n = len(shape)
    order = data.draw(st.permutations(list(range(n))))
    base = torch.zeros(*shape)
    permuted = base.permute(*order)
    sizes = list(permuted.shape)
    strides = list(permuted.stride())
    total = math.prod(sizes)
    # a random factorisation of the element count
    factors = []
    remaining = total
    while remaining > 1 and len(factors) < 4:
        divisors = [d for d in range(1, remaining + 1) if remaining % d == 0]
        d = data.draw(st.sampled_from(divisors))
        factors.append(d)
        remaining //= d
    if remaining > 1 or not factors:
        factors.append(remaining)
    try:
        permuted.view(*factors)
        expected = True
    except RuntimeError:
        expected = False
    assert _view_possible(sizes, strides, factors) == expected


class _Ints:
    @staticmethod
    def int_value(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp):
            return -node.operand.value
        return None


@settings(max_examples=300, deadline=None)
@given(shape=st.lists(st.integers(min_value=2, max_value=4), min_size=2, max_size=5), data=st.data())
def test_gg503_structural_claims_hold(shape, data):
    """Whenever GG503 flags `x.transpose(a, b).view(d0, ..., -1)` without knowing shapes
    (leading arguments being the leading sizes), torch raises."""
    from gradguard.rules.gg503_view_after_transpose import _structural

    n = len(shape)
    a, b = sorted(data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True)))
    k = data.draw(st.integers(0, n - 1))
    order = list(range(b + 1))
    order[a], order[b] = order[b], order[a]
    transposed = torch.zeros(*shape).transpose(a, b)
    if k == 0:
        args = [ast.UnaryOp(op=ast.USub(), operand=ast.Constant(1))]
        dims = [-1]
    else:
        args = [ast.Name(id=f"d{i}", ctx=ast.Load()) for i in range(k)] + [
            ast.UnaryOp(op=ast.USub(), operand=ast.Constant(1))
        ]
        dims = list(transposed.shape[:k]) + [-1]
    if _structural(_Ints, order, args):
        with pytest.raises(RuntimeError, match="view size is not compatible"):
            transposed.view(*dims)
