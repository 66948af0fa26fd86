import torch.nn as nn


class Base(nn.Module):
    pass


class Dense(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)
