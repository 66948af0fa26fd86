"""WGAN-GP: gradient penalty with torch.autograd.grad(create_graph=True) on interpolates."""

import torch
import torch.nn as nn

torch.manual_seed(0)
critic = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
generator = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
opt_c = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.0, 0.9))
opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.0, 0.9))


def gradient_penalty(critic: nn.Module, real, fake):
    eps = torch.rand(real.shape[0], 1)
    interp = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = critic(interp)
    (grads,) = torch.autograd.grad(scores.sum(), interp, create_graph=True)
    return ((grads.norm(2, dim=1) - 1) ** 2).mean()


real_data = torch.randn(128, 2) + 3
for step in range(10):
    real = real_data[torch.randint(0, 128, (32,))]
    fake = generator(torch.randn(32, 4)).detach()
    loss_c = critic(fake).mean() - critic(real).mean() + 10 * gradient_penalty(critic, real, fake)
    opt_c.zero_grad()
    loss_c.backward()
    opt_c.step()

    if step % 2 == 0:
        loss_g = -critic(generator(torch.randn(32, 4))).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

assert generator[0].weight.grad is not None and critic[0].weight.grad is not None
