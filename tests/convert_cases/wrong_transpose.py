import torch
import torch.nn as nn


class SquareLinear(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n, n) * 0.1)

    def forward(self, x):
        self.x = x
        return x @ self.weight

    def backward(self, grad_output):
        # wrong: the weight gradient is x.T @ grad_output, not its transpose
        self.weight.grad = grad_output.t() @ self.x
        return grad_output @ self.weight.t()
