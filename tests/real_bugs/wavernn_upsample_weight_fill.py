# source: https://github.com/pytorch/audio/pull/1993
# what: While modernising WaveRNN's initialisation, the contributor replaced the upsample network's
#       `conv.weight.data.fill_(1.0 / (scale * 2 + 1))` in `__init__` with `conv.weight.fill_(...)`;
#       the weight is a parameter (a leaf that requires grad), so building the model raises.
# expect: GG203@28
# fails: a leaf Variable that requires grad is being used in an in-place operation
# fix: `nn.init.constant_(conv.weight, 1.0 / (scale * 2 + 1))` (or fill under `torch.no_grad()`)
import torch
from torch import nn


class Stretch2d(nn.Module):
    def __init__(self, time_scale, freq_scale):
        super().__init__()
        self.time_scale, self.freq_scale = time_scale, freq_scale

    def forward(self, x):
        return x.repeat_interleave(self.freq_scale, -2).repeat_interleave(self.time_scale, -1)


class UpsampleNetwork(nn.Module):
    def __init__(self, upsample_scales):
        super().__init__()
        up_layers = []
        for scale in upsample_scales:
            stretch = Stretch2d(scale, 1)
            conv = nn.Conv2d(1, 1, kernel_size=(1, scale * 2 + 1), padding=(0, scale), bias=False)
            conv.weight.fill_(1.0 / (scale * 2 + 1))
            up_layers.append(stretch)
            up_layers.append(conv)
        self.upsample_layers = nn.Sequential(*up_layers)

    def forward(self, specgram):
        return self.upsample_layers(specgram.unsqueeze(1)).squeeze(1)


torch.manual_seed(0)
net = UpsampleNetwork([2, 2])
out = net(torch.randn(1, 3, 4))
out.sum().backward()
