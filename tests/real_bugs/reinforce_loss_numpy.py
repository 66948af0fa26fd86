# source: https://github.com/isayev/ReLeaSE/issues/39
# what: To get around a device error the policy-gradient loss was rewritten as
#       `rl_loss -= (log_probs[0, top_i].cpu().detach().numpy() * discounted_reward)`; the loss is now a
#       NumPy number cut from the generator's graph, and no gradient reaches the weights.
# expect: GG301@39
# fails: object has no attribute 'backward'
# fix: keep the tensor: `rl_loss -= log_probs[0, top_i] * discounted_reward`
import torch
import torch.nn as nn
import torch.nn.functional as F


class StackAugmentedRNN(nn.Module):
    def __init__(self, n_characters=5, hidden_size=8):
        super().__init__()
        self.encoder = nn.Embedding(n_characters, hidden_size)
        self.rnn = nn.GRUCell(hidden_size, hidden_size)
        self.decoder = nn.Linear(hidden_size, n_characters)

    def forward(self, inp, hidden):
        hidden = self.rnn(self.encoder(inp), hidden)
        return self.decoder(hidden), hidden


torch.manual_seed(0)
generator = StackAugmentedRNN()
optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
trajectory = torch.randint(0, 5, (6,))
reward, gamma = 1.0, 0.97

rl_loss = 0
optimizer.zero_grad()
hidden = torch.zeros(1, 8)
discounted_reward = reward
for p in range(len(trajectory) - 1):
    output, hidden = generator(trajectory[p].view(1), hidden)
    log_probs = F.log_softmax(output, dim=1)
    top_i = trajectory[p + 1]
    rl_loss -= log_probs[0, top_i].cpu().detach().numpy() * discounted_reward
    discounted_reward = discounted_reward * gamma
rl_loss = rl_loss / len(trajectory)
rl_loss.backward()
optimizer.step()
