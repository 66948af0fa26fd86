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
    ns = run(
        inv.code.replace(
            "for step in range(10):", "initial = model.weight.detach().clone()\nfor step in range(10):"
        )
    )
    assert torch.equal(ns["model"].weight, ns["initial"])


def test_gg403_step_before_backward_never_updates_when_zeroed_first():
    inv = example("GG403")
    ns = run(
        inv.code.replace(
            "for step in range(10):", "initial = model.weight.detach().clone()\nfor step in range(10):"
        )
    )
    # zero_grad() sets .grad to None, so each step() sees no gradient
    assert torch.equal(ns["model"].weight, ns["initial"])
    fixed = run(
        inv.fixed.replace(
            "for step in range(10):", "initial = model.weight.detach().clone()\nfor step in range(10):"
        )
    )
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


def _load_example(name: str) -> dict:
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / name
    namespace = {"__name__": "__gradguard_example__"}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return namespace


def test_training_loops_gallery_behaves_as_documented():
    ns = _load_example("training_loops.py")
    torch.manual_seed(0)
    loader = ns["make_data"]()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        ns["two_heads"](loader)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        ns["fit_cached_predictions"](torch.nn.Linear(8, 1), torch.randn(16, 8), torch.randn(16, 1))
    model = torch.nn.Linear(8, 1)
    before = model.weight.detach().clone()
    ns["train_zeroing_too_late"](model, loader)
    assert torch.equal(model.weight, before)
    ns["two_heads_correctly"](loader)
    ns["train_gan"](torch.nn.Linear(16, 8), torch.nn.Linear(8, 1), loader)


def test_shapes_and_dtypes_gallery_raises_as_documented():
    ns = _load_example("shapes_and_dtypes.py")
    with pytest.raises(
        RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(\d+x320 and 500x50\)"
    ):
        ns["MnistHead"]()(torch.randn(2, 1, 28, 28))
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(4x6 and 4x3\)"):
        ns["project"]()
    with pytest.raises(RuntimeError, match="view size is not compatible with input tensor's size and stride"):
        ns["merge_heads"](torch.randn(2, 4, 5, 8), 2)
    for name in ("fit_numpy_data", "double_features"):
        with pytest.raises(RuntimeError, match="mat1 and mat2 must have the same dtype"):
            ns[name]()
    assert ns["MnistHeadFixed"]()(torch.randn(2, 1, 28, 28)).shape == (2, 50)
    assert ns["project_fixed"]().shape == (4, 3)
    assert ns["merge_heads_fixed"](torch.randn(2, 4, 5, 8), 2, 5).shape == (2, 5, 32)
    assert ns["fit_numpy_data_fixed"]().dtype == torch.float32


def test_custom_functions_gallery_behaves_as_documented():
    ns = _load_example("custom_functions.py")
    x = torch.randn(5, requires_grad=True)
    with pytest.raises(
        RuntimeError,
        match=r"ScaledTanhBackward returned an incorrect number of gradients \(expected 2, got 1\)",
    ):
        ns["ScaledTanh"].apply(x, 2.0).sum().backward()
    with pytest.raises(
        RuntimeError, match="Legacy autograd function with non-static forward method is deprecated"
    ):
        ns["quantize"](x)
    # calling forward directly: sign() has zero gradient, the straight-through backward is unused
    y = ns["StraightThrough"].forward(None, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros(5))
    ok = torch.randn(4, requires_grad=True)
    ns["Exp"].apply(ok).sum().backward()
    assert torch.allclose(ok.grad, ok.exp())


def test_gg401_gan_generator_gradients_accumulate_when_only_d_is_zeroed():
    inv = example("GG401", 2)
    buggy, fixed = run(inv.code)["train_gan"], run(inv.fixed)["train_gan"]
    G, D = torch.nn.Linear(8, 4), torch.nn.Linear(4, 1)
    opt_g = torch.optim.SGD(G.parameters(), lr=0.0)  # lr 0: parameters stay put, gradients tell
    opt_d = torch.optim.SGD(D.parameters(), lr=0.0)
    real = torch.randn(5, 4)

    def grad_after(train, batches, skip_draws=0):
        G.weight.grad = None
        torch.manual_seed(1)
        for _ in range(skip_draws):
            torch.randn(5, 8)
        train(G, D, opt_g, opt_d, [real] * batches)
        return G.weight.grad.clone()

    g1 = grad_after(buggy, 1)
    g2 = grad_after(buggy, 1, skip_draws=1)
    # without opt_g.zero_grad() the second step applies both iterations' gradients
    assert torch.allclose(grad_after(buggy, 2), g1 + g2)
    assert torch.allclose(grad_after(fixed, 2), g2)
