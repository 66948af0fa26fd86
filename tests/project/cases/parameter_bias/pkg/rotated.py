from .quant import QuantLinear


class RotatedLinear(QuantLinear):
    def __init__(self, out_features, bias=True):
        super().__init__(out_features, bias=bias)
