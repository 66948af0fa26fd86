import torch
from pkg import Block


class Net(Block):
    def forward(self, x):
        out = torch.exp(super().forward(x))
        out += 1
        return out

    def backward(self, grad_output):
        return grad_output
