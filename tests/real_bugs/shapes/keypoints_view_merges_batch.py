# source: https://github.com/udacity/P1_Facial_Keypoints/issues/2
# what: Facial keypoints of a batch, shape (10, 68, 2), are flattened with key_pts.view(1, -1): the 10
#   samples merge into one row of 1360 values, which cannot be compared with the network's (10, 136).
# expect: GG505@15
# fails: The size of tensor a (136) must match the size of tensor b (1360) at non-singleton dimension 1
# fix: key_pts = key_pts.view(key_pts.size(0), -1)
import torch
import torch.nn as nn

net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 136))
criterion = nn.MSELoss()

images = torch.randn(10, 1, 32, 32)
key_pts = torch.randn(10, 68, 2)
key_pts = key_pts.view(1, -1)
output_pts = net(images)
loss = criterion(output_pts, key_pts)
