# source: https://github.com/sunlicai/MAE-DFER/issues/15
# source: https://github.com/sunlicai/MAE-DFER/issues/3
# what: MAE-DFER's local-global attention block takes the messenger tokens as a view of `x`
#       (`rearrange(x[:, 0], ...)`), runs LayerNorm + attention on them, and writes the result back with
#       `x[:, 0] = ...`; LayerNorm saved the view for backward, so the write makes `backward()` fail
#       on PyTorch 2.
# expect: GG204@29
# fails: modified by an inplace operation
# fix: none (not reported, see GG204): take a copy: `messenger_tokens = x[:, 0].clone().reshape(...)`
import torch
import torch.nn as nn


class LGBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.first_attn_norm0 = nn.LayerNorm(dim)
        self.first_attn = nn.Linear(dim, dim)
        self.second_attn_norm0 = nn.LayerNorm(dim)
        self.second_attn = nn.Linear(dim, dim)

    def forward(self, x, b):
        """x: (B*N, S, C) local regions, each with its messenger token at position 0."""
        bn, s, c = x.shape
        n = bn // b
        x = x + self.first_attn(self.first_attn_norm0(x))
        messenger_tokens = x[:, 0].reshape(b, n, c)  # attn on 'n' dim
        messenger_tokens = messenger_tokens + self.second_attn(self.second_attn_norm0(messenger_tokens))
        x[:, 0] = messenger_tokens.reshape(b * n, c)
        return x


torch.manual_seed(0)
block = LGBlock(8)
out = block(torch.randn(2 * 3, 5, 8), b=2)
out.pow(2).mean().backward()
