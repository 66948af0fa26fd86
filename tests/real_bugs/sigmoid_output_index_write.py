# source: https://github.com/pytorch/pytorch/issues/9391
# what: An entry of a sigmoid output is overwritten by index assignment (`b[1] = 2`) before the loss;
#       sigmoid saved its output for backward, so `backward()` fails (the same write after a hand-written
#       `1 / (exp(-a) + 1)` runs, which confused the reporter).
# expect: GG204|GG202@12
# fails: modified by an inplace operation
# fix: build the modified tensor out of place, e.g. `b = torch.where(idx == 1, torch.tensor(2.0), b)` or write into `b.clone()`
import torch

a = torch.tensor([1, 2, 3.0], requires_grad=True)
b = a.sigmoid()
b[1] = 2
b.sum().backward()
