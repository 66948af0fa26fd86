# source: https://github.com/pytorch/pytorch/issues/139598
# what: Recomputing an nn.Linear by hand as `data @ model.weight + model.bias` forgets that the weight is
#   stored as (out_features, in_features); with a square layer it silently gives other numbers, with
#   in_features=3, out_features=5 the product cannot be formed.
# expect: GG502@14
# fails: mat1 and mat2 shapes cannot be multiplied (2x3 and 5x3)
# fix: data @ model.weight.T + model.bias
import torch

model = torch.nn.Linear(3, 5)
data = torch.ones(2, 3)
with torch.no_grad():
    output = model(data)
    manual = (data @ model.weight) + model.bias
