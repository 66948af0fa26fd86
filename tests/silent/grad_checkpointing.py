"""Activation checkpointing with torch.utils.checkpoint (non-reentrant)."""

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint, checkpoint_sequential


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x):
        return x + self.mlp(self.norm(x))


class Deep(nn.Module):
    def __init__(self, dim: int = 8, depth: int = 4, use_checkpoint: bool = True) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim) for _ in range(depth))
        self.head = nn.Linear(dim, 1)
        self.use_checkpoint = use_checkpoint

    def forward(self, x):
        for block in self.blocks:
            if self.use_checkpoint and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.head(x)


torch.manual_seed(0)
model = Deep()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
x = torch.randn(32, 8)
y = torch.randn(32, 1)
losses = []
for _ in range(15):
    loss = nn.functional.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
assert all(p.grad is not None for p in model.parameters())
assert losses[-1] < losses[0]

seq = nn.Sequential(*[Block(8) for _ in range(4)])
out = checkpoint_sequential(seq, 2, torch.randn(4, 8, requires_grad=True), use_reentrant=False)
out.sum().backward()
assert seq[0].mlp[0].weight.grad is not None
