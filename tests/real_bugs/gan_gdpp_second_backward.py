# source: https://github.com/facebookresearch/pytorch_GAN_zoo/issues/83
# what: With the GDPP option the generator first back-propagates its adversarial loss, then a GDPP loss
#       computed from the same discriminator features; the first `backward()` already freed that graph.
# expect: GG404@34
# fails: Trying to backward through the graph a second time
# fix: add the two losses and call `backward()` once (or `retain_graph=True` on the first)
import torch
import torch.nn as nn


def GDPPLoss(phiFake, phiReal):
    def compute_diversity(phi):
        phi = nn.functional.normalize(phi, p=2, dim=1)
        return phi @ phi.t()

    return nn.functional.mse_loss(compute_diversity(phiFake), compute_diversity(phiReal.detach()))


torch.manual_seed(0)
netG = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6))
features = nn.Sequential(nn.Linear(6, 5), nn.LeakyReLU(0.2))
decision = nn.Linear(5, 1)
optimizerG = torch.optim.Adam(netG.parameters(), lr=1e-3)

inputLatent = torch.randn(4, 4)
real = torch.randn(4, 6)
optimizerG.zero_grad()
predFakeG = netG(inputLatent)
phiGFake = features(predFakeG)
lossGFake = -decision(phiGFake).mean()
lossGFake.backward()
phiDReal = features(real)
lossGDPP = GDPPLoss(phiGFake, phiDReal)
lossGDPP.backward()
optimizerG.step()
