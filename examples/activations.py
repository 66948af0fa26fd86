"""A small classifier with hand-rolled activations.

Both activations write into their input with a boolean mask. On a tensor that
autograd saved for backward (the output of torch.relu / torch.sigmoid) that
raises at backward time; on an input that requires grad it raises at once.

`Bottleneck` does the same on the output of a Linear layer: that runs today (GG205,
information), but `h = F.relu(h)` says the same without writing in place, and keeps
working if the layer before it changes to one that saves its output.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ClippedReLU(nn.Module):
    """ReLU capped at `ceiling` (like ReLU6)."""

    def __init__(self, ceiling: float = 6.0):
        super().__init__()
        self.ceiling = ceiling

    def forward(self, x):
        x[x < 0] = 0
        return x.clamp(max=self.ceiling)


class GatedHead(nn.Module):
    def __init__(self, features: int, classes: int):
        super().__init__()
        self.gate = nn.Linear(features, features)
        self.out = nn.Linear(features, classes)
        self.act = ClippedReLU()

    def forward(self, x):
        gate = torch.sigmoid(self.gate(x))
        gate[gate < 0.1] = 0.0  # drop weak gates
        return self.out(self.act(x * gate))


class Bottleneck(nn.Module):
    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.down = nn.Linear(features, hidden)
        self.up = nn.Linear(hidden, features)

    def forward(self, x):
        h = self.down(x)
        h[h < 0] = 0
        return x + self.up(h)


if __name__ == "__main__":
    torch.manual_seed(0)
    model = GatedHead(16, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, labels = torch.randn(32, 16), torch.randint(0, 4, (32,))
    for step in range(20):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs), labels)
        loss.backward()
        optimizer.step()
