# source: https://github.com/pytorch/tutorials/blob/main/intermediate_source/char_rnn_classification_tutorial.py
# The name classifier of that tutorial (nn.RNN over one-hot letters, the final hidden state through a
# linear layer and LogSoftmax), written for this suite.
import torch.nn as nn


# gradguard: probe CharRNN(57, 128, 18) input=(7, 1, 57)
class CharRNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size)
        self.h2o = nn.Linear(hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, line_tensor):
        rnn_out, hidden = self.rnn(line_tensor)
        output = self.h2o(hidden[0])
        output = self.softmax(output)
        return output
