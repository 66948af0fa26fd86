"""Logging with loss.item(): running totals, averages and history lists."""

import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Linear(3, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
criterion = nn.MSELoss()
x = torch.randn(60, 3)
y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3

history = []
for epoch in range(5):
    total_loss = 0.0
    n = 0
    for xb, yb in zip(x.split(20), y.split(20)):
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * xb.shape[0]
        n += xb.shape[0]
    avg = total_loss / n
    history.append(avg)
    print(f"epoch {epoch}: loss {avg:.4f} (last batch {loss.item():.4f})")
assert history[-1] < history[0]
