"""Probe target: a classifier whose second hidden layer is never called in forward."""

import torch
import torch.nn as nn


class Classifier(nn.Module):
    def __init__(self, in_features, classes):
        super().__init__()
        self.fc1 = nn.Linear(in_features, 32)
        self.fc2 = nn.Linear(32, 32)  # never called in forward: gets no gradient
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        return self.head(h)


if __name__ == "__main__":
    model = Classifier(20, 5)
    print(model(torch.randn(4, 20)).shape)
