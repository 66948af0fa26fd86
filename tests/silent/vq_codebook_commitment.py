"""VQ-VAE quantizer: codebook and commitment losses use .detach() on opposite sides."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class VectorQuantizer(nn.Module):
    def __init__(self, num_codes: int, dim: int, beta: float = 0.25) -> None:
        super().__init__()
        self.codebook = nn.Embedding(num_codes, dim)
        self.beta = beta

    def forward(self, z):
        distances = torch.cdist(z, self.codebook.weight)
        codes = distances.argmin(dim=1)
        z_q = self.codebook(codes)
        codebook_loss = F.mse_loss(z_q, z.detach())
        commitment_loss = F.mse_loss(z, z_q.detach())
        z_q = z + (z_q - z).detach()
        return z_q, codebook_loss + self.beta * commitment_loss, codes


torch.manual_seed(0)
encoder = nn.Linear(8, 4)
decoder = nn.Linear(4, 8)
vq = VectorQuantizer(16, 4)
params = list(encoder.parameters()) + list(decoder.parameters()) + list(vq.parameters())
opt = torch.optim.Adam(params, lr=5e-3)
x = torch.randn(64, 8)

losses = []
for _ in range(40):
    z_q, vq_loss, _ = vq(encoder(x))
    loss = F.mse_loss(decoder(z_q), x) + vq_loss
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())

assert encoder.weight.grad is not None and vq.codebook.weight.grad is not None
assert losses[-1] < losses[0]
