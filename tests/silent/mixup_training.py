"""Mixup: interpolate inputs and mix the two losses with the same lambda."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
rng = np.random.default_rng(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
x = torch.randn(128, 8)
y = x[:, :4].argmax(1)


def mixup(x, y, alpha: float = 0.4):
    lam = float(rng.beta(alpha, alpha))
    index = torch.randperm(x.shape[0])
    return lam * x + (1 - lam) * x[index], y, y[index], lam


losses = []
for _ in range(40):
    mixed, y_a, y_b, lam = mixup(x, y)
    logits = model(mixed)
    loss = lam * F.cross_entropy(logits, y_a) + (1 - lam) * F.cross_entropy(logits, y_b)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        losses.append(F.cross_entropy(model(x), y).item())
assert losses[-1] < losses[0]
