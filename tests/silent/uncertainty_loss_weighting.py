"""Multi-task loss weighting with learnable log-variances declared as nn.Parameter."""

import torch
import torch.nn as nn


class MultiTaskLoss(nn.Module):
    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(num_tasks))

    def forward(self, losses):
        total = 0.0
        for i, loss in enumerate(losses):
            precision = torch.exp(-self.log_vars[i])
            total = total + precision * loss + self.log_vars[i]
        return total


torch.manual_seed(0)
trunk = nn.Linear(6, 16)
heads = nn.ModuleList([nn.Linear(16, 1), nn.Linear(16, 1)])
weighting = MultiTaskLoss(2)
opt = torch.optim.Adam([*trunk.parameters(), *heads.parameters(), *weighting.parameters()], lr=1e-2)
x = torch.randn(64, 6)
targets = [x[:, :1], 10 * x[:, 1:2]]
for _ in range(30):
    h = torch.relu(trunk(x))
    task_losses = [nn.functional.mse_loss(head(h), t) for head, t in zip(heads, targets)]
    loss = weighting(task_losses)
    opt.zero_grad()
    loss.backward()
    opt.step()
assert weighting.log_vars.grad is not None
assert weighting.log_vars[1] > weighting.log_vars[0]
