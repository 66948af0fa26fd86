# source: https://github.com/huggingface/transformers/pull/6999
# source: https://github.com/huggingface/transformers/issues/6939
# what: The Trainer's `training_step` method returned the loss tensor it had just backpropagated (the
#       `.item()` had been removed for TPU speed) and `train()` summed it with `tr_loss += ...`; the total
#       kept every step's graph alive and 20,000 steps used up 12 GB of RAM.
# expect: GG405@32
# fails: tr_loss keeps the graph
# fix: accumulate `self.training_step(...).item()` (or return `loss.detach()` from `training_step`)
import torch
import torch.nn as nn


class Trainer:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer

    def compute_loss(self, model, inputs):
        return nn.functional.mse_loss(model(inputs["x"]), inputs["y"])

    def training_step(self, model, inputs):
        model.train()
        loss = self.compute_loss(model, inputs)
        loss.backward()
        return loss

    def train(self, train_dataloader, num_train_epochs=2):
        tr_loss = torch.tensor(0.0)
        self.model.zero_grad()
        for epoch in range(num_train_epochs):
            for step, inputs in enumerate(train_dataloader):
                tr_loss += self.training_step(self.model, inputs)
                self.optimizer.step()
                self.model.zero_grad()
        return tr_loss


torch.manual_seed(0)
model = nn.Linear(4, 1)
trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05))
batches = [{"x": torch.randn(8, 4), "y": torch.randn(8, 1)} for _ in range(3)]
total = trainer.train(batches)
assert total.grad_fn is None, "tr_loss keeps the graph of every training step"
