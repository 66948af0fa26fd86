# source: https://github.com/sczhou/STFAN/issues/8
# what: `KernelConv2DFunction.forward(ctx, input, kernel, kernel_size)` was turned into a static method
#       but its `backward` still returns `grad_input, grad_kernel`: two gradients for three inputs.
# expect: GG601@27
# fails: returned an incorrect number of gradients (expected 3, got 2)
# fix: `return grad_input, grad_kernel, None`
import torch
import torch.nn as nn
import torch.nn.functional as F


class KernelConv2DFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, kernel, kernel_size):
        ctx.kernel_size = kernel_size
        ctx.save_for_backward(input, kernel)
        return (F.unfold(input, kernel_size, padding=kernel_size // 2).view(kernel.shape) * kernel).sum(2)

    @staticmethod
    def backward(ctx, grad_output):
        input, kernel = ctx.saved_tensors
        k = ctx.kernel_size
        cols = F.unfold(input, k, padding=k // 2).view(kernel.shape)
        grad_kernel = grad_output.unsqueeze(2) * cols
        grad_cols = (grad_output.unsqueeze(2) * kernel).view(input.size(0), -1, input.size(2) * input.size(3))
        grad_input = F.fold(grad_cols, input.shape[2:], k, padding=k // 2)
        return grad_input, grad_kernel


class KernelConv2D(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, input, kernel):
        return KernelConv2DFunction.apply(input, kernel, self.kernel_size)


torch.manual_seed(0)
feat = torch.randn(1, 2, 3, 3, requires_grad=True)
kernel = torch.randn(1, 2, 9, 9, requires_grad=True)
out = KernelConv2D(3)(feat, kernel)
out.sum().backward()
