"""Knowledge distillation: teacher outputs detached (or under no_grad), KL at temperature T."""

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
teacher = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 5)).eval()
student = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 5))
opt = torch.optim.Adam(student.parameters(), lr=1e-2)
T, alpha = 2.0, 0.7

x = torch.randn(64, 8)
y = torch.randint(0, 5, (64,))
losses = []
for step in range(30):
    if step % 2:
        soft_targets = teacher(x).detach()
    else:
        with torch.no_grad():
            soft_targets = teacher(x)
    logits = student(x)
    kd = F.kl_div(F.log_softmax(logits / T, dim=1), F.softmax(soft_targets / T, dim=1), reduction="batchmean")
    loss = alpha * T * T * kd + (1 - alpha) * F.cross_entropy(logits, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
assert all(p.grad is None for p in teacher.parameters())
assert losses[-1] < losses[0]
