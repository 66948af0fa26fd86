"""Original WGAN: clip critic weights in place after each step (p.data.clamp_ / no_grad)."""

import torch
import torch.nn as nn

torch.manual_seed(0)
critic = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
generator = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2))
opt_c = torch.optim.RMSprop(critic.parameters(), lr=5e-3)
opt_g = torch.optim.RMSprop(generator.parameters(), lr=5e-3)
clip_value = 0.05

real_data = torch.randn(256, 2) * 0.3 + 1.0
for step in range(20):
    real = real_data[torch.randint(0, 256, (32,))]
    fake = generator(torch.randn(32, 3))
    loss_c = critic(fake.detach()).mean() - critic(real).mean()
    opt_c.zero_grad()
    loss_c.backward()
    opt_c.step()
    if step % 2:
        for p in critic.parameters():
            p.data.clamp_(-clip_value, clip_value)
    else:
        with torch.no_grad():
            for p in critic.parameters():
                p.clamp_(-clip_value, clip_value)

    if step % 5 == 4:
        loss_g = -critic(generator(torch.randn(32, 3))).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

assert all(p.abs().max() <= clip_value + 1e-6 for p in critic.parameters())
assert generator[0].weight.grad is not None
