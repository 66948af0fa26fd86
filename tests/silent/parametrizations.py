"""Weight parametrizations: weight_norm, spectral_norm and a custom symmetric one."""

import torch
import torch.nn as nn
import torch.nn.utils.parametrize as parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm


class Symmetric(nn.Module):
    def forward(self, X):
        return X.triu() + X.triu(1).transpose(-1, -2)


torch.manual_seed(0)
layer = weight_norm(nn.Linear(5, 5))
critic = spectral_norm(nn.Linear(5, 1))
sym = nn.Linear(5, 5)
parametrize.register_parametrization(sym, "weight", Symmetric())
model = nn.Sequential(layer, nn.ReLU(), sym, nn.ReLU(), critic)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
x = torch.randn(32, 5)
y = x[:, :1]
losses = []
for _ in range(20):
    loss = nn.functional.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
assert torch.allclose(sym.weight, sym.weight.T)
assert layer.parametrizations.weight.original0.grad is not None
assert losses[-1] < losses[0]
