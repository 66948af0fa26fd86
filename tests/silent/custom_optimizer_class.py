"""A custom torch.optim.Optimizer: @torch.no_grad() step with in-place parameter updates."""

import torch
import torch.nn as nn


class SignMomentum(torch.optim.Optimizer):
    """signSGD with momentum (a tiny Lion-like optimizer)."""

    def __init__(self, params, lr: float = 1e-2, beta: float = 0.9, weight_decay: float = 0.0) -> None:
        if lr <= 0:
            raise ValueError(f"invalid learning rate {lr}")
        super().__init__(params, dict(lr=lr, beta=beta, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                buf = state["momentum"]
                buf.mul_(group["beta"]).add_(p.grad, alpha=1 - group["beta"])
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(buf.sign(), alpha=-group["lr"])
        return loss


torch.manual_seed(0)
model = nn.Linear(4, 1)
opt = SignMomentum(model.parameters(), lr=0.02, weight_decay=0.01)
x = torch.randn(64, 4)
y = x @ torch.tensor([[1.0], [2.0], [-1.0], [0.0]])


def closure():
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    return loss


losses = [opt.step(closure).item() for _ in range(60)]
assert losses[-1] < losses[0]
