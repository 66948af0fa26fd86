# source: https://androidkt.com/how-to-calculate-running-loss-using-loss-item-in-pytorch/
# what: The usual training loop from the tutorial: `_, preds = torch.max(outputs, 1)` feeds only the
#       accuracy statistic, the loss is computed from the logits, and the running loss uses `loss.item()`.
# expect: none
# fails: none
# fix: none
import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Linear(4, 3)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
dataloaders = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(2)]
epoch_losses = []
for epoch in range(5):
    running_loss, running_corrects = 0.0, 0
    for inputs, labels in dataloaders:
        optimizer.zero_grad()
        outputs = model(inputs)
        _, preds = torch.max(outputs, 1)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item() * inputs.size(0)
        running_corrects += torch.sum(preds == labels.data)
    epoch_losses.append(running_loss / 16)
assert epoch_losses[-1] < epoch_losses[0], "the classifier does not learn"
