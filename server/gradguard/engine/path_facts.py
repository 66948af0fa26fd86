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
recorded (keyed without `ast.dump`), and only the names whose arms differ are remembered.
"""

from __future__ import annotations

import ast

from gradguard.engine.index import chain_root
from gradguard.engine.none_paths import STATEMENT_LISTS as _BLOCKS  # the fields that hold statements

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


def key(node: ast.expr) -> tuple | None:
    """A hashable key of a test made only of names, attributes, constants, comparisons and boolean
    operators (equal for equal tests); None for any other test (a call, a subscript, arithmetic):
    only such a test keeps its value until something it reads is rebound or written."""
    if isinstance(node, ast.Name):
        return ("n", node.id)
    if isinstance(node, ast.Attribute):
        base = key(node.value)
        return None if base is None else ("a", base, node.attr)
    if isinstance(node, ast.Constant):
        return ("c", type(node.value).__name__, node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = key(node.operand)
        return None if inner is None else ("not", inner)
    if isinstance(node, ast.Compare):
        parts = [key(node.left), *(key(c) for c in node.comparators)]
        if any(p is None for p in parts):
            return None
        return ("cmp", tuple(op.__class__.__name__ for op in node.ops), *parts)
    if isinstance(node, ast.BoolOp):
        parts = [key(v) for v in node.values]
        if any(p is None for p in parts):
            return None
        return (node.op.__class__.__name__, *parts)
    return None


def retested(body: list[ast.stmt]) -> frozenset:
    """What the `if`s of `body` test (`atom`'s key: `("eq", x)` for `x == "a"` and `x != "b"`),
    for the tests that more than one `if` makes: only those can correlate branches."""
    seen: set = set()
    again: set = set()
    statements = list(body)
    while statements:  # statements only, no expression: an `if` is one
        stmt = statements.pop()
        if isinstance(stmt, ast.If):
            found = atom(stmt.test)
            if found is not None:
                (again if found[0] in seen else seen).add(found[0])
        for field in _BLOCKS:
            statements.extend(getattr(stmt, field, ()) or ())
    return frozenset(again)


def roots(test: ast.expr) -> frozenset:
    """The names a test with a `key` reads."""
    found: set[str] = set()
    parts = [key(test)]
    while parts:
        part = parts.pop()
        if isinstance(part, tuple):
            if len(part) == 2 and part[0] == "n" and isinstance(part[1], str):
                found.add(part[1])
            else:
                parts.extend(p for p in part if isinstance(p, tuple))
    return frozenset(found)


def atom(test: ast.expr, polarity: bool = True) -> Atom | None:
    """The atom `test` asserts (with `polarity`); None when `test` has no `key`."""
    while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        polarity = not polarity
        test = test.operand
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Eq, ast.NotEq)):
        left, right = test.left, test.comparators[0]
        if isinstance(left, ast.Constant) and not isinstance(right, ast.Constant):
            left, right = right, left
        if isinstance(right, ast.Constant) and not isinstance(left, ast.Constant):
            constant = (type(right.value).__name__, right.value)
            left_key = key(left)
            if left_key is None:
                return None
            return (("eq", left_key), constant, polarity == isinstance(test.ops[0], ast.Eq))
    test_key = key(test)
    return None if test_key is None else (("expr", test_key), None, polarity)


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
                if chain_root(node.value) in names:
                    return True
            elif isinstance(node, ast.Name):
                if node.id in names and not isinstance(node.ctx, ast.Load):
                    return True  # rebound
            elif isinstance(node, (ast.Global, ast.Nonlocal)) and names.intersection(node.names):
                return True
    return False


def _loop_end(body: list[ast.stmt], start: ast.expr, end: ast.expr) -> tuple[int, int]:
    """Past the end of the outermost loop that holds `end` and not `start` ((0, 0): none): the
    later test runs again after the rest of such a loop's body. Descends only into the statements
    that hold `end`."""
    line = end.lineno
    statements = list(body)
    while statements:
        stmt = statements.pop()
        if not hasattr(stmt, "lineno"):  # a `case` of a `match`
            statements.extend(getattr(stmt, "body", ()))
            continue
        if not stmt.lineno <= line <= (stmt.end_lineno or stmt.lineno):
            continue
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)) and not (
            stmt.lineno <= start.lineno <= (stmt.end_lineno or stmt.lineno)
        ):
            return ((stmt.end_lineno or stmt.lineno) + 1, 0)
        for field in _BLOCKS:
            statements.extend(getattr(stmt, field, ()) or ())
    return (0, 0)
