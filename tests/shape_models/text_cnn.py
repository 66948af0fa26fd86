# source: https://github.com/Shawn1993/cnn-text-classification-pytorch/blob/master/model.py
# The Kim-style text CNN of that repository (embeddings unsqueezed to one channel, one (K, D)
# convolution per kernel size squeezed to (N, Co, W), max-pooled over time and squeezed, concatenated),
# written for this suite with constructor arguments instead of the argparse namespace.
import torch
import torch.nn as nn
import torch.nn.functional as F


# gradguard: probe CNN_Text(embed_num=100, embed_dim=32, class_num=5, kernel_num=8, kernel_sizes=(3, 4, 5)) input=long(4, 20, high=100)
class CNN_Text(nn.Module):
    def __init__(self, embed_num, embed_dim, class_num, kernel_num, kernel_sizes, dropout=0.5):
        super().__init__()
        V, D, C, Ci, Co, Ks = embed_num, embed_dim, class_num, 1, kernel_num, kernel_sizes
        self.embed = nn.Embedding(V, D)
        self.convs = nn.ModuleList([nn.Conv2d(Ci, Co, (K, D)) for K in Ks])
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(len(Ks) * Co, C)

    def forward(self, x):
        x = self.embed(x)
        x = x.unsqueeze(1)
        x = [F.relu(conv(x)).squeeze(3) for conv in self.convs]
        x = [F.max_pool1d(i, i.size(2)).squeeze(2) for i in x]
        x = torch.cat(x, 1)
        x = self.dropout(x)
        logit = self.fc1(x)
        return logit
