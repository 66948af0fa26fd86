"""Discrete latent with straight-through Gumbel-softmax (hard one-hot forward, soft backward)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class DiscreteBottleneck(nn.Module):
    def __init__(self, dim: int, categories: int) -> None:
        super().__init__()
        self.to_logits = nn.Linear(dim, categories)
        self.codes = nn.Linear(categories, dim, bias=False)

    def forward(self, x, tau: float = 1.0):
        logits = self.to_logits(x)
        soft = F.softmax(logits / tau, dim=-1)
        index = soft.argmax(dim=-1, keepdim=True)
        hard = torch.zeros_like(logits).scatter_(-1, index, 1.0)
        one_hot = hard - soft.detach() + soft
        return self.codes(one_hot), F.gumbel_softmax(logits, tau=tau, hard=True)


torch.manual_seed(0)
model = DiscreteBottleneck(6, 4)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
x = torch.randn(32, 6)
for _ in range(10):
    recon, sample = model(x)
    loss = F.mse_loss(recon, x) + 0.01 * sample.sum(-1).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
assert model.to_logits.weight.grad is not None and model.to_logits.weight.grad.abs().sum() > 0
assert torch.equal(sample.sum(-1), torch.ones(32))
