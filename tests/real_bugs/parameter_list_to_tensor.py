# source: https://github.com/pytorch/pytorch/issues/61410
# what: A list of parameters (with `requires_grad` set by attribute) is converted into one tensor with
#       `torch.Tensor([p,])` (here `[p]`); the result is a fresh tensor without history and the parameter gets no gradient.
# expect: GG305@13
# fails: does not require grad
# fix: `torch.stack([p], dim=0)`
import torch

t = torch.FloatTensor([1.0])
p = torch.nn.Parameter(t)
p.requires_grad = True

weights = torch.Tensor([p])
loss = (weights * 3.0).sum()
loss.backward()
