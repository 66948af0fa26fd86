# source: https://discuss.pytorch.org/t/when-inplace-operation-are-allowed-and-when-not/169583/3
# what: The forum example: `uexp = u.exp()` is used in a loss, then an entry of `uexp` is overwritten
#       (`uexp[0] = 666`); exp saves its output for backward, so the next backward fails.
# expect: GG204|GG202@15
# fails: modified by an inplace operation
# fix: write into a copy (`uexp = uexp.clone(); uexp[0] = 666`) or compute the loss after the edit out of place
import torch

t = torch.arange(3.0, requires_grad=True)
u = 2 * t
uexp = u.exp()
loss = uexp.sum()
u[0] = 666
loss.backward(retain_graph=True)
uexp[0] = 666
loss.backward()
