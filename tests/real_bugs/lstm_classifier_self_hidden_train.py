# source: https://github.com/pytorch/pytorch/issues/2769
# what: A video LSTM classifier stores `self.hidden = self.init_hidden()` in `__init__` and forward writes
#       the LSTM's new state back to `self.hidden`; the `train()` function then calls `loss.backward()`
#       per batch, and the second batch backpropagates into the first batch's freed graph.
# expect: GG404@27
# fails: Trying to backward through the graph a second time
# fix: detach the stored state in forward (`self.hidden = tuple(state.detach() for state in self.hidden)`)
#       or re-initialise `model.hidden` before each batch (`model.hidden = model.init_hidden()`)
import torch
import torch.nn as nn
import torch.nn.functional as F


class LSTM(nn.Module):
    def __init__(self, input_len=8, hidden_len=8, target_size=3):
        super().__init__()
        self.hidden_len = hidden_len
        self.target_size = target_size
        self.lstm = nn.LSTM(input_len, hidden_len, batch_first=True)
        self.hidden2class = nn.Linear(hidden_len, target_size)
        self.hidden = self.init_hidden()

    def init_hidden(self):
        return (torch.zeros(1, 1, self.hidden_len), torch.zeros(1, 1, self.hidden_len))

    def forward(self, x):
        lstm_out, self.hidden = self.lstm(x, self.hidden)
        cls_scores = self.hidden2class(lstm_out[:, -1, :]).view(-1, self.target_size)
        return F.log_softmax(cls_scores, dim=1)


def train(train_data, model, criterion, optimizer, epoch):
    model.train()
    for i, (input, target) in enumerate(train_data):
        output = model(input)
        loss = criterion(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


torch.manual_seed(0)
model = LSTM()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
data = [(torch.randn(1, 5, 8), torch.tensor([i % 3])) for i in range(4)]
train(data, model, nn.NLLLoss(), optimizer, 0)
