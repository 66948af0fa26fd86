# source: https://github.com/ikostrikov/pytorch-meta-optimizer/issues/11
# what: The meta-optimizer appends its `LayerNormLSTMCell`s to a plain Python list `self.lstms`;
#       `nn.Module` does not register them, so their weights are not in `parameters()` and never train.
# expect: GG103@30
# fails: no-learning
# fix: `self.lstms = nn.ModuleList()` (or `nn.Sequential(*cells)`)
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
        self.hidden_size = hidden_size
        self.linear1 = nn.Linear(3, hidden_size)
        self.lstms = []
        for i in range(num_layers):
            self.lstms.append(LayerNormLSTMCell(hidden_size, hidden_size))
        self.linear2 = nn.Linear(hidden_size, 1)

    def forward(self, x, hx, cx):
        x = torch.tanh(self.linear1(x))
        for i in range(len(self.lstms)):
            hx[i], cx[i] = self.lstms[i](x, (hx[i], cx[i]))
            x = hx[i]
        return self.linear2(x)


torch.manual_seed(0)
meta_optimizer = MetaOptimizer(hidden_size=4, num_layers=2)
optimizer = torch.optim.Adam(meta_optimizer.parameters(), lr=1e-3)
hx = [torch.zeros(2, 4) for _ in range(2)]
cx = [torch.zeros(2, 4) for _ in range(2)]
out = meta_optimizer(torch.randn(2, 3), hx, cx)
out.pow(2).mean().backward()
optimizer.step()
trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
lstm_params = [p for cell in meta_optimizer.lstms for p in cell.parameters()]
assert all(id(p) in trained for p in lstm_params), "the LSTM cells' weights are not optimized"
