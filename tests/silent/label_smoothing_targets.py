"""Soft targets built without gradients: label smoothing and pseudo-labels with thresholds."""

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
num_classes = 4
model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, num_classes))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)


def smooth_targets(labels, eps: float = 0.1):
    with torch.no_grad():
        targets = torch.full((labels.shape[0], num_classes), eps / (num_classes - 1))
        targets.scatter_(1, labels.unsqueeze(1), 1.0 - eps)
    return targets


x_lab = torch.randn(64, 6)
y_lab = x_lab[:, :num_classes].argmax(1)
x_unlab = torch.randn(64, 6)
losses = []
for _ in range(30):
    logits = model(x_lab)
    loss = torch.sum(-smooth_targets(y_lab) * F.log_softmax(logits, dim=1), dim=1).mean()
    with torch.no_grad():
        probs = F.softmax(model(x_unlab), dim=1)
        confidence, pseudo = probs.max(dim=1)
        keep = confidence > 0.5
    if keep.any():
        loss = loss + 0.5 * F.cross_entropy(model(x_unlab[keep]), pseudo[keep])
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(F.cross_entropy(model(x_lab), y_lab).item())
assert losses[-1] < losses[0]
