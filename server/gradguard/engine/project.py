"""The project index: what every file of a project defines and imports, resolved across
files and into installed packages without importing anything.

One `ModuleSummary` per file, built from its top-level statements (and the `if`/`try`
blocks at top level): the names it binds (classes with their bases, functions,
assignments, imports -- absolute and relative, `import a.b as c`), its star imports and
`__all__`. Summaries are cached by path, size and mtime, and an editor buffer replaces
its file's summary with `ProjectIndex.update(path, text)`.

Names are resolved the way Python binds them, through the summaries only: a module is
found in the project's roots first, then in the search directories (the running
interpreter's `sys.path` unless told otherwise), as a `.py` (or `.pyi`) file whose summary
is read lazily -- only the modules a question needs, as Pyright does. A compiled or
missing module is "unknown".

The kind of a class comes from walking its bases down to a few roots in torch
(`torch.nn.Module`, `torch.autograd.Function`, `torch.optim.Optimizer`, the LR
schedulers); nothing about third-party classes is hard-coded: transformers'
`PreTrainedModel` is a module because its source says `class PreTrainedModel(nn.Module,
...)`. A module class one of whose bases *from an installed package* defines `backward`
itself (Lightning's `LightningModule.backward(loss)`) gets that base as its
`backward_hook`: the framework calls an override of it, so it is no fake backward.

`ProjectIndex.for_file(path)` gives the per-file view (`FileResolver`) that the engine's
`ModuleContext` consults; its `signature` covers every cross-file fact a file's findings
may rest on, so the analyzer's per-unit cache stays correct when another file changes.
"""

from __future__ import annotations

import ast
import functools
import itertools
import json
import os
import re
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from gradguard.engine import holdings
from gradguard.engine.grad_callers import grad_call_facts, may_train
from gradguard.engine.holdings import Written, class_holds, class_tensor_stores
from gradguard.engine.index import dotted_name as _dotted

# -- kinds ----------------------------------------------------------------------------------
KIND_MODULE = "module"  # an nn.Module subclass
KIND_FUNCTION = "function"  # a torch.autograd.Function subclass
KIND_OPTIMIZER = "optimizer"
KIND_SCHEDULER = "scheduler"
KIND_OTHER = "other"  # a class whose bases are all known and none of the above
KIND_UNKNOWN = "unknown"  # a base could not be resolved (compiled, missing, dynamic)

# The roots: canonical definitions in torch and their public names. Everything else,
# torch's own classes included, is resolved from source down to one of these.
ROOTS: dict[str, str] = {
    "torch.nn.Module": KIND_MODULE,
    "torch.nn.modules.module.Module": KIND_MODULE,
    "torch.jit.ScriptModule": KIND_MODULE,
    "torch.jit._script.ScriptModule": KIND_MODULE,
    "torch.autograd.Function": KIND_FUNCTION,
    "torch.autograd.function.Function": KIND_FUNCTION,
    "torch.autograd.function.InplaceFunction": KIND_FUNCTION,
    "torch.optim.Optimizer": KIND_OPTIMIZER,
    "torch.optim.optimizer.Optimizer": KIND_OPTIMIZER,
    "torch.optim.lr_scheduler.LRScheduler": KIND_SCHEDULER,
    "torch.optim.lr_scheduler._LRScheduler": KIND_SCHEDULER,
    "torch.optim.lr_scheduler.ReduceLROnPlateau": KIND_SCHEDULER,
}
_KIND_RANK = {KIND_MODULE: 4, KIND_FUNCTION: 3, KIND_OPTIMIZER: 2, KIND_SCHEDULER: 1}

# Words whose presence in a function's text the engine's loop rules use (see index.py).
LOOP_VOCABULARY = ("zero_grad", "backward", "step", "clip_grad")

_BACKWARD_CALL_RE = re.compile(
    r"\.[ \t]*(\w*?[Bb]ackward\w*)[ \t]*\((?![ \t]*(?:\)|retain_graph\b|create_graph\b|inputs\b))"
)
_BACKWARD_DEF_RE = re.compile(r"def[ \t]+\w*?[Bb]ackward\w*[ \t]*\(")


def explicit_backward_calls(text: str) -> frozenset[str]:
    """Names of `*backward*` methods called with arguments (`layer.backward(grad)`)."""
    if "ackward" not in text:
        return frozenset()
    return frozenset(_BACKWARD_CALL_RE.findall(text))


def changes_default_dtype(text: str) -> bool:
    return "set_default_dtype" in text or "set_default_tensor_type" in text


# -- summaries --------------------------------------------------------------------------------
class Binding(NamedTuple):
    """What a top-level name is bound to (a named tuple: hundreds of thousands are made)."""

    kind: str  # "class" | "function" | "import" | "variable"
    bases: tuple[str, ...] = ()  # class: base expressions as written ("nn.Module", "Base", "?")
    defines_backward: bool = False  # class: has a `backward` method of its own
    calls: frozenset[str] = frozenset()  # function: LOOP_VOCABULARY words in its text
    module: str | None = None  # import: `from X import y` -> X; `import a.b as c` -> "a.b"
    name: str | None = None  # import: the attribute imported; None when the module itself is bound
    level: int = 0  # import: relative level (`from ..x import y` -> 2)
    alias: str | None = None  # variable: `X = a.b` -> "a.b"; None for any other value
    holds: tuple[str, ...] = ()  # class: what its text stores on `self` (holdings.class_holds)
    tensor_stores: tuple[str, ...] = ()  # class: what it stores under parameter names (holdings)
    line: int = 0  # last field: not one of the facts other files rest on (see _facts_of_names)


@dataclass
class ModuleSummary:
    """The top-level facts of one file; independent of where the file lives."""

    names: dict[str, Binding] = field(default_factory=dict)
    stars: tuple[tuple[str | None, int], ...] = ()  # (module, level) of `from m import *`
    all: tuple[str, ...] | None = None  # `__all__`, when it is a literal
    imports: tuple[tuple[str | None, int, tuple[str, ...]], ...] = ()  # (module, level, names) edges
    backward_calls: frozenset[str] = frozenset()
    sets_default_dtype: bool = False
    has_backward_methods: bool = False  # a `def *backward*(` anywhere in the file
    # functions (keyed by their `_tail`) called only with gradients off / used otherwise / defined
    # (grad_callers); not in `digest`: they matter to the files defining those functions only
    grad_off_calls: frozenset[str] = frozenset()
    private_uses: frozenset[str] = frozenset()
    private_defs: frozenset[str] = frozenset()
    # the text computes or asks for a gradient, or builds a trainable layer; a `forward` runs with
    # gradients off (grad_callers)
    may_train: bool = True
    forward_grad_off: bool = False
    digest: int = 0
    fast: bool = False  # built by the line scanner (not a full parse)

    def finish(self) -> ModuleSummary:
        self.digest = hash(
            (
                _facts_of_names(self.names),
                self.stars,
                self.all,
                self.imports,
                self.backward_calls,
                self.sets_default_dtype,
                self.has_backward_methods,
            )
        )
        return self

    def same_facts(self, other: ModuleSummary) -> bool:
        return self.digest == other.digest and _facts_of_names(self.names) == _facts_of_names(other.names)

    def same_grad_calls(self, other: ModuleSummary) -> bool:
        return (
            self.grad_off_calls == other.grad_off_calls
            and self.private_uses == other.private_uses
            and self.private_defs == other.private_defs
            and self.may_train == other.may_train
            and self.forward_grad_off == other.forward_grad_off
        )


def _project_mode_facts(summary: ModuleSummary) -> tuple[bool, bool]:
    """What a file adds to whether its project is inference-only (`ProjectIndex.inference_only`)."""
    return summary.may_train, summary.forward_grad_off


def _inference_only(summaries: list[ModuleSummary]) -> bool:
    return any(s.forward_grad_off for s in summaries) and not any(s.may_train for s in summaries)


def _facts_of_names(names: dict[str, Binding]) -> tuple:
    """The bindings without their line numbers, which no other file relies on: a line
    added above a class is no change for the files that import it."""
    return tuple(sorted((name, binding[:-1]) for name, binding in names.items()))


def _base_expr(node: ast.AST) -> str:
    """A class base as written: `nn.Module`; `Generic[T]` -> "Generic"; "?" otherwise."""
    if isinstance(node, ast.Subscript):
        node = node.value
    return _dotted(node) or "?"


def _str_list(node: ast.AST) -> list[str] | None:
    """`["a", "b"]` / `("a",)` / `[...] + [...]` -> the strings; None when not all literal."""
    if isinstance(node, (ast.List, ast.Tuple)):
        out = []
        for elt in node.elts:
            if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                out.append(elt.value)
            else:
                return None
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _str_list(node.left), _str_list(node.right)
        if left is None and right is None:
            return None
        return (left or []) + (right or [])
    return None


