"""GG506: `view`/`reshape` whose element count cannot match the tensor's."""

from __future__ import annotations

from collections.abc import Iterator

from gradguard.engine import shape_report
from gradguard.engine.finding import Finding, Severity
from gradguard.engine.index import Unit
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.symshape import Shape


class ViewSizeMismatch(Rule):
    code = "GG506"
    name = "view-size-mismatch"
    triggers = ("view", "reshape")
    summary = "A `view`/`reshape` whose requested shape cannot hold the tensor's number of elements."
    why = (
        "`view` and `reshape` keep every element: when the requested sizes multiply to another count (or a `-1` "
        "cannot make them match) the call raises."
    )
    severity = Severity.ERROR
    message = Message("`{expr}` cannot reshape {shape} ({numel} elements) to that size")
    explanation = """
    `x.view(*sizes)` / `x.reshape(*sizes)` return the same elements in another shape, so
    the sizes must multiply to `x.numel()`; a single `-1` is computed from the others and
    must divide evenly. Otherwise PyTorch raises:

    > RuntimeError: shape '[-1, 400]' is invalid for input of size 384

    The usual cause is a hard-coded feature count (`x.view(-1, 16 * 5 * 5)`) after
    convolutions whose output size depends on the input size: another image size, and the
    count no longer fits (with a `-1` in front, a count that happens to divide silently
    changes the batch instead). Flatten with `torch.flatten(x, 1)` / `x.view(x.size(0),
    -1)` and size the next layer from the real feature map.

    gradguard follows the shapes through the model (from the inputs the file gives it, a
    `# gradguard: probe` comment, annotations) and reports only element counts that
    certainly differ.
    """

    VALID = [
        Valid(
            """
            import torch

            x = torch.randn(6, 16, 5, 5)
            flat = x.view(-1, 16 * 5 * 5)
            """,
            note="400 elements per row",
        ),
        Valid(
            """
            import torch

            def heads(x, h):
                b, t, c = x.shape
                return x.view(b, t, h, c // h)
            """,
            note="symbolic sizes: not known to differ",
        ),
        Valid(
            """
            import torch

            def mask_out_self(sim_mat, start_idx):
                num_rows, num_cols = sim_mat.shape
                mask = torch.ones(num_rows, num_cols, dtype=torch.bool)
                rows = torch.arange(num_rows)
                mask[rows, rows + start_idx] = False
                return sim_mat[mask].view(num_rows, num_cols - 1)
            """,
            run="assert mask_out_self(torch.randn(4, 6), 2).shape == (4, 5)",
            note="`x[mask]` is 1-D of the mask's count of `True`, not `x`'s shape: here one element per "
            "row is masked out (dev8 pytorch-adapt common_functions.py)",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(3, 6, 5)
                    self.pool = nn.MaxPool2d(2, 2)
                    self.conv2 = nn.Conv2d(6, 16, 5)
                    self.fc1 = nn.Linear(16 * 5 * 5, 120)

                def forward(self, x):
                    x = self.pool(F.relu(self.conv1(x)))
                    x = self.pool(F.relu(self.conv2(x)))
                    x = x.view(-1, 16 * 5 * 5)
                    return self.fc1(x)

            out = Net()(torch.randn(6, 3, 21, 21))
            """,
            lines=[16],
            raises="shape '[-1, 400]' is invalid for input of size 384",
            note="the CIFAR-10 tutorial network on 21x21 images",
        ),
        Invalid(
            """
            import torch

            tokens = torch.randn(2, 10, 64)
            heads = tokens.reshape(2, 10, 6, 10)
            """,
            lines=[4],
            raises="shape '[2, 10, 6, 10]' is invalid for input of size 1280",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for problem in shape_report.of_code(unit, self.code):
            got = problem.inputs[0] if problem.inputs else None
            numel = shape_report.shape_flow.show(got.numel) if isinstance(got, Shape) else "?"
            message = self.message.format(
                expr=shape_report.expression(unit, problem.node), shape=shape_report.shape(got), numel=numel
            )
            detail = shape_report.torch_says(problem) + shape_report.origin(unit, problem) + "."
            yield self.finding(unit, problem.node, message, detail=detail)
