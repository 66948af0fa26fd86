# source: https://github.com/pytorch/tutorials/blob/main/beginner_source/text_sentiment_ngrams_tutorial.py
# The AG_NEWS classifier of that tutorial (nn.EmbeddingBag over a flat token tensor with offsets, one
# linear layer), written for this suite: 20 tokens in four bags.
import torch
from torch import nn


# gradguard: probe TextClassificationModel(100, 16, 4) input=[long(20, high=100), torch.tensor([0, 5, 9, 14])]
class TextClassificationModel(nn.Module):
    def __init__(self, vocab_size, embed_dim, num_class):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, sparse=False)
        self.fc = nn.Linear(embed_dim, num_class)

    def forward(self, text, offsets):
        embedded = self.embedding(text, offsets)
        return self.fc(embedded)
