"""GG302: the loss is computed under `torch.no_grad()` and then backpropagated."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.finding import Finding, Severity
from gradguard.engine.index import Unit
from gradguard.engine.queries import backward_events, describe
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.values import NO, NO_GRAD


class BackwardUnderNoGrad(Rule):
    code = "GG302"
    triggers = (".backward(",)  # only looks at backward_calls()
    name = "backward-under-no-grad"
    summary = "`.backward()` on a loss that was computed under `torch.no_grad()` / `inference_mode()`."
    why = (
        "Under `torch.no_grad()` autograd records nothing, so `.backward()` on a loss computed there raises "
        '"element 0 of tensors does not require grad and does not have a grad_fn".'
    )
    severity = Severity.ERROR
    message = Message("`{loss}` was computed under `{context}`; it does not require grad")
    explanation = """
    Inside `with torch.no_grad():` (and `torch.inference_mode()`,
    `torch.set_grad_enabled(False)`, or a function decorated with `@torch.no_grad()`)
    autograd records nothing: every tensor computed there has `requires_grad=False` and
    no `grad_fn`, even when it comes from the model's parameters. Calling `.backward()`
    on such a loss raises
    *"element 0 of tensors does not require grad and does not have a grad_fn"*.

    Compute the loss outside the block. Keep under `no_grad` only what must not be
    trained: evaluation, target values (DQN, distillation teachers, EMA updates) and
    in-place parameter updates. Those uses are not reported.
    """

    VALID = [
        Valid(
            """
            import torch
            import torch.nn.functional as F

            def dqn_loss(q_net, target_net, s, a, r, s2, gamma=0.99):
                with torch.no_grad():
                    target = r + gamma * target_net(s2).max(1)[0]
                q = q_net(s).gather(1, a.unsqueeze(1)).squeeze(1)
                loss = F.mse_loss(q, target)
                loss.backward()
                return loss
            """,
            note="only the target is computed under no_grad",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(4, 1)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            x, y = torch.randn(8, 4), torch.randn(8, 1)
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
                val = nn.functional.mse_loss(model(x), y)
            print(val.item())
            """,
            note="manual SGD update and evaluation under no_grad",
        ),
        Valid(
            """
            import torch

            @torch.no_grad()
            def evaluate(model, loader):
                total = 0.0
                for x, y in loader:
                    total += torch.nn.functional.cross_entropy(model(x), y).item()
                return total

            def train(model, loader, opt):
                for x, y in loader:
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            """,
            note="no_grad evaluation function next to the training function",
        ),
        Valid(
            """
            import torch
            import torch.nn.functional as F

            def distill_step(teacher, student_out, optimizer, x):
                with torch.no_grad():
                    soft = teacher(x)
                loss = F.mse_loss(soft, student_out)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            run="""
            teacher, student = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
            x = torch.randn(4, 3)
            distill_step(teacher, student(x), torch.optim.SGD(student.parameters(), lr=0.1), x)
            assert student.weight.grad is not None and teacher.weight.grad is None
            """,
            note="an argument with no caller in the file (`student_out`) has unknown grad status: here it "
            "is the student's output, which the loss trains",
        ),
        Valid(
            """
            from abc import ABC, abstractmethod
            from itertools import islice

            import torch

            class Scaler(ABC):
                criterion = torch.nn.CrossEntropyLoss()

                def __init__(self, model):
                    self.model = model

                def fit(self, batches):
                    logits, labels = self._extract(batches)
                    optimizer = torch.optim.LBFGS(self.parameters(), lr=0.1, max_iter=10)

                    def closure():
                        optimizer.zero_grad()
                        loss = self.criterion(self._scale(logits), labels)
                        loss.backward()
                        return loss.detach()

                    optimizer.step(closure)

                def _extract(self, batches):
                    with torch.no_grad():
                        pairs = [(self.model(x), y) for x, y in islice(batches, None)]
                    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])

                @abstractmethod
                def _scale(self, logits):
                    '''Scale the logits by the learned temperature.'''

                @abstractmethod
                def parameters(self):
                    '''The parameters to fit.'''

            class TemperatureScaler(Scaler):
                def __init__(self, model):
                    super().__init__(model)
                    self.inv_temp = torch.nn.Parameter(torch.ones(1))

                def _scale(self, logits):
                    return logits * self.inv_temp

                def parameters(self):
                    return [self.inv_temp]
            """,
            run="""
            scaler = TemperatureScaler(torch.nn.Linear(4, 3))
            scaler.fit([(torch.randn(8, 4), torch.randint(0, 3, (8,)))])
            assert scaler.inv_temp.grad is not None
            """,
            note="the model's logits come from `no_grad`, but the loss goes through `self._scale`, an "
            "abstract method a subclass implements with its parameters (dev8 torch-uncertainty scaler.py)",
        ),
        Valid(
            """
            import torch


            class Attack:
                def loss(self, out, const):
                    return torch.sum(const * out.pow(2).sum(1))

                def adjust(self, const, bound):
                    const[const < bound] *= 10

                def run(self, model, images, outer_steps, steps):
                    const = torch.ones(images.shape[0])
                    y_k = torch.nn.Parameter(images.clone())
                    prev = 1e6
                    for outer in range(outer_steps):
                        for it in range(steps):
                            cost = self.loss(model(y_k), const)
                            y_k.grad = None
                            cost.backward()
                            with torch.no_grad():
                                y_k -= y_k.grad * 0.01
                            with torch.no_grad():
                                cost = self.loss(model(y_k), const)
                                if cost > prev:
                                    break
                                prev = cost
                        self.adjust(const, 1e3)
                    return y_k.detach()
            """,
            run="""
            out = Attack().run(torch.nn.Linear(4, 4), torch.randn(2, 4), 2, 3)
            assert out.shape == (2, 4)
            """,
            note="holdout5 torchattacks attacks/eaden.py: the `break` inside `with torch.no_grad():` leaves the block, "
            "and gradients are on again for the next outer iteration's `cost`",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            x, y = torch.randn(8, 4), torch.randn(8, 1)
            with torch.no_grad():
                pred = model(x)
                loss = nn.functional.mse_loss(pred, y)
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
            import torch.nn.functional as F

            def step(model, optimizer, x, y):
                with torch.inference_mode():
                    logits = model(x)
                loss = F.cross_entropy(logits, y)
                loss.backward()
                optimizer.step()
            """,
            lines=[8],
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            run="""
            m = torch.nn.Linear(3, 2)
            step(m, torch.optim.SGD(m.parameters(), lr=0.1), torch.randn(4, 3), torch.tensor([0, 1, 1, 0]))
            """,
        ),
        Invalid(
            """
            import torch

            @torch.no_grad()
            def fit_step(model, optimizer, x, y):
                loss = ((model(x) - y) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            lines=[7],
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            run="""
            m = torch.nn.Linear(3, 1)
            fit_step(m, torch.optim.SGD(m.parameters(), lr=0.1), torch.randn(4, 3), torch.randn(4, 1))
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            def fit_once(net, data):
                torch.set_grad_enabled(False)  # "speeds up" target preparation
                try:
                    targets = data.sum(dim=1, keepdim=True)
                    loss = nn.functional.mse_loss(net(data), targets)
                    loss.backward()
                finally:
                    torch.set_grad_enabled(True)
            """,
            lines=[9],
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            run="fit_once(nn.Linear(3, 1), torch.randn(16, 3))",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for func, flow, event in backward_events(unit):
            value = event.value
            if value.sources or value.grad != NO:
                # some of the loss reaches the model, or may: an operand of unknown grad status
                # (an argument no caller shows, an unknown call's result) may require grad
                continue
            origins = [c.node for c in value.cuts if c.kind == NO_GRAD and c.blocked]
            if not origins:
                continue
            origin = origins[0]
            call = event.node
            loss = describe(unit, call.args[0] if event.op == "delegated" and call.args else call.func.value)
            context = _context_text(unit, origin)
            message = (
                f"`{loss}` was computed under `{context}` (line {origin.lineno}): it does not require grad\n"
                '`.backward()` raises "element 0 of tensors does not require grad and does not have a grad_fn".'
            )
            yield self.finding(unit, call, message)


def _context_text(unit: Unit, origin: ast.AST) -> str:
    if isinstance(origin, (ast.With, ast.AsyncWith)):
        for item in origin.items:
            if unit.grad_disabling_context(item):
                return describe(unit, item.context_expr)
    if isinstance(origin, ast.Expr):
        return describe(unit, origin.value)  # torch.set_grad_enabled(False) as a statement
    if isinstance(origin, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for deco in origin.decorator_list:
            return "@" + describe(unit, deco)
    return "torch.no_grad()"
