# source: https://github.com/pytorch/tutorials/blob/main/beginner_source/nlp/sequence_models_tutorial.py
# The part-of-speech LSTMTagger of that tutorial (embeddings viewed as (len, 1, -1) for the LSTM, the
# output viewed back to (len, -1), log_softmax), written for this suite.
import torch.nn as nn
import torch.nn.functional as F


# gradguard: probe LSTMTagger(6, 6, 9, 3) input=long(5, high=9)
class LSTMTagger(nn.Module):
    def __init__(self, embedding_dim, hidden_dim, vocab_size, tagset_size):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.word_embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim)
        self.hidden2tag = nn.Linear(hidden_dim, tagset_size)

    def forward(self, sentence):
        embeds = self.word_embeddings(sentence)
        lstm_out, _ = self.lstm(embeds.view(len(sentence), 1, -1))
        tag_space = self.hidden2tag(lstm_out.view(len(sentence), -1))
        tag_scores = F.log_softmax(tag_space, dim=1)
        return tag_scores
