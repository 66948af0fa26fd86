"""Probe target: an encoder whose output is detached before the head, so the
encoder never learns."""

import torch
import torch.nn as nn


# gradguard: probe Regressor(16) input=(8, 16)
class Regressor(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(features, 64), nn.Tanh())
        self.head = nn.Linear(64, 1)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        z = self.encoder(x).detach()  # cuts the encoder off from the loss
        return self.head(z) * self.scale
