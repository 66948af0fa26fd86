"""Training loops with the ordering mistakes gradguard's GG4xx rules find.

Bugs here (nothing raises for the first four; the loops just do not learn properly):
  * GG401 `train_without_zero_grad`: `backward()` and `step()` every iteration, never
    `zero_grad()`: each step applies the sum of all gradients so far.
  * GG402 `train_zeroing_too_late`: `zero_grad()` between `backward()` and `step()`:
    the step sees no gradients and the parameters never change.
  * GG403 `train_step_first`: `step()` before `backward()` in the iteration.
  * GG405 `train_logging_graph`: `total_loss += loss` keeps every iteration's graph.
  * GG404 `two_heads` and `fit_cached_predictions`: a second backward through a graph
    the first one freed raises "Trying to backward through the graph a second time".
The loops at the bottom (accumulation, AMP, GAN, retain_graph) are correct and silent.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_data(n=256):
    x = torch.randn(n, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(n, 1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)


def train_without_zero_grad(model, loader, epochs=5):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for epoch in range(epochs):
        for x, y in loader:
            loss = F.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()


def train_zeroing_too_late(model, loader):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in loader:
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()


def train_step_first(model, loader):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        optimizer.step()
        loss.backward()
        scheduler.step()


def train_logging_graph(model, loader):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    total_loss = 0.0
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        total_loss += loss
    print(f"epoch loss {total_loss / len(loader):.4f}")


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 16)
        self.reg = nn.Linear(16, 1)
        self.cls = nn.Linear(16, 3)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.reg(h), self.cls(h)


def two_heads(loader):
    model = TwoHeads()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for x, y in loader:
        optimizer.zero_grad()
        features = model.body(x)
        reg_loss = F.mse_loss(model.reg(features), y)
        cls_loss = F.cross_entropy(model.cls(features), (y > 0).long().squeeze(1))
        reg_loss.backward()
        cls_loss.backward()
        optimizer.step()


def fit_cached_predictions(model, x, y, steps=100):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    predictions = model(x)
    for step in range(steps):
        optimizer.zero_grad()
        loss = F.mse_loss(predictions, y)
        loss.backward()
        optimizer.step()


# -- correct loops: all silent ---------------------------------------------------------------


def train_with_accumulation(model, loader, accumulation_steps=4):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    running = 0.0
    for i, (x, y) in enumerate(loader):
        loss = F.mse_loss(model(x), y) / accumulation_steps
        loss.backward()
        running += loss.item()
        if (i + 1) % accumulation_steps == 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return running


def train_amp(model, loader):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu")
    for x, y in loader:
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def train_gan(generator, discriminator, loader, latent=16):
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4)
    for real, _ in loader:
        z = torch.randn(real.size(0), latent)
        fake = generator(z)
        opt_d.zero_grad()
        d_loss = F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake.detach())).mean()
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = F.softplus(-discriminator(fake)).mean()
        g_loss.backward()
        opt_g.step()


def two_heads_correctly(loader):
    model = TwoHeads()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for x, y in loader:
        optimizer.zero_grad()
        features = model.body(x)
        reg_loss = F.mse_loss(model.reg(features), y)
        cls_loss = F.cross_entropy(model.cls(features), (y > 0).long().squeeze(1))
        reg_loss.backward(retain_graph=True)
        cls_loss.backward()
        optimizer.step()


if __name__ == "__main__":
    loader = make_data()
    train_with_accumulation(nn.Linear(8, 1), loader)
    train_amp(nn.Linear(8, 1), loader)
    two_heads_correctly(loader)
