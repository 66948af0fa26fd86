"""In-place preprocessing of input batches (no autograd involved) before the forward pass."""

import torch
import torch.nn as nn

torch.manual_seed(0)
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def preprocess(batch):
    batch = batch.float()
    batch.div_(255.0)
    batch.sub_(mean).div_(std)
    batch.clamp_(-3, 3)
    return batch


model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
raw = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
labels = (raw.float().mean(dim=(1, 2, 3)) > 127).long()
images = preprocess(raw)
images.add_(0.01 * torch.randn_like(images))  # augmentation noise, in place on data

losses = []
for _ in range(25):
    loss = nn.functional.cross_entropy(model(images), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
assert losses[-1] < losses[0]
