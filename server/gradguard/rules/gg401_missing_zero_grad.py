"""GG401: a training loop that never clears gradients."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.finding import Applicability, Finding
from gradguard.engine.fixes import insert_before_statement
from gradguard.engine.index import Unit
from gradguard.engine.loops import (
    BACKWARD,
    STEP,
    ZERO,
    callees_zero_grad,
    looks_like_optimizer,
    loop_assigned,
    training_loops,
)
from gradguard.engine.rule import Invalid, Message, Rule, Valid


class MissingZeroGrad(Rule):
    code = "GG401"
    triggers = ("backward",)  # only looks at training_loops()
    name = "missing-zero-grad"
    summary = (
        "A training loop calls `backward()` and `optimizer.step()` every iteration but never `zero_grad()`."
    )
    why = (
        "`loss.backward()` adds to `.grad` instead of overwriting it: without `zero_grad()` every step uses "
        "the sum of all the gradients so far."
    )
    message = Message(
        "Gradients are never cleared in this loop: `{optimizer}.step()` applies their running sum\nEach "
        "`backward()` adds to the `.grad` left by earlier iterations, so the step applies the sum of all "
        "gradients so far; call `{optimizer}.zero_grad()` before `backward()`."
    )
    partial_message = Message(
        "`{optimizer}.step()` runs every iteration but `{optimizer}`'s gradients are never cleared\nOnly "
        "other optimizers' are: each `backward()` adds to them, so the step applies the sum of all "
        "gradients so far; call `{optimizer}.zero_grad()` before `backward()`."
    )
    explanation = """
    `loss.backward()` does not overwrite `.grad`: it *adds* this iteration's gradient
    to whatever is already stored there. That is what makes gradient accumulation
    possible, and it is why a training loop must clear the gradients once per
    optimizer step, with `optimizer.zero_grad()` (or `model.zero_grad()`).

    Without it, the gradient used by the *n*-th `optimizer.step()` is the sum of the
    gradients of all *n* iterations so far. Nothing raises: the loss usually just
    oscillates or diverges, because the effective step keeps growing.

    Put `optimizer.zero_grad()` at the start of the iteration (or right after
    `optimizer.step()`). Loops that clear gradients only every *k* iterations
    (`if (i + 1) % k == 0: optimizer.step(); optimizer.zero_grad()`) are gradient
    accumulation and are not reported; neither are loops that set `p.grad = None`
    themselves or call a helper that does.

    **Fix safety.** Unsafe: `zero_grad()` is inserted in the loop before `backward()`; if the
    gradients were accumulated over several iterations on purpose, move it to where a step ends.
    """
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import torch

            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for step in range(100):
                x = torch.randn(8, 4)
                loss = model(x).pow(2).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            """,
            note="ordinary loop",
        ),
        Valid(
            """
            import torch

            def train(model, optimizer, loader, accumulation=4):
                for i, (x, y) in enumerate(loader):
                    loss = torch.nn.functional.mse_loss(model(x), y) / accumulation
                    loss.backward()
                    if (i + 1) % accumulation == 0:
                        optimizer.step()
                        optimizer.zero_grad()
            """,
            note="gradient accumulation",
        ),
        Valid(
            """
            import torch

            def train(model, optimizer, scheduler, loader):
                for x, y in loader:
                    for p in model.parameters():
                        p.grad = None
                    loss = torch.nn.functional.mse_loss(model(x), y)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
            """,
            note="gradients cleared by hand",
        ),
        Valid(
            """
            import torch

            def reset(model):
                model.zero_grad()

            def train(model, opt, loader):
                for x, y in loader:
                    reset(model)
                    loss = (model(x) - y).pow(2).mean()
                    loss.backward()
                    opt.step()
            """,
            note="a helper clears the gradients",
        ),
        Valid(
            """
            import torch

            def train(model, loader, scheduler):
                for x, y in loader:
                    loss = (model(x) - y).pow(2).mean()
                    loss.backward()
                    scheduler.step()
            """,
            note="a scheduler step is not an optimizer step",
        ),
    ]
    VALID += [
        Valid(
            """
            import torch

            def train(G, D, opt_g, opt_d, loader):
                for real in loader:
                    fake = G(torch.randn(real.size(0), 8))
                    opt_d.zero_grad()
                    (D(real).mean() - D(fake.detach()).mean()).backward()
                    opt_d.step()
                    opt_g.zero_grad()
                    (-D(fake).mean()).backward()
                    opt_g.step()
            """,
            note="GAN: each optimizer clears its own gradients",
        ),
        Valid(
            """
            import torch

            def train(model, optimizers, loader):
                for x in loader:
                    for opt in optimizers:
                        opt.zero_grad()
                    model(x).sum().backward()
                    optimizers[0].step()
                    enc_opt.step()
            """,
            note="cleared through a loop over the optimizers: not provably missing",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            torch.manual_seed(0)
            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
            data = torch.randn(64, 4)
            target = data @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
            for epoch in range(200):
                loss = torch.nn.functional.mse_loss(model(data), target)
                loss.backward()
                optimizer.step()
            """,
            lines=[10],
            fixed="""
            import torch

            torch.manual_seed(0)
            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
            data = torch.randn(64, 4)
            target = data @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
            for epoch in range(200):
                loss = torch.nn.functional.mse_loss(model(data), target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            check_fixed="assert torch.nn.functional.mse_loss(model(data), target).item() < 1e-3",
        ),
        Invalid(
            """
            import torch

            def train(model, opt, scaler, loader):
                model.train()
                for x, y in loader:
                    with torch.autocast("cpu"):
                        loss = torch.nn.functional.cross_entropy(model(x), y)
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
            """,
            lines=[8],
            fixed="""
            import torch

            def train(model, opt, scaler, loader):
                model.train()
                for x, y in loader:
                    with torch.autocast("cpu"):
                        loss = torch.nn.functional.cross_entropy(model(x), y)
                    opt.zero_grad()
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
            """,
        ),
        Invalid(
            """
            import torch

            def train_gan(G, D, opt_g, opt_d, loader, z_dim=8):
                for real in loader:
                    fake = G(torch.randn(real.size(0), z_dim))
                    opt_d.zero_grad()
                    d_loss = D(real).mean() - D(fake.detach()).mean()
                    d_loss.backward()
                    opt_d.step()
                    g_loss = -D(fake).mean()
                    g_loss.backward()
                    opt_g.step()
            """,
            lines=[11],
            fixed="""
            import torch

            def train_gan(G, D, opt_g, opt_d, loader, z_dim=8):
                for real in loader:
                    fake = G(torch.randn(real.size(0), z_dim))
                    opt_d.zero_grad()
                    d_loss = D(real).mean() - D(fake.detach()).mean()
                    d_loss.backward()
                    opt_d.step()
                    g_loss = -D(fake).mean()
                    opt_g.zero_grad()
                    g_loss.backward()
                    opt_g.step()
            """,
        ),
        Invalid(
            """
            import math
            import torch

            torch.manual_seed(0)
            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
            data = torch.randn(64, 4)
            target = data @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
            for epoch in range(200):
                loss = torch.nn.functional.mse_loss(model(data), target)
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 50.0)
                if math.isfinite(norm):
                    optimizer.step()
            """,
            lines=[11],
            fixed="""
            import math
            import torch

            torch.manual_seed(0)
            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
            data = torch.randn(64, 4)
            target = data @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
            for epoch in range(200):
                loss = torch.nn.functional.mse_loss(model(data), target)
                optimizer.zero_grad()
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 50.0)
                if math.isfinite(norm):
                    optimizer.step()
            """,
            check_fixed="assert torch.nn.functional.mse_loss(model(data), target).item() < 1e-3",
            note="a step only when the gradient norm is finite, and no clearing anywhere (wenet-e2e/wekws#73)",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for loop in training_loops(unit):
            if loop.nested_zero:
                continue
            backwards = [e for e in loop.events if e.kind == BACKWARD and e.unconditional]
            steps = [e for e in loop.events if e.kind == STEP and e.unconditional]
            zeros = [e for e in loop.events if e.kind == ZERO]
            if not steps and not zeros:
                # `if finite: optimizer.step()`: stepped on some iterations, cleared on none
                steps = [e for e in loop.events if e.kind == STEP and not e.unconditional]
            if not backwards or not steps:
                continue
            if zeros:
                # some gradients are cleared: only an optimizer that is stepped every
                # iteration while every clearing names *other* optimizers is reported
                # (a GAN loop that zeroes D but never G)
                if any(
                    not e.straight
                    or e.optimizer is None
                    or looks_like_optimizer(unit, e.node.func.value) is None
                    for e in zeros
                ):  # type: ignore[attr-defined]
                    continue
                cleared = {e.optimizer for e in zeros}
                missing = [e for e in steps if e.optimizer not in cleared]
                if not missing or _aliased(unit, cleared | {missing[0].optimizer}):
                    continue
                step = missing[0]
                before = [e for e in backwards if e.position < step.position]
                if not before:
                    continue
                first = before[-1]
            else:
                step = steps[0]
                first = backwards[0]
            optimizer = step.optimizer or "optimizer"
            if optimizer.split(".", 1)[0] in loop_assigned(unit, loop):
                continue  # a new optimizer (and usually a new model) every iteration
            if callees_zero_grad(unit, loop):
                continue
            fix = self.make_fix(
                f"Call `{optimizer}.zero_grad()` before `backward()`",
                [insert_before_statement(unit, first.statement, f"{optimizer}.zero_grad()")],
            )
            message = self.message.format(optimizer=optimizer)
            if zeros:
                message = self.partial_message.format(optimizer=optimizer)
            yield self.finding(unit, first.node, message, fix=fix)


def _aliased(unit: Unit, names: set[str | None]) -> bool:
    """Is one of these optimizers (possibly) another name for an object, `opt = self.optimizer`?
    Then "never cleared" cannot be told from the names."""
    lasts = {n.rsplit(".", 1)[-1] for n in names if n}
    for node in unit.nodes_of(ast.Assign):
        value = node.value  # type: ignore[attr-defined]
        if isinstance(value, (ast.Name, ast.Attribute, ast.Subscript)):
            for target in node.targets:  # type: ignore[attr-defined]
                if isinstance(target, (ast.Name, ast.Attribute)):
                    last = target.id if isinstance(target, ast.Name) else target.attr
                    if last in lasts:
                        return True
    return False
