"""The silent failures GG4xx/GG6xx describe, observed with torch: the INVALID examples
run without an error, and these tests check the symptom the rule's message claims."""

import pytest
from gradguard.engine.rule import rule_class

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch


def run(code: str, extra: str = "") -> dict:
    torch.manual_seed(0)
    namespace = {"__name__": "__gradguard_truth__"}
    exec(compile(code + "\n" + extra + "\n", "<example>", "exec"), namespace)
    return namespace


def example(code: str, index: int = 0):
    return rule_class(code).INVALID[index]


def test_gg401_gradients_accumulate_without_zero_grad():
    # backward adds to .grad: two backward passes without zero_grad give the sum
    w = torch.randn(3, requires_grad=True)
    (w * 2).sum().backward()
    first = w.grad.clone()
    (w * 2).sum().backward()
    assert torch.allclose(w.grad, 2 * first)


def test_gg401_example_does_not_converge_but_fixed_does():
    inv = example("GG401")
    buggy = run(inv.code)
    fixed = run(inv.fixed)
    mse = torch.nn.functional.mse_loss
    buggy_loss = mse(buggy["model"](buggy["data"]), buggy["target"]).item()
    fixed_loss = mse(fixed["model"](fixed["data"]), fixed["target"]).item()
    assert fixed_loss < 1e-3
    assert buggy_loss > 100 * fixed_loss


def test_gg402_step_after_zero_grad_leaves_parameters_unchanged():
    inv = example("GG402")
    ns = run(inv.code, "before = model.weight.detach().clone()\n" + _loop_again("GG402"))
    assert torch.equal(ns["model"].weight, ns["before"])


def _loop_again(code: str) -> str:
    # one more iteration of the example's loop body, after the snapshot
    return (
        "loss = torch.nn.functional.mse_loss(model(x), y)\n"
        "loss.backward()\n"
        "optimizer.zero_grad()\n"
        "optimizer.step()\n"
    )


def test_gg402_example_never_updates():
    inv = example("GG402")
    ns = run(inv.code.replace("for step in range(10):", "initial = model.weight.detach().clone()\nfor step in range(10):"))
    assert torch.equal(ns["model"].weight, ns["initial"])


def test_gg403_step_before_backward_never_updates_when_zeroed_first():
    inv = example("GG403")
    ns = run(inv.code.replace("for step in range(10):", "initial = model.weight.detach().clone()\nfor step in range(10):"))
    # zero_grad() sets .grad to None, so each step() sees no gradient
    assert torch.equal(ns["model"].weight, ns["initial"])
    fixed = run(inv.fixed.replace("for step in range(10):", "initial = model.weight.detach().clone()\nfor step in range(10):"))
    assert not torch.equal(fixed["model"].weight, fixed["initial"])


def test_gg405_total_keeps_the_graph():
    inv = example("GG405")
    ns = run(inv.code)
    total = ns["running_loss"]
    assert isinstance(total, torch.Tensor) and total.grad_fn is not None
    # every iteration adds a node to the chain that `total` keeps alive
    depth, node = 0, total.grad_fn
    while node is not None and depth < 1000:
        nxt = [n for n, _ in node.next_functions if n is not None and type(n).__name__ == "AddBackward0"]
        node = nxt[0] if nxt else None
        depth += 1
    assert depth >= 19
    fixed = run(inv.fixed)
    assert isinstance(fixed["running_loss"], float)


def test_gg603_ctx_attribute_misses_inplace_modification():
    inv = example("GG603")
    buggy = run(inv.code)
    fixed = run(inv.fixed)

    def grad_after_inplace(fn):
        a = torch.zeros(3, requires_grad=True)
        x = a * 1
        y = fn.apply(x)
        y.add_(1)  # modifies the output that backward needs
        y.sum().backward()
        return a.grad

    # ctx attribute: no error, and the gradient is silently wrong (exp(0) = 1 expected)
    wrong = grad_after_inplace(buggy["Exp"])
    assert not torch.allclose(wrong, torch.ones(3))
    # save_for_backward: autograd notices the change and raises
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        grad_after_inplace(fixed["Exp"])


def test_gg602_direct_forward_bypasses_custom_backward():
    inv = example("GG602", 1)
    ns = run(inv.code, "y.sum().backward()")
    # round() has zero gradient; the custom straight-through backward was never used
    assert torch.equal(ns["x"].grad, torch.zeros(4))
    fixed = run(inv.fixed, "y.sum().backward()")
    assert torch.equal(fixed["x"].grad, torch.ones(4))
