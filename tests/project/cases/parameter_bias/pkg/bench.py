import torch

from .rotated import RotatedLinear


def clone_layer(source):
    # `bias` is a parameter: the in-place copy raises
    cloned = RotatedLinear(4)
    cloned.qweight.copy_(source.qweight)
    if source.bias is not None:
        cloned.bias.copy_(source.bias)
    return cloned


def run():
    source = RotatedLinear(4)
    source.bias.data.fill_(1.0)
    with torch.enable_grad():
        assert clone_layer(source).bias.sum().item() == 4.0