class _Builder:
    """Collects bindings in statement order; shared by the AST summarizer and the scanner."""

    def __init__(self, lines: list[str] | None, text: str = "") -> None:
        self.lines = lines  # with their endings (None: computed from `text` when needed)
        self.text = text
        self.cond = False  # the scanner is inside a top-level if/try block
        self.names: dict[str, Binding] = {}
        self.stars: list[tuple[str | None, int]] = []
        self.all: list[str] | None = None
        self.all_dynamic = False
        self.imports: list[tuple[str | None, int, tuple[str, ...]]] = []

    def bind(self, name: str, binding: Binding, conditional: bool) -> None:
        if conditional and binding.kind == "variable":
            old = self.names.get(name)
            if old is not None and old.kind != "variable":
                return  # `try: from x import A / except ImportError: A = None` keeps the import
        self.names[name] = binding

    def function(self, name: str, first: int, last: int, line: int, conditional: bool) -> None:
        if self.lines is None:
            self.lines = _normal_lines(self.text)
        text = "".join(self.lines[first - 1 : last])
        calls = frozenset(word for word in LOOP_VOCABULARY if word in text)
        self.bind(name, Binding("function", calls=calls, line=line), conditional)

    def import_module(self, module: str, asname: str | None, line: int, conditional: bool) -> None:
        if asname:
            self.bind(asname, Binding("import", module=module, line=line), conditional)
        else:
            top = module.split(".")[0]
            self.bind(top, Binding("import", module=top, line=line), conditional)
        self.imports.append((module, 0, ()))

    def import_from(
        self,
        module: str | None,
        level: int,
        names: list[tuple[str, str | None]],
        line: int,
        conditional: bool,
    ) -> None:
        imported = []
        for name, asname in names:
            if name == "*":
                self.stars.append((module, level))
                continue
            imported.append(name)
            binding = Binding("import", module=module, name=name, level=level, line=line)
            self.bind(asname or name, binding, conditional)
        self.imports.append((module, level, tuple(imported)))

    # -- AST statements ------------------------------------------------------------------
    def statements(self, body: list[ast.stmt], conditional: bool, line_offset: int = 0) -> None:
        for stmt in body:
            self.statement(stmt, conditional, line_offset)

    def statement(self, stmt: ast.stmt, conditional: bool, line_offset: int = 0) -> None:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                self.import_module(alias.name, alias.asname, stmt.lineno + line_offset, conditional)
        elif isinstance(stmt, ast.ImportFrom):
            names = [(alias.name, alias.asname) for alias in stmt.names]
            self.import_from(stmt.module, stmt.level, names, stmt.lineno + line_offset, conditional)
        elif isinstance(stmt, ast.ClassDef):
            self._class_statement(stmt, conditional, line_offset)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = stmt.lineno + line_offset
            last = (stmt.end_lineno or stmt.lineno) + line_offset
            self.function(stmt.name, first, last, first, conditional)
        elif isinstance(stmt, (ast.If, ast.Try)) or (
            sys.version_info >= (3, 11) and isinstance(stmt, ast.TryStar)
        ):
            self.statements(stmt.body, True, line_offset)
            for handler in getattr(stmt, "handlers", ()):
                self.statements(handler.body, True, line_offset)
            self.statements(stmt.orelse, True, line_offset)
        elif isinstance(stmt, ast.Assign):
            self._assign_statement(stmt, conditional, line_offset)
        elif isinstance(stmt, ast.AnnAssign):
            self._ann_assign_statement(stmt, conditional, line_offset)
        elif isinstance(stmt, ast.AugAssign):
            if isinstance(stmt.target, ast.Name) and stmt.target.id == "__all__":
                self._extend_all(_str_list(stmt.value))
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            self._all_call_statement(stmt.value)

    def _class_statement(self, stmt: ast.ClassDef, conditional: bool, line_offset: int) -> None:
        bases = tuple(_base_expr(b) for b in stmt.bases)
        backward = any(
            isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == "backward" for s in stmt.body
        )
        if self.lines is None:
            self.lines = _normal_lines(self.text)
        first, last = stmt.lineno + line_offset, (stmt.end_lineno or stmt.lineno) + line_offset
        body = "".join(self.lines[first - 1 : last])
        binding = Binding(
            "class",
            bases=bases,
            defines_backward=backward,
            holds=class_holds(body),
            tensor_stores=class_tensor_stores(body),
            line=stmt.lineno + line_offset,
        )
        self.bind(stmt.name, binding, conditional)

    def _assign_statement(self, stmt: ast.Assign, conditional: bool, line_offset: int) -> None:
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets):
            self._set_all(_str_list(stmt.value))
        alias = _dotted(stmt.value) if isinstance(stmt.value, (ast.Name, ast.Attribute)) else None
        for target in stmt.targets:
            for name in _target_names(target):
                self.bind(name, Binding("variable", alias=alias, line=stmt.lineno + line_offset), conditional)

    def _ann_assign_statement(self, stmt: ast.AnnAssign, conditional: bool, line_offset: int) -> None:
        if isinstance(stmt.target, ast.Name) and stmt.value is not None:
            if stmt.target.id == "__all__":
                self._set_all(_str_list(stmt.value))
            value = stmt.value
            alias = _dotted(value) if isinstance(value, (ast.Name, ast.Attribute)) else None
            binding = Binding("variable", alias=alias, line=stmt.lineno + line_offset)
            self.bind(stmt.target.id, binding, conditional)

    def _all_call_statement(self, call: ast.Call) -> None:
        """`__all__.extend([...])` and `__all__.append("name")` as statements."""
        func = call.func
        if not (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "__all__"
            and call.args
        ):
            return
        if func.attr == "extend":
            self._extend_all(_str_list(call.args[0]))
        elif func.attr == "append":
            arg = call.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                self._extend_all([arg.value])
            else:
                self.all_dynamic = True

    def _set_all(self, names: list[str] | None) -> None:
        if names is None:
            self.all_dynamic = True
            self.all = None
        else:
            self.all, self.all_dynamic = list(names), False

    def _extend_all(self, names: list[str] | None) -> None:
        if names is None:
            self.all_dynamic = True
        elif not self.all_dynamic:
            self.all = (self.all or []) + names

    def summary(self, text: str, fast: bool) -> ModuleSummary:
        off, uses, defs, forward_off = grad_call_facts(text)
        return ModuleSummary(
            names=self.names,
            stars=tuple(self.stars),
            all=None if self.all_dynamic or self.all is None else tuple(self.all),
            imports=tuple(self.imports),
            backward_calls=explicit_backward_calls(text),
            sets_default_dtype=changes_default_dtype(text),
            has_backward_methods=bool(_BACKWARD_DEF_RE.search(text)) if "ackward" in text else False,
            grad_off_calls=off,
            private_uses=uses,
            private_defs=defs,
            may_train=may_train(text),
            forward_grad_off=forward_off,
            fast=fast,
        ).finish()


def _target_names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _target_names(elt)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def summarize_tree(tree: ast.Module, text: str) -> ModuleSummary:
    """The summary of a parsed file (its top-level statements only)."""
    builder = _Builder(_normal_lines(text), text)
    builder.statements(tree.body, False)
    return builder.summary(text, fast=False)


def _normal_lines(text: str) -> list[str]:
    # the same line numbering as ast: split at \n, \r\n and \r only
    from gradguard.engine.source import split_lines

    return split_lines(text)


def _parse(text: str, path: str = "<project>") -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text, filename=path)


def summarize_source(text: str, path: str = "<project>") -> ModuleSummary | None:
    """Summary from a full parse; None when the text does not parse."""
    try:
        tree = _parse(text, path)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    return summarize_tree(tree, text)


