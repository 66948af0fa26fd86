# source: https://github.com/pytorch/pytorch/issues/20275
# what: A hand-written batch norm updates its running statistics from the batch statistics of the
#       graph (`self.running_mean = (1 - momentum) * self.running_mean + momentum * mean`); the buffer joins
#       the graph, memory grows every step ("You keep extending the graph") and the model can no longer be
#       deep-copied.
# expect: GG206@22
# fails: deepcopy protocol
# fix: update the buffers under `with torch.no_grad():` (or from `mean.detach()`)
import copy

import torch
import torch.nn as nn


class MyBatchNorm2d(nn.BatchNorm2d):
    def forward(self, input):
        exponential_average_factor = self.momentum
        if self.training:
            mean = input.mean([0, 2, 3])
            var = input.var([0, 2, 3], unbiased=False)
            n = input.numel() / input.size(1)
            self.running_mean = (
                exponential_average_factor * mean + (1 - exponential_average_factor) * self.running_mean
            )
            self.running_var = (
                exponential_average_factor * var * n / (n - 1)
                + (1 - exponential_average_factor) * self.running_var
            )
        else:
            mean, var = self.running_mean, self.running_var
        input = (input - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)
        return input * self.weight[None, :, None, None] + self.bias[None, :, None, None]


torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 4, 3), MyBatchNorm2d(4), nn.ReLU())
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(3):
    optimizer.zero_grad()
    model(torch.randn(2, 3, 6, 6)).mean().backward()
    optimizer.step()
best_model = copy.deepcopy(model)
