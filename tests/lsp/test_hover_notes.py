"""Every claim of the hover notes (gradguard/lsp/hover.py), checked with torch."""

from __future__ import annotations

import pytest
from gradguard.lsp.hover import NOTES, note_for

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def test_note_lookup_only_for_autograd_uses():
    assert note_for("y = x.detach()", 8)[0] == NOTES["detach"]
    assert note_for("x = torch.ones(2, requires_grad=True)", 22)[0] == NOTES["requires_grad"]
    assert note_for("with torch.no_grad():", 13)[0] == NOTES["no_grad"]
    assert note_for("optimizer.step()", 11)[0] == NOTES["step"]
    assert note_for("step = 3", 1) is None  # a variable named step
    assert note_for("self.step = 0", 6) is None  # an attribute that is not the optimizer's method
    assert note_for("if x.requires_grad:", 8)[0] == NOTES["requires_grad"]
    assert note_for("y = Scale.apply(x)", 12)[0] == NOTES["apply"]
    assert note_for("def backward(self, g):", 6) is None


def test_detach():
    x = torch.ones(3, requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.data_ptr() == y.data_ptr()  # shares storage
    assert d.requires_grad is False and d.grad_fn is None
    (d * 3 + x).sum().backward()
    assert torch.equal(x.grad, torch.ones(3))  # nothing flowed back through the detached path


def test_no_grad():
    x = torch.ones(3, requires_grad=True)
    with torch.no_grad():
        y = x * 2
    assert y.requires_grad is False

    @torch.no_grad()
    def f(t):
        return t * 2

    assert f(x).requires_grad is False
    w = torch.nn.Parameter(torch.ones(2))
    w.sum().backward()
    with torch.no_grad():
        w -= 0.1 * w.grad  # in-place parameter update: allowed under no_grad
    assert torch.allclose(w, torch.full((2,), 0.9))


def test_requires_grad():
    x = torch.ones(2, requires_grad=True)
    assert (x * 2).requires_grad
    assert torch.nn.Parameter(torch.ones(2)).requires_grad
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf variables"):
        (x * 2).requires_grad = False
    y = torch.ones(2)
    y.requires_grad = True  # a leaf may opt in
    (y * 3).sum().backward()
    assert torch.equal(y.grad, torch.full((2,), 3.0))


def test_backward():
    x = torch.ones(2, requires_grad=True)
    loss = (x * 3).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    assert torch.equal(x.grad, torch.full((2,), 6.0))  # added, not replaced
    loss2 = (x * x).sum()
    loss2.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss2.backward()
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(gradient=torch.ones(2))

    class M(torch.nn.Module):
        called = False

        def forward(self, t):
            return t * 2

        def backward(self, g):  # never called by autograd
            M.called = True
            return g

    M()(x).sum().backward()
    assert M.called is False


def test_zero_grad():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.ones(1, 2)).sum().backward()
    assert model.weight.grad is not None
    optimizer.zero_grad()
    assert model.weight.grad is None  # set_to_none=True by default
    model(torch.ones(1, 2)).sum().backward()
    model.zero_grad()
    assert model.weight.grad is None


def test_step():
    a = torch.nn.Parameter(torch.ones(2))
    b = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.Adam([a, b], lr=0.1)
    a.sum().backward()
    optimizer.step()
    assert not torch.equal(a, torch.ones(2))
    assert torch.equal(b, torch.ones(2)) and b.grad is None  # skipped
    sgd = torch.optim.SGD([b], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(sgd, step_size=1, gamma=0.5)
    sgd.step()  # no backward: nothing to apply
    assert torch.equal(b, torch.ones(2))
    before = b.detach().clone()
    scheduler.step()
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.05)
    assert torch.equal(b, before)


def test_apply_and_save_for_backward():
    class Times42Grad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            assert not torch.is_grad_enabled()  # not recorded inside
            ctx.save_for_backward(x)
            ctx.scale = 42  # non-tensors as attributes
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * ctx.scale + 0 * x

    x = torch.ones(2, requires_grad=True)
    Times42Grad.apply(x).sum().backward()
    assert torch.equal(x.grad, torch.full((2,), 42.0))

    class Plain(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return grad * 42

    y = torch.ones(2, requires_grad=True)
    Plain.forward(None, y).sum().backward()  # forward called directly: the custom backward is not used
    assert torch.equal(y.grad, torch.full((2,), 2.0))

    class SavesInput(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * x

    z = torch.ones(2, requires_grad=True)
    h = z * 1
    out = SavesInput.apply(h)
    h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_module_apply_visits_submodules():
    seen = []
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "Sequential"]
