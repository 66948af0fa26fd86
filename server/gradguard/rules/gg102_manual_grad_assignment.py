"""GG102: `self.weight.grad = ...` computed by hand inside a module."""

from __future__ import annotations

import ast
from typing import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Finding
from gradguard.engine.index import AttributeInfo, FunctionNode, Unit, self_attribute, self_name
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.rule_helpers import fake_backward_methods

_PARAMETER_KINDS = ("parameter", "grad_tensor")
_PARAMETER_ITERATORS = {"parameters", "named_parameters"}
# Values that zero or copy a gradient rather than compute one.
_COPIES = torch_facts.CASTS | torch_facts.SHAPED_AS | {"detach"}
_ZEROING = torch_facts.ZEROING_FACTORIES


class ManualGradAssignment(Rule):
    code = "GG102"
    needs_class = "module"  # starts from unit.module_classes() only
    name = "manual-grad-assignment"
    summary = "A parameter's `.grad` assigned by hand inside a module: autograd already computes it."
    why = (
        "`loss.backward()` already stores each parameter's gradient in `.grad`: a value assigned before it "
        "gets autograd's gradient added on top, one assigned after it replaces the correct gradient."
    )
    message = Message(
        "Hand-computed gradient assigned to `{target}`\n"
        "Autograd already computes it in `loss.backward()`{where}."
    )
    explanation = """
    Every `nn.Parameter` of a module gets its gradient from autograd: `loss.backward()`
    differentiates the operations `forward` performed and stores the result in
    `param.grad`. Assigning `param.grad = <your formula>` does not take part in that:

    * in a `backward` / `mm_backward` method of an `nn.Module` the line never runs,
      because autograd never calls such a method;
    * run before `loss.backward()`, autograd adds its own gradient on top of your value
      (`.grad` accumulates), so the optimizer sees the sum;
    * run after `loss.backward()`, it throws autograd's correct gradient away.

    Let autograd do it: delete the assignment (and the method computing it), and read
    `param.grad` after `loss.backward()` if you want to inspect it. To change the
    gradient on purpose, use `param.register_hook(lambda g: ...)`, or write a
    `torch.autograd.Function` with its own `backward`.

    Not reported: `param.grad = None`, rescaling or clipping the existing gradient
    (`p.grad = p.grad / n`), gradients from `torch.autograd.grad`, zeroing, and
    setters that receive gradients computed elsewhere (`def set_grads(self, grads)`).
    """

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class Pruned(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(8, 8))
                    self.register_buffer("mask", torch.ones(8, 8))

                def forward(self, x):
                    return x @ (self.weight * self.mask)

                def mask_gradients(self):
                    self.weight.grad = self.weight.grad * self.mask

                def clear(self):
                    self.weight.grad = None
            """,
            note="editing the gradient autograd computed; clearing it",
        ),
        Valid(
            """
            import torch
            from torch import nn

            class Worker(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 2)

                def forward(self, x):
                    return self.fc(x)

                def load_gradients(self, grads):
                    for p, g in zip(self.parameters(), grads):
                        p.grad = g.clone()

                def set_weight_grad(self, g):
                    self.fc.weight.grad = g
            """,
            note="gradients computed elsewhere (federated / distributed code)",
        ),
        Valid(
            """
            import torch

            w = torch.randn(3, requires_grad=True)
            loss = (w ** 2).sum()
            w.grad = torch.autograd.grad(loss, w)[0]
            """,
            note="not inside a module; from autograd.grad",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Meta(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.w = nn.Parameter(torch.randn(4))

                def forward(self, x):
                    return (x * self.w).sum()

                def inner_step(self, x):
                    loss = self(x)
                    self.w.grad = torch.autograd.grad(loss, self.w)[0]
            """,
            note="gradient computed by autograd.grad",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Learner(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Linear(4, 1)

                def forward(self, x):
                    return self.net(x)

                def meta_grads(self, x, y):
                    loss = nn.functional.mse_loss(self(x), y)
                    grads = torch.autograd.grad(loss, list(self.parameters()))
                    g_w = grads[0] * 0.5
                    self.net.weight.grad = g_w
                    for p, g in zip(self.parameters(), grads):
                        p.grad = g
            """,
            note="gradients from autograd.grad through local names",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class CustomLayer(nn.Module):
                def __init__(self, input_dim, output_dim):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(input_dim, output_dim))
                    self.bias = nn.Parameter(torch.zeros(output_dim))

                def forward(self, x):
                    self.x = x
                    return torch.matmul(x, self.weight) + self.bias

                def backward(self, grad_output):
                    dw = torch.matmul(self.x.t(), grad_output)
                    db = torch.sum(grad_output, dim=0)
                    self.weight.grad = dw
                    self.bias.grad = db
            """,
            lines=[17, 18],
            run="""
            layer = CustomLayer(4, 3)
            x = torch.randn(5, 4)
            layer(x).pow(2).sum().backward()
            # autograd's gradient arrived without the backward method ever running
            expected_dw = x.t() @ (2 * (x @ layer.weight + layer.bias))
            assert torch.allclose(layer.weight.grad, expected_dw.detach(), atol=1e-4)
            """,
            note="silent: the assignments never run",
        ),
        Invalid(
            """
            import torch
            from torch import nn

            class Scale(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(3, 1)

                def forward(self, x):
                    return self.fc(x)

                def compute_grads(self, x, err):
                    self.fc.weight.grad = err.t() @ x
                    self.fc.bias.grad = err.sum(0)
            """,
            lines=[13, 14],
            note="a hand-written gradient that autograd will add to or overwrite",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Affine(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Parameter(torch.ones(4))
                    self.b = nn.Parameter(torch.zeros(4))

                def forward(self, x):
                    return self.a * x + self.b

                def linear_backward(self, x, grad_out):
                    for p in self.parameters():
                        p.grad = grad_out * x
            """,
            lines=[15],
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        classes = set(unit.module_classes())
        if not classes:
            return
        fakes: dict[ast.ClassDef, set[str]] = {}
        for node in unit.nodes_of(ast.Assign):
            assert isinstance(node, ast.Assign)
            targets = [t for t in node.targets if isinstance(t, ast.Attribute) and t.attr == "grad"]
            if not targets or _leaves_gradient_alone(unit, node.value):
                continue
            func = unit.enclosing_function(node)
            if func is None:
                continue
            cls = unit.parent(func)
            if cls not in classes:
                continue
            assert isinstance(cls, ast.ClassDef)
            if cls not in fakes:
                fakes[cls] = {f.name for f in fake_backward_methods(unit, cls)}
            in_fake = func.name in fakes[cls]
            if not in_fake and _passed_in(func, node.value):
                continue
            if _mentions(node.value, _autograd_names(unit, func)):
                continue  # `g = torch.autograd.grad(...)[0]; p.grad = g`
            attributes = unit.class_attributes(cls)
            for target in targets:
                if _is_parameter(unit, func, target.value, attributes, in_fake, node):
                    where = f" (`{func.name}` itself is never called by autograd)" if in_fake else ""
                    message = self.message.format(target=unit.segment(target), where=where)
                    yield self.finding(unit, target, message)


def _leaves_gradient_alone(unit: Unit, value: ast.expr) -> bool:
    """None, a value built from an existing `.grad`, `torch.autograd.grad(...)`, or zeros."""
    if isinstance(value, ast.Constant) and value.value is None:
        return True
    for node in ast.walk(value):
        if isinstance(node, ast.Attribute) and node.attr == "grad":
            return True  # `p.grad * mask`, `torch.autograd.grad(...)`
        if isinstance(node, ast.Call):
            if unit.module.call_name(node) in _ZEROING:
                return True
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("new_zeros", "zero_"):
                return True
    return False


def _passed_in(func: FunctionNode, value: ast.expr) -> bool:
    """Is the value a gradient handed to the method (`def set_grad(self, g): p.grad = g`),
    or derived only from a loop over one (`for p, g in zip(..., grads)`)?"""
    params = {a.arg for a in func.args.posonlyargs + func.args.args + func.args.kwonlyargs}
    names = set()
    for stmt in ast.walk(func):
        if isinstance(stmt, (ast.For, ast.comprehension)) and _mentions(stmt.iter, params):
            names |= {n.id for n in ast.walk(stmt.target) if isinstance(n, ast.Name)}
    base = value
    while True:  # `g`, `grads[i]`, `g.clone()`, `g.to(p.device)`: the gradient as handed in
        if isinstance(base, ast.Subscript):
            base = base.value
        elif (
            isinstance(base, ast.Call) and isinstance(base.func, ast.Attribute) and base.func.attr in _COPIES
        ):
            base = base.func.value
        else:
            break
    return isinstance(base, ast.Name) and (base.id in params or base.id in names)


def _autograd_names(unit: Unit, func: FunctionNode) -> set[str]:
    """Local names holding gradients autograd computed (or copies of existing `.grad`s)."""
    cache: dict[FunctionNode, set[str]] = unit.cache("gg102.autograd_names", dict)
    if func in cache:
        return cache[func]
    names: set[str] = set()
    bindings = []
    for node in ast.walk(func):
        if isinstance(node, ast.Assign):
            bindings.append((node.targets, node.value))
        elif isinstance(node, (ast.For, ast.comprehension)):
            bindings.append(([node.target], node.iter))
    for _ in range(2):  # a second pass picks up names derived from names found in the first
        for targets, value in bindings:
            if _leaves_gradient_alone(unit, value) or _mentions(value, names):
                for target in targets:
                    names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    cache[func] = names
    return names


def _mentions(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _is_parameter(
    unit: Unit,
    func: FunctionNode,
    node: ast.expr,
    attributes: dict[str, AttributeInfo],
    in_fake: bool,
    before: ast.AST,
) -> bool:
    """`self.w` (a declared parameter), `self.fc.weight` (a layer's parameter), or a
    local name bound to one of those; loop variables over `self.parameters()` count
    inside a fake backward."""
    me = self_name(func) or "self"
    if _parameter_expr(node, me, attributes):
        return True
    if not isinstance(node, ast.Name):
        return False
    bound = None
    for stmt in ast.walk(func):
        if isinstance(stmt, ast.Assign) and stmt.lineno < before.lineno:
            if any(isinstance(t, ast.Name) and t.id == node.id for t in stmt.targets):
                bound = stmt.value if bound is None or stmt.lineno >= bound.lineno else bound
        elif in_fake and isinstance(stmt, ast.For) and _iterates_parameters(stmt.iter, me):
            target = stmt.target
            if isinstance(target, ast.Tuple) and len(target.elts) == 2:
                target = target.elts[1]  # named_parameters() -> (name, p)
            if isinstance(target, ast.Name) and target.id == node.id:
                return True
    return bound is not None and _parameter_expr(bound, me, attributes)


def _parameter_expr(node: ast.AST, me: str, attributes: dict[str, AttributeInfo]) -> bool:
    attr = self_attribute(node, me)
    if attr is not None:
        info = attributes.get(attr)
        return info is not None and info.kind in _PARAMETER_KINDS
    if isinstance(node, ast.Attribute) and ("weight" in node.attr or "bias" in node.attr):
        layer = self_attribute(node.value, me)
        info = attributes.get(layer) if layer else None
        return info is not None and info.kind == "layer"
    return False


def _iterates_parameters(node: ast.expr, me: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _PARAMETER_ITERATORS
        and isinstance(node.func.value, (ast.Name, ast.Attribute))
        and (
            (isinstance(node.func.value, ast.Name) and node.func.value.id == me)
            or self_attribute(node.func.value, me) is not None
        )
    )
