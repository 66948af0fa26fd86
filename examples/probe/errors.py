"""Probe targets: errors the probe maps back to the exact line."""

import torch
import torch.nn as nn


# gradguard: probe MismatchedHead(20) input=(4, 20)
class MismatchedHead(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.body = nn.Linear(features, 64)
        self.head = nn.Linear(32, 1)  # expects 32 features, gets 64

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.head(h)


class Scale(torch.autograd.Function):
    """forward takes two inputs but backward returns one gradient."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.save_for_backward(factor)
        return x * factor

    @staticmethod
    def backward(ctx, grad):
        (factor,) = ctx.saved_tensors
        return grad * factor


# gradguard: probe input=[(3, 3), (3, 3)]
class BadShape(torch.autograd.Function):
    """backward returns a scalar where a (3, 3) gradient is expected."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * y, (grad * x).sum()


class BadInit(nn.Module):
    """nn.Linear needs in_features and out_features."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10)

    def forward(self, x):
        return self.fc(x)
