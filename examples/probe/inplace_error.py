"""Probe target: an in-place write into the output of sigmoid, which sigmoid's
backward needs; backward fails."""

import torch
import torch.nn as nn


class Gate(nn.Module):
    def __init__(self, features=12):
        super().__init__()
        self.proj = nn.Linear(features, features)

    def forward(self, x):
        g = torch.sigmoid(self.proj(x))
        g[g < 0.5] = 0  # in place on a tensor saved for backward
        return g * x
