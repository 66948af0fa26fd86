# source: https://github.com/pytorch/pytorch/issues/91533
# what: An MLP is trained on `X = torch.from_numpy(X)` (float64 from NumPy) through a `TensorDataset` and
#       `DataLoader`; the float32 `nn.Linear` rejects the batches.
# expect: GG504@28
# fails: mat1 and mat2 must have the same dtype
# fix: `X = torch.from_numpy(X).float()`
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

np.random.seed(0)
X = np.random.randn(16, 5)
y = np.random.randn(16, 1)
batch_size, lr, epochs = 4, 1e-2, 1

X = torch.from_numpy(X)
y = torch.tensor(y, dtype=torch.float32)
train_data = TensorDataset(X, y)
train_loader = DataLoader(dataset=train_data, batch_size=batch_size, shuffle=True)

net = nn.Sequential(nn.Linear(X.shape[1], 16), nn.ReLU(), nn.Linear(16, 1))
trainer = torch.optim.Adam(net.parameters(), lr=lr)
loss = nn.MSELoss()
for epoch in range(epochs):
    for _X, _y in train_loader:
        trainer.zero_grad()
        l = loss(net(_X), _y)
        l.backward()
        trainer.step()
