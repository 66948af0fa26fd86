"""Custom layers for a small tabular regressor, written the way many tutorials suggest.

Bugs gradguard finds here (and what PyTorch really does):
  * GG101: `CustomLinear.backward` and `GatedUnit.mm_backward` are never called by
    autograd; `loss.backward()` already gives every nn.Parameter its gradient.
  * GG102: `self.weight.grad = ...` inside that dead backward never runs.
  * GG105: `self.inputs = x` keeps the batch (and its graph) alive for the dead backward.
  * GG201: `self.gain.clamp_(...)` and `self.offset += ...` change parameters in place in
    `forward`; PyTorch raises "a leaf Variable that requires grad is being used in an
    in-place operation" on the first training step.
The rest of the file is correct and must stay silent: buffer updates, projections under
`torch.no_grad()`, `nn.init` in `reset_parameters`, an in-place ReLU.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class CustomLinear(nn.Module):
    """y = x W + b, with a hand-written backward "so that the weights learn"."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        with torch.no_grad():
            self.bias.zero_()

    def forward(self, x):
        self.inputs = x  # store for backward pass
        return x @ self.weight + self.bias

    def backward(self, grad_output):
        self.weight.grad = self.inputs.t() @ grad_output
        self.bias.grad = grad_output.sum(dim=0)
        return grad_output @ self.weight.t()


class GatedUnit(nn.Module):
    """A GLU-style gate with a learnable gain."""

    def __init__(self, features):
        super().__init__()
        self.value = nn.Linear(features, features)
        self.gate = nn.Linear(features, features)
        self.gain = nn.Parameter(torch.ones(features))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        self.gain.clamp_(0.0, 2.0)  # keep the gain in a sane range
        g = torch.sigmoid(self.gate(x))
        return self.gain * self.act(self.value(x)) * g

    def mm_backward(self, grad_output):
        return grad_output @ self.value.weight


class RunningStandardize(nn.Module):
    """Standardises features with running statistics (buffers) and a learnable offset."""

    def __init__(self, features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.offset = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def forward(self, x):
        if self.training:
            mean, var = x.mean(0).detach(), x.var(0, unbiased=False).detach()
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var)
        self.offset += 0.01 * self.running_mean
        return (x - self.running_mean) / torch.sqrt(self.running_var + 1e-5) + self.offset


class Regressor(nn.Module):
    def __init__(self, features=8, hidden=32):
        super().__init__()
        self.norm = RunningStandardize(features)
        self.fc1 = CustomLinear(features, hidden)
        self.gated = GatedUnit(hidden)
        self.head = nn.Linear(hidden, 1)

    @torch.no_grad()
    def max_norm_(self, max_norm=3.0):
        # a projection step after optimizer.step(): runs without autograd, so it is fine
        for p in self.head.parameters():
            p.mul_(torch.clamp(max_norm / (p.norm() + 1e-12), max=1.0))

    def forward(self, x):
        return self.head(self.gated(self.fc1(self.norm(x)))).squeeze(-1)


def train(steps=200):
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x[:, 0] * 2.0 - x[:, 1] + 0.1 * torch.randn(256)
    model = Regressor()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        model.max_norm_()
        if step % 50 == 0:
            print(f"step {step}: loss {loss.item():.4f}")
    return model


if __name__ == "__main__":
    train()
