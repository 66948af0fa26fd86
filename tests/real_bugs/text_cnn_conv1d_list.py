# source: https://github.com/pytorch/pytorch/issues/1053
# what: A text CNN keeps its three n-gram convolutions as `self.conv1d = [nn.Conv1d(...), ...]`, a plain
#       list in `__init__`; `a.cuda()` left them on the CPU because the list's layers are not submodules,
#       and for the same reason the optimizer never sees (or trains) their weights.
# expect: GG103@17
# fails: no-learning
# fix: `self.conv1d = nn.ModuleList([...])`
import torch
import torch.nn as nn

WORD_VEC_SIZE = 6


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1d = [
            nn.Conv1d(WORD_VEC_SIZE, 1, 3),
            nn.Conv1d(WORD_VEC_SIZE, 1, 4),
            nn.Conv1d(WORD_VEC_SIZE, 1, 5),
        ]
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        pooled = [conv(x).max(dim=2).values for conv in self.conv1d]
        return self.out(torch.cat(pooled, dim=1))


torch.manual_seed(0)
net = Net()
optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
before = net.conv1d[0].weight.detach().clone()
loss = nn.functional.cross_entropy(net(torch.randn(4, WORD_VEC_SIZE, 10)), torch.tensor([0, 1, 0, 1]))
loss.backward()
optimizer.step()
assert not torch.equal(before, net.conv1d[0].weight), "the convolutions are not trained"
