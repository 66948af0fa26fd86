"""Optimising an input (style-transfer / deep-dream style): a leaf image tensor, clamped under no_grad."""

import torch
import torch.nn as nn

torch.manual_seed(0)
features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)).eval()
features.requires_grad_(False)
target_image = torch.rand(1, 3, 16, 16)
with torch.no_grad():
    target_features = features(target_image)

image = torch.rand(1, 3, 16, 16, requires_grad=True)
optimizer = torch.optim.Adam([image], lr=0.05)
losses = []
for _ in range(30):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(features(image), target_features)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        image.clamp_(0, 1)
    losses.append(loss.item())
assert losses[-1] < losses[0]
assert image.detach().min().item() >= 0 and image.detach().max().item() <= 1
