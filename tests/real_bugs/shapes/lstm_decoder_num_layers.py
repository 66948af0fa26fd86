# source: https://github.com/aladdinpersson/Machine-Learning-Collection/issues/110
# what: A seq2seq decoder LSTM is built with num_layers=2 while its initial state comes from a one-layer
#   encoder, so the hidden state has 1 layer where the decoder needs 2.
# expect: GG501@21
# fails: Expected hidden[0] size (2, 1, 32), got [1, 1, 32]
# fix: none (author's choice): the same num_layers for both, or repeat the state per layer
import torch
import torch.nn as nn


class Seq2Seq(nn.Module):
    def __init__(self, vocab=20, emb=16, hidden=32):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.encoder = nn.LSTM(emb, hidden, num_layers=1)
        self.decoder = nn.LSTM(emb, hidden, num_layers=2)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, source, target):
        _, (hidden, cell) = self.encoder(self.embedding(source))
        outputs, _ = self.decoder(self.embedding(target), (hidden, cell))
        return self.out(outputs)


model = Seq2Seq()
scores = model(torch.randint(0, 20, (7, 1)), torch.randint(0, 20, (5, 1)))
