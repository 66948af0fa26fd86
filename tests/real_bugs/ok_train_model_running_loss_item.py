# source: https://androidkt.com/how-to-calculate-running-loss-using-loss-item-in-pytorch/
# what: The tutorial's `train_model` function keeps epoch statistics with
#       `running_loss += loss.item() * inputs.size(0)`, a Python float, so no step's graph outlives it.
# expect: none
# fails: none
# fix: none
import torch
import torch.nn as nn


def train_model(model, criterion, optimizer, dataloaders, num_epochs=10):
    epoch_losses = []
    for epoch in range(num_epochs):
        model.train()
        running_loss = 0.0
        running_corrects = 0
        for inputs, labels in dataloaders:
            optimizer.zero_grad()
            outputs = model(inputs)
            _, preds = torch.max(outputs, 1)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item() * inputs.size(0)
            running_corrects += torch.sum(preds == labels.data)
        epoch_losses.append(running_loss / sum(len(i) for i, _ in dataloaders))
    return epoch_losses


torch.manual_seed(0)
model = nn.Linear(4, 3)
batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(3)]
losses = train_model(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), batches)
assert isinstance(losses[-1], float) and losses[-1] < losses[0], "the model does not learn"
