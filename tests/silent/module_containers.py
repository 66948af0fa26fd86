"""nn.ModuleList, nn.ModuleDict, nn.ParameterList and nn.ParameterDict all register parameters."""

import torch
import torch.nn as nn


class MultiTask(nn.Module):
    def __init__(self, dim: int = 6, tasks=("a", "b")) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, dim) for _ in range(3)])
        self.heads = nn.ModuleDict({t: nn.Linear(dim, 1) for t in tasks})
        self.scales = nn.ParameterList([nn.Parameter(torch.ones(dim)) for _ in range(3)])
        self.offsets = nn.ParameterDict({t: nn.Parameter(torch.zeros(1)) for t in tasks})

    def forward(self, x, task: str):
        for layer, scale in zip(self.layers, self.scales):
            x = torch.relu(layer(x)) * scale
        return self.heads[task](x) + self.offsets[task]


torch.manual_seed(0)
model = MultiTask()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
x = torch.randn(32, 6)
targets = {"a": x[:, :1], "b": -x[:, 1:2]}
for _ in range(5):
    loss = sum(nn.functional.mse_loss(model(x, t), y) for t, y in targets.items())
    opt.zero_grad()
    loss.backward()
    opt.step()
assert all(p.grad is not None for p in model.parameters())
assert len(list(model.parameters())) == 3 * 2 + 2 * 2 + 3 + 2
