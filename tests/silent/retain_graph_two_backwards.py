"""Two backward passes through a shared graph with retain_graph=True on the first."""

import torch
import torch.nn as nn

torch.manual_seed(0)
shared = nn.Linear(4, 8)
head_a = nn.Linear(8, 1)
head_b = nn.Linear(8, 1)
opt = torch.optim.SGD(
    list(shared.parameters()) + list(head_a.parameters()) + list(head_b.parameters()), lr=0.1
)

x = torch.randn(16, 4)
features = torch.tanh(shared(x))
loss_a = head_a(features).pow(2).mean()
loss_b = (head_b(features) - 1).pow(2).mean()

opt.zero_grad()
loss_a.backward(retain_graph=True)
grad_a = shared.weight.grad.clone()
loss_b.backward()
assert not torch.equal(grad_a, shared.weight.grad)
opt.step()

# the same with torch.autograd.grad
features = torch.tanh(shared(x))
out = head_a(features).sum()
(g1,) = torch.autograd.grad(out, shared.weight, retain_graph=True)
(g2,) = torch.autograd.grad(out, shared.weight)
assert torch.allclose(g1, g2)
