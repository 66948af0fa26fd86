# source: https://github.com/LTH14/rcg/issues/9
# what: A projection MLP built for (batch, features) inputs -- Linear, BatchNorm1d(dim) -- is applied to
#   token sequences (batch, tokens, dim); BatchNorm1d takes dim 1 (the 197 tokens) as its channels.
# expect: GG501@26
# fails: running_mean should contain 197 elements not 64
# fix: none (author's choice): transpose(1, 2) around BatchNorm1d, or pool the tokens first
import torch
import torch.nn as nn


def build_mlp(input_dim, mlp_dim, output_dim):
    return nn.Sequential(
        nn.Linear(input_dim, mlp_dim, bias=False),
        nn.BatchNorm1d(mlp_dim),
        nn.ReLU(inplace=True),
        nn.Linear(mlp_dim, output_dim, bias=False),
    )


class Projector(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = build_mlp(32, 64, 16)

    def forward(self, tokens):
        return self.mlp(tokens)


projector = Projector()
features = torch.randn(2, 197, 32)
z = projector(features)
