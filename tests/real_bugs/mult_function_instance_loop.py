# source: https://github.com/pytorch/pytorch/issues/3394
# what: A `Mult(Function)` with instance-method `forward(self, big, vector)` is created once
#       (`mult = Mult()`) and then called for every item of the batch, `y[b, :] = mult(big[b], x[b])`;
#       calling a Function instance is the removed legacy API.
# expect: GG602@19 GG602@23 GG602@34
# fails: Legacy autograd function with non-static forward method is deprecated
# fix: static `forward(ctx, big, vector)`/`backward(ctx, grad_output)` and `Mult.apply(big[b, :, :], x[b, :])`
import torch
from torch import nn

B, BIG = 2, 4
criterion = nn.MSELoss()


class Mult(torch.autograd.Function):
    def __init__(self):
        super().__init__()

    def forward(self, big, vector):
        self.save_for_backward(big)
        return vector * 2.0

    def backward(self, grad_output):
        return None, grad_output * 2.0


def iteration():
    mult = Mult()
    big = torch.zeros(B, BIG, BIG)
    x = torch.rand(B, 3, requires_grad=True)
    y = torch.zeros(B, 3)
    target = x.detach().clone()
    for b in range(B):
        y[b, :] = mult(big[b, :, :], x[b, :])
    loss = criterion(y, target)
    loss.backward()


torch.manual_seed(0)
iteration()
