# source: https://github.com/ray-project/ray/pull/40940
# what: The LLM fine-tuning template sums the step losses for its log line with `loss_sum += loss`,
#       where `loss = outputs.loss` is the tensor that was just back-propagated; each step's graph stays
#       referenced by the running sum, the memory leak the pull request fixes.
# expect: GG405@39
# fails: keeps every step's graph
# fix: `loss_sum += loss.item()` (or `loss.detach()`)
import torch
import torch.nn as nn


class Outputs:
    def __init__(self, loss):
        self.loss = loss


class CausalLM(nn.Module):
    def __init__(self, vocab=8, dim=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, input_ids, labels):
        logits = self.head(self.embed(input_ids))
        return Outputs(nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1)))


torch.manual_seed(0)
model = CausalLM()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
loss_sum = torch.tensor(0.0)
for step in range(3):
    batch = {"input_ids": torch.randint(0, 8, (2, 5)), "labels": torch.randint(0, 8, (2, 5))}
    outputs = model(**batch)
    loss = outputs.loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    loss_sum += loss
    aggregated_loss = loss_sum / (step + 1)
assert getattr(aggregated_loss, "grad_fn", None) is None, "the logged loss sum keeps every step's graph"
