import torch
from lib import *


class Net(Layer):
    def __init__(self):
        super().__init__()
        self.bias = torch.zeros(4, requires_grad=True)

    def forward(self, x):
        return super().forward(x) + self.bias

    def backward(self, grad):
        return grad
