# source: https://github.com/zylo117/Yet-Another-EfficientDet-Pytorch/issues/503
# what: A BiFPN-style fusion layer passes its learnable fusion weights (an `nn.Parameter`) through a ReLU
#       module built with `inplace=True`; rectifying the parameter in place raises the leaf in-place error.
# expect: GG201@19
# fails: a leaf Variable that requires grad is being used in an in-place operation
# fix: use an out-of-place ReLU on the parameter (`torch.relu(self.weight)` or `nn.ReLU()`)
import torch
from torch import nn


class Fusefeature(nn.Module):
    def __init__(self, e=1e-4):
        super().__init__()
        self.e = e
        self.weight = nn.Parameter(torch.ones(2, dtype=torch.float32), requires_grad=True)
        self.weight_relu = nn.ReLU(inplace=True)

    def forward(self, x):
        weight = self.weight_relu(self.weight)
        weight = weight / (torch.sum(weight, dim=0) + self.e)
        return weight[0] * x[0] + weight[1] * x[1]


torch.manual_seed(0)
fuse = Fusefeature()
out = fuse([torch.randn(2, 3), torch.randn(2, 3)])
out.sum().backward()
