# source: https://github.com/surajdakua/Crowd-Counting-Using-Pytorch/issues/4
# what: A crowd-counting network (three 2x poolings) predicts a density map at 1/8 of the image size,
#   but it is compared with a ground-truth map at full resolution.
# expect: GG507@30
# fails: The size of tensor a (16) must match the size of tensor b (128) at non-singleton dimension 3
# fix: none (modelling choice): sum-pool the target by 8, or F.interpolate it and rescale
import torch
import torch.nn as nn


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        channels = [3, 8, 16, 32]
        for cin, cout in zip(channels, channels[1:]):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.frontend = nn.Sequential(*layers)
        self.output_layer = nn.Conv2d(32, 1, 1)

    def forward(self, x):
        return self.output_layer(self.frontend(x))


model = Counter()
criterion = nn.MSELoss(reduction="sum")
img = torch.randn(1, 3, 96, 128)
target = torch.rand(1, 1, 96, 128)
output = model(img)
loss = criterion(output, target)
