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
        # an element's `.item()` used as a slice bound; the argument of `get_input_embeddings()`
        ("beg = idx[0, 1].item()\n        return x[0, beg : beg + 2]", {"idx"}),
        ("return out.get_input_embeddings()(ids)", {"ids"}),
        ("beg = idx[0].item()\n        beg = beg / 2\n        return x[beg:]", set()),
        ("beg = labels[0].item()\n        return x.loc[beg:]", set()),
        ("beg = labels.sum().item()\n        return x[:beg]", set()),
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


def test_cross_entropy_targets_are_integer_unless_known_to_be_probabilities():
    code = """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def forward(logits, teacher_logits, labels, probs):
        soft = teacher_logits.softmax(-1)
        a = F.cross_entropy(logits, soft)
        smooth = torch.full_like(logits, 0.1)
        b = nn.CrossEntropyLoss()(logits, smooth)
        c = F.cross_entropy(logits, labels)
        d = F.cross_entropy(logits, probs.float())
        return soft, smooth, labels, probs
    """
    # class_index_shape (torch_facts): a float target of the input's shape is class probabilities
    assert _value(code, "soft", 12, "forward").dtype != v.INTEGRAL
    assert _value(code, "soft", 12, "forward").grad == v.MAYBE
    assert _value(code, "smooth", 12, "forward").dtype != v.INTEGRAL
    # a target not known to be float holds class indices from the call on
    assert _value(code, "labels", 10, "forward").dtype == v.INTEGRAL
    assert _value(code, "probs", 12, "forward").dtype != v.INTEGRAL


def test_torch_accepts_float_probabilities_of_the_input_shape_as_cross_entropy_target():
    torch = pytest.importorskip("torch")
    logits = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    torch.nn.functional.cross_entropy(logits, teacher.softmax(-1)).backward()
    assert teacher.grad is not None  # the soft target is a float tensor that carries a gradient
    torch.nn.CrossEntropyLoss()(logits, torch.full_like(logits, 1 / 3))
    with pytest.raises(RuntimeError):
        torch.nn.functional.cross_entropy(logits, torch.tensor([0.0, 1.0, 2.0, 0.0]))


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


def test_a_dtype_view_has_the_new_dtype_and_no_history():
    code = """
    import torch

    def forward(x):
        w = torch.randn(3, requires_grad=True)
        y = torch.sigmoid(w * 2)
        bits = y.view(torch.int32)
        half = y.view(dtype=torch.float16)
        same = y.view(-1)
        return bits, half, same
    """
    bits = _value(code, "bits", 9)
    assert (bits.dtype, bits.grad) == ("int32", v.NO)
    assert bits.roots and not bits.roots & bits.sites  # a view of `y`: writes into it reach `y`
    half = _value(code, "half", 9)
    assert (half.dtype, half.grad) == ("float16", v.NO)
    assert _value(code, "same", 9).grad == v.YES
    torch = pytest.importorskip("torch")
    y = torch.sigmoid(torch.randn(3, requires_grad=True) * 2)
    for dtype in (torch.int32, torch.float16):
        view = y.view(dtype)
        assert view.dtype == dtype and not view.requires_grad and view.grad_fn is None
    assert y.view(-1).requires_grad
