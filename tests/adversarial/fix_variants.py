"""`--fix` over formatting variants (issue 15, "`--fix` must never change what it did not report").

The corpus: every rule example that has a fix (`Invalid.fixed`) plus the hand-written files in
`tests/fix_corpus/`. Each is rewritten by formatting transforms that keep its syntax tree:
line endings (CRLF, lone CR), a UTF-8 byte order mark, a latin-1 coding cookie, comments
after every line and inside every bracket, statements joined with `;`, tabs, blank lines,
comment lines, no final newline, and combinations.

`problems(original, fixed, reference)` is the oracle for one fixed variant: it compiles, in
its encoding, with its byte order mark and line endings, every comment is still there, and
its syntax tree is either the reference's (the same fixes as on the plain example) or the
original's (the fix was not offered in this formatting).
"""

from __future__ import annotations

import ast
import io
import itertools
import re
import sys
import tokenize
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "fix_corpus"


@dataclass(frozen=True)
class Variant:
    name: str  # "<example>/<transform>"
    data: bytes  # the file's bytes
    encoding: str = "utf-8"
    bom: bool = False

    @property
    def text(self) -> str:
        body = self.data[3:] if self.bom else self.data
        return body.decode(self.encoding)


# -- the examples ---------------------------------------------------------------------------------
def examples(server: Path | None = None) -> list[tuple[str, str]]:
    """(name, code) of every fixable rule example and every corpus file."""
    found = []
    if server is not None and str(server) not in sys.path:
        sys.path.insert(0, str(server))
    from gradguard.engine.rule import all_rules

    for code, rule in all_rules().items():
        for index, example in enumerate(rule.INVALID):
            if example.fixed:
                found.append((f"{code}-{index}", example.code))
    for path in sorted(CORPUS.glob("*.py")):
        found.append((path.stem, path.read_text(encoding="utf-8")))
    return found


# -- transforms (text -> text, the same syntax tree) -----------------------------------------------
def _tokens(text: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(text).readline))


def _offsets(text: str) -> list[int]:
    starts, total = [0], 0
    for line in text.splitlines(keepends=True):
        total += len(line)
        starts.append(total)
    return starts


def _insert(text: str, inserts: list[tuple[int, str]]) -> str:
    for at, piece in sorted(inserts, key=lambda x: -x[0]):
        text = text[:at] + piece + text[at:]
    return text


def trailing_comments(text: str) -> str:
    starts = _offsets(text)
    tokens = _tokens(text)
    commented = {t.start[0] for t in tokens if t.type == tokenize.COMMENT}
    inserts = []
    for n, tok in enumerate(tokens):
        if tok.type in (tokenize.NEWLINE, tokenize.NL) and tok.line.strip() and tok.start[0] not in commented:
            row, col = tok.start
            inserts.append((starts[row - 1] + col, f"  # note {n}"))
    return _insert(text, inserts)


def comments_inside_brackets(text: str) -> str:
    starts = _offsets(text)
    inserts = []
    depth = 0
    for n, tok in enumerate(_tokens(text)):
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        if depth > 0 and tok.type == tokenize.OP and tok.string in ("(", "[", "{", ","):
            row, col = tok.end
            line = tok.line
            lead = line[: len(line) - len(line.lstrip())]
            inserts.append((starts[row - 1] + col, f"  # inner {n}\n{lead}        "))
    return _insert(text, inserts)


def _simple(stmt: ast.stmt) -> bool:
    return (
        not isinstance(
            stmt,
            (
                ast.FunctionDef,
                ast.AsyncFunctionDef,
                ast.ClassDef,
                ast.If,
                ast.For,
                ast.AsyncFor,
                ast.While,
                ast.With,
                ast.AsyncWith,
                ast.Try,
                ast.Match,
            ),
        )
        and stmt.lineno == stmt.end_lineno
    )


def _joinable_pairs(text: str) -> list[tuple[ast.stmt, ast.stmt]]:
    tree = ast.parse(text)
    commented = {t.start[0] for t in _tokens(text) if t.type == tokenize.COMMENT}
    lines = text.splitlines()
    pairs = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for first, second in itertools.pairwise(block):
                if (
                    isinstance(first, ast.stmt)
                    and isinstance(second, ast.stmt)
                    and _simple(first)
                    and _simple(second)
                    and second.lineno == first.end_lineno + 1
                    and first.lineno not in commented
                    and not lines[first.lineno - 1].rstrip().endswith((";", "\\"))
                ):
                    pairs.append((first, second))
    return pairs


