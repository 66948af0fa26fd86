# source: https://github.com/yastrebksv/TennisCourtDetector/issues/7
# what: `train()` in the base trainer runs forward, `loss.backward()` and `optimizer.step()` for every
#       batch without ever zeroing the gradients ("There must be smt wrong").
# expect: GG401@18
# fails: no-learning
# fix: call `optimizer.zero_grad()` at the start of each iteration
import torch
import torch.nn as nn


def train(model, train_loader, optimizer, criterion, device, epoch, max_iters=1000):
    model.train()
    losses = []
    for iter_id, batch in enumerate(train_loader):
        out = model(batch[0].to(device))
        gt_hm = batch[1].to(device)
        loss = criterion(torch.sigmoid(out), gt_hm)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if iter_id > max_iters:
            break
    return sum(losses) / len(losses)


torch.manual_seed(0)
model = nn.Conv2d(3, 1, 3, padding=1)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
criterion = nn.MSELoss()
loader = [(torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8)) for _ in range(3)]
train(model, loader, optimizer, criterion, "cpu", 0)
x, y = loader[-1]
fresh = torch.autograd.grad(criterion(torch.sigmoid(model(x)), y), model.weight)[0]
assert torch.allclose(model.weight.grad, fresh, rtol=0.05, atol=1e-4), (
    "gradients from earlier batches are still in .grad"
)
