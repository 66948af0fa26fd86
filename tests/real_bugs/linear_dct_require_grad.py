# source: https://github.com/zh217/torch-dct/issues/10
# what: `LinearDCT` initialises an `nn.Linear` with the DCT matrix and means to freeze it with
#       `self.weight.require_grad = False  # don't learn this!`; the misspelled attribute does nothing,
#       the weight still requires grad and the optimizer changes the DCT matrix.
# expect: GG304@29
# fails: no-learning
# fix: `self.weight.requires_grad = False`
import math

import torch
import torch.nn as nn


def dct_matrix(N):
    n = torch.arange(N, dtype=torch.float32)
    k = n.view(-1, 1)
    return torch.cos(math.pi / N * (n + 0.5) * k) * 2


class LinearDCT(nn.Linear):
    def __init__(self, in_features, type, norm=None, bias=False):
        self.type = type
        self.N = in_features
        self.norm = norm
        super().__init__(in_features, in_features, bias=bias)

    def reset_parameters(self):
        self.weight.data = dct_matrix(self.N).t()
        self.weight.require_grad = False  # don't learn this!


torch.manual_seed(0)
dct_layer = LinearDCT(4, "dct")
head = nn.Linear(4, 1)
model = nn.Sequential(dct_layer, head)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
before = dct_layer.weight.detach().clone()
loss = nn.functional.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 1))
loss.backward()
optimizer.step()
assert torch.equal(before, dct_layer.weight), "the DCT matrix was changed by the optimizer"
