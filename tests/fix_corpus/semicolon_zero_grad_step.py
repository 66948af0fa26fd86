import torch


def fit(model, opt, loader):
    for x, y in loader:
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.zero_grad(); opt.step()
