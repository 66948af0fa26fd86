# source: https://github.com/pytorch/pytorch/issues/715
# what: An SNLI classifier keeps its hidden layers as `self.hids.append([nn.Linear(...), act()])` in a
#       plain list; printing the model shows only the classifier and the hidden layers never train.
# expect: GG103@14
# fails: no-learning
# fix: `self.hids = nn.ModuleList()` holding `nn.Sequential(nn.Linear(...), act())`
import torch
import torch.nn as nn


class SNLINet(nn.Module):
    def __init__(self, options):
        super().__init__()
        self.hids = []
        for li in range(options["n_layers"]):
            self.hids.append([nn.Linear(options["n_hid"], options["n_hid"]), getattr(nn, options["act"])()])
        self.classifier = nn.Linear(options["n_hid"], 3)

    def forward(self, x):
        for linear, act in self.hids:
            x = act(linear(x))
        return self.classifier(x)


torch.manual_seed(0)
net = SNLINet({"n_layers": 2, "n_hid": 4, "act": "Tanh"})
optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
before = net.hids[0][0].weight.detach().clone()
loss = nn.functional.cross_entropy(net(torch.randn(8, 4)), torch.randint(0, 3, (8,)))
loss.backward()
optimizer.step()
assert not torch.equal(before, net.hids[0][0].weight), "the hidden layers are not trained"
