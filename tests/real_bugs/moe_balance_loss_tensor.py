# source: https://github.com/laekov/fastmoe/issues/49
# what: The MoE balance loss is gathered from every layer's gate with `torch.tensor(loss_list)`, which
#       copies the values into a new tensor without history: the gate never receives the balance loss's
#       gradient ("Balance loss is not optimized").
# expect: GG305@46
# fails: no-learning
# fix: `torch.cat([loss.view(1) for loss in loss_list]).mean()` (or `torch.stack`)
import torch
import torch.nn as nn


class NaiveGate(nn.Module):
    def __init__(self, d_model, num_expert):
        super().__init__()
        self.gate = nn.Linear(d_model, num_expert)
        self.loss = None

    def forward(self, inp):
        score = self.gate(inp).softmax(dim=-1)
        self.loss = (score.mean(0) ** 2).sum() * score.size(1)
        return score.argmax(dim=-1)

    def get_loss(self):
        return self.loss


class MoELayer(nn.Module):
    def __init__(self, d_model=4, num_expert=2):
        super().__init__()
        self.gate = NaiveGate(d_model, num_expert)
        self.experts = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(num_expert)])

    def forward(self, x):
        idx = self.gate(x)
        return torch.stack([self.experts[i](row) for i, row in zip(idx.tolist(), x)])


torch.manual_seed(0)
layers = nn.ModuleList([MoELayer(), MoELayer()])
x = torch.randn(6, 4)
h = x
for layer in layers:
    h = layer(h)
loss = h.pow(2).mean()
loss_list = [layer.gate.get_loss() for layer in layers]
bal_loss = torch.tensor(loss_list).mean() * 0.1
loss = loss + bal_loss
loss.backward()
assert layers[0].gate.gate.weight.grad is not None, "the gates get no gradient from the balance loss"
