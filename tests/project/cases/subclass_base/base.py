import torch.nn as nn


class Base(nn.Module):
    def describe(self):
        return type(self).__name__
