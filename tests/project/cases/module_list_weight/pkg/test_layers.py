import torch

from .layers import Factor, SpectralConv, SpectralConv1d


def test_same_weights():
    conv = SpectralConv()
    conv_dense = SpectralConv1d()
    for i, w in enumerate(conv.weight):
        conv_dense.weight[i] = Factor(w.to_tensor().shape)
    x = torch.randn(4, 3)
    assert conv_dense(x).shape == conv(x).shape
