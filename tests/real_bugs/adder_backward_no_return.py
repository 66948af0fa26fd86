# source: https://github.com/huawei-noah/AdderNet/issues/21
# what: AdderNet's `adder` Function computes `grad_W_col` and `grad_X_col` in `backward` but forgets to
#       return them; the implicit `None` is one value where autograd expects two.
# expect: GG601@19
# fails: returned an incorrect number of gradients (expected 2, got 1)
# fix: `return grad_W_col, grad_X_col`
import torch
import torch.nn as nn


class adder(torch.autograd.Function):
    @staticmethod
    def forward(ctx, W_col, X_col):
        ctx.save_for_backward(W_col, X_col)
        output = -(W_col.unsqueeze(2) - X_col.unsqueeze(0)).abs().sum(1)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        W_col, X_col = ctx.saved_tensors
        grad_W_col = ((X_col.unsqueeze(0) - W_col.unsqueeze(2)) * grad_output.unsqueeze(1)).sum(2)
        grad_W_col = (
            grad_W_col / grad_W_col.norm(p=2).clamp(min=1e-12) * (W_col.size(1) * W_col.size(0)) ** 0.5 / 5
        )
        grad_X_col = (-(X_col.unsqueeze(0) - W_col.unsqueeze(2)).clamp(-1, 1) * grad_output.unsqueeze(1)).sum(
            0
        )


class Adder2D(nn.Module):
    def __init__(self, input_channel, output_channel):
        super().__init__()
        self.adder = nn.Parameter(nn.init.normal_(torch.randn(output_channel, input_channel)))

    def forward(self, x):
        return adder.apply(self.adder, x.t())


torch.manual_seed(0)
layer = Adder2D(3, 2)
out = layer(torch.randn(4, 3))
out.sum().backward()
