"""Zeroing gradients: p.grad = None, zero_grad(set_to_none=True), model.zero_grad()."""

import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(32, 3)
y = x.sum(dim=1, keepdim=True)

losses = []
for step in range(30):
    if step % 3 == 0:
        for p in model.parameters():
            p.grad = None
    elif step % 3 == 1:
        optimizer.zero_grad(set_to_none=True)
    else:
        model.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())

assert losses[-1] < losses[0]
optimizer.zero_grad(set_to_none=True)
assert all(p.grad is None for p in model.parameters())
