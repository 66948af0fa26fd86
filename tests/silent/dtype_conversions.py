"""float64 data converted to float32 before the model; long labels; a model in double."""

import numpy as np
import torch
import torch.nn as nn

rng = np.random.default_rng(0)
features = rng.normal(size=(64, 5))  # float64
labels = (features[:, 0] > 0).astype(np.int64)

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.from_numpy(features).float()
y = torch.from_numpy(labels)
weights = torch.tensor([0.5, 1.5], dtype=torch.float32)
losses = []
for _ in range(20):
    loss = nn.functional.cross_entropy(model(x), y, weight=weights)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
assert losses[-1] < losses[0]

precise = nn.Linear(5, 1).double()
x64 = torch.as_tensor(features)
out = precise(x64)
assert out.dtype == torch.float64
out.sum().backward()
scaled = model(x.to(torch.float32)) * torch.tensor(2.0)
assert scaled.dtype == torch.float32
