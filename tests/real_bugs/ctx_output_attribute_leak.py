# source: https://github.com/pytorch/pytorch/issues/25340
# source: https://github.com/pytorch/pytorch/issues/5569
# what: A custom Function keeps its output on the context (`ctx.y = y`) instead of
#       `ctx.save_for_backward(y)`; output -> grad_fn (ctx) -> output is a reference cycle through C++
#       that reference counting cannot free: each call's context and tensors stay alive after the output
#       is dropped, until a cyclic garbage collection happens to run (a leak in long training loops).
# expect: GG603@21
# fails: outlives its output
# fix: `ctx.save_for_backward(y)` and read it back with `ctx.saved_tensors` in `backward`
import gc
import weakref

import torch


class Test(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, refs):
        refs.append(weakref.ref(ctx))
        y = x.clone()
        ctx.y = y
        return y

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * (ctx.y > 0), None


gc.disable()  # observe what reference counting frees on its own
refs = []  # weakrefs to ctx objects
x = torch.rand(8, 8, requires_grad=True)
y = Test.apply(x, refs)
del y
alive = [r() is not None for r in refs]
gc.enable()
assert not any(alive), "the Function's ctx outlives its output (only the cycle collector frees it)"
