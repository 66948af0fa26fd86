# source: https://github.com/SimonThomine/RememberingNormality/issues/7
# what: A memory module stores its learnable keys and values as plain tensors
#       (`self.keys = torch.randn(L, channel)`), not `nn.Parameter`; they stay at their random
#       initialisation and are invisible to the optimizer.
# expect: GG103@16 GG103@17
# fails: no-learning
# fix: none (not reported, see GG103): `self.keys = nn.Parameter(torch.randn(L, channel))`
import torch
import torch.nn as nn
import torch.nn.functional as F


class MemoryModule(nn.Module):
    def __init__(self, L=4, channel=8):
        super().__init__()
        self.keys = torch.randn(L, channel)
        self.values = torch.randn(L, channel)
        self.proj = nn.Linear(channel, channel)

    def forward(self, x):
        query = self.proj(x)
        attn = F.softmax(query @ self.keys.t(), dim=-1)
        return attn @ self.values


torch.manual_seed(0)
memory = MemoryModule()
optimizer = torch.optim.Adam(memory.parameters(), lr=1e-2)
x = torch.randn(16, 8)
keys_before = memory.keys.clone()
for _ in range(3):
    optimizer.zero_grad()
    loss = F.mse_loss(memory(x), x)
    loss.backward()
    optimizer.step()
assert not torch.equal(keys_before, memory.keys), "the memory keys never change"
