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
join. Cheap: only tests of names, attributes, items by a constant (`args["fp16"]`), constants,
comparisons, `not`, `and`/`or` are recorded (keyed without `ast.dump`), and only the names whose
arms differ are remembered.

`one_run_runs_both` and `runs_before_each` answer, from the syntax and the same kind of tests, whether
one run of a function can run two statements, and whether it always runs one before the other.
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
    """A hashable key of a test made only of names, attributes, items by a constant, constants,
    comparisons and boolean operators (equal for equal tests); None for any other test (a call, a
    subscript by a variable, arithmetic):
    only such a test keeps its value until something it reads is rebound or written."""
    if isinstance(node, ast.Name):
        return ("n", node.id)
    if isinstance(node, ast.Attribute):
        base = key(node.value)
        return None if base is None else ("a", base, node.attr)
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        base = key(node.value)  # `args["fp16"]`: an item of a configuration
        return None if base is None else ("s", base, key(node.slice))
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


# -- can one run of a function run both statements? ------------------------------------------------
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_TRY = (ast.Try, getattr(ast, "TryStar", ast.Try))
_STATEMENTS = ("body", "orelse", "finalbody")


def one_run_runs_both(body: list[ast.stmt], first: ast.AST, second: ast.AST) -> bool:
    """Can one run of `body` (a function's) run both `first` and `second`? False only when that is
    certain: they lie in different arms of one statement that picks a single arm each time it runs --
    an `if`'s body and its `else` (an `elif` is in the `else`), two `case`s of a `match`, two handlers
    of a `try` (or a handler and its `else`) -- that runs once per run (outside every loop of `body`)
    or picks the same arm on every iteration (see `_same_arm_every_iteration`); or, inside a loop,
    they lie in opposite arms of two `if`s with the same such test (`if args["fp16"]: ... else: loss
    = out[0]`, then `if args["fp16"]: scaler.scale(loss).backward()`)."""
    first_path, second_path = _arms_to(body, first), _arms_to(body, second)
    if first_path is None or second_path is None:
        return True
    loops: list[ast.stmt] = []
    common = 0
    while common < min(len(first_path), len(second_path)) and first_path[common][0] is second_path[common][0]:
        stmt, arm = first_path[common]
        other_arm = second_path[common][1]
        if arm != other_arm:
            if _exclusive_arms(stmt, arm, other_arm) and (
                not loops or _same_arm_every_iteration(stmt, loops[0])
            ):
                return False
            break
        if isinstance(stmt, _LOOPS):
            loops.append(stmt)
        common += 1
    if not loops:
        return True
    conditions = {_condition(stmt, arm) for stmt, arm in first_path[common:] if _in_arm(stmt, arm)}
    for stmt, arm in second_path[common:]:
        if _in_arm(stmt, arm):
            test, polarity = _condition(stmt, arm)
            if (test, not polarity) in conditions and _same_arm_every_iteration(stmt, loops[0]):
                return False
    return True


def runs_before_each(body: list[ast.stmt], first: ast.stmt, second: ast.AST) -> bool:
    """Does every run of `body` that reaches `second` run the assignment `first` before it, in the
    same iteration of every loop around `second`? True only when that is certain: `first` comes earlier
    in a block that holds both, and the statements around it there are only `with`s and arms of `if`s
    that `second` lies under too (the same test, picking the same arm on every iteration of a loop
    around both: `if args["fp16"]: ... else: loss = out[0]`, later `if args["fp16"]: ... else:
    loss.backward()`)."""
    first_path, second_path = _arms_to(body, first), _arms_to(body, second)
    if (
        first_path is None
        or second_path is None
        or not isinstance(first_path[-1][0], (ast.Assign, ast.AnnAssign))
    ):
        return False
    common = 0
    while common < min(len(first_path), len(second_path)) and first_path[common] == second_path[common]:
        common += 1
    if common >= min(len(first_path), len(second_path)):
        return False
    block = body if common == 0 else _block_of(*first_path[common - 1])
    here, there = first_path[common][0], second_path[common][0]
    if block is None or here not in block or there not in block or block.index(here) >= block.index(there):
        return False
    loops = [stmt for stmt, _ in first_path[:common] if isinstance(stmt, _LOOPS)]
    if not loops or any(isinstance(stmt, _LOOPS) for stmt, _ in second_path[common:]):
        return False  # (`second` may run again before `first` does)
    conditions = {_condition(stmt, arm) for stmt, arm in second_path if _in_arm(stmt, arm)}
    for stmt, arm in first_path[common:-1]:
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            continue
        if not (
            _in_arm(stmt, arm)
            and _condition(stmt, arm) in conditions
            and _same_arm_every_iteration(stmt, loops[0])
        ):
            return False
    return True


def _block_of(stmt: ast.stmt, arm: tuple) -> list[ast.stmt] | None:
    """The statements of the arm `arm` of `stmt`."""
    if arm[0] in _STATEMENTS:
        return getattr(stmt, arm[0])
    if arm[0] in ("handlers", "cases"):
        return getattr(stmt, arm[0])[arm[1]].body
    return None


def _in_arm(stmt: ast.stmt, arm: tuple) -> bool:
    return isinstance(stmt, ast.If) and arm in (("body",), ("orelse",))


def _condition(stmt: ast.stmt, arm: tuple) -> tuple[str, bool]:
    """(the test without its `not`s, whether it holds) on the arm `arm` of the `if` `stmt`."""
    test, polarity = stmt.test, arm == ("body",)  # type: ignore[attr-defined]
    while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test, polarity = test.operand, not polarity
    return ast.dump(test), polarity


