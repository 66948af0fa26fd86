"""Fine-tuning: freeze a pretrained backbone with requires_grad_(False), train the head."""

import torch
import torch.nn as nn


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, feat_dim: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feat_dim, num_classes)

    def forward(self, x):
        return self.head(self.backbone(x))


torch.manual_seed(0)
backbone = nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 8), nn.ReLU())
backbone.requires_grad_(False)
backbone.eval()
model = Classifier(backbone, 8, 3)
optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-2)

x = torch.randn(64, 12)
y = torch.randint(0, 3, (64,))
frozen_before = backbone[0].weight.clone()
losses = []
for _ in range(30):
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
assert torch.equal(frozen_before, backbone[0].weight)
assert backbone[0].weight.grad is None and model.head.weight.grad is not None
assert losses[-1] < losses[0]

# later: unfreeze the last block with a smaller learning rate
for p in backbone[2].parameters():
    p.requires_grad = True
optimizer.add_param_group({"params": backbone[2].parameters(), "lr": 1e-4})
nn.functional.cross_entropy(model(x), y).backward()
assert backbone[2].weight.grad is not None
