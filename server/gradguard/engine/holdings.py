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
from typing import NamedTuple

NONE = "none"
MODE = "mode"
STATE = "state"
UNKNOWN = "unknown"
_RANK = {NONE: 0, MODE: 1, UNKNOWN: 2, STATE: 3}

_STORE_RE = re.compile(r"self[ \t]*\.[ \t]*\w+[ \t]*(?::[^=\n]*)?=(?!=)[ \t]*")
_ATTR_STORE_RE = re.compile(r"[ \t]*\.[ \t]*\w+[ \t]*(?::[^=\n]*)?=(?!=)")
_FIRST_RE = re.compile(r"def[ \t]+\w+[ \t]*\([ \t\n]*(\w+)")
# `k=3`, `k: int = 3`, `k: int` in a signature; `kernel_size=k` in a call
_NUMBER_PARAM_RE = re.compile(
    r"[(,][ \t\n]*(\w+)[ \t]*(?::[ \t]*(?:int|float|bool|str)\b[^,)=\n]*)?=[ \t]*(?:-?[ \t]*\d|True\b|False\b|[\"'])"
    r"|[(,][ \t\n]*(\w+)[ \t]*:[ \t]*(?:int|float|bool|str)[ \t]*[,)=]"
)
_DEF_RE = re.compile(r"def[ \t]+\w+[ \t]*\(")
_KEYWORD_VALUE_RE = re.compile(r"=[ \t]*(\w+)[ \t]*[,)]")
_LAST_WORD_RE = re.compile(r"[(,\s](\w+)[ \t]*$")
_LITERAL_RE = re.compile(r"(?:-?[ \t]*[\d.][\w.]*|None|True|False|[rbuf]?\"[^\"\n]*\"|[rbuf]?'[^'\n]*')")
# a dotted name as written (`nn . Linear`); the project index reads class bases with it too
DOTTED_RE = re.compile(r"[A-Za-z_]\w*(?:[ \t]*\.[ \t]*[A-Za-z_]\w*)*")
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
    """What a class statement's text stores on `self` (see the module docstring), sorted. Text
    after a `#` on its line is not read (a column-0 comment after the class belongs to the line
    scanner's span of it, not the parser's); docstrings are read as code (an extra mark only makes
    the answer less "nothing")."""
    found: set[str] = set()
    if "self" not in text:
        return ()
    if _has_word(text, ("training",)) or _has_word(text, ("def train(", "def eval(")):
        found.add("T")
    if _has_word(text, ("register_parameter", "register_buffer", "Parameter", "Buffer")):
        found.add("P")
    if _has_word(text, ("add_module", "register_module", "setattr", "__dict__")):
        found.add("?")
    numbers: set[str] | None = None
    for m in _STORE_RE.finditer(text):
        if (m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] in "_.")) or _commented(
            text, m.start()
        ):
            continue
        stored = _stored(text, m.end())
        if stored.startswith("n:"):
            if numbers is None:
                numbers = _number_names(text)
            stored = "" if stored[2:] in numbers else "?"
        found.add(stored)
    for first in {m.group(1) for m in _FIRST_RE.finditer(text)} - {"self", "cls"}:
        # `def f(this): this.x = ...`: stores not seen as `self.`
        pos = text.find(first + ".")
        while pos >= 0:
            if (not pos or not (text[pos - 1].isalnum() or text[pos - 1] in "_.")) and _ATTR_STORE_RE.match(
                text, pos + len(first)
            ):
                found.add("?")
                break
            pos = text.find(first + ".", pos + 1)
    found.discard("")
    return tuple(sorted(found))


def _has_word(text: str, words: tuple[str, ...]) -> bool:
    """One of the words occurs as a word, outside a comment."""
    for word in words:
        pos = text.find(word)
        while pos >= 0:
            end = pos + len(word)
            if (
                (not pos or not (text[pos - 1].isalnum() or text[pos - 1] == "_"))
                and (end >= len(text) or word[-1] == "(" or not (text[end].isalnum() or text[end] == "_"))
                and not _commented(text, pos)
            ):
                return True
            pos = text.find(word, end)
    return False


