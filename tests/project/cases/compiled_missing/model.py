import torch.nn as nn
from fastops import FastBase
from not_installed_anywhere import Mystery


class Fast(FastBase):
    def backward(self, grad):
        return grad


class Odd(Mystery):
    def backward(self, grad):
        return grad


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.parts = [nn.Linear(2, 2)]

    def forward(self, x):
        return self.parts[0](x)
