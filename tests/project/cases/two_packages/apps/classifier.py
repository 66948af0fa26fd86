import torch
from vision.backbone import Backbone


class Classifier(Backbone):
    def __init__(self):
        super().__init__()
        self.weight = torch.randn(10, 10, requires_grad=True)

    def forward(self, x):
        self.weight += 1
        return torch.relu(x @ self.weight)

    def backward(self, grad_out):
        return grad_out
