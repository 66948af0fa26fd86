"""A mixture-of-experts text classifier whose parts are not all registered with nn.Module.

Bugs gradguard finds here (and what PyTorch really does):
  * GG103: `self.temperature` is a tensor with `requires_grad=True`, not an nn.Parameter:
    it gets gradients, but it is missing from `model.parameters()`, so the optimizer never
    updates it, and from `state_dict()`.
  * GG103: `self.experts` is a Python list of `nn.Linear` and `self.heads` a dict of them:
    their weights are missing from `model.parameters()` (never trained), `state_dict()`,
    and `.to(device)` does not move them.
  * GG104: `nn.LayerNorm(...)` built inside `forward` gets fresh weights on every call and
    is never trained; `self.gate = nn.Linear(...)` in `forward` is replaced on every call.
  * GG304: `p.require_grad = False` only sets a new Python attribute; the embedding keeps
    training.
The rest is correct and must stay silent: the ModuleList, the list of ints, the list of
parameter-free activations, the list also handed to nn.Sequential, lazy initialisation
under `if`, and `nn.ReLU()` built in forward.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class MixtureOfExperts(nn.Module):
    def __init__(self, vocab=1000, dim=64, n_experts=4, n_classes=5):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab, dim)
        self.widths = [dim] * n_experts
        self.experts = [nn.Linear(dim, dim) for _ in range(n_experts)]
        self.heads = {"topic": nn.Linear(dim, n_classes), "sentiment": nn.Linear(dim, 2)}
        self.temperature = torch.ones(1, requires_grad=True)
        self.acts = [nn.GELU(), nn.Dropout(0.1)]
        layers = []
        for _ in range(2):
            layers.append(nn.Linear(dim, dim))
            layers.append(nn.ReLU())
        self.mlp_layers = layers
        self.mlp = nn.Sequential(*layers)
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(n_experts)])
        self.proj = None

    def forward(self, tokens, offsets):
        h = self.embed(tokens, offsets)
        h = nn.LayerNorm(h.shape[-1])(h)
        self.gate = nn.Linear(h.shape[-1], len(self.experts))
        weights = torch.softmax(self.gate(h) / self.temperature, dim=-1)
        mixed = sum(weights[:, i : i + 1] * norm(expert(h)) for i, (expert, norm) in enumerate(zip(self.experts, self.norms)))
        mixed = nn.ReLU()(self.mlp(mixed))
        if self.proj is None:
            self.proj = nn.Linear(mixed.shape[-1], mixed.shape[-1])
        mixed = self.proj(mixed)
        return {name: head(mixed) for name, head in self.heads.items()}


def freeze_embeddings(model):
    for p in model.embed.parameters():
        p.require_grad = False


def train(model, batches, epochs=2):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    freeze_embeddings(model)
    for _ in range(epochs):
        for tokens, offsets, topic, sentiment in batches:
            out = model(tokens, offsets)
            loss = F.cross_entropy(out["topic"], topic) + F.cross_entropy(out["sentiment"], sentiment)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


if __name__ == "__main__":
    tokens = torch.randint(0, 1000, (40,))
    offsets = torch.arange(0, 40, 5)
    batch = (tokens, offsets, torch.randint(0, 5, (8,)), torch.randint(0, 2, (8,)))
    train(MixtureOfExperts(), [batch])
