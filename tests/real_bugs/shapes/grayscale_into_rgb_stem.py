# source: https://github.com/moskomule/senet.pytorch/issues/24
# what: Grayscale 1x150x150 images are fed to a ResNet-style network whose stem convolution expects
#   3-channel RGB input.
# expect: GG501@20
# fails: Given groups=1, weight of size [64, 3, 7, 7], expected input[4, 1, 150, 150] to have 3 channels, but got 1 channels instead
# fix: none (author's choice): x.expand(-1, 3, -1, -1), or a stem with in_channels=1
import torch
import torch.nn as nn


class Stem(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


model = Stem()
data = torch.randn(4, 1, 150, 150)
output = model(data)
