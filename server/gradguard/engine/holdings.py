"""What an `nn.Module` class holds that registration carries: parameters, buffers, submodules
(and through them theirs), and behaviour that depends on the training mode.

Two steps, so that a class of another file is judged exactly as one of the same file:

1. `class_holds(text)`: from the text of a class statement alone, the things stored on `self`
   that `nn.Module.__setattr__` could register, as written: `"c:nn.AvgPool1d"` (a call whose
   result is stored), plus markers: `"P"` (a parameter or a buffer is made or registered),
   `"T"` (the class reads `.training` or overrides `train`/`eval`), `"?"` (something stored
   whose kind the text does not tell: an argument, an attribute of another object, a call
   followed by more code, `setattr`, `add_module`). Containers, literals, numbers and strings
   stored on `self` are not registered and leave nothing. Cheap (regular expressions on the
   text, no parse): the project index records it for every class of every file, and the line
   scanner and the parser give the same answer from the same text.
2. `judge(holds, base_verdicts, callee_verdict)`: the verdict, once the written names are
   resolved by whoever knows the file's imports (the project index, or the file's own
   `ModuleContext`): NONE (registration keeps nothing: no parameter, buffer or mode-dependent
   layer), MODE (no parameter or buffer, but behaviour that `.train()`/`.eval()` switch), STATE
   (owns parameters or buffers), or UNKNOWN. Unknown is never read as "owns nothing".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

NONE = "none"
MODE = "mode"
STATE = "state"
UNKNOWN = "unknown"
_RANK = {NONE: 0, MODE: 1, UNKNOWN: 2, STATE: 3}

_MARK_RE = re.compile(
    r"(?P<comment>#[^\n]*)"
    r"|(?P<string>\"\"\"|''')"
    r"|\bself[ \t]*\.[ \t]*\w+[ \t]*(?::[^=\n]*)?=(?!=)[ \t]*"
    r"|(?P<training>\.[ \t]*training\b|\bdef[ \t]+(?:train|eval)[ \t]*\()"
    r"|(?P<state>\b(?:register_parameter|register_buffer|Parameter|Buffer|UninitializedParameter)\b)"
    r"|(?P<opaque>\b(?:add_module|register_module|setattr|__dict__|__setattr__)\b)"
    r"|\bdef[ \t]+\w+[ \t]*\([ \t\n]*(?P<first>\w+)"
)
_LITERAL_RE = re.compile(r"(?:-?[ \t]*[\d.][\w.]*|None|True|False|[rbuf]?\"[^\"\n]*\"|[rbuf]?'[^'\n]*')")
_DOTTED_RE = re.compile(r"[A-Za-z_]\w*(?:[ \t]*\.[ \t]*[A-Za-z_]\w*)*")
_END_RE = re.compile(r"[ \t]*(?:#[^\n]*)?(?:\n|$)")
# keywords of torch.nn constructors whose values are sizes, rates and flags: an `__init__` argument
# also passed under one of them is such a number, not a module or a tensor
_HYPER_KEYWORDS = frozenset(
    [
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "in_features",
        "out_features",
        "in_channels",
        "out_channels",
        "num_features",
        "normalized_shape",
        "eps",
        "momentum",
        "p",
        "dim",
        "num_heads",
        "embed_dim",
        "hidden_size",
        "input_size",
        "num_layers",
        "output_size",
        "scale_factor",
        "negative_slope",
        "d_model",
        "nhead",
        "dim_feedforward",
        "num_embeddings",
        "embedding_dim",
        "padding_idx",
        "ceil_mode",
        "count_include_pad",
        "inplace",
    ]
)
_NUMBER_ANNOTATIONS = "int|float|bool|str"


def class_holds(text: str) -> tuple[str, ...]:
    """What a class statement's text stores on `self` (see the module docstring), sorted."""
    found: set[str] = set()
    stores: list[int] = []
    firsts: set[str] = set()
    pos = 0
    while True:
        m = _MARK_RE.search(text, pos)
        if m is None:
            break
        pos = m.end()
        if m.group("comment") is not None:
            continue
        if m.group("string") is not None:  # a docstring: skipped whole
            close = text.find(m.group("string"), pos)
            pos = len(text) if close < 0 else close + 3
            continue
        if m.group("training") is not None:
            found.add("T")
        elif m.group("state") is not None:
            found.add("P")
        elif m.group("opaque") is not None:
            found.add("?")
        elif m.group("first") is not None:
            firsts.add(m.group("first"))
        else:
            stores.append(m.end())
    for start in stores:
        found.add(_stored(text, start))
    for name in firsts - {"self", "cls"}:  # `def f(this): this.x = ...`: stores not seen as `self.`
        if re.search(rf"\b{re.escape(name)}[ \t]*\.[ \t]*\w+[ \t]*(?::[^=\n]*)?=(?!=)", text):
            found.add("?")
    found.discard("")
    return tuple(sorted(found))


