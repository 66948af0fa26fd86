"""GG502: matrix product of tensors with known, incompatible shapes."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine import shape_report
from gradguard.engine import symshape as ss
from gradguard.engine.finding import Applicability, Finding, Severity
from gradguard.engine.index import ModuleContext, Unit
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.symshape import Shape
from gradguard.rules import _shape_fixes as fixes


class MatmulShapeMismatch(Rule):
    code = "GG502"
    name = "matmul-shape-mismatch"
    summary = "`@`/`matmul`/`mm`/`bmm` on tensors whose shapes have different inner dimensions."
    why = (
        "A matrix product needs the left operand's last dimension to equal the right operand's second-to-last"
        " one; with these shapes the call always raises."
    )
    message = Message("`{op}` multiplies {left} by {right}: the inner dimensions {a} and {b} differ")
    explanation = """
    A matrix product needs the last dimension of the left operand to equal the
    second-to-last dimension of the right one (`(n, k) @ (k, m)`). When both shapes
    are known constants and they differ, the call always raises, for example:

    > RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x10 and 20x5)

    (`torch.bmm` and batched `matmul` report *"Expected size for first two dimensions
    of batch2 tensor to be: [4, 10] but got: [4, 20]"*). Usually one operand needs a
    transpose (`w.T`, `w.mT`) or was built with its dimensions swapped: a layer's
    `weight` is stored as `(out_features, in_features)`, so `x @ layer.weight` needs
    `layer.weight.T`. Shapes are followed through the value analysis (factories,
    layers, views, the inputs a file gives its model); dimensions it cannot know are
    symbols, and only dimensions that certainly differ are reported.

    The fix appends `.T` to an `nn.Linear`'s `weight` when the other operand's last
    dimension is the layer's `in_features` (the product the layer itself computes).
    Other mismatches have no fix: which operand is wrong is not in the code.

    **Fix safety.** Safe when the shapes come from the code around the product: it
    raised every time it ran, and nothing else changes. Unsafe when they hold for the
    input of one call elsewhere (another caller may pass operands the product takes).
    """
    severity = Severity.ERROR
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch

            x = torch.randn(8, 3)
            w = torch.randn(4, 3, requires_grad=True)
            y = x @ w.T
            z = torch.matmul(torch.randn(5, 2, 3), torch.randn(3, 7))
            """,
            note="compatible shapes (w.T is fine)",
        ),
        Valid(
            """
            import torch

            def f(x, w):
                return x @ w
            """,
            note="unknown shapes",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            x = torch.randn(2, 10)
            w = torch.randn(20, 5, requires_grad=True)
            y = x @ w
            """,
            lines=[5],
            raises="mat1 and mat2 shapes cannot be multiplied (2x10 and 20x5)",
        ),
        Invalid(
            """
            import torch

            queries = torch.randn(4, 2, 10)
            keys = torch.randn(4, 20, 5)
            scores = torch.bmm(queries, keys)
            """,
            lines=[5],
            raises="Expected size for first two dimensions of batch2 tensor to be: [4, 10] but got: [4, 20].",
        ),
        Invalid(
            """
            import torch

            a = torch.ones(3, 4)
            b = a.mm(a)
            """,
            lines=[4],
            raises="mat1 and mat2 shapes cannot be multiplied (3x4 and 3x4)",
        ),
        Invalid(
            """
            import torch

            model = torch.nn.Linear(3, 5)
            data = torch.ones(2, 3)
            manual = data @ model.weight + model.bias
            """,
            lines=[5],
            fixed="""
            import torch

            model = torch.nn.Linear(3, 5)
            data = torch.ones(2, 3)
            manual = data @ model.weight.T + model.bias
            """,
            raises="mat1 and mat2 shapes cannot be multiplied (2x3 and 5x3)",
            check_fixed="assert torch.allclose(manual, model(data))",
            note="a Linear's weight is stored as (out_features, in_features)",
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        # a matrix product: `@` beyond the statement's decorators and docstring, `mm(`, `matmul`
        return shape_report.shape_flow.has_matmul(text, statement)

    def check(self, unit: Unit) -> Iterator[Finding]:
        for problem in shape_report.of_code(unit, self.code):
            left, right = (problem.inputs + (None, None))[:2]
            a, b = _inner(left, right)
            op = shape_report.expression(unit, problem.node)
            detail = shape_report.torch_says(problem) + shape_report.origin(unit, problem) + "."
            if a is not None:
                message = self.message.format(
                    op=op, left=shape_report.shape(left), right=shape_report.shape(right), a=a, b=b
                )
            else:
                message = f"`{op}` cannot multiply {shape_report.shape(left)} by {shape_report.shape(right)}"
            if len(message) > 100:
                message = f"`{problem.what}` multiplies {shape_report.shape(left)} by {shape_report.shape(right)}: the inner dimensions differ"
            yield self.finding(unit, problem.node, message, fix=_fix(self, unit, problem), detail=detail)


def _fix(rule: Rule, unit: Unit, problem):
    """`x @ layer.weight` -> `x @ layer.weight.T`: an `nn.Linear`'s weight is stored `(out, in)`; offered
    when `x`'s last dimension is `in_features` (so the transpose is the product the layer computes)."""
    node = problem.node
    right: ast.expr | None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        right = node.right
    elif isinstance(node, ast.Call) and problem.what in ("matmul", "mm"):
        right = fixes.argument(node, 1, "mat2" if problem.what == "mm" else "other")
    else:
        return None
    if problem.flow is None or not (isinstance(right, ast.Attribute) and right.attr == "weight"):
        return None
    layer = problem.flow.value_of(right.value)
    if not (layer.cls or "").endswith(".Linear"):
        return None
    left, weight = (fixes.exact(s) for s in (problem.inputs + (None, None))[:2])
    if left is None or weight is None or len(weight) != 2 or not left:
        return None
    if fixes.same_dims(left[-1:], weight[-1:]) and ss.same(left[-1], weight[0]) is False:
        return rule.make_fix(
            "Transpose the weight (stored as `(out_features, in_features)`): `.T`",
            [fixes.append(unit, right, ".T")],
            fixes.applicability(problem),
        )
    return None


def _inner(left: object, right: object) -> tuple[str | None, str | None]:
    """The inner dimensions of a matrix product, when they certainly differ."""
    if not (isinstance(left, Shape) and isinstance(right, Shape) and left.dims and right.dims):
        return None, None
    a = left.dims[-1]
    if right.exact and len(right.dims) == 1:
        b = right.dims[0]
    elif len(right.dims) >= 2:
        b = right.dims[-2]
    else:
        return None, None
    if shape_report.shape_flow.ss.same(a, b) is not False:
        return None, None
    return shape_report.shape_flow.show(a), shape_report.shape_flow.show(b)
