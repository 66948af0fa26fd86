# source: https://blog.csdn.net/Tracy_yi/article/details/131764705
# what: d2l's linear regression from scratch as the book writes it: the `sgd` helper, called from the
#       training loop after `l.sum().backward()`, updates each parameter in place inside
#       `with torch.no_grad():`, so the leaf update is allowed and the regression learns.
# expect: none
# fails: none
# fix: none
import torch


def linreg(X, w, b):
    return torch.matmul(X, w) + b


def squared_loss(y_hat, y):
    return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2


def data_iter(batch_size, features, labels):
    for i in range(0, len(features), batch_size):
        yield features[i : i + batch_size], labels[i : i + batch_size]


def sgd(params, lr, batch_size):
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


torch.manual_seed(0)
true_w, true_b = torch.tensor([2, -3.4]), 4.2
features = torch.normal(0, 1, (40, 2))
labels = (torch.matmul(features, true_w) + true_b).reshape(-1, 1)
w = torch.normal(0, 0.01, size=(2, 1), requires_grad=True)
b = torch.zeros(1, requires_grad=True)
lr, batch_size = 0.03, 10
epoch_losses = []
for epoch in range(3):
    for X, y in data_iter(batch_size, features, labels):
        l = squared_loss(linreg(X, w, b), y)
        l.sum().backward()
        sgd([w, b], lr, batch_size)
    with torch.no_grad():
        epoch_losses.append(float(squared_loss(linreg(features, w, b), labels).mean()))
assert epoch_losses[-1] < epoch_losses[0], "the regression does not learn"