def semicolons(text: str, every: bool = True) -> str:
    """Join consecutive one-line simple statements of a block with `; ` (all of them, or
    only pairs)."""
    pairs = _joinable_pairs(text)
    if not every:
        used: set[int] = set()
        kept = []
        for first, second in sorted(pairs, key=lambda p: p[0].lineno):
            if first.lineno in used or second.lineno in used:
                continue
            used.update((first.lineno, second.lineno))
            kept.append((first, second))
        pairs = kept
    lines = text.splitlines(keepends=True)
    join_after = {first.end_lineno for first, _ in pairs}
    out = []
    carry = False
    for number, line in enumerate(lines, start=1):
        piece = line.lstrip() if carry else line
        if number in join_after:
            out.append(piece.rstrip("\r\n") + "; ")
            carry = True
        else:
            out.append(piece)
            carry = False
    return "".join(out)


def tabs(text: str) -> str:
    out = []
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip(" ")
        spaces = len(line) - len(stripped)
        out.append("\t" * (spaces // 4) + " " * (spaces % 4) + stripped)
    result = "".join(out)
    try:  # continuation lines may not like it; keep only if the tree is unchanged
        same = ast.dump(ast.parse(result)) == ast.dump(ast.parse(text))
    except SyntaxError:
        same = False
    return result if same else text


def blank_lines(text: str) -> str:
    starts = _offsets(text)
    inserts = []
    for tok in _tokens(text):
        if tok.type == tokenize.NEWLINE:
            row, col = tok.end
            inserts.append((starts[row - 1] + col if col else starts[row], "\n"))
    return _insert(text, inserts)


def comment_lines(text: str) -> str:
    tree = ast.parse(text)
    rows = sorted(
        {
            n.lineno
            for n in ast.walk(tree)
            if isinstance(n, ast.stmt) and not getattr(n, "decorator_list", None)
        }
    )
    lines = text.splitlines(keepends=True)
    for row in reversed(rows):
        line = lines[row - 1]
        indent = line[: len(line) - len(line.lstrip())]
        if line.lstrip().startswith(("else", "elif", "except", "finally")):
            continue
        lines.insert(row - 1, f"{indent}# about line {row}\n")
    return "".join(lines)


def no_final_newline(text: str) -> str:
    return text.rstrip("\n")


def crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def cr(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r")


COOKIE = "# -*- coding: latin-1 -*-\n# r\xe9sum\xe9 du mod\xe8le\n"

TEXT_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "plain": lambda t: t,
    "trailing-comments": trailing_comments,
    "comments-inside-brackets": comments_inside_brackets,
    "semicolons": semicolons,
    "semicolon-pairs": lambda t: semicolons(t, every=False),
    "tabs": tabs,
    "blank-lines": blank_lines,
    "comment-lines": comment_lines,
    "no-final-newline": no_final_newline,
}
ENDINGS: dict[str, Callable[[str], str]] = {"lf": lambda t: t, "crlf": crlf, "cr": cr}


def variants(name: str, code: str) -> list[Variant]:
    found: dict[bytes, Variant] = {}
    for tname, transform in TEXT_TRANSFORMS.items():
        try:
            text = transform(code)
            if ast.dump(ast.parse(text)) != ast.dump(ast.parse(code)):
                continue  # not a pure formatting change (should not happen)
        except (SyntaxError, tokenize.TokenError, ValueError):
            continue
        for ename, ending in ENDINGS.items():
            if ename != "lf" and tname not in (
                "plain",
                "trailing-comments",
                "semicolons",
                "comments-inside-brackets",
            ):
                continue
            body = ending(text)
            label = f"{name}/{tname}" + ("" if ename == "lf" else f"+{ename}")
            candidates = [Variant(label, body.encode("utf-8"))]
            if tname in ("plain", "trailing-comments", "comments-inside-brackets") or ename != "lf":
                candidates.append(Variant(label + "+bom", b"\xef\xbb\xbf" + body.encode("utf-8"), bom=True))
            if ename == "lf" and tname in ("plain", "semicolons", "trailing-comments"):
                candidates.append(Variant(label + "+latin1", (COOKIE + body).encode("latin-1"), "latin-1"))
            for variant in candidates:
                found.setdefault(variant.data, variant)
    return list(found.values())


# -- the oracle ----------------------------------------------------------------------------------
def comments(text: str) -> Counter:
    try:
        return Counter(
            t.string
            for t in _tokens(text.replace("\r\n", "\n").replace("\r", "\n"))
            if t.type == tokenize.COMMENT
        )
    except (tokenize.TokenError, SyntaxError):
        return Counter(re.findall(r"#[^\r\n]*", text))


def _endings(data: bytes) -> set[str]:
    kinds = set()
    if b"\r\n" in data:
        kinds.add("crlf")
    if re.search(rb"\r(?!\n)", data):
        kinds.add("cr")
    if re.search(rb"(?<!\r)\n", data):
        kinds.add("lf")
    return kinds


def tree_of(data: bytes | str) -> ast.Module:
    return ast.parse(data)


def _mixed(fixed: object, reference: object, original: object) -> bool:
    """Is every part of `fixed` either as in `reference` (the plain example's fix) or as in
    `original`? Compared field by field, statement by statement, so that a fix that is not
    offered in one formatting (`a = 1; w += 1` shares a line) may be missing while the
    others are applied."""
    if isinstance(fixed, ast.AST):
        if (
            ast.dump(fixed) in (ast.dump(reference), ast.dump(original))
            if isinstance(reference, ast.AST) and isinstance(original, ast.AST)
            else False
        ):
            return True
        if type(fixed) is not type(reference) or type(fixed) is not type(original):
            return False
        return all(
            _mixed(getattr(fixed, f), getattr(reference, f, None), getattr(original, f, None))
            for f in fixed._fields
        )
    if isinstance(fixed, list):
        if not isinstance(reference, list) or not isinstance(original, list):
            return False
        if len(fixed) == len(reference) == len(original):
            return all(_mixed(a, b, c) for a, b, c in zip(fixed, reference, original))
        return False
    return fixed in (reference, original)


# (example, transform) -> why its fix legitimately differs from the plain example's fix
ALTERNATE_FIXES = {
    ("GG103-0", "comments-inside-brackets"): (
        "keeps `requires_grad=True` inside `nn.Parameter(...)` instead of removing it: the rule "
        "does not rewrite an argument list that holds comments; `nn.Parameter` requires grad "
        "either way"
    ),
    ("GG103-9", "comments-inside-brackets"): "as GG103-0: the same `requires_grad=True` leaf, stored twice",
    ("GG101-3", "semicolons"): (
        "the convert-to-autograd.Function fix does not rewrite `;` lines, so the rule offers "
        "its other fix: deleting the `backward` method that autograd never calls"
    ),
    ("GG101-4", "semicolons"): "as GG101-3: the conversion does not rewrite `;` lines (two outputs here)",
    (
        "GG101-4",
        "semicolon-pairs",
    ): "as GG101-3: the conversion does not rewrite `;` lines (two outputs here)",
}


def alternate_fix(variant_name: str) -> str | None:
    example, _, transform = variant_name.partition("/")
    return ALTERNATE_FIXES.get((example, transform.split("+")[0]))


def problems(original: Variant, fixed: bytes, references: list[ast.Module]) -> list[str]:
    """What is wrong with `fixed` (the bytes --fix left) for this variant; `references`: the
    plain example fixed (with the same fixes allowed)."""
    found = []
    try:
        compile(fixed, "<fixed>", "exec", dont_inherit=True)
        tree = tree_of(fixed)
    except (SyntaxError, ValueError) as exc:
        return [f"does not compile: {exc}"]
    if original.bom != fixed.startswith(b"\xef\xbb\xbf"):
        found.append("byte order mark " + ("dropped" if original.bom else "added"))
    try:
        text = (fixed[3:] if original.bom else fixed).decode(original.encoding)
    except UnicodeDecodeError:
        return found + [f"no longer {original.encoding}"]
    if original.encoding != "utf-8" and not text.startswith(COOKIE.splitlines()[0]):
        found.append("coding cookie lost")
    before_endings, after_endings = _endings(original.data), _endings(fixed)
    if len(before_endings) == 1 and not after_endings <= before_endings:
        found.append(f"line endings {sorted(before_endings)} became {sorted(after_endings)}")
    missing = comments(original.text) - comments(text)
    if missing:
        found.append(f"comments dropped: {sorted(missing)[:3]}")
    before = tree_of(original.data)
    if not any(_mixed(tree, reference, before) for reference in references) and not alternate_fix(
        original.name
    ):
        found.append("the code differs from the fix of the plain example (something else changed)")
    return found
