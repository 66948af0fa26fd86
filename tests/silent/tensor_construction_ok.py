"""Building tensors from Python numbers, .item() values and numpy arrays; stacking tensors."""

import numpy as np
import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Linear(3, 1)
x = torch.randn(10, 3)
losses = [nn.functional.mse_loss(model(x), torch.zeros(10, 1)) for _ in range(3)]
history = torch.tensor([l.item() for l in losses])
stacked = torch.stack(losses)
total = stacked.sum()
total.backward()
assert model.weight.grad is not None and history.shape == (3,)
grid = torch.as_tensor(np.linspace(0, 1, 5), dtype=torch.float32)
scale = torch.tensor(0.5)
eye = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
assert (grid * scale).max().item() == 0.5 and eye.trace().item() == 2.0
frozen = torch.randn(3, requires_grad=True)
frozen.requires_grad_(False)
model.bias.requires_grad = False
assert not frozen.requires_grad and not model.bias.requires_grad
