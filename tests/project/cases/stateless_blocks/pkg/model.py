import torch
import torch.nn as nn

from .blocks import MovingAvgBlock, NoisyBlock


class SeriesDecompositionMultiBlock(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.moving_avg = [MovingAvgBlock(kernel, stride=1) for kernel in kernel_size]
        self.noisy = [NoisyBlock() for _ in kernel_size]
        self.layer = torch.nn.Linear(1, len(kernel_size))

    def forward(self, x):
        means = torch.cat([func(x).unsqueeze(-1) for func in self.moving_avg], dim=-1)
        return x - torch.sum(means * torch.softmax(self.layer(x.unsqueeze(-1)), -1), dim=-1)
