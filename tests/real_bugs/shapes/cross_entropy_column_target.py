# source: https://github.com/pytorch/pytorch/issues/3670
# what: Class labels are stored as a column (N, 1), as one would for BCEWithLogitsLoss, and passed to
#   nn.CrossEntropyLoss with (N, C) logits; cross entropy wants class indices of shape (N,).
# expect: GG509@16
# fails: 0D or 1D target tensor expected, multi-target not supported
# fix: pass labels.squeeze(1) (or labels.view(-1))
import torch
import torch.nn as nn

model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 7))
criterion = nn.CrossEntropyLoss(reduction="sum")

images = torch.randn(5, 3, 8, 8)
labels = torch.randint(0, 7, (5, 1))
y_pred = model(images)
loss = criterion(y_pred, labels)
