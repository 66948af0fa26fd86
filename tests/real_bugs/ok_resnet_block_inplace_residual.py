# source: https://discuss.pytorch.org/t/when-would-the-error-one-of-the-variables-needed-for-gradient-computation-has-been-modified-occur/11976/2
# what: The torchvision ResNet block the thread cites: `out += residual` right after a batch norm and an
#       in-place ReLU afterwards; batch norm does not need its output for backward, so this is correct.
# expect: none
# fails: none
# fix: none
import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, planes):
        super().__init__()
        self.conv1 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x):
        residual = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out += residual
        out = self.relu(out)
        return out


torch.manual_seed(0)
block = BasicBlock(2)
optimizer = torch.optim.SGD(block.parameters(), lr=0.1)
x = torch.randn(2, 2, 4, 4)
losses = []
for _ in range(5):
    optimizer.zero_grad()
    loss = block(x).pow(2).mean()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
assert losses[-1] < losses[0], "the block does not learn"
