# source: https://github.com/MorvanZhou/PyTorch-Tutorial/issues/57
# what: The RNN regression tutorial feeds each step's hidden state `h_state` into the next step; with
#       the line `h_state = h_state.data` commented out, the second `loss.backward()` goes back through
#       the previous step's freed graph.
# expect: GG404@37
# fails: Trying to backward through the graph a second time
# fix: `h_state = h_state.detach()` after the forward pass
import numpy as np
import torch
from torch import nn

TIME_STEP, INPUT_SIZE = 5, 1


class RNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(input_size=INPUT_SIZE, hidden_size=8, num_layers=1, batch_first=True)
        self.out = nn.Linear(8, 1)

    def forward(self, x, h_state):
        r_out, h_state = self.rnn(x, h_state)
        outs = [self.out(r_out[:, time_step, :]) for time_step in range(r_out.size(1))]
        return torch.stack(outs, dim=1), h_state


torch.manual_seed(0)
rnn = RNN()
optimizer = torch.optim.Adam(rnn.parameters(), lr=0.02)
loss_func = nn.MSELoss()
h_state = None
for step in range(3):
    start, end = step * np.pi, (step + 1) * np.pi
    steps = np.linspace(start, end, TIME_STEP, dtype=np.float32)
    x = torch.from_numpy(np.sin(steps)[np.newaxis, :, np.newaxis])
    y = torch.from_numpy(np.cos(steps)[np.newaxis, :, np.newaxis])
    prediction, h_state = rnn(x, h_state)
    # h_state = h_state.data
    loss = loss_func(prediction, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
