"""GG303: the loss reaches the model only through `argmax`, `round`, a comparison, an int cast..."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Finding
from gradguard.engine.index import Unit, callee_name
from gradguard.engine.queries import backward_events, dead_terms, describe, trained_roots, unit_contains
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.values import NO, NONDIFF, ZERO_GRAD, live_grad


class NonDifferentiableOp(Rule):
    code = "GG303"
    triggers = (".backward(",)  # only looks at backward_calls()
    name = "non-differentiable-op"
    summary = "The backpropagated loss depends on the model only through a non-differentiable op."
    why = (
        "`argmax`, comparisons and integer casts have no gradient, and `round`/`floor`/`sign` have a zero "
        "one: a loss that reaches the model only through them cannot train it."
    )
    message = Message("`{op}` has no useful gradient, and the loss reaches the model only through it")
    explanation = """
    Some ops have no gradient, or a gradient that is zero everywhere it exists:

    * `argmax`/`argmin`, the indices of `max`/`min`/`topk`/`sort` (`_, pred = out.max(1)`),
      comparisons (`out > 0.5`), and casts to integer or bool (`.long()`, `.int()`,
      `.bool()`, `.to(torch.long)`) return integer or boolean tensors with no `grad_fn`. A loss built only from them does not require grad, and
      `.backward()` raises *"element 0 of tensors does not require grad and does not have
      a grad_fn"*.
    * `round`, `floor`, `ceil`, `sign`, `trunc` are piecewise constant: backward runs,
      and every parameter gets a gradient of exactly zero, so the model never learns.

    Train on a differentiable surrogate: cross-entropy on the logits instead of the
    accuracy of `argmax`, `sigmoid`/`softmax` instead of a hard threshold, or a
    straight-through estimator `x + (torch.round(x) - x).detach()` when the forward
    value must be discrete. Using these ops for metrics, labels, masks next to tracked
    values, or inside a straight-through estimator is fine and not reported.
    """

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(3, 1)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for iteration in range(4):
                out = model(torch.randn(5, 3))
                actor_loss = torch.where(torch.tensor(iteration) >= 2, out.pow(2).mean(), out.abs().mean())
                actor_loss.backward()
                opt.step()
                opt.zero_grad()
            """,
            note="torch.where(cond, x, y) is differentiable in x and y "
            "(torchrl sota-implementations/cql/cql_offline.py)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(10, 3)
            criterion = nn.CrossEntropyLoss()
            opt = torch.optim.Adam(model.parameters())
            for _ in range(5):
                x, y = torch.randn(16, 10), torch.randint(0, 3, (16,))
                logits = model(x)
                loss = criterion(logits, y.long())
                opt.zero_grad()
                loss.backward()
                opt.step()
                acc = (logits.argmax(dim=1) == y).float().mean()
                print(round(loss.item(), 4), acc.item())
            """,
            note="argmax for the accuracy metric, .long() on labels, round() on a float",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class BinaryQuant(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 8)

                def forward(self, x):
                    h = self.fc(x)
                    return h + (torch.sign(h) - h).detach()

            def train(model, x, y, opt):
                out = model(x)
                loss = ((out - y) ** 2).mean()
                loss.backward()
                opt.step()
            """,
            note="straight-through estimator",
        ),
        Valid(
            """
            import torch

            def masked_loss(model, x, y):
                out = model(x)
                mask = (y >= 0).float()
                loss = ((out - y) ** 2 * mask).sum() / mask.sum()
                loss.backward()
                return loss
            """,
            note="a comparison as a mask next to the tracked prediction",
        ),
        Valid(
            """
            import torch

            def train_counts(model, optimizer, x, counts):
                pred = torch.round(model(x))
                loss = (pred - counts).abs().mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            run="""
            model, counter = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
            x = torch.randn(4, 3)
            train_counts(model, torch.optim.SGD(counter.parameters(), lr=0.1), x, counter(x))
            assert counter.weight.grad is not None and counter.weight.grad.abs().sum() > 0
            """,
            note="an argument with no caller in the file (`counts`) has unknown grad status: here it is "
            "another model's output, which the loss trains",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            def train(first, second, optimizer, x, target):
                classes = first(x).argmax(1)
                out = second(classes)
                loss = nn.functional.mse_loss(out, target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            run="""
            first, second = nn.Linear(4, 3), nn.Embedding(3, 2)
            x = torch.randn(5, 4)
            train(first, second, torch.optim.SGD(first.parameters(), lr=0.1), x, first(x)[:, :2])
            assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
            """,
            note="the target (no caller in the file) may carry the first model's gradient: here it is its output",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(10, 3)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            x, y = torch.randn(16, 10), torch.randint(0, 3, (16,))
            pred = model(x).argmax(dim=1)
            loss = ((pred.float() - y.float()) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            """,
            lines=[7],
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            def train_counts(model, optimizer, x, counts):
                pred = torch.round(model(x))
                loss = (pred - counts).abs().mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            m = nn.Linear(3, 1)
            train_counts(m, torch.optim.SGD(m.parameters(), lr=0.1), torch.randn(4, 3), torch.randint(0, 5, (4, 1)))
            """,
            lines=[5],
            run="assert m.weight.grad is not None and m.weight.grad.abs().sum() == 0",
            note="round: backward runs, all gradients are zero (the call shows `counts` is a data tensor)",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Counter(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.head = nn.Linear(3, 1)

                def forward(self, x):
                    count = self.head(x)
                    return count + (torch.round(count) - count).detach()

            model = Counter()
            x, counts = torch.randn(4, 3), torch.randint(0, 5, (4, 1))
            loss = (torch.round(model(x)) - counts).abs().mean()
            loss.backward()
            """,
            lines=[15],
            run="assert model.head.weight.grad.abs().sum() == 0",
            note="only the loss's `round` is the cause: the straight-through estimator in `forward` passes the "
            "gradient through `count` (examples/graph_breaks.py, `hard_count_step`)",
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F

            def step(net, opt, x, y):
                hits = (torch.sigmoid(net(x)) > 0.5).float()
                loss = F.binary_cross_entropy(hits, y)
                loss.backward()
                opt.step()

            n = torch.nn.Linear(3, 1)
            step(n, torch.optim.SGD(n.parameters(), lr=0.1), torch.randn(4, 3), torch.rand(4, 1))
            """,
            lines=[5],
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            note="the target `y` is a data tensor (the call shows it)",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(4, 3)
            criterion = nn.MSELoss()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
            output = model(x)
            _, predicted = torch.max(output, 1)
            loss = criterion(predicted.float(), y.float())
            optimizer.zero_grad()
            loss.backward()
            """,
            lines=[9],
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            model = nn.Linear(6, 4)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            x, labels = torch.randn(8, 6), torch.randint(0, 4, (8,))
            logits = model(x)
            ce = F.cross_entropy(logits, labels)
            wrong = (logits.argmax(1) != labels).float().mean()
            loss = ce + 0.5 * wrong
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            """,
            lines=[10],
            run="assert not wrong.requires_grad",
            note="an error-rate penalty added to the loss: a constant term (pytorch Deep_Hierarchical_Classification#6)",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            def train_step(model, x, labels):
                logits = model(x)
                ce = F.cross_entropy(logits, labels)
                sparsity = torch.round(torch.sigmoid(logits)).mean()
                loss = ce + 0.1 * sparsity
                loss.backward()
            """,
            lines=[8],
            run="""
            m, x, labels = nn.Linear(6, 4), torch.randn(8, 6), torch.randint(0, 4, (8,))
            train_step(m, x, labels)
            g = m.weight.grad.clone()
            m.zero_grad()
            F.cross_entropy(m(x), labels).backward()
            assert torch.allclose(g, m.weight.grad)
            """,
            note="a term through `round` adds nothing to the gradient, whatever the model and the labels are",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            first, second = nn.Linear(4, 3), nn.Embedding(3, 2)
            optimizer = torch.optim.SGD([*first.parameters(), *second.parameters()], lr=0.1)
            x, target = torch.randn(5, 4), torch.randn(5, 2)
            classes = first(x).argmax(1)
            out = second(classes)
            loss = nn.functional.mse_loss(out, target)
            optimizer.zero_grad()
            loss.backward()
            """,
            lines=[7],
            run="assert first.weight.grad is None and second.weight.grad is not None",
            note="class indices of one model fed to another (pytorch#1339): the first model gets no gradient",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        seen = set()
        for _, _, term, backward in dead_terms(unit):
            call = backward.node
            loss = describe(
                unit, call.args[0] if backward.op == "delegated" and call.args else call.func.value
            )
            for cut in sorted(
                term.value.cuts,
                key=lambda c: (getattr(c.node, "lineno", 0), getattr(c.node, "col_offset", 0)),
            ):
                if cut.kind not in (NONDIFF, ZERO_GRAD) or not cut.blocked or cut.node in seen:
                    continue
                seen.add(cut.node)
                # the script's findings are kept by absolute position (and the analysis it used
                # by position too): it may point into a function it called
                inside = unit_contains(unit, cut.node) or _is_script(unit)
                what = "has a zero gradient almost everywhere" if cut.kind == ZERO_GRAD else "has no gradient"
                term_text = describe(unit, term.target) if term.target is not None else "a term"
                message = (
                    f"`{term_text}` is a constant: it adds nothing to the gradient of `{loss}`\nIt was "
                    f"computed through `{describe(unit, cut.node)}` (line {cut.node.lineno}), which {what}, "
                    f"and `{loss}` is backpropagated on line {call.lineno}."
                )
                yield self.finding(unit, cut.node if inside else term.node, message)
                break  # one finding per constant term: its first cut
        for func, flow, event in backward_events(unit):
            value = event.value
            call = event.node
            loss = describe(unit, call.args[0] if event.op == "delegated" and call.args else call.func.value)
            if value.sources:
                # the loss reaches some model: does a model that is being trained reach it only
                # through an integer/boolean op (argmax fed to another model)?
                # (only when every other operand is known: one of unknown grad status, an argument
                # no caller shows, may carry that model's gradient)
                starved: frozenset = frozenset()
                if live_grad(value) == NO:
                    starved = trained_roots(flow) & value.blocked - value.sources
                cuts = [c for c in value.cuts if c.kind == NONDIFF and c.blocked & starved]
                for cut in cuts:
                    message = (
                        f"`{describe(unit, cut.node)}` gives an integer/boolean tensor with no gradient\nThe "
                        f"model before it reaches `{loss}` (line {call.lineno}) only through it: that model gets "
                        "no gradient."
                    )
                    yield self.finding(unit, cut.node, message)
                continue
            if live_grad(value) != NO:
                # an operand of unknown grad status (an argument no caller shows, an unknown
                # call's result) may send gradient to the model another way
                continue
            for cut in value.cuts:
                if cut.kind not in (NONDIFF, ZERO_GRAD) or not cut.blocked or cut.bypassed:
                    continue
                if cut.kind == NONDIFF and value.grad != NO:
                    continue  # (a `round` term next to it: backward runs, it does not raise)
                origin = cut.node
                op = _op_name(origin)
                where = (
                    f"`{loss}` (backpropagated on line {call.lineno}) depends on the model only through it"
                )
                if op == "indices":
                    message = (
                        f"The indices from `{describe(unit, origin)}` are an integer tensor with no gradient\n"
                        f'{where[0].upper()}{where[1:]}: `.backward()` raises "element 0 of tensors does '
                        'not require grad and does not have a grad_fn".'
                    )
                elif cut.kind == ZERO_GRAD:
                    message = (
                        f"The gradient of `{op}` is zero almost everywhere\n{where[0].upper()}{where[1:]}: "
                        "every parameter gets an all-zero gradient."
                    )
                else:
                    message = (
                        f"`{describe(unit, origin)}` gives an integer/boolean tensor with no gradient\n"
                        f'{where[0].upper()}{where[1:]}: `.backward()` raises "element 0 of tensors does '
                        'not require grad and does not have a grad_fn".'
                    )
                yield self.finding(unit, origin, message)


def _op_name(node: ast.AST) -> str:
    if isinstance(node, (ast.Attribute, ast.Subscript)):
        return "indices"  # `out.max(1).indices`, `out.max(1)[1]`
    if isinstance(node, ast.Call):
        func = node.func
        name = callee_name(func) or ""
        return "indices" if name in torch_facts.values_indices_methods() else name
    return "comparison"


def _is_script(unit: Unit) -> bool:
    return not isinstance(unit.nodes[0], (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
