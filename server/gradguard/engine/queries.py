"""Questions rules ask of the semantic model, answered once (per unit) for all of them.

Rules import the engine only; what two rules both need lives here, not in one of them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from gradguard.engine.index import Unit
from gradguard.engine.values import MAX_CUTS, NO, YES, live_grad
from gradguard.engine.interpreter import BACKWARD, DEAD_TERM, OPTIMIZER_STEP, ZERO_GRAD_CALL, Event, Flow

_SCOPE_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef)


def scopes(unit: Unit) -> list[ast.AST | None]:
    """The scopes of a unit: its functions and methods (nested ones included), and None for
    the script statements of the script unit."""
    cached = unit.cache("scopes", lambda: _scopes(unit))
    return cached


def _scopes(unit: Unit) -> list[ast.AST | None]:
    found: list[ast.AST | None] = []
    if not isinstance(unit.nodes[0], (*_SCOPE_TYPES, ast.ClassDef)):
        found.append(None)
    found.extend(unit.nodes_of(*_SCOPE_TYPES))
    return found


def flows(unit: Unit, needle: str | re.Pattern | None = None) -> Iterator[tuple[ast.AST | None, Flow]]:
    """Every scope of the unit with its natural-context flow; with `needle`, only the scopes
    whose source text contains it (a cheap filter before any analysis)."""
    semantics = unit.semantics
    for scope in scopes(unit):
        if needle is not None:
            text = scope_text(unit, scope)
            if (needle not in text) if isinstance(needle, str) else (needle.search(text) is None):
                continue
        yield scope, semantics.flow(scope)


def unit_text(unit: Unit) -> str:
    """The source lines of the unit (for a script unit, everything between its first and last
    statement: a superset, which is all a pre-filter needs)."""
    return unit.cache("unit_text", lambda: scope_text(unit, None))


def node_text(unit: Unit, node: ast.AST) -> str:
    """The source lines a statement spans, decorators included (a cheap pre-filter)."""
    return scope_text(unit, node)


def scope_text(unit: Unit, scope: ast.AST | None) -> str:
    """The source lines of a function (decorators included), or of the unit's script statements."""
    if scope is None:
        first, last = unit.nodes[0], unit.nodes[-1]
    else:
        first = last = scope
    start = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", ()))])  # type: ignore[attr-defined]
    end = last.end_lineno or last.lineno  # type: ignore[attr-defined]
    return "".join(unit.source.lines[start - 1 : end])


def forward_methods(unit: Unit, cls: ast.ClassDef) -> set[str]:
    """Names of `forward` and the methods it calls as `self.m(...)`, transitively."""
    return unit.semantics.forward_methods(cls)


def in_forward(unit: Unit, func: ast.AST | None) -> bool:
    """Is `func` a method of an nn.Module class reachable from its `forward`?"""
    if func is None:
        return False
    semantics = unit.semantics
    cls = semantics.enclosing_class(func)
    if cls is None or semantics.class_kind(cls) != "module":
        return False
    return getattr(func, "name", None) in semantics.forward_methods(cls)


def backward_events(unit: Unit) -> list[tuple[ast.AST | None, Flow, Event]]:
    """Every `backward()` of the unit (`loss.backward()`, `accelerator.backward(loss)`), with
    its scope and flow; `event.value` is what is backpropagated."""

    def collect() -> list[tuple[ast.AST | None, Flow, Event]]:
        return [
            (func, flow, event)
            for func, flow in flows(unit, "backward")
            for event in flow.events_of(BACKWARD)
        ]

    return unit.cache("backward_events", collect)


def calls_backward(flow: Flow) -> bool:
    return bool(flow.events_of(BACKWARD))


def describe(unit: Unit, node: ast.AST, limit: int = 40) -> str:
    """Short source text of a node for messages."""
    text = " ".join(unit.segment(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def switches_requires_grad_off(unit: Unit) -> bool:
    """Does the unit switch `requires_grad` off anywhere (`p.requires_grad = False`,
    `m.requires_grad_(False)`)? Then which parameters still require grad is unknown."""

    def scan() -> bool:
        for node in unit.nodes_of(ast.Assign):
            for target in node.targets:  # type: ignore[attr-defined]
                value = node.value  # type: ignore[attr-defined]
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == "requires_grad"
                    and isinstance(value, ast.Constant)
                    and value.value is False
                ):
                    return True
        for call in unit.method_calls("requires_grad_"):
            arg = (
                call.args[0]
                if call.args
                else next((k.value for k in call.keywords if k.arg == "requires_grad"), None)
            )
            if isinstance(arg, ast.Constant) and arg.value is False:
                return True
        return False

    return unit.cache("switches_requires_grad_off", scan)


def trained_roots(flow: Flow) -> frozenset:
    """The roots (modules, parameters) this scope trains: what its optimizers hold, and the
    modules or optimizers whose gradients it clears."""
    roots: frozenset = frozenset()
    for event in flow.events_of(OPTIMIZER_STEP, ZERO_GRAD_CALL):
        roots |= event.value.sources
    return roots


def dead_terms(unit: Unit) -> list[tuple[ast.AST | None, Flow, Event, Event]]:
    """(scope, flow, dead-term event, backward event) for every constant term of a loss that
    is backpropagated in the same scope: `loss = ce + beta * dloss` where `dloss` was cut
    (detached, argmax-ed, ...) from a model that the other term, or an optimizer, trains."""

    def collect() -> list:
        found = []
        for func, flow in flows(unit, "backward"):
            terms = flow.events_of(DEAD_TERM)
            if not terms:
                continue
            trained = trained_roots(flow)
            for backward in flow.events_of(BACKWARD):
                cuts = {c.node for c in backward.value.cuts}
                full = len(backward.value.cuts) >= MAX_CUTS  # (more cuts than a value keeps)
                for term in terms:
                    live = term.args[0]
                    # a constant only when every operand is known to carry no gradient: a term
                    # with an operand of unknown grad status (a `forward` input, an unknown
                    # call's result) may still send gradient through it; a zero-gradient op's
                    # output (`round`, `sign`) sends none
                    if live_grad(term.value) != NO or not term.value.blocked & (trained | live.sources):
                        continue
                    # the backpropagated value holds the term: every cut of the term reaches it
                    term_cuts = [c.node in cuts for c in term.value.cuts]
                    if term_cuts and (all(term_cuts) or (full and any(term_cuts))):
                        found.append((func, flow, term, backward))
        return found

    return unit.cache("dead_terms", collect)


def unit_contains(unit: Unit, node: ast.AST) -> bool:
    """Is `node` inside one of the unit's own statements (a finding may be reported there)?"""
    line = getattr(node, "lineno", None)
    if line is None:
        return False
    return any(stmt.lineno <= line <= (stmt.end_lineno or stmt.lineno) for stmt in unit.nodes)


def certainly_tracked(unit: Unit, value, backpropagated: frozenset = frozenset()) -> bool:
    """The value demonstrably carries a graph: it requires grad, reaches a parameter, module or
    leaf, or reaches the same unknown model as a loss that is backpropagated."""
    if value.grad == YES:
        return True
    kinds = unit.semantics.source_kinds
    return any(kinds.get(s) != "opaque" or s in backpropagated for s in value.sources)
