# source: https://github.com/deepset-ai/FARM/issues/229
# what: A regression head outputs (N, 1) while the targets are (N,); nn.MSELoss broadcasts them to an
#   (N, N) matrix of every prediction against every target (with only a UserWarning), so the model learns
#   to predict the mean: the slope it fits stays near 0 instead of the true 2 (the assert fails).
# expect: GG507@24
# fails: no-learning
# fix: compare like shapes: loss_fn(pred.squeeze(1), target) or loss_fn(pred, target.unsqueeze(1))
import warnings

import torch
import torch.nn as nn

torch.manual_seed(0)
warnings.simplefilter("ignore", UserWarning)

x = torch.linspace(-1, 1, 32).unsqueeze(1)
target = 2 * x.squeeze(1) + 0.5
model = nn.Linear(1, 1)
loss_fn = nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.4)
for _ in range(120):
    optimizer.zero_grad()
    pred = model(x)
    loss = loss_fn(pred, target)
    loss.backward()
    optimizer.step()

assert abs(model.weight.item() - 2) < 0.05, f"the slope stays near {model.weight.item():.3f}, not 2"
