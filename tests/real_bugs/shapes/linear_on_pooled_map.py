# source: https://github.com/wqshmzh/CANet-CZSL/issues/7
# what: ResNet features of shape (N, 512, 1, 1) go straight into a Linear(512, 512) embedder without
#   flattening; the Linear multiplies the last dimension (size 1).
# expect: GG501@19
# fails: mat1 and mat2 shapes cannot be multiplied (2048x1 and 512x512)
# fix: flatten the pooled map first: x.flatten(1) (or x.squeeze(-1).squeeze(-1))
import torch
import torch.nn as nn


class ImageEmbedder(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.image_embedder_attr = nn.Linear(512, 512)

    def forward(self, feature_map):
        x = self.pool(feature_map)
        return self.image_embedder_attr(x)


embedder = ImageEmbedder()
emb = embedder(torch.randn(4, 512, 7, 7))
