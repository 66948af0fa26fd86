# source: https://github.com/pytorch/tutorials/blob/main/beginner_source/nlp/word_embeddings_tutorial.py
# The N-gram language model of that tutorial (context embeddings viewed as one row (1, -1), two linear
# layers, log_softmax), written for this suite.
import torch.nn as nn
import torch.nn.functional as F

CONTEXT_SIZE = 2
EMBEDDING_DIM = 10


# gradguard: probe NGramLanguageModeler(97, EMBEDDING_DIM, CONTEXT_SIZE) input=long(2, high=97)
class NGramLanguageModeler(nn.Module):
    def __init__(self, vocab_size, embedding_dim, context_size):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.linear1 = nn.Linear(context_size * embedding_dim, 128)
        self.linear2 = nn.Linear(128, vocab_size)

    def forward(self, inputs):
        embeds = self.embeddings(inputs).view((1, -1))
        out = F.relu(self.linear1(embeds))
        out = self.linear2(out)
        log_probs = F.log_softmax(out, dim=1)
        return log_probs
