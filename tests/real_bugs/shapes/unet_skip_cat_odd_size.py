# source: https://github.com/bigmb/Unet-Segmentation-Pytorch-Nest-of-Unets/issues/55
# what: A UNet whose decoder upsamples with ConvTranspose2d(stride=2) concatenates each upsampled map
#   with the encoder map of the same level; with an input side that is not a multiple of 2**depth the
#   pooled size was rounded down, the upsampled map is one pixel short and torch.cat fails.
# expect: GG508@34
# fails: Sizes of tensors must match except in dimension 1. Expected size 61 but got size 60
# fix: none (author's choice): inputs a multiple of 16, or F.pad/F.interpolate to the skip
import torch
import torch.nn as nn


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1 = block(3, 8)
        self.enc2 = block(8, 16)
        self.pool = nn.MaxPool2d(2, 2)
        self.bottom = block(16, 32)
        self.up2 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec2 = block(32, 16)
        self.up1 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec1 = block(16, 8)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        b = self.bottom(self.pool(e2))
        d2 = self.up2(b)
        d2 = self.dec2(torch.cat((e2, d2), dim=1))
        d1 = self.up1(d2)
        d1 = self.dec1(torch.cat((e1, d1), dim=1))
        return self.head(d1)


model = UNet()
mask = model(torch.randn(1, 3, 122, 122))
