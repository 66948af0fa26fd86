# source: https://github.com/BatsResearch/labelmodels/issues/4
# what: The label model's loop after the fix: the running total adds `loss.item()`, a Python float.
# expect: none
# fails: none
# fix: none
import torch
import torch.nn as nn


class LabelModel(nn.Module):
    def __init__(self, num_lfs=3):
        super().__init__()
        self.accuracy = nn.Parameter(torch.full((num_lfs,), 0.7))

    def forward(self, votes):
        return -(torch.sigmoid(self.accuracy) * votes).sum(dim=1).mean()


torch.manual_seed(0)
model = LabelModel()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
batches = [torch.rand(4, 3) for _ in range(3)]
epoch_losses = []
for epoch in range(3):
    running_loss = 0.0
    for inputs in batches:
        optimizer.zero_grad()
        loss = model(inputs)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    epoch_losses.append(running_loss / len(batches))
assert epoch_losses[-1] < epoch_losses[0], "the label model does not learn"
