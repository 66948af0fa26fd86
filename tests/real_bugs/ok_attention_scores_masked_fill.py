# source: https://github.com/graykode/nlp-tutorial/issues/29
# what: The tutorial's scaled dot-product attention masks the scores in place with `masked_fill_` right
#       after `matmul(...) / sqrt(d_k)`; neither op saved the scores for backward, so this is correct.
# expect: none
# fails: none
# fix: none
import numpy as np
import torch
import torch.nn as nn

d_k = 2


class ScaledDotProductAttention(nn.Module):
    def forward(self, Q, K, V, attn_mask):
        scores = torch.matmul(Q, K.transpose(-1, -2)) / np.sqrt(d_k)
        scores.masked_fill_(attn_mask, -1e9)
        attn = nn.Softmax(dim=-1)(scores)
        context = torch.matmul(attn, V)
        return context, attn


torch.manual_seed(0)
proj = nn.Linear(4, 3 * d_k)
optimizer = torch.optim.SGD(proj.parameters(), lr=0.5)
x = torch.randn(1, 3, 4)
target = torch.randn(1, 3, d_k)
attn_mask = torch.tensor([[False, False, True]] * 3).unsqueeze(0)
losses = []
for _ in range(20):
    q, k, v = proj(x).chunk(3, dim=-1)
    context, attn = ScaledDotProductAttention()(q, k, v, attn_mask)
    loss = ((context - target) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
assert losses[-1] < losses[0], "attention does not learn"
