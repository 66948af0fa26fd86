"""Wording shared by the shape rules (GG501-GG509): what a shape problem found by the value analysis
(`shape_flow.Problem`) says in a finding."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine import shape_flow
from gradguard.engine.index import Unit
from gradguard.engine.queries import describe
from gradguard.engine.symshape import Shape


def of_code(unit: Unit, code: str) -> Iterator[shape_flow.Problem]:
    """The unit's problems for one rule, in source order."""
    for problem in shape_flow.problems(unit):
        if problem.code == code:
            yield problem


def shape(value: object) -> str:
    """`[8, 16, h/2]`; `[...]` when unknown."""
    if isinstance(value, Shape):
        return shape_flow.show(value)
    return "[...]"


def torch_says(problem: shape_flow.Problem) -> str:
    """`PyTorch raises "..."` (with our dims; `?` marks a size known only at run time)."""
    error = problem.error
    if error is None:
        return ""
    message = problem.message
    kind = "warns" if error.warning else "raises"
    text = f'PyTorch {kind} "{message}"'
    if "?" in message:
        text += " (`?`: a size known only when it runs)"
    return text


def origin(unit: Unit, problem: shape_flow.Problem) -> str:
    """` with the input of line 31` / ` with the probe comment's input (line 9)` / ``."""
    node = problem.origin
    if node is None:
        return ""
    line = getattr(node, "lineno", None)
    if line is None:
        return ""
    if getattr(node, "gradguard_probe", False):
        return f" with the input of the probe comment on line {line}"
    return f" with the input of the call on line {line}"


def callee(unit: Unit, node: ast.AST) -> str:
    """The called expression of a call node, short (`self.fc1`)."""
    if isinstance(node, ast.Call):
        return describe(unit, node.func, 30)
    return describe(unit, node, 30)


def expression(unit: Unit, node: ast.AST) -> str:
    return describe(unit, node, 40)


__all__ = ["callee", "expression", "of_code", "origin", "shape", "torch_says"]