def _stored(text: str, start: int) -> str:
    """What the value stored at `start` (the right-hand side of `self.x = ...`) may register."""
    m = _LITERAL_RE.match(text, start)
    if m is not None and _END_RE.match(text, m.end()):
        return ""
    if start < len(text) and text[start] in "[{":
        close = _close(text, start)
        return "" if close is not None and _END_RE.match(text, close) else "?"
    m = _DOTTED_RE.match(text, start)
    if m is None:
        return "?"
    written = re.sub(r"[ \t]", "", m.group(0))
    after = m.end()
    if _END_RE.match(text, after):
        return "" if "." not in written and _number_argument(text, written) else "?"
    if text.startswith("(", after):
        close = _close(text, after)
        if close is not None and _END_RE.match(text, close):
            return f"c:{written}"
    return "?"


def _number_argument(text: str, name: str) -> bool:
    """`self.k = k` where `k` is, by the class's text, a number: an argument with a number, string
    or boolean default or annotation, or one passed to a layer as a size (`kernel_size=k`)."""
    word = re.escape(name)
    if re.search(
        rf"[(,][ \t\n]*{word}[ \t]*(?::[ \t]*(?:{_NUMBER_ANNOTATIONS})\b[^,)=\n]*)?=[ \t]*"
        r"(?:-?[ \t]*\d|True\b|False\b|[\"'])",
        text,
    ):
        return True
    if re.search(rf"[(,][ \t\n]*{word}[ \t]*:[ \t]*(?:{_NUMBER_ANNOTATIONS})[ \t]*[,)=]", text):
        return True
    return any(
        k.group(1) in _HYPER_KEYWORDS for k in re.finditer(rf"\b(\w+)[ \t]*=[ \t]*{word}[ \t]*[,)]", text)
    )


def _close(text: str, start: int) -> int | None:
    """The position after the bracket closing the one at `start` (strings skipped); None when
    it is not found or a string is not plain."""
    depth = 0
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        elif c in "\"'":
            if text.startswith(c * 3, i):
                j = text.find(c * 3, i + 3)
                if j < 0:
                    return None
                i = j + 3
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            if j >= n or text[j] != c:
                return None
            i = j + 1
            continue
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        i += 1
    return None


def judge(holds: Iterable[str], base_verdicts: Iterable[str], callee_verdict: Callable[[str], str]) -> str:
    """The verdict of a class from what its text stores and its bases' verdicts."""
    verdict = NONE
    for part in base_verdicts:
        verdict = worst(verdict, part)
    for mark in holds:
        if verdict == STATE:
            break
        if mark == "P":
            verdict = STATE
        elif mark == "T":
            verdict = worst(verdict, MODE)
        elif mark == "?":
            verdict = worst(verdict, UNKNOWN)
        elif mark.startswith("c:"):
            verdict = worst(verdict, callee_verdict(mark[2:]))
    return verdict


def worst(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


# -- what a name from torch or the builtins stores ---------------------------------------------
_PLAIN_BUILTINS = frozenset(
    [
        "int",
        "float",
        "str",
        "bool",
        "complex",
        "list",
        "dict",
        "tuple",
        "set",
        "frozenset",
        "len",
        "range",
        "min",
        "max",
        "abs",
        "round",
        "sum",
        "sorted",
        "reversed",
        "enumerate",
        "zip",
        "map",
        "filter",
        "any",
        "all",
        "repr",
        "hash",
        "id",
        "type",
        "object",
        "bytes",
        "bytearray",
    ]
)
_PLAIN_PREFIXES = ("math.", "numpy.", "collections.", "functools.", "itertools.", "re.", "os.", "logging.")


def builtin_verdict(written: str) -> str | None:
    """A builtin called and stored: what it returns is no module nor parameter."""
    return NONE if written in _PLAIN_BUILTINS else None


def qualified_verdict(qual: str) -> str | None:
    """A qualified name of torch or the standard library, called and stored (None: not one)."""
    from gradguard.engine import torch_facts

    if qual.startswith(_PLAIN_PREFIXES):
        return NONE
    if not qual.startswith("torch."):
        return None
    last = qual.rsplit(".", 1)[-1]
    if qual in ("torch.nn.Module", "torch.nn.modules.module.Module"):
        return NONE
    if last in ("Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer", "ParameterList",
                "ParameterDict"):  # fmt: skip
        return STATE
    facts = torch_facts.layer(qual)
    if facts is not None:
        if last == "RReLU" or facts.kind == "dropout":  # random in training, not in evaluation
            return MODE if facts.parameter_free_always else STATE
        if facts.kind in ("container", "loss") or facts.parameter_free_always is not True:
            # a container's members, a loss's `weight` buffer, a layer's parameters: state or unknown
            return STATE if facts.parameter_free_always is False and facts.kind != "container" else UNKNOWN
        if facts.kind == "normalization":
            return MODE
        return NONE
    if last[:1].isupper() or qual.startswith(("torch.nn.", "torch.jit.", "torch.compile")):
        return UNKNOWN  # another torch class, `torch.nn.utils.weight_norm(...)`, a compiled module
    return NONE  # a torch function: a plain tensor (`torch.zeros(...)`), not registered
