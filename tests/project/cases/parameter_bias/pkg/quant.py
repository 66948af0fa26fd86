import torch
import torch.nn as nn


class QuantLinear(nn.Module):
    """`bias` is a parameter: copying into it outside `no_grad` raises."""

    def __init__(self, out_features, bias=True):
        super().__init__()
        self.register_buffer("qweight", torch.zeros(out_features, dtype=torch.int32))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=torch.float16))
