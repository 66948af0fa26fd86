# source: https://github.com/dragen1860/MAML-Pytorch/issues/40
# what: MAML accumulates the query loss of each inner step in `losses_q`; the step-0 and step-1 losses
#       are computed under `torch.no_grad()`. With `update_step=1` the meta-loss `losses_q[-1]` is one of
#       those, so `backward()` finds nothing to differentiate.
# expect: GG302@55
# fails: does not require grad
# fix: none
import torch
import torch.nn.functional as F
from torch import nn


class Learner(nn.Module):
    def __init__(self):
        super().__init__()
        self.vars = nn.ParameterList([nn.Parameter(torch.randn(3, 4) * 0.1), nn.Parameter(torch.zeros(3))])

    def forward(self, x, vars=None):
        w, b = self.vars if vars is None else vars
        return F.linear(x, w, b)


torch.manual_seed(0)
net = Learner()
meta_optim = torch.optim.Adam(net.parameters(), lr=1e-3)
update_step, update_lr, task_num = 1, 0.4, 2
x_spt, y_spt = torch.randn(task_num, 5, 4), torch.randint(0, 3, (task_num, 5))
x_qry, y_qry = torch.randn(task_num, 5, 4), torch.randint(0, 3, (task_num, 5))

losses_q = [0 for _ in range(update_step + 1)]
for i in range(task_num):
    logits = net(x_spt[i])
    loss = F.cross_entropy(logits, y_spt[i])
    grad = torch.autograd.grad(loss, net.parameters())
    fast_weights = [p - update_lr * g for g, p in zip(grad, net.parameters())]
    with torch.no_grad():
        logits_q = net(x_qry[i], net.parameters())
        loss_q = F.cross_entropy(logits_q, y_qry[i])
        losses_q[0] += loss_q
    with torch.no_grad():
        logits_q = net(x_qry[i], fast_weights)
        loss_q = F.cross_entropy(logits_q, y_qry[i])
        losses_q[1] += loss_q
    for k in range(1, update_step):
        logits = net(x_spt[i], fast_weights)
        loss = F.cross_entropy(logits, y_spt[i])
        grad = torch.autograd.grad(loss, fast_weights)
        fast_weights = [p - update_lr * g for g, p in zip(grad, fast_weights)]
        logits_q = net(x_qry[i], fast_weights)
        loss_q = F.cross_entropy(logits_q, y_qry[i])
        losses_q[k + 1] += loss_q

loss_q = losses_q[-1] / task_num
meta_optim.zero_grad()
loss_q.backward()
meta_optim.step()
