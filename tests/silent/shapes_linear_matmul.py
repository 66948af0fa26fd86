"""Shapes that line up: flatten before Linear, `x @ w.T`, batched matmul/bmm, einsum."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvClassifier(nn.Module):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, num_classes)
        self.proj = nn.Parameter(torch.randn(8, 4 * 4 * 4) * 0.1)

    def forward(self, x):
        h = self.pool(F.relu(self.conv(x)))
        h = torch.flatten(h, 1)
        emb = h @ self.proj.T
        return self.fc(h), emb


torch.manual_seed(0)
model = ConvClassifier()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
x = torch.randn(16, 1, 8, 8)
y = torch.randint(0, 3, (16,))
losses = []
for _ in range(20):
    logits, emb = model(x)
    loss = F.cross_entropy(logits, y) + 1e-3 * emb.pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
assert losses[-1] < losses[0]

q = torch.randn(2, 5, 4, requires_grad=True)
k = torch.randn(2, 6, 4)
scores = torch.bmm(q, k.transpose(1, 2))
same = torch.einsum("bqd,bkd->bqk", q, k)
assert torch.allclose(scores, same)
w = torch.randn(3, 4)
out = torch.matmul(q, w.t()) + q.matmul(w.T)
(scores.sum() + out.sum()).backward()
assert q.grad.shape == (2, 5, 4)
