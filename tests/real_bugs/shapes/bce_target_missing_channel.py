# source: https://github.com/sunjesse/shape-attentive-unet/issues/8
# what: A segmentation network predicts (N, 1, H, W) probabilities while the masks are loaded as
#   (N, H, W); nn.BCELoss requires the same size and refuses.
# expect: GG509@16
# fails: Using a target size (torch.Size([1, 16, 16])) that is different to the input size (torch.Size([1, 1, 16, 16])) is deprecated
# fix: mask = mask.unsqueeze(1) (or squeeze the prediction's channel)
import torch
import torch.nn as nn

net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1), nn.Sigmoid())
criterion = nn.BCELoss()

image = torch.randn(1, 1, 16, 16)
mask = torch.randint(0, 2, (1, 16, 16)).float()
prob = net(image)
loss = criterion(prob, mask)
