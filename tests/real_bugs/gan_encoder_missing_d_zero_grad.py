# source: https://github.com/Hsintien-Ng/idinvert_pytorch-reproduced/issues/1
# what: The in-domain GAN inversion loop zeroes the encoder's optimizer before each update but never
#       calls `optimizer_D.zero_grad()`, so the discriminator steps on gradients summed over all
#       iterations.
# expect: GG401@29
# fails: no-learning
# fix: call `optimizer_D.zero_grad()` before `loss_D.backward()`
import torch
import torch.nn as nn

torch.manual_seed(0)
E = nn.Linear(6, 3)
G = nn.Linear(3, 6)
D = nn.Sequential(nn.Linear(6, 4), nn.LeakyReLU(0.2), nn.Linear(4, 1))
for p in G.parameters():
    p.requires_grad_(False)
optimizer_E = torch.optim.Adam(E.parameters(), lr=1e-4)
optimizer_D = torch.optim.Adam(D.parameters(), lr=1e-4)

for it in range(3):
    x_real = torch.randn(8, 6)
    optimizer_E.zero_grad()
    loss_E = nn.functional.mse_loss(G(E(x_real)), x_real) + nn.functional.softplus(-D(G(E(x_real)))).mean()
    loss_E.backward()
    optimizer_E.step()

    x_rec = G(E(x_real))
    loss_D = nn.functional.softplus(D(x_rec.detach())).mean() + nn.functional.softplus(-D(x_real)).mean()
    loss_D.backward()
    optimizer_D.step()

x_rec = G(E(x_real))
loss_D = nn.functional.softplus(D(x_rec.detach())).mean() + nn.functional.softplus(-D(x_real)).mean()
fresh = torch.autograd.grad(loss_D, D[0].weight)[0]
assert torch.allclose(D[0].weight.grad, fresh, rtol=0.05, atol=1e-4), (
    "optimizer_D steps on gradients from every earlier iteration"
)
