# source: https://github.com/pytorch/pytorch/issues/1255
# what: The LSTM is built with batch_first=True, but the batch is viewed as (1, batch, features), i.e.
#   one sequence of `batch` steps, while the initial state is sized for `batch` sequences.
# expect: GG501@22
# fails: Expected hidden[0] size (1, 1, 8), got [1, 4, 8]
# fix: none (author's choice): input as (batch, 1, features), or a state for 1 sequence
import torch
import torch.nn as nn


class Tagger(nn.Module):
    def __init__(self, input_dim=6, hidden_dim=8, num_layers=1, batch_len=4):
        super().__init__()
        self.input_dim, self.batch_len = input_dim, batch_len
        self.lstm = nn.LSTM(input_dim, hidden_dim, num_layers, batch_first=True)
        self.hidden = (
            torch.zeros(num_layers, batch_len, hidden_dim),
            torch.zeros(num_layers, batch_len, hidden_dim),
        )

    def forward(self, sequences):
        lstm_out, self.hidden = self.lstm(sequences.view(1, self.batch_len, self.input_dim), self.hidden)
        return lstm_out


model = Tagger()
output = model(torch.randn(4, 6))
