# source: https://github.com/OUCMachineLearning/OUCML/issues/24
# what: The linear-regression chapter with the fix from the issue: the NumPy features are converted
#       with `.to(torch.float32)` before they meet the float32 weights.
# expect: none
# fails: none
# fix: none
import numpy as np
import torch

np.random.seed(0)
num_inputs, num_examples = 2, 20
true_w, true_b = [2, -3.4], 4.2
features = torch.from_numpy(np.random.normal(0, 1, (num_examples, num_inputs))).to(torch.float32)
labels = true_w[0] * features[:, 0] + true_w[1] * features[:, 1] + true_b

w = torch.tensor(np.random.normal(0, 0.01, (num_inputs, 1)), dtype=torch.float32)
b = torch.zeros(1, dtype=torch.float32)
w.requires_grad_(requires_grad=True)
b.requires_grad_(requires_grad=True)


def linreg(X, w, b):
    return torch.mm(X, w) + b


def squared_loss(y_hat, y):
    return (y_hat - y.view(y_hat.size())) ** 2 / 2


def sgd(params, lr, batch_size):
    for param in params:
        param.data -= lr * param.grad / batch_size


losses = []
for epoch in range(5):
    l = squared_loss(linreg(features, w, b), labels).sum()
    l.backward()
    sgd([w, b], 0.03, num_examples)
    w.grad.data.zero_()
    b.grad.data.zero_()
    losses.append(l.item())
assert losses[-1] < losses[0], "linear regression does not learn"