def _commented(text: str, pos: int) -> bool:
    return "#" in text[text.rfind("\n", 0, pos) + 1 : pos]


def _number_names(text: str) -> set[str]:
    """Names that are numbers by the class's text: arguments with a number, string or boolean
    default or annotation, and names passed to a layer as a size (`kernel_size=k`)."""
    out: set[str] = set()
    for d in _DEF_RE.finditer(text):
        close = _close(text, d.end() - 1)
        if close is None:
            continue
        for m in _NUMBER_PARAM_RE.finditer(text, d.end() - 1, close):
            out.add(m.group(1) or m.group(2))
    for m in _KEYWORD_VALUE_RE.finditer(text):
        keyword = _LAST_WORD_RE.search(text, max(0, m.start() - 40), m.start())
        if keyword is not None and keyword.group(1) in _HYPER_KEYWORDS:
            out.add(m.group(1))
    return out


def _stored(text: str, start: int) -> str:
    """What the value stored at `start` (the right-hand side of `self.x = ...`) may register
    ("n:<name>" for a bare name)."""
    m = _LITERAL_RE.match(text, start)
    if m is not None and _END_RE.match(text, m.end()):
        return ""
    if start < len(text) and text[start] in "[{":
        close = _close(text, start)
        return "" if close is not None and _END_RE.match(text, close) else "?"
    m = DOTTED_RE.match(text, start)
    if m is None:
        return "?"
    written = re.sub(r"[ \t]", "", m.group(0))
    after = m.end()
    if _END_RE.match(text, after):
        return f"n:{written}" if "." not in written else "?"
    if text.startswith("(", after):
        close = _close(text, after)
        if close is not None and _END_RE.match(text, close):
            return f"c:{written}"
    return "?"


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


class Written(NamedTuple):
    """What a name written in a file refers to, as that file's lookup finds it."""

    qualified: str | None = None  # the qualified name the torch and standard-library tables may know
    is_class: bool = False  # a class (its kind below); False: a function, a variable, or not read here
    is_module: bool = False  # the class is an `nn.Module`
    plain: bool = False  # the class's bases are all `object` (or it has none)
    verdict: Callable[[], str] | None = None  # what an instance of it carries when registered


def written_verdict(written: str, base: bool, lookup: Callable[[str], Written | None]) -> str:
    """What a name as written carries, called and stored on `self` (or, `base`, as a base class),
    with `lookup` the file's resolution of names (None: the name is bound to nothing the file
    knows, so a builtin). The project index and a file's own `ModuleContext` share this.

    An instance of a class that is no module is not registered and holds nothing, but only when
    its bases are all `object`: a base that is not read may still make it a module."""
    if written == "?":
        return UNKNOWN
    found = lookup(written)
    if found is None:
        if "." in written:
            return UNKNOWN
        if base:
            return NONE if written == "object" else UNKNOWN
        return builtin_verdict(written) or UNKNOWN
    if found.qualified is not None:
        quick = qualified_verdict(found.qualified)
        if quick is not None:
            return quick
    if found.is_class and not base and not found.is_module:
        return NONE if found.plain else UNKNOWN
    return found.verdict() if found.verdict is not None else UNKNOWN


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


