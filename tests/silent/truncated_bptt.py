"""Truncated backpropagation through time: detach the hidden state between chunks."""

import torch
import torch.nn as nn

torch.manual_seed(0)
rnn = nn.LSTM(input_size=2, hidden_size=16, batch_first=True)
head = nn.Linear(16, 1)
opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=1e-2)

t = torch.linspace(0, 12, 121)
signal = torch.stack([torch.sin(t), torch.cos(t)], dim=-1).unsqueeze(0)
target = torch.sin(t + 0.3).view(1, -1, 1)
chunk = 20

epoch_losses = []
for epoch in range(5):
    hidden = None
    total = 0.0
    for start in range(0, 120, chunk):
        x = signal[:, start : start + chunk]
        y = target[:, start : start + chunk]
        if hidden is not None:
            hidden = tuple(h.detach() for h in hidden)
        out, hidden = rnn(x, hidden)
        loss = nn.functional.mse_loss(head(out), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
    epoch_losses.append(total)
assert epoch_losses[-1] < epoch_losses[0]
