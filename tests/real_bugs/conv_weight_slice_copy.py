# source: https://github.com/PingoLH/FCHarDNet/issues/61
# what: A test script folds weights into a conv layer with `cconv.weight[:,:,:,:] = W[:,:,:,:]`; the
#       weight is a parameter (a leaf that requires grad), so the slice assignment raises.
# expect: GG203@17
# fails: a leaf Variable that requires grad is being used in an in-place operation
# fix: `with torch.no_grad(): cconv.weight.copy_(W)`
import torch
from torch import nn

torch.manual_seed(0)
conv = nn.Conv2d(3, 4, 3, bias=False)
bn = nn.BatchNorm2d(4).eval()
cconv = nn.Conv2d(3, 4, 3, bias=True)

W = conv.weight * (bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(-1, 1, 1, 1)
b = bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)
cconv.weight[:, :, :, :] = W[:, :, :, :]
cconv.bias[:] = b[:]
