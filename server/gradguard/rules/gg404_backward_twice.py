"""GG404: a second `backward()` through a graph the first one already freed."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.dataflow import unit_text
from gradguard.engine.finding import Applicability, Finding, Severity, TextEdit
from gradguard.engine.index import Unit, keyword, position
from gradguard.engine.loops import (
    block_of,
    enclosing_loop,
    requires_grad_sources,
    retains_graph,
    scope_flow,
)
from gradguard.engine.rule import Invalid, Rule, Valid
from gradguard.engine.shapes import calls_by_attr

_ERROR = "Trying to backward through the graph a second time"


class BackwardTwice(Rule):
    code = "GG404"
    triggers = ("backward",)  # its own pre-check
    name = "backward-twice"
    summary = (
        "A second `backward()` through (part of) a graph whose saved tensors the first `backward()` freed."
    )
    why = (
        "The first `backward()` frees the tensors the graph saved, so a second one through the same part of "
        'the graph raises "Trying to backward through the graph a second time".'
    )
    severity = Severity.ERROR
    message = (
        "`{second}` backpropagates again through `{shared}`, whose graph `{first}` already freed: "
        f'PyTorch raises "{_ERROR}". Pass `retain_graph=True` to the first call, or call `backward()` '
        "once on the sum of the losses"
    )
    loop_message = (
        "`{shared}` is computed once, before the loop, but `{call}` backpropagates through it on every "
        f'iteration: the second iteration raises "{_ERROR}". Compute `{{shared}}` inside the loop'
    )
    explanation = f"""
    To save memory, `backward()` frees the intermediate values the graph saved for the
    backward pass (the inputs of a matmul, the output of a sigmoid, ...) as soon as it
    has used them. A second `backward()` that reaches the same part of the graph finds
    them gone and PyTorch raises:

    > RuntimeError: {_ERROR} (or directly access saved tensors after they have
    > already been freed). [...] Specify retain_graph=True if you need to backward
    > through the graph a second time [...]

    This happens when two losses share an intermediate result (`out = model(x)` and
    two losses computed from `out`), and when a loop calls `backward()` every
    iteration on something computed once before the loop.

    Fixes: add the losses and call `backward()` once (`(loss1 + loss2).backward()`,
    which gives the same gradients), or pass `retain_graph=True` to every `backward()`
    but the last. Backward calls on graphs built by separate forward passes, or a
    first call with `retain_graph=True`, are fine and not reported.
    """
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import torch

            model = torch.nn.Linear(4, 2)
            out = model(torch.randn(8, 4))
            loss1 = out.pow(2).mean()
            loss2 = out.abs().mean()
            loss1.backward(retain_graph=True)
            loss2.backward()
            """,
            note="retain_graph on the first backward",
        ),
        Valid(
            """
            import torch

            def train(netD, netG, optD, optG, real, z, criterion):
                fake = netG(z)
                optD.zero_grad()
                lossD = criterion(netD(real), 1) + criterion(netD(fake.detach()), 0)
                lossD.backward()
                optD.step()
                optG.zero_grad()
                lossG = criterion(netD(fake), 1)
                lossG.backward()
                optG.step()
            """,
            note="GAN: the discriminator loss uses fake.detach()",
        ),
        Valid(
            """
            import torch

            def train(model, optimizer, x1, x2):
                loss1 = model(x1).sum()
                loss1.backward()
                loss2 = model(x2).sum()
                loss2.backward()
                optimizer.step()
            """,
            note="two forward passes, two graphs",
        ),
        Valid(
            """
            import torch

            def train(model, optimizer, loader):
                for x, y in loader:
                    out = model(x)
                    loss = (out - y).pow(2).mean()
                    loss.backward()
                    optimizer.step()
            """,
            note="one backward per forward",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            model = torch.nn.Linear(4, 2)
            out = model(torch.randn(8, 4))
            loss1 = out.pow(2).mean()
            loss2 = out.abs().mean()
            loss1.backward()
            loss2.backward()
            """,
            lines=[8],
            fixed="""
            import torch

            model = torch.nn.Linear(4, 2)
            out = model(torch.randn(8, 4))
            loss1 = out.pow(2).mean()
            loss2 = out.abs().mean()
            loss1.backward(retain_graph=True)
            loss2.backward()
            """,
            raises=_ERROR,
            check_fixed="assert model.weight.grad is not None",
        ),
        Invalid(
            """
            import torch

            def train(model, x, y, steps):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                out = model(x)
                for step in range(steps):
                    optimizer.zero_grad()
                    loss = torch.nn.functional.mse_loss(out, y)
                    loss.backward()
                    optimizer.step()
            """,
            lines=[9],
            raises=_ERROR,
            run="train(torch.nn.Linear(3, 1), torch.randn(5, 3), torch.randn(5, 1), 3)",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        if "backward" not in unit_text(unit):
            return
        by_scope: dict[int, list[ast.Call]] = {}
        scopes: dict[int, ast.AST | None] = {}
        for call in calls_by_attr(unit, "backward"):
            scope = unit.enclosing_function(call)
            by_scope.setdefault(id(scope), []).append(call)
            scopes[id(scope)] = scope
        for key, calls in by_scope.items():
            flow = scope_flow(unit, scopes[key])
            sources = [flow.graph_sources(c.func.value, position(c)) for c in calls]  # type: ignore[attr-defined]
            anchors = [_anchor(unit, c) for c in calls]
            flagged: set[int] = set()
            for j in range(len(calls)):
                for i in range(j - 1, -1, -1):
                    if anchors[i] is None or anchors[i] is not anchors[j] or retains_graph(calls[i]):
                        continue
                    shared = sources[i] & sources[j]
                    if not shared or not _tracked(unit, flow, shared):
                        continue
                    flagged.add(j)
                    yield self._pair_finding(unit, calls[i], calls[j], shared)
                    break
            for j, call in enumerate(calls):
                if j in flagged or retains_graph(call):
                    continue
                loop = enclosing_loop(unit, call)
                if loop is None:
                    continue
                outside = [
                    (name, stmt)
                    for name, stmt in sources[j]
                    if name != "call"
                    and loop not in unit.ancestors(stmt)
                    and not any(loop in unit.ancestors(s) for _, s, _ in flow.bindings.get(name, ()))
                    and position(stmt) < position(loop)
                ]
                outside = [
                    (n, s)
                    for n, s in outside
                    if _tracked(
                        unit, flow, flow.graph_sources(ast.Name(id=n, ctx=ast.Load()), position(call))
                    )
                ]
                if outside:
                    name = max(outside, key=lambda e: position(e[1]))[0]
                    message = self.loop_message.format(shared=name, call=_short(unit, call))
                    yield self.finding(unit, call, message)

    def _pair_finding(self, unit: Unit, first: ast.Call, second: ast.Call, shared: frozenset) -> Finding:
        names = [(n, s) for n, s in shared if n != "call"]
        label = max(names, key=lambda e: position(e[1]))[0] if names else "the same forward pass"
        message = self.message.format(second=_short(unit, second), first=_short(unit, first), shared=label)
        edit = _retain_graph_edit(unit, first)
        fix = self.make_fix("Pass `retain_graph=True` to the first `backward()`", [edit]) if edit else None
        return self.finding(unit, second, message, fix=fix)


def _tracked(unit: Unit, flow, sources) -> bool:
    """The shared part certainly requires grad (a frozen feature extractor's output does not,
    and backpropagating twice through heads on top of it is fine)."""
    return requires_grad_sources(unit, flow, sources)


def _short(unit: Unit, call: ast.Call) -> str:
    text = unit.segment(call)
    return text if len(text) <= 50 and "\n" not in text else "backward()"


def _anchor(unit: Unit, call: ast.Call) -> list | None:
    """The statement list holding the call (seen through `with` blocks)."""
    stmt = unit.enclosing_statement(call)
    while stmt is not None and isinstance(unit.parent(stmt), (ast.With, ast.AsyncWith)):
        stmt = unit.parent(stmt)  # type: ignore[assignment]
    if stmt is None:
        return None
    found = block_of(unit, stmt)
    if found is None:
        # a top-level statement of the script unit: all of them form one block
        return unit.nodes if any(s is stmt for s in unit.nodes) else None
    return found[2]


def _retain_graph_edit(unit: Unit, call: ast.Call) -> TextEdit | None:
    existing = keyword(call, "retain_graph")
    if existing is not None:
        line, col, end_line, end_col = unit.node_range(existing)
        return TextEdit(line, col, end_line, end_col, "True")
    if len(call.args) >= 2:
        return None
    _, _, end_line, end_col = unit.node_range(call)
    if unit.source.line_text(end_line)[end_col - 2 : end_col - 1] != ")":
        return None
    separator = ", " if (call.args or call.keywords) else ""
    return TextEdit(end_line, end_col - 1, end_line, end_col - 1, f"{separator}retain_graph=True")
