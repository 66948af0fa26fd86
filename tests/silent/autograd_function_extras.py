"""More correct autograd Functions: non-tensor args (None grads), mark_dirty, once_differentiable,
setup_context, and a float scale kept on ctx."""

import torch
from torch.autograd.function import once_differentiable


class Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, factor: float):
        ctx.factor = factor
        return x * factor

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * ctx.factor, None


class InplaceDouble(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        x.mul_(2)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * 2


class SquareOnce(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 2 * x * grad_output


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * grad_output


x = torch.randn(4, requires_grad=True)
Scale.apply(x, 3.0).sum().backward()
assert torch.allclose(x.grad, torch.full((4,), 3.0))

y = x.detach().clone().requires_grad_(True)
z = InplaceDouble.apply(y.clone())
z.sum().backward()
assert torch.allclose(y.grad, torch.full((4,), 2.0))

x.grad = None
SquareOnce.apply(x).sum().backward()
assert torch.allclose(x.grad, 2 * x.detach())

w = torch.randn(3, dtype=torch.double, requires_grad=True)
assert torch.autograd.gradcheck(Cube.apply, (w,))
