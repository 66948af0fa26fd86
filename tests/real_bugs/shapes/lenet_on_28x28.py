# source: https://github.com/MaitreChen/openvino-lenet-sample/issues/1
# what: A LeNet written for 32x32 inputs (fc1 = Linear(16*5*5, 120)) is trained on 28x28 MNIST images:
#   the second pooling leaves 16x4x4 = 256 features per image, and fc1 rejects them.
# expect: GG501@25
# fails: mat1 and mat2 shapes cannot be multiplied (8x256 and 400x120)
# fix: set `in_features` of `self.fc1` to 256 (16 * 4 * 4), or pad the images to 32x32
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


net = Net()
out = net(torch.randn(8, 1, 28, 28))
