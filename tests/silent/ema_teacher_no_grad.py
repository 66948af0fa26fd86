"""Mean teacher: the teacher is an exponential moving average updated under no_grad."""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
student = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3))
teacher = copy.deepcopy(student)
for p in teacher.parameters():
    p.requires_grad_(False)

optimizer = torch.optim.SGD(student.parameters(), lr=0.1)


@torch.no_grad()
def update_ema(teacher: nn.Module, student: nn.Module, decay: float = 0.9) -> None:
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(decay).add_(s, alpha=1 - decay)
    for t, s in zip(teacher.buffers(), student.buffers()):
        t.copy_(s)


x = torch.randn(32, 10)
y = torch.randint(0, 3, (32,))
teacher_before = teacher[0].weight.clone()
for _ in range(10):
    logits = student(x)
    with torch.no_grad():
        soft = F.softmax(teacher(x + 0.1 * torch.randn_like(x)), dim=1)
    loss = F.cross_entropy(logits, y) + F.mse_loss(F.softmax(logits, dim=1), soft)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    update_ema(teacher, student)

assert not torch.equal(teacher_before, teacher[0].weight)
