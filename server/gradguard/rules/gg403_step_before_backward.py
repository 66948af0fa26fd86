"""GG403: `optimizer.step()` before `loss.backward()` in the same iteration."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.finding import Applicability, Finding
from gradguard.engine.fixes import delete_statement, insert_after_statement, trailing_comment
from gradguard.engine.index import Unit
from gradguard.engine.loops import BACKWARD, STEP, block_of, training_loops
from gradguard.engine.rule import Invalid, Message, Rule, Valid


class StepBeforeBackward(Rule):
    code = "GG403"
    triggers = ("backward",)  # only looks at training_loops()
    name = "step-before-backward"
    summary = "`optimizer.step()` is called before `loss.backward()` in the same iteration."
    why = (
        "`optimizer.step()` uses `.grad` as it is when the step runs, so a step before `backward()` applies "
        "the previous iteration's gradients (or none at all)."
    )
    message = Message(
        "`{optimizer}.step()` runs before `backward()` in this iteration\nIt cannot use this "
        "iteration's gradients; call `backward()` first."
    )
    explanation = """
    `optimizer.step()` reads the `.grad` of each parameter *as it is when the step runs*.
    When it comes before `loss.backward()` in the loop body, every step applies the
    gradients of the previous iteration (and on the first iteration, when `.grad` is
    still `None`, it changes nothing). If `zero_grad()` also runs before the step, the
    step never sees any gradient and the parameters never change. Nothing raises.

    The order within one iteration is: forward, `optimizer.zero_grad()`,
    `loss.backward()`, `optimizer.step()`.

    **Fix safety.** Unsafe: the fix moves `step()` after `backward()`; the parameters are then
    updated with this iteration's gradients, so the training trajectory changes (as intended).
    """
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import torch

            def train(model, optimizer, scheduler, loader):
                for x, y in loader:
                    scheduler.step()
                    optimizer.zero_grad()
                    loss = torch.nn.functional.mse_loss(model(x), y)
                    loss.backward()
                    optimizer.step()
            """,
            note="scheduler step first is fine",
        ),
        Valid(
            """
            import torch

            def train(model, optimizer, loader):
                for x, y in loader:
                    def closure():
                        optimizer.zero_grad()
                        loss = torch.nn.functional.mse_loss(model(x), y)
                        loss.backward()
                        return loss
                    optimizer.step(closure)
            """,
            note="LBFGS closure",
        ),
        Valid(
            """
            import torch

            def train(env, policy, optimizer, episodes):
                for episode in range(episodes):
                    obs = env.reset()
                    obs, reward, done, info = env.step(policy(obs))
                    optimizer.zero_grad()
                    loss = -policy(obs).sum() * reward
                    loss.backward()
                    optimizer.step()
            """,
            note="an environment step",
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
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                optimizer.step()
                loss.backward()
            """,
            lines=[9],
            fixed="""
            import torch

            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            x, y = torch.randn(32, 4), torch.randn(32, 1)
            for step in range(10):
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                optimizer.step()
            """,
            run="before = model.weight.detach().clone()",
            check_fixed="""
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            assert not torch.equal(model.weight, before)
            """,
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for loop in training_loops(unit):
            first_backward = next((e for e in loop.events if e.kind == BACKWARD), None)
            if first_backward is None or not first_backward.straight:
                continue
            step = next((e for e in loop.events if e.kind == STEP), None)
            if step is None or not step.straight or step.position > first_backward.position:
                continue
            call = step.node
            if (
                isinstance(call, ast.Call)
                and call.args
                and step.optimizer
                and "scaler" not in unit.segment(call.func)
            ):
                continue  # step(closure) computes its own backward
            backwards = [e for e in loop.events if e.kind == BACKWARD and e.straight]
            last = backwards[-1]
            fix = None
            stmt = step.statement
            target = last.statement
            step_block = block_of(unit, stmt)
            target_block = block_of(unit, target)
            if (
                isinstance(stmt, ast.Expr)
                and stmt.value is call
                and step_block is not None
                and target_block is not None
                and step_block[2] is target_block[2]
            ):
                # right after the backward (`; step()` when it shares its line), with its comment
                insert = insert_after_statement(
                    unit, target, unit.segment(stmt), trailing_comment(unit, stmt)
                )
                fix = self.make_fix(
                    "Move the step after `backward()`", [delete_statement(unit, stmt), insert]
                )
            yield self.finding(unit, call, self.message.format(optimizer=step.optimizer), fix=fix)
