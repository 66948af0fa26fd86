"""Shape and dtype mistakes that PyTorch only reports when the line runs (GG5xx).

Bugs here, each raising a RuntimeError when it runs:
  * GG501 `MnistHead.forward`: `x.view(-1, 320)` feeds `nn.Linear(500, 50)`: "mat1 and
    mat2 shapes cannot be multiplied (...x320 and 500x50)".
  * GG502 `project`: `(4, 6) @ (4, 3)` — the weight needs a transpose.
  * GG503 `merge_heads`: `.view()` after `.transpose(1, 2)`: "view size is not compatible
    with input tensor's size and stride".
  * GG504 `fit_numpy_data` and `double_features`: float64 NumPy data (and a `.double()`
    tensor) fed to float32 layers: "mat1 and mat2 must have the same dtype".
The functions at the bottom are correct and silent.
"""

import numpy as np
import torch
import torch.nn as nn


class MnistHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 20, 5)
        self.fc1 = nn.Linear(500, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = x.view(-1, 320)
        x = torch.relu(self.fc1(x))
        return self.fc2(x)


def project():
    x = torch.randn(4, 6)
    weight = torch.randn(4, 3, requires_grad=True)
    return x @ weight


def merge_heads(attn_output, batch):
    # (batch, heads, seq, head_dim) -> (batch, seq * heads * head_dim)
    return attn_output.transpose(1, 2).view(batch, -1)


def fit_numpy_data():
    features = np.random.rand(128, 4)
    targets = np.random.rand(128, 1)
    model = nn.Linear(4, 1)
    x = torch.from_numpy(features)
    y = torch.from_numpy(targets)
    return nn.functional.mse_loss(model(x), y)


def double_features():
    encoder = nn.Sequential(nn.Linear(3, 8), nn.ReLU())
    batch = torch.ones(2, 3).double()
    return encoder(batch)


# -- correct code: silent ----------------------------------------------------------------------


class MnistHeadFixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 20, 5)
        self.fc1 = nn.Linear(20 * 24 * 24, 50)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = x.flatten(1)
        return self.fc1(x)


def project_fixed():
    x = torch.randn(4, 6)
    weight = torch.randn(3, 6, requires_grad=True)
    return x @ weight.T


def merge_heads_fixed(attn_output, batch, seq):
    return attn_output.transpose(1, 2).reshape(batch, seq, -1)


def fit_numpy_data_fixed():
    features = np.random.rand(128, 4).astype(np.float32)
    model = nn.Linear(4, 1)
    return model(torch.from_numpy(features))
