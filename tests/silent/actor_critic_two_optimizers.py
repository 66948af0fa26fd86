"""Actor-critic with two optimizers; the advantage is detached for the actor."""

import torch
import torch.nn as nn
from torch.distributions import Categorical

torch.manual_seed(0)
actor = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))
critic = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))
actor_opt = torch.optim.Adam(actor.parameters(), lr=3e-3)
critic_opt = torch.optim.Adam(critic.parameters(), lr=1e-2)

states = torch.randn(64, 4)
returns = states[:, 0] * 2.0
critic_losses = []
actor_before = [p.detach().clone() for p in actor.parameters()]
for _ in range(20):
    dist = Categorical(logits=actor(states))
    actions = dist.sample()
    values = critic(states).squeeze(-1)
    advantage = returns - values
    actor_loss = -(dist.log_prob(actions) * advantage.detach()).mean() - 0.01 * dist.entropy().mean()
    critic_loss = advantage.pow(2).mean()

    actor_opt.zero_grad()
    actor_loss.backward()
    actor_opt.step()

    critic_opt.zero_grad()
    critic_loss.backward()
    critic_opt.step()
    critic_losses.append(critic_loss.item())

assert critic_losses[-1] < critic_losses[0]
assert any(not torch.equal(a, b) for a, b in zip(actor_before, actor.parameters()))
