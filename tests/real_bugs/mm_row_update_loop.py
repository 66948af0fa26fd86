# source: https://www.yongfengli.tk/2018/04/13/inplace-operation-in-pytorch.html
# what: A forward pass multiplies by `self.param`, then adds 1 to each row of the product in a loop
#       (`b[i] = b[i] + 1`) while `torch.mm(self.param, b)` inside the same loop has saved `b` for backward.
# expect: GG204@20
# fails: modified by an inplace operation
# fix: build the update out of place (`b = b + bione`) or clone `b` before writing into it
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.param = nn.Parameter(torch.randn(4, 4) * 0.1)

    def forward(self, a):
        y = 0
        b = torch.mm(self.param, a)
        for i in range(4):
            b[i] = b[i] + 1
            y = y + torch.mm(self.param, b)
        return y


torch.manual_seed(0)
net = Net()
y = net(torch.randn(4, 1))
y.sum().backward()
