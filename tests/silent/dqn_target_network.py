"""DQN: the target network's Q-values are computed under no_grad and detached."""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)


class QNet(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, 32), nn.ReLU(), nn.Linear(32, n_actions))

    def forward(self, obs):
        return self.net(obs)


policy = QNet(4, 2)
target = copy.deepcopy(policy)
target.requires_grad_(False)
optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
gamma = 0.99

obs = torch.randn(64, 4)
actions = torch.randint(0, 2, (64,))
rewards = torch.randn(64)
next_obs = torch.randn(64, 4)
dones = torch.zeros(64)

losses = []
for step in range(30):
    q = policy(obs).gather(1, actions.unsqueeze(1)).squeeze(1)
    with torch.no_grad():
        next_q = target(next_obs).max(dim=1).values
        td_target = rewards + gamma * (1 - dones) * next_q
    loss = F.smooth_l1_loss(q, td_target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    if step % 10 == 9:
        target.load_state_dict(policy.state_dict())

# a variant with .detach() instead of no_grad
q = policy(obs).gather(1, actions.unsqueeze(1)).squeeze(1)
td_target = rewards + gamma * target(next_obs).max(dim=1).values.detach()
F.mse_loss(q, td_target).backward()

assert losses[-1] < losses[0]
