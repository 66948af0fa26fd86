"""The silent failures that GG103, GG104, GG301, GG303 and GG304 describe, seen with torch.

These INVALID examples raise nothing; what the rule's message claims (parameters missing
from `.parameters()`, weights re-created on every call, all-zero or absent gradients, a
flag that does not change) is checked here by running the example's own code."""

import pytest
from gradguard.engine.rule import rule_class

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch


def run_example(code: str, index: int) -> dict:
    torch.manual_seed(0)
    namespace = {"__name__": "__gradguard_truth__"}
    source = rule_class(code).INVALID[index].code
    exec(compile(source, f"<{code}-{index}>", "exec"), namespace)
    return namespace


def test_gg103_grad_tensor_attribute_is_not_a_parameter():
    ns = run_example("GG103", 0)
    m = ns["Affine"](3)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["bias"]  # `weight` is invisible to the optimizer
    assert "weight" not in m.state_dict()
    m(torch.randn(2, 3)).sum().backward()
    assert m.weight.grad is not None  # it does get a gradient...
    before = m.weight.clone()
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    opt.step()
    assert torch.equal(m.weight, before)  # ...but the optimizer never updates it
    m.double()
    assert m.weight.dtype == torch.float32 and m.bias.dtype == torch.float64  # .to()/.double() skip it


def test_gg103_plain_containers_hide_layers():
    tower = run_example("GG103", 1)["Tower"]()
    assert len(list(tower.parameters())) == 2  # only self.out
    assert not any(k.startswith(("layers", "heads")) for k in tower.state_dict())
    experts = run_example("GG103", 2)["Experts"]()
    assert list(experts.parameters()) == []
    stack = run_example("GG103", 3)["Stack"]()
    assert list(stack.parameters()) == []
    stack.eval()
    assert all(block.training for block in stack.blocks)  # .eval() does not reach them


def test_gg103_variable_and_late_requires_grad_are_not_parameters():
    m = run_example("GG103", 4)["Scale"]()
    assert list(m.parameters()) == []
    assert m.alpha.requires_grad and m.beta.requires_grad


def test_gg104_layer_in_forward_is_new_every_call_and_not_trained():
    ns = run_example("GG104", 0)
    m = ns["Net"]()
    assert [n for n, _ in m.named_parameters()] == ["fc1.weight", "fc1.bias"]
    x = torch.randn(4, 10)
    assert not torch.allclose(m(x), m(x))  # fresh random fc2 on each call


def test_gg104_parameter_assigned_in_forward_is_reset_every_call():
    ns = run_example("GG104", 1)
    m = ns["Gate"](3)
    assert list(m.parameters()) == []  # the optimizer is built from nothing
    x = torch.randn(2, 3)
    first = m(x)
    m.scale.data.fill_(5.0)  # "train" it
    assert not torch.allclose(m(x), first * 5)  # the next forward re-creates it (and the linear)
    assert torch.equal(m.scale, torch.ones(3))


def test_gg301_rewrapped_loss_runs_but_reaches_no_parameter():
    ns = run_example("GG301", 3)
    assert ns["loss"].grad is not None  # backward ran...
    assert ns["net"].weight.grad is None  # ...and stopped at the new leaf


def test_gg303_round_gives_all_zero_gradients():
    ns = run_example("GG303", 1)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ns["train_counts"](model, opt, torch.randn(8, 3), torch.randint(0, 5, (8, 1)).float())
    assert model.weight.grad is not None
    assert torch.count_nonzero(model.weight.grad) == 0 and torch.count_nonzero(model.bias.grad) == 0


def test_gg304_misspelled_attribute_does_not_freeze():
    ns = run_example("GG304", 0)
    first = ns["model"][0]
    assert first.weight.requires_grad and first.weight.require_grad is False
    ns["model"](torch.randn(2, 8)).sum().backward()
    assert first.weight.grad is not None  # the "frozen" layer still gets gradients
