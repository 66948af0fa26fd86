# source: https://github.com/allenai/allennlp/issues/4101
# what: AllenNLP's `FeedForward` keeps its activations in a plain list (`self._activations = activations`);
#       a parametric activation such as `PReLU` is never registered, so its slope is never updated.
# expect: GG103@17
# fails: no-learning
# fix: `self._activations = torch.nn.ModuleList(activations)`
import torch


class FeedForward(torch.nn.Module):
    def __init__(self, input_dim, num_layers, hidden_dims, activations):
        super().__init__()
        if not isinstance(hidden_dims, list):
            hidden_dims = [hidden_dims] * num_layers
        if not isinstance(activations, list):
            activations = [activations] * num_layers
        self._activations = activations
        input_dims = [input_dim] + hidden_dims[:-1]
        linear_layers = []
        for layer_input_dim, layer_output_dim in zip(input_dims, hidden_dims):
            linear_layers.append(torch.nn.Linear(layer_input_dim, layer_output_dim))
        self._linear_layers = torch.nn.ModuleList(linear_layers)

    def forward(self, inputs):
        output = inputs
        for layer, activation in zip(self._linear_layers, self._activations):
            output = activation(layer(output))
        return output


torch.manual_seed(0)
prelu = torch.nn.PReLU()
feedforward = FeedForward(4, 2, [4, 1], [prelu, torch.nn.Identity()])
optimizer = torch.optim.SGD(feedforward.parameters(), lr=0.1)
loss = feedforward(torch.randn(16, 4)).pow(2).mean()
loss.backward()
optimizer.step()
assert any(p is prelu.weight for p in feedforward.parameters()), "PReLU's slope is not a model parameter"
