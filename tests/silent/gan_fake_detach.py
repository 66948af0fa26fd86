"""GAN: the discriminator step sees fake.detach(); the generator step does not."""

import torch
import torch.nn as nn

torch.manual_seed(0)

latent = 8
G = nn.Sequential(nn.Linear(latent, 16), nn.ReLU(), nn.Linear(16, 2))
D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
bce = nn.BCEWithLogitsLoss()

real_data = torch.randn(256, 2) * 0.5 + torch.tensor([2.0, -1.0])
g_before = [p.detach().clone() for p in G.parameters()]

for step in range(20):
    real = real_data[torch.randint(0, 256, (32,))]
    z = torch.randn(32, latent)
    fake = G(z)

    # discriminator: do not backpropagate into G
    opt_d.zero_grad()
    d_real = D(real)
    d_fake = D(fake.detach())
    loss_d = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
    loss_d.backward()
    opt_d.step()

    # generator: gradients flow through D into G
    opt_g.zero_grad()
    d_out = D(fake)
    loss_g = bce(d_out, torch.ones_like(d_out))
    loss_g.backward()
    opt_g.step()

assert any(not torch.equal(a, b) for a, b in zip(g_before, G.parameters()))
