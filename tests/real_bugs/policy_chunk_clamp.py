# source: https://github.com/toshikwa/gail-airl-ppo.pytorch/issues/13
# what: A Gaussian policy splits the network output with `chunk(2, dim=-1)` and clamps the log-std half in
#       place with `log_stds.clamp_(-20, 2)`; PyTorch refuses to modify a view returned by a multi-output op.
# expect: GG204@27
# fails: is a view and is being modified inplace
# fix: rebind instead of writing into the view: `log_stds = log_stds.clamp(-20, 2)`
import torch
from torch import nn


class StateDependentPolicy(nn.Module):
    def __init__(self, state_shape, action_shape, hidden_units=(8, 8)):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(state_shape[0], hidden_units[0]),
            nn.Tanh(),
            nn.Linear(hidden_units[0], hidden_units[1]),
            nn.Tanh(),
            nn.Linear(hidden_units[1], 2 * action_shape[0]),
        )

    def forward(self, states):
        return torch.tanh(self.net(states).chunk(2, dim=-1)[0])

    def sample(self, states):
        means, log_stds = self.net(states).chunk(2, dim=-1)
        log_stds.clamp_(-20, 2)
        noises = torch.randn_like(means)
        us = means + noises * log_stds.exp()
        actions = torch.tanh(us)
        return actions, log_stds.sum(dim=-1)


torch.manual_seed(0)
actor = StateDependentPolicy((3,), (2,))
optim_actor = torch.optim.Adam(actor.parameters(), lr=3e-4)
states = torch.randn(4, 3)
actions, log_pis = actor.sample(states)
loss_actor = -log_pis.mean()
optim_actor.zero_grad()
loss_actor.backward()
optim_actor.step()
