# source: https://github.com/pytorch/examples/blob/77f55b912142e11fcfdf5b530231fb9c52f181e8/dcgan/main.py
# The DCGAN generator of that example (same layers, sizes and forward), written for this suite; the
# script's options are fixed at their defaults.
import torch.nn as nn

nz, ngf, nc = 100, 64, 3


# gradguard: probe Generator(1) input=(4, 100, 1, 1)
class Generator(nn.Module):
    def __init__(self, ngpu):
        super().__init__()
        self.ngpu = ngpu
        layers = []
        channels = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
        for i in range(len(channels) - 1):
            stride, padding = (1, 0) if i == 0 else (2, 1)
            layers += [
                nn.ConvTranspose2d(channels[i], channels[i + 1], 4, stride, padding, bias=False),
                nn.BatchNorm2d(channels[i + 1]),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z):
        if z.is_cuda and self.ngpu > 1:
            image = nn.parallel.data_parallel(self.main, z, range(self.ngpu))
        else:
            image = self.main(z)
        return image
