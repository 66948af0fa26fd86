# source: https://github.com/pytorch/pytorch/issues/1291
# what: A three-layer net whose `__init__` defines nothing and whose `forward` builds
#       `torch.nn.Linear(D_in, H)(x)` etc. on the fly: `list(model.parameters())` is empty, so the
#       optimizer refuses it.
# expect: GG104@18 GG104@19 GG104@20
# fails: optimizer got an empty parameter list
# fix: create the three layers in `__init__` and call them in `forward`
import torch

D_in, H, D_out = 10, 5, 2


class ThreeLayerNet(torch.nn.Module):
    def __init__(self, D_in, H, D_out):
        super().__init__()

    def forward(self, x):
        h_relu = torch.nn.Linear(D_in, H)(x).clamp(min=0)
        h_relu = torch.nn.Linear(H, H)(h_relu).clamp(min=0)
        y_pred = torch.nn.Linear(H, D_out)(h_relu)
        return y_pred


torch.manual_seed(0)
model = ThreeLayerNet(D_in, H, D_out)
x, y = torch.randn(4, D_in), torch.randn(4, D_out)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
loss = torch.nn.functional.mse_loss(model(x), y)
loss.backward()
optimizer.step()
