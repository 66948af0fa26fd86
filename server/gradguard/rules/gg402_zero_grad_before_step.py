"""GG402: `zero_grad()` between `backward()` and `step()` in the same iteration."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.finding import Applicability, Finding
from gradguard.engine.fixes import delete_statement, insert_before_statement, trailing_comment
from gradguard.engine.index import Unit
from gradguard.engine.loops import BACKWARD, STEP, ZERO, block_of, step_optimizer, training_loops
from gradguard.engine.rule import Invalid, Message, Rule, Valid


class ZeroGradBeforeStep(Rule):
    code = "GG402"
    triggers = ("backward",)  # only looks at training_loops()
    name = "zero-grad-before-step"
    summary = "`optimizer.zero_grad()` runs after `backward()` but before `optimizer.step()`."
    why = (
        "`zero_grad()` between `backward()` and `step()` throws this iteration's gradients away: with the "
        "default `set_to_none=True` the step skips every parameter and the model does not learn."
    )
    message = Message(
        "`{call}` between `backward()` and `{optimizer}.step()` throws the gradients away\nIt clears "
        "the gradients that `backward()` just computed, so the step does not see this iteration's "
        "gradients; call it before `backward()`."
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

    **Fix safety.** Unsafe: the fix moves `zero_grad()` (or `backward()`) so that the gradients
    are cleared before `backward()` and used by `step()`; code between them that reads `.grad`
    (clipping, logging) then sees this iteration's gradients. In a gradient-accumulation loop it
    moves `zero_grad()` before the loop: the step then uses the sum of every micro-batch's
    gradients, larger than the last one's alone unless each loss is divided by the number of
    micro-batches, and code in the loop that reads `.grad` sees the running sum.
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
        Invalid(
            """
            import torch

            torch.manual_seed(0)
            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
            batch, target = torch.randn(16, 4), torch.randn(16, 1)
            for micro_x, micro_y in zip(batch.chunk(4), target.chunk(4)):
                optimizer.zero_grad(set_to_none=True)
                loss = torch.nn.functional.mse_loss(model(micro_x), micro_y) / 4
                loss.backward()
            optimizer.step()
            """,
            lines=[8],
            fixed="""
            import torch

            torch.manual_seed(0)
            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
            batch, target = torch.randn(16, 4), torch.randn(16, 1)
            optimizer.zero_grad(set_to_none=True)
            for micro_x, micro_y in zip(batch.chunk(4), target.chunk(4)):
                loss = torch.nn.functional.mse_loss(model(micro_x), micro_y) / 4
                loss.backward()
            optimizer.step()
            """,
            run="full = torch.autograd.grad(torch.nn.functional.mse_loss(model(batch), target), model.weight)[0]",
            check_fixed="assert torch.allclose(model.weight.grad, full, rtol=0.05, atol=1e-4)",
            note="zero_grad inside a gradient-accumulation loop: the step sees the last micro-batch only "
            "(bytetriper/RAE#67)",
        ),
    ]

    micro_message = Message(
        "`{call}` in this loop keeps only the last iteration's gradients\nIt runs on every iteration, "
        "erasing what the earlier ones accumulated, and `{optimizer}.step()` after the loop uses the last "
        "one's gradients only; clear the gradients before the loop."
    )

    def check(self, unit: Unit) -> Iterator[Finding]:
        for loop in training_loops(unit):
            yield from self._accumulation_loop(unit, loop)
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

    def _accumulation_loop(self, unit: Unit, loop) -> Iterator[Finding]:
        """Gradient accumulation over a loop whose every iteration clears the gradients first:
        `for micro in batches: opt.zero_grad(); loss.backward()`, then `opt.step()` after it."""
        events = [e for e in loop.events if e.straight]
        if any(e.kind == STEP for e in loop.events):
            return
        zeros = [e for e in events if e.kind == ZERO and e.optimizer is not None]
        backwards = [e for e in events if e.kind == BACKWARD and not e.retain_graph]
        if not zeros or not backwards:
            return
        zero = zeros[0]
        if zero.position > backwards[-1].position:
            return
        steps = _steps_after(unit, loop.loop)
        if zero.optimizer not in steps:
            return
        call = unit.segment(zero.node)
        if len(call) > 60:
            call = f"{zero.optimizer}.zero_grad()"
        fix = None
        stmt = zero.statement
        if isinstance(stmt, ast.Expr) and stmt.value is zero.node and stmt in getattr(loop.loop, "body", []):
            fix = self.make_fix(
                "Move `zero_grad()` before the loop",
                [
                    insert_before_statement(
                        unit, loop.loop, unit.segment(stmt), trailing_comment(unit, stmt)
                    ),
                    delete_statement(unit, stmt),
                ],
            )
        message = self.micro_message.format(call=call, optimizer=zero.optimizer)
        yield self.finding(unit, zero.node, message, fix=fix)


def _steps_after(unit: Unit, loop: ast.AST) -> set[str]:
    """Optimizers stepped by the statements that follow the loop in its block."""
    found = block_of(unit, loop)
    block = found[2] if found is not None else (unit.nodes if loop in unit.nodes else [])
    names = set()
    after = False
    for stmt in block:
        if stmt is loop:
            after = True
            continue
        if not after:
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call):
                name = step_optimizer(unit, node)
                if name is not None:
                    names.add(name)
    return names
