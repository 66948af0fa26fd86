# source: https://github.com/pytorch/examples/issues/116
# what: The DCGAN step as the PyTorch example writes it: the discriminator sees `fake.detach()`, the
#       generator step reuses `fake` and back-propagates once through it.
# expect: none
# fails: none
# fix: none
import torch
import torch.nn as nn

torch.manual_seed(0)
nz = 4
netG = nn.Sequential(nn.Linear(nz, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh())
netD = nn.Sequential(nn.Linear(6, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Sigmoid())
criterion = nn.BCELoss()
optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-3)
optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-3)
real_label, fake_label = 1.0, 0.0
g_before = netG[0].weight.detach().clone()

for i in range(3):
    real_cpu = torch.randn(4, 6)
    batch_size = real_cpu.size(0)
    netD.zero_grad()
    label = torch.full((batch_size, 1), real_label)
    errD_real = criterion(netD(real_cpu), label)
    errD_real.backward()
    noise = torch.randn(batch_size, nz)
    fake = netG(noise)
    label.fill_(fake_label)
    errD_fake = criterion(netD(fake.detach()), label)
    errD_fake.backward()
    optimizerD.step()

    netG.zero_grad()
    label.fill_(real_label)
    errG = criterion(netD(fake), label)
    errG.backward()
    optimizerG.step()

assert not torch.equal(g_before, netG[0].weight), "the generator did not change"
