# source: https://github.com/KrisKorrel/sparsemax-pytorch/issues/5
# what: Sparsemax is an `nn.Module` with a hand-written `backward(self, grad_output)` that reads
#       `self.output` stashed in `forward`; autograd never calls a module's `backward` method.
# expect: GG105@32 GG101@36
# fails: no-learning
# fix: none
import torch
import torch.nn as nn


class Sparsemax(nn.Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, input):
        original_size = input.size()
        input = input.view(-1, input.size(self.dim))
        dim = 1
        number_of_logits = input.size(dim)
        input = input - torch.max(input, dim=dim, keepdim=True)[0].expand_as(input)
        zs = torch.sort(input=input, dim=dim, descending=True)[0]
        range = torch.arange(start=1, end=number_of_logits + 1, dtype=input.dtype).view(1, -1)
        range = range.expand_as(zs)
        bound = 1 + range * zs
        cumulative_sum_zs = torch.cumsum(zs, dim)
        is_gt = torch.gt(bound, cumulative_sum_zs).type(input.type())
        k = torch.max(is_gt * range, dim, keepdim=True)[0]
        zs_sparse = is_gt * zs
        taus = (torch.sum(zs_sparse, dim, keepdim=True) - 1) / k
        taus = taus.expand_as(input)
        self.output = torch.max(torch.zeros_like(input), input - taus)
        output = self.output.view(original_size)
        return output

    def backward(self, grad_output):
        dim = 1
        nonzeros = torch.ne(self.output, 0)
        sum = torch.sum(grad_output * nonzeros, dim=dim) / torch.sum(nonzeros, dim=dim)
        self.grad_input = nonzeros * (grad_output - sum.expand_as(grad_output))
        return self.grad_input


torch.manual_seed(0)
sparsemax = Sparsemax(dim=1)
logits = torch.randn(2, 5, requires_grad=True)
out = sparsemax(logits)
(out * torch.randn(2, 5)).sum().backward()
assert hasattr(sparsemax, "grad_input"), "Sparsemax.backward was never called"
