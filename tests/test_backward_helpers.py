"""`backward_helpers.backpropagated_parameters`: the parameters a helper backpropagates on every path
that returns (its call frees the caller's graph), checked against torch: where the set names the
parameter, calling the helper and then a second backward through the same graph raises."""

from __future__ import annotations

import ast
import textwrap

import pytest
import torch
from gradguard.engine.backward_helpers import backpropagated_parameters
from gradguard.engine.index import ModuleContext
from gradguard.engine.source import SourceFile

CASES = [
    ("def f(loss):\n    loss.backward()\n", {"loss"}),
    ("def f(loss, seed=None):\n    if seed is None:\n        loss.backward()\n        return\n"
     "    torch.autograd.backward(loss, seed)\n", {"loss"}),
    ("def f(loss, scale):\n    if scale:\n        (loss * 2).backward()\n    else:\n        loss.backward()\n", set()),
    ("def f(loss, ok):\n    if not ok:\n        return\n    loss.backward()\n", set()),
    ("def f(loss, ok):\n    if not ok:\n        raise ValueError(ok)\n    loss.backward()\n", {"loss"}),
    ("def f(loss):\n    loss.backward(retain_graph=True)\n", set()),
    ("def f(loss):\n    torch.autograd.backward(loss, None, True)\n", set()),
    ("def f(losses):\n    for loss in losses:\n        loss.backward()\n", set()),
    ("def f(loss, other):\n    loss = other\n    loss.backward()\n", set()),
    ("def f(loss, lock):\n    with lock:\n        loss.backward()\n", {"loss"}),
]  # fmt: skip


def _found(source: str) -> set[str]:
    text = "import torch\n\n" + textwrap.dedent(source)
    tree = ast.parse(text)
    func = next(node for node in tree.body if isinstance(node, ast.FunctionDef))
    return set(backpropagated_parameters(ModuleContext(tree, SourceFile(text)), func))


@pytest.mark.parametrize(("source", "names"), CASES)
def test_backpropagated_parameters(source: str, names: set[str]) -> None:
    assert _found(source) == names


@pytest.mark.parametrize(("source", "names"), CASES[:2])
def test_a_graph_the_helper_backpropagated_is_freed(source: str, names: set[str]) -> None:
    scope: dict = {"torch": torch}
    exec("import torch\n" + source, scope)
    w = torch.randn(3, requires_grad=True)
    loss = torch.sigmoid(w).sum()
    scope["f"](loss)
    assert w.grad is not None
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()
