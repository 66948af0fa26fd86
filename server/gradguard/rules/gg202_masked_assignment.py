"""GG202: `x[x < 0] = 0` on a tensor that autograd tracks."""

from __future__ import annotations

import ast
from typing import Callable, Iterator

from gradguard.engine.dataflow import describe, flow_of, masked_write
from gradguard.engine.finding import Applicability, Finding, Severity
from gradguard.engine.fixes import parse_expression, render, replace_node, torch_name
from gradguard.engine.index import TENSOR_FACTORIES, Unit, creates_grad_leaf, self_name
from gradguard.engine.rule import Invalid, Rule, Valid

# Calls whose result is a fresh tensor: writing into it in place is harmless.
_FRESH_METHODS = {"clone", "new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "zeros_like"}
_COMPARISONS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


class MaskedAssignment(Rule):
    code = "GG202"
    needs_class = "module"  # reports only in methods reachable from an nn.Module forward
    name = "masked-assignment"
    summary = "Masked in-place assignment (`x[x < 0] = 0`) on a tensor that autograd tracks."
    why = (
        "Writing in place into a tensor that autograd saved for backward, or into a leaf that requires grad, "
        "makes PyTorch raise; `torch.relu`, `clamp`, `masked_fill` or `torch.where` compute the same values "
        "out of place."
    )
    severity = Severity.ERROR
    message = "In-place masked assignment to `{name}`; use an out-of-place `{suggestion}`"  # docs only
    _SAVED = (
        "In-place masked assignment to `{name}`, the output of `{op}(...)` that autograd saved for backward: "
        'backward raises "one of the variables needed for gradient computation has been modified by an '
        'inplace operation"; use an out-of-place `{suggestion}`'
    )
    _INPUT = (
        "In-place masked assignment to `{name}`, an input of `forward`: it changes the caller's tensor, and "
        'raises "a leaf Variable that requires grad is being used in an in-place operation" when the input '
        "requires grad; use an out-of-place `{suggestion}`"
    )
    explanation = """
    `x[mask] = value` writes into `x` in place. The write itself is differentiable
    (masked entries get zero gradient), but in-place writes break autograd in two
    common cases, and PyTorch raises:

    * `x` is a leaf that requires grad (a parameter, or a tensor made with
      `requires_grad=True`): *"a leaf Variable that requires grad is being used in an
      in-place operation."*
    * `x` was saved for backward by the op that produced it (the output of `sigmoid`,
      `tanh`, `exp`, `softmax`, ...): backward raises *"one of the variables needed for
      gradient computation has been modified by an inplace operation"*.

    In `forward`, the write also changes the caller's tensor when `x` is the input.
    The out-of-place forms compute the same values and keep the graph intact:
    `torch.relu(x)` for `x[x < 0] = 0`, `x.clamp(min=t)` / `x.clamp(max=t)` for
    clipping at a threshold, and `x.masked_fill(mask, value)` or
    `torch.where(mask, value, x)` otherwise.

    Writing into a tensor you just allocated (`out = torch.zeros(...)` then
    `out[mask] = 1`) is fine and is not reported.
    """
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def forward(self, x):
                    out = torch.zeros(x.shape[0], 4)
                    out[x[:, 0] > 0] = 1.0
                    t = x.clone()
                    t[t < 0] = 0
                    return out + torch.relu(x)
            """,
            note="writes into freshly allocated tensors",
        ),
        Valid(
            """
            import torch
            import numpy as np

            def preprocess(a):
                a[a < 0] = 0
                return a
            """,
            note="not in a module's forward, not a grad-tracked tensor",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def forward(self, x):
                    with torch.no_grad():
                        x[x < 0] = 0
                    return x
            """,
            note="under no_grad",
        ),
    ]
    VALID = VALID + [
        Valid(
            """
            import torch
            import torch.nn as nn

            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.proj = nn.Linear(8, 8)

                def forward(self, hidden_states, attention_mask):
                    expand_mask = attention_mask.unsqueeze(-1).repeat(1, 1, hidden_states.shape[2])
                    hidden_states[~expand_mask] = 0  # padded positions output 0
                    h = self.proj(hidden_states)
                    h[h < 0] = 0
                    return h
            """,
            note="a prepared mask on forward's input, and an intermediate no op saved: legal and differentiable",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class ClippedSigmoid(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    y = torch.sigmoid(self.fc(x))
                    y[y < 0.5] = 0  # keep confident activations only
                    return y
            """,
            lines=[11],
            fixed="""
            import torch
            import torch.nn as nn

            class ClippedSigmoid(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    y = torch.sigmoid(self.fc(x))
                    y = y.masked_fill(y < 0.5, 0)  # keep confident activations only
                    return y
            """,
            raises="modified by an inplace operation",
            run="ClippedSigmoid()(torch.randn(8, 4)).sum().backward()",
            check_fixed="m = ClippedSigmoid(); m(torch.randn(8, 4)).sum().backward(); assert m.fc.weight.grad is not None",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Rectifier(nn.Module):
                def forward(self, x):
                    x[x < 0] = 0
                    return x * 2
            """,
            lines=[6],
            fixed="""
            import torch
            import torch.nn as nn

            class Rectifier(nn.Module):
                def forward(self, x):
                    x = torch.relu(x)
                    return x * 2
            """,
            raises="a leaf Variable that requires grad is being used in an in-place operation",
            run="Rectifier()(torch.randn(5, requires_grad=True)).sum().backward()",
            check_fixed="x = torch.randn(5, requires_grad=True); Rectifier()(x).sum().backward(); assert x.grad is not None",
        ),
        Invalid(
            """
            import torch
            from torch import nn

            class ReLU6(nn.Module):
                def forward(self, x):
                    y = torch.relu(x)
                    y[y > 6.0] = 6.0
                    return y
            """,
            lines=[7],
            fixed="""
            import torch
            from torch import nn

            class ReLU6(nn.Module):
                def forward(self, x):
                    y = torch.relu(x)
                    y = y.clamp(max=6.0)
                    return y
            """,
            raises="which is output 0 of Relu, is at version 1",
            run="ReLU6()(torch.randn(16, requires_grad=True) * 10).sum().backward()",
            check_fixed=(
                "x = torch.randn(16, requires_grad=True); (y := ReLU6()(x * 10)).sum().backward()\n"
                "assert x.grad is not None and float(y.max()) <= 6.0"
            ),
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        forward_funcs = set()
        for cls in unit.module_classes():
            for func in unit.methods_reachable_from(cls, "forward"):
                forward_funcs.add(func)
        for node in unit.nodes_of(ast.Assign):
            write = masked_write(node)
            if write is None:
                continue
            target, name = write
            mask = target.slice
            func = unit.enclosing_function(node)
            if func not in forward_funcs or name == self_name(func):
                continue
            if unit.in_no_grad(node) or _freshly_allocated(unit, func, name, node):
                continue
            message = self._message(unit, func, target, name)
            if message is None:
                continue
            replacement = _replacement(unit, name, mask, node.value)
            fix = None
            suggestion = "torch.where(mask, value, x)"
            if replacement is not None:
                build, suggestion = replacement
                fix = self.make_fix(
                    f"Replace with `{suggestion}`", lambda n=node, b=build: [replace_node(unit, n, b())]
                )
            yield self.finding(unit, node, message.format(name=name, suggestion=suggestion), fix=fix)

    def _message(self, unit: Unit, func: ast.AST, target: ast.Subscript, name: str) -> str | None:
        """The message template when the write breaks autograd (or may), else None.

        Reported: a write into the output of an op that saved it for backward (always
        raises at backward), and `x[x < t] = v` on `forward`'s own input (raises when the
        input requires grad, and changes the caller's tensor). A masked write into another
        intermediate is legal and differentiable, so it is not reported."""
        flow = flow_of(unit, func)
        for written, _, before in flow.inplace:
            if written is target and before.saved is not None:
                op = describe(before.saved.func, unit).replace("{", "{{").replace("}", "}}")
                return self._SAVED.replace("{op}", op)
        arguments = func.args.posonlyargs + func.args.args + func.args.kwonlyargs  # type: ignore[attr-defined]
        self_masking = isinstance(target.slice, ast.Compare)
        if self_masking and name in {a.arg for a in arguments} and not _rebound_before(func, name, target):
            return self._INPUT
        return None


def _rebound_before(func: ast.AST, name: str, before: ast.AST) -> bool:
    for node in ast.walk(func):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.lineno < before.lineno:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
    return False


def _grad_leaves(unit: Unit, func: ast.AST | None) -> set[str]:
    scope = func if func is not None else None
    names: set[str] = set()
    nodes = ast.walk(scope) if scope is not None else (n for stmt in unit.nodes for n in ast.walk(stmt))
    for node in nodes:
        if isinstance(node, ast.Assign) and creates_grad_leaf(node.value, unit.module):  # type: ignore[arg-type]
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _freshly_allocated(unit: Unit, func: ast.AST, name: str, before: ast.AST) -> bool:
    """Was `name` last bound, before `before`, to a newly allocated tensor?"""
    last = None
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and node.lineno < before.lineno:
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                if last is None or node.lineno >= last.lineno:
                    last = node
    if last is None or not isinstance(last.value, ast.Call):
        return False
    call = last.value
    if unit.module.call_name(call) in TENSOR_FACTORIES:
        return True
    return isinstance(call.func, ast.Attribute) and call.func.attr in _FRESH_METHODS


def _replacement(
    unit: Unit, name: str, mask: ast.expr, value: ast.expr
) -> tuple[Callable[[], str], str] | None:
    """A builder for the out-of-place statement replacing `name[mask] = value`, and a
    short label; None when the value is not a plain number (masked_fill needs a scalar)."""
    if not _is_number(value):
        return None
    value_text = unit.segment(value)
    if isinstance(mask, ast.Compare) and len(mask.ops) == 1:
        left, op, right = mask.left, mask.ops[0], mask.comparators[0]
        if isinstance(left, ast.Name) and left.id == name and isinstance(op, _COMPARISONS):
            threshold = unit.segment(right)
            same = ast.dump(right) == ast.dump(value)
            zero = _is_zero(right) and _is_zero(value)
            if zero and isinstance(op, (ast.Lt, ast.LtE)):
                torch = torch_name(unit)
                if torch:
                    return (lambda: _assign(name, f"{torch}.relu", [name])), f"{torch}.relu"
                return (lambda: _assign(name, f"{name}.relu", [])), "relu"
            if same and isinstance(op, (ast.Lt, ast.LtE)):
                return (lambda: _assign(name, f"{name}.clamp", [], min=threshold)), f"clamp(min={threshold})"
            if same and isinstance(op, (ast.Gt, ast.GtE)):
                return (lambda: _assign(name, f"{name}.clamp", [], max=threshold)), f"clamp(max={threshold})"
    mask_text = unit.segment(mask)
    return (lambda: _assign(name, f"{name}.masked_fill", [mask_text, value_text])), "masked_fill"


def _assign(name: str, func: str, args: list[str], **kwargs: str) -> str:
    """`name = func(*args, **kwargs)`, built and rendered by libcst."""
    import libcst as cst

    call = cst.Call(
        func=parse_expression(func),
        args=[cst.Arg(parse_expression(a)) for a in args]
        + [
            cst.Arg(
                parse_expression(v),
                keyword=cst.Name(k),
                equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
            )
            for k, v in kwargs.items()
        ],
    )
    return render(cst.Assign(targets=[cst.AssignTarget(cst.Name(name))], value=call))


def _is_number(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    )


def _is_zero(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and not isinstance(node.value, bool) and node.value == 0
