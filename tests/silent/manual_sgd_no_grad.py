"""Hand-written gradient descent on leaf tensors: update in place under no_grad, then zero."""

import torch

torch.manual_seed(0)
x = torch.randn(100, 3)
true_w = torch.tensor([[2.0], [-3.0], [0.5]])
y = x @ true_w + 0.1 * torch.randn(100, 1)

w = torch.zeros(3, 1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
lr = 0.1
losses = []
for _ in range(100):
    loss = ((x @ w + b - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w -= lr * w.grad
        b.sub_(lr * b.grad)
        w.grad.zero_()
        b.grad = None
    losses.append(loss.item())

assert losses[-1] < 0.05 < losses[0]
assert torch.allclose(w, true_w, atol=0.1)
