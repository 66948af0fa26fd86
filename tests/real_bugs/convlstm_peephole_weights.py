# source: https://github.com/automan000/Convolutional_LSTM_PyTorch/issues/17
# what: The ConvLSTM cell creates its peephole weights `Wci`, `Wcf`, `Wco` as tensors with
#       `requires_grad` set by attribute instead of `nn.Parameter`; they are not in `model.parameters()`,
#       so `Adam(model.parameters())` never updates them.
# expect: GG103@20
# fails: no-learning
# fix: wrap them in `nn.Parameter(...)`
import torch
import torch.nn as nn


class ConvLSTMCell(nn.Module):
    def __init__(self, input_channels, hidden_channels, kernel_size, shape):
        super().__init__()
        padding = kernel_size // 2
        self.Wxi = nn.Conv2d(input_channels, hidden_channels, kernel_size, 1, padding, bias=True)
        self.Whi = nn.Conv2d(hidden_channels, hidden_channels, kernel_size, 1, padding, bias=False)
        self.Wxc = nn.Conv2d(input_channels, hidden_channels, kernel_size, 1, padding, bias=True)
        self.Whc = nn.Conv2d(hidden_channels, hidden_channels, kernel_size, 1, padding, bias=False)
        self.Wci = torch.zeros(1, hidden_channels, shape[0], shape[1])
        self.Wci.requires_grad = True

    def forward(self, x, h, c):
        ci = torch.sigmoid(self.Wxi(x) + self.Whi(h) + c * self.Wci)
        cc = ci * c + ci * torch.tanh(self.Wxc(x) + self.Whc(h))
        return torch.tanh(cc), cc


torch.manual_seed(0)
cell = ConvLSTMCell(2, 3, 3, (4, 4))
optimizer = torch.optim.Adam(cell.parameters(), lr=0.1)
x = torch.randn(1, 2, 4, 4)
h, c = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
out, c = cell(x, h, c)
out.pow(2).mean().backward()
optimizer.step()
assert cell.Wci.abs().sum() > 0, "the peephole weights are never updated"
