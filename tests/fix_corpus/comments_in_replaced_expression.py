import torch
import torch.nn as nn


class Rectifier(nn.Module):
    def forward(self, x):
        x[
            x < 0  # the negative entries
        ] = 0  # clip them
        return x * 2


class Stacker(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        a = self.fc(x)
        b = self.fc(a)
        both = torch.tensor(
            [
                a,  # the first layer's output
                b,  # the second layer's output
            ]
        )
        return both.sum()


class Wide(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self):
        x = torch.randn(
            8,  # batch
            4,  # features
            dtype=torch.float64,
        )
        return self.fc(x)
