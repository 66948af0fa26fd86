# source: https://github.com/Lightning-AI/pytorch-lightning/pull/2276
# what: Lightning's training step backpropagates through exactly one of two arms: with native AMP
#       `self.trainer.scaler.scale(loss).backward()`, otherwise `loss.backward()`; one backward per
#       step, whichever way the flag is set.
# expect: none
# fails: none
# fix: none
import torch
import torch.nn as nn


class Trainer:
    def __init__(self, model, optimizer, use_native_amp):
        self.model, self.optimizer = model, optimizer
        self.use_native_amp = use_native_amp
        self.scaler = torch.amp.GradScaler("cpu", enabled=use_native_amp)

    def run_training_batch(self, x, y):
        self.optimizer.zero_grad()
        loss = nn.functional.mse_loss(self.model(x), y)
        if self.use_native_amp:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        if self.use_native_amp:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return loss.item()


torch.manual_seed(0)
x, y = torch.randn(16, 4), torch.randn(16, 1)
for use_amp in (False, True):
    model = nn.Linear(4, 1)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), use_amp)
    losses = [trainer.run_training_batch(x, y) for _ in range(20)]
    assert losses[-1] < losses[0], f"no learning with use_native_amp={use_amp}"
