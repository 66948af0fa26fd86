import torch

from .rotated import RotatedLinear


def clone_layer(source):
    # from gptqmodel 7.7.0 gptqmodel/utils/paroquant_benchmark.py: copying into a registered buffer
    cloned = RotatedLinear(4)
    cloned.qweight.copy_(source.qweight)
    if source.bias is not None:
        cloned.bias.copy_(source.bias)
    cloned.post_init()
    return cloned


def run():
    source = RotatedLinear(4)
    source.bias.fill_(1.0)
    with torch.enable_grad():
        cloned = clone_layer(source)
    assert cloned.bias.sum().item() == 4.0 and "bias" in dict(cloned.named_buffers())
