import torch
import torch.nn as nn


class Factor(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.core = nn.Parameter(torch.randn(*shape))

    def to_tensor(self):
        return self.core


class SpectralConv(nn.Module):
    def __init__(self, n=2):
        super().__init__()
        self.weight = nn.ModuleList([Factor((3, 3)) for _ in range(n)])

    def forward(self, x):
        return sum(x @ w.to_tensor() for w in self.weight)


class SpectralConv1d(SpectralConv):
    pass
