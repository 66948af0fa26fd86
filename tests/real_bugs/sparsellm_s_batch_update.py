# source: https://github.com/BaiTheBest/SparseLLM/issues/13
# what: SparseLLM's helper that refines the auxiliary variable `s` chunk by chunk makes each chunk a leaf
#       with `requires_grad_()`, calls `loss_s.backward()` and then steps it by hand with
#       `s_batch -= s_learning_rate * s_batch.grad` outside `no_grad`; the in-place update of a leaf that
#       requires grad raises.
# expect: GG203@20
# fails: a leaf Variable that requires grad is being used in an in-place operation
# fix: update under `with torch.no_grad():` (or `s_batch = s_batch - s_learning_rate * s_batch.grad`)
import torch


def optimize_s(s, weight, z, s_learning_rate=0.1, chunk_size=4, steps=6):
    for start in range(0, s.shape[1], chunk_size):
        chunk = slice(start, start + chunk_size)
        s_batch = s[:, chunk].clone().float().requires_grad_(True)
        z_batch = z[:, chunk]
        for _ in range(steps):
            loss_s = ((weight @ s_batch - z_batch) ** 2).mean()
            loss_s.backward()
            s_batch -= s_learning_rate * s_batch.grad
            s_batch.grad.zero_()
        s[:, chunk] = s_batch.detach()
    return s


torch.manual_seed(0)
weight = torch.randn(6, 5)
s = torch.randn(5, 4)
z = torch.randn(6, 4)
optimize_s(s, weight, z)
