# source: https://xnip.cn/ruanjian/anli/139755.html
# source: https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.apply
# what: The `Module.apply` initialisation example: the helper `init_weights` fills each Linear's weight
#       in place with `m.weight.fill_(1.0)`, but it is decorated with `@torch.no_grad()`, so the in-place
#       write on the parameter is allowed and the network still trains afterwards.
# expect: none
# fails: none
# fix: none
import torch
import torch.nn as nn


@torch.no_grad()
def init_weights(m):
    if type(m) == nn.Linear:
        m.weight.fill_(1.0)
        m.bias.fill_(0.0)


torch.manual_seed(0)
net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
net.apply(init_weights)
assert torch.equal(net[0].weight, torch.ones(2, 2))
optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
x, y = torch.randn(16, 2), torch.randn(16, 1)
losses = []
for _ in range(20):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(net(x), y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
assert losses[-1] < losses[0], "the network does not learn"
