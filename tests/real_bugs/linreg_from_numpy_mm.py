# source: https://github.com/OUCMachineLearning/OUCML/issues/24
# what: The "linear regression from scratch" chapter generates features with
#       `torch.from_numpy(np.random.normal(...))` (float64) and float32 weights; `torch.mm` inside the
#       `linreg` helper refuses to multiply them.
# expect: GG504@24
# fails: expected m1 and m2 to have the same dtype
# fix: `torch.from_numpy(np.random.normal(0, 1, (num_examples, num_inputs))).to(torch.float32)`
import numpy as np
import torch

np.random.seed(0)
num_inputs, num_examples = 2, 20
true_w, true_b = [2, -3.4], 4.2
features = torch.from_numpy(np.random.normal(0, 1, (num_examples, num_inputs)))
labels = true_w[0] * features[:, 0] + true_w[1] * features[:, 1] + true_b

w = torch.tensor(np.random.normal(0, 0.01, (num_inputs, 1)), dtype=torch.float32)
b = torch.zeros(1, dtype=torch.float32)
w.requires_grad_(requires_grad=True)
b.requires_grad_(requires_grad=True)


def linreg(X, w, b):
    return torch.mm(X, w) + b


def squared_loss(y_hat, y):
    return (y_hat - y.view(y_hat.size())) ** 2 / 2


l = squared_loss(linreg(features, w, b), labels).sum()
l.backward()
