import torch.nn as nn

from .base import Base


class Net(Base):
    def __init__(self):
        super().__init__()
        self.blocks = {"a": nn.Linear(2, 2)}

    def forward(self, x):
        return self.blocks["a"](x)

    def backward(self, grad):
        return grad
