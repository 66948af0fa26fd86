# source: https://github.com/LZGMatrix/BOP19_CDPN_2019ICCV/issues/4
# what: A training script copied from the test code turns the coordinate-bin logits into coordinates
#       with `torch.argmax` before computing the loss; argmax has no gradient and `backward()` fails.
# expect: GG303@24 GG303@25 GG303@26
# fails: does not require grad
# fix: none
import torch
import torch.nn as nn

torch.manual_seed(0)
coor_bin = 8
head = nn.Conv2d(4, 3 * (coor_bin + 1), 1)
optimizer = torch.optim.Adam(head.parameters(), lr=1e-4)
feat = torch.randn(1, 4, 5, 5)
gt_coor = torch.rand(5, 5, 3) * 2 - 1

output_coor = head(feat)
output_coor_x_, output_coor_y_, output_coor_z_ = output_coor.chunk(3, dim=1)
output_coor_x_ = output_coor_x_.squeeze()
output_coor_y_ = output_coor_y_.squeeze()
output_coor_z_ = output_coor_z_.squeeze()
output_coor_ = torch.stack(
    [
        torch.argmax(output_coor_x_, axis=0),
        torch.argmax(output_coor_y_, axis=0),
        torch.argmax(output_coor_z_, axis=0),
    ],
    axis=2,
)
output_coor_[output_coor_ == coor_bin] = 0
output_coor_ = 2.0 * output_coor_.float() / (63.0 - 1.0) - 1.0
loss = nn.functional.l1_loss(output_coor_, gt_coor)
optimizer.zero_grad()
loss.backward()
optimizer.step()
