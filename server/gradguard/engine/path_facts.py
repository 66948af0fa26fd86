"""Branch-correlated values: after `if c: x = a else: x = b`, a later test identical to `c` (or its
negation, or `mode == "b"` after an `if mode == "a": ... elif mode == "b": ...` chain) runs only on
the paths of the matching arms, so a name bound differently in the arms holds the matching arm's
value there, not the join of both.

A `Split` is recorded on the state where the branches of an `if` join, and is kept while the
state flows on (a later join keeps it only if every joined path has it). It is used only while it
certainly still holds: each name it remembers still holds the very value of the join (nothing
rebound or wrote it in place since), the names the test reads hold the same values as at the test,
and no statement between the two tests stores into what the test reads (`self.loss = ...`) or
calls something given it (`self.reset()`, `configure(self)`). Everything else falls back to the
join. Cheap: only tests of names, attributes, constants, comparisons, `not`, `and`/`or` are
recorded, and only the names whose arms differ are remembered.
"""

from __future__ import annotations

import ast

MAX_SPLITS = 6  # the splits a state keeps (the most recent ones)

# an atom of a test: (key, constant, polarity) -- `key` says what is tested (`("expr", dump)` for
# a truth test, `("eq", dump)` for a comparison with a constant), `polarity` whether it is asserted
Atom = tuple


class Split:
    """The arms of one `if` (chain) whose values differ: each arm's facts (the atoms known on it)
    and the values of the remembered names at its end; `merged` holds the joined values."""

    __slots__ = ("arms", "merged", "node", "roots", "test_values")

    def __init__(self, node: ast.If, arms: list, merged: dict, roots: frozenset, test_values: dict) -> None:
        self.node = node
        self.arms = arms  # [(frozenset of atoms, {name: Value})]
        self.merged = merged  # name -> the joined Value the state held after the `if`
        self.roots = roots  # the names the tests read (`self` in `self.loss == "log"`)
        self.test_values = test_values  # name -> the Value it held at the first test


def stable(test: ast.expr) -> bool:
    """A test made only of names, attributes, constants, comparisons and boolean operators: its
    value changes only if something it reads is rebound or written."""
    for node in ast.walk(test):
        if not isinstance(
            node,
            (
                ast.Name,
                ast.Attribute,
                ast.Constant,
                ast.Compare,
                ast.BoolOp,
                ast.UnaryOp,
                ast.Load,
                ast.cmpop,
                ast.boolop,
                ast.Not,
            ),
        ):
            return False
        if isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not):
            return False
    return True


def roots(test: ast.expr) -> frozenset:
    return frozenset(n.id for n in ast.walk(test) if isinstance(n, ast.Name))


def atom(test: ast.expr, polarity: bool = True) -> Atom:
    """The atom `test` asserts (with `polarity`)."""
    while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        polarity = not polarity
        test = test.operand
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Eq, ast.NotEq)):
        left, right = test.left, test.comparators[0]
        if isinstance(left, ast.Constant) and not isinstance(right, ast.Constant):
            left, right = right, left
        if isinstance(right, ast.Constant) and not isinstance(left, ast.Constant):
            constant = (type(right.value).__name__, right.value)
            return (("eq", ast.dump(left)), constant, polarity == isinstance(test.ops[0], ast.Eq))
    return (("expr", ast.dump(test)), None, polarity)


def truth(query: Atom, facts: frozenset) -> bool | None:
    """Is `query` true (False: false; None: not known) on a path where every atom of `facts` holds?"""
    key, constant, polarity = query
    for fact_key, fact_constant, fact_polarity in facts:
        if fact_key != key:
            continue
        if fact_constant == constant:
            return fact_polarity == polarity
        if key[0] == "eq" and fact_polarity:
            # `x == "a"` holds, so `x == "b"` does not
            return not polarity
    return None


_READING_BUILTINS = frozenset(
    {"len", "isinstance", "hasattr", "getattr", "int", "float", "bool", "str", "min", "max", "abs", "range"}
)


def changed_between(body: list[ast.stmt], start: ast.expr, end: ast.expr, names: frozenset) -> bool:
    """Does some statement of `body` between `start` (the first test) and `end` (the later test)
    store into an attribute or element of one of `names`, rebind one, or call something that is
    given one (as the callee's receiver or an argument)? When `end` is in a loop that `start` is
    not, the whole rest of the loop is between them."""
    first = (getattr(start, "end_lineno", None) or start.lineno, getattr(start, "end_col_offset", 0))
    last = (end.lineno, end.col_offset)
    last = max(last, _loop_end(body, start, end))
    for stmt in body:
        if (stmt.end_lineno or stmt.lineno) < first[0] or stmt.lineno > last[0]:
            continue
        for node in ast.walk(stmt):
            where = (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
            if not (first <= where < last):
                continue
            if isinstance(node, ast.Call):
                if isinstance(node.func, ast.Name) and node.func.id in _READING_BUILTINS:
                    continue  # `len(self.classes)`: reads only (a call among its arguments is walked too)
                if any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node)):
                    return True
            elif isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(
                node.ctx, (ast.Store, ast.Del)
            ):
                base = node.value
                while isinstance(base, (ast.Attribute, ast.Subscript)):
                    base = base.value
                if isinstance(base, ast.Name) and base.id in names:
                    return True
            elif isinstance(node, ast.Name):
                if node.id in names and not isinstance(node.ctx, ast.Load):
                    return True  # rebound
            elif isinstance(node, (ast.Global, ast.Nonlocal)) and names.intersection(node.names):
                return True
    return False


def _loop_end(body: list[ast.stmt], start: ast.expr, end: ast.expr) -> tuple[int, int]:
    """Past the end of the outermost loop of `body` that holds `end` and not `start` ((0, 0): none):
    the later test runs again after the rest of such a loop's body."""
    last = (0, 0)
    for stmt in body:
        for node in ast.walk(stmt):
            if (
                isinstance(node, (ast.For, ast.AsyncFor, ast.While))
                and node.lineno <= end.lineno <= (node.end_lineno or 0)
                and not node.lineno <= start.lineno <= (node.end_lineno or 0)
            ):
                last = max(last, ((node.end_lineno or 0) + 1, 0))
    return last
