import torch.nn as nn
from b import Twin, make


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x)

    def backward(self, grad):
        return grad


class Loop(Twin):
    pass