# -- what a weight/bias attribute of a module class holds ----------------------------------------
_REGISTER_RE = re.compile(r"\b(register_buffer|register_parameter)[ \t]*\([ \t\n]*(?:[\"'](\w+)[\"'])?")
_SETATTR_RE = re.compile(r"\bsetattr[ \t]*\([ \t\n]*self[ \t\n]*,[ \t\n]*(?:[\"'](\w+)[\"'])?")
_SELF_STORE_RE = re.compile(r"(?<![\w.])self[ \t]*\.[ \t]*(\w+)[ \t]*(?::[^=\n]*)?=(?!=)[ \t]*")
_PARAMETER_CALL_RE = re.compile(r"(?:[A-Za-z_][\w.]*\.)?(Parameter|Buffer)[ \t]*\(")
# torch's factories of a fresh tensor (`torch.zeros(n)`, `t.empty(...)`): without
# `requires_grad=`, a tensor that does not require grad; stored on a module, not registered
_FACTORY_CALL_RE = re.compile(
    r"[A-Za-z_]\w*[ \t]*\.[ \t]*(?:zeros|ones|empty|full|tensor|arange|eye|randn|rand)(?:_like)?[ \t]*\("
)


def parameter_named(attr: str) -> bool:
    """Names the engine takes for a module's parameters when its class is not read."""
    return attr in ("weight", "bias", "in_proj_weight", "in_proj_bias") or attr.startswith(
        ("weight_", "bias_")
    )


def class_tensor_stores(text: str) -> tuple[str, ...]:
    """What a class statement's text stores under the parameter names (`parameter_named`), as
    sorted `"<mark>:<name>"`: `b` a buffer (`register_buffer`), `t` a tensor made by a factory,
    `n` None, `s` the attribute itself through a method (`self.bias.to(dtype)`: no change of
    kind), `p` a parameter, `?` anything else; `"?:*"` when the class also stores under a name
    the text does not spell (`setattr(self, name, ...)`)."""
    if "weight" not in text and "bias" not in text:
        return ()
    found: set[str] = set()
    for m in _REGISTER_RE.finditer(text):
        if _commented(text, m.start()):
            continue
        name = m.group(2)
        if name is None:
            found.add("?:*")
        elif parameter_named(name):
            found.add(("b:" if m.group(1) == "register_buffer" else "p:") + name)
    for m in _SETATTR_RE.finditer(text):
        if not _commented(text, m.start()):
            name = m.group(1)
            if name is None or parameter_named(name):
                found.add(f"?:{name or '*'}")
    for m in _SELF_STORE_RE.finditer(text):
        name = m.group(1)
        if parameter_named(name) and not _commented(text, m.start()):
            found.add(f"{_store_mark(text, m.end(), name)}:{name}")
    return tuple(sorted(found))


def _store_mark(text: str, start: int, name: str) -> str:
    """The mark (see `class_tensor_stores`) of the value stored at `start` under `name`."""
    if text.startswith("None", start) and _END_RE.match(text, start + 4):
        return "n"
    derived = re.compile(rf"self[ \t]*\.[ \t]*{name}[ \t]*\.[ \t]*\w+[ \t]*\(").match(text, start)
    if derived is not None:
        eol = text.find("\n", start)
        line = text[start:] if eol < 0 else text[start:eol]
        if "requires_grad" not in line and "Parameter" not in line:
            # `self.bias = self.bias.to(dtype)`: a buffer stays a buffer, a plain tensor a plain
            # tensor, a parameter the same parameter (or Module.__setattr__ raises)
            return "s"
    call = _PARAMETER_CALL_RE.match(text, start)
    if call is not None:
        return "b" if call.group(1) == "Buffer" else "p"
    call = _FACTORY_CALL_RE.match(text, start)
    if call is not None:
        close = _close(text, call.end() - 1)
        if close is not None and _END_RE.match(text, close) and "requires_grad" not in text[start:close]:
            return "t"
    return "?"


def stored_tensor_kind(marks: Iterable[str]) -> str | None:
    """What the attribute holds from the marks of every class of its chain: "buffer", "tensor"
    (one that does not require grad), or None when anything stored may be a parameter."""
    kinds = set(marks) - {"s"}
    if not kinds or not kinds <= {"b", "t", "n"} or kinds == {"n"}:
        return None
    return "tensor" if "t" in kinds else "buffer"
