"""A hand-written batch norm for a small MLP, with running statistics kept in buffers.

Bugs gradguard finds here (and what PyTorch really does):
  * GG206: `self.running_mean = ...` / `self.running_var = ...` are computed from the batch
    statistics of the activations, which require grad: the buffers become part of the
    autograd graph. Each step's update is chained to the previous one (memory grows), and
    `copy.deepcopy(model)` (early stopping, EMA copies) raises "Only Tensors created
    explicitly by the user (graph leaves) support the deepcopy protocol".
The fix: update the buffers under `with torch.no_grad():` (what `nn.BatchNorm1d` does).
"""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


class MyBatchNorm1d(nn.Module):
    def __init__(self, features, momentum=0.1, eps=1e-5):
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def forward(self, x):
        if self.training:
            mean = x.mean(0)
            var = x.var(0, unbiased=False)
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean
            self.running_var = (1 - self.momentum) * self.running_var + self.momentum * var
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def train(steps=20):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), MyBatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    best = None
    for step in range(steps):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        best = copy.deepcopy(model)  # raises: the buffers are not graph leaves
    return best


if __name__ == "__main__":
    train()
