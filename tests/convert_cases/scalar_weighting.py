import torch
import torch.nn as nn


class WeightedSum(nn.Module):
    # scalar output: sum_i x_i * w_i
    def __init__(self, input_dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(input_dim))

    def forward(self, x):
        self.x = x
        return torch.sum(x * self.weight)

    def backward(self, grad_output):
        self.weight.grad = grad_output * self.x  # d(sum x*w)/dw = x
