"""MoCo-style momentum encoder with a queue of negatives kept in a buffer."""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


class MoCo(nn.Module):
    def __init__(self, dim: int = 8, queue_size: int = 64, m: float = 0.99, t: float = 0.2) -> None:
        super().__init__()
        self.encoder_q = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, dim))
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for p in self.encoder_k.parameters():
            p.requires_grad = False
        self.m = m
        self.t = t
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update(self):
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            pk.data = pk.data * self.m + pq.data * (1.0 - self.m)

    @torch.no_grad()
    def _enqueue(self, keys):
        n = keys.shape[0]
        ptr = int(self.ptr)
        self.queue[ptr : ptr + n] = keys
        self.ptr[0] = (ptr + n) % self.queue.shape[0]

    def forward(self, im_q, im_k):
        q = F.normalize(self.encoder_q(im_q), dim=1)
        with torch.no_grad():
            self._momentum_update()
            k = F.normalize(self.encoder_k(im_k), dim=1)
        pos = (q * k).sum(dim=1, keepdim=True)
        neg = q @ self.queue.clone().detach().T
        logits = torch.cat([pos, neg], dim=1) / self.t
        labels = torch.zeros(logits.shape[0], dtype=torch.long)
        self._enqueue(k)
        return F.cross_entropy(logits, labels)


torch.manual_seed(0)
model = MoCo()
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
x = torch.randn(16, 16)
k_before = model.encoder_k[0].weight.clone()
q_before = model.encoder_q[0].weight.detach().clone()
losses = []
for _ in range(15):
    loss = model(x + 0.05 * torch.randn_like(x), x + 0.05 * torch.randn_like(x))
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
assert int(model.ptr) == (15 * 16) % 64
assert model.encoder_k[0].weight.grad is None
assert not torch.equal(q_before, model.encoder_q[0].weight)
assert not torch.equal(k_before, model.encoder_k[0].weight)
assert all(l == l for l in losses)  # finite
