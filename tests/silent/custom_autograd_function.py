"""Custom autograd Functions: @staticmethod forward/backward with save_for_backward."""

import torch
import torch.nn as nn


class MyExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        result = x.exp()
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        (result,) = ctx.saved_tensors
        return grad_output * result


class ScaledClamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, low: float, high: float, scale):
        ctx.save_for_backward(x, scale)
        ctx.low, ctx.high = low, high
        return x.clamp(low, high) * scale

    @staticmethod
    def backward(ctx, grad_output):
        x, scale = ctx.saved_tensors
        grad_x = grad_scale = None
        inside = (x >= ctx.low) & (x <= ctx.high)
        if ctx.needs_input_grad[0]:
            grad_x = grad_output * scale * inside
        if ctx.needs_input_grad[3]:
            grad_scale = (grad_output * x.clamp(ctx.low, ctx.high)).sum().reshape(scale.shape)
        return grad_x, None, None, grad_scale


class ClampLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return ScaledClamp.apply(x, -1.0, 1.0, self.scale)


x = torch.randn(6, dtype=torch.double, requires_grad=True)
assert torch.autograd.gradcheck(MyExp.apply, (x,))
layer = ClampLayer().double()
assert torch.autograd.gradcheck(lambda t: layer(t), (x,))
y = layer(x).sum()
y.backward()
assert layer.scale.grad is not None and x.grad is not None
