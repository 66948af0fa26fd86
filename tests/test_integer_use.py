"""Integer by use: a name used as an index, an index argument or a class target holds integers
(no gradient, dtype "integer") wherever the scope binds it; and torch agrees with the premise."""

from __future__ import annotations

import ast
import textwrap

import pytest
from gradguard.engine import values as v
from gradguard.engine.index import ModuleContext
from gradguard.engine.integer_use import integer_names
from gradguard.engine.semantic import Semantics
from gradguard.engine.source import SourceFile


def _model(code: str):
    code = textwrap.dedent(code).lstrip("\n")
    tree = ast.parse(code)
    module = ModuleContext(tree, SourceFile(code, "case.py"))
    return tree, module, Semantics(tree, module)


def _names(code: str) -> frozenset[str]:
    tree, module, _ = _model(code)
    func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
    return integer_names(func.body, module)


def _value(code: str, name: str, line: int, function: str = "forward") -> v.Value:
    tree, _, semantics = _model(code)
    func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    flow = semantics.flow(func)
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and node.id == name and node.lineno == line and node in flow.values:
            return flow.values[node]
    raise AssertionError(f"{name} not evaluated on line {line}")


@pytest.mark.parametrize(
    "body,expected",
    [
        ("return x[idx]", {"idx"}),
        ("return x[:, edge_index[0]]", {"edge_index"}),
        ("return x.index_select(0, idx.view(-1))", {"idx"}),
        ("return torch.index_select(x, 0, idx)", {"idx"}),
        ("return x.gather(1, index=idx)", {"idx"}),
        ("return out.scatter_add(0, batch, x)", {"batch"}),
        ("return torch.bincount(batch)", {"batch"}),
        ("return batch.bincount()", {"batch"}),
        ("return F.one_hot(labels, 10)", {"labels"}),
        ("return F.embedding(ids, x)", {"ids"}),
        ("return F.cross_entropy(x, labels.view(-1))", {"labels"}),
        ("return F.nll_loss(x, target=labels)", {"labels"}),
        # not integer by use: the value written, a comparison, arithmetic, a conversion
        ("x[idx] = labels", {"idx"}),
        ("return x[idx + 1]", set()),
        ("return x[mask.long()]", set()),
        ("return (x == labels).sum()", set()),
        ("return F.mse_loss(x, labels)", set()),
    ],
)
def test_integer_names_by_syntax(body, expected):
    code = f"""
    import torch
    import torch.nn.functional as F

    def f(x, idx, edge_index, batch, labels, ids, mask, out):
        {body}
    """
    assert _names(code) == expected


def test_parameters_and_bindings_used_as_integers_carry_no_gradient():
    code = """
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x, idx):
            picked = idx.clone()
            picked[0] = 0
            order = torch.sigmoid(self.fc(x))
            return order[idx], picked
    """
    idx = _value(code, "idx", 10)
    assert idx.grad == v.NO and idx.dtype == v.INTEGRAL and not idx.sources
    picked = _value(code, "picked", 11)
    assert picked.grad == v.NO and picked.dtype == v.INTEGRAL
    # `x` is an activation of unknown grad status, as before
    assert _value(code, "x", 12).grad == v.MAYBE


def test_a_float_binding_of_the_same_name_is_left_alone():
    code = """
    import torch

    def forward(x, mask):
        kept = x[mask]
        mask = mask.float()
        return kept * mask
    """
    assert _value(code, "mask", 4).dtype == v.INTEGRAL
    assert _value(code, "mask", 6).dtype == "float32"


def test_layers_called_on_integers_mark_their_argument():
    code = """
    import torch
    import torch.nn as nn

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.loss = nn.CrossEntropyLoss()

        def forward(self, ids, labels):
            h = self.embed(ids)
            loss = self.loss(h.view(-1, 4), labels.view(-1))
            return ids, labels, loss
    """
    assert _value(code, "ids", 13).grad == v.NO
    assert _value(code, "labels", 13).dtype == v.INTEGRAL


def test_as_integer_keeps_what_is_known_to_be_something_else():
    assert v.as_integer(v.Value(v.TENSOR, grad=v.YES)).grad == v.YES
    assert v.as_integer(v.Value(v.TENSOR, dtype="float32")).dtype == "float32"
    assert v.as_integer(v.Value(v.TENSOR | v.PARAMETER, grad=v.MAYBE)).grad == v.MAYBE
    assert v.as_integer(v.Value(v.MODULE, grad=v.NO)).dtype is None
    assert v.as_integer(v.UNKNOWN).grad == v.NO


def test_torch_agrees_integers_by_use_cannot_be_float_and_cannot_require_grad():
    torch = pytest.importorskip("torch")
    x = torch.randn(4, 3)
    with pytest.raises(IndexError, match="tensors used as indices must be long, int, byte or bool"):
        x[torch.tensor([0.0, 1.0])]
    with pytest.raises(RuntimeError, match="index"):
        x.index_select(0, torch.tensor([0.0, 1.0]))
    with pytest.raises(RuntimeError, match="index"):
        x.gather(1, torch.tensor([[0.0]] * 4))
    with pytest.raises(RuntimeError):
        torch.bincount(torch.tensor([0.5, 1.0]))
    with pytest.raises(RuntimeError):
        torch.nn.functional.one_hot(torch.tensor([0.0, 1.0]))
    with pytest.raises(RuntimeError):
        torch.nn.functional.embedding(torch.tensor([0.0, 1.0]), torch.randn(3, 2))
    with pytest.raises(RuntimeError):
        torch.nn.functional.nll_loss(torch.randn(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require gradients"):
        torch.tensor([0, 1]).requires_grad_()
