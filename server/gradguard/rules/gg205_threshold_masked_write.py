"""GG205: `h[h < 0] = 0` on a tensor the model computes: the out-of-place form says the same, safely."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.finding import Applicability, Finding, Severity
from gradguard.engine.fixes import masked_write_rewrite, replace_node
from gradguard.engine.index import Unit
from gradguard.engine.inplace import OTHER, callers_tensor, local_tensor, masked_writes
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.values import MAYBE, YES


class ThresholdMaskedWrite(Rule):
    code = "GG205"
    name = "threshold-masked-write"
    triggers = ("] =", "]=")
    summary = (
        "A masked in-place write (`h[h < 0] = 0`) on a tensor the model computes; use the out-of-place form."
    )
    message = Message(
        "`{name}[...] = ...` writes into `{name}` in place\n`{suggestion}` computes the same out of place."
    )
    why = (
        "It runs and its gradient is right, but it writes in place: it breaks as soon as the op before it "
        "saves its output for backward, and `torch.relu`/`clamp`/`masked_fill` say the same out of place."
    )
    explanation = """
    `h[h < 0] = 0` on a tensor that autograd tracks runs, and its gradient is right
    (masked entries get zero gradient). But it is an in-place write, and in-place writes
    break autograd as soon as the code around them changes: when `h` becomes the output of
    an op that saves it for backward (`sigmoid`, `tanh`, `exp`, `relu`, `softmax`, ...)
    backward raises "one of the variables needed for gradient computation has been
    modified by an inplace operation" (GG202), and when `h` is a leaf that requires grad
    PyTorch raises at once (GG203). A caller holding the same tensor also sees it change.

    The out-of-place forms compute exactly the same values and cannot break later:

    * `h[h < 0] = 0` → `h = torch.relu(h)` (or `F.relu(h)`);
    * `h[h < t] = t` → `h = h.clamp(min=t)`, `h[h > t] = t` → `h = h.clamp(max=t)`;
    * any other `h[mask] = v` → `h = h.masked_fill(mask, v)` (a scalar written through a
      comparison of `h`), or `h = h.index_put((mask,), v)` (any mask and value: exactly
      what the item assignment writes).

    This is information, not a warning: the code is correct today. Writes into tensors
    that do not require grad (data, masks, freshly allocated buffers) are not reported.
    Being a suggestion, it is shown in the editor; `gradguard check` reports it only when
    selected by name (`--select GG205`, or `select` in the configuration), so that a CI run
    lists problems only.

    **Fix safety.** Safe when the tensor was created in the same function and no other
    name holds it: rebinding the name changes nothing else. Unsafe when the tensor is an
    argument or may be held elsewhere: the caller's tensor is no longer modified.
    """
    severity = Severity.INFORMATION
    suggestion = True
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    h = self.fc(x)
                    mask = torch.zeros_like(h)
                    mask[h > 0] = 1.0
                    with torch.no_grad():
                        h[h > 100] = 100
                    return h * mask

            data = torch.randn(8, 4)
            data[data < -3] = -3
            """,
            note="a fresh mask, a write under no_grad, input data",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class MaskedLM(nn.Module):
                def __init__(self, vocab=100, dim=16):
                    super().__init__()
                    self.embed = nn.Embedding(vocab, dim)
                    self.head = nn.Linear(dim, vocab)

                def forward(self, input_ids, labels):
                    scores = self.head(self.embed(input_ids))
                    loss = nn.CrossEntropyLoss()(scores.view(-1, scores.size(-1)), labels.view(-1))
                    targets = torch.clone(labels)
                    targets[targets == -100] = 0
                    return loss, self.head(self.embed(targets))
            """,
            run="""
            labels = torch.tensor([[5, -100, 7]])
            loss, out = MaskedLM()(torch.tensor([[1, 2, 3]]), labels)
            (loss + out.sum()).backward()
            """,
            note="a clone of integer labels (the class target two lines up): not a tensor the model computes "
            "(transformers models/roc_bert/modeling_roc_bert.py)",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    h = self.fc(x)
                    h[h < 0] = 0
                    return h
            """,
            lines=[11],
            fixed="""
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    h = self.fc(x)
                    h = torch.relu(h)
                    return h
            """,
            run="torch.manual_seed(0); m = Net(); x = torch.randn(8, 4); out = m(x); out.sum().backward()",
            check_fixed=(
                "torch.manual_seed(0); m = Net(); x = torch.randn(8, 4); out = m(x); out.sum().backward()\n"
                "assert torch.equal(out, torch.relu(m.fc(x))) and m.fc.weight.grad is not None"
            ),
            note="the most common form: it runs, and breaks as soon as the layer before it changes",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class Squash(nn.Module):
                def __init__(self, limit):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)
                    self.limit = limit

                def forward(self, x):
                    x = torch.sigmoid(self.fc(x)) - 0.5
                    x[x < 0] = 0
                    out = x * self.limit
                    out[out > self.limit * 0.25] = self.limit * 0.25
                    return out
            """,
            lines=[13, 15],
            fixed="""
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class Squash(nn.Module):
                def __init__(self, limit):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)
                    self.limit = limit

                def forward(self, x):
                    x = torch.sigmoid(self.fc(x)) - 0.5
                    x = F.relu(x)
                    out = x * self.limit
                    out = out.clamp(max=self.limit * 0.25)
                    return out
            """,
            run="m = Squash(2.0); m(torch.randn(8, 4)).sum().backward()",
            check_fixed=(
                "m = Squash(2.0); y = m(torch.randn(8, 4)); y.sum().backward()\n"
                "assert float(y.max()) <= 0.5 and float(y.min()) >= 0 and m.fc.weight.grad is not None"
            ),
            note="a threshold that is an expression; F.relu when the file uses F",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            def clip_scores(model: nn.Module, x, floor):
                scores = model(x)
                scores[scores < floor] = floor
                scores[scores.isnan()] = 0.0
                return scores
            """,
            lines=[6],
            fixed="""
            import torch
            import torch.nn as nn

            def clip_scores(model: nn.Module, x, floor):
                scores = model(x)
                scores = scores.clamp(min=floor)
                scores[scores.isnan()] = 0.0
                return scores
            """,
            run="clip_scores(torch.nn.Linear(3, 2), torch.randn(4, 3), 0.1).sum().backward()",
            check_fixed=(
                "m = torch.nn.Linear(3, 2); s = clip_scores(m, torch.randn(4, 3), 0.1); s.sum().backward()\n"
                "assert float(s.min()) >= 0.1 and m.weight.grad is not None"
            ),
            note="a mask that is not a comparison of the tensor itself is not a threshold write",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for write in masked_writes(unit):
            if write.masked is None or write.kind != OTHER or write.event.nograd is not None:
                continue
            value = write.value
            if (
                not value.is_tensor
                or value.dtype is not None
                and not value.dtype.startswith(("float", "bfloat"))
            ):
                continue
            tracked = value.grad == YES or (value.grad == MAYBE and write.in_forward)
            if not tracked or value.leaf == YES or (write.in_forward and callers_tensor(write)):
                continue  # data, fresh tensors; forward's own input is GG202's
            target, name = write.masked
            statement = write.event.statement
            assert isinstance(statement, ast.Assign)
            value_is_tensor = write.event.args[0].is_tensor if write.event.args else False
            build, suggestion = masked_write_rewrite(
                unit, name, target.slice, statement.value, value_is_tensor
            )
            applicability = Applicability.SAFE if local_tensor(write) else Applicability.UNSAFE
            fix = self.make_fix(
                f"Replace with `{suggestion}`",
                lambda s=statement, b=build: [replace_node(unit, s, b())],
                applicability,
            )
            yield self.finding(
                unit, statement, self.message.format(name=name, suggestion=suggestion), fix=fix
            )
