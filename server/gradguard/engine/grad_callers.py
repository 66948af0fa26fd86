"""Where a project calls its private helpers with gradients off: the cross-file half of
`Semantics.called_without_grad`.

A file's summary (`project.ModuleSummary`) carries, for the private names (`_name`, not
dunder) its text mentions:
- `grad_off_calls`: the names every mention of which in this file is a call made where
  gradients are off -- inside `with torch.no_grad():` / `torch.inference_mode()` /
  `torch.set_grad_enabled(False)`, or in a function decorated `@torch.no_grad()` /
  `@torch.inference_mode()` (or nested in one);
- `private_uses`: the names mentioned any other way (a call with gradients on, a
  reference passed or stored, a mention in a comment or a string: textual, so it errs
  towards "used");
- `private_defs`: the names the file defines with `def`.

A private helper of the project whose name is in some file's `grad_off_calls` and in no
file's `private_uses` runs only with gradients off (`ProjectIndex.grad_off_helpers`).
Public names are never taken so: users of a library call its public functions and methods
with gradients on. Names are matched by their last part only (`x._helper(...)` counts
for every `_helper` of the project): a coincidence of names can only keep a helper
reported.

Files that mention no grad-disabling context are read with a regular expression only; the
others are parsed (the summary of the LSP's buffers reuses their tree).
"""

from __future__ import annotations

import ast
import re
from collections import Counter

_PRIVATE_RE = re.compile(r"(\bdef[ \t]+)?\b(_[A-Za-z0-9]\w*)")
_MARKERS = ("no_grad", "inference_mode", "set_grad_enabled")
_OFF_NAMES = frozenset(("no_grad", "inference_mode"))
EMPTY: frozenset[str] = frozenset()


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _last(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _turns_grad_off(expr: ast.AST) -> bool:
    """`torch.no_grad()`, `torch.inference_mode()` (not `(False)`), `torch.set_grad_enabled(False)`;
    read by the last part of the name (the summary knows no imports)."""
    if not isinstance(expr, ast.Call):
        return False
    name = _last(expr.func)
    first = expr.args[0] if expr.args else next((k.value for k in expr.keywords if k.arg == "mode"), None)
    if name in _OFF_NAMES:
        return first is None or (isinstance(first, ast.Constant) and first.value is True)
    if name == "set_grad_enabled":
        return isinstance(first, ast.Constant) and first.value is False
    return False


def _decorated_off(func: ast.AST) -> bool:
    for deco in getattr(func, "decorator_list", ()):
        if _turns_grad_off(deco) or (_last(deco) in _OFF_NAMES and not isinstance(deco, ast.Call)):
            return True
    return False


def _grad_off_call_counts(tree: ast.AST) -> Counter:
    """How many calls of each private name the tree makes where gradients are off."""
    counts: Counter = Counter()
    pending: list[tuple[ast.AST, bool]] = [(tree, False)]
    while pending:
        node, off = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # a body runs where the function is called, not where it is defined
            inner = _decorated_off(node)
            pending.extend((d, off) for d in node.decorator_list)
            pending.append((node.args, off))
            pending.extend((stmt, inner) for stmt in node.body)
            continue
        if isinstance(node, ast.Lambda):
            pending.append((node.body, False))
            continue
        if isinstance(node, (ast.With, ast.AsyncWith)):
            inner = off
            for item in node.items:
                pending.append((item, off))
                if _turns_grad_off(item.context_expr):
                    inner = True
                elif isinstance(item.context_expr, ast.Call) and _last(item.context_expr.func) in (
                    "enable_grad",
                    "set_grad_enabled",
                    *_OFF_NAMES,
                ):
                    inner = False  # enable_grad(), set_grad_enabled(<not a constant False>)
            pending.extend((stmt, inner) for stmt in node.body)
            continue
        if off and isinstance(node, ast.Call):
            name = _last(node.func)
            if name is not None and _private(name):
                counts[name] += 1
        pending.extend((child, off) for child in ast.iter_child_nodes(node))
    return counts


# -- the project that never trains --------------------------------------------------------------
# Anything in a file's text that computes, asks for or keeps a gradient (comments and strings too:
# a mention errs towards "trains"): a backward call, `autograd.grad`, an optimizer, a tensor made to
# require grad, a `.grad` read, a hook on the backward pass, `enable_grad`; or that builds a torch
# layer with trainable parameters (`nn.Linear(...)`, a convolution, an embedding, a norm, an RNN,
# attention): a model library's users train its layers with their own loop.
_GRAD_WORK_RE = re.compile(
    r"backward\s*\(|backward_hook|\bgrad\s*\(|\.grad\b|\btorch\.optim\b|\boptim\.[A-Z]\w*|\bOptimizer\b"
    r"|requires_grad\s*=\s*True|requires_grad_\s*\(\s*(?:True\s*)?\)|\.requires_grad\s*=(?!=)\s*(?!False)"
    r"|\benable_grad\b|\bcreate_graph\b|\bretain_graph\b|\bregister_hook\b|\btraining_step\b"
    r"|\b(?:Lazy)?(?:Linear|Bilinear|Conv(?:Transpose)?[123]d|Embedding(?:Bag)?|LayerNorm|GroupNorm|RMSNorm"
    r"|(?:Batch|Instance)Norm[123]d|LSTM|GRU|RNN|LSTMCell|GRUCell|RNNCell|MultiheadAttention|Transformer\w*"
    r"|PReLU)\s*\("
)


def may_train(text: str) -> bool:
    """Does the text compute, ask for or keep a gradient, or build a trainable torch layer,
    anywhere (textual: errs towards yes)?"""
    return _GRAD_WORK_RE.search(text) is not None


def _forward_grad_off(tree: ast.AST) -> bool:
    """A `forward` (or `__call__`) that runs its body with gradients off: decorated
    `@torch.no_grad()`, or one of its statements is a `with torch.no_grad():` block
    (hummingbird's `Executor.forward`)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in ("forward", "__call__"):
            if _decorated_off(node):
                return True
            for stmt in node.body:
                if isinstance(stmt, (ast.With, ast.AsyncWith)) and any(
                    _turns_grad_off(item.context_expr) for item in stmt.items
                ):
                    return True
    return False


def grad_call_facts(
    text: str, tree: ast.AST | None = None
) -> tuple[frozenset[str], frozenset[str], frozenset[str], bool]:
    """(grad_off_calls, private_uses, private_defs, forward_grad_off) of a file's text (see the
    module doc)."""
    if "_" not in text:
        return EMPTY, EMPTY, EMPTY, False
    mentions: Counter = Counter()
    defs: set[str] = set()
    for is_def, name in _PRIVATE_RE.findall(text):
        if name.startswith("__"):
            continue
        if is_def:
            defs.add(name)
        else:
            mentions[name] += 1
    off: Counter = Counter()
    forward_off = False
    if any(marker in text for marker in _MARKERS):
        if tree is None:
            try:
                tree = ast.parse(text)
            except (SyntaxError, ValueError, MemoryError, RecursionError):
                tree = None
        if tree is not None:
            off = _grad_off_call_counts(tree) if mentions else off
            forward_off = ("forward" in text or "__call__" in text) and _forward_grad_off(tree)
    grad_off = frozenset(name for name, n in off.items() if mentions.get(name) == n)
    uses = frozenset(name for name in mentions if name not in grad_off)
    return grad_off, uses, frozenset(defs), forward_off
