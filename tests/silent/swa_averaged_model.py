"""Stochastic weight averaging with torch.optim.swa_utils.AveragedModel and SWALR."""

import torch
import torch.nn as nn
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
swa_model = AveragedModel(model)
ema_model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
swa_scheduler = SWALR(optimizer, swa_lr=0.01)
swa_start = 10

x = torch.randn(64, 4)
y = x.sum(1, keepdim=True)
for epoch in range(20):
    loss = nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    ema_model.update_parameters(model)
    if epoch >= swa_start:
        swa_model.update_parameters(model)
        swa_scheduler.step()

assert int(swa_model.n_averaged) == 10
with torch.no_grad():
    swa_loss = nn.functional.mse_loss(swa_model(x), y).item()
assert swa_loss < 10.0
