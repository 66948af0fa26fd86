"""nn.ReLU(inplace=True) and F.relu(..., inplace=True) after layers whose output is not saved."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x):
        x = self.pool(self.features(x)).flatten(1)
        x = F.relu(self.fc1(x), inplace=True)
        x = F.dropout(x, p=0.1, training=self.training)
        return self.fc2(x)


torch.manual_seed(0)
model = ConvNet()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
images = torch.randn(16, 1, 8, 8)
labels = (images.mean(dim=(1, 2, 3)) > 0).long()
losses = []
for _ in range(15):
    loss = F.cross_entropy(model(images), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
assert losses[-1] < losses[0]
