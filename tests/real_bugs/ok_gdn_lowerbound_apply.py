# source: https://github.com/jorge-pessoa/pytorch-gdn/issues/2
# what: GDN's `LowerBound` as fixed upstream: static `forward(ctx, inputs, bound)`/`backward(ctx, ...)`,
#       `ctx.save_for_backward`, two gradients for two inputs, called with `LowerBound.apply`.
# expect: none
# fails: none
# fix: none
import torch
from torch import nn
from torch.autograd import Function


class LowerBound(Function):
    @staticmethod
    def forward(ctx, inputs, bound):
        b = torch.ones(inputs.size()) * bound
        b = b.to(inputs.device)
        ctx.save_for_backward(inputs, b)
        return torch.max(inputs, b)

    @staticmethod
    def backward(ctx, grad_output):
        inputs, b = ctx.saved_tensors
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
        beta = LowerBound.apply(self.beta, self.beta_bound)
        beta = beta**2 - self.pedestal
        gamma = LowerBound.apply(self.gamma, self.gamma_bound)
        gamma = (gamma**2 - self.pedestal).view(ch, ch, 1, 1)
        norm_ = torch.sqrt(nn.functional.conv2d(inputs**2, gamma, beta))
        return inputs / norm_


torch.manual_seed(0)
gdn = GDN(3)
optimizer = torch.optim.Adam(gdn.parameters(), lr=1e-2)
x = torch.randn(2, 3, 4, 4)
target = x * 0.5
losses = []
for _ in range(10):
    optimizer.zero_grad()
    loss = ((gdn(x) - target) ** 2).mean()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
assert losses[-1] < losses[0], "GDN does not learn"
