"""GG105: `self.x = x` in `forward`, kept for a hand-written `backward` autograd never calls."""

from __future__ import annotations

import ast
from typing import Iterator

from gradguard.engine.finding import Finding, Severity
from gradguard.engine.index import AttributeInfo, FunctionNode, Unit, self_attribute, self_name
from gradguard.engine.interpreter import ATTRIBUTE_STORE
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.rule_helpers import fake_backward_methods
from gradguard.engine.values import NO

# Tensor methods and attributes whose result is not a tensor (or not part of the graph).


class TensorStashedOnSelf(Rule):
    code = "GG105"
    needs_class = "module"  # starts from unit.module_classes() only
    name = "tensor-stashed-on-self"
    summary = (
        "A tensor from `forward` stored on `self` for a hand-written `backward` that autograd never calls."
    )
    why = (
        "Autograd never calls the module's `backward` and already saves what its own formulas need; the "
        "attribute only keeps the batch's tensor (and its graph) alive until the next call."
    )
    message = Message(
        "`self.{attr}` keeps a tensor from `forward` for `{method}`, which autograd never calls\n"
        "It stays referenced (with the graph that produced it) until the next forward."
    )
    explanation = """
    Storing `self.x = x` in `forward` "for the backward pass" is a habit from
    hand-written layers. In an `nn.Module` it achieves nothing: autograd never calls
    the module's `backward` (or `mm_backward`, ...) method, and it already saves every
    tensor its own backward formulas need, freeing them after `loss.backward()`.

    What the attribute does do is keep the tensor, and the autograd graph that
    produced it, referenced from the module until the next call to `forward`
    replaces it: one batch's activations stay alive longer than necessary (with the
    whole graph, if `forward` ran without `loss.backward()` following, e.g. in
    evaluation without `torch.no_grad()`).

    Remove the stash together with the fake backward. If you need the value later
    (logging, visualisation), store `x.detach()`; if you need a custom gradient, use
    `ctx.save_for_backward(x)` in a `torch.autograd.Function`.

    Only stashes that a `backward`-like method reads are reported: keeping an
    auxiliary loss (`self.aux_loss = ...`) or attention maps for the training loop,
    caching non-tensors (`self.step += 1`, shapes, flags) and detached copies are fine.
    """
    severity = Severity.INFORMATION

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class ContentLoss(nn.Module):
                def __init__(self, target):
                    super().__init__()
                    self.target = target.detach()
                    self.step = 0

                def forward(self, x):
                    self.loss = F.mse_loss(x, self.target)
                    self.step += 1
                    return x
            """,
            note="a loss kept for the training loop (the style-transfer tutorial pattern)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class MyReshapeLayer(nn.Module):
                def __init__(self, *shape):
                    super().__init__()
                    self.shape = shape

                def forward(self, x):
                    self.original_shape = x.shape
                    self.last = x.detach()
                    return x.view(*self.shape)

                def backward(self, grad_output):
                    return grad_output.view(*self.original_shape) + 0 * self.last
            """,
            note="a shape and a detached copy are not graph-holding tensors",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Attention(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.qkv = nn.Linear(16, 48)

                def forward(self, x):
                    q, k, v = self.qkv(x).chunk(3, dim=-1)
                    self.attn = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
                    return self.attn @ v

                def attention_map(self):
                    return self.attn
            """,
            note="attention weights kept for visualisation; no fake backward",
        ),
        Valid(
            """
            import torch
            from torch import nn

            class Act(nn.Module):
                def forward(self, x):
                    with torch.no_grad():
                        self.x = x * 1.0
                    return torch.sigmoid(x)

                def backward(self, grad_output):
                    s = torch.sigmoid(self.x)
                    return grad_output * s * (1 - s)
            """,
            note="stored under no_grad: no graph is kept",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class MyActivation(nn.Module):
                def forward(self, x):
                    self.x = x
                    return torch.sigmoid(x)

                def backward(self, grad_output):
                    return grad_output * torch.sigmoid(self.x) * (1 - torch.sigmoid(self.x))
            """,
            lines=[6],
            run="""
            act = MyActivation()
            x = torch.randn(2, 5, requires_grad=True)
            act(x).sum().backward()
            s = torch.sigmoid(x.detach())
            # autograd's own sigmoid backward produced the gradient; the stash was never used
            assert torch.allclose(x.grad, s * (1 - s))
            assert act.x is x
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class TwoLayer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(8, 16)
                    self.fc2 = nn.Linear(16, 1)

                def forward(self, inputs: torch.Tensor, scale: float = 1.0):
                    self.inputs = inputs
                    self.scale = scale
                    hidden = F.relu(self.fc1(inputs))
                    self.hidden = hidden
                    self.n = hidden.shape[0]
                    return self.fc2(hidden) * scale

                def mm_backward(self, grad_out):
                    grad_hidden = grad_out @ self.fc2.weight * (self.hidden > 0)
                    return grad_hidden @ self.fc1.weight, self.inputs, self.n, self.scale
            """,
            lines=[12, 15],
            run="""
            net = TwoLayer()
            net(torch.randn(4, 8)).sum().backward()
            # the stashed intermediate still holds its graph after backward
            assert net.hidden.grad_fn is not None
            assert net.fc1.weight.grad is not None
            """,
            note="the input and an intermediate; the float, the shape are not tensors",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for cls in unit.module_classes():
            fakes = fake_backward_methods(unit, cls)
            if not fakes:
                continue
            read = _attributes_read(fakes)
            if not read:
                continue
            attributes = unit.class_attributes(cls)
            for func in unit.methods_reachable_from(cls, "forward"):
                if func in fakes:
                    continue
                yield from self._check_method(unit, func, read, attributes)

    def _check_method(
        self,
        unit: Unit,
        func: FunctionNode,
        read: dict[str, str],
        attributes: dict[str, AttributeInfo],
    ) -> Iterator[Finding]:
        me = self_name(func) or "self"
        flow = unit.semantics.flow(func)
        for event in flow.events_of(ATTRIBUTE_STORE):
            target = event.target
            if not (
                isinstance(event.node, (ast.Assign, ast.AnnAssign))
                and isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == me
                and target.attr in read
            ):
                continue
            value = event.value
            if not value.is_tensor or event.nograd is not None:
                continue
            if value.cuts and not value.sources and value.grad == NO:
                continue  # detached: it holds no graph
            yield self.finding(
                unit, event.node, self.message.format(attr=target.attr, method=read[target.attr])
            )


def _statements(func: FunctionNode) -> list[ast.stmt]:
    """The method's statements in source order (nested functions excluded)."""
    found: list[ast.stmt] = []
    todo: list[ast.AST] = list(reversed(func.body))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.stmt):
            found.append(node)
            children = [
                c
                for c in ast.iter_child_nodes(node)
                if isinstance(c, ast.stmt) or isinstance(c, ast.excepthandler)
            ]
            todo.extend(reversed(children))
        elif isinstance(node, ast.excepthandler):
            todo.extend(reversed(node.body))
    return found


def _attributes_read(fakes: list[FunctionNode]) -> dict[str, str]:
    read: dict[str, str] = {}
    for func in fakes:
        me = self_name(func) or "self"
        for node in ast.walk(func):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                attr = self_attribute(node, me)
                if attr is not None:
                    read.setdefault(attr, func.name)
    return read
