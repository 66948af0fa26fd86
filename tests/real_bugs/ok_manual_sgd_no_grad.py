# source: https://github.com/pytorch/examples/pull/779
# what: The word-language-model's hand-written SGD update done the safe way: inside `torch.no_grad()`.
# expect: none
# fails: none
# fix: none
import torch
from torch import nn

torch.manual_seed(0)
ntokens, lr = 6, 0.5
encoder = nn.Embedding(ntokens, 4)
decoder = nn.Linear(4, ntokens)
model = nn.Sequential(encoder, decoder)
criterion = nn.CrossEntropyLoss()
data = torch.randint(0, ntokens, (10,))
targets = torch.roll(data, 1)
losses = []
for _ in range(20):
    model.zero_grad()
    loss = criterion(model(data), targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(p.grad, alpha=-lr)
    losses.append(loss.item())
assert losses[-1] < losses[0], "the model does not learn"
