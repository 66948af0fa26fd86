"""REINFORCE with a running baseline: log_prob * advantage.detach()."""

import torch
import torch.nn as nn
from torch.distributions import Categorical

torch.manual_seed(0)
policy = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 3))
optimizer = torch.optim.Adam(policy.parameters(), lr=2e-2)
baseline = 0.0
best_action = 2

rewards_seen = []
for episode in range(60):
    state = torch.randn(8, 3)
    dist = Categorical(logits=policy(state))
    action = dist.sample()
    reward = (action == best_action).float()
    baseline = 0.9 * baseline + 0.1 * reward.mean().item()
    advantage = reward - baseline
    loss = -(dist.log_prob(action) * advantage.detach()).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    rewards_seen.append(reward.mean().item())

assert sum(rewards_seen[-10:]) > sum(rewards_seen[:10])
