import torch
import torch.nn as nn


class FlattenGain(nn.Module):
    """Flattens all but the batch dimension and multiplies by a learned gain."""

    def __init__(self, features):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(features))

    def forward(self, x):
        self.input_shape = x.shape  # a torch.Size, not a tensor
        self.flat = x.reshape(x.shape[0], -1)
        return self.flat * self.gain

    def backward(self, grad_output):
        self.gain.grad = (grad_output * self.flat).sum(0)
        return (grad_output * self.gain).reshape(self.input_shape)
