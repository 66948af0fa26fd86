# source: https://github.com/jokester-zzz/SSA-SC/issues/2
# what: The semantic scene completion trainer accumulates its per-term losses for logging with
#       `epoch_loss[key] += loss[key]` on the loss tensors themselves, so GPU memory keeps rising during
#       the epoch.
# expect: GG405@37
# fails: keeps the graph
# fix: `epoch_loss[key] += loss[key].item()`
import torch
import torch.nn as nn


class SSC(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Conv3d(1, 3, 3, padding=1)

    def compute_loss(self, scores, target):
        return {
            "semantic": nn.functional.cross_entropy(scores, target),
            "smooth": scores.softmax(1).diff(dim=2).abs().mean(),
        }


torch.manual_seed(0)
model = SSC()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
epoch_loss = {"total": 0.0, "semantic": 0.0, "smooth": 0.0}
for t in range(2):
    voxels, target = torch.randn(1, 1, 4, 4, 4), torch.randint(0, 3, (1, 4, 4, 4))
    scores = model.net(voxels)
    loss = model.compute_loss(scores, target)
    loss["total"] = loss["semantic"] + 0.1 * loss["smooth"]
    optimizer.zero_grad()
    loss["total"].backward()
    optimizer.step()
    for key in loss:
        epoch_loss[key] += loss[key]
assert getattr(epoch_loss["total"], "grad_fn", None) is None, "the logged epoch loss keeps the graph of every batch"
