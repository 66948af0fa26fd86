"""A helper that backpropagates its argument: the parameters of a function that every path through
its body hands to a backward without `retain_graph` before it returns (`loss.backward()` or
`torch.autograd.backward(loss, seed)`), so that a call of it frees the caller's graph behind the
argument as a written `loss.backward()` would (gptqmodel's `_backward_scalar_loss(loss)` in a
training loop).

Read from the syntax, and only "on every path": a backward in a loop body, a `try`, or one arm of an
`if` whose other arm returns without one does not count; a path that raises never returns to the
caller, so it counts as any.
"""

from __future__ import annotations

import ast

from gradguard.engine.index import ModuleContext

_AUTOGRAD_BACKWARD = frozenset({"torch.autograd.backward"})


def backpropagated_parameters(module: ModuleContext, func: ast.AST) -> frozenset[str]:
    """The parameters `func` backpropagates (without retaining the graph) on every path that returns."""
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return frozenset()
    spec = func.args
    names = [a.arg for a in (*spec.posonlyargs, *spec.args, *spec.kwonlyargs)]
    return frozenset(name for name in names if _always(module, func.body, name))


def _always(module: ModuleContext, body: list[ast.stmt], name: str) -> bool:
    """Does every path through `body` that reaches its end or a `return` backpropagate `name`?"""
    for stmt in body:
        if isinstance(stmt, ast.Expr) and _frees(module, stmt.value, name):
            return True
        if isinstance(stmt, ast.Raise):
            return True  # (a path that raises never returns to the caller)
        if isinstance(stmt, ast.Return) or _rebinds(stmt, name):
            return False
        if isinstance(stmt, ast.If):
            arms = (_always(module, stmt.body, name), _always(module, stmt.orelse, name))
            if all(arms):
                return True
            if any(
                _returns(arm) for arm, done in zip((stmt.body, stmt.orelse), arms, strict=True) if not done
            ):
                return False
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            if _always(module, stmt.body, name):
                return True
            if _returns(stmt.body):
                return False
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While, ast.Try, ast.Match)) and _returns([stmt]):
            return False  # a return there may leave before any backward
    return False


def _frees(module: ModuleContext, call: ast.expr, name: str) -> bool:
    """`name.backward()` / `torch.autograd.backward(name, ...)`, without retain_graph or create_graph."""
    if not isinstance(call, ast.Call) or any(kw.arg is None for kw in call.keywords):
        return False
    for kw in call.keywords:
        if kw.arg in ("retain_graph", "create_graph") and not (
            isinstance(kw.value, ast.Constant) and kw.value.value in (False, None)
        ):
            return False
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "backward" and _is_name(func.value, name):
        return len(call.args) < 2  # (a second positional argument is retain_graph)
    if module.qualname(func) in _AUTOGRAD_BACKWARD:
        return bool(call.args) and _is_name(call.args[0], name) and len(call.args) < 3
    return False


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _rebinds(stmt: ast.stmt, name: str) -> bool:
    """The statement assigns `name` somewhere (a backward after it may be of another value)."""
    return any(
        isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store)
        for node in ast.walk(stmt)
    )


def _returns(body: list[ast.stmt]) -> bool:
    """A `return` somewhere in `body` (not in a nested function)."""
    pending: list[ast.AST] = list(body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Return):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        pending.extend(ast.iter_child_nodes(node))
    return False
