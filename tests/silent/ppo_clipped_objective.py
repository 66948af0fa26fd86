"""PPO: old log-probs and advantages collected under no_grad, clipped surrogate objective."""

import torch
import torch.nn as nn
from torch.distributions import Normal


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int = 3, act_dim: int = 1) -> None:
        super().__init__()
        self.mu = nn.Sequential(nn.Linear(obs_dim, 32), nn.Tanh(), nn.Linear(32, act_dim))
        self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.value = nn.Sequential(nn.Linear(obs_dim, 32), nn.Tanh(), nn.Linear(32, 1))

    def dist(self, obs):
        return Normal(self.mu(obs), self.log_std.exp())


torch.manual_seed(0)
ac = ActorCritic()
opt = torch.optim.Adam(ac.parameters(), lr=3e-3)
clip = 0.2

for iteration in range(4):
    obs = torch.randn(64, 3)
    with torch.no_grad():
        dist = ac.dist(obs)
        actions = dist.sample()
        old_log_probs = dist.log_prob(actions).sum(-1)
        values = ac.value(obs).squeeze(-1)
    rewards = -(actions.squeeze(-1) - obs[:, 0]).pow(2)
    advantages = rewards - values
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    for epoch in range(4):
        new_dist = ac.dist(obs)
        ratio = (new_dist.log_prob(actions).sum(-1) - old_log_probs).exp()
        surrogate = torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
        value_loss = (ac.value(obs).squeeze(-1) - rewards).pow(2).mean()
        loss = -surrogate.mean() + 0.5 * value_loss - 0.01 * new_dist.entropy().mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(ac.parameters(), 0.5)
        opt.step()

assert ac.log_std.grad is not None and ac.mu[0].weight.grad is not None