# -- the line scanner -------------------------------------------------------------------------
# Finding the top-level statements does not need a full parse: they are the lines that
# start in column 0 outside triple-quoted strings. Imports, `__all__` and top-level
# `if`/`try` blocks are parsed with `ast` one statement at a time; class headers and
# simple assignments are read with regular expressions; a function's body is only
# searched for a few words. Anything the scanner is unsure of makes it fall back to a full
# parse of the file, so it gives the same summary as `summarize_source` (tested on the
# benchmark corpus) at a fraction of the cost.
_TOP_RE = re.compile(r"\n[^\s#)\]}]")  # a literal first character: searched at C speed
_CLASS_RE = re.compile(r"class[ \t]+(\w+)[ \t]*(?:\(([^()#\[\]\"']*)\))?[ \t]*:")
_DEF_RE = re.compile(r"(?:async[ \t]+)?def[ \t]+(\w+)")
_ASSIGN_RE = re.compile(r"((?:[A-Za-z_]\w*[ \t]*=(?!=)[ \t]*)+)(.*)")
_ANN_ASSIGN_RE = re.compile(r"([A-Za-z_]\w*)[ \t]*:[^=\n]*=(?!=)[ \t]*(.*)")
_TUPLE_ASSIGN_RE = re.compile(
    r"\(?[ \t]*([A-Za-z_]\w*(?:[ \t]*,[ \t]*[A-Za-z_]\w*)+)[ \t]*,?[ \t]*\)?[ \t]*=(?!=)"
)
_HEAD_RE = re.compile(r"[A-Za-z_][\w.]*")
_DOTTED_ONLY_RE = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)[ \t]*(?:#.*)?")
_BODY_DEF_RE = re.compile(r"^([ \t]+)(?:async[ \t]+)?def[ \t]+backward\b", re.MULTILINE)
_IMPORT_RE = re.compile(r"import[ \t]+([\w. \t,]+?)[ \t]*(?:#[^\n]*)?(?:\n|$)")
_FROM_RE = re.compile(
    r"from[ \t]+(\.*)[ \t]*([\w.]*)[ \t]+import[ \t]*"
    r"(?:\(([^()]*)\)[ \t]*(?:#[^\n]*)?(?:\n|$)|([^\n#();\\]*?)[ \t]*(?:#[^\n]*)?(?:\n|$))"
)
_IMPORT_NAME_RE = re.compile(r"([\w.]+|\*)(?:[ \t\n]+as[ \t\n]+(\w+))?")
_COMMENT_RE = re.compile(r"#[^\n]*")
_ANNOTATION_RE = re.compile(r"[A-Za-z_]\w*[ \t]*:")
_BARE_ANNOTATION_RE = re.compile(r"[A-Za-z_]\w*[ \t]*:[^=]*$")
_OTHER_ASSIGN_RE = re.compile(r"[A-Za-z_][\w.]*[ \t]*(?:\[[^\]]*\])?[ \t]*[-+*/%&|^@<>]*=(?!=)")
_EXPRESSION_RE = re.compile(r"[A-Za-z_][\w.]*[ \t]*[(.\[]|[A-Za-z_]\w*[ \t]*(?:#.*)?$")
_CONTINUATIONS = frozenset(("else", "elif", "except", "finally"))
_OPEN_ENDINGS = "([{,\\"
_KEYWORDS = frozenset(
    [
        "if",
        "try",
        "else",
        "elif",
        "except",
        "finally",
        "for",
        "while",
        "with",
        "async",
        "def",
        "class",
        "import",
        "from",
        "del",
        "pass",
        "return",
        "raise",
        "assert",
        "global",
        "nonlocal",
        "break",
        "continue",
        "lambda",
        "not",
        "await",
        "yield",
    ]
)


class _Unsure(Exception):
    pass


def _triple_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the triple-quoted strings, found with `str.find` (C speed)."""
    spans: list[tuple[int, int]] = []
    size = len(text)
    dq, sq = '"' * 3, "'" * 3
    next_d = text.find(dq)
    next_s = text.find(sq)
    while next_d >= 0 or next_s >= 0:
        if next_d >= 0 and (next_s < 0 or next_d < next_s):
            start, quote = next_d, dq
        else:
            start, quote = next_s, sq
        close = text.find(quote, start + 3)
        while close >= 0:
            k = close - 1
            while text[k] == "\\":
                k -= 1
            if (close - 1 - k) % 2 == 0:
                break
            close = text.find(quote, close + 1)
        if close < 0:
            raise _Unsure("unbalanced triple quotes")
        end = close + 3
        while end < size and text[end] == quote[0] and end - close < 5:
            end += 1
        spans.append((start, end))
        if 0 <= next_d < end:
            next_d = text.find(dq, end)
        if 0 <= next_s < end:
            next_s = text.find(sq, end)
    return spans


def scan_source(text: str, path: str = "<project>") -> ModuleSummary | None:
    """The summary of a file without parsing all of it; falls back to a full parse."""
    try:
        return _scan(text)
    except (_Unsure, SyntaxError, ValueError, RecursionError):
        return summarize_source(text, path)


def _scan(text: str) -> ModuleSummary:
    if "\r" in text or "\f" in text or "\v" in text:
        raise _Unsure("line endings")
    builder = _Builder(None, text)
    _scan_into(builder, text, 0)
    return builder.summary(text, fast=True)


def _scan_into(builder: _Builder, text: str, base: int) -> None:
    """Scan `text` (the file, or the dedented body of a top-level `if`/`try` block whose
    first line is the file's line `base` + 1) into the builder."""
    tops = _top_starts(text, base)
    cond = builder.cond
    n = len(tops) - 1
    i = 0
    while i < n:
        pos, line = tops[i]
        end = tops[i + 1][0]
        eol = text.find("\n", pos, end)
        first = text[pos : eol if eol >= 0 else end]
        head_m = _HEAD_RE.match(first)
        head = head_m.group() if head_m else ""
        if head == "if" or head == "try":
            # a top-level block with its else/elif/except/finally parts
            j = _block_last_clause(text, tops, i, n)
            _scan_block(builder, text, tops[i : j + 1])
            i = j
            continue
        _scan_top_statement(builder, text, head, first, (pos, eol, end), line, cond)
        i += 1


def _top_starts(text: str, base: int) -> list[tuple[int, int]]:
    """The column-0 statement starts outside triple-quoted strings, as (offset, 0-based line),
    closed by (len(text), the line after the last)."""
    spans = _triple_spans(text)
    tops: list[tuple[int, int]] = []
    span_i, n_spans = 0, len(spans)
    line, last = 0, 0
    first_char = text[:1]
    found = ([0] if first_char and first_char not in " \t\n#)]}" else []) + [
        m.start() + 1 for m in _TOP_RE.finditer(text)
    ]
    for pos in found:
        while span_i < n_spans and spans[span_i][1] <= pos:
            span_i += 1
        if span_i < n_spans and spans[span_i][0] < pos:
            continue
        line += text.count("\n", last, pos)
        last = pos
        j = pos - 1
        while j >= 0 and text[j] in " \t\n":
            j -= 1
        if j >= 0 and text[j] in _OPEN_ENDINGS:
            raise _Unsure("a column-0 line continues the previous one")
        tops.append((pos, line + base))
    tops.append((len(text), line + base + text.count("\n", last)))
    return tops


def _block_last_clause(text: str, tops: list[tuple[int, int]], i: int, n: int) -> int:
    """The index in `tops` of the last else/elif/except/finally clause of the block at `i`, plus one."""
    j = i + 1
    while j < n:
        w = _HEAD_RE.match(text, tops[j][0])
        if not w or w.group() not in _CONTINUATIONS:
            break
        j += 1
    return j


def _scan_top_statement(
    builder: _Builder,
    text: str,
    head: str,
    first: str,
    bounds: tuple[int, int, int],
    line: int,
    cond: bool,
) -> None:
    """One top-level statement other than an `if`/`try` block; `bounds` is its (start, end of
    its first line or -1, end) in `text`."""
    pos, eol, end = bounds
    if head == "import":
        if not _scan_import(builder, first, line + 1):
            _parse_into(builder, text[pos:end], line)
    elif head == "from":
        if not _scan_from(builder, text, pos, end, line + 1):
            _parse_into(builder, text[pos:end], line)
    elif head == "class":
        _scan_class(builder, text, pos, end, line)
    elif head == "def" or head == "async":
        _scan_def(builder, text, first, pos, end, line, cond)
    elif head in _CONTINUATIONS:
        raise _Unsure("dangling block continuation")
    elif head == "__all__":
        if not _scan_all(builder, text[pos:end], line + 1):
            _parse_into(builder, text[pos:end], line)
    elif head.startswith("__all__") or first[0] in "([*":
        _parse_into(builder, text[pos:end], line)
    elif head and head not in _KEYWORDS and first[0] not in "@[{":
        _scan_assignment(builder, text, first, eol, end, line + 1)


def _scan_def(builder: _Builder, text: str, first: str, pos: int, end: int, line: int, cond: bool) -> None:
    m2 = _DEF_RE.match(first)
    if m2 is None:
        raise _Unsure("def")
    stop = end
    while True:  # trailing blank and comment lines are not the function's
        k = text.rfind("\n", pos, stop - 1)
        if k < 0:
            break
        tail = text[k + 1 : stop].strip()
        if tail and not tail.startswith("#"):
            break
        stop = k + 1
    calls = frozenset(w for w in LOOP_VOCABULARY if text.find(w, pos, stop) >= 0)
    builder.bind(m2.group(1), Binding("function", calls=calls, line=line + 1), cond)


_ALL_RE = re.compile(
    r"__all__[ \t]*=[ \t]*[\[(]((?:\s*(?:\"[^\"\\\n]*\"|'[^'\\\n]*')[ \t]*,?)*)\s*[\])][ \t]*(?:#[^\n]*)?\s*"
)
_STRING_RE = re.compile(r"\"([^\"\\\n]*)\"|'([^'\\\n]*)'")


def _scan_all(builder: _Builder, segment: str, line: int) -> bool:
    """`__all__ = ["a", "b", ...]` (only string literals) without a parse."""
    m = _ALL_RE.fullmatch(segment)
    if m is None:
        return False
    builder._set_all([a or b for a, b in _STRING_RE.findall(m.group(1))])
    builder.bind("__all__", Binding("variable", line=line), builder.cond)
    return True


def _scan_block(builder: _Builder, text: str, clauses: list[tuple[int, int]]) -> None:
    """A top-level `if`/`try` statement: each clause's body is scanned as a block of its
    own (bindings in it are conditional); anything unusual parses the statement."""
    start, stop = clauses[0][0], clauses[-1][0]
    saved = (dict(builder.names), len(builder.stars), builder.all, builder.all_dynamic, len(builder.imports))
    saved_cond = builder.cond
    try:
        builder.cond = True
        for (pos, line), (nxt, _) in itertools.pairwise(clauses):
            eol = text.find("\n", pos, nxt)
            header = text[pos:eol] if eol >= 0 else ""
            if "#" in header:
                header = header.split("#", 1)[0]
            if eol < 0 or not header.rstrip().endswith(":"):
                raise _Unsure("clause header")
            if _HEAD_RE.match(header).group() == "finally":  # type: ignore[union-attr]
                continue  # as the parser-based summary: a finally block binds nothing we use
            body = _dedent(text[eol + 1 : nxt])
            _scan_into(builder, body, line + 1)
    except (_Unsure, SyntaxError, ValueError):
        builder.names = saved[0]
        del builder.stars[saved[1] :]
        builder.all, builder.all_dynamic = saved[2], saved[3]
        del builder.imports[saved[4] :]
        builder.cond = saved_cond
        _parse_into(builder, text[start:stop], clauses[0][1])
    finally:
        builder.cond = saved_cond


def _dedent(body: str) -> str:
    lines = body.split("\n")
    indent = None
    for ln in lines:
        stripped = ln.lstrip()
        if stripped and not stripped.startswith("#"):
            indent = ln[: len(ln) - len(stripped)]
            break
    if not indent:
        raise _Unsure("block body")
    size = len(indent)
    out = []
    for ln in lines:
        if ln.startswith(indent):
            out.append(ln[size:])
        elif not ln.strip() or ln.lstrip().startswith("#"):
            out.append("")
        else:
            raise _Unsure("block indentation")
    return "\n".join(out)


def _parse_into(builder: _Builder, segment: str, line: int) -> None:
    tree = _parse(segment)
    builder.statements(tree.body, builder.cond, line_offset=line)


def _split_names(names: str) -> list[tuple[str, str | None]] | None:
    out = []
    for part in names.split(","):
        part = part.strip()
        if not part:
            continue
        m = _IMPORT_NAME_RE.fullmatch(part)
        if m is None:
            return None
        out.append((m.group(1), m.group(2)))
    return out


def _scan_import(builder: _Builder, first: str, line: int) -> bool:
    m = _IMPORT_RE.match(first + "\n")
    if m is None:
        return False
    names = _split_names(m.group(1))
    if not names:
        return False
    for module, asname in names:
        builder.import_module(module, asname, line, builder.cond)
    return True


def _scan_from(builder: _Builder, text: str, pos: int, end: int, line: int) -> bool:
    m = _FROM_RE.match(text, pos, end)
    if m is None:
        return False
    dots, module = m.group(1), m.group(2)
    if not dots and not module:
        return False
    names_text = m.group(3) if m.group(3) is not None else m.group(4)
    if m.group(3) is not None and "#" in names_text:
        names_text = _COMMENT_RE.sub("", names_text)
    names = _split_names(names_text)
    if not names:
        return False
    rest = text[m.end() : end]
    if rest.strip() and any(
        ln.strip() and not ln.strip().startswith("#") for ln in rest.split("\n")
    ):  # more code in the segment than the import: let the parser read it
        return False
    builder.import_from(module or None, len(dots), names, line, builder.cond)
    return True


def _scan_class(builder: _Builder, text: str, pos: int, end: int, line: int) -> None:
    m = _CLASS_RE.match(text, pos, end)
    if m is None:
        # an unusual header (brackets, strings or comments inside the bases): parse just it
        segment = text[pos:end].split("\n")
        depth = 0
        stop = 0
        for k, ln in enumerate(segment):
            depth += ln.count("(") + ln.count("[") - ln.count(")") - ln.count("]")
            if depth <= 0:
                stop = k + 1
                break
        else:
            raise _Unsure("class header")
        header = "\n".join(segment[:stop])
        tree = _parse(header + "\n    pass")
        cls = tree.body[0]
        if not isinstance(cls, ast.ClassDef):
            raise _Unsure("class header")
        name = cls.name
        bases = tuple(_base_expr(b) for b in cls.bases)
        header_end = pos + len(header)
    else:
        name = m.group(1)
        header_end = m.end()
        bases = ()
        if m.group(2) is not None:
            out = []
            for item in m.group(2).split(","):
                item = item.strip()
                if not item or "=" in item or item.startswith("*"):
                    continue
                if holdings.DOTTED_RE.fullmatch(item):
                    out.append(item.replace(" ", "").replace("\t", ""))
                else:
                    out.append("?")
            bases = tuple(out)
    backward = False
    if text.find("backward", header_end, end) >= 0:
        body_indent = None
        k = text.find("\n", header_end, end)
        while 0 <= k < end:
            nxt = text.find("\n", k + 1, end)
            ln = text[k + 1 : nxt if nxt >= 0 else end]
            stripped = ln.strip()
            if stripped and not stripped.startswith("#"):
                body_indent = ln[: len(ln) - len(ln.lstrip())]
                break
            k = nxt
        for m3 in _BODY_DEF_RE.finditer(text, header_end, end):
            if m3.group(1) == body_indent:
                backward = True
                break
    body = text[pos:end]
    binding = Binding(
        "class",
        bases=bases,
        defines_backward=backward,
        holds=class_holds(body),
        tensor_stores=class_tensor_stores(body),
        line=line + 1,
    )
    builder.bind(name, binding, builder.cond)


def _scan_assignment(builder: _Builder, text: str, first: str, eol: int, end: int, line: int) -> None:
    def rest_blank() -> bool:
        if eol < 0:
            return True
        for ln in text[eol:end].split("\n"):
            stripped = ln.strip()
            if stripped and not stripped.startswith("#"):
                return False
        return True

    m = _ASSIGN_RE.match(first)
    if m is not None:
        targets = [t.strip() for t in m.group(1).split("=") if t.strip()]
        value = m.group(2)
        alias = _alias(value) if _DOTTED_ONLY_RE.fullmatch(value.rstrip()) and rest_blank() else None
        for target in targets:
            builder.bind(target, Binding("variable", alias=alias, line=line), builder.cond)
        return
    m = _ANN_ASSIGN_RE.match(first)
    if m is not None:
        value = m.group(2)
        alias = _alias(value) if _DOTTED_ONLY_RE.fullmatch(value.rstrip()) and rest_blank() else None
        builder.bind(m.group(1), Binding("variable", alias=alias, line=line), builder.cond)
        return
    m = _TUPLE_ASSIGN_RE.match(first)
    if m is not None:
        for target in m.group(1).split(","):
            builder.bind(target.strip(), Binding("variable", line=line), builder.cond)
        return
    # an expression statement, an attribute/subscript assignment, `x += 1`, ...: binds nothing
    # (anything the scanner cannot read goes to a full parse)
    stripped = first.rstrip()
    if _ANNOTATION_RE.match(stripped):
        if _BARE_ANNOTATION_RE.match(stripped):
            return  # a bare annotation `x: int`: binds nothing
        raise _Unsure("annotation")
    if _OTHER_ASSIGN_RE.match(stripped) or _EXPRESSION_RE.match(stripped):
        return
    raise _Unsure("statement")


def _alias(value: str) -> str | None:
    m = _DOTTED_ONLY_RE.fullmatch(value.rstrip())
    if m is None:
        return None
    head = m.group(1).split(".")[0]
    if head in _KEYWORDS or head in ("None", "True", "False"):
        return None
    return m.group(1)


def notebook_source(text: str) -> str:
    """The code cells of a notebook, joined (IPython magics and shell lines blanked)."""
    data = json.loads(text)
    out = []
    for cell in data.get("cells", ()):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        cell_lines = []
        for ln in source.splitlines():
            cell_lines.append("" if ln.lstrip().startswith(("%", "!")) else ln)
        out.append("\n".join(cell_lines))
    return "\n\n".join(out) + "\n"


def summarize_notebook(text: str, path: str = "<notebook>") -> ModuleSummary | None:
    try:
        source = notebook_source(text)
    except (ValueError, AttributeError, TypeError):
        return None
    summary = summarize_source(source, path)
    if summary is not None:
        return summary
    # one cell that does not parse must not hide the others
    builder = _Builder(_normal_lines(source), source)
    for cell in source.split("\n\n"):
        try:
            tree = _parse(cell, path)
        except (SyntaxError, ValueError, RecursionError):
            continue
        builder.statements(tree.body, False)
    return builder.summary(source, fast=False)


# -- resolution ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ModuleRef:
    name: str
    in_project: bool


@dataclass(frozen=True)
class ClassRef:
    module: str
    name: str
    in_project: bool

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class FunctionRef:
    module: str
    name: str
    calls: frozenset[str]
    in_project: bool

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class ValueRef:
    module: str
    name: str
    in_project: bool


@dataclass(frozen=True)
class Unknown:
    """Something exists but cannot be read (a compiled module, a dynamic attribute)."""

    reason: str


Symbol = ModuleRef | ClassRef | FunctionRef | ValueRef | Unknown


@dataclass(frozen=True)
class ClassFacts:
    qualname: str
    kind: str
    backward_hook: str | None = None  # the installed base class whose `backward` a framework calls
    in_project: bool = False

    @property
    def display_kind(self) -> str:
        if self.kind == KIND_MODULE and self.backward_hook:
            return "lightning-module"
        return self.kind


_UNKNOWN_FACTS = ClassFacts("?", KIND_UNKNOWN)


@dataclass
class _Mod:
    name: str
    path: str  # the file (or, for a namespace package, its first directory)
    kind: str  # "source" | "compiled" | "namespace"
    dirs: tuple[str, ...]  # package directories (empty for plain modules)
    in_project: bool
    root: str  # the search directory it was found in


@functools.lru_cache(maxsize=1 << 16)
def _realpath(path: str) -> str:
    return os.path.realpath(path)


def _abs(path: str | Path) -> str:
    """Absolute, with the directories' symlinks resolved (one `realpath` per directory)."""
    directory, name = os.path.split(os.path.abspath(str(path)))
    return os.path.join(_realpath(directory), name) if name else _realpath(directory)


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def package_root(path: str | Path, memo: dict[str, str] | None = None) -> str:
    """The directory above the outermost package containing `path` (walk up while
    `__init__.py` exists)."""
    apath = _abs(path)
    directory = apath if os.path.isdir(apath) else os.path.dirname(apath)
    walked = []
    while True:
        if memo is not None and directory in memo:
            found = memo[directory]
            break
        if not os.path.exists(os.path.join(directory, "__init__.py")):
            found = directory
            break
        parent = os.path.dirname(directory)
        if parent == directory:
            found = directory
            break
        walked.append(directory)
        directory = parent
    if memo is not None:
        for d in walked:
            memo[d] = found
        memo[directory] = found
    return found


def module_name_for(path: str | Path, root: str | Path | None = None) -> tuple[str, bool]:
    """(dotted module name, is_package) of a file, relative to its package root."""
    apath = _abs(path)
    root = _abs(root) if root is not None else package_root(apath)
    rel = os.path.relpath(apath, root)
    stem = os.path.splitext(rel)[0]
    parts = [p for p in stem.split(os.sep) if p and p != "."]
    is_package = bool(parts) and parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def default_search_paths() -> list[str]:
    """The running interpreter's import path: existing directories only."""
    out = []
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            out.append(os.path.abspath(entry))
    return out


@dataclass
class _FileEntry:
    path: str
    module: str  # dotted name ("" for a notebook: not importable)
    is_package: bool
    root: str
    summary: ModuleSummary
    size: int = -1
    mtime: int = -1
    notebook: bool = False


class ProjectIndex:
    """Every file of a project (plus the installed modules questions lead to).

    Thread-unsafe; cheap to pickle (the CLI hands it to its worker processes)."""

    def __init__(self, roots: Iterable[str | Path] = (), search_paths: Iterable[str] | None = None) -> None:
        self.roots: list[str] = []
        for root in roots:
            self.add_root(root)
        self.search_paths: list[str] = (
            default_search_paths() if search_paths is None else [os.path.abspath(p) for p in search_paths]
        )
        self.files: dict[str, _FileEntry] = {}  # project files by absolute path
        self._external: dict[
            str, tuple[int, int, ModuleSummary | None]
        ] = {}  # path -> (size, mtime, summary)
        self._listdirs: dict[str, frozenset[str] | None] = {}
        self._package_roots: dict[str, str] = {}
        self._clear_memos()

    # -- building -----------------------------------------------------------------------
    def add_root(self, root: str | Path) -> str:
        path = _realpath(os.path.abspath(str(root)))
        if path not in self.roots:
            self.roots.append(path)
            self._clear_memos()
        return path

    def add_file(
        self,
        path: str | Path,
        text: str | None = None,
        root: str | Path | None = None,
        keep: dict[str, str] | None = None,
    ) -> bool:
        """Index one file from disk (cached by size and mtime) or from `text`. Returns
        whether its summary changed. `keep`: where to leave the text read from disk."""
        apath = _abs(path)
        notebook = apath.endswith(".ipynb")
        size = mtime = -1
        if text is None:
            try:
                st = os.stat(apath)
            except OSError:
                return self.remove(apath)
            size, mtime = st.st_size, st.st_mtime_ns
            old = self.files.get(apath)
            if old is not None and old.size == size and old.mtime == mtime:
                return False
            from gradguard.engine.files import UnreadableFile, read_source

            try:
                text = read_source(Path(apath))
            except UnreadableFile:
                return self.remove(apath)
            if keep is not None:
                keep[apath] = text
            summary = summarize_notebook(text, apath) if notebook else scan_source(text, apath)
        else:
            summary = summarize_notebook(text, apath) if notebook else summarize_source(text, apath)
        return self._add_summary(apath, summary, size, mtime, root)

    def _add_summary(
        self, apath: str, summary: ModuleSummary | None, size: int, mtime: int, root: str | Path | None = None
    ) -> bool:
        notebook = apath.endswith(".ipynb")
        if summary is None:
            summary = ModuleSummary().finish()  # does not parse: binds nothing (yet)
        proot = package_root(apath, self._package_roots) if root is None else _abs(root)
        if notebook:
            module, is_package = "", False
        else:
            module, is_package = module_name_for(apath, proot)
        if proot not in self.roots:
            self.roots.append(proot)
        old = self.files.get(apath)
        self.files[apath] = _FileEntry(apath, module, is_package, proot, summary, size, mtime, notebook)
        changed = old is None or not old.summary.same_facts(summary) or old.module != module
        if changed:
            same_file = old is not None and old.module == module and old.is_package == is_package
            self._clear_memos(apath if same_file else None)
            directory = os.path.dirname(apath)
            new_package = old is None and os.path.basename(apath) == "__init__.py"
            if new_package and self._package_roots.get(directory) == directory:
                self._package_roots.clear()  # a new package: the roots below it move
        elif old is not None and not old.summary.same_grad_calls(summary):
            # only the grad-mode facts of calls changed (most edits touch some `_name`): forget the
            # answers that rest on them, and tell the caller only when another file's findings may move
            self._forget_grad_answers()
            changed = bool(self.grad_call_dependents(old.summary, summary)) or _project_mode_facts(
                old.summary
            ) != _project_mode_facts(summary)
        return changed

    def update(self, path: str | Path, text: str, tree: ast.Module | None = None) -> bool:
        """An editor buffer's text (and its tree, when the caller parsed it) replaces the
        file's summary; returns whether any fact other files may rest on changed (then
        `dependents(path)` need re-checking). A buffer that does not parse keeps what the
        line scanner can still read of it, or else its previous summary."""
        apath = _abs(path)
        if tree is not None:  # a notebook's tree is that of its code cells joined
            summary = summarize_tree(tree, text)
        elif apath.endswith(".ipynb"):
            summary = summarize_notebook(text, apath)
        else:
            summary = summarize_source(text, apath)
            if summary is None:
                try:
                    summary = _scan(text)
                except (_Unsure, SyntaxError, ValueError, RecursionError):
                    summary = None
        if summary is None:
            return False
        return self._add_summary(apath, summary, -1, -1)

    def refresh(self, path: str | Path) -> bool:
        """Re-read a file after it changed on disk (no-op when size and mtime are the same)."""
        return self.add_file(path)

    def remove(self, path: str | Path) -> bool:
        apath = _abs(path)
        if self.files.pop(apath, None) is not None:
            self._clear_memos()
            return True
        return False

    def index_files(self, paths: Iterable[str | Path], jobs: int = 1, mp_context=None) -> None:
        """Index many files (from disk, unchanged ones skipped); with `jobs` > 1 the
        files are read and summarized in that many processes (the summaries come back
        pickled; the LSP builds its workspace index this way, in the background)."""
        todo = []
        for path in paths:
            apath = _abs(path)
            old = self.files.get(apath)
            if old is not None:
                try:
                    st = os.stat(apath)
                except OSError:
                    self.remove(apath)
                    continue
                if old.size == st.st_size and old.mtime == st.st_mtime_ns:
                    continue
            todo.append(apath)
        if jobs <= 1 or len(todo) < 256:
            for apath in todo:
                self.add_file(apath)
            return
        from concurrent.futures import ProcessPoolExecutor

        chunks = [todo[i : i + 64] for i in range(0, len(todo), 64)]
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp_context) as pool:
            for results in pool.map(_summarize_files, chunks):
                for apath, size, mtime, summary in results:
                    if size < 0:
                        self.remove(apath)
                    else:
                        self._add_summary(apath, summary, size, mtime)

    def _clear_memos(self, updated: str | None = None) -> None:
        """Forget every answer. `updated`: the only change is that file's summary (the same
        file under the same module name, as when an editor buffer changes): where modules
        are found and the other files' import edges stay as they were, so the next graph
        does not look them all up again (on a 5,000-file workspace: ~0.3 s per edit)."""
        mods = getattr(self, "_mods", None)
        graph = getattr(self, "_graph", None)
        edges = graph.edges if graph is not None else getattr(self, "_edges", None)
        self._edges: dict[str, list[str]] | None = None
        if updated is not None and mods is not None:
            self._mods = mods
            if edges is not None:
                self._edges = {path: targets for path, targets in edges.items() if path != updated}
        else:
            self._mods: dict[tuple[str, str], _Mod | None] = {}
        self._lookups: dict[tuple[str, str, str], Symbol | None] = {}
        self._resolved: dict[tuple[str, str], Symbol | None] = {}
        self._class_facts: dict[tuple[str, str], ClassFacts] = {}
        self._imported: dict[tuple[str, str], tuple | None] = {}
        self._facts: dict[str, ClassFacts] = {}
        self._holdings: dict[str, str] = {}
        self._tensor_stores: dict[str, tuple[str, ...] | None] = {}
        self._exports: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
        self._graph: _Graph | None = None
        self._resolvers: dict[str, FileResolver] = {}
        self._grad_off: frozenset[str] | None = None
        self._inference_only: bool | None = None

    # -- files and modules ---------------------------------------------------------------

    def _forget_grad_answers(self) -> None:
        """Forget what rests on the files' grad-call facts (`grad_callers`), and nothing else."""
        self._grad_off = None
        self._inference_only = None
        self._resolvers = {}

    def file(self, path: str | Path) -> _FileEntry | None:
        return self.files.get(_abs(path))

    @staticmethod
    def real_path(path: str | Path) -> str:
        """The key the index files a path under (absolute, symlinks resolved)."""
        return _abs(path)

    def module_name(self, path: str | Path) -> str | None:
        entry = self.file(path)
        return entry.module if entry is not None else None

    def _dir_entries(self, directory: str) -> frozenset[str] | None:
        entries = self._listdirs.get(directory, False)
        if entries is False:
            try:
                entries = frozenset(os.listdir(directory))
            except OSError:
                entries = None
            self._listdirs[directory] = entries
        return entries  # type: ignore[return-value]

    def _find_in(self, name: str, directories: Iterable[str]) -> _Mod | None:
        namespace: list[str] = []
        for directory in directories:
            entries = self._dir_entries(directory)
            if not entries:
                continue
            in_project = any(_is_under(directory, r) for r in self.roots)
            if name in entries:
                pkg = os.path.join(directory, name)
                pkg_entries = self._dir_entries(pkg)
                if pkg_entries is not None:
                    for init in ("__init__.py", "__init__.pyi"):
                        if init in pkg_entries:
                            return _Mod(
                                name, os.path.join(pkg, init), "source", (pkg,), in_project, directory
                            )
                    if any(e.startswith("__init__.") for e in pkg_entries):
                        return _Mod(name, pkg, "compiled", (pkg,), in_project, directory)
                    namespace.append(pkg)
            for suffix in (".py", ".pyi"):
                if name + suffix in entries:
                    return _Mod(
                        name, os.path.join(directory, name + suffix), "source", (), in_project, directory
                    )
            prefix = name + "."
            for entry in entries:
                if entry.startswith(prefix) and entry.endswith((".so", ".pyd")):
                    return _Mod(name, os.path.join(directory, entry), "compiled", (), in_project, directory)
        if namespace:
            in_project = any(_is_under(namespace[0], r) for r in self.roots)
            return _Mod(name, namespace[0], "namespace", tuple(namespace), in_project, namespace[0])
        return None

    def find_module(self, name: str, hint: str = "") -> _Mod | None:
        """Locate a module by dotted name: in `hint` (the importing file's root) first, then
        the project roots, then the search paths."""
        key = (name, hint)
        if key in self._mods:
            return self._mods[key]
        parts = name.split(".")
        if len(parts) == 1:
            dirs = ([hint] if hint else []) + self.roots + self.search_paths
            seen: set[str] = set()
            ordered = [d for d in dirs if not (d in seen or seen.add(d))]  # type: ignore[func-returns-value]
            mod = self._find_in(name, ordered)
        else:
            parent = self.find_module(".".join(parts[:-1]), hint)
            if parent is None or not parent.dirs:
                mod = None
            else:
                found = self._find_in(parts[-1], parent.dirs)
                mod = None
                if found is not None:
                    found.name = name
                    mod = found
        self._mods[key] = mod
        return mod

    def _summary_of(self, mod: _Mod) -> ModuleSummary | None:
        if mod.kind != "source":
            return None
        entry = self.files.get(mod.path)
        if entry is not None:
            return entry.summary
        cached = self._external.get(mod.path)
        if cached is not None:
            return cached[2]
        try:
            st = os.stat(mod.path)
            with open(mod.path, "rb") as handle:
                text = handle.read().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError):
            self._external[mod.path] = (-1, -1, None)
            return None
        summary = scan_source(text, mod.path)
        self._external[mod.path] = (st.st_size, st.st_mtime_ns, summary)
        return summary

    # -- name resolution -------------------------------------------------------------------
    @staticmethod
    def absolute(module: str | None, level: int, current: str, is_package: bool) -> str | None:
        """`from ..x import y` in module `current` -> the absolute module of `..x`."""
        if not level:
            return module
        parts = current.split(".") if current else []
        if not is_package:
            parts = parts[:-1]
        drop = level - 1
        if drop > len(parts):
            return None
        base = parts[: len(parts) - drop] if drop else parts
        if module:
            base = base + module.split(".")
        return ".".join(base) if base else None

    def resolve(self, qualname: str, hint: str = "") -> Symbol | None:
        """What a dotted name refers to: a module, a class, a function, a value;
        `Unknown` when it exists but cannot be read; None when it does not exist."""
        key = (qualname, hint)
        if key in self._resolved:
            return self._resolved[key]
        result = self._resolved[key] = self._resolve(qualname, hint)
        return result

    def _resolve(self, qualname: str, hint: str) -> Symbol | None:
        parts = qualname.split(".")
        mod = self.find_module(parts[0], hint)
        if mod is None:
            return None
        symbol: Symbol | None = ModuleRef(parts[0], mod.in_project)
        current = parts[0]
        for part in parts[1:]:
            if isinstance(symbol, ModuleRef):
                symbol = self.lookup(symbol.name, part, hint)
                current = f"{current}.{part}"
            elif isinstance(symbol, Unknown):
                return symbol
            elif symbol is None:
                return None
            else:
                return Unknown(f"attribute {part!r} of {current}")
        return symbol

    def lookup(self, module: str, name: str, hint: str = "") -> Symbol | None:
        key = (module, name, hint)
        if key in self._lookups:
            return self._lookups[key]
        self._lookups[key] = None  # an import cycle ends here
        try:
            result = self._lookup(module, name, hint)
        except RecursionError:  # an absurdly long chain of re-exports
            result = Unknown("too deep")
        self._lookups[key] = result
        return result

    def _lookup(self, module: str, name: str, hint: str) -> Symbol | None:
        mod = self.find_module(module, hint)
        if mod is None:
            return None
        if mod.kind == "compiled":
            return Unknown(f"{module} is compiled")
        summary = self._summary_of(mod) if mod.kind == "source" else None
        hint = mod.root if mod.in_project else hint
        if summary is not None:
            binding = summary.names.get(name)
            if binding is not None:
                found = self._binding_symbol(mod, module, name, binding, hint)
                if found is not None:
                    return found
        if mod.dirs:
            # a submodule (importing it binds it on the package, whatever the stars say)
            sub = self.find_module(f"{module}.{name}", hint)
            if sub is not None:
                if sub.kind == "compiled":
                    return Unknown(f"{module}.{name} is compiled")
                return ModuleRef(f"{module}.{name}", sub.in_project)
        if summary is not None:
            # star imports, last first, each followed only as far as this one name needs
            for star_module, level in reversed(summary.stars):
                target = self.absolute(star_module, level, module, bool(mod.dirs))
                if target is None or target == module:
                    continue
                found = self._star_lookup(target, name, hint)
                if found is not None:
                    return found
        if summary is None:
            return Unknown(f"{module} has no source")
        if "__getattr__" in summary.names:
            return Unknown(f"{module} defines __getattr__")
        return None

    def _star_lookup(self, module: str, name: str, hint: str) -> Symbol | None:
        """`name` as `from module import *` binds it (None when it does not)."""
        mod = self.find_module(module, hint)
        if mod is None:
            return None
        summary = self._summary_of(mod)
        if summary is not None and summary.all is not None:
            return self.lookup(module, name, hint) if name in summary.all else None
        if name.startswith("_"):
            return None
        if summary is not None and name not in summary.names and not summary.stars:
            return None  # a star import binds only what the module bound itself
        return self.lookup(module, name, hint)

    def _binding_symbol(
        self, mod: _Mod, module: str, name: str, binding: Binding, hint: str
    ) -> Symbol | None:
        if binding.kind == "class":
            return ClassRef(module, name, mod.in_project)
        if binding.kind == "function":
            return FunctionRef(module, name, binding.calls, mod.in_project)
        if binding.kind == "variable":
            if binding.alias:
                return self.resolve_in(module, binding.alias, hint, exclude=name) or ValueRef(
                    module, name, mod.in_project
                )
            return ValueRef(module, name, mod.in_project)
        # an import
        if binding.name is None:
            target = binding.module or ""
            sub = self.find_module(target, hint)
            if sub is None:
                return None
            return (
                Unknown(f"{target} is compiled")
                if sub.kind == "compiled"
                else ModuleRef(target, sub.in_project)
            )
        source = self.absolute(binding.module, binding.level, module, bool(mod.dirs))
        if source is None:
            return None
        if source == module:
            sub = self.find_module(f"{module}.{binding.name}", hint)  # `from . import sub` in __init__
            return ModuleRef(sub.name, sub.in_project) if sub is not None else None
        return self.lookup(source, binding.name, hint)

    def resolve_in(
        self, module: str, dotted: str, hint: str = "", exclude: str | None = None
    ) -> Symbol | None:
        """A dotted expression as written in `module` (`nn.Module`, `Base`)."""
        parts = dotted.split(".")
        if parts[0] == exclude:
            return None
        symbol = self.lookup(module, parts[0], hint)
        for part in parts[1:]:
            if isinstance(symbol, ModuleRef):
                symbol = self.lookup(symbol.name, part, hint)
            elif symbol is None or isinstance(symbol, Unknown):
                return symbol
            else:
                return Unknown(f"attribute {part!r}")
        return symbol

    def written_target(self, module: str, dotted: str, hint: str = "") -> str | None:
        """`nn.Module` written in `module` -> "torch.nn.Module" (through its imports only,
        without reading the imported modules): the name the engine's tables know."""
        mod = self.find_module(module, hint)
        if mod is None:
            return None
        summary = self._summary_of(mod)
        if summary is None:
            return None
        head, _, rest = dotted.partition(".")
        binding = summary.names.get(head)
        if binding is None or binding.kind != "import":
            return None
        if binding.name is None:
            base = binding.module or ""
        else:
            source = self.absolute(binding.module, binding.level, module, bool(mod.dirs))
            if source is None:
                return None
            base = f"{source}.{binding.name}"
        return f"{base}.{rest}" if rest else base

    def star_exports(self, module: str, hint: str = "") -> tuple[tuple[str, str], ...]:
        """The names `from module import *` binds, each with the qualified name it refers
        to as written (an import's target, or `module.name` for what the module defines)."""
        key = (module, hint)
        cached = self._exports.get(key)
        if cached is not None:
            return cached
        self._exports[key] = ()  # cycle guard
        mod = self.find_module(module, hint)
        result: dict[str, str] = {}
        summary = self._summary_of(mod) if mod is not None else None
        if mod is not None and summary is not None:
            inner_hint = mod.root if mod.in_project else hint
            star_names: dict[str, str] = {}
            for star_module, level in summary.stars:
                target = self.absolute(star_module, level, module, bool(mod.dirs))
                if target and target != module:
                    star_names.update(self.star_exports(target, inner_hint))
            visible: dict[str, str] = dict(star_names)
            for name, binding in summary.names.items():
                visible[name] = self._written(mod, module, name, binding)
            if summary.all is not None:
                for name in summary.all:
                    result[name] = visible.get(name, f"{module}.{name}")
            else:
                result = {n: q for n, q in visible.items() if not n.startswith("_")}
        out = tuple(sorted(result.items()))
        self._exports[key] = out
        return out

    def _written(self, mod: _Mod, module: str, name: str, binding: Binding) -> str:
        if binding.kind == "import":
            if binding.name is None:
                return binding.module or name
            source = self.absolute(binding.module, binding.level, module, bool(mod.dirs))
            if source:
                return f"{source}.{binding.name}"
        return f"{module}.{name}"

    # -- class facts -------------------------------------------------------------------------
    def class_facts(self, qualname: str, hint: str = "") -> ClassFacts:
        """The kind of the class a dotted name refers to (KIND_UNKNOWN when it is not a
        class that can be read)."""
        root = ROOTS.get(qualname)
        if root is not None:
            return ClassFacts(qualname, root)
        symbol = self.resolve(qualname, hint)
        if isinstance(symbol, ClassRef):
            return self.facts_of(symbol, hint)
        if isinstance(symbol, ValueRef | FunctionRef | ModuleRef):
            return ClassFacts(qualname, KIND_OTHER)
        return ClassFacts(qualname, KIND_UNKNOWN)

    def facts_of(self, ref: ClassRef, hint: str = "") -> ClassFacts:
        qual = ref.qualname
        root = ROOTS.get(qual)
        if root is not None:
            return ClassFacts(qual, root)
        cached = self._facts.get(qual)
        if cached is not None:
            return cached
        self._facts[qual] = ClassFacts(qual, KIND_UNKNOWN, None, ref.in_project)  # cycle guard
        mod = self.find_module(ref.module, hint)
        summary = self._summary_of(mod) if mod is not None else None
        binding = summary.names.get(ref.name) if summary is not None else None
        if mod is None or binding is None or binding.kind != "class":
            facts = ClassFacts(qual, KIND_UNKNOWN, None, ref.in_project)
        else:
            try:
                facts = self._combine(mod, ref, binding, mod.root if mod.in_project else hint)
            except RecursionError:  # an absurdly deep chain of bases: give up on it
                facts = ClassFacts(qual, KIND_UNKNOWN, None, ref.in_project)
        self._facts[qual] = facts
        return facts

    def _combine(self, mod: _Mod, ref: ClassRef, binding: Binding, hint: str) -> ClassFacts:
        best, unknown, hook = 0, False, None
        kind = KIND_OTHER
        for base in binding.bases:
            facts = self._base_facts(ref.module, base, hint, exclude=ref.name)
            rank = _KIND_RANK.get(facts.kind, 0)
            if rank > best:
                best, kind = rank, facts.kind
            if facts.kind == KIND_UNKNOWN:
                unknown = True
            if hook is None and facts.backward_hook:
                hook = facts.backward_hook
        if not best:
            kind = KIND_UNKNOWN if unknown else KIND_OTHER
        if (
            kind == KIND_MODULE
            and hook is None
            and binding.defines_backward
            and not mod.in_project
            and not ref.module.startswith("torch.")
        ):
            hook = ref.qualname  # an installed framework's module class with its own `backward`
        if kind != KIND_MODULE:
            hook = None
        return ClassFacts(ref.qualname, kind, hook, ref.in_project)

    def _base_facts(self, module: str, base: str, hint: str, exclude: str | None = None) -> ClassFacts:
        if base == "?":
            return _UNKNOWN_FACTS
        written = self.written_target(module, base, hint)
        if written is not None:
            quick = torch_facts(written)
            if quick is not None:
                return quick
        symbol = self.resolve_in(module, base, hint, exclude=exclude)
        if isinstance(symbol, ClassRef):
            return self.facts_of(symbol, hint)
        if isinstance(symbol, ValueRef):
            return ClassFacts(base, KIND_UNKNOWN)  # `Base = make_base()`: dynamic
        if isinstance(symbol, (FunctionRef, ModuleRef)):
            return ClassFacts(base, KIND_OTHER)
        if written is not None:
            fallback = torch_facts(written, heuristic=True)
            if fallback is not None:
                return fallback
        return ClassFacts(base, KIND_UNKNOWN)

    # -- what a module class holds -------------------------------------------------------------
    def holdings_of(self, ref: ClassRef, hint: str = "") -> str:
        """What registering an instance of the class carries (`holdings`: NONE, MODE, STATE or
        UNKNOWN), from its text and its bases, resolved through its file's imports."""
        qual = ref.qualname
        known = holdings.qualified_verdict(qual) if qual.startswith("torch.") else None
        if known is not None:
            return known
        cached = self._holdings.get(qual)
        if cached is not None:
            return cached
        self._holdings[qual] = holdings.UNKNOWN  # cycle guard
        mod = self.find_module(ref.module, hint)
        summary = self._summary_of(mod) if mod is not None else None
        binding = summary.names.get(ref.name) if summary is not None else None
        verdict = holdings.UNKNOWN
        if self.facts_of(ref, hint).kind == KIND_UNKNOWN:
            verdict = holdings.UNKNOWN
        elif mod is not None and binding is not None and binding.kind == "class":
            where = mod.root if mod.in_project else hint
            try:
                bases = [
                    self._written_holdings(ref.module, b, where, ref.name, base=True) for b in binding.bases
                ]
                verdict = holdings.judge(
                    binding.holds, bases, lambda w: self._written_holdings(ref.module, w, where, ref.name)
                )
            except RecursionError:
                verdict = holdings.UNKNOWN
        self._holdings[qual] = verdict
        return verdict

    def _written_holdings(
        self, module: str, written: str, hint: str, exclude: str, base: bool = False
    ) -> str:
        """A name as written in `module`, called and stored on `self` (or a base class):
        `holdings.written_verdict` with this index's resolution of the module's names."""

        def lookup(name: str) -> holdings.Written | None:
            target = self.written_target(module, name, hint)
            symbol = self.resolve_in(module, name, hint, exclude=exclude)
            if isinstance(symbol, ClassRef):
                return self.written_class(symbol, target, hint)
            if symbol is None and target is None:
                return None
            return holdings.Written(target)

        return holdings.written_verdict(written, base, lookup)

    def written_class(self, ref: ClassRef, target: str | None, hint: str = "") -> holdings.Written:
        """A class as a name written in a file refers to it, for `holdings.written_verdict`."""
        kind = self.facts_of(ref, hint).kind
        mod = self.find_module(ref.module, hint)
        summary = self._summary_of(mod) if mod is not None else None
        binding = summary.names.get(ref.name) if summary is not None else None
        plain = binding is not None and binding.kind == "class" and all(b == "object" for b in binding.bases)
        module = kind == KIND_MODULE or (kind == KIND_UNKNOWN and not plain)  # `(object)` reads as unknown
        return holdings.Written(target, True, module, plain, lambda: self.holdings_of(ref, hint))

    def tensor_stores_of(self, ref: ClassRef, hint: str = "") -> tuple[str, ...] | None:
        """What the class and every base store under the parameter names
        (`holdings.class_tensor_stores`); None when a base is not read (an unknown class, a
        torch layer whose source is not on the search path)."""
        qual = ref.qualname
        if qual in self._tensor_stores:
            return self._tensor_stores[qual]
        self._tensor_stores[qual] = None  # cycle guard
        mod = self.find_module(ref.module, hint)
        summary = self._summary_of(mod) if mod is not None else None
        binding = summary.names.get(ref.name) if summary is not None else None
        stores: tuple[str, ...] | None = None
        if mod is not None and binding is not None and binding.kind == "class":
            where = mod.root if mod.in_project else hint
            stores = binding.tensor_stores
            for base in binding.bases:
                found = self._base_tensor_stores(ref, base, where)
                if found is None:
                    stores = None
                    break
                stores += found
        self._tensor_stores[qual] = stores
        return stores

    def _base_tensor_stores(self, ref: ClassRef, base: str, hint: str) -> tuple[str, ...] | None:
        if base == "object" or self.written_target(ref.module, base, hint) in ROOTS:
            return ()  # `nn.Module` registers nothing of its own
        symbol = self.resolve_in(ref.module, base, hint, exclude=ref.name)
        return self.tensor_stores_of(symbol, hint) if isinstance(symbol, ClassRef) else None

    # -- the import graph ---------------------------------------------------------------------
    def imports_of(self, path: str) -> list[str]:
        """Paths of the project files a file imports (directly)."""
        entry = self.files.get(path)
        if entry is None:
            return []
        out: list[str] = []
        seen: set[str] = set()

        def add(module: str | None) -> None:
            if not module:
                return
            mod = self.find_module(module, entry.root)
            if mod is None or mod.kind != "source" or mod.path not in self.files or mod.path == path:
                return
            if mod.path not in seen:
                seen.add(mod.path)
                out.append(mod.path)

        for module, level, names in entry.summary.imports:
            target = self.absolute(module, level, entry.module, entry.is_package)
            if target is None:
                continue
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                add(".".join(parts[:k]))
            for name in names:
                if self.find_module(f"{target}.{name}", entry.root) is not None:
                    add(f"{target}.{name}")
        for module, level in entry.summary.stars:
            target = self.absolute(module, level, entry.module, entry.is_package)
            if target:
                parts = target.split(".")
                for k in range(1, len(parts) + 1):
                    add(".".join(parts[:k]))
        return out

    def graph(self) -> _Graph:
        if self._graph is None:
            self._graph = _Graph(self, self._edges)
            self._edges = None
        return self._graph

    def dependents(self, path: str | Path, transitive: bool = True) -> set[str]:
        """The project files that import `path` (directly, or through other files)."""
        return self.graph().dependents(_abs(path), transitive)

    def dependencies(self, path: str | Path) -> set[str]:
        """The project files `path` imports, directly or through other files."""
        return self.graph().dependencies(_abs(path))

    def grad_off_helpers(self) -> frozenset[str]:
        """The keys (`grad_callers.call_key`: private helpers, public names with `_` inside) of the
        functions the project calls, and calls only where gradients are off: some file calls them
        in a `torch.no_grad()` block or a `@torch.no_grad()` function, and no file mentions them
        any other way (grad_callers)."""
        if self._grad_off is None:
            off: set[str] = set()
            for entry in self.files.values():
                off |= entry.summary.grad_off_calls
            if off:
                for entry in self.files.values():
                    off -= entry.summary.private_uses
                    if not off:
                        break
            self._grad_off = frozenset(off)
        return self._grad_off

    def inference_only(self) -> bool:
        """The project never trains: no file's text computes a gradient (a backward call, an
        optimizer, `autograd.grad`, a tensor made to require grad, ...) or builds a trainable torch
        layer (`nn.Linear`, a convolution, ...: `grad_callers.may_train`), and one of its modules
        runs its `forward` with gradients off (hummingbird's executor wraps the operator modules it
        builds from other models' numbers in `torch.no_grad()`): an inference engine."""
        if self._inference_only is None:
            self._inference_only = _inference_only([entry.summary for entry in self.files.values()])
        return self._inference_only

    def inference_only_with(self, path: str, summary: ModuleSummary | None) -> bool:
        """`inference_only()` had `path`'s summary been `summary` (None: no such file): whether an
        edit flipped the project-level answer, without re-checking every file on every edit."""
        apath = self.real_path(path)
        summaries = [entry.summary for p, entry in self.files.items() if p != apath]
        if summary is not None:
            summaries.append(summary)
        return _inference_only(summaries)

    def grad_call_dependents(self, old: ModuleSummary | None, new: ModuleSummary | None) -> set[str]:
        """The files defining a function whose calls changed between two summaries of a
        file (its `grad_off_helpers` may have changed with them)."""
        empty = ModuleSummary()
        old, new = old or empty, new or empty
        names = (old.grad_off_calls ^ new.grad_off_calls) | (old.private_uses ^ new.private_uses)
        if not names:
            return set()
        return {path for path, entry in self.files.items() if entry.summary.private_defs & names}

    # -- the per-file view ----------------------------------------------------------------------
    def for_file(self, path: str | Path) -> FileResolver:
        apath = os.path.abspath(str(path))
        if apath not in self.files:
            apath = _abs(apath)  # through symlinks (a few system calls)
        resolver = self._resolvers.get(apath)
        if resolver is None:
            resolver = self._resolvers[apath] = FileResolver(self, apath)
        return resolver

    def warm(self) -> int:
        """Resolve the kind of every class of every project file, what every import of
        the project refers to, and the import graph (so that worker processes forked
        afterwards start with the answers). Returns the number of classes."""
        count = 0
        for entry in list(self.files.values()):
            resolver = self.for_file(entry.path)
            for name, binding in entry.summary.names.items():
                if binding.kind == "class" and entry.module:
                    self.facts_of(ClassRef(entry.module, name, True), entry.root)
                    count += 1
                elif binding.kind == "import" and binding.name is not None:
                    source = resolver.absolute(binding.module, binding.level)
                    if source:
                        resolver.imported(f"{source}.{binding.name}")
            for module, level in entry.summary.stars:
                source = resolver.absolute(module, level)
                if source:
                    resolver.star_exports(source)
        self.graph()
        for path in list(self.files):
            self.for_file(path).signature  # noqa: B018 - computes and caches
        return count


