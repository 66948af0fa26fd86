"""GG405: `total += loss` keeps every iteration's autograd graph reachable."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.dataflow import unit_text
from gradguard.engine.finding import Applicability, Finding
from gradguard.engine.fixes import replace_node
from gradguard.engine.index import Unit, dotted_name
from gradguard.engine.loops import DETACHING, enclosing_loop
from gradguard.engine.rule import Invalid, Rule, Valid
from gradguard.engine.shapes import calls_by_attr

# calls that only read a number for logging
_LOGGING = {
    "print",
    "str",
    "float",
    "format",
    "round",
    "repr",
    "info",
    "debug",
    "warning",
    "log",
    "write",
    "set_postfix",
    "set_description",
    "add_scalar",
    "add_scalars",
    "log_metrics",
    "append",
}


class LossAccumulatedWithGraph(Rule):
    code = "GG405"
    triggers = ("backward",)  # its own pre-check (which also needs "+=")
    name = "loss-accumulated-with-graph"
    summary = "A running total accumulates a loss tensor that is still attached to its autograd graph."
    why = (
        "A loss tensor still references its autograd graph: adding it to a running total keeps every "
        "iteration's graph alive, so memory use grows every step."
    )
    message = (
        "`{target} += {loss}` adds the loss tensor itself, so `{target}` stays attached to the autograd "
        "graph of every iteration and memory grows with each step; accumulate `{loss}.item()`"
    )
    explanation = """
    A loss returned by the model is a tensor with a `grad_fn`: it references the
    autograd graph that produced it. `total += loss` (with `total` starting as
    `0` or `0.0`) makes `total` a tensor whose own `grad_fn` points at that graph,
    and each iteration adds another link. Even after `loss.backward()` has freed the
    saved tensors, the chain of graph nodes is kept alive for as long as `total` is
    alive, so memory use grows every step (on the GPU too, if the loss lives there).

    For logging, accumulate a Python number: `total += loss.item()` (or
    `loss.detach()` to keep it on the device). If you really mean to backpropagate
    through the sum (gradient accumulation by summing losses), call
    `total.backward()`; such totals are not reported.

    The automatic fix (`loss.item()`) is marked safe when `total` is only printed or
    logged; otherwise it is offered as unsafe, because `total` becomes a float.
    """
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch

            def train(model, optimizer, loader):
                total = 0.0
                for x, y in loader:
                    optimizer.zero_grad()
                    loss = torch.nn.functional.mse_loss(model(x), y)
                    loss.backward()
                    optimizer.step()
                    total += loss.item()
                return total / len(loader)
            """,
            note="accumulates a number",
        ),
        Valid(
            """
            import torch

            def train(model, optimizer, loader, k):
                total = 0
                for i, (x, y) in enumerate(loader):
                    loss = torch.nn.functional.mse_loss(model(x), y)
                    total += loss
                    if (i + 1) % k == 0:
                        total.backward()
                        optimizer.step()
                        optimizer.zero_grad()
                        total = 0
            """,
            note="the sum is backpropagated on purpose",
        ),
        Valid(
            """
            import torch

            def evaluate(model, loader):
                total = 0
                with torch.no_grad():
                    for x, y in loader:
                        loss = torch.nn.functional.mse_loss(model(x), y)
                        total += loss
                return total
            """,
            note="no graph under no_grad",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            running_loss = 0.0
            for step in range(20):
                x, y = torch.randn(16, 4), torch.randn(16, 1)
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                optimizer.step()
                running_loss += loss
            print(f"mean loss {running_loss / 20:.4f}")
            """,
            lines=[12],
            fixed="""
            import torch

            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            running_loss = 0.0
            for step in range(20):
                x, y = torch.randn(16, 4), torch.randn(16, 1)
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                optimizer.step()
                running_loss += loss.item()
            print(f"mean loss {running_loss / 20:.4f}")
            """,
            check_fixed="assert isinstance(running_loss, float)",
        ),
        Invalid(
            """
            import torch

            def train_epoch(model, optimizer, loader):
                epoch_loss = 0
                for x, y in loader:
                    optimizer.zero_grad()
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                    loss.backward()
                    optimizer.step()
                    epoch_loss += loss * x.size(0)
                return epoch_loss / len(loader.dataset)
            """,
            lines=[10],
            fixed="""
            import torch

            def train_epoch(model, optimizer, loader):
                epoch_loss = 0
                for x, y in loader:
                    optimizer.zero_grad()
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                    loss.backward()
                    optimizer.step()
                    epoch_loss += loss.item() * x.size(0)
                return epoch_loss / len(loader.dataset)
            """,
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        if "backward" not in unit_text(unit) or "+=" not in unit_text(unit):
            return
        backward_receivers: dict[int, set[str]] = {}  # loop id -> names backpropagated in it
        backpropagated: set[str] = set()  # names anything calls .backward() on
        for call in calls_by_attr(unit, "backward"):
            receiver = call.func.value  # type: ignore[attr-defined]
            names = {n.id for n in ast.walk(receiver) if isinstance(n, ast.Name)}
            dotted = dotted_name(receiver)
            if dotted:
                names.add(dotted)
            backpropagated |= names
            loop = enclosing_loop(unit, call)
            if loop is not None:
                backward_receivers.setdefault(id(loop), set()).update(names)
        if not backward_receivers:
            return
        for node in unit.nodes_of(ast.AugAssign):
            assert isinstance(node, ast.AugAssign)
            if not isinstance(node.op, ast.Add):
                continue
            target = dotted_name(node.target)
            if target is None or target in backpropagated or target.split(".")[0] in backpropagated:
                continue
            loop = enclosing_loop(unit, node)
            if loop is None or id(loop) not in backward_receivers:
                continue
            loss = _attached_loss(node.value, backward_receivers[id(loop)])
            if loss is None or unit.in_no_grad(node):
                continue
            if _reset_in_loop(loop, target):
                continue
            applicability = None if _only_logged(unit, node, target) else Applicability.UNSAFE
            fix = self.make_fix(
                f"Accumulate `{loss.id}.item()`",
                [replace_node(unit, loss, f"{loss.id}.item()")],
                applicability,
            )
            message = self.message.format(target=target, loss=loss.id)
            yield self.finding(unit, node, message, fix=fix)


def _attached_loss(value: ast.expr, losses: set[str]) -> ast.Name | None:
    """The loss name in `loss` / `loss * n` / `n * loss` / `loss / n`; None when detached."""
    if isinstance(value, ast.Name):
        return value if value.id in losses else None
    if isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Mult, ast.Div, ast.Add, ast.Sub)):
        return _attached_loss(value.left, losses) or _attached_loss(value.right, losses)
    return None


def _reset_in_loop(loop: ast.AST, target: str) -> bool:
    """Is the target re-bound by a plain assignment inside the loop (so nothing accumulates
    across iterations)?"""
    for node in ast.walk(loop):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(dotted_name(t) == target for t in targets):
                return True
    return False


def _only_logged(unit: Unit, node: ast.AugAssign, target: str) -> bool:
    """Is every other read of the target inside a print/logging call or an f-string?"""
    scope = unit.enclosing_function(node)
    for sub in _reads(unit, target):
        if unit.enclosing_function(sub) is scope and not _in_logging_context(unit, sub):
            return False
    return True


def _reads(unit: Unit, target: str) -> list[ast.AST]:
    """Loads of a name or dotted attribute chain in the unit (index cached on the unit)."""
    index = unit.__dict__.get("_gg405_reads")
    if index is None:
        index = {}
        for kind in (ast.Name, ast.Attribute):
            for sub in unit.nodes_of(kind):
                if isinstance(sub.ctx, ast.Load):  # type: ignore[attr-defined]
                    dotted = dotted_name(sub)
                    if dotted is not None:
                        index.setdefault(dotted, []).append(sub)
        unit.__dict__["_gg405_reads"] = index
    return index.get(target, [])


def _in_logging_context(unit: Unit, node: ast.AST) -> bool:
    current = node
    for parent in unit.ancestors(node):
        if isinstance(parent, (ast.FormattedValue, ast.JoinedStr)):
            return True
        if isinstance(parent, ast.Call):
            if current is parent.func:
                return False  # total.item(), total.backward(): needs a tensor
            func = parent.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _LOGGING or name in DETACHING:
                return True
            return False
        if isinstance(parent, ast.Attribute):
            return False  # total.item / total.cpu ... uses the tensor
        if isinstance(parent, (ast.BinOp, ast.UnaryOp, ast.keyword, ast.Tuple, ast.List)):
            current = parent
            continue
        return False
    return False
