"""GG301: a value cut from the graph is what the loss (or forward's output) is made of."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from gradguard.engine.dataflow import CUT, backward_calls, describe, flow_of, forward_functions, node_text
from gradguard.engine.finding import Finding
from gradguard.engine.index import ModuleContext, Unit, keyword
from gradguard.engine.rule import Invalid, Rule, Valid

_CUT_TEXT = re.compile(r"detach|\.data\b|\.item\(|\.tolist\(|\.numpy\(|tensor\(|float\(|from_numpy")


class DetachedLoss(Rule):
    code = "GG301"
    name = "detached-loss"
    summary = "The loss (or `forward`'s output) is computed only from values cut from the graph."
    why = (
        "A value from `.detach()`, `.item()`, `.data` and the like is not tracked by autograd, so a loss "
        "computed only from it sends no gradient to the model."
    )
    message = "`{cut}` cuts the graph, and `{loss}` reaches the model only through it"
    explanation = """
    `.detach()`, `.data`, `.item()`, `.tolist()`, `.numpy()`, `float(...)`, and copying a
    tensor into a new one with `torch.tensor(...)` all give a value that autograd does
    not track: nothing computed from it leads back to the parameters.

    When the loss you call `.backward()` on depends on the model only through such a
    value, no gradient reaches the model. If nothing else in the loss requires grad,
    PyTorch says so:
    *"element 0 of tensors does not require grad and does not have a grad_fn"* (and a
    Python number from `.item()`/`float()` has no `.backward()` at all). Re-wrapping
    with `torch.tensor(loss.item(), requires_grad=True)` silences that error but makes a
    new leaf: backward stops there and the parameters still get no gradient.
    Returning a cut value from `forward` has the same effect for every caller.

    Use the tensor itself in the loss and call `.item()` only for logging. Cutting is
    right, and not reported, where the cut value is a *target* or a *constant* next to a
    tracked prediction: a DQN target, a GAN discriminator step on `fake.detach()`, a
    teacher's output in distillation, a straight-through estimator
    `x + (q - x).detach()`.
    """

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            def dqn_step(q_net, target_net, optimizer, s, a, r, s2, done, gamma=0.99):
                q = q_net(s).gather(1, a.unsqueeze(1)).squeeze(1)
                next_q = target_net(s2).max(1)[0].detach()
                target = r + gamma * next_q * (1 - done)
                loss = F.smooth_l1_loss(q, target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                return loss.item()
            """,
            note="DQN target is detached; the prediction q is tracked",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            def gan_step(G, D, opt_d, opt_g, real, z):
                bce = nn.BCEWithLogitsLoss()
                fake = G(z)
                d_loss = bce(D(real), torch.ones(real.size(0), 1)) + bce(D(fake.detach()), torch.zeros(real.size(0), 1))
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
                g_loss = bce(D(fake), torch.ones(real.size(0), 1))
                opt_g.zero_grad()
                g_loss.backward()
                opt_g.step()
            """,
            note="GAN: the discriminator step trains D on fake.detach()",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Quantizer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.proj = nn.Linear(16, 16)

                def forward(self, x):
                    h = self.proj(x)
                    q = torch.round(h * 4) / 4
                    return h + (q - h).detach()
            """,
            note="straight-through estimator",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(10, 2)
            criterion = nn.CrossEntropyLoss()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            running = 0.0
            for step in range(10):
                x, y = torch.randn(8, 10), torch.randint(0, 2, (8,))
                out = model(x)
                loss = criterion(out, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                running += loss.item()
                loss = loss.detach()
                acc = (out.detach().argmax(1) == y).float().mean().item()
            """,
            note=".item()/.detach() only for logging, after backward",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            def distill(student, teacher, x, optimizer, T=2.0):
                with torch.no_grad():
                    soft = F.softmax(teacher(x) / T, dim=1)
                logits = student(x)
                loss = F.kl_div(F.log_softmax(logits / T, dim=1), soft.detach(), reduction="batchmean")
                loss.backward()
                optimizer.step()
            """,
            note="distillation: the teacher's output is a target",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Encoder(nn.Module):
                def __init__(self, freeze=False):
                    super().__init__()
                    self.body = nn.Linear(8, 8)
                    self.freeze = freeze

                def forward(self, x):
                    feats = self.body(x)
                    if self.freeze:
                        feats = feats.detach()
                    return feats, feats.detach()
            """,
            note="conditional detach; a detached copy next to the tracked output",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(10, 1)
            criterion = nn.MSELoss()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
            X = torch.randn(100, 10)
            y = torch.randn(100, 1)
            for epoch in range(3):
                output = model(X)
                intermediate = output.detach()
                loss = criterion(intermediate, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            lines=[11],
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            def train_step(model, optimizer, x, y):
                pred = model(x).data
                loss = F.mse_loss(pred, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            lines=[6],
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            run="""
            m = nn.Linear(3, 1)
            train_step(m, torch.optim.SGD(m.parameters(), lr=0.1), torch.randn(4, 3), torch.randn(4, 1))
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Scorer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 1)

                def forward(self, x):
                    score = torch.sigmoid(self.fc(x))
                    return score.detach()
            """,
            lines=[11],
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            run="Scorer()(torch.randn(4, 8)).sum().backward()",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            net = nn.Linear(4, 1)
            x, y = torch.randn(16, 4), torch.randn(16, 1)
            mse = nn.MSELoss()(net(x), y).item()
            loss = torch.tensor(mse, requires_grad=True)
            loss.backward()
            """,
            lines=[6],
            note="re-wrapping makes backward run, but it stops at the new leaf",
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F

            class Trainer:
                def __init__(self, model, optimizer):
                    self.model = model
                    self.optimizer = optimizer
                    self.criterion = F.cross_entropy

                def train_step(self, x, y):
                    logits = self.model(x)
                    probs = logits.detach()
                    loss = self.criterion(probs, y)
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()

                def eval_step(self, x, y):
                    with torch.no_grad():
                        logits = self.model(x)
                    return (logits.argmax(1) == y).float().mean().item()
            """,
            lines=[12],
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            run="""
            m = torch.nn.Linear(4, 3)
            Trainer(m, torch.optim.SGD(m.parameters(), lr=0.1)).train_step(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]))
            """,
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        # `check` reports a backpropagated loss (`backward_calls` needs `.backward(`) or a cut
        # value returned by an nn.Module's forward (its text matches _CUT_TEXT)
        if ".backward(" in text:
            return True
        return (
            isinstance(statement, ast.ClassDef)
            and module.is_module_class(statement.name)
            and _CUT_TEXT.search(text) is not None
        )

    def check(self, unit: Unit) -> Iterator[Finding]:
        for call, value in backward_calls(unit):
            if not value.only(CUT):
                continue
            loss = describe(call.func.value, unit)  # type: ignore[attr-defined]
            for origin in value.origins_of("cut"):
                if _reported_as_rewrap(origin):
                    continue
                message = (
                    f"`{describe(origin, unit)}` is cut from the autograd graph, and `{loss}` "
                    f"(backpropagated on line {call.lineno}) depends on the model only through it: "
                    "no gradient reaches the parameters"
                )
                yield self.finding(unit, origin, message)
        for func in forward_functions(unit):
            if unit.decorator_disables_grad(func) or not _CUT_TEXT.search(node_text(unit, func)):
                continue
            flow = flow_of(unit, func)
            for ret, value in flow.returns:
                if not value.only(CUT):
                    continue
                for origin in value.origins_of("cut"):
                    if not getattr(origin, "gg_cut_live", False) or unit.in_no_grad(origin):
                        continue
                    if _reported_as_rewrap(origin):
                        continue
                    message = (
                        f"`forward` returns `{describe(origin, unit)}`, which is cut from the autograd graph: "
                        "no gradient reaches this module's parameters through its output"
                    )
                    yield self.finding(unit, origin, message)


def _reported_as_rewrap(origin: ast.AST) -> bool:
    """`torch.tensor(tracked)` is GG305's finding (with a fix); do not report it twice."""
    return (
        isinstance(origin, ast.Call)
        and getattr(origin, "gg_rewrap", False)
        and getattr(origin, "gg_cut_live", False)
        and keyword(origin, "requires_grad") is None
    )
