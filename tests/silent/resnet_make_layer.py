"""ResNet-style construction: layers built by helper methods called from __init__ only."""

import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.in_ch = 4
        self.stem = nn.Sequential(
            nn.Conv2d(1, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(inplace=True)
        )
        self.layer1 = self._make_layer(4, 2)
        self.layer2 = self._make_layer(8, 2, stride=2)
        self.head = self._make_head(8, num_classes)

    def _make_layer(self, out_ch: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [BasicBlock(self.in_ch, out_ch, stride)]
        self.in_ch = out_ch
        layers += [BasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    @staticmethod
    def _make_head(in_ch: int, num_classes: int) -> nn.Module:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, num_classes))

    def forward(self, x):
        return self.head(self.layer2(self.layer1(self.stem(x))))


torch.manual_seed(0)
model = TinyResNet()
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
x = torch.randn(8, 1, 8, 8)
y = (x.mean(dim=(1, 2, 3)) > 0).long()
losses = []
for _ in range(10):
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
assert losses[-1] < losses[0]
