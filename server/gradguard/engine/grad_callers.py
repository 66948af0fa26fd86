"""Where a project calls its functions and methods with gradients off: the cross-file half of
`Semantics.called_without_grad`.

Names are keyed by their tail: an identifier from its first `_` followed by a letter or digit on
(`_sync` for `_sync`, `_from_experts` for `copy_from_experts`; `call_key`). A file's summary
(`project.ModuleSummary`) carries, for the keys its text mentions:
- `grad_off_calls`: the keys every mention of which in this file is a call made where
  gradients are off -- inside `with torch.no_grad():` / `torch.inference_mode()` /
  `torch.set_grad_enabled(False)`, or in a function decorated `@torch.no_grad()` /
  `@torch.inference_mode()` (or nested in one);
- `private_uses`: the keys mentioned any other way (a call with gradients on, a reference
  passed or stored, a mention in a comment or a one-line string such as `getattr(m, "name")`:
  textual, so it errs towards "used");
- `private_defs`: the keys of the names the file defines with `def`.

A function or method of the project whose key is in some file's `grad_off_calls` and in no
file's `private_uses` runs only with gradients off (`ProjectIndex.grad_off_helpers`). That
holds for private helpers (`_name`) and for public names with an `_` inside
(llmcompressor's `copy_from_experts_module`, called only by `@torch.no_grad()` classmethods):
the project's own code is the evidence of how a function is used, and a name that every
mention of in the project is a grad-off call is one its authors run without gradients.
A public name that no file mentions stays unknown (reported): users of a library call it as
they like. A name without `_` inside (`update`, `step`) has no key and is never taken so: such
words are also the ones most shared by unrelated methods. Matching by tail only widens what
counts as a mention (`x.load_from_experts(...)` counts for `copy_from_experts` too): a
coincidence of names can only keep a function reported.

All of it is textual (no parse: the index summarizes every file of a workspace, most of them
without a full parse): the grad-off regions are found from indentation, and whatever the
reading is unsure of errs towards "used with gradients on" (a mention inside another
identifier, `foo_helper`, counts as a mention of `_helper`; a line inside brackets or a
triple-quoted string keeps the region it started in; a `def` or a `lambda` inside a region
runs where it is called, so it is a region of its own). One exception: a triple-quoted string
standing as a statement (a docstring naming `copy_from_experts`) documents a name and
is not counted as a mention -- only when the file's triple quotes pair up; otherwise every
mention counts.
"""

from __future__ import annotations

import re
from collections import Counter

_SUFFIX_RE = re.compile(r"_[A-Za-z0-9]\w*")  # every `_name`, and the tails of `foo_name` (a superset)
# the key of a defined name (not a dunder), and of a called one
_DEF_RE = re.compile(r"def[ \t]+(?!__)[A-Za-z0-9_]*?(_[A-Za-z0-9]\w*)")
_CALL_RE = re.compile(r"(?<![\w])[A-Za-z0-9_]*?(_[A-Za-z0-9]\w*)[ \t]*\(")
_TRIPLE_RE = re.compile(r"\"\"\"|\'\'\'")
_PREFIXES = ("", "r", "R", "u", "U")  # what may stand before a docstring's quotes on its line
_LINE_ENDS = ("\n", "")  # what follows its closing quotes
_MARKERS = ("no_grad", "inference_mode", "set_grad_enabled")
_MARKER_RE = re.compile("|".join(_MARKERS))
_OFF_RE = re.compile(
    r"\b(?:no_grad|inference_mode)[ \t]*\([ \t]*(?:(?:mode[ \t]*=[ \t]*)?True[ \t]*)?\)"
    r"|\bset_grad_enabled[ \t]*\([ \t]*(?:mode[ \t]*=[ \t]*)?False[ \t]*\)"
)
_ON_WORDS = ("enable_grad", "set_grad_enabled", "inference_mode", "no_grad")
_STRING_RE = re.compile(r"\"[^\"\n]*\"|'[^'\n]*'")
_GRAD_READ_RE = re.compile(r"\.grad\b")  # `p.grad` (not `.gradient_boosting`)
EMPTY: frozenset[str] = frozenset()

