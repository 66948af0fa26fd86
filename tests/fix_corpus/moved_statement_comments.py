import torch


def fit(model, opt, loader):
    for x, y in loader:
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()  # gradients of this batch
        opt.zero_grad()  # start from clean gradients
        opt.step()  # apply the update


def fit_again(model, opt, loader):
    for x, y in loader:
        opt.zero_grad()
        opt.step()  # the update, too early
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