class _Graph:
    """Import edges between project files; strongly connected components for the
    closure digests (what a file's findings may rest on) and the facts that flow the
    other way (explicit `x.backward(grad)` calls in files that import a module)."""

    def __init__(self, index: ProjectIndex, known: dict[str, list[str]] | None = None) -> None:
        self.index = index
        paths = sorted(index.files)
        known = known or {}
        self.edges: dict[str, list[str]] = {p: known[p] if p in known else index.imports_of(p) for p in paths}
        self.reverse: dict[str, list[str]] = {p: [] for p in paths}
        for src, targets in self.edges.items():
            for dst in targets:
                self.reverse[dst].append(src)
        self.component: dict[str, int] = {}
        self.components: list[list[str]] = []
        self._tarjan(paths)
        # forward digests (sinks first, as Tarjan emits them)
        comp_digest: list[int] = []
        comp_dtype: list[bool] = []
        for members in self.components:
            cid = len(comp_digest)
            succ = sorted(
                {self.component[d] for m in members for d in self.edges[m] if self.component[d] != cid}
            )
            digest = hash(
                (
                    tuple(sorted((m, index.files[m].summary.digest) for m in members)),
                    tuple(comp_digest[s] for s in succ),
                )
            )
            comp_digest.append(digest)
            comp_dtype.append(
                any(index.files[m].summary.sets_default_dtype for m in members)
                or any(comp_dtype[s] for s in succ)
            )
        # reverse facts (sources first)
        comp_calls: list[frozenset[str]] = [frozenset()] * len(self.components)
        comp_rdtype: list[bool] = [False] * len(self.components)
        for cid in range(len(self.components) - 1, -1, -1):
            members = self.components[cid]
            preds = {self.component[s] for m in members for s in self.reverse[m] if self.component[s] != cid}
            calls = set()
            for m in members:
                calls |= index.files[m].summary.backward_calls
            dtype = comp_dtype[cid]
            for p in preds:
                calls |= comp_calls[p]
                dtype = dtype or comp_rdtype[p]
            comp_calls[cid] = frozenset(calls)
            comp_rdtype[cid] = dtype
        self.comp_digest = comp_digest
        self.comp_calls = comp_calls
        self.comp_dtype = comp_rdtype

    def _tarjan(self, paths: list[str]) -> None:
        index_of: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        counter = 0
        for start in paths:
            if start in index_of:
                continue
            work = [(start, 0)]
            while work:
                node, i = work.pop()
                if i == 0:
                    index_of[node] = low[node] = counter
                    counter += 1
                    stack.append(node)
                    on_stack.add(node)
                targets = self.edges[node]
                recurse = False
                while i < len(targets):
                    nxt = targets[i]
                    i += 1
                    if nxt not in index_of:
                        work.append((node, i))
                        work.append((nxt, 0))
                        recurse = True
                        break
                    if nxt in on_stack:
                        low[node] = min(low[node], index_of[nxt])
                if recurse:
                    continue
                if low[node] == index_of[node]:
                    members = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        self.component[w] = len(self.components)
                        members.append(w)
                        if w == node:
                            break
                    self.components.append(members)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])

    def dependents(self, path: str, transitive: bool) -> set[str]:
        out: set[str] = set()
        todo = list(self.reverse.get(path, ()))
        while todo:
            p = todo.pop()
            if p in out or p == path:
                continue
            out.add(p)
            if transitive:
                todo.extend(self.reverse.get(p, ()))
        return out

    def dependencies(self, path: str) -> set[str]:
        out: set[str] = set()
        todo = list(self.edges.get(path, ()))
        while todo:
            p = todo.pop()
            if p in out or p == path:
                continue
            out.add(p)
            todo.extend(self.edges.get(p, ()))
        return out


