"""GG505: a view/reshape/flatten that merges the batch dimension, and then fails against a tensor that kept it."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine import shape_report
from gradguard.engine.finding import Applicability, Finding, Severity, TextEdit
from gradguard.engine.index import Unit
from gradguard.engine.rule import Invalid, Message, Rule, Valid


class BatchDimensionMerged(Rule):
    code = "GG505"
    name = "batch-dimension-merged"
    triggers = ("view", "reshape", "flatten")
    summary = (
        "A `view`/`reshape`/`flatten` that merges the batch dimension into the others, so the result later "
        "meets a tensor that kept the batch and the shapes no longer match."
    )
    why = (
        "Merging the batch into other dimensions (`x.view(1, -1)`, `x.view(-1, C, H, W)` on a 5-D clip) changes "
        "the number of samples; the loss or op that pairs them with the targets then raises."
    )
    severity = Severity.ERROR
    fix_applicability = Applicability.UNSAFE
    message = Message("`{view}` merges the batch dimension ({batch}): {before} becomes {after}")
    explanation = """
    The first dimension of a batch is the samples. A reshape that changes it — `x.view(1,
    -1)` (all samples into one row), `x.view(-1, C, H, W)` on a `(N, C, T, H, W)` clip (the
    time steps become extra samples), `torch.flatten(x)` without `start_dim=1` — gives a
    tensor with a different number of "samples". Nothing fails at the reshape itself; it
    fails where that tensor meets one that kept the batch: the loss against the targets
    (*"Expected input batch_size (8) to match target batch_size (4)"*), an element-wise
    op (*"The size of tensor a (136) must match the size of tensor b (1360)"*).

    gradguard reports the reshape when it follows the shapes to such a certain failure:
    the batch the reshape consumed is the other tensor's first dimension. Reshapes that
    merge the batch on purpose and keep both sides consistent (`logits.view(-1, V)` with
    `targets.view(-1)`) are fine and not reported.

    Keep the batch: `x.view(x.size(0), -1)` or `x.flatten(1)`; fold time into channels
    (`x.view(N, C * T, H, W)`) or pool over it. The fix rewrites `x.view(<n>, -1)` to
    `x.view(x.size(0), -1)`; it is unsafe because what the model should do with the
    merged dimensions is a modelling decision.

    **Fix safety.** Unsafe: keeping the batch dimension first changes the shape the next layer
    receives; check that it expects `(batch, features)`.
    """

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            head = nn.Linear(32, 100)
            hidden = torch.randn(4, 16, 32)
            targets = torch.randint(0, 100, (4, 16))
            logits = head(hidden)
            loss = F.cross_entropy(logits.view(-1, 100), targets.view(-1))
            """,
            note="batch and time merged on both sides, consistently",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 136))
            images = torch.randn(10, 1, 32, 32)
            key_pts = torch.randn(10, 68, 2).view(10, -1)
            loss = nn.MSELoss()(net(images), key_pts)
            """,
            note="the batch is kept",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 136))
            criterion = nn.MSELoss()
            images = torch.randn(10, 1, 32, 32)
            key_pts = torch.randn(10, 68, 2)
            key_pts = key_pts.view(1, -1)
            output = net(images)
            loss = criterion(output, key_pts)
            """,
            lines=[8],
            fixed="""
            import torch
            import torch.nn as nn

            net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 136))
            criterion = nn.MSELoss()
            images = torch.randn(10, 1, 32, 32)
            key_pts = torch.randn(10, 68, 2)
            key_pts = key_pts.view(key_pts.size(0), -1)
            output = net(images)
            loss = criterion(output, key_pts)
            """,
            raises="The size of tensor a (136) must match the size of tensor b (1360) at non-singleton dimension 1",
            check_fixed="assert loss.dim() == 0",
            note="keypoints of a batch flattened into one row",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class ClipHead(nn.Module):
                def __init__(self, channels=8, classes=5):
                    super().__init__()
                    self.conv = nn.Conv3d(3, channels, 3, padding=1)
                    self.pool = nn.AdaptiveAvgPool2d(1)
                    self.fc = nn.Linear(channels, classes)

                def forward(self, x):
                    x = self.conv(x)
                    n, c, t, h, w = x.shape
                    x = x.view(-1, c, h, w)
                    return self.fc(self.pool(x).flatten(1))

            clips = torch.randn(4, 3, 2, 16, 16)
            targets = torch.randint(0, 5, (4,))
            loss = nn.CrossEntropyLoss()(ClipHead()(clips), targets)
            """,
            lines=[14],
            raises="Expected input batch_size (8) to match target batch_size (4)",
            note="the time steps of a video clip folded into the batch",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for problem in shape_report.of_code(unit, self.code):
            failing, merged = problem.data
            node, batch, _, _, before, after = merged
            other = problem.inputs[1] if len(problem.inputs) > 1 else None
            message = self.message.format(
                view=shape_report.expression(unit, node),
                batch=shape_report.shape_flow.show(batch),
                before=shape_report.shape(before),
                after=shape_report.shape(after),
            )
            line = getattr(failing, "lineno", "?")
            detail = (
                f"Line {line} then pairs it with a tensor that kept the batch ({shape_report.shape(other)}): "
                + shape_report.torch_says(problem)
                + shape_report.origin(unit, problem)
                + "."
            )
            yield self.finding(unit, node, message, fix=self._fix(unit, node), detail=detail)

    def _fix(self, unit: Unit, node: ast.AST):
        """`x.view(1, -1)` -> `x.view(x.size(0), -1)`."""
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            return None
        if node.func.attr not in ("view", "reshape") or len(node.args) != 2 or node.keywords:
            return None
        first, second = node.args
        if not (isinstance(first, ast.Constant) and isinstance(first.value, int)):
            return None
        if not (isinstance(second, ast.UnaryOp) and isinstance(second.op, ast.USub)):
            return None
        receiver = node.func.value
        if not isinstance(receiver, (ast.Name, ast.Attribute)):
            return None
        text = f"{unit.segment(receiver)}.size(0)"
        line, col, end_line, end_col = unit.node_range(first)
        return self.make_fix(
            "Keep the batch: `.size(0)` first", [TextEdit(line, col, end_line, end_col, text)]
        )
