import torch
import models.layers as L


class Net(L.Base):
    def __init__(self):
        super().__init__()
        self.parts = [L.Dense(), L.Dense()]

    def forward(self, x):
        for part in self.parts:
            x = part(x)
        return x

    def backward(self, grad_output):
        return grad_output
