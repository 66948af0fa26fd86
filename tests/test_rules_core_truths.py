"""The claims GG101, GG102 and GG105 make about silent behaviour, checked with torch.

These rules report code that runs without an error, so `test_rule_runtime.py` has no
exception to look for; here we run the code and assert what the messages say."""

import textwrap

import pytest
from gradguard.engine.rule import all_rules

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch

SILENT_RULES = ("GG101", "GG102", "GG105")


def execute(code: str) -> dict:
    torch.manual_seed(0)
    namespace = {"__name__": "__gradguard_truth__"}
    exec(compile(textwrap.dedent(code), "<truth>", "exec"), namespace)
    return namespace


def silent_examples():
    for code in SILENT_RULES:
        rule = all_rules()[code]
        for index, example in enumerate(rule.INVALID):
            if example.run and example.raises is None:
                yield pytest.param(example, id=f"{code}-{index}")


@pytest.mark.parametrize("example", list(silent_examples()))
def test_silent_examples_run_and_their_assertions_hold(example):
    # the drivers assert the rule's claim (autograd's gradient arrives, the stash keeps its graph)
    execute(example.code + "\n" + example.run + "\n")


def test_every_silent_rule_has_a_runnable_claim():
    covered = {p.id.split("-")[0] for p in silent_examples()}
    assert covered == set(SILENT_RULES)


FAKE_BACKWARD = """
import torch
import torch.nn as nn

calls = []

class CustomLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3))
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x):
        self.x = x
        return torch.matmul(x, self.weight) + self.bias

    def backward(self, grad_output):
        calls.append("backward")
        self.weight.grad = torch.matmul(self.x.t(), grad_output)
        self.bias.grad = grad_output.sum(0)

    def mm_backward(self, grad_output):
        calls.append("mm_backward")
        return grad_output

    def mmBackward(self, grad_output):
        calls.append("mmBackward")
        return grad_output
"""


def test_gg101_module_backward_methods_are_never_called_by_autograd():
    ns = execute(FAKE_BACKWARD)
    layer = ns["CustomLayer"]()
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    x, y = torch.randn(16, 4), torch.randn(16, 3)
    before = layer.weight.detach().clone()
    for _ in range(3):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(layer(x), y)
        loss.backward()
        optimizer.step()
    assert ns["calls"] == []
    # ...and the declared parameters got gradients anyway, and learned
    assert layer.weight.grad is not None and layer.bias.grad is not None
    assert not torch.equal(before, layer.weight.detach())


def test_gg101_parameters_learn_without_any_backward_method():
    # seed 001's "Example 1", claimed there to leave the parameters static
    ns = execute(
        """
        import torch
        import torch.nn as nn

        class IncorrectCustomLayer(nn.Module):
            def __init__(self, input_dim, output_dim):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(input_dim, output_dim))
                self.bias = nn.Parameter(torch.zeros(output_dim))

            def forward(self, x):
                return torch.matmul(x, self.weight) + self.bias
        """
    )
    layer = ns["IncorrectCustomLayer"](4, 2)
    x, y = torch.randn(64, 4), torch.randn(64, 2)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(layer(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9


def test_gg102_a_grad_assigned_before_backward_is_added_to_not_replaced():
    w = torch.nn.Parameter(torch.ones(2))
    w.grad = torch.full((2,), 10.0)
    (w * 3).sum().backward()
    assert torch.equal(w.grad, torch.full((2,), 13.0))


def test_gg102_a_grad_assigned_after_backward_replaces_autograds():
    w = torch.nn.Parameter(torch.ones(2))
    (w * 3).sum().backward()
    w.grad = torch.zeros(2)
    assert torch.equal(w.grad, torch.zeros(2))


def test_gg105_stash_keeps_the_graph_until_the_next_forward():
    ns = execute(
        """
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):
                self.h = torch.tanh(self.fc(x))
                return self.h.sum()
        """
    )
    net = ns["Net"]()
    net(torch.randn(2, 4))  # no backward: e.g. evaluation without no_grad
    first = net.h
    assert first.grad_fn is not None and first.grad_fn.next_functions  # the graph is still reachable
    net(torch.randn(2, 4))
    assert net.h is not first


def test_gg105_detached_stash_holds_no_graph():
    x = torch.randn(3, requires_grad=True)
    assert (x * 2).detach().grad_fn is None
