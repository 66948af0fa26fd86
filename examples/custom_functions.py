"""Custom `torch.autograd.Function`s written the wrong way (GG6xx).

Bugs here:
  * GG601 `ScaledTanh.backward` returns one gradient for two inputs: "function
    ScaledTanhBackward returned an incorrect number of gradients (expected 2, got 1)".
  * GG602 `LegacyClamp` has a non-static `forward`/`backward`, and is called as
    `LegacyClamp()(x)`: "Legacy autograd function with non-static forward method is
    deprecated"; `StraightThrough.forward(None, x)` bypasses the custom backward.
  * GG603 `Swish` keeps its input and output on `ctx` instead of `save_for_backward`:
    in-place changes go unnoticed and the output creates a reference cycle.
`Exp` at the bottom is the correct pattern and stays silent.
"""

import torch


class ScaledTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        ctx.scale = scale
        return y * scale

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * ctx.scale * (1 - y * y)


class LegacyClamp(torch.autograd.Function):
    def forward(self, x):
        return x.clamp(0, 1)

    def backward(self, grad_output):
        return grad_output


class StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


class Swish(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        s = torch.sigmoid(x)
        out = x * s
        ctx.x = x
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, grad_output):
        s = torch.sigmoid(ctx.x)
        return grad_output * (ctx.out + s * (1 - ctx.out))


def quantize(x):
    clipped = LegacyClamp()(x)
    return StraightThrough.forward(None, clipped)


def activation(x):
    return ScaledTanh.apply(x, 2.0) + Swish.apply(x)


# -- correct: silent ----------------------------------------------------------------------------


class Exp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        result = x.exp()
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        (result,) = ctx.saved_tensors
        return grad_output * result