class FileResolver:
    """What one file's `ModuleContext` may ask the project (all answers are covered by
    `signature`)."""

    def __init__(self, index: ProjectIndex, path: str) -> None:
        self.index = index
        self.path = path
        entry = index.files.get(path)
        if entry is not None:
            self.module, self.is_package, self.root = entry.module, entry.is_package, entry.root
        else:
            proot = package_root(path, index._package_roots)
            self.module, self.is_package = module_name_for(path, proot)
            self.root = proot
        self._signature: tuple | None = None

    def absolute(self, module: str | None, level: int) -> str | None:
        return self.index.absolute(module, level, self.module, self.is_package)

    def resolve(self, qualname: str) -> Symbol | None:
        return self.index.resolve(qualname, self.root)

    def in_project(self, qualname: str) -> bool:
        """Does the dotted name start at a module of the project (cheap: no file read)?"""
        mod = self.index.find_module(qualname.split(".")[0], self.root)
        return mod is not None and mod.in_project

    def project_symbol(self, qualname: str) -> Symbol | None:
        """The symbol, when the name is the project's own (else None, without reading
        any installed package)."""
        if not self.in_project(qualname):
            return None
        return self.resolve(qualname)

    def class_facts(self, qualname: str) -> ClassFacts:
        key = (qualname, self.root)
        memo = self.index._class_facts
        found = memo.get(key)
        if found is None:
            found = memo[key] = self.index.class_facts(qualname, self.root)
        return found

    def imported(self, target: str) -> tuple | None:
        """What a name imported from another file of the project is, for the engine:
        ("class", kind, backward_hook) or ("function", loop-vocabulary calls); None for
        anything else (a module, a value, an installed package's name: not read)."""
        key = (target, self.root)
        memo = self.index._imported
        if key in memo:
            return memo[key]
        result: tuple | None = None
        if self.in_project(target):
            symbol = self.resolve(target)
            if isinstance(symbol, ClassRef):
                facts = self.facts_of(symbol)
                result = ("class", facts.kind, facts.backward_hook)
            elif isinstance(symbol, FunctionRef):
                result = ("function", symbol.calls)
        memo[key] = result
        return result

    def facts_of(self, ref: ClassRef) -> ClassFacts:
        return self.index.facts_of(ref, self.root)

    def holdings(self, qualname: str) -> str:
        """What an instance of the class carries when registered (`holdings`), for a class of
        the project or an installed package read as source; UNKNOWN otherwise."""
        quick = holdings.qualified_verdict(qualname)
        if quick is not None:
            return quick
        symbol = self.resolve(qualname)
        if isinstance(symbol, ClassRef):
            return self.index.holdings_of(symbol, self.root)
        return holdings.UNKNOWN

    def stored_tensor(self, qualname: str, attr: str) -> str | None:
        """What a module class of the project (its bases may be an installed package's, read as
        source) holds under a parameter name: "buffer", "tensor" (one that does not require grad), or None
        (a parameter, or not known)."""
        symbol = self.project_symbol(qualname)
        if not isinstance(symbol, ClassRef):
            return None
        stores = self.index.tensor_stores_of(symbol, self.root)
        if stores is None or "?:*" in stores:
            return None
        return holdings.stored_tensor_kind(
            mark for mark, _, name in (s.partition(":") for s in stores) if name == attr
        )

    def written(self, qualname: str) -> Written:
        """A qualified name a file imports, for `holdings.written_verdict`: a class of the project
        or of an installed package read as source, or a name only the torch tables may know."""
        if holdings.qualified_verdict(qualname) is not None:
            return holdings.Written(qualname)
        symbol = self.resolve(qualname)
        if isinstance(symbol, ClassRef):
            return self.index.written_class(symbol, qualname, self.root)
        return holdings.Written(qualname)

    def star_exports(self, module: str) -> tuple[tuple[str, str], ...]:
        return self.index.star_exports(module, self.root)

    def _graph_facts(self) -> tuple[int, frozenset[str], bool]:
        graph = self.index.graph()
        cid = graph.component.get(self.path)
        if cid is None:
            return 0, frozenset(), False
        return graph.comp_digest[cid], graph.comp_calls[cid], graph.comp_dtype[cid]

    @property
    def explicit_backward_calls(self) -> frozenset[str]:
        """`*backward*` methods called with arguments in this file or any file importing it."""
        return self._graph_facts()[1]

    @property
    def changes_default_dtype(self) -> bool:
        """This file, a file it imports, or a file importing it sets torch's default dtype."""
        return self._graph_facts()[2]

    @property
    def inference_only(self) -> bool:
        return self.index.inference_only()

    @property
    def grad_off_helpers(self) -> frozenset[str]:
        """The keys of this file's functions that the project calls only with gradients off."""
        entry = self.index.files.get(self.path)
        if entry is None or not entry.summary.private_defs:
            return frozenset()
        return entry.summary.private_defs & self.index.grad_off_helpers()

    @property
    def signature(self) -> tuple:
        if self._signature is None:
            digest, calls, dtype = self._graph_facts()
            self._signature = (
                self.module,
                digest,
                calls,
                dtype,
                self.grad_off_helpers,
                self.index.inference_only(),
            )
        return self._signature


