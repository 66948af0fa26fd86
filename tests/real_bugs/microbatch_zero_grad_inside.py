# source: https://github.com/bytetriper/RAE/issues/67
# what: With gradient accumulation over micro-batches, `optimizer.zero_grad(set_to_none=True)` sits inside
#       the micro-batch loop: each micro-batch erases the gradients of the previous ones, and the step
#       after the loop uses only the last micro-batch.
# expect: GG402@20
# fails: no-learning
# fix: move `optimizer.zero_grad(set_to_none=True)` before the micro-batch loop
import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
grad_accum_steps = 4
batch = torch.randn(16, 4)
target = torch.randn(16, 1)

micro_batches = list(zip(batch.chunk(grad_accum_steps), target.chunk(grad_accum_steps)))
for micro_x, micro_y in micro_batches:
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.mse_loss(model(micro_x), micro_y) / grad_accum_steps
    loss.backward()
optimizer.step()

full = torch.autograd.grad(nn.functional.mse_loss(model(batch), target), model.weight)[0]
assert torch.allclose(model.weight.grad, full, rtol=0.05, atol=1e-4), (
    "the step used the last micro-batch only"
)
