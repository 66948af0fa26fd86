# source: https://github.com/wenet-e2e/wekws/pull/73
# what: The keyword-spotting executor calls `loss.backward()` and, when the gradient norm is finite,
#       `optimizer.step()`, but never `optimizer.zero_grad()`: every batch adds to the previous gradients.
# expect: GG401@21
# fails: no-learning
# fix: call `optimizer.zero_grad()` before `loss.backward()`
import math

import torch
import torch.nn as nn
from torch.nn.utils import clip_grad_norm_


class Executor:
    def train(self, model, optimizer, data_loader, args):
        model.train()
        clip = args.get("grad_clip", 50.0)
        for batch_idx, (feats, target) in enumerate(data_loader):
            logits = model(feats)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, target)
            loss.backward()
            grad_norm = clip_grad_norm_(model.parameters(), clip)
            if math.isfinite(grad_norm):
                optimizer.step()


torch.manual_seed(0)
model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
data_loader = [(torch.randn(8, 4), torch.randint(0, 2, (8, 1)).float()) for _ in range(3)]
Executor().train(model, optimizer, data_loader, {"grad_clip": 50.0})
feats, target = data_loader[-1]
fresh = torch.autograd.grad(
    nn.functional.binary_cross_entropy_with_logits(model(feats), target), model.weight
)[0]
assert torch.allclose(model.weight.grad, fresh, rtol=0.05, atol=1e-4), (
    "the gradient of earlier batches is still in .grad"
)
