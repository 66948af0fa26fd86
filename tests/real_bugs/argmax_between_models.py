# source: https://github.com/pytorch/pytorch/issues/1339
# what: The output of a first module is turned into class indices with `torch.max(y_p, 1)[1]` and fed
#       to a second module; backward reaches only the second module, and reading the first module's
#       `param.grad.data` fails because the gradient is None.
# expect: GG303@17
# fails: 'NoneType' object has no attribute 'data'
# fix: none
import torch
import torch.nn as nn

torch.manual_seed(0)
first_model = nn.Linear(4, 3)
second_model = nn.Sequential(nn.Embedding(3, 2), nn.Flatten(), nn.Linear(2, 1))
x, y = torch.randn(5, 4), torch.randn(5, 1)

y_p = first_model(x)
y_p = torch.max(y_p, 1)[1]
out = second_model(y_p.view(-1, 1))
loss = nn.functional.mse_loss(out, y)

first_model.zero_grad()
second_model.zero_grad()
loss.backward()
for param in second_model.parameters():
    print("grad data: ", param.grad.data)
for param in first_model.parameters():
    print("grad data: ", param.grad.data)
