"""Multi-head attention reshapes: transpose then .contiguous().view(), or .reshape()."""

import torch
import torch.nn as nn


class MultiHeadAttention(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = (q @ k.transpose(-2, -1)) / self.head_dim**0.5
        y = att.softmax(dim=-1) @ v
        y = y.transpose(1, 2).contiguous().view(b, t, d)
        z = (att.softmax(dim=-1) @ v).permute(0, 2, 1, 3).reshape(b, t, d)
        return self.out(y + z)


torch.manual_seed(0)
mha = MultiHeadAttention()
opt = torch.optim.Adam(mha.parameters(), lr=1e-2)
x = torch.randn(2, 5, 16)
target = torch.randn(2, 5, 16)
losses = []
for _ in range(15):
    loss = nn.functional.mse_loss(mha(x), target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
assert losses[-1] < losses[0]
flat = x.transpose(0, 1).reshape(-1)
assert flat.shape == (160,)
