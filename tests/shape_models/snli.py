# source: https://github.com/pytorch/examples/blob/77f55b912142e11fcfdf5b530231fb9c52f181e8/legacy/snli/model.py
# The SNLI classifier of that example (a Linear that folds the sequence and batch dims, a bidirectional
# LSTM encoder that keeps the last layer's two final states, concatenated premise/hypothesis features,
# an MLP), written for this suite. The script's argparse config is a namespace with small values and a
# batch is a namespace of two token tensors.
from types import SimpleNamespace

import torch
import torch.nn as nn


class Bottle(nn.Module):
    def forward(self, input):
        if len(input.size()) <= 2:
            return super().forward(input)
        size = input.size()[:2]
        out = super().forward(input.view(size[0] * size[1], -1))
        return out.view(size[0], size[1], -1)


class Linear(Bottle, nn.Linear):
    pass


class Encoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        input_size = config.d_proj if config.projection else config.d_embed
        self.rnn = nn.LSTM(
            input_size=input_size,
            hidden_size=config.d_hidden,
            num_layers=config.n_layers,
            dropout=0 if config.n_layers == 1 else config.dp_ratio,
            bidirectional=config.birnn,
        )

    def forward(self, inputs):
        batch_size = inputs.size()[1]
        state_shape = self.config.n_cells, batch_size, self.config.d_hidden
        h0 = c0 = inputs.new_zeros(state_shape)
        outputs, (ht, ct) = self.rnn(inputs, (h0, c0))
        if not self.config.birnn:
            return ht[-1]
        return ht[-2:].transpose(0, 1).contiguous().view(batch_size, -1)


# gradguard: probe SNLIClassifier(config) input=SimpleNamespace(premise=torch.zeros(7, 4, dtype=torch.long), hypothesis=torch.zeros(9, 4, dtype=torch.long))
class SNLIClassifier(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.n_embed, config.d_embed)
        self.projection = Linear(config.d_embed, config.d_proj)
        self.encoder = Encoder(config)
        self.dropout = nn.Dropout(p=config.dp_ratio)
        self.relu = nn.ReLU()
        seq_in_size = 2 * config.d_hidden
        if config.birnn:
            seq_in_size *= 2
        hidden = [m for _ in range(3) for m in (Linear(seq_in_size, seq_in_size), self.relu, self.dropout)]
        self.out = nn.Sequential(*hidden, Linear(seq_in_size, config.d_out))

    def forward(self, batch):
        prem_embed = self.embed(batch.premise)
        hypo_embed = self.embed(batch.hypothesis)
        if self.config.fix_emb:
            prem_embed = prem_embed.detach()
            hypo_embed = hypo_embed.detach()
        if self.config.projection:
            prem_embed = self.relu(self.projection(prem_embed))
            hypo_embed = self.relu(self.projection(hypo_embed))
        premise = self.encoder(prem_embed)
        hypothesis = self.encoder(hypo_embed)
        scores = self.out(torch.cat([premise, hypothesis], 1))
        return scores


config = SimpleNamespace(
    n_embed=100,
    d_embed=32,
    d_proj=24,
    projection=True,
    n_layers=2,
    dp_ratio=0.2,
    d_hidden=16,
    birnn=True,
    n_cells=4,
    fix_emb=True,
    d_out=4,
)
