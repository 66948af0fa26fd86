"""A Lightning-style module: training_step returns the loss, a tiny loop drives it."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class LitClassifier(nn.Module):
    def __init__(self, lr: float = 1e-2) -> None:
        super().__init__()
        self.lr = lr
        self.model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
        self.logged: dict[str, float] = {}

    def forward(self, x):
        return self.model(x)

    def log(self, name: str, value) -> None:
        self.logged[name] = float(value)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(dim=1) == y).float().mean()
        self.log("train_loss", loss.detach())
        self.log("train_acc", acc)
        return loss

    @torch.no_grad()
    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("val_loss", loss)
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
        return [optimizer], [scheduler]


def fit(module: LitClassifier, batches, epochs: int) -> list[float]:
    [optimizer], [scheduler] = module.configure_optimizers()
    history = []
    for _ in range(epochs):
        module.train()
        for i, batch in enumerate(batches):
            loss = module.training_step(batch, i)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        module.eval()
        history.append(float(module.validation_step(batches[0], 0)))
    return history


torch.manual_seed(0)
x = torch.randn(96, 6)
y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
history = fit(LitClassifier(), list(zip(x.split(32), y.split(32))), epochs=8)
assert history[-1] < history[0]
