# source: https://github.com/bayesiains/nflows/issues/89
# what: nflows' rational-quadratic coupling transform scales the spline parameters in its helper
#       `_piecewise_cdf` with `unnormalized_widths /= np.sqrt(self.transform_net.hidden_features)`; the
#       parameters are a slice of the transform net's output, and with the user's net ending in a ReLU
#       (which saves its output for backward) the in-place division makes `backward()` fail.
# expect: GG204@37
# fails: modified by an inplace operation
# fix: none (not reported, see GG204): out of place,
#       `unnormalized_widths = unnormalized_widths / np.sqrt(...)`
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class TransformNet(nn.Module):
    def __init__(self, in_features, out_features, hidden_features=16):
        super().__init__()
        self.hidden_features = hidden_features
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden_features), nn.Tanh(), nn.Linear(hidden_features, out_features), nn.ReLU()
        )

    def forward(self, x):
        return self.net(x)


class CouplingTransform(nn.Module):
    def __init__(self, features, num_bins=4):
        super().__init__()
        self.num_bins = num_bins
        self.transform_net = TransformNet(features // 2, (features - features // 2) * num_bins * 2)

    def _piecewise_cdf(self, inputs, transform_params):
        unnormalized_widths = transform_params[..., : self.num_bins]
        unnormalized_heights = transform_params[..., self.num_bins :]
        unnormalized_widths /= np.sqrt(self.transform_net.hidden_features)
        unnormalized_heights /= np.sqrt(self.transform_net.hidden_features)
        widths, heights = F.softmax(unnormalized_widths, dim=-1), F.softmax(unnormalized_heights, dim=-1)
        return inputs * (heights / widths).mean(-1)

    def forward(self, inputs):
        identity, transform = inputs.chunk(2, dim=-1)
        params = self.transform_net(identity).view(inputs.shape[0], transform.shape[1], self.num_bins * 2)
        return torch.cat([identity, self._piecewise_cdf(transform, params)], dim=-1)


torch.manual_seed(0)
flow = CouplingTransform(features=4)
flow(torch.randn(8, 4)).pow(2).mean().backward()
