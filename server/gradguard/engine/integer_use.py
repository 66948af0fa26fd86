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

from gradguard.engine import torch_facts
from gradguard.engine.index import _CHILD_FIELDS, ModuleContext, child_fields

# The arguments that must hold integers, the methods whose receiver must, and the methods that keep
# their receiver's elements and dtype (`labels.view(-1)` is `labels`) come from torch_facts (generated
# from torch's operator schemas, signatures and real calls).
LAYER_INTEGER_ARGUMENT = {name: a.position for name, a in torch_facts.INTEGER_LAYER_ARGUMENTS.items()}


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
            and expr.func.attr in torch_facts.same_elements_methods()
        ):
            expr = expr.func.value
        elif rows and isinstance(expr, ast.Subscript):
            expr = expr.value
        else:
            return None


def function_argument(qual: str) -> int | None:
    """The positional index of the integer argument of the torch function `qual`, if any."""
    spec = torch_facts.integer_function_argument(qual)
    return spec.position if spec is not None else None


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
        spec = torch_facts.integer_function_argument(qual)
        if spec is None:
            return []
        return [root_name(_argument(call, spec.position, spec.keyword), rows=spec.keyword != "target")]
    if _input_embeddings(func):
        return [root_name(call.args[0])] if call.args else []
    if not isinstance(func, ast.Attribute):
        return []
    attr = func.attr
    if attr in torch_facts.INTEGER_RECEIVER_METHODS and not call.args:
        return [root_name(func.value)]
    spec = torch_facts.integer_method_argument(attr)
    return [root_name(_argument(call, spec.position, spec.keyword), rows=True)] if spec else []


def integer_names(body: list[ast.stmt], module: ModuleContext) -> frozenset[str]:
    """The names of the scope whose statements are `body` (nested functions and classes left
    out: they are scopes of their own) that are used as integers somewhere in it."""
    return scan(body, module)[0]


def scan(body: list[ast.stmt], module: ModuleContext) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """`integer_names`, and for those of them whose only such use is the target of
    `F.cross_entropy` (which also takes float class probabilities of the input's shape:
    torch_facts' condition class_index_shape), the names of the scores they go with."""
    found: set[str | None] = set()
    targets: dict[str, set[str | None]] = {}
    # `n = t[i].item()` (n -> t), the names bound in the scope (with their number of bindings), the
    # names used as slice bounds
    items: dict[str, str] = {}
    stores: dict[str, int] = {}
    bounds: set[str] = set()
    stack: list[ast.AST] = list(body)
    # (an inlined `ast.iter_child_nodes` over the fields that can hold nodes, as `Unit._index`)
    fields_of = _CHILD_FIELDS.get
    node_type = ast.AST
    while stack:
        node = stack.pop()
        if isinstance(node, _SCOPES):
            continue
        if isinstance(node, ast.Subscript):
            found.update(root_name(e, rows=True) for e in _index_expressions(node))
            bounds.update(_slice_bound_names(node))
        elif isinstance(node, ast.Assign) or (
            isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)
        ):
            _note_binding(node, items, stores)
        elif isinstance(node, ast.Call):
            spec = _class_target(node, module)
            if spec is None:
                found.update(_call_names(node, module))
            else:
                name = root_name(_argument(node, spec.position, spec.keyword))
                if name is not None:
                    targets.setdefault(name, set()).add(root_name(_argument(node, 0, "input")))
        fields = fields_of(node.__class__)
        if fields is None:
            fields = child_fields(node.__class__)
        for field in fields:
            value = getattr(node, field, None)
            if value is None:
                continue
            if value.__class__ is list:
                stack.extend([item for item in value if isinstance(item, node_type)])
            elif isinstance(value, node_type):
                stack.append(value)
    found.update(t for n, t in items.items() if n in bounds and stores.get(n) == 1)
    conditional = {
        name: frozenset(s for s in scores if s is not None)
        for name, scores in targets.items()
        if name not in found
    }
    names = frozenset(name for name in found if name is not None) | frozenset(targets)
    return names, conditional


def _class_target(call: ast.Call, module: ModuleContext) -> torch_facts.IntegerArgument | None:
    qual = module.qualname(call.func)
    spec = torch_facts.integer_function_argument(qual) if qual is not None else None
    return spec if spec is not None and spec.condition == "class_index_shape" else None


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _input_embeddings(func: ast.expr) -> bool:
    """`model.get_input_embeddings()`: transformers' `PreTrainedModel` API for the module that maps
    the vocabulary's token ids to vectors (the model's `nn.Embedding`); what it is called on are ids
    (funasr's LLM ASR models: `self.llm.model.get_input_embeddings()(input_ids)`)."""
    return (
        isinstance(func, ast.Call)
        and not func.args
        and not func.keywords
        and isinstance(func.func, ast.Attribute)
        and func.func.attr == "get_input_embeddings"
    )


def _slice_bound_names(node: ast.Subscript) -> list[str]:
    """The names a slice of `node` starts or stops at, alone or as a term of `+`/`-`
    (`x[b, beg : beg + n]`): Python numbers there must be ints ("slice indices must be integers or
    None or have an __index__ method" from tensors, lists, arrays). Not pandas' `.loc`, which slices
    by labels."""
    if isinstance(node.value, ast.Attribute) and node.value.attr == "loc":
        return []
    parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    names: list[str] = []
    for part in parts:
        if not isinstance(part, ast.Slice):
            continue
        for bound in (part.lower, part.upper):
            terms = [bound]
            if isinstance(bound, ast.BinOp) and isinstance(bound.op, (ast.Add, ast.Sub)):
                terms = [bound.left, bound.right]
            names.extend(t.id for t in terms if isinstance(t, ast.Name))
    return names


def _note_binding(node: ast.AST, items: dict[str, str], stores: dict[str, int]) -> None:
    """Counts the bindings of a name; notes `n = t[...].item()` / `n = t.item()` as n -> t (n is
    then a Python number taken from an element of t: an int exactly when t holds integers)."""
    if isinstance(node, ast.Name):
        stores[node.id] = stores.get(node.id, 0) + 1
        return
    assert isinstance(node, ast.Assign)
    value = node.value
    if (
        len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and isinstance(value, ast.Call)
        and not value.args
        and isinstance(value.func, ast.Attribute)
        and value.func.attr == "item"
    ):
        tensor = root_name(value.func.value, rows=True)
        if tensor is not None:
            items[node.targets[0].id] = tensor
