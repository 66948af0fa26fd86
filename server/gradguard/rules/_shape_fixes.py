"""Edits shared by the shape rules' fixes (GG501, GG502, GG507, GG509): the argument of a call, a method
appended to an expression (`labels` -> `labels.squeeze(1)`), and when such a fix is safe.

A shape fix is offered only where the shapes the value analysis found are exact and leave one repair:
a `(N, 1)` column of class ids for `(N, C)` logits is `squeeze(1)`, never a guess between candidates.
"""

from __future__ import annotations

import ast
from typing import Any

from gradguard.engine import symshape as ss
from gradguard.engine.finding import Applicability, TextEdit
from gradguard.engine.index import Unit
from gradguard.engine.shape_flow import Problem
from gradguard.engine.symshape import Shape

# expressions a method can be appended to without parentheses
_ATOMS = (ast.Name, ast.Attribute, ast.Call, ast.Subscript)


def argument(call: ast.AST, index: int, keyword: str) -> ast.expr | None:
    """The call's argument at `index`, or its keyword argument `keyword`."""
    if not isinstance(call, ast.Call):
        return None
    if any(isinstance(a, ast.Starred) for a in call.args[: index + 1]):
        return None
    if index < len(call.args):
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def applicability(problem: Problem) -> Applicability:
    """Safe when the unit's own code shows the shapes (the statement fails, or computes the wrong thing,
    every time it runs); unsafe when they hold for the input of one call elsewhere (another caller may
    pass shapes the statement handles)."""
    return Applicability.SAFE if problem.origin is None else Applicability.UNSAFE


def append(unit: Unit, node: ast.expr, suffix: str) -> TextEdit:
    """`node` followed by `suffix` (`.squeeze(1)`), parenthesized when it is not an atom."""
    line, col, end_line, end_col = unit.node_range(node)
    if isinstance(node, _ATOMS):
        return TextEdit(end_line, end_col, end_line, end_col, suffix)
    return TextEdit(line, col, end_line, end_col, f"({unit.segment(node)}){suffix}")


def replace(unit: Unit, node: ast.AST, text: str) -> TextEdit:
    line, col, end_line, end_col = unit.node_range(node)
    return TextEdit(line, col, end_line, end_col, text)


def exact(shape: Any) -> tuple | None:
    """The dims of an exact shape, else None."""
    return tuple(shape.dims) if isinstance(shape, Shape) and shape.exact else None


def same_dims(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(ss.same(x, y) is True for x, y in zip(a, b, strict=True))


def is_one(dim: Any) -> bool:
    return ss.same(dim, 1) is True


def extra_one(longer: tuple, shorter: tuple) -> int | None:
    """The position k >= 1 of a size-1 dimension of `longer` whose removal gives `shorter` (the first of
    a run of them: removing any one gives the same tensor). Never 0: dimension 0 is the batch, and a
    batch of one that the other side lacks leaves two readings."""
    if len(longer) != len(shorter) + 1:
        return None
    for k in range(1, len(longer)):
        if is_one(longer[k]) and same_dims(longer[:k] + longer[k + 1 :], shorter):
            return k
    return None


def number(dim: Any) -> int | None:
    value = ss.Dim.of(dim).value if not isinstance(dim, int) else dim
    return value if isinstance(value, int) else None
