import torch
import torch.nn as nn


class ManualLinear(nn.Module):
    """y = x @ W + b with a hand-written backward."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_features, out_features) * 0.1)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x):
        self.x = x  # store for backward pass
        return torch.matmul(x, self.weight) + self.bias

    def backward(self, grad_output):
        # gradients of the parameters
        dw = torch.matmul(self.x.t(), grad_output)
        db = torch.sum(grad_output, dim=0)
        self.weight.grad = dw
        self.bias.grad = db
        # gradient of the input, for the layers below
        grad_input = torch.matmul(grad_output, self.weight.t())
        return grad_input
