"""GG101: a `backward` method on an `nn.Module`, which autograd never calls."""

from __future__ import annotations

import ast
from typing import Iterator

from gradguard.engine.finding import Applicability, Finding, TextEdit
from gradguard.engine.fixes import delete_statement
from gradguard.engine.index import FunctionNode, Unit, statement_start_line
from gradguard.engine.rule import Invalid, Message, Rule, Valid, split_message
from gradguard.engine.rule_helpers import fake_backward_methods
from gradguard.rules._gg101_convert_function import analyse_conversion, sub_layers_used


def _delete_method(unit: Unit, cls: ast.ClassDef, func: FunctionNode) -> TextEdit:
    """Delete the method's lines; when it is the class's last statement, also the blank
    lines before it (so no trailing blank line is left inside the class)."""
    index = cls.body.index(func)
    if index == len(cls.body) - 1 and index > 0:
        previous_end = cls.body[index - 1].end_lineno or cls.body[index - 1].lineno
        start = statement_start_line(func)
        if all(unit.source.line_text(n).strip() == "" for n in range(previous_end + 1, start)):
            end = func.end_lineno or func.lineno
            return TextEdit(previous_end + 1, 1, end + 1, 1, "")
    return delete_statement(unit, func)


def _called(unit: Unit, func: FunctionNode) -> bool:
    """Does any code (this unit, or anywhere in the file with arguments) call the method?"""
    name = func.name
    if name in unit.module.explicit_backward_calls:
        return True
    for call in unit.method_calls(name):
        receiver = call.func.value  # type: ignore[attr-defined]
        if name != "backward" or call.args:
            return True
        # `loss.backward()` is the tensor method; `self.backward()` / `super().backward()` is ours
        if isinstance(receiver, ast.Call) or (
            isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")
        ):
            return True
    return False


