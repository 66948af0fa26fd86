"""GG509: probabilities or targets of the wrong shape/dtype given to cross entropy (and the other losses)."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine import shape_report
from gradguard.engine.finding import Finding, Severity
from gradguard.engine.index import ModuleContext, Unit
from gradguard.engine.rule import Invalid, Message, Rule, Valid


class CrossEntropyMisuse(Rule):
    code = "GG509"
    name = "cross-entropy-misuse"
    summary = (
        "`softmax` output fed to `CrossEntropyLoss`/`F.cross_entropy`, or a loss target of the wrong shape or "
        "dtype (a `(N, 1)` column of class ids, float class ids, a mask missing its channel)."
    )
    why = (
        "`CrossEntropyLoss` applies `log_softmax` itself: probabilities squash the loss and stall training. Its "
        "class-index targets must be int64 of shape `(N,)`, or the call raises."
    )
    severity = Severity.WARNING
    softmax_message = Message(
        "`{callee}` gets `softmax` probabilities (line {line}): CrossEntropyLoss wants logits"
    )
    target_message = Message("`{callee}`: {error}")
    dtype_message = Message("`{callee}` takes class indices as its target, which must be int64, not {dtype}")
    message = target_message
    explanation = """
    `nn.CrossEntropyLoss` / `F.cross_entropy` compute `log_softmax` of their input and the
    negative log-likelihood of the targets: the input must be **logits**. Feeding it
    `softmax` probabilities applies softmax twice: the loss can no longer go to zero (for
    C classes it stays above log(1 + (C-1)/e)), the gradients shrink, and training stalls
    even on separable data. Nothing raises. Return the logits and keep the loss (or use
    `log_softmax` with `nn.NLLLoss`). (`log_softmax` before `CrossEntropyLoss` is
    harmless: log_softmax of log-probabilities gives them back, with the same gradients,
    so it is not reported.)

    Targets: class indices must be an int64 tensor of shape `(N,)` (`(N, d1, ...)` for
    per-pixel classes), one per sample:

    * a column `(N, 1)` raises "0D or 1D target tensor expected, multi-target not
      supported" -- use `labels.squeeze(1)`;
    * one-hot rows flattened with `view(-1)` give N*C targets for N samples: "Expected
      input batch_size (8) to match target batch_size (32)" -- use `labels.argmax(1)`;
    * float class ids raise "expected target dtype to be Long or Byte, but got Float" --
      use `labels.long()` (float targets of the input's shape are class probabilities,
      which is fine);
    * `nn.BCELoss` needs a target of exactly the input's shape: a `(N, H, W)` mask for a
      `(N, 1, H, W)` prediction raises -- `mask.unsqueeze(1)`.

    The shapes and dtypes are followed through the value analysis; only certain problems
    are reported. It is a warning because the softmax case runs.
    """

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            model = nn.Linear(2, 3)
            points = torch.randn(60, 2)
            labels = torch.randint(0, 3, (60,))
            loss = nn.CrossEntropyLoss()(model(points), labels)
            nll = F.nll_loss(F.log_softmax(model(points), dim=1), labels)
            same = F.cross_entropy(F.log_softmax(model(points), dim=1), labels)
            soft = F.cross_entropy(model(points), torch.softmax(torch.randn(60, 3), 1))
            """,
            note="logits; log_softmax with NLLLoss; log_softmax twice is harmless; probability targets",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(2, 3)

                def forward(self, x):
                    return torch.softmax(self.fc(x), dim=1)

            model = Classifier()
            criterion = nn.CrossEntropyLoss()
            points = torch.randn(60, 2)
            labels = torch.randint(0, 3, (60,))
            loss = criterion(model(points), labels)
            """,
            lines=[16],
            note="softmax applied twice: training stalls (tests/real_bugs/shapes/softmax_before_cross_entropy.py)",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 7))
            criterion = nn.CrossEntropyLoss()
            images = torch.randn(5, 3, 8, 8)
            labels = torch.randint(0, 7, (5, 1))
            loss = criterion(model(images), labels)
            """,
            lines=[8],
            raises="0D or 1D target tensor expected, multi-target not supported",
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F

            logits = torch.randn(8, 4, requires_grad=True)
            labels = torch.tensor([0.0, 2.0, 1.0, 3.0, 0.0, 1.0, 2.0, 3.0])
            loss = F.cross_entropy(logits, labels)
            """,
            lines=[6],
            raises="expected target dtype to be Long or Byte, but got Float",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1), nn.Sigmoid())
            image = torch.randn(1, 1, 16, 16)
            mask = torch.randint(0, 2, (1, 16, 16)).float()
            loss = nn.BCELoss()(net(image), mask)
            """,
            lines=[7],
            raises="Using a target size (torch.Size([1, 16, 16])) that is different to the input size",
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        return shape_report.shape_flow.may_have_problems(text, statement, module)

    def check(self, unit: Unit) -> Iterator[Finding]:
        for problem in shape_report.of_code(unit, self.code):
            callee = shape_report.callee(unit, problem.node)
            if problem.kind == "softmax":
                sites = sorted(problem.data, key=lambda n: getattr(n, "lineno", 0))
                line = getattr(sites[0], "lineno", "?") if sites else "?"
                message = self.softmax_message.format(callee=callee, line=line)
                detail = (
                    "CrossEntropyLoss applies log_softmax to its input: softmax probabilities get squashed again, "
                    "the loss cannot go to zero and the gradients shrink. Pass the logits (drop the softmax)."
                )
            elif problem.kind == "target_dtype":
                message = self.dtype_message.format(callee=callee, dtype=problem.data)
                detail = (
                    shape_report.torch_says(problem) + shape_report.origin(unit, problem) + "; use `.long()`."
                )
            else:
                message = self.target_message.format(callee=callee, error=problem.message)
                if len(message) > 100:
                    x, t = (problem.inputs + (None, None))[:2]
                    message = (
                        f"`{callee}` gets a target of shape {shape_report.shape(t)} for an input of shape "
                        f"{shape_report.shape(x)}"
                    )
                detail = shape_report.torch_says(problem) + shape_report.origin(unit, problem) + "."
            yield self.finding(unit, problem.node, message, detail=detail)


_ = ast