# -- the project that never trains --------------------------------------------------------------
# Words whose presence in a file's text (comments and strings too: a mention errs towards "trains")
# shows it computes, asks for or keeps a gradient (a backward call, `autograd.grad`, an optimizer, a
# tensor made to require grad, a `.grad` read, a hook on the backward pass, `enable_grad`), or builds
# a torch layer with trainable parameters (a model library's users train its layers with their loop).
_TRAINING_WORDS = (  # the most frequent first: most files stop at one of them
    "Linear(", ".backward", "Embedding", "LayerNorm(", "Conv2d(", "optim.", "backward(",
    "requires_grad=True", "requires_grad = True", "requires_grad_(", ".requires_grad =", ".requires_grad=",
    "backward_hook", "autograd.grad", "func.grad", "functorch", "Optimizer", "enable_grad", "create_graph",
    "retain_graph", "register_hook", "training_step", "Conv1d(", "Conv3d(", "ConvTranspose", "GroupNorm(",
    "RMSNorm(", "BatchNorm", "InstanceNorm", "LSTM", "GRU(", "RNN(", "GRUCell", "RNNCell", "MultiheadAttention",
    "nn.Transformer", "PReLU(",
)  # fmt: skip


def call_key(name: str) -> str | None:
    """The key `grad_off_calls` and `private_uses` know a function's name by (module doc)."""
    match = _SUFFIX_RE.search(name)
    return name[match.start() :] if match is not None else None


def _without_docstrings(text: str) -> str:
    """The text without the triple-quoted strings that stand as statements (their opening quotes
    start a line, their closing ones end it), when its triple quotes pair up (as it is otherwise)."""
    if '"""' not in text and "'''" not in text:
        return text
    kept: list[str] = []
    last = start = 0
    quote = ""
    for match in _TRIPLE_RE.finditer(text):
        if not quote:
            quote, start = match.group(), match.start()
        elif match.group() == quote:  # (the other kind inside the string is part of it)
            quote = ""
            opening = text[text.rfind("\n", 0, start) + 1 : start].lstrip()
            end = match.end()
            if opening in _PREFIXES and text[end : end + 1] in _LINE_ENDS:
                kept.append(text[last:start])
                last = end
    if quote:
        return text  # unpaired (a triple quote in a comment or a one-line string): unsure
    kept.append(text[last:])
    return "".join(kept)


def may_train(text: str) -> bool:
    """Does the text compute, ask for or keep a gradient, or build a trainable torch layer,
    anywhere (textual: errs towards yes)?"""
    return any(word in text for word in _TRAINING_WORDS) or _GRAD_READ_RE.search(text) is not None


def _line_mode(line: str, outer: bool) -> bool:
    """The grad mode inside a `with` statement's block, from its header line."""
    if _OFF_RE.search(line) and "enable_grad" not in line:
        return False
    if any(word in line for word in _ON_WORDS):
        return True  # enable_grad(), set_grad_enabled(flag), inference_mode(False)
    return outer


_FORWARDS = ("forward", "__call__")
_BARE_DECORATORS = ("@torch.no_grad", "@no_grad", "@torch.inference_mode", "@inference_mode")


class _Regions:
    """Reads a file line by line, keeping the blocks open at each line by indentation."""

    def __init__(self, counts: Counter) -> None:
        self.counts = counts  # calls of private names where gradients are off
        self.started = False  # the block read has opened
        self.forward_off = False
        self.stack: list[tuple[int, bool, str]] = []  # (indent, gradients on?, kind) of the open blocks
        self.decorated_off = False
        self.depth = 0  # open brackets: a continuation line belongs to the statement above
        self.triple: str | None = None

    def line(self, line: str) -> None:
        stripped = line.strip()
        continuation = self.depth > 0 or self.triple is not None
        if not continuation and (not stripped or stripped.startswith("#")):
            return
        indent = len(line) - len(line.lstrip())
        stack = self.stack
        if not continuation:
            while stack and indent <= stack[-1][0]:
                stack.pop()
        on = stack[-1][1] if stack else True
        if not on and "lambda" not in line:
            for match in _CALL_RE.finditer(line):
                if not line[: match.start()].rstrip().endswith("def"):  # a definition, not a call
                    self.counts[match.group(1)] += 1
        if not continuation:
            self.header(stripped, indent, on)
        self.brackets(line)

    def header(self, stripped: str, indent: int, on: bool) -> None:
        head = stripped.split("(", 1)[0].split()
        word = head[1] if head[:1] == ["async"] and len(head) > 1 else (head[0] if head else "")
        stack = self.stack
        if stripped.startswith("@"):
            self.decorated_off = (
                self.decorated_off or bool(_OFF_RE.search(stripped)) or stripped in _BARE_DECORATORS
            )
        elif word == "def":
            # a body runs where the function is called, not where it is defined
            name = stripped.split("def", 1)[1].split("(", 1)[0].strip()
            self.forward_off = self.forward_off or (self.decorated_off and name in _FORWARDS)
            stack.append((indent, not self.decorated_off, "forward" if name in _FORWARDS else "def"))
            self.decorated_off = False
        elif word == "with":
            mode = _line_mode(stripped, on)
            if not mode and stack and stack[-1][2] == "forward":
                self.forward_off = True  # a statement of a forward's body
            stack.append((indent, mode, "with"))
        elif word == "class":
            stack.append((indent, on, "class"))
            self.decorated_off = False

    def brackets(self, line: str) -> None:
        """Brackets and triple-quoted strings (quotes and comments removed first, roughly)."""
        for quote in ('"""', "'''"):
            if line.count(quote) % 2 == 1 and (self.triple is None or self.triple == quote):
                self.triple = None if self.triple == quote else quote
        if self.triple is None:
            code = _STRING_RE.sub("", line).split("#", 1)[0]
            opened = code.count("(") + code.count("[") + code.count("{")
            closed = code.count(")") + code.count("]") + code.count("}")
            self.depth = max(0, self.depth + opened - closed)


