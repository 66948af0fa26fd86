"""Training without nn.Module: leaf tensors updated by hand, and a PGD attack.

Bugs gradguard finds here (GG203), each raising "a leaf Variable that requires grad is
being used in an in-place operation" when it runs:
  * `w -= lr * w.grad` and `b -= lr * b.grad`: a manual SGD step outside
    `torch.no_grad()` (the fix wraps it, and is safe: it is a gradient step);
  * `delta += alpha * delta.grad.sign()` and `delta.clamp_(...)` in the attack;
  * `inputs *= 1 / 255` on data that was made to require grad.
The correct versions (the step under `torch.no_grad()`, `.grad.zero_()`, writes through
`.data`, `nn.init`) must stay silent.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def fit_linear_regression(x, y, lr=0.1, epochs=100):
    n_features = x.shape[1]
    w = torch.randn(n_features, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    for epoch in range(epochs):
        loss = F.mse_loss(x @ w + b, y)
        loss.backward()
        w -= lr * w.grad
        b -= lr * b.grad
        w.grad.zero_()
        b.grad.zero_()
    return w, b


def fit_linear_regression_correctly(x, y, lr=0.1, epochs=100):
    w = torch.empty(x.shape[1], 1, requires_grad=True)
    nn.init.xavier_uniform_(w)
    b = torch.zeros(1, requires_grad=True)
    for epoch in range(epochs):
        loss = F.mse_loss((x @ w).squeeze(-1) + b, y)
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        w.grad.zero_()
        b.grad.zero_()
    return w, b


def pgd_attack(model, images, labels, eps=8 / 255, alpha=2 / 255, steps=10):
    delta = torch.zeros_like(images, requires_grad=True)
    for _ in range(steps):
        loss = F.cross_entropy(model(images + delta), labels)
        loss.backward()
        delta += alpha * delta.grad.sign()
        delta.clamp_(-eps, eps)
        delta.grad.zero_()
    return (images + delta).detach()


def pgd_attack_correctly(model, images, labels, eps=8 / 255, alpha=2 / 255, steps=10):
    delta = torch.zeros_like(images, requires_grad=True)
    for _ in range(steps):
        loss = F.cross_entropy(model(images + delta), labels)
        loss.backward()
        delta.data = (delta + alpha * delta.grad.sign()).clamp(-eps, eps)
        delta.grad.zero_()
    return (images + delta).detach()


def input_saliency(model, raw_pixels, target):
    inputs = torch.as_tensor(raw_pixels, dtype=torch.float32).requires_grad_()
    inputs *= 1 / 255
    score = model(inputs)[:, target].sum()
    score.backward()
    return inputs.grad.abs()


if __name__ == "__main__":
    torch.manual_seed(0)
    x = torch.randn(128, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    print(fit_linear_regression_correctly(x, y))
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    images, labels = torch.rand(4, 3, 8, 8), torch.randint(0, 10, (4,))
    print(pgd_attack_correctly(classifier, images, labels).shape)
    print(fit_linear_regression(x, y))
