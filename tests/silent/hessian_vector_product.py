"""Double backward: Hessian-vector products and torch.func."""

import torch
import torch.nn as nn
from torch.func import functional_call, grad, vmap

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
x = torch.randn(10, 3)
y = torch.randn(10, 1)
params = [p for p in model.parameters()]

loss = nn.functional.mse_loss(model(x), y)
grads = torch.autograd.grad(loss, params, create_graph=True)
vector = [torch.randn_like(p) for p in params]
dot = sum((g * v).sum() for g, v in zip(grads, vector))
hvp = torch.autograd.grad(dot, params)
assert all(h.shape == p.shape for h, p in zip(hvp, params))


def loss_fn(weights, xb, yb):
    out = functional_call(model, weights, (xb.unsqueeze(0),))
    return nn.functional.mse_loss(out, yb.unsqueeze(0))


weights = {k: v.detach() for k, v in model.named_parameters()}
per_sample = vmap(grad(loss_fn), in_dims=(None, 0, 0))(weights, x, y)
assert per_sample["0.weight"].shape == (10, 4, 3)
mean_grad = per_sample["0.weight"].mean(0)
full_loss = nn.functional.mse_loss(model(x), y)
assert torch.allclose(mean_grad, torch.autograd.grad(full_loss, model[0].weight)[0], atol=1e-5)
