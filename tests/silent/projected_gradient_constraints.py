"""Projected gradient descent: keep parameters on a constraint set after each optimizer step."""

import torch
import torch.nn as nn


class NonNegativeLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(out_features, in_features))

    def forward(self, x):
        return x @ self.weight.t()

    @torch.no_grad()
    def project(self) -> None:
        self.weight.clamp_(min=0)
        self.weight.div_(self.weight.sum(dim=1, keepdim=True).clamp(min=1e-8))


torch.manual_seed(0)
mixer = NonNegativeLinear(3, 2)
opt = torch.optim.SGD(mixer.parameters(), lr=0.1)
sources = torch.rand(100, 3)
true_mix = torch.tensor([[0.7, 0.3, 0.0], [0.1, 0.1, 0.8]])
observed = sources @ true_mix.t()
losses = []
for _ in range(100):
    loss = nn.functional.mse_loss(mixer(sources), observed)
    opt.zero_grad()
    loss.backward()
    opt.step()
    mixer.project()
    losses.append(loss.item())
assert losses[-1] < losses[0]
assert bool((mixer.weight >= 0).all())
assert torch.allclose(mixer.weight.sum(1), torch.ones(2))
