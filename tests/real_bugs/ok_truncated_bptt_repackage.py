# source: https://github.com/quark0/darts/issues/56
# what: Truncated back-propagation through time as in the word language model: the hidden state is
#       carried across batches but cut from the graph with `repackage_hidden` before each forward.
# expect: none
# fails: none
# fix: none
import torch
import torch.nn as nn


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    else:
        return tuple(repackage_hidden(v) for v in h)


torch.manual_seed(0)
ntokens = 6
encoder = nn.Embedding(ntokens, 4)
rnn = nn.LSTM(4, 4)
decoder = nn.Linear(4, ntokens)
params = list(encoder.parameters()) + list(rnn.parameters()) + list(decoder.parameters())
optimizer = torch.optim.SGD(params, lr=1.0)
data = torch.randint(0, ntokens, (21, 2))
hidden = (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))
losses = []
for epoch in range(15):
    for i in range(0, 20, 5):
        inp, targets = data[i : i + 5], data[i + 1 : i + 6]
        hidden = repackage_hidden(hidden)
        optimizer.zero_grad()
        output, hidden = rnn(encoder(inp), hidden)
        loss = nn.functional.cross_entropy(decoder(output).view(-1, ntokens), targets.reshape(-1))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
assert losses[-1] < losses[0], "the language model does not learn"
