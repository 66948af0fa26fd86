# source: https://github.com/ariecattan/SciCo/issues/2
# what: The classifier returns softmax probabilities and they are fed to nn.CrossEntropyLoss, which
#   applies log_softmax again: the loss cannot go below a floor (here log(1 + (C-1)/e) ~ 0.74 for
#   C = 3) and the gradients shrink, so training stalls even on separable data.
# expect: GG509@34
# fails: no-learning
# fix: none (changes the model's output for its other callers, see GG509): return logits
import math

import torch
import torch.nn as nn

torch.manual_seed(0)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        return torch.softmax(self.fc(x), dim=1)


centers = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
labels = torch.arange(3).repeat_interleave(20)
points = centers[labels] + 0.3 * torch.randn(60, 2)

model = Classifier()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=2.0)
for _ in range(100):
    optimizer.zero_grad()
    loss = criterion(model(points), labels)
    loss.backward()
    optimizer.step()

floor = math.log(1 + 2 / math.e)
accuracy = (model(points).argmax(dim=1) == labels).float().mean().item()
assert accuracy == 1.0  # the classes are separated...
assert loss.item() < floor / 10, f"loss {loss.item():.3f} stuck above the double softmax's floor {floor:.3f}"
