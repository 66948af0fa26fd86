"""Straight-through estimator: the forward pass rounds, the backward pass is identity."""

import torch
import torch.nn as nn


class QuantLinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, bits: int = 4) -> None:
        super().__init__(in_features, out_features)
        self.levels = 2 ** (bits - 1) - 1

    def forward(self, x):
        w = self.weight
        scale = w.abs().max().clamp(min=1e-8) / self.levels
        q = torch.round(w / scale) * scale
        w_q = w + (q - w).detach()
        return nn.functional.linear(x, w_q, self.bias)


def binarize_ste(x):
    return x + (torch.sign(x) - x).detach()


torch.manual_seed(0)
model = nn.Sequential(QuantLinear(6, 16), nn.ReLU(), QuantLinear(16, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(128, 6)
y = x[:, :1] * 2 - x[:, 1:2]

first = None
for _ in range(40):
    loss = nn.functional.mse_loss(model(x), y)
    if first is None:
        first = loss.item()
    opt.zero_grad()
    loss.backward()
    opt.step()
assert loss.item() < first

h = torch.randn(5, requires_grad=True)
binarize_ste(h).sum().backward()
assert torch.equal(h.grad, torch.ones(5))
