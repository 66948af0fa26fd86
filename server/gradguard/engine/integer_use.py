"""Integer by use: the names of a scope whose use shows that they hold integers (or booleans).

A tensor used as an index (`x[idx]`, `x[:, edge_index[0]]`), as the index argument of
`index_select`/`gather`/`scatter`/`scatter_add`/`index_add`/`take_along_dim`, as the input of
`torch.bincount`, `F.one_hot` or `F.embedding`, or as the class target of `F.cross_entropy` /
`F.nll_loss` holds integers (or a boolean mask): torch rejects a floating-point tensor there
("tensors used as indices must be long, int, byte or bool tensors", "Expected tensor for argument
#1 'indices' to have one of the following scalar types: Long, Int", "expected scalar type Long").
An integer tensor cannot require grad, so such a name holds a value that carries no gradient and
is not a float tensor the model computes, wherever it is bound in the scope.

This module finds those names by syntax (one walk of the scope, cached by the caller). Uses that
need the value analysis to be recognised (`self.embed(ids)` with an `nn.Embedding`, a
`nn.CrossEntropyLoss()` instance) are marked by the interpreter where the call is evaluated.
"""

from __future__ import annotations

import ast

from gradguard.engine.index import ModuleContext

# tensor methods: the positional index of their integer argument (and its keyword)
_METHOD_INDEX = {
    "index_select": 1,
    "gather": 1,
    "scatter": 1,
    "scatter_": 1,
    "scatter_add": 1,
    "scatter_add_": 1,
    "scatter_reduce": 1,
    "scatter_reduce_": 1,
    "index_add": 1,
    "index_add_": 1,
    "index_copy": 1,
    "index_copy_": 1,
    "index_fill": 1,
    "index_fill_": 1,
    "take_along_dim": 0,
}
_METHOD_KEYWORDS = frozenset({"index", "indices"})
_RECEIVER_METHODS = frozenset({"bincount"})  # `idx.bincount()`

# torch functions: positional index and keyword of their integer argument
_FUNCTION_INDEX = {
    "torch.index_select": (2, "index"),
    "torch.gather": (2, "index"),
    "torch.scatter": (2, "index"),
    "torch.scatter_add": (2, "index"),
    "torch.scatter_reduce": (2, "index"),
    "torch.index_add": (2, "index"),
    "torch.take_along_dim": (1, "indices"),
    "torch.take": (1, "index"),
    "torch.bincount": (0, "input"),
    "torch.nn.functional.one_hot": (0, "tensor"),
    "torch.nn.functional.embedding": (0, "input"),
    "torch.nn.functional.embedding_bag": (0, "input"),
    "torch.nn.functional.cross_entropy": (1, "target"),
    "torch.nn.functional.nll_loss": (1, "target"),
}

# torch.nn layers called on integers: the positional index of that argument
LAYER_INTEGER_ARGUMENT = {
    "torch.nn.Embedding": 0,
    "torch.nn.EmbeddingBag": 0,
    "torch.nn.CrossEntropyLoss": 1,
    "torch.nn.NLLLoss": 1,
}

# methods that keep the elements (and dtype) of their receiver: `labels.view(-1)` is `labels`
_SAME_ELEMENTS = frozenset(
    {"view", "reshape", "flatten", "squeeze", "unsqueeze", "contiguous", "clone", "detach"}
)


def root_name(expr: ast.expr | None, *, rows: bool = False) -> str | None:
    """The name whose elements `expr` holds: `labels`, `labels.view(-1)`, and with `rows`
    (an index position) `edge_index[0]`. None for anything else."""
    while True:
        if isinstance(expr, ast.Name):
            return expr.id
        if isinstance(expr, ast.Starred):
            expr = expr.value
        elif (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Attribute)
            and expr.func.attr in _SAME_ELEMENTS
        ):
            expr = expr.func.value
        elif rows and isinstance(expr, ast.Subscript):
            expr = expr.value
        else:
            return None


def function_argument(qual: str) -> int | None:
    """The positional index of the integer argument of the torch function `qual`, if any."""
    spec = _FUNCTION_INDEX.get(qual)
    return spec[0] if spec is not None else None


def _argument(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if index < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[: index + 1]):
        return call.args[index]
    return None


def _index_expressions(node: ast.Subscript) -> list[ast.expr]:
    if isinstance(node.slice, ast.Tuple):
        return [e for e in node.slice.elts if not isinstance(e, ast.Slice)]
    return [] if isinstance(node.slice, ast.Slice) else [node.slice]


def _call_names(call: ast.Call, module: ModuleContext) -> list[str | None]:
    func = call.func
    qual = module.qualname(func)
    if qual is not None:
        spec = _FUNCTION_INDEX.get(qual)
        return [root_name(_argument(call, *spec), rows=spec[1] != "target")] if spec else []
    if not isinstance(func, ast.Attribute):
        return []
    attr = func.attr
    if attr in _RECEIVER_METHODS and not call.args:
        return [root_name(func.value)]
    if attr in _METHOD_INDEX:
        found = [root_name(_argument(call, _METHOD_INDEX[attr], "index"), rows=True)]
        found += [root_name(k.value, rows=True) for k in call.keywords if k.arg in _METHOD_KEYWORDS]
        return found
    return []


def integer_names(body: list[ast.stmt], module: ModuleContext) -> frozenset[str]:
    """The names of the scope whose statements are `body` (nested functions and classes left
    out: they are scopes of their own) that are used as integers somewhere in it."""
    found: set[str | None] = set()
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Subscript):
            found.update(root_name(e, rows=True) for e in _index_expressions(node))
        elif isinstance(node, ast.Call):
            found.update(_call_names(node, module))
        stack.extend(ast.iter_child_nodes(node))
    found.discard(None)
    return frozenset(found)  # type: ignore[arg-type]
