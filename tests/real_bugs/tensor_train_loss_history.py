# source: https://github.com/rballester/tntorch/pull/19
# what: The tensor-train fitting routine appends each iteration's loss tensor to `loss_history`; every
#       stored loss keeps its computational graph, and 1000 iterations froze a 12 GB machine.
# expect: GG405@16
# fails: loss history keeps every
# fix: `loss_history.append(loss.detach())` (or `loss.item()`)
import torch


def optimize(tensors, loss_function, optimizer=torch.optim.Adam, tol=1e-4, max_iter=5, print_freq=500):
    optimizer = optimizer(tensors)
    losses = []
    for it in range(max_iter):
        optimizer.zero_grad()
        loss = loss_function(*tensors)
        losses.append(loss)
        loss.backward()
        optimizer.step()
        if len(losses) >= 2 and abs(losses[-1].item() - losses[-2].item()) / abs(losses[-1].item()) < tol:
            break
    return losses


torch.manual_seed(0)
cores = [torch.randn(1, 3, 2, requires_grad=True), torch.randn(2, 3, 1, requires_grad=True)]
target = torch.randn(3, 3)


def loss_fn(c0, c1):
    full = torch.einsum("aib,bjc->ij", c0, c1)
    return ((full - target) ** 2).sum()


loss_history = optimize(cores, loss_fn)
assert all(getattr(l, "grad_fn", None) is None for l in loss_history), "the loss history keeps every iteration's graph"
