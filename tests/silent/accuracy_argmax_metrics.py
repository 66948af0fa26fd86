"""argmax / topk / comparisons for metrics next to a differentiable loss."""

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
x = torch.randn(128, 10)
y = x[:, :4].argmax(dim=1)


def evaluate(model: nn.Module, x, y) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        preds = logits.argmax(dim=-1)
        top2 = logits.topk(2, dim=-1).indices
    model.train()
    acc = (preds == y).float().mean().item()
    top2_acc = (top2 == y.unsqueeze(1)).any(dim=1).float().mean().item()
    return acc, top2_acc


start_acc, _ = evaluate(model, x, y)
for _ in range(40):
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    correct = (logits.argmax(1) == y).sum().item()
    opt.zero_grad()
    loss.backward()
    opt.step()
end_acc, end_top2 = evaluate(model, x, y)
assert end_acc > start_acc and end_top2 >= end_acc
assert 0 <= correct <= 128
