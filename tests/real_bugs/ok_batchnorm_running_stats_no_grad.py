# source: https://github.com/pytorch/pytorch/issues/20275
# what: The hand-written batch norm with the fix from the thread: the running statistics are updated
#       under `torch.no_grad()`, so the buffers never join the graph and the model can be deep-copied.
# expect: none
# fails: none
# fix: none
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
            with torch.no_grad():
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
x = torch.randn(2, 3, 6, 6)
losses = []
for _ in range(5):
    optimizer.zero_grad()
    loss = (model(x) - 0.5).pow(2).mean()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
best_model = copy.deepcopy(model)
assert losses[-1] < losses[0], "the model does not learn"