def _scan_regions(text: str) -> tuple[Counter, bool]:
    """Calls of private names made where gradients are off (by indentation), and whether a
    `forward` / `__call__` runs its body with gradients off (decorated, or a `with` block as one of
    its statements: hummingbird's `Executor.forward`). Only the blocks that a line naming a grad
    mode opens are read (a `with` header or a decorator): the rest of a file runs as its callers
    decide, which `private_uses` counts as gradients on."""
    counts: Counter = Counter()
    forward_off = False
    lines = text.split("\n")
    line_no = last = 0
    done = -1
    for match in _MARKER_RE.finditer(text):
        line_no += text.count("\n", last, match.start())
        last = match.start()
        first = lines[line_no].lstrip()
        if line_no <= done or not first.startswith(("with ", "async with ", "@")):
            continue
        if first.startswith(("with ", "async with ")) and not _line_mode(first, True):
            forward_off = forward_off or _in_forward(lines, line_no)
        regions = _Regions(counts)
        j = line_no
        while j < len(lines):
            regions.line(lines[j])
            if regions.stack:
                regions.started = True
            elif regions.started and regions.depth == 0 and regions.triple is None:
                break
            j += 1
        done = j
        forward_off = forward_off or regions.forward_off
    return counts, forward_off


def _in_forward(lines: list[str], k: int) -> bool:
    """Is line `k` a statement of the body of a `def forward(` / `def __call__(` (the nearest line
    above it that is indented less)?"""
    indent = len(lines[k]) - len(lines[k].lstrip())
    for j in range(k - 1, max(-1, k - 200), -1):
        stripped = lines[j].lstrip()
        if not stripped or stripped.startswith("#") or len(lines[j]) - len(stripped) >= indent:
            continue
        head = stripped[len("async ") :] if stripped.startswith("async ") else stripped
        return head.startswith(("def forward(", "def __call__("))
    return False


_DEF_LINE_RE = re.compile(r"[ \t]*(?:async[ \t]+)?def[ \t]+(?!__)[A-Za-z0-9_]*?(_[A-Za-z0-9]\w*)[ \t]*\(")
_BLOCK_HEADS = ("if ", "elif ", "else", "for ", "while ", "try", "except", "finally", "with ", "async ")


