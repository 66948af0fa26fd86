import torch
from model import Net

model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(8, 4)
y = torch.randn(8, 1)
total = 0
for step in range(10):
    optimizer.zero_grad()
    with torch.no_grad():
        out = model(x)
    loss = ((out - y) ** 2).mean()
    loss.backward()
    optimizer.step()
    total += loss
