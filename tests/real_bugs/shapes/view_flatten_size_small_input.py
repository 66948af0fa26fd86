# source: https://github.com/pytorch/pytorch/issues/38469
# what: The CIFAR-10 tutorial network (x.view(-1, 16*5*5) after two conv+pool blocks) is traced with
#   21x21 inputs instead of 32x32: the feature map is 16x2x2 per image, 6 images give 384 elements,
#   which cannot be viewed as rows of 400.
# expect: GG506@26
# fails: shape '[-1, 400]' is invalid for input of size 384
# fix: none (author's choice): 32x32 inputs, or torch.flatten(x, 1) and fc1 resized
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


model = Net()
dummy_input = torch.randn(6, 3, 21, 21)
output = model(dummy_input)
