"""`if x is not None:` tests whose `None` branch cannot get far: later in the same block, `x.attr`
(or `x[...]`) is evaluated unconditionally, and `None` has no such attribute, so the path where the
test found `None` raises (AttributeError, TypeError) there. Only the other branch goes on.

funasr's CIF predictors (dev12): `alphas = relu(...)`; `if mask is not None: alphas = alphas * mask`;
then `mask = mask.squeeze(-1)` before `alphas *= ...`. `alphas` is relu's saved output only on the
path where `mask is None`, which raises at `mask.squeeze(-1)` before the write.

The `None` branch must neither rebind the name nor leave the block (`return`, `break`, `continue`,
`yield`), and the statements between the test and the attribute must not either: then the path that
found `None` still holds `None` when it reaches the attribute. Blocks inside a `try` body (whose
handler may catch the error) or a `with suppress(...)` are left alone; so are names declared
`global`/`nonlocal`.
"""

from __future__ import annotations

import ast

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_LEAVES = (ast.Return, ast.Break, ast.Continue, ast.Yield, ast.YieldFrom)


def dead_none_branches(body: list[ast.stmt]) -> dict[ast.If, bool]:
    """For each `if x is None` / `if x is not None` of the scope whose `None` branch raises later in
    its block, the value the test has on every path that goes on (True for `is not None`)."""
    shared = _shared_names(body)
    found: dict[ast.If, bool] = {}
    _walk(body, found, shared, guarded=False)
    return found


def _walk(block: list[ast.stmt], found: dict[ast.If, bool], shared: set[str], guarded: bool) -> None:
    for i, stmt in enumerate(block):
        if isinstance(stmt, _SCOPES):
            continue
        if isinstance(stmt, ast.If) and not guarded:
            known = _known(stmt, block[i + 1 :], shared)
            if known is not None:
                found[stmt] = known
        if isinstance(stmt, ast.Try) or stmt.__class__.__name__ == "TryStar":
            _walk(stmt.body, found, shared, True)  # type: ignore[attr-defined]
            for handler in stmt.handlers:  # type: ignore[attr-defined]
                _walk(handler.body, found, shared, guarded)
            _walk(stmt.orelse, found, shared, guarded)  # type: ignore[attr-defined]
            _walk(stmt.finalbody, found, shared, guarded)  # type: ignore[attr-defined]
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            _walk(stmt.body, found, shared, guarded or any(_suppresses(item) for item in stmt.items))
        elif isinstance(stmt, (ast.If, ast.For, ast.AsyncFor, ast.While)):
            _walk(stmt.body, found, shared, guarded)
            _walk(stmt.orelse, found, shared, guarded)


def _known(stmt: ast.If, rest: list[ast.stmt], shared: set[str]) -> bool | None:
    test = stmt.test
    if not (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], (ast.Is, ast.IsNot))
        and isinstance(test.left, ast.Name)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    ):
        return None
    name = test.left.id
    goes_on = isinstance(test.ops[0], ast.IsNot)  # the test's value on the paths that go on
    none_branch = stmt.orelse if goes_on else stmt.body
    if name in shared or _binds(none_branch, name) or _leaves(none_branch):
        return None
    for later in rest:
        if _dereferences(later, name):
            return goes_on
        if _binds([later], name) or _leaves([later]) or isinstance(later, ast.Raise):
            return None
    return None


def _dereferences(stmt: ast.stmt, name: str) -> bool:
    """Whether running `stmt` always evaluates `name.attr` or `name[...]` (before rebinding it)."""
    if isinstance(stmt, ast.Assign):
        heads = [stmt.value, *stmt.targets]
    elif isinstance(stmt, ast.AugAssign):
        heads = [stmt.value, stmt.target]
    elif isinstance(stmt, (ast.Expr, ast.Return, ast.AnnAssign)):
        heads = [stmt.value] if stmt.value is not None else []
    elif isinstance(stmt, (ast.If, ast.While)):
        heads = [stmt.test]
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        heads = [stmt.iter]
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        heads = [item.context_expr for item in stmt.items[:1]]
    else:
        return False
    if any(isinstance(n, ast.NamedExpr) for head in heads for n in ast.walk(head)):
        return False
    return any(_evaluated(head, name) for head in heads)


def _evaluated(expr: ast.expr, name: str) -> bool:
    if (
        isinstance(expr, (ast.Attribute, ast.Subscript))
        and isinstance(expr.value, ast.Name)
        and expr.value.id == name
        and not (isinstance(expr, ast.Attribute) and expr.attr.startswith("__"))  # (None has dunders)
    ):
        return True
    if isinstance(expr, ast.Lambda):
        return False
    if isinstance(expr, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        children: list[ast.AST] = [expr.generators[0].iter]
    elif isinstance(expr, ast.IfExp):
        children = [expr.test]
    elif isinstance(expr, ast.BoolOp):
        children = [expr.values[0]]
    elif isinstance(expr, ast.Compare):
        children = [expr.left, expr.comparators[0]]
    else:
        children = list(ast.iter_child_nodes(expr))
    return any(isinstance(c, ast.expr) and _evaluated(c, name) for c in children)


def _binds(stmts: list[ast.stmt], name: str) -> bool:
    for stmt in stmts:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and node.id == name and not isinstance(node.ctx, ast.Load):
                return True
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                return True
            if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (a.asname or a.name.split(".")[0]) == name for a in node.names
            ):
                return True
            if isinstance(node, ast.ExceptHandler) and node.name == name:
                return True
            if node.__class__.__name__ in ("Match", "Global", "Nonlocal"):
                return True
    return False


def _leaves(stmts: list[ast.stmt]) -> bool:
    stack: list[ast.AST] = list(stmts)
    while stack:
        node = stack.pop()
        if isinstance(node, _LEAVES):
            return True
        if isinstance(node, _SCOPES):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return False


def _suppresses(item: ast.withitem) -> bool:
    """`with suppress(AttributeError):` (or any manager named so): it may swallow the error."""
    func = item.context_expr.func if isinstance(item.context_expr, ast.Call) else item.context_expr
    named = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return "suppress" in named.lower()


def _shared_names(body: list[ast.stmt]) -> set[str]:
    """Names declared `global` or `nonlocal` in the scope: other code may rebind them."""
    names: set[str] = set()
    stack: list[ast.AST] = list(body)
    # `global`/`nonlocal` are statements: only the statement lists are walked (no expression
    # holds a statement), not every node of the scope
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        elif not isinstance(node, _SCOPES):
            for field in STATEMENT_LISTS:
                children = getattr(node, field, None)
                if children and children.__class__ is list:
                    stack.extend(children)
    return names


# the fields of statements (and of `except` handlers and `case` clauses) holding statements
STATEMENT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")