def torch_facts(qualname: str, heuristic: bool = False) -> ClassFacts | None:
    """Kinds of torch names known without reading torch: the roots, and (as a fallback
    when torch's source is not on the search path) its naming conventions."""
    root = ROOTS.get(qualname)
    if root is not None:
        return ClassFacts(qualname, root)
    if not qualname.startswith("torch."):
        return None
    parts = qualname.split(".")
    last = parts[-1]
    if len(parts) == 3 and parts[1] == "nn" and last[:1].isupper():
        if last in ("Parameter", "UninitializedParameter", "Buffer", "UninitializedBuffer"):
            return ClassFacts(qualname, KIND_OTHER)
        return ClassFacts(qualname, KIND_MODULE)
    if not heuristic:
        return None
    bare = last.lstrip("_")
    if parts[1:3] == ["nn", "modules"] and bare[:1].isupper():
        return ClassFacts(qualname, KIND_MODULE)
    if parts[1:3] == ["optim", "lr_scheduler"] and bare[:1].isupper():
        return ClassFacts(qualname, KIND_SCHEDULER)
    if parts[1] == "optim" and len(parts) == 3 and bare[:1].isupper():
        return ClassFacts(qualname, KIND_OPTIMIZER)
    return None


def _summarize_files(paths: list[str]) -> list[tuple[str, int, int, ModuleSummary | None]]:
    """Read and summarize files (in a worker process of `ProjectIndex.index_files`)."""
    from gradguard.engine.files import UnreadableFile, read_source

    out: list[tuple[str, int, int, ModuleSummary | None]] = []
    for path in paths:
        try:
            st = os.stat(path)
            text = read_source(Path(path))
        except (OSError, UnreadableFile):
            out.append((path, -1, -1, None))
            continue
        summary = summarize_notebook(text, path) if path.endswith(".ipynb") else scan_source(text, path)
        out.append((path, st.st_size, st.st_mtime_ns, summary))
    return out


def build_project(
    paths: Iterable[str | Path],
    exclude: tuple[str, ...] = (),
    search_paths: Iterable[str] | None = None,
    keep: dict[str, str] | None = None,
    jobs: int = 1,
) -> ProjectIndex:
    """The CLI's index: the package roots above the given paths, every Python file under
    them (`exclude` and `.gitignore` honoured). `keep` receives the texts read, by
    real path (so that checking does not read them again)."""
    from gradguard.engine.files import collect_files

    roots: list[str] = []
    memo: dict[str, str] = {}
    for raw in paths:
        if not os.path.exists(raw):
            continue
        root = package_root(raw, memo)
        if root not in roots:
            roots.append(root)
    index = ProjectIndex(roots, search_paths)
    index._package_roots = memo
    fileset = collect_files(roots, exclude)
    files = [file for file in fileset.files if file.suffix == ".py"]
    if jobs > 1 and keep is None:
        index.index_files(files, jobs=jobs)
    else:
        for file in files:
            index.add_file(file, keep=keep)
    return index
