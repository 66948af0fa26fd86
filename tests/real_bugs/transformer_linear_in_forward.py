# source: https://github.com/graykode/nlp-tutorial/issues/29
# what: The tutorial Transformer builds its output projection and layer norm inside `forward`
#       (`nn.Linear(n_heads * d_v, d_model)(context)`, `nn.LayerNorm(d_model)(...)`): new random weights on
#       every call, never registered, never trained.
# expect: GG104@36 GG104@37
# fails: no-learning
# fix: create `self.linear = nn.Linear(n_heads * d_v, d_model)` and `self.layer_norm = nn.LayerNorm(d_model)` in `__init__`
import numpy as np
import torch
import torch.nn as nn

d_model, d_k, d_v, n_heads = 8, 2, 2, 2


class ScaledDotProductAttention(nn.Module):
    def forward(self, Q, K, V):
        scores = torch.matmul(Q, K.transpose(-1, -2)) / np.sqrt(d_k)
        attn = nn.Softmax(dim=-1)(scores)
        return torch.matmul(attn, V), attn


class MultiHeadAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.W_Q = nn.Linear(d_model, d_k * n_heads)
        self.W_K = nn.Linear(d_model, d_k * n_heads)
        self.W_V = nn.Linear(d_model, d_v * n_heads)

    def forward(self, Q, K, V):
        residual, batch_size = Q, Q.size(0)
        q_s = self.W_Q(Q).view(batch_size, -1, n_heads, d_k).transpose(1, 2)
        k_s = self.W_K(K).view(batch_size, -1, n_heads, d_k).transpose(1, 2)
        v_s = self.W_V(V).view(batch_size, -1, n_heads, d_v).transpose(1, 2)
        context, attn = ScaledDotProductAttention()(q_s, k_s, v_s)
        context = context.transpose(1, 2).contiguous().view(batch_size, -1, n_heads * d_v)
        output = nn.Linear(n_heads * d_v, d_model)(context)
        return nn.LayerNorm(d_model)(output + residual), attn


torch.manual_seed(0)
mha = MultiHeadAttention()
x = torch.randn(1, 3, d_model)
first, _ = mha(x, x, x)
second, _ = mha(x, x, x)
assert torch.allclose(first, second), (
    "the same input gives different outputs: the projection is re-created each call"
)
