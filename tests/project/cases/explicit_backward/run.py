import torch
from layers import Manual

layer = Manual()
out = layer(torch.randn(2, 3))
grad_in = layer.backward(torch.ones_like(out))
