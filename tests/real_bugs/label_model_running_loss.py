# source: https://github.com/BatsResearch/labelmodels/issues/4
# what: The label model's training loop sums `running_loss += loss` with the loss tensor itself; every
#       batch's graph stays referenced by `running_loss` until the epoch ends and the GPU runs out of memory.
# expect: GG405@28
# fails: running_loss keeps every batch's graph
# fix: `running_loss += loss.item()`
import torch
import torch.nn as nn


class LabelModel(nn.Module):
    def __init__(self, num_lfs=3):
        super().__init__()
        self.accuracy = nn.Parameter(torch.full((num_lfs,), 0.7))

    def forward(self, votes):
        return -(torch.sigmoid(self.accuracy) * votes).sum(dim=1).mean()

    def estimate(self, batches, epochs=1, step_size=0.1):
        optimizer = torch.optim.SGD(self.parameters(), lr=step_size)
        for epoch in range(epochs):
            running_loss = 0.0
            for i_batch, inputs in enumerate(batches):
                optimizer.zero_grad()
                loss = self(inputs)
                loss.backward()
                optimizer.step()
                running_loss += loss
            epoch_loss = running_loss / len(batches)
        return epoch_loss


torch.manual_seed(0)
model = LabelModel()
epoch_loss = model.estimate([torch.randn(4, 3) for _ in range(3)])
assert getattr(epoch_loss, "grad_fn", None) is None, "running_loss keeps every batch's graph alive"
