# source: https://github.com/onlybooks/llm/issues/18
# what: An attention helper sizes its causal mask with querys.size(2) and keys.size(2) -- the head
#   dimension (16) of these 3-D (batch, tokens, dim) tensors -- instead of size(-2), the 5 tokens; the
#   16x16 mask does not broadcast against the 5x5 scores.
# expect: GG507@21
# fails: The size of tensor a (16) must match the size of tensor b (5) at non-singleton dimension 2
# fix: none (a guess: size(2) is right for 4-D inputs; set 2 lines up): use size(-2)
from math import sqrt

import torch
import torch.nn.functional as F


def compute_attention(querys, keys, values, is_causal=False):
    dim_k = querys.size(-1)
    scores = querys @ keys.transpose(-2, -1) / sqrt(dim_k)
    if is_causal:
        query_length = querys.size(2)
        key_length = keys.size(2)
        temp_mask = torch.ones(query_length, key_length, dtype=torch.bool).tril(diagonal=0)
        scores = scores.masked_fill(temp_mask == False, float("-inf"))
    weights = F.softmax(scores, dim=-1)
    return weights @ values


x = torch.randn(1, 5, 16)
out = compute_attention(x, x, x, is_causal=True)
