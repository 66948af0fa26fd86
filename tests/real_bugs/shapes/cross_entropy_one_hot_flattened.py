# source: https://github.com/deepset-ai/FARM/issues/100
# what: Labels arrive one-hot encoded, shape (batch, classes); the loss code flattens them with
#   view(-1) as if they were class ids, so CrossEntropyLoss sees 32 targets for 8 predictions.
# expect: GG509@16
# fails: Expected input batch_size (8) to match target batch_size (32).
# fix: convert one-hot labels to class ids with label_ids.argmax(dim=1) instead of view(-1)
import torch
import torch.nn as nn

loss_fct = nn.CrossEntropyLoss()
head = nn.Linear(16, 4)

pooled = torch.randn(8, 16)
label_ids = nn.functional.one_hot(torch.randint(0, 4, (8,)), 4)
logits = head(pooled)
loss = loss_fct(logits, label_ids.view(-1))
