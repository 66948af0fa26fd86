"""Loop orderings that are all correct: zero_grad first, zero_grad last, LBFGS with a closure."""

import torch
import torch.nn as nn

torch.manual_seed(0)
x = torch.randn(64, 3)
y = x @ torch.tensor([[1.0], [-1.0], [2.0]])

model_a = nn.Linear(3, 1)
opt_a = torch.optim.SGD(model_a.parameters(), lr=0.1)
for _ in range(30):
    opt_a.zero_grad()
    loss_a = nn.functional.mse_loss(model_a(x), y)
    loss_a.backward()
    opt_a.step()

model_b = nn.Linear(3, 1)
opt_b = torch.optim.SGD(model_b.parameters(), lr=0.1)
for _ in range(30):
    loss_b = nn.functional.mse_loss(model_b(x), y)
    loss_b.backward()
    opt_b.step()
    opt_b.zero_grad()

model_c = nn.Linear(3, 1)
opt_c = torch.optim.LBFGS(model_c.parameters(), lr=0.5, max_iter=10)


def closure():
    opt_c.zero_grad()
    loss = nn.functional.mse_loss(model_c(x), y)
    loss.backward()
    return loss


for _ in range(3):
    loss_c = opt_c.step(closure)

assert loss_a.item() < 0.1 and loss_b.item() < 0.1 and loss_c.item() < 0.01
