# source: https://github.com/lucidrains/vector-quantize-pytorch/pull/57
# what: With a learnable codebook and affine parameters, the codebook statistics are folded into
#       registered buffers with an EMA (`lerp_`) while still attached to the graph; the buffers keep the
#       previous steps' graphs ("never being dropped", OOM after a while), and here the next step's
#       backward runs into the freed graph of the step before.
# expect: GG206@24
# fails: Trying to backward through the graph a second time
# fix: update the buffers from detached statistics (or under `torch.no_grad()`)
import torch
import torch.nn as nn


class EuclideanCodebook(nn.Module):
    def __init__(self, dim, codebook_size, affine_param_codebook_decay=0.9):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(codebook_size, dim))
        self.affine_param_codebook_decay = affine_param_codebook_decay
        self.register_buffer("codebook_mean", torch.zeros(1, dim))
        self.register_buffer("codebook_variance", torch.ones(1, dim))

    def update_affine(self, embed):
        codebook_mean = embed.mean(dim=0, keepdim=True)
        codebook_variance = embed.var(dim=0, keepdim=True)
        self.codebook_mean.lerp_(codebook_mean, 1 - self.affine_param_codebook_decay)
        self.codebook_variance.lerp_(codebook_variance, 1 - self.affine_param_codebook_decay)

    def forward(self, x):
        self.update_affine(self.embed)
        embed = (self.embed - self.codebook_mean) * self.codebook_variance.clamp(min=1e-5).rsqrt()
        dist = torch.cdist(x, embed)
        embed_ind = dist.argmin(dim=-1)
        quantize = embed[embed_ind]
        return quantize, (quantize - x).pow(2).mean()


torch.manual_seed(0)
codebook = EuclideanCodebook(dim=3, codebook_size=5)
optimizer = torch.optim.Adam(codebook.parameters(), lr=1e-2)
for _ in range(3):
    optimizer.zero_grad()
    quantize, loss = codebook(torch.randn(8, 3))
    loss.backward()
    optimizer.step()
