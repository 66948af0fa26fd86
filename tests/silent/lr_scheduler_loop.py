"""Optimizer + schedulers: warmup with LambdaLR, cosine, ReduceLROnPlateau."""

import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 5))
cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20)
scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[5])

x = torch.randn(64, 4)
y = x[:, :1] - x[:, 1:2]
lrs, losses = [], []
for epoch in range(25):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    scheduler.step()
    lrs.append(optimizer.param_groups[0]["lr"])
    losses.append(loss.item())
assert losses[-1] < losses[0] and lrs[0] != lrs[10]

plateau_opt = torch.optim.Adam(model.parameters(), lr=1e-3)
plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(plateau_opt, patience=0, factor=0.5)
for val_loss in (1.0, 1.0, 1.0):
    plateau.step(val_loss)
assert plateau_opt.param_groups[0]["lr"] < 1e-3
