# source: https://github.com/itayhubara/BinaryNet.pytorch/issues/6
# what: `BinarizeLinear.forward` overwrites its parameter with `self.weight.data = Binarize(self.weight.org)`;
#       without the training script's copy-back trick the optimizer's update is overwritten on the next
#       forward from `org`, which nothing updates, so the layer never learns ("weights are not changing").
# expect: GG201@20
# fails: no-learning
# fix: none
import torch
from torch import nn


def Binarize(tensor):
    return tensor.sign()


class BinarizeLinear(nn.Linear):
    def forward(self, input):
        if not hasattr(self.weight, "org"):
            self.weight.org = self.weight.data.clone()
        self.weight.data = Binarize(self.weight.org)
        out = nn.functional.linear(input, self.weight)
        if self.bias is not None:
            out += self.bias.view(1, -1).expand_as(out)
        return out


torch.manual_seed(0)
model = BinarizeLinear(4, 1, bias=False)
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
data = torch.randn(32, 4)
target = data @ torch.tensor([[1.0], [-1.0], [1.0], [1.0]])
losses = []
for epoch in range(5):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(data), target)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
assert losses[-1] < losses[0], f"the binarized layer does not learn: {losses}"
