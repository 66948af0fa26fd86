"""A train/val loop that switches autograd with torch.set_grad_enabled(phase == "train")."""

import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Linear(6, 2)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
data = {
    "train": (torch.randn(64, 6), None),
    "val": (torch.randn(32, 6), None),
}
data = {k: (x, (x[:, 0] + x[:, 1] > 0).long()) for k, (x, _) in data.items()}

history = {"train": [], "val": []}
for epoch in range(8):
    for phase in ("train", "val"):
        model.train(phase == "train")
        x, y = data[phase]
        with torch.set_grad_enabled(phase == "train"):
            loss = criterion(model(x), y)
            if phase == "train":
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        history[phase].append(loss.item())
assert history["val"][-1] < history["val"][0]
