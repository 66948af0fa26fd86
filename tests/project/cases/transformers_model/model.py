import torch
import torch.nn as nn
from transformers import PreTrainedModel


class TinyModel(PreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.heads = [nn.Linear(4, 4) for _ in range(2)]

    def forward(self, x):
        return torch.stack([head(x) for head in self.heads]).sum(0)

    def backward(self, grad_output):
        return grad_output * 0.5
