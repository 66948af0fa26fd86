"""Separate forward passes, each with its own backward (no graph reused after it is freed)."""

import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x1, x2 = torch.randn(16, 4), torch.randn(16, 4)
y1, y2 = x1.sum(1, keepdim=True), x2.sum(1, keepdim=True)

losses = []
for _ in range(20):
    opt.zero_grad()
    loss1 = nn.functional.mse_loss(model(x1), y1)
    loss1.backward()
    loss2 = nn.functional.mse_loss(model(x2), y2)
    loss2.backward()
    opt.step()
    losses.append(loss1.item() + loss2.item())

    out = model(x1)
    penalty = out.pow(2).mean()
    penalty.backward()
    opt.zero_grad()
assert losses[-1] < losses[0]
