# source: https://github.com/1zb/pytorch-image-comp-rnn/issues/4
# what: The binarizer's `Sign` Function takes `(input, is_training)` but its `backward` returns only
#       `grad_output`; autograd expects one gradient per forward input.
# expect: GG601@26
# fails: returned an incorrect number of gradients (expected 2, got 1)
# fix: `return grad_output, None`
import torch
import torch.nn as nn
from torch.autograd import Function


class Sign(Function):
    @staticmethod
    def forward(ctx, input, is_training=True):
        if is_training:
            prob = input.new(input.size()).uniform_()
            x = input.clone()
            x[(1 - input) / 2 <= prob] = 1
            x[(1 - input) / 2 > prob] = -1
            return x
        else:
            return input.sign()

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


class Binarizer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 4, kernel_size=1, bias=False)

    def forward(self, input):
        feat = self.conv(input)
        x = torch.tanh(feat)
        return Sign.apply(x, self.training)


torch.manual_seed(0)
binarizer = Binarizer()
codes = binarizer(torch.randn(1, 8, 2, 2))
codes.sum().backward()
