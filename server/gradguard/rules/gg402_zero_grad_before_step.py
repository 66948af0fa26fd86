"""GG402: `zero_grad()` between `backward()` and `step()` in the same iteration."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.finding import Applicability, Finding
from gradguard.engine.fixes import delete_statement, insert_before_statement, trailing_comment
from gradguard.engine.index import Unit
from gradguard.engine.loops import BACKWARD, STEP, ZERO, training_loops
from gradguard.engine.rule import Invalid, Rule, Valid


class ZeroGradBeforeStep(Rule):
    code = "GG402"
    triggers = ("backward",)  # only looks at training_loops()
    name = "zero-grad-before-step"
    summary = "`optimizer.zero_grad()` runs after `backward()` but before `optimizer.step()`."
    message = (
        "`{call}` clears the gradients that `backward()` just computed, before `{optimizer}.step()` "
        "uses them: the step does not see this iteration's gradients; call it before `backward()`"
    )
    explanation = """
    `optimizer.step()` updates each parameter from its `.grad`. When
    `optimizer.zero_grad()` runs between `loss.backward()` and `optimizer.step()`, the
    gradients of this iteration are thrown away before the step can use them.

    Since PyTorch 2.0, `zero_grad()` sets `.grad` to `None` by default, and optimizers
    skip parameters whose `.grad` is `None`: **the parameters never change** and the
    model does not learn, without any error. (With `zero_grad(set_to_none=False)` the
    step sees all-zero gradients; only momentum or weight decay still move the
    parameters.)

    Clear the gradients at the start of the iteration, before the forward pass or at
    least before `backward()`: `zero_grad()`, `backward()`, `step()`.
    """
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import torch

            def train(model, optimizer, loader):
                for x, y in loader:
                    loss = torch.nn.functional.mse_loss(model(x), y)
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
            """,
            note="zero_grad after the step is fine",
        ),
        Valid(
            """
            import torch

            def train(netD, netG, optD, optG, loader, criterion, z):
                for real in loader:
                    optD.zero_grad()
                    fake = netG(z)
                    lossD = criterion(netD(real), 1) + criterion(netD(fake.detach()), 0)
                    lossD.backward()
                    optG.zero_grad()
                    optD.step()
                    lossG = criterion(netD(fake), 1)
                    lossG.backward()
                    optG.step()
            """,
            note="GAN: clearing the other optimizer's gradients is fine",
        ),
        Valid(
            """
            import torch

            def train(model, optimizer, loader, k):
                for i, (x, y) in enumerate(loader):
                    loss = torch.nn.functional.mse_loss(model(x), y)
                    loss.backward()
                    if i % k == 0:
                        optimizer.zero_grad()
                    optimizer.step()
            """,
            note="conditional: not provably every iteration",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            x, y = torch.randn(32, 4), torch.randn(32, 1)
            for step in range(10):
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                optimizer.zero_grad()
                optimizer.step()
            """,
            lines=[9],
            fixed="""
            import torch

            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            x, y = torch.randn(32, 4), torch.randn(32, 1)
            for step in range(10):
                loss = torch.nn.functional.mse_loss(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            run="before = model.weight.detach().clone()",
            check_fixed="""
            loss = torch.nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            assert not torch.equal(model.weight, before)
            """,
        ),
        Invalid(
            """
            import torch

            def fit(model, opt, loader):
                for x, y in loader:
                    out = model(x)
                    loss = torch.nn.functional.cross_entropy(out, y)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.zero_grad(set_to_none=True)
                    opt.step()
            """,
            lines=[9],
            fixed="""
            import torch

            def fit(model, opt, loader):
                for x, y in loader:
                    out = model(x)
                    loss = torch.nn.functional.cross_entropy(out, y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.step()
            """,
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for loop in training_loops(unit):
            events = [e for e in loop.events if e.straight]
            for index, step in enumerate(events):
                if step.kind != STEP or step.optimizer is None:
                    continue
                before = events[:index]
                backward_at = max((i for i, e in enumerate(before) if e.kind == BACKWARD), default=None)
                if backward_at is None:
                    continue
                for zero in before[backward_at + 1 :]:
                    if zero.kind != ZERO or zero.optimizer != step.optimizer:
                        continue
                    call = unit.segment(zero.node)
                    if len(call) > 60:
                        call = f"{zero.optimizer}.zero_grad()"
                    fix = None
                    stmt = zero.statement
                    if isinstance(stmt, ast.Expr) and stmt.value is zero.node:
                        backward_stmt = before[backward_at].statement
                        fix = self.make_fix(
                            "Move `zero_grad()` before `backward()`",
                            [
                                # the comment moves with the statement; `a(); zero_grad()` keeps `a()`
                                insert_before_statement(
                                    unit, backward_stmt, unit.segment(stmt), trailing_comment(unit, stmt)
                                ),
                                delete_statement(unit, stmt),
                            ],
                        )
                    yield self.finding(
                        unit, zero.node, self.message.format(call=call, optimizer=step.optimizer), fix=fix
                    )
