# source: https://github.com/laekov/fastmoe/issues/49
# what: The MoE balance loss as fixed upstream: the per-layer gate losses are joined with `torch.cat`,
#       which keeps their history, so the gates are trained by the balance loss.
# expect: none
# fails: none
# fix: none
import torch
import torch.nn as nn


class NaiveGate(nn.Module):
    def __init__(self, d_model, num_expert):
        super().__init__()
        self.gate = nn.Linear(d_model, num_expert)

    def forward(self, inp):
        score = self.gate(inp).softmax(dim=-1)
        self.loss = (score.mean(0) ** 2).sum() * score.size(1)
        return score


torch.manual_seed(0)
gates = nn.ModuleList([NaiveGate(4, 2), NaiveGate(4, 2)])
optimizer = torch.optim.SGD(gates.parameters(), lr=0.5)
x = torch.randn(16, 4) + 1.0
losses = []
for _ in range(10):
    for gate in gates:
        gate(x)
    loss_list = [gate.loss.view(1) for gate in gates]
    bal_loss = torch.cat(loss_list).mean()
    optimizer.zero_grad()
    bal_loss.backward()
    optimizer.step()
    losses.append(bal_loss.item())
assert losses[-1] < losses[0], "the balance loss does not train the gates"
