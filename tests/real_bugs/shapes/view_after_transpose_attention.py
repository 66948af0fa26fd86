# source: https://github.com/jaiwei98/MobileNetV4-pytorch/pull/1
# what: Multi-query attention output (batch, heads, tokens, key_dim) is transposed to
#   (batch, tokens, heads, key_dim) and then merged with .view(...): after the transpose the memory is no
#   longer contiguous in that order and view refuses.
# expect: GG503@29
# fails: view size is not compatible with input tensor's size and stride
# fix: .reshape(...) (or .contiguous().view(...))
import torch
import torch.nn as nn


class MultiQueryAttention(nn.Module):
    def __init__(self, dim=32, num_heads=4, key_dim=8):
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.query_proj = nn.Linear(dim, num_heads * key_dim)
        self.key_proj = nn.Linear(dim, key_dim)
        self.value_proj = nn.Linear(dim, key_dim)
        self.output_proj = nn.Linear(num_heads * key_dim, dim)

    def forward(self, x):
        batch_size, qx, qy, _ = x.shape
        tokens = x.view(batch_size, qx * qy, -1)
        q = self.query_proj(tokens).view(batch_size, qx * qy, self.num_heads, self.key_dim).transpose(1, 2)
        k = self.key_proj(tokens).unsqueeze(1)
        v = self.value_proj(tokens).unsqueeze(1)
        attn_score = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        context = (attn_score @ v).transpose(1, 2)
        context = context.view(batch_size, qx, qy, self.num_heads * self.key_dim)
        return self.output_proj(context)


layer = MultiQueryAttention()
out = layer(torch.randn(2, 4, 4, 32))
