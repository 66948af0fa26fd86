"""Validation under model.eval() with torch.inference_mode() and torch.no_grad()."""

import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
x_train, x_val = torch.randn(128, 4), torch.randn(64, 4)
y_train, y_val = (x_train[:, 0] > 0).long(), (x_val[:, 0] > 0).long()


@torch.inference_mode()
def validate(model: nn.Module) -> float:
    model.eval()
    preds = model(x_val).argmax(1)
    return (preds == y_val).float().mean().item()


def predict_proba(model: nn.Module, x):
    model.eval()
    with torch.no_grad():
        return model(x).softmax(dim=-1)


start = validate(model)
for _ in range(20):
    model.train()
    loss = nn.functional.cross_entropy(model(x_train), y_train)
    opt.zero_grad()
    loss.backward()
    opt.step()
assert validate(model) > start
probs = predict_proba(model, x_val)
assert torch.allclose(probs.sum(-1), torch.ones(64))
