# source: https://github.com/wangle53/CSA-CDGAN/issues/5
# what: In the generator update the discriminator's prediction is taken with `.detach()`, so the
#       adversarial term of the generator loss is a constant: only the L1 reconstruction term trains it.
# expect: GG301@22
# fails: no-learning
# fix: compute `pred_fake = netD(fake)` without `.detach()` in the generator step
import torch
import torch.nn as nn

torch.manual_seed(0)
netg = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4))
netd = nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Sigmoid())
l_adv = nn.BCELoss()
l_con = nn.L1Loss()
optimizer_g = torch.optim.Adam(netg.parameters(), lr=2e-4)

x, gt = torch.randn(8, 4), torch.randn(8, 4)
real_label = torch.ones(8, 1)

optimizer_g.zero_grad()
fake = netg(x)
pred_fake = netd(fake).detach()
err_g_adv = l_adv(pred_fake, real_label)
err_g_con = l_con(fake, gt)
err_g = err_g_adv + 50 * err_g_con
err_g.backward()
optimizer_g.step()
assert err_g_adv.requires_grad, "the adversarial loss does not reach the generator"
