# source: https://github.com/samuelyu2002/ImVisible/issues/2
# what: The pedestrian-traffic-light training loop keeps three running totals, `running_loss += loss`,
#       `running_loss_MSE += MSE`, `running_loss_cross_entropy += cross_entropy`, with the tensors
#       themselves; each holds the whole epoch's graphs and the machine runs out of RAM.
# expect: GG405@30 GG405@31 GG405@32
# fails: running totals keep the graphs
# fix: add `.item()` to each term
import torch
import torch.nn as nn

torch.manual_seed(0)
net = nn.Linear(6, 3 + 4)
optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
MSE_loss = nn.MSELoss()
CE_loss = nn.CrossEntropyLoss()

running_loss = 0.0
running_loss_MSE = 0.0
running_loss_cross_entropy = 0.0
for i in range(3):
    inputs = torch.randn(4, 6)
    labels, points = torch.randint(0, 3, (4,)), torch.randn(4, 4)
    optimizer.zero_grad()
    out = net(inputs)
    MSE = MSE_loss(out[:, 3:], points)
    cross_entropy = CE_loss(out[:, :3], labels)
    loss = cross_entropy + 0.5 * MSE
    loss.backward()
    optimizer.step()
    running_loss += loss
    running_loss_MSE += MSE
    running_loss_cross_entropy += cross_entropy

assert getattr(running_loss, "grad_fn", None) is None, "the running totals keep the graphs of every batch"
