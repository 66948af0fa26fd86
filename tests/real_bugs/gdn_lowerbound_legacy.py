# source: https://github.com/jorge-pessoa/pytorch-gdn/issues/2
# what: GDN's `LowerBound(Function)` defines `forward(self, inputs, bound)` / `backward(self, grad_output)`
#       as instance methods and is called as `LowerBound()(self.beta, self.beta_bound)`: the legacy
#       Function style, which now raises.
# expect: GG602@14 GG602@19 GG602@38 GG602@40
# fails: Legacy autograd function with non-static forward method is deprecated
# fix: make `forward`/`backward` `@staticmethod`s taking `ctx`, and call `LowerBound.apply(self.beta, self.beta_bound)`
import torch
from torch import nn
from torch.autograd import Function


class LowerBound(Function):
    def forward(self, inputs, bound):
        b = torch.ones(inputs.size()) * bound
        self.save_for_backward(inputs, b)
        return torch.max(inputs, b)

    def backward(self, grad_output):
        inputs, b = self.saved_tensors
        pass_through_1 = inputs >= b
        pass_through_2 = grad_output < 0
        pass_through = pass_through_1 | pass_through_2
        return pass_through.type(grad_output.dtype) * grad_output, None


class GDN(nn.Module):
    def __init__(self, ch, beta_min=1e-6, gamma_init=0.1, reparam_offset=2**-18):
        super().__init__()
        self.pedestal = reparam_offset**2
        self.beta_bound = (beta_min + self.pedestal) ** 0.5
        self.gamma_bound = reparam_offset
        self.beta = nn.Parameter(torch.sqrt(torch.ones(ch) + self.pedestal))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(ch) + self.pedestal))

    def forward(self, inputs):
        _, ch, _, _ = inputs.size()
        beta = LowerBound()(self.beta, self.beta_bound)
        beta = beta**2 - self.pedestal
        gamma = LowerBound()(self.gamma, self.gamma_bound)
        gamma = (gamma**2 - self.pedestal).view(ch, ch, 1, 1)
        norm_ = torch.sqrt(nn.functional.conv2d(inputs**2, gamma, beta))
        return inputs / norm_


torch.manual_seed(0)
gdn = GDN(3)
gdn(torch.randn(1, 3, 4, 4)).sum().backward()
