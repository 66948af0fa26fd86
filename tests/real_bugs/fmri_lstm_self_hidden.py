# source: https://github.com/sgadgil6/cnslab_fmri/issues/4
# what: The fMRI LSTM keeps its hidden state on the module (`self.hidden`) and passes it back into
#       `self.lstm` on every forward; the second batch's `loss.backward()` reaches the first batch's graph.
# expect: GG404@28
# fails: Trying to backward through the graph a second time
# fix: detach the stored state (`self.hidden = tuple(h.detach() for h in hidden)`) or do not pass it back
import torch
import torch.nn as nn


class fMRI_LSTM(nn.Module):
    def __init__(self, hidden_dim, input_dim, batch_size):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.batch_size = batch_size
        self.lstm = nn.LSTM(input_dim, hidden_dim, num_layers=1, batch_first=True)
        self.linear = nn.Linear(hidden_dim, 1)
        self.hidden = self.init_hidden()
        self.activate = nn.Sigmoid()

    def init_hidden(self):
        return (
            torch.randn(1, self.batch_size, self.hidden_dim),
            torch.randn(1, self.batch_size, self.hidden_dim),
        )

    def forward(self, x):
        lstm_out, self.hidden = self.lstm(x, self.hidden)
        return self.activate(self.linear(lstm_out[:, -1, :]))


torch.manual_seed(0)
model = fMRI_LSTM(hidden_dim=4, input_dim=3, batch_size=2)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.BCELoss()
for i in range(2):
    x, y = torch.randn(2, 5, 3), torch.randint(0, 2, (2, 1)).float()
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
