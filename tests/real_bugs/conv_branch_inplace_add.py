# source: https://discuss.pytorch.org/t/when-would-the-error-one-of-the-variables-needed-for-gradient-computation-has-been-modified-occur/11976/2
# what: The output of `conv1` feeds a side branch `conv1_p` and is then updated in place with
#       `x += some_layer` on the main branch; `conv1_p` saved `x` for its backward, so backward fails.
# expect: GG204@21
# fails: modified by an inplace operation
# fix: `x = x + some_layer` (out of place)
import torch
from torch import nn


class TwoBranchNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv1_p = nn.Conv2d(4, 4, 3, padding=1)
        self.some_layer = nn.Conv2d(3, 4, 1)

    def forward(self, input):
        x = self.conv1(input)  # main branch
        x_p = self.conv1_p(x)  # another branch
        x += self.some_layer(input)
        return x.mean() + x_p.mean()


torch.manual_seed(0)
net = TwoBranchNet()
out = net(torch.randn(2, 3, 6, 6))
out.backward()
