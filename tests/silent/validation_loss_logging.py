"""A validation loss computed under no_grad and only logged; the training loss gets backward."""

import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
x_train, x_val = torch.randn(64, 4), torch.randn(32, 4)
y_train, y_val = x_train.sum(1, keepdim=True), x_val.sum(1, keepdim=True)

log = []
best = float("inf")
for epoch in range(20):
    model.train()
    optimizer.zero_grad()
    train_loss = criterion(model(x_train), y_train)
    train_loss.backward()
    optimizer.step()

    model.eval()
    with torch.no_grad():
        val_loss = criterion(model(x_val), y_val)
    log.append({"train": train_loss.item(), "val": val_loss.item()})
    if val_loss.item() < best:
        best = val_loss.item()
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

assert log[-1]["val"] < log[0]["val"]
model.load_state_dict(best_state)
