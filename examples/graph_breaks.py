"""A small image-regression project where gradients stop before they reach the model.

Bugs gradguard finds here (and what PyTorch really does):
  * GG301: the loss is computed from `pred.detach()` / `.item()` values: `backward()` raises
    "element 0 of tensors does not require grad and does not have a grad_fn", or, after
    re-wrapping with `torch.tensor(..., requires_grad=True)`, runs but reaches no parameter.
  * GG302: the validation-style loss is computed under `torch.no_grad()` and then
    backpropagated (same error).
  * GG303: the count loss goes through `torch.round` (zero gradient everywhere; the
    straight-through estimator in `forward` is fine) and the accuracy loss through `argmax`
    (no gradient at all).
  * GG204: `gate.mul_(...)` writes into a sigmoid output that backward needs: "one of the
    variables needed for gradient computation has been modified by an inplace operation".
  * GG305: `torch.tensor(per_scale)` copies the per-scale losses into a tensor with no
    history.
The rest is correct and must stay silent: the EMA teacher under no_grad, the teacher
targets, the straight-through rounding, `.item()` for logging, argmax for accuracy.
"""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


class Counter(nn.Module):
    def __init__(self, channels=3, width=16):
        super().__init__()
        self.conv = nn.Conv2d(channels, width, 3, padding=1)
        self.gate_conv = nn.Conv2d(width, width, 1)
        self.head = nn.Linear(width, 1)
        self.cls = nn.Linear(width, 4)

    def features(self, x):
        h = F.relu(self.conv(x))
        gate = torch.sigmoid(self.gate_conv(h))
        gate.mul_(2.0)
        return (h * gate).mean(dim=(2, 3))

    def forward(self, x):
        f = self.features(x)
        count = self.head(f).squeeze(1)
        rounded = count + (torch.round(count) - count).detach()  # straight-through: fine
        return rounded, self.cls(f)

    def multiscale_loss(self, images, counts):
        per_scale = []
        for scale in (1.0, 0.5):
            x = F.interpolate(images, scale_factor=scale) if scale != 1.0 else images
            pred, _ = self(x)
            per_scale.append(F.mse_loss(pred, counts))
        return torch.tensor(per_scale).sum()


def count_step(model, optimizer, images, counts):
    pred, _ = model(images)
    loss = F.mse_loss(pred.detach(), counts)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def rewrapped_step(model, optimizer, images, counts):
    pred, _ = model(images)
    value = F.l1_loss(pred, counts).item()
    loss = torch.tensor(value, requires_grad=True)
    loss.backward()
    optimizer.step()


def finetune_on_validation(model, optimizer, images, counts):
    model.eval()
    with torch.no_grad():
        pred, _ = model(images)
        loss = F.mse_loss(pred, counts)
    loss.backward()
    optimizer.step()


def hard_count_step(model, optimizer, images, counts):
    pred, logits = model(images)
    hard = torch.round(pred)
    loss = (hard - counts).abs().mean()
    loss.backward()
    optimizer.step()


def accuracy_step(model, optimizer, images, labels):
    _, logits = model(images)
    guess = logits.argmax(dim=1)
    acc_loss = (guess != labels).float().mean()
    acc_loss.backward()
    optimizer.step()


def multiscale_step(model, optimizer, images, counts):
    total = model.multiscale_loss(images, counts)
    total.backward()
    optimizer.step()


def distill_step(student, teacher, optimizer, images, counts, labels, decay=0.99):
    with torch.no_grad():
        t_count, t_logits = teacher(images)
    s_count, s_logits = student(images)
    loss = F.mse_loss(s_count, t_count) + F.kl_div(
        F.log_softmax(s_logits, dim=1), F.softmax(t_logits, dim=1), reduction="batchmean"
    )
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        for pt, ps in zip(teacher.parameters(), student.parameters()):
            pt.mul_(decay).add_(ps, alpha=1 - decay)
    accuracy = (s_logits.argmax(dim=1) == labels).float().mean().item()
    return loss.item(), accuracy


if __name__ == "__main__":
    model = Counter()
    teacher = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    images, counts, labels = torch.randn(4, 3, 16, 16), torch.rand(4) * 10, torch.randint(0, 4, (4,))
    distill_step(model, teacher, opt, images, counts, labels)
    accuracy_step(model, opt, images, labels)
    hard_count_step(model, opt, images, counts)
