"""The dtypes the value analysis gives tensors, checked against torch 2.13: GG504 reports a float64
operand of a matrix product exactly when torch raises for it."""

import textwrap

import pytest
from gradguard.engine.analyzer import Analyzer

torch = pytest.importorskip("torch")

PRELUDE = """
import numpy as np
import torch

t64 = torch.zeros(4, dtype=torch.float64)
a64 = np.random.rand(4)
"""

# each a tensor of 4 floats; the comment is torch 2.13's dtype
EXPRESSIONS = [
    "torch.Tensor(a64)",  # float32: the legacy constructor copies into the default dtype
    "torch.Tensor(np.random.uniform(-1, 1, 4))",  # float32
    "torch.Tensor([1.0, 2.0, 3.0, 4.0])",  # float32
    "torch.Tensor([1, 2, 3, 4])",  # float32 (not int64)
    "torch.Tensor(t64)",  # float64: a tensor argument is returned as an alias
    "torch.FloatTensor(a64)",  # float32
    "torch.DoubleTensor(a64)",  # float64
    "torch.DoubleTensor([1.0, 2.0, 3.0, 4.0])",  # float64
    "torch.tensor(a64)",  # float64
    "torch.as_tensor(a64)",  # float64
    "torch.asarray(a64)",  # float64
    "torch.from_numpy(a64)",  # float64
    "torch.as_tensor(a64, dtype=torch.float)",  # float32
    "torch.tensor(a64.astype(np.float32))",  # float32
    "torch.tensor([1.0, 2.0, 3.0, 4.0])",  # float32
    "torch.tensor(a64.tolist())",  # float32: Python floats
    "torch.Tensor(a64).double()",  # float64
    "torch.zeros(4).to(t64)",  # float64
    "torch.zeros(4).type_as(t64)",  # float64
    "torch.zeros(4) + t64",  # float64
    "torch.zeros(4) * a64.sum()",  # float32: a numpy scalar promotes like a Python number
    "torch.zeros(4, dtype=float)",  # float64
    "torch.zeros_like(t64)",  # float64
    "torch.from_numpy(np.zeros(4, dtype='float32'))",  # float32
    "torch.from_numpy(np.zeros(4, dtype=float))",  # float64
    "torch.tensor(np.random.randn(4).astype('f'))",  # float32
    "torch.tensor(np.linspace(0, 1, 4))",  # float64
    "torch.from_numpy(a64).float()",  # float32
    "torch.from_numpy(a64).to(torch.float32)",  # float32
    "torch.tensor(a64, dtype=torch.get_default_dtype())",  # float32
    "torch.zeros(4).to('cpu', torch.double)",  # float64
    "torch.tensor(np.zeros(4, np.float32) * 2.0)",  # float32
    "torch.tensor(np.zeros(4) * np.zeros(4, np.float32))",  # float64
    "torch.Tensor(list(a64))",  # float32
    "torch.randint_like(torch.zeros(4), 10)",  # float32: the like tensor's dtype
    "torch.tensor(np.zeros(4, np.float32))",  # float32: numpy's dtype given positionally
    "torch.from_numpy(np.full(4, 0.5, np.float32))",  # float32
    "torch.from_numpy(np.array([1.0, 2.0, 3.0, 4.0], np.float32))",  # float32
    "torch.from_numpy(np.zeros(4, dtype='f'))",  # float32
    "torch.from_numpy(np.full(4, 0.5))",  # float64
]


def _findings(code: str) -> list:
    analyzer = Analyzer()
    return [f for f in analyzer.check(code).findings if f.code == "GG504"]


# known wrong or missing facts (the test fails when they are fixed: move them up then)
KNOWN_GAPS = [
    # float32: a 0-dim float64 tensor does not promote a dimensioned float32 one; the analysis says float64
    "torch.zeros(4) * torch.tensor(a64.sum())",
    # float64: `new_tensor` takes the receiver's dtype; the analysis does not know it (a miss, not a false report)
    "t64.new_tensor([1.0, 2.0, 3.0, 4.0])",
    # float64, not known (misses): `np.arange` of float literals, a tensor times an array, a list of numpy scalars
    "torch.tensor(np.arange(4.0))",
    "torch.zeros(4) * np.zeros(4)",
    "torch.tensor(list(a64))",
]


@pytest.mark.parametrize(
    "expression",
    EXPRESSIONS + [pytest.param(e, marks=pytest.mark.xfail(strict=True)) for e in KNOWN_GAPS],
)
def test_gg504_fires_exactly_when_torch_raises(expression):
    code = (
        textwrap.dedent(PRELUDE).lstrip("\n") + f"x = {expression}\ny = torch.matmul(x, torch.zeros(4, 2))\n"
    )
    namespace: dict = {}
    exec(textwrap.dedent(PRELUDE), namespace)
    x = eval(expression, namespace)
    assert x.shape == (4,)
    try:
        torch.matmul(x, torch.zeros(4, 2))
        raises = False
    except RuntimeError as error:
        assert "same dtype" in str(error)
        raises = True
    assert raises == (x.dtype == torch.float64)
    found = _findings(code)
    assert bool(found) == raises, (expression, str(x.dtype), [f.message for f in found])


def test_both_outcomes_are_covered():
    namespace: dict = {}
    exec(textwrap.dedent(PRELUDE), namespace)
    dtypes = {str(eval(e, namespace).dtype) for e in EXPRESSIONS}
    assert dtypes == {"torch.float32", "torch.float64"}
