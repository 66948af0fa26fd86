# source: https://github.com/moskomule/senet.pytorch/blob/master/senet/se_module.py
# The squeeze-and-excitation layer of that repository (global average pool viewed as (b, c), a
# bottleneck MLP with sigmoid viewed back to (b, c, 1, 1), expand_as and scale), written for this suite.
import torch.nn as nn


# gradguard: probe SELayer(64, reduction=16) input=(2, 64, 8, 8)
class SELayer(nn.Module):
    def __init__(self, channel, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channel // reduction, channel, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y.expand_as(x)
