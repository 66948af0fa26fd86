import torch
import torch.nn as nn


class QuantLinear(nn.Module):
    """gptqmodel 7.7.0 nn_modules/qlinear/__init__.py (AWQuantLinear): `bias` is a float16 buffer."""

    def __init__(self, out_features, bias=True):
        super().__init__()
        self.register_buffer("qweight", torch.zeros(out_features, dtype=torch.int32))
        if bias:
            self.register_buffer("bias", torch.zeros(out_features, dtype=torch.float16))
        else:
            self.bias = None
