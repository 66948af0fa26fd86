"""FGSM adversarial examples: input.requires_grad_(), sign of the input gradient, detach."""

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
x = torch.randn(64, 10)
y = x[:, :3].argmax(1)


def fgsm(model: nn.Module, x, y, eps: float):
    x_adv = x.clone().detach().requires_grad_(True)
    loss = F.cross_entropy(model(x_adv), y)
    (grad,) = torch.autograd.grad(loss, x_adv)
    return (x_adv + eps * grad.sign()).detach()


for _ in range(30):
    x_adv = fgsm(model, x, y, eps=0.1)
    loss = 0.5 * F.cross_entropy(model(x), y) + 0.5 * F.cross_entropy(model(x_adv), y)
    opt.zero_grad()
    loss.backward()
    opt.step()

with torch.no_grad():
    clean = F.cross_entropy(model(x), y).item()
adv = F.cross_entropy(model(fgsm(model, x, y, 0.1)), y).item()
assert adv >= clean
