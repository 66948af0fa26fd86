"""Non-trainable state in register_buffer: positional encodings and causal masks."""

import math

import torch
import torch.nn as nn


class PositionalEncoding(nn.Module):
    def __init__(self, dim: int, max_len: int = 64) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(max_len, dim)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x):
        return x + self.pe[: x.shape[1]]


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, max_len: int = 64) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("mask", torch.tril(torch.ones(max_len, max_len)).bool())

    def forward(self, x):
        t = x.shape[1]
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        att = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        att = att.masked_fill(~self.mask[:t, :t], float("-inf")).softmax(dim=-1)
        return self.proj(att @ v)


torch.manual_seed(0)
model = nn.Sequential(PositionalEncoding(8), CausalSelfAttention(8))
x = torch.randn(2, 10, 8)
model(x).pow(2).mean().backward()
assert model[1].qkv.weight.grad is not None
assert "pe" not in model.state_dict() and "1.mask" in model.state_dict()
assert not model[0].pe.requires_grad
