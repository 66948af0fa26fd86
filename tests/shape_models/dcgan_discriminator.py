# source: https://github.com/pytorch/examples/blob/77f55b912142e11fcfdf5b530231fb9c52f181e8/dcgan/main.py
# The DCGAN discriminator of that example (same layers, sizes and forward, including the final
# view(-1, 1).squeeze(1)), written for this suite; the script's options are fixed at their defaults.
import torch.nn as nn

nc, ndf = 3, 64


# gradguard: probe Discriminator(1) input=(4, 3, 64, 64)
class Discriminator(nn.Module):
    def __init__(self, ngpu):
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, image):
        if image.is_cuda and self.ngpu > 1:
            score = nn.parallel.data_parallel(self.main, image, range(self.ngpu))
        else:
            score = self.main(image)
        return score.view(-1, 1).squeeze(1)
