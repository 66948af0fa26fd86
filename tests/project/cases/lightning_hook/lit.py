import lightning as L
import torch.nn as nn


class LitModel(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(4, 4), nn.Linear(4, 1)]

    def training_step(self, batch, batch_idx):
        x, y = batch
        return ((self.layers[1](self.layers[0](x)) - y) ** 2).mean()

    def backward(self, loss, *args, **kwargs):
        return loss
