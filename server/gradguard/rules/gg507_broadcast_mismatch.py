"""GG507: element-wise ops on shapes that do not broadcast, and losses whose input and target broadcast."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine import shape_report
from gradguard.engine.finding import Applicability, Finding, Severity
from gradguard.engine.index import ModuleContext, Unit
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.rules import _shape_fixes as fixes


class BroadcastMismatch(Rule):
    code = "GG507"
    name = "broadcast-mismatch"
    summary = (
        "An element-wise op (`+`, `*`, `masked_fill`, a loss, ...) on shapes that do not broadcast, or a "
        "regression loss whose input and target broadcast to a bigger shape."
    )
    why = (
        "Element-wise ops line shapes up from the right and stretch only dimensions of size 1: other sizes that "
        "differ raise, and a loss on `(N, 1)` and `(N,)` silently compares every prediction with every target."
    )
    severity = Severity.WARNING
    fix_applicability = Applicability.SAFE
    message = Message("`{expr}`: shapes {a} and {b} do not broadcast")
    loss_message = Message("`{expr}` compares {a} with {b}: they broadcast to {c} (every pair)")
    explanation = """
    Element-wise ops broadcast: shapes are aligned from the right, and a dimension of
    size 1 (or a missing one) is stretched to the other's size. Any other pair of sizes
    that differ is an error:

    > RuntimeError: The size of tensor a (16) must match the size of tensor b (5) at
    > non-singleton dimension 2

    The quiet variant is worse: `nn.MSELoss()(pred, target)` with `pred` of shape
    `(N, 1)` and `target` of shape `(N,)` broadcasts them to `(N, N)` and averages the
    error of every prediction against every target. PyTorch only warns ("Using a target
    size ... that is different to the input size"), and the model learns to predict the
    mean. Squeeze the prediction (`pred.squeeze(1)`) or unsqueeze the target.

    gradguard follows the shapes through the model and reports only sizes that certainly
    differ (for the losses: shapes that certainly broadcast to something else than the
    input). It is a warning because the loss case runs.

    For a loss whose two sides differ only by a size-1 dimension (not the batch
    dimension 0) the fix squeezes that dimension out of the side that has it
    (`loss(pred.squeeze(1), target)`). Other broadcasts have no fix: which side is
    wrong is not in the code.

    **Fix safety.** Safe when the shapes come from the code around the loss: the loss
    compared every pair every time it ran, and it changes only that (with
    `reduction="none"` its result then has the target's shape, not `(N, N)`). Unsafe
    when they hold for the input of one call elsewhere.
    """

    VALID = [
        Valid(
            """
            import torch

            points = torch.randn(5, 3)
            pairwise = points[:, None, :] - points[None, :, :]
            scaled = torch.randn(4, 8, 16) * torch.randn(16)
            """,
            note="broadcasting on purpose",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(1, 1)
            x = torch.linspace(-1, 1, 32).unsqueeze(1)
            loss = nn.MSELoss()(model(x).squeeze(1), 2 * x.squeeze(1))
            """,
            note="same shapes",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            def attention(q, k, causal=True):
                scores = q @ k.transpose(-2, -1)
                mask = torch.ones(q.size(2), k.size(2), dtype=torch.bool).tril()
                return scores.masked_fill(~mask, float("-inf"))

            x = torch.randn(1, 5, 16)
            out = attention(x, x)
            """,
            lines=[6],
            raises="The size of tensor a (16) must match the size of tensor b (5) at non-singleton dimension 2",
            note="the mask sized with size(2), the head dimension of a 3-D tensor",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            x = torch.linspace(-1, 1, 32).unsqueeze(1)
            target = 2 * x.squeeze(1) + 0.5
            model = nn.Linear(1, 1)
            loss = nn.MSELoss()(model(x), target)
            """,
            lines=[7],
            fixed="""
            import torch
            import torch.nn as nn

            x = torch.linspace(-1, 1, 32).unsqueeze(1)
            target = 2 * x.squeeze(1) + 0.5
            model = nn.Linear(1, 1)
            loss = nn.MSELoss()(model(x).squeeze(1), target)
            """,
            check_fixed="assert torch.allclose(loss, ((model(x)[:, 0] - target) ** 2).mean())",
            note="(32, 1) against (32,): broadcast to (32, 32), only a warning",
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        return shape_report.shape_flow.may_have_problems(text, statement, module)

    def check(self, unit: Unit) -> Iterator[Finding]:
        for problem in shape_report.of_code(unit, self.code):
            error = problem.error
            a, b = _failing_pair(problem.inputs)
            expr = shape_report.expression(unit, problem.node)
            detail = shape_report.torch_says(problem) + shape_report.origin(unit, problem) + "."
            if error is not None and error.warning:
                message = self.loss_message.format(
                    expr=expr,
                    a=shape_report.shape(a),
                    b=shape_report.shape(b),
                    c=shape_report.shape(_broadcast(a, b)),
                )
                detail += " The loss averages every prediction against every target."
            else:
                message = self.message.format(expr=expr, a=shape_report.shape(a), b=shape_report.shape(b))
            yield self.finding(unit, problem.node, message, fix=self._fix(unit, problem), detail=detail)

    def _fix(self, unit: Unit, problem):
        """`loss(pred, target)` with `(N, 1)` vs `(N,)`: the side with the extra size-1 dimension squeezed."""
        error = problem.error
        if error is None or not error.warning or problem.kind != "loss":
            return None
        a, b = (fixes.exact(s) for s in (problem.inputs + (None, None))[:2])
        x_node, t_node = fixes.argument(problem.node, 0, "input"), fixes.argument(problem.node, 1, "target")
        if a is None or b is None or x_node is None or t_node is None:
            return None
        for longer, shorter, node in ((a, b, x_node), (b, a, t_node)):
            k = fixes.extra_one(longer, shorter)
            if k is not None:
                return self.make_fix(
                    f"Compare like shapes: `.squeeze({k})`",
                    [fixes.append(unit, node, f".squeeze({k})")],
                    fixes.applicability(problem),
                )
        return None


def _failing_pair(inputs: tuple) -> tuple:
    """The two shapes that do not broadcast: of three or more operands (`torch.where(c, x, y)`), the
    first that fails with an earlier one (not simply the first two, which may broadcast)."""
    from gradguard.engine.symshape import Shape, ShapeError, broadcast

    shapes = tuple(inputs)
    if len(shapes) > 2 and all(isinstance(s, Shape) for s in shapes):
        for i in range(1, len(shapes)):
            for j in range(i):
                if isinstance(broadcast(shapes[j], shapes[i]), ShapeError):
                    return shapes[j], shapes[i]
    return (shapes + (None, None))[:2]


def _broadcast(a, b):
    from gradguard.engine.symshape import Shape, broadcast

    if isinstance(a, Shape) and isinstance(b, Shape):
        out = broadcast(a, b)
        return out if isinstance(out, Shape) else None
    return None
