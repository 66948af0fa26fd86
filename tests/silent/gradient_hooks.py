"""Tensor and module hooks: clamp parameter gradients, record activations with .detach()."""

import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
for p in model.parameters():
    p.register_hook(lambda grad: grad.clamp(-0.5, 0.5))

activations = {}


def save_activation(name):
    def hook(module, inputs, output):
        activations[name] = output.detach()

    return hook


handle = model[1].register_forward_hook(save_activation("relu"))
x = torch.randn(16, 4) * 10
loss = model(x).pow(2).mean()
loss.backward()
assert all(p.grad.abs().max() <= 0.5 for p in model.parameters())
assert activations["relu"].shape == (16, 8) and not activations["relu"].requires_grad
handle.remove()

h = torch.randn(3, requires_grad=True)
seen = []
y = (h * 2).sum()
h.register_hook(lambda g: seen.append(g.clone()))
y.backward()
assert torch.equal(seen[0], torch.full((3,), 2.0))
