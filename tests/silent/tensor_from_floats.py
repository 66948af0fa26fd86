"""torch.tensor of python floats (class weights, constants) used alongside a model."""

import torch
import torch.nn as nn

torch.manual_seed(0)
class_weights = torch.tensor([1.0, 2.0, 0.5])
mean = torch.tensor([0.5, -0.25, 0.0, 1.0])
std = torch.tensor([1.0, 2.0, 1.0, 0.5])
temperature = torch.tensor(2.0)

model = nn.Linear(4, 3)
criterion = nn.CrossEntropyLoss(weight=class_weights)
opt = torch.optim.SGD(model.parameters(), lr=0.5)

x = torch.randn(32, 4)
y = torch.randint(0, 3, (32,))
losses = []
for _ in range(20):
    logits = model((x - mean) / std) / temperature
    loss = criterion(logits, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
assert losses[-1] < losses[0]