class FakeBackward(Rule):
    code = "GG101"
    needs_class = "module"  # starts from unit.module_classes() only
    name = "fake-backward"
    summary = "A `backward` method on an `nn.Module`: autograd never calls it."
    why = (
        "Autograd never calls a `backward` method on an `nn.Module`: `loss.backward()` differentiates what "
        "`forward` recorded, so this method is dead code."
    )
    message = Message(
        "`{method}` is never called by autograd\n`loss.backward()` differentiates the operations "
        "`forward` ran, and declared nn.Parameters already get their gradients from that."
    )
    explanation = """
    `nn.Module` defines no `backward` method for autograd to call. When you call
    `loss.backward()`, autograd walks the graph recorded while `forward` ran and differentiates each operation with its
    own built-in formula; it never looks for a `backward` (or `mm_backward`,
    `mmBackward`, ...) method on your module. Such a method is dead code: every
    `nn.Parameter` the module declares already receives its gradient in `.grad`
    through `forward`, and the optimizer uses that gradient. Anything the method
    computes or assigns (`self.weight.grad = ...`) only happens if your own code calls
    it, and then it fights autograd instead of replacing it.

    Delete the method. If you really need a custom gradient (a non-differentiable
    step, a numerically better formula), write a `torch.autograd.Function` with
    static `forward(ctx, ...)` and `backward(ctx, grad_output)` and call it with
    `MyFunction.apply(...)` from the module's `forward`: that `backward` is the one
    autograd calls.

    Not reported: `torch.autograd.Function.backward`, `backward` on classes that are
    not modules, Lightning's `LightningModule.backward(loss)` hook, helpers that call
    `loss.backward()` themselves, methods that `forward` calls or that are
    registered as hooks, and `@staticmethod` gradient formulas without `ctx` (they
    have no module to read or set gradients on: other code calls them by name).

    The fix removes the method. It is safe when nothing in the file calls it; when
    some code calls it explicitly (`layer.backward(grad)`), that call must go too,
    so the fix is offered as unsafe.

    When the module's `backward` gives every parameter `forward` uses a gradient and
    both methods can be translated, the fix instead converts them into a
    `torch.autograd.Function` that the module's `forward` calls with `.apply(...)`
    (unsafe: your hand-written math, right or wrong, then replaces autograd's; check
    it with `torch.autograd.gradcheck`). Removing the method stays available as an
    alternative; the conversion is offered as an alternative when the hand-written
    backward leaves some parameter without a gradient.

    **Fix safety.** Removing the method is safe when nothing in the file calls it: autograd never
    called it, so training is unchanged. When code calls it explicitly (`layer.backward(g)`), that
    call breaks, so the removal is unsafe. The conversion to a `torch.autograd.Function` is unsafe:
    your hand-written gradient then replaces autograd's, right or wrong. A `forward` that returns
    several outputs is converted when `backward` takes one gradient per output
    (`backward(self, grad_a, grad_b)`, as a Function's does). It is not offered for a module whose
    `forward` or `backward` uses a sub-layer (`self.fc(x)`): inside `Function.forward` autograd
    records nothing, so the sub-layer's parameters would get gradients only if your `backward`
    computed them, and a `backward` that covers only the module's own parameters would silently
    stop them learning; nor when `backward` reads anything the translation cannot map.
    """
    fix_applicability = Applicability.SAFE
    tags = ("unnecessary",)

    VALID = [
        Valid(
            """
            import torch

            class Clamp(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return x.clamp(min=0)

                @staticmethod
                def backward(ctx, grad_output):
                    (x,) = ctx.saved_tensors
                    return grad_output * (x > 0)
            """,
            note="a real autograd.Function backward",
        ),
        Valid(
            """
            import numpy as np
            import torch

            class DenseLayer:
                def forward(self, x):
                    self.x = x
                    return x @ self.w

                def backward(self, grad_output):
                    self.dw = self.x.T @ grad_output
                    return grad_output @ self.w.T
            """,
            note="a hand-written numpy-style layer, not an nn.Module",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class BiRNN(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fwd = nn.GRUCell(8, 8)
                    self.bwd = nn.GRUCell(8, 8)

                def forward(self, xs):
                    return torch.cat([self.forward_pass(xs), self.backward(xs)], dim=-1)

                def forward_pass(self, xs):
                    h = xs.new_zeros(xs.shape[1], 8)
                    for x in xs:
                        h = self.fwd(x, h)
                    return h

                def backward(self, xs):
                    h = xs.new_zeros(xs.shape[1], 8)
                    for x in reversed(xs):
                        h = self.bwd(x, h)
                    return h
            """,
            note="a method named backward that forward calls (reverse-direction pass)",
        ),
        Valid(
            """
            import lightning as L
            import torch

            class LitModel(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.net = torch.nn.Linear(4, 1)

                def training_step(self, batch, batch_idx):
                    x, y = batch
                    return torch.nn.functional.mse_loss(self.net(x), y)

                def backward(self, loss, *args, **kwargs):
                    loss.backward(retain_graph=True)
            """,
            note="Lightning calls LightningModule.backward itself",
        ),
        Valid(
            """
            import torch
            from torch import nn

            class Trainer(nn.Module):
                def __init__(self, net):
                    super().__init__()
                    self.net = net

                def forward(self, x, y):
                    return nn.functional.cross_entropy(self.net(x), y)

                def backward(self, loss):
                    loss.backward()
                    nn.utils.clip_grad_norm_(self.parameters(), 1.0)
            """,
            note="a helper that delegates to loss.backward()",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Probe(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)
                    self.fc.register_full_backward_hook(self.fc_backward)

                def forward(self, x):
                    return self.fc(x)

                def fc_backward(self, module, grad_input, grad_output):
                    print(grad_output[0].norm())
            """,
            note="registered as a backward hook: autograd does call it",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn


            def atan_backward(grad_output, x, alpha):
                return alpha / 2 / (1 + (torch.pi / 2 * alpha * x).square()) * grad_output


            class atan(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, alpha):
                    ctx.save_for_backward(x)
                    ctx.alpha = alpha
                    return (x >= 0).to(x)

                @staticmethod
                def backward(ctx, grad_output):
                    (x,) = ctx.saved_tensors
                    return atan_backward(grad_output, x, ctx.alpha), None


            class ATan(nn.Module):
                def __init__(self, alpha=2.0):
                    super().__init__()
                    self.alpha = alpha

                def forward(self, x):
                    return atan.apply(x, self.alpha)

                @staticmethod
                def backward(grad_output, x, alpha):
                    return atan_backward(grad_output, x, alpha)


            SURROGATES = {0: ATan}
            """,
            run="""
            x = torch.randn(5, requires_grad=True)
            ATan()(x).sum().backward()
            assert torch.allclose(x.grad, SURROGATES[0].backward(torch.ones(5), x.detach(), 2.0))
            """,
            note="a static gradient formula without `ctx`, called by name by other code; the module's own "
            "gradient comes from an autograd.Function (dev10 spikingjelly surrogate)",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class ScaledLinear(nn.Module):
                def __init__(self, n_in, n_out):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.1)
                    self.bias = nn.Parameter(torch.zeros(n_out))

                def forward(self, x):
                    return x @ self.weight + self.bias

                def backward(self, grad_output):
                    self.bias.grad = grad_output.sum(0)
                    return grad_output @ self.weight.T
            """,
            lines=[13],
            fixed="""
            import torch
            import torch.nn as nn

            class ScaledLinear(nn.Module):
                def __init__(self, n_in, n_out):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.1)
                    self.bias = nn.Parameter(torch.zeros(n_out))

                def forward(self, x):
                    return x @ self.weight + self.bias
            """,
            run="""
            layer = ScaledLinear(4, 3)
            x = torch.randn(8, 4)
            (layer(x) ** 2).mean().backward()
            """,
            check_fixed="""
            assert layer.weight.grad is not None and layer.weight.grad.shape == (4, 3)
            assert layer.bias.grad is not None and layer.bias.grad.abs().sum() > 0
            """,
        ),
        Invalid(
            """
            import torch
            from torch.nn import Module, Linear

            class MyModule(Module):
                def __init__(self, in_features, out_features):
                    super().__init__()
                    self.linear = Linear(in_features, out_features)

                def forward(self, x):
                    return self.linear(x.reshape(-1, 10))

                def mmBackward(self, grad_output):
                    grad_input = torch.mm(grad_output, self.linear.weight.T)
                    return grad_input
            """,
            lines=[12],
            fixed="""
            import torch
            from torch.nn import Module, Linear

            class MyModule(Module):
                def __init__(self, in_features, out_features):
                    super().__init__()
                    self.linear = Linear(in_features, out_features)

                def forward(self, x):
                    return self.linear(x.reshape(-1, 10))
            """,
            run="""
            m = MyModule(10, 5)
            m(torch.randn(4, 10)).sum().backward()
            """,
            check_fixed="assert m.linear.weight.grad is not None",
            note="another import style; a *Backward-named method",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class MyLinearLayer(nn.Module):
                def __init__(self, in_features, out_features):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(in_features, out_features))

                def forward(self, x):
                    self.x = x
                    return torch.mm(x, self.weight)

                def backward(self, grad_output):
                    return torch.mm(grad_output, self.weight.t())

            layer = MyLinearLayer(10, 5)
            out = layer(torch.randn(1, 10))
            grad_input = layer.backward(torch.ones_like(out))
            """,
            lines=[13],
            fixed="""
            import torch
            import torch.nn as nn

            class MyLinearLayer(nn.Module):
                def __init__(self, in_features, out_features):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(in_features, out_features))

                def forward(self, x):
                    self.x = x
                    return torch.mm(x, self.weight)

            layer = MyLinearLayer(10, 5)
            out = layer(torch.randn(1, 10))
            grad_input = layer.backward(torch.ones_like(out))
            """,
            note="called explicitly elsewhere in the file: the removal is offered as unsafe",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class MyLinear(nn.Module):
                def __init__(self, n_in, n_out):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.1)
                    self.bias = nn.Parameter(torch.zeros(n_out))

                def forward(self, x):
                    self.x = x  # store for backward pass
                    return x @ self.weight + self.bias

                def backward(self, grad_output):
                    self.weight.grad = self.x.t() @ grad_output
                    self.bias.grad = grad_output.sum(0)
                    return grad_output @ self.weight.t()
            """,
            lines=[14],
            fixed="""
            import torch
            import torch.nn as nn

            class MyLinearFunction(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, weight, bias):
                    # store for backward pass
                    ctx.save_for_backward(x, weight)
                    return x @ weight + bias

                @staticmethod
                def backward(ctx, grad_output):
                    x, weight = ctx.saved_tensors
                    grad_weight = x.t() @ grad_output
                    grad_bias = grad_output.sum(0)
                    return grad_output @ weight.t(), grad_weight, grad_bias


            class MyLinear(nn.Module):
                def __init__(self, n_in, n_out):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.1)
                    self.bias = nn.Parameter(torch.zeros(n_out))

                def forward(self, x):
                    return MyLinearFunction.apply(x, self.weight, self.bias)
            """,
            run="""
            layer = MyLinear(4, 3)
            x = torch.randn(8, 4, requires_grad=True)
            (layer(x) ** 2).mean().backward()
            """,
            check_fixed="""
            assert type(layer(x).grad_fn).__name__ == "MyLinearFunctionBackward"
            w = layer.weight.detach().clone().requires_grad_()
            b = layer.bias.detach().clone().requires_grad_()
            x_ref = x.detach().clone().requires_grad_()
            ((x_ref @ w + b) ** 2).mean().backward()
            assert torch.allclose(layer.weight.grad, w.grad) and torch.allclose(layer.bias.grad, b.grad)
            assert torch.allclose(x.grad, x_ref.grad)
            """,
            note="backward gives every parameter a gradient: the fix converts it to a torch.autograd.Function",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class ScaleShift(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.scale = nn.Parameter(torch.randn(n))
                    self.shift = nn.Parameter(torch.randn(n))

                def forward(self, x):
                    self.x = x
                    return x * self.scale, x + self.shift

                def backward(self, grad_scaled, grad_shifted):
                    self.scale.grad = (grad_scaled * self.x).sum(0)
                    self.shift.grad = grad_shifted.sum(0)
                    return grad_scaled * self.scale + grad_shifted
            """,
            lines=[14],
            fixed="""
            import torch
            import torch.nn as nn

            class ScaleShiftFunction(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, scale, shift):
                    ctx.save_for_backward(x, scale)
                    return x * scale, x + shift

                @staticmethod
                def backward(ctx, grad_scaled, grad_shifted):
                    x, scale = ctx.saved_tensors
                    grad_scale = (grad_scaled * x).sum(0)
                    grad_shift = grad_shifted.sum(0)
                    return grad_scaled * scale + grad_shifted, grad_scale, grad_shift


            class ScaleShift(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.scale = nn.Parameter(torch.randn(n))
                    self.shift = nn.Parameter(torch.randn(n))

                def forward(self, x):
                    return ScaleShiftFunction.apply(x, self.scale, self.shift)
            """,
            run="""
            layer = ScaleShift(3)
            x = torch.randn(4, 3, requires_grad=True)
            a, b = layer(x)
            (a.pow(2).sum() + b.sum()).backward()
            """,
            check_fixed="""
            assert type(a.grad_fn).__name__ == "ScaleShiftFunctionBackward"
            s = layer.scale.detach().clone().requires_grad_()
            t = layer.shift.detach().clone().requires_grad_()
            x_ref = x.detach().clone().requires_grad_()
            ((x_ref * s).pow(2).sum() + (x_ref + t).sum()).backward()
            assert torch.allclose(layer.scale.grad, s.grad) and torch.allclose(layer.shift.grad, t.grad)
            assert torch.allclose(x.grad, x_ref.grad)
            """,
            note="several outputs: backward takes one gradient per output, as a Function's does",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for cls in unit.module_classes():
            for func in fake_backward_methods(unit, cls):
                fix = self.make_fix(
                    f"Remove `{func.name}` (autograd never calls it)",
                    lambda c=cls, f=func: [_delete_method(unit, c, f)],
                    Applicability.UNSAFE if _called(unit, func) else Applicability.SAFE,
                )
                alternatives = []
                conversion = analyse_conversion(unit, cls) if func.name == "backward" else None
                if conversion is not None:
                    # converting an incomplete backward would stop some parameters learning
                    if conversion.complete:
                        fix, alternatives = conversion.fix, [fix]
                    else:
                        alternatives = [conversion.fix]
                detail = ""
                if conversion is None and func.name == "backward":
                    layers = sub_layers_used(unit, cls)
                    if layers:
                        _, rest = split_message(self.message)
                        named = ", ".join(f"`self.{layer}`" for layer in layers[:3])
                        detail = (
                            f"{rest} It is not converted to a `torch.autograd.Function`: it uses the sub-layer "
                            f"{named}, whose parameters would then learn only from this `backward`."
                        )
                yield self.finding(
                    unit,
                    func,
                    self.message.format(method=func.name),
                    fix=fix,
                    alternatives=alternatives,
                    detail=detail,
                )
