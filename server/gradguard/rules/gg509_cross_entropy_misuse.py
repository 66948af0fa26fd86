"""GG509: probabilities or targets of the wrong shape/dtype given to cross entropy (and the other losses)."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine import shape_report, torch_facts
from gradguard.engine.finding import Applicability, Finding, Severity
from gradguard.engine.index import ModuleContext, Unit, callee_name
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.rules import _shape_fixes as fixes


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
    fix_applicability = Applicability.SAFE
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

    Fixes, offered only where the shapes leave one repair: an int64 `(N, 1)` column for
    `(N, C)` logits gets `.squeeze(1)`; the rows of `one_hot(...)` flattened with
    `view(-1)` (or `reshape(-1)`, `flatten()`) become `.argmax(1)` (integer rows of
    another origin may be multi-hot: no fix); a BCE target lacking the input's size-1
    dimension (not dimension 0, the batch) gets `.unsqueeze(k)`, one with an extra one
    `.squeeze(k)`, when its dtype is the input's; a softmax written inside the loss call
    is dropped. A softmax elsewhere (in `forward`, or stored in a variable) has no fix:
    removing it changes what every caller of the model gets (inference code reading
    probabilities), so where to put the softmax is the author's decision; the message
    names the line the probabilities come from. Keeping the model and rewriting the loss
    call instead (`F.nll_loss(torch.log(probs), y)`) is not a repair either: it is the
    same loss only in exact arithmetic; once a confident prediction underflows a
    probability to 0, `log` gives `-inf`, the loss `inf` and every gradient `nan`, where
    `cross_entropy` on the logits stays finite.

    **Fix safety.** Safe when the shapes come from the code around the loss call: the
    call raised every time it ran (or, for the softmax, only the loss value changes).
    Unsafe when the shapes hold for the input of one call elsewhere (another caller may
    pass a target of the right shape, which `.squeeze(1)` would break).
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
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            model = nn.Linear(4, 3)
            x = torch.randn(1, 4)
            logits = model(x)
            y_conf = torch.ones_like(logits)
            loss = F.binary_cross_entropy(logits.softmax(dim=1), y_conf, reduction="sum")
            grads = torch.autograd.grad(loss, list(model.parameters()))
            """,
            run="""
            assert all(g is not None for g in grads) and torch.isfinite(loss)
            assert torch.allclose(loss, -logits.softmax(dim=1).log().sum())
            """,
            note="dev10 pytorch-ood detector/graduncertainty.py: `binary_cross_entropy` takes probabilities "
            "(its name ends with `cross_entropy`, but it is not CrossEntropyLoss)",
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
            fixed="""
            import torch
            import torch.nn as nn

            model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 7))
            criterion = nn.CrossEntropyLoss()
            images = torch.randn(5, 3, 8, 8)
            labels = torch.randint(0, 7, (5, 1))
            loss = criterion(model(images), labels.squeeze(1))
            """,
            raises="0D or 1D target tensor expected, multi-target not supported",
            check_fixed="assert loss.shape == ()",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            head = nn.Linear(16, 4)
            labels = nn.functional.one_hot(torch.randint(0, 4, (8,)), 4)
            loss = nn.CrossEntropyLoss()(head(torch.randn(8, 16)), labels.view(-1))
            """,
            lines=[6],
            fixed="""
            import torch
            import torch.nn as nn

            head = nn.Linear(16, 4)
            labels = nn.functional.one_hot(torch.randint(0, 4, (8,)), 4)
            loss = nn.CrossEntropyLoss()(head(torch.randn(8, 16)), labels.argmax(1))
            """,
            raises="Expected input batch_size (8) to match target batch_size (32).",
            check_fixed="assert loss.shape == ()",
            note="one-hot rows flattened: 32 targets for 8 samples",
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F

            logits = torch.randn(8, 4, requires_grad=True)
            labels = torch.randint(0, 4, (8,))
            loss = F.cross_entropy(F.softmax(logits, dim=1), labels)
            """,
            lines=[6],
            fixed="""
            import torch
            import torch.nn.functional as F

            logits = torch.randn(8, 4, requires_grad=True)
            labels = torch.randint(0, 4, (8,))
            loss = F.cross_entropy(logits, labels)
            """,
            check_fixed="assert torch.allclose(loss, F.nll_loss(F.log_softmax(logits, 1), labels))",
            note="the softmax written inside the loss call: dropped",
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
            fixed="""
            import torch
            import torch.nn as nn

            net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1), nn.Sigmoid())
            image = torch.randn(1, 1, 16, 16)
            mask = torch.randint(0, 2, (1, 16, 16)).float()
            loss = nn.BCELoss()(net(image), mask.unsqueeze(1))
            """,
            check_fixed="assert loss.shape == ()",
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
            fix = self._fix(unit, problem)
            yield self.finding(unit, problem.node, message, fix=fix, detail=detail)

    def _fix(self, unit: Unit, problem):
        call = problem.node
        x_node, t_node = fixes.argument(call, 0, "input"), fixes.argument(call, 1, "target")
        if problem.kind == "softmax":
            return self._drop_softmax(unit, problem, x_node)
        if problem.kind != "loss" or x_node is None or t_node is None or problem.flow is None:
            return None
        x, t = (fixes.exact(s) for s in (problem.inputs + (None, None))[:2])
        if x is None or t is None or len(x) < 2:
            return None
        target = problem.flow.value_of(t_node)
        what = problem.what.split("(", 1)[0]
        safety = fixes.applicability(problem)
        if what in torch_facts.class_index_losses():
            # `(N, 1)` class ids for `(N, C)` logits (C > 1): the column squeezed
            if (
                target.dtype == "int64"
                and len(t) == len(x)
                and fixes.is_one(t[1])
                and not fixes.is_one(x[1])
                and fixes.same_dims(t[:1] + t[2:], x[:1] + x[2:])
            ):
                return self.make_fix(
                    "Pass the class ids as a vector: `.squeeze(1)`",
                    [fixes.append(unit, t_node, ".squeeze(1)")],
                    safety,
                )
            return self._one_hot(unit, problem, x, t_node, safety)
        if what in torch_facts.SAME_SHAPE_LOSSES:
            # a mask missing the prediction's size-1 channel (or with one the prediction lacks)
            if target.dtype is None or target.dtype != problem.flow.value_of(x_node).dtype:
                return None  # a target of another dtype raises after the shape fix too
            k = fixes.extra_one(x, t)
            if k is not None:
                title, suffix = (
                    f"Give the target the input's size-1 dimension: `.unsqueeze({k})`",
                    f".unsqueeze({k})",
                )
            else:
                k = fixes.extra_one(t, x)
                if k is None:
                    return None
                title, suffix = f"Drop the target's extra size-1 dimension: `.squeeze({k})`", f".squeeze({k})"
            return self.make_fix(title, [fixes.append(unit, t_node, suffix)], safety)
        return None

    def _one_hot(self, unit: Unit, problem, x: tuple, t_node: ast.expr, safety):
        """`loss(logits, one_hot.view(-1))`: the one-hot rows flattened into N*C targets -> `argmax(1)`."""
        if len(x) != 2 or not isinstance(t_node, ast.Call) or not isinstance(t_node.func, ast.Attribute):
            return None
        method, receiver = t_node.func.attr, t_node.func.value
        if method not in torch_facts.FLATTENING_METHODS or t_node.keywords:
            return None
        sizes = [a.value if isinstance(a, ast.Constant) else a for a in t_node.args]
        if method == "flatten" and sizes not in ([], [0]):
            return None
        if method != "flatten" and not (
            len(t_node.args) == 1
            and isinstance(t_node.args[0], ast.UnaryOp)
            and isinstance(t_node.args[0].op, ast.USub)
            and isinstance(t_node.args[0].operand, ast.Constant)
            and t_node.args[0].operand.value == 1
        ):
            return None
        rows = problem.flow.value_of(receiver)
        shape = fixes.exact(rows.shape)
        if shape is None or not fixes.same_dims(shape, x) or rows.dtype != "int64":
            return None
        if not rows.sites or not all(_is_one_hot(site) for site in rows.sites):
            return None  # (N, C) integers of unknown origin may be multi-hot: no single repair
        receiver_text = unit.segment(receiver)
        if not isinstance(receiver, fixes._ATOMS):
            receiver_text = f"({receiver_text})"
        return self.make_fix(
            "Turn the one-hot rows into class ids: `.argmax(1)`",
            [fixes.replace(unit, t_node, f"{receiver_text}.argmax(1)")],
            safety,
        )

    def _drop_softmax(self, unit: Unit, problem, x_node: ast.expr | None):
        """`cross_entropy(torch.softmax(z, dim=1), y)` -> `cross_entropy(z, y)`: only when the softmax is
        written inside the loss call (elsewhere its result may be used too, or every caller of a
        `forward` gets logits instead of probabilities)."""
        if not isinstance(x_node, ast.Call) or x_node not in problem.data:
            return None
        logits = _softmax_input(x_node)
        if logits is None:
            return None
        return self.make_fix(
            "Pass the logits (drop the softmax)", [fixes.replace(unit, x_node, unit.segment(logits))]
        )


