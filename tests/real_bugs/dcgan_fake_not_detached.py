# source: https://github.com/pytorch/examples/issues/116
# what: A DCGAN written without `fake.detach()` in the discriminator step: `errD_fake.backward()` frees
#       the generator's graph, and the generator step's `errG.backward()` goes back through it.
# expect: GG404@39
# fails: Trying to backward through the graph a second time
# fix: `output = netD(fake.detach())` in the discriminator step
import torch
import torch.nn as nn

torch.manual_seed(0)
nz = 4
netG = nn.Sequential(nn.Linear(nz, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh())
netD = nn.Sequential(nn.Linear(6, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Sigmoid())
criterion = nn.BCELoss()
optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4)
optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4)
real_label, fake_label = 1.0, 0.0

real_cpu = torch.randn(4, 6)
batch_size = real_cpu.size(0)
netD.zero_grad()
label = torch.full((batch_size, 1), real_label)
output = netD(real_cpu)
errD_real = criterion(output, label)
errD_real.backward()

noise = torch.randn(batch_size, nz)
fake = netG(noise)
label.fill_(fake_label)
output = netD(fake)
errD_fake = criterion(output, label)
errD_fake.backward()
optimizerD.step()

netG.zero_grad()
label.fill_(real_label)
output = netD(fake)
errG = criterion(output, label)
errG.backward()
optimizerG.step()
