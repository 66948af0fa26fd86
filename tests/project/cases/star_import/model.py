from common import *


class Net(Base):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(4, 4) for _ in range(3)]

    def forward(self, x):
        y = torch.tanh(self.layers[0](x))
        y.mul_(2)
        return y
