"""Tied input/output embeddings in a tiny language model."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 20, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.embed.weight

    def forward(self, tokens):
        h, _ = self.rnn(self.embed(tokens))
        return self.lm_head(h)


torch.manual_seed(0)
model = TinyLM()
assert model.lm_head.weight is model.embed.weight
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
tokens = torch.randint(0, 20, (4, 12))
losses = []
for _ in range(20):
    logits = model(tokens[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, 20), tokens[:, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
assert losses[-1] < losses[0]
assert len(list(model.parameters())) == 1 + 4  # shared embedding counted once + GRU weights
