import torch

from .quant import QuantLinear


class RotatedLinear(QuantLinear):
    def __init__(self, out_features, bias=True):
        super().__init__(out_features, bias=bias)

    def post_init(self):
        if self.bias is not None and self.bias.dtype != torch.float16:
            self.bias = self.bias.to(dtype=torch.float16)
