# source: https://github.com/1zb/pytorch-image-comp-rnn/issues/4
# what: The binarizer's `Sign` Function after the fix: static methods, masked writes inside `forward`
#       (which autograd does not record), and one gradient per input (`grad_output, None`).
# expect: none
# fails: none
# fix: none
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
        return grad_output, None


torch.manual_seed(0)
conv = nn.Conv2d(8, 4, kernel_size=1, bias=False)
optimizer = torch.optim.SGD(conv.parameters(), lr=0.1)
before = conv.weight.detach().clone()
codes = Sign.apply(torch.tanh(conv(torch.randn(2, 8, 2, 2))), True)
loss = (codes - 1).pow(2).mean()
loss.backward()
optimizer.step()
assert not torch.equal(before, conv.weight), "the binarizer's conv did not change"
