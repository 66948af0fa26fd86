# source: https://blog.csdn.net/Tracy_yi/article/details/131764705
# what: Following d2l's linear regression from scratch, the reader dropped `with torch.no_grad():` from
#       the `sgd` helper; the training loop calls `sgd([w, b], lr, batch_size)` after `l.sum().backward()`
#       and the helper's `param -= lr * param.grad / batch_size` on a leaf that requires grad raises.
# expect: GG203@26
# fails: a leaf Variable that requires grad is being used in an in-place operation
# fix: put the update under `with torch.no_grad():` (`param -= lr * param.grad / batch_size`)
import torch


def linreg(X, w, b):
    return torch.matmul(X, w) + b


def squared_loss(y_hat, y):
    return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2


def data_iter(batch_size, features, labels):
    for i in range(0, len(features), batch_size):
        yield features[i : i + batch_size], labels[i : i + batch_size]


def sgd(params, lr, batch_size):
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
for epoch in range(3):
    for X, y in data_iter(batch_size, features, labels):
        l = squared_loss(linreg(X, w, b), y)
        l.sum().backward()
        sgd([w, b], lr, batch_size)
