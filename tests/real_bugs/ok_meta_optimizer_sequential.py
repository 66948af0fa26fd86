# source: https://github.com/ikostrikov/pytorch-meta-optimizer/issues/11
# what: The meta-optimizer with the fix from the issue: the LSTM cells live in an `nn.Sequential`, so
#       their weights are registered and trained.
# expect: none
# fails: none
# fix: none
import torch
import torch.nn as nn


class LayerNormLSTMCell(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.fc_i2h = nn.Linear(input_size, 4 * hidden_size)
        self.fc_h2h = nn.Linear(hidden_size, 4 * hidden_size)

    def forward(self, x, state):
        hx, cx = state
        i, f, o, g = (self.fc_i2h(x) + self.fc_h2h(hx)).chunk(4, 1)
        cx = torch.sigmoid(f) * cx + torch.sigmoid(i) * torch.tanh(g)
        hx = torch.sigmoid(o) * torch.tanh(cx)
        return hx, cx


class MetaOptimizer(nn.Module):
    def __init__(self, hidden_size, num_layers):
        super().__init__()
        self.linear1 = nn.Linear(3, hidden_size)
        self.lstms = nn.Sequential(*[LayerNormLSTMCell(hidden_size, hidden_size) for _ in range(num_layers)])
        self.linear2 = nn.Linear(hidden_size, 1)

    def forward(self, x, hx, cx):
        x = torch.tanh(self.linear1(x))
        new_hx, new_cx = [], []
        for i in range(len(self.lstms)):
            h, c = self.lstms[i](x, (hx[i], cx[i]))
            new_hx.append(h)
            new_cx.append(c)
            x = h
        return self.linear2(x), new_hx, new_cx


torch.manual_seed(0)
meta_optimizer = MetaOptimizer(hidden_size=4, num_layers=2)
optimizer = torch.optim.Adam(meta_optimizer.parameters(), lr=1e-2)
x = torch.randn(8, 3)
target = torch.randn(8, 1)
losses = []
for _ in range(10):
    hx = [torch.zeros(8, 4) for _ in range(2)]
    cx = [torch.zeros(8, 4) for _ in range(2)]
    out, hx, cx = meta_optimizer(x, hx, cx)
    loss = (out - target).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
assert losses[-1] < losses[0], "the meta-optimizer does not learn"
