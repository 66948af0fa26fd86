import torch
import torch.nn as nn


class LearnableSwish(nn.Module):
    """x * sigmoid(beta * x) with a learned beta."""

    def __init__(self):
        super().__init__()
        self.beta = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        s = torch.sigmoid(self.beta * x)
        # two tensors are needed by backward
        self.x = x
        self.s = s
        return x * s

    def backward(self, grad_output):
        ds = self.s * (1 - self.s)
        grad_x = grad_output * (self.s + self.beta * self.x * ds)
        self.beta.grad = (grad_output * self.x * self.x * ds).sum()
        return grad_x
