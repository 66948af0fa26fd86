"""Probe targets: the ways a gradient stops, and correct models the probe stays quiet on
(a softmax output, a frozen backbone, a layer another method uses)."""

import torch
import torch.nn as nn


class NoGradBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 6)
        self.head = nn.Linear(6, 1)

    def forward(self, x):
        with torch.no_grad():
            h = self.embed(x)
        return self.head(h)


class DataBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 6)
        self.head = nn.Linear(6, 1)

    def forward(self, x):
        h = self.embed(x).data
        return self.head(h)


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 1)
        self.threshold = nn.Parameter(torch.zeros(6))

    def forward(self, x):
        mask = (x > self.threshold).float()
        return self.fc(x * mask)


class Dead(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 1)
        self.offset = nn.Parameter(torch.ones(6))

    def forward(self, x):
        return self.fc(x) + torch.relu(-self.offset.abs() - 1).sum()


class Discarded(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 1)
        self.aux = nn.Linear(6, 1)

    def forward(self, x):
        a = self.aux(x)
        return self.fc(x)


class Softmaxed(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x):
        return torch.softmax(self.bn(self.fc(x)), dim=-1)


class Gen(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)
        self.critic = nn.Linear(3, 1)

    def forward(self, x):
        return self.fc(x)

    def score(self, y):
        return self.critic(y)


class Frozen(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(6, 6)
        self.backbone.requires_grad_(False)
        self.head = nn.Linear(6, 1)

    def forward(self, x):
        return self.head(self.backbone(x))


class ItemBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Linear(6, 1)
        self.head = nn.Linear(6, 1)

    def forward(self, x):
        s = self.scale(x).mean().item()
        return self.head(x) * s
