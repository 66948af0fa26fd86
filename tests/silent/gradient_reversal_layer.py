"""Domain-adversarial training with a gradient reversal autograd.Function."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lambd: float):
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.neg() * ctx.lambd, None


def grad_reverse(x, lambd: float = 1.0):
    return GradReverse.apply(x, lambd)


class DANN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(5, 16), nn.ReLU())
        self.label_head = nn.Linear(16, 2)
        self.domain_head = nn.Linear(16, 2)

    def forward(self, x, lambd: float = 1.0):
        f = self.features(x)
        return self.label_head(f), self.domain_head(grad_reverse(f, lambd))


torch.manual_seed(0)
model = DANN()
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(32, 5)
y = (x[:, 0] > 0).long()
domain = torch.randint(0, 2, (32,))
label_logits, domain_logits = model(x, 0.3)
loss = F.cross_entropy(label_logits, y) + F.cross_entropy(domain_logits, domain)
loss.backward()
opt.step()

v = torch.randn(4, requires_grad=True)
grad_reverse(v, 2.0).sum().backward()
assert torch.equal(v.grad, torch.full((4,), -2.0))
