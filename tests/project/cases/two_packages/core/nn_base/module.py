from torch import nn


class CoreModule(nn.Module):
    pass
