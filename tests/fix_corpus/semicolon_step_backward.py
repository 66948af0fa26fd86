import torch


def fit(model, opt, loader):
    for x, y in loader:
        opt.zero_grad()
        opt.step(); out = model(x)
        loss = torch.nn.functional.mse_loss(out, y); loss.backward(); print(loss.item())
