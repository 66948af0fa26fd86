# source: https://github.com/pytorch/tutorials/blob/main/intermediate_source/reinforcement_q_learning.py
# The DQN of that tutorial (three linear layers), written for this suite.
import torch.nn as nn
import torch.nn.functional as F


# gradguard: probe DQN(4, 2) input=(8, 4)
class DQN(nn.Module):
    def __init__(self, n_observations, n_actions):
        super().__init__()
        self.layer1 = nn.Linear(n_observations, 128)
        self.layer2 = nn.Linear(128, 128)
        self.layer3 = nn.Linear(128, n_actions)

    def forward(self, x):
        x = F.relu(self.layer1(x))
        x = F.relu(self.layer2(x))
        return self.layer3(x)
