# source: https://androidkt.com/fix-runtimeerror-mat1-and-mat2-shapes-cannot-be-multiplied/
# what: Two conv+pool blocks on 28x28 MNIST leave 32x7x7 = 1568 features, but the classifier was
#   declared nn.Linear(1050, 10); the first forward pass fails at the Linear.
# expect: GG501@22
# fails: mat1 and mat2 shapes cannot be multiplied (2x1568 and 1050x10)
# fix: set `in_features` of `self.out` to 1568 (32 * 7 * 7)
import torch
import torch.nn as nn


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 16, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(16, 32, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2))
        self.out = nn.Linear(1050, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = self.conv2(x)
        x = x.view(x.size(0), -1)
        return self.out(x)


model = CNN()
logits = model(torch.randn(2, 1, 28, 28))
