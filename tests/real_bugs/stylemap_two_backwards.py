# source: https://github.com/naver-ai/StyleMapGAN/issues/16
# what: The generator step gets `adv_loss, w_rec_loss, stylecode = model(None, "G")` from one forward
#       pass and back-propagates the two losses separately; the second `backward()` finds the shared
#       part of the graph freed.
# expect: GG404@45
# fails: Trying to backward through the graph a second time
# fix: `(g_loss + w_rec_loss * args.lambda_w_rec_loss).backward()` once
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.mapping = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
        self.generator = nn.Linear(4, 6)
        self.encoder = nn.Linear(6, 4)
        self.discriminator = nn.Linear(6, 1)

    def forward(self, real_img, mode):
        if mode == "G":
            z = torch.randn(4, 4)
            stylecode = self.mapping(z)
            fake_img = self.generator(stylecode)
            adv_loss = nn.functional.softplus(-self.discriminator(fake_img))
            w_rec_loss = (self.encoder(fake_img) - stylecode).pow(2).mean(1, keepdim=True)
            return adv_loss, w_rec_loss, stylecode


class Args:
    lambda_adv_loss = 1.0
    lambda_w_rec_loss = 1.0


torch.manual_seed(0)
args = Args()
model = Model()
g_optim = torch.optim.Adam(model.parameters(), lr=2e-3)
adv_loss, w_rec_loss, stylecode = model(None, "G")
adv_loss = adv_loss.mean()
w_rec_loss = w_rec_loss.mean()
g_loss = adv_loss * args.lambda_adv_loss
g_optim.zero_grad()
g_loss.backward()
(w_rec_loss * args.lambda_w_rec_loss).backward()
g_optim.step()
