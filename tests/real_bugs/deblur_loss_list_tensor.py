# source: https://github.com/MC-E/Deep-Generalized-Unfolding-Networks-for-Image-Restoration/issues/6
# what: `np.sum` over the per-stage losses failed, so the user rewrote it as
#       `torch.tensor([criterion_char(restored[j], target) for j in ...], requires_grad=True).sum()`;
#       the new tensor has no history and "the psnr will not change during training".
# expect: GG305@41
# fails: no-learning
# fix: `torch.stack([criterion_char(restored[j], target) for j in range(len(restored))]).sum()`
import torch
import torch.nn as nn


class CharbonnierLoss(nn.Module):
    def __init__(self, eps=1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, x, y):
        diff = x - y
        return torch.mean(torch.sqrt(diff * diff + self.eps * self.eps))


class TwoStageNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stage1 = nn.Conv2d(3, 3, 3, padding=1)
        self.stage2 = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        s1 = self.stage1(x)
        return [self.stage2(s1) + x, s1 + x]


torch.manual_seed(0)
model_restoration = TwoStageNet()
optimizer = torch.optim.Adam(model_restoration.parameters(), lr=2e-4)
criterion_char = CharbonnierLoss()
input_, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)

optimizer.zero_grad()
restored = model_restoration(input_)
loss_char = torch.tensor(
    [criterion_char(restored[j], target) for j in range(len(restored))], requires_grad=True
).sum()
loss = loss_char
loss.backward()
optimizer.step()
assert model_restoration.stage1.weight.grad is not None, "the restoration network gets no gradient"
