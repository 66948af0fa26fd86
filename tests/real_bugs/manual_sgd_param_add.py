# source: https://github.com/pytorch/examples/pull/779
# what: The word-language-model example updated parameters by hand with `p.add_(p.grad, alpha=-lr)`
#       outside `torch.no_grad()`; a parameter is a leaf that requires grad, so the in-place update raises.
# expect: GG203@37
# fails: a leaf Variable that requires grad is being used in an in-place operation
# fix: wrap the update in `with torch.no_grad():` (or update `p.data`)
import torch
from torch import nn


class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp, nhid):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.GRU(ninp, nhid)
        self.decoder = nn.Linear(nhid, ntoken)

    def forward(self, input, hidden):
        output, hidden = self.rnn(self.encoder(input), hidden)
        return self.decoder(output), hidden


torch.manual_seed(0)
ntokens, lr = 10, 20
model = RNNModel(ntokens, 4, 4)
criterion = nn.CrossEntropyLoss()
data = torch.randint(0, ntokens, (5, 2))
targets = torch.randint(0, ntokens, (5 * 2,))
hidden = torch.zeros(1, 2, 4)

model.zero_grad()
output, hidden = model(data, hidden)
loss = criterion(output.view(-1, ntokens), targets)
loss.backward()
torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
for p in model.parameters():
    p.add_(p.grad, alpha=-lr)
