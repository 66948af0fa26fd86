# source: https://github.com/BaiTheBest/SparseLLM/issues/13
# what: A slice of a matrix is made trainable with `.requires_grad_()` at the end of a conversion chain
#       and then updated by hand with `s_batch -= s_learning_rate * s_batch.grad` outside `no_grad`.
# expect: GG203@19
# fails: a leaf Variable that requires grad is being used in an in-place operation
# fix: `with torch.no_grad(): s_batch -= s_learning_rate * s_batch.grad` (or rebind out of place)
import torch

torch.manual_seed(0)
s = torch.randn(4, 6, dtype=torch.float16)
target = torch.randn(4, 3)
s_learning_rate = 0.1
chunk = slice(0, 3)

s_batch = s[:, chunk].float().requires_grad_()
for _ in range(2):
    loss_s = ((s_batch - target) ** 2).mean()
    loss_s.backward()
    s_batch -= s_learning_rate * s_batch.grad
    s_batch.grad.zero_()
s[:, chunk] = s_batch.detach().to(dtype=torch.float16)