def _is_one_hot(site: ast.AST) -> bool:
    if not isinstance(site, ast.Call):
        return False
    func = site.func
    name = callee_name(func) or ""
    return name == "one_hot"


def _softmax_input(call: ast.Call) -> ast.expr | None:
    """The logits of `torch.softmax(z, 1)` / `F.softmax(z, dim=1)` / `z.softmax(1)` / `nn.Softmax(1)(z)`."""
    func = call.func
    if isinstance(func, ast.Call):  # nn.Softmax(dim=1)(z)
        inner = func.func
        name = (
            inner.attr
            if isinstance(inner, ast.Attribute)
            else inner.id
            if isinstance(inner, ast.Name)
            else ""
        )
        return call.args[0] if name == "Softmax" and len(call.args) == 1 and not call.keywords else None
    if isinstance(func, ast.Attribute) and func.attr == "softmax":
        if isinstance(func.value, ast.Name) and func.value.id in ("torch", "F", "functional", "special"):
            return call.args[0] if call.args else None
        if isinstance(func.value, ast.Attribute) and func.value.attr in ("functional", "special"):
            return call.args[0] if call.args else None
        return func.value  # z.softmax(1)
    if isinstance(func, ast.Name) and func.id == "softmax":
        return call.args[0] if call.args else None
    return None


_ = ast
