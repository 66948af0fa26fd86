"""Keeping detached copies of activations on self for visualisation / debugging."""

import torch
import torch.nn as nn


class AttentionPool(nn.Module):
    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.last_attention = None
        self.last_loss = 0.0

    def forward(self, x):
        weights = self.score(x).softmax(dim=1)
        self.last_attention = weights.detach().cpu()
        return (weights * x).sum(dim=1)


torch.manual_seed(0)
pool = AttentionPool()
head = nn.Linear(8, 1)
opt = torch.optim.Adam([*pool.parameters(), *head.parameters()], lr=1e-2)
x = torch.randn(16, 5, 8)
y = x[:, 0, :1]
losses = []
for _ in range(20):
    loss = nn.functional.mse_loss(head(pool(x)), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    pool.last_loss = loss.item()
    losses.append(loss.item())
assert pool.last_attention.shape == (16, 5, 1) and not pool.last_attention.requires_grad
assert losses[-1] < losses[0]
