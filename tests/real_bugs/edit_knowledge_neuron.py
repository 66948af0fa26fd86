# source: https://github.com/Hunter-DDM/knowledge-neurons/issues/14
# what: Knowledge editing subtracts and adds embeddings into columns of a BERT output projection,
#       `model...dense.weight[:, pos] -= ori_pred_emb * lambda_list_1[i]`, outside `torch.no_grad()`.
# expect: GG203@48
# fails: a view of a leaf Variable that requires grad is being used in an in-place operation
# fix: do the edit under `with torch.no_grad():`
import torch
from torch import nn


class Output(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(6, 4)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.output = Output()


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList([Layer() for _ in range(2)])


class Bert(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.bert = Bert()


torch.manual_seed(0)
model = Model()
ori_pred_emb = torch.randn(4)
tgt_emb = torch.randn(4)
lambda_list_1, lambda_list_2 = [0.5, 0.5], [1.0, 1.0]
kn_bag = [(0, 2), (1, 3)]
for i, (layer, pos) in enumerate(kn_bag):
    model.bert.encoder.layer[layer].output.dense.weight[:, pos] -= ori_pred_emb * lambda_list_1[i]
    model.bert.encoder.layer[layer].output.dense.weight[:, pos] += tgt_emb * lambda_list_2[i]