def _calls_within_family(code: str, keys: set[str]) -> Counter:
    """The calls of a key made from the body of a function of the same key (`process_x` calling
    `preprocess_x`, both `_x`; asked only for the keys the file defines twice or more). All the functions of a key are one name to these
    facts, and such a call runs in the grad mode its caller's body runs in: it is no way into
    the family from outside, so it counts neither as a use nor as a grad-off call (torchquantum's
    `process_parameterized_and_shift`, called only under `no_grad` from another file, calling
    `preprocess_parameterized_and_shift`). Only a call that starts a statement of the body (or
    of a compound statement in it, as far as indentation shows), not in a lambda, in a body that
    names no grad mode; anything else stays a use."""
    found: Counter = Counter()
    if not keys:
        return found
    calls = {key: _call_lines(code, key) for key in keys}
    if not any(calls.values()):
        return found
    lines = code.split("\n")
    clean: dict[int, bool] = {}
    for key, call_lines in calls.items():
        for line_no in call_lines:
            line = lines[line_no]
            if _DEF_LINE_RE.match(line) or "lambda" in line or _MARKER_RE.search(line):
                continue
            owner = _enclosing_def(lines, line_no)
            head = _DEF_LINE_RE.match(lines[owner]) if owner is not None else None
            if owner is None or head is None or head.group(1) != key:
                continue
            if owner not in clean:
                body = "\n".join(
                    _indented_block(lines, owner, len(lines[owner]) - len(lines[owner].lstrip()))
                )
                clean[owner] = not _MARKER_RE.search(body) and "enable_grad" not in body
            found[key] += clean[owner]
    return found


def _call_lines(code: str, key: str) -> list[int]:
    """The lines of the calls of `key` (what `_CALL_RE` finds, by `str.find`: one regex pass over
    a whole file per key would cost more than the rest of the facts)."""
    found: list[int] = []
    line = last = 0
    pos = code.find(key)
    while pos >= 0:
        end = pos + len(key)
        called = code[end : end + 80].lstrip(" \t").startswith("(")
        if called and (end == len(code) or not (code[end].isalnum() or code[end] == "_")):
            start = pos
            while start > 0 and (code[start - 1].isalnum() or code[start - 1] == "_"):
                start -= 1
            if call_key(code[start:end]) == key:
                line += code.count("\n", last, pos)
                last = pos
                found.append(line)
        pos = code.find(key, end)
    return found


def _enclosing_def(lines: list[str], k: int) -> int | None:
    """The line of the `def` whose body holds line `k`, through compound statements only."""
    indent = len(lines[k]) - len(lines[k].lstrip())
    for j in range(k - 1, -1, -1):
        stripped = lines[j].lstrip()
        if not stripped or stripped.startswith("#") or len(lines[j]) - len(stripped) >= indent:
            continue
        if _DEF_LINE_RE.match(lines[j]) or stripped.startswith(("def ", "async def ")):
            return j
        if stripped.startswith((")", "]", "}")):
            continue  # the end of a signature (or of a bracket) split over lines
        if not stripped.startswith(_BLOCK_HEADS) or _MARKER_RE.search(stripped) or "lambda" in stripped:
            return None  # a class, a continuation line, a grad-mode block: unsure
        indent = len(lines[j]) - len(stripped)
    return None


def _indented_block(lines: list[str], k: int, indent: int) -> list[str]:
    """The lines after the `def` of line `k` (its signature may go on over several lines)
    indented deeper than it, up to the first that is not."""
    depth, start = 0, k
    for start in range(k, len(lines)):  # (roughly: brackets in strings of a default are rare)
        depth += sum(lines[start].count(c) for c in "([{") - sum(lines[start].count(c) for c in ")]}")
        if depth <= 0:
            break
    body: list[str] = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
    return body


def grad_call_facts(text: str) -> tuple[frozenset[str], frozenset[str], frozenset[str], bool]:
    """(grad_off_calls, private_uses, private_defs, forward_grad_off) of a file's text (see the
    module doc)."""
    if "_" not in text:
        return EMPTY, EMPTY, EMPTY, False
    code = _without_docstrings(text)
    defs = _DEF_RE.findall(code)
    if not defs and not any(marker in text for marker in _MARKERS):
        return EMPTY, frozenset(_SUFFIX_RE.findall(code)), EMPTY, False
    mentions = Counter(_SUFFIX_RE.findall(code))
    for name in defs:
        mentions[name] -= 1  # a definition is no use; a call beside it in the file is
    shared = {name for name, n in Counter(defs).items() if n > 1 and mentions[name] > 0}
    mentions.subtract(_calls_within_family(code, shared))
    if not any(marker in text for marker in _MARKERS):
        return EMPTY, frozenset(name for name, n in mentions.items() if n > 0), frozenset(defs), False
    off, forward_off = _scan_regions(code)  # the mentions' text: a docstring counts in neither
    grad_off = frozenset(name for name, n in off.items() if mentions.get(name) == n)
    uses = frozenset(name for name, n in mentions.items() if n > 0 and name not in grad_off)
    return grad_off, uses, frozenset(defs), forward_off
