"""GG508: `torch.cat`/`torch.stack` of tensors whose other dimensions differ."""

from __future__ import annotations

from collections.abc import Iterator

from gradguard.engine import shape_report
from gradguard.engine.finding import Finding, Severity
from gradguard.engine.index import Unit
from gradguard.engine.rule import Invalid, Message, Rule, Valid


class ConcatShapeMismatch(Rule):
    code = "GG508"
    name = "concat-shape-mismatch"
    triggers = ("cat", "stack", "concat")
    summary = "`torch.cat`/`torch.stack` of tensors whose sizes differ where they must match."
    why = (
        "`torch.cat` needs every dimension but the joined one to match, `torch.stack` identical shapes; "
        "otherwise the call raises."
    )
    severity = Severity.ERROR
    message = Message("`{expr}` joins tensors of shapes {shapes} that differ outside the joined dimension")
    explanation = """
    `torch.cat(tensors, dim)` concatenates along `dim`: every other dimension must have the
    same size. `torch.stack` adds a new dimension and needs identical shapes. Otherwise:

    > RuntimeError: Sizes of tensors must match except in dimension 1. Expected size 61
    > but got size 60 for tensor number 1 in the list.

    A classic case is a UNet's skip connection: with an input side that is not a multiple
    of 2**depth, pooling rounds the size down and the upsampled map comes back one pixel
    short of the encoder map it is concatenated with. Resize inputs to a multiple of
    2**depth, or pad/crop (`F.pad`, `F.interpolate(..., size=skip.shape[2:])`) before
    concatenating.

    gradguard follows the shapes through the model and reports only sizes that certainly
    differ.
    """

    VALID = [
        Valid(
            """
            import torch

            a = torch.randn(1, 8, 64, 64)
            b = torch.randn(1, 16, 64, 64)
            both = torch.cat([a, b], dim=1)
            pair = torch.stack([a, a])
            """,
            note="only the joined dimension differs",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Up(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.pool = nn.MaxPool2d(2)
                    self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)

                def forward(self, x):
                    skip = x
                    x = self.up(self.pool(x))
                    return torch.cat([skip, x], dim=1)

            out = Up()(torch.randn(1, 8, 61, 61))
            """,
            lines=[13],
            raises="Sizes of tensors must match except in dimension 1. Expected size 61 but got size 60",
            note="an odd size rounded down by pooling",
        ),
        Invalid(
            """
            import torch

            frames = [torch.randn(3, 32, 32), torch.randn(3, 32, 31)]
            video = torch.stack(frames)
            """,
            lines=[4],
            raises="stack expects each tensor to be equal size",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for problem in shape_report.of_code(unit, self.code):
            shapes = ", ".join(shape_report.shape(s) for s in problem.inputs[:3]) or "these"
            message = self.message.format(expr=shape_report.callee(unit, problem.node), shapes=shapes)
            if len(message) > 100:
                message = f"`{shape_report.callee(unit, problem.node)}` joins tensors whose shapes differ outside the joined dimension"
            detail = shape_report.torch_says(problem) + shape_report.origin(unit, problem) + "."
            yield self.finding(unit, problem.node, message, detail=detail)
