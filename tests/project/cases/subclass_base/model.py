import torch
import torch.nn as nn
from base import Base


class Net(Base):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(4, 4), nn.Linear(4, 4)]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        x = torch.sigmoid(x)
        x[x < 0.5] = 0
        return x

    def backward(self, grad_output):
        return grad_output * 2
