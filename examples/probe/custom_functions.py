"""Probe targets: a correct custom autograd Function and a wrong one."""

import torch


class MulAdd(torch.autograd.Function):
    """x * y + y, with the right gradients."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y + y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * y, grad * (x + 1)


class BadSquare(torch.autograd.Function):
    """x ** 2 * w, but the gradient for w forgets the square."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x**2 * w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return 2 * x * w * grad, x * grad


class RoundSTE(torch.autograd.Function):
    """Straight-through rounding: the identity backward is intended."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad
