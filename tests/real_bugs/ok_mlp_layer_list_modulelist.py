# source: https://github.com/twitter/the-algorithm-ml/blob/0813989fd916e5c7f6162db45c866889611b53ac/projects/home/recap/model/mlp.py
# what: The recap MLP builds its layers in a local Python list `modules` and then registers them as
#       `self.layers = torch.nn.ModuleList(modules)` before `self.layers.apply(_init_weights)`; every
#       layer is a submodule and trains.
# expect: none
# fails: none
# fix: none
import torch


def _init_weights(module):
    if isinstance(module, torch.nn.Linear):
        torch.nn.init.xavier_uniform_(module.weight)
        torch.nn.init.constant_(module.bias, 0)


class Mlp(torch.nn.Module):
    def __init__(self, in_features, layer_sizes, dropout=0.0):
        super().__init__()
        input_size = in_features
        modules = []
        for layer_size in layer_sizes[:-1]:
            modules.append(torch.nn.Linear(input_size, layer_size, bias=True))
            modules.append(torch.nn.ReLU())
            if dropout:
                modules.append(torch.nn.Dropout(dropout))
            input_size = layer_size
        modules.append(torch.nn.Linear(input_size, layer_sizes[-1], bias=True))
        self.layers = torch.nn.ModuleList(modules)
        self.layers.apply(_init_weights)

    def forward(self, x):
        net = x
        for layer in self.layers:
            net = layer(net)
        return net


torch.manual_seed(0)
mlp = Mlp(4, [8, 1])
optimizer = torch.optim.SGD(mlp.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
losses = []
for _ in range(20):
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(mlp(x), y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
assert losses[-1] < losses[0], "the MLP does not learn"
