"""Gradient accumulation: backward on every micro-batch, step every `accum` batches."""

import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
criterion = nn.MSELoss()
accum = 4

data = torch.randn(256, 5)
target = data.sum(dim=1, keepdim=True)
batches = list(zip(data.split(16), target.split(16)))

epoch_losses = []
for epoch in range(3):
    running = 0.0
    optimizer.zero_grad()
    for i, (xb, yb) in enumerate(batches):
        loss = criterion(model(xb), yb) / accum
        loss.backward()
        running += loss.item()
        if (i + 1) % accum == 0 or i + 1 == len(batches):
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            optimizer.zero_grad()
    epoch_losses.append(running)

assert epoch_losses[-1] < epoch_losses[0]