def _arms_to(body: list[ast.stmt], node: ast.AST) -> list[tuple[ast.stmt, tuple]] | None:
    """The statements of `body` that hold `node`, outermost first, each with the arm that holds it
    (`("body",)`, `("orelse",)`, `("handlers", 2)`, `("cases", 0)`, ...; `("",)` for the statement
    whose own expressions hold it); None when `body` does not hold it."""
    line = getattr(node, "lineno", None)
    if line is None:
        return None
    path: list[tuple[ast.stmt, tuple]] = []
    statements: list[ast.stmt] | None = body
    while statements is not None:
        holder = next(
            (s for s in statements if s.lineno <= line <= (s.end_lineno or s.lineno) and _holds(s, node)),
            None,
        )
        if holder is None:
            return None
        arm, statements = _arm_holding(holder, node)
        path.append((holder, arm))
    return path


def _holds(tree: ast.AST, node: ast.AST) -> bool:
    return any(n is node for n in ast.walk(tree))


def _arm_holding(stmt: ast.stmt, node: ast.AST) -> tuple[tuple, list[ast.stmt] | None]:
    """The arm of `stmt` that holds `node` and that arm's statements (None: `stmt`'s own expressions)."""
    for field in _STATEMENTS:
        block = getattr(stmt, field, None) or []
        if any(_holds(s, node) for s in block):
            return (field,), block
    for field in ("handlers", "cases"):
        for index, clause in enumerate(getattr(stmt, field, None) or []):
            if _holds(clause, node):
                inner = clause.body if any(_holds(s, node) for s in clause.body) else None
                return (field, index), inner
    return ("",), None


def _exclusive_arms(stmt: ast.stmt, arm: tuple, other: tuple) -> bool:
    """Does one run of `stmt` run at most one of the two (different) arms?"""
    arms = {arm[0], other[0]}
    if isinstance(stmt, ast.If):
        return arms == {"body", "orelse"}
    if isinstance(stmt, ast.Match):
        return arms == {"cases"}
    if isinstance(stmt, _TRY):
        # a handler runs only when the body raised, its `else` only when not
        return arms <= {"handlers", "orelse"}
    return False


def _same_arm_every_iteration(stmt: ast.stmt, loop: ast.stmt) -> bool:
    """Does `stmt` (inside `loop`) pick the same arm on every iteration: an `if` or a `match` whose
    test reads only names, attributes, subscripts by a constant and constants, none of which anything
    in `loop` rebinds, writes into, or hands to a call (an item the test does not read,
    `clip(args["max_norm"])`, may be handed on; so may what the test only compares by identity:
    `scaler.scale(loss)` after `if scaler is not None`)?"""
    test = stmt.test if isinstance(stmt, ast.If) else stmt.subject if isinstance(stmt, ast.Match) else None
    tested = _tested_paths(test) if test is not None else None
    if tested is None:
        return False
    stored, called = tested
    changed: list[ast.expr | None]
    for node in ast.walk(loop):
        if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)) and not isinstance(node.ctx, ast.Load):
            changed, sensitive = [node], stored  # rebound or written into
        elif isinstance(node, ast.Call):
            receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
            given = [*node.args, *(k.value for k in node.keywords)]
            changed = [receiver, *(g.value if isinstance(g, ast.Starred) else g for g in given)]
            sensitive = called
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            changed, sensitive = [ast.Name(name) for name in node.names], stored
        else:
            continue
        if any(
            (path := _path(expr)) is not None and path[0] in sensitive for expr in changed if expr is not None
        ):
            return False
    return True


def _path(expr: ast.expr) -> tuple[tuple, bool] | None:
    """(`args["fp16"]` -> ("args", ("[]", "fp16")), exact): a chain of names, attributes and
    subscripts, cut at the first subscript by something other than a constant (`args[k].x` ->
    ("args",), not exact: it may be any item); None for what is not such a chain."""
    if isinstance(expr, ast.Name):
        return (expr.id,), True
    if not isinstance(expr, (ast.Attribute, ast.Subscript)):
        return None
    base = _path(expr.value)
    if base is None or not base[1]:
        return base
    if isinstance(expr, ast.Attribute):
        return (*base[0], expr.attr), True
    if isinstance(expr.slice, ast.Constant):
        return (*base[0], ("[]", expr.slice.value)), True
    return base[0], False


def _tested_paths(test: ast.expr) -> tuple[set[tuple], set[tuple]] | None:
    """(the paths whose rebinding changes the test's answer, those whose being handed to a call may
    change it), when the test is made only of paths, constants, comparisons, `not`, `and`/`or`; None
    for any other test (a call may answer differently each time). A path and its prefixes are in
    both, except that a path the test only compares by identity (`x is None`) is not in the second:
    a call given the object cannot make it another object."""
    stored: set[tuple] = set()
    called: set[tuple] = set()
    parts: list[tuple[ast.expr, bool]] = [(test, False)]
    while parts:
        part, identity = parts.pop()
        if isinstance(part, ast.UnaryOp) and isinstance(part.op, ast.Not):
            parts.append((part.operand, False))
        elif isinstance(part, ast.Compare):
            by_identity = all(isinstance(op, (ast.Is, ast.IsNot)) for op in part.ops)
            parts.extend((operand, by_identity) for operand in [part.left, *part.comparators])
        elif isinstance(part, ast.BoolOp):
            parts.extend((value, False) for value in part.values)
        elif isinstance(part, (ast.Name, ast.Attribute, ast.Subscript)):
            path = _path(part)
            if path is None or not path[1]:
                return None
            prefixes = [path[0][:end] for end in range(1, len(path[0]) + 1)]
            stored.update(prefixes)
            called.update(prefixes[:-1] if identity else prefixes)
        elif not isinstance(part, ast.Constant):
            return None
    return stored, called
