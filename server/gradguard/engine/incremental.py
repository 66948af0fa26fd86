"""Incremental parsing for editors: re-parse only the top-level blocks an edit touched.

`IncrementalParser.parse(text)` returns exactly what `ast.parse(text)` returns (same
`ast.dump(..., include_attributes=True)`), but after the first call it keeps the last
good parse split into top-level *blocks* (block i = the lines from statement i's first
line, decorators included, up to the first line of statement i+1; statements sharing a
line with `;` share a block) and, for a new text:

* finds the changed lines by comparing the old and new lines from both ends,
* re-parses only the blocks those lines touch, as a standalone module prefixed with
  blank lines so that line numbers come out right (measured cheaper than
  `ast.increment_lineno`: ~0.1 ms for 5,000 blank lines, and no Python-level walk),
* reuses the AST of every block before the edit as is, and
* when the edit changed the number of lines, re-parses the blocks after the edit in one
  `ast.parse` call at their new position instead of shifting their nodes in place.
  Nodes are never mutated after they were returned: rules keep nodes in lazy fixes
  (`Fix` edits are computed on demand from node positions), so a node shifted behind
  their back would make an earlier finding's fix land on the wrong line. Unless the
  caller passes `on_move` (the language server): then those blocks are moved in place
  (`lineno`/`end_lineno` of each of their nodes: ~4x cheaper than parsing them, the
  largest cost of an Enter in a large file), once `on_move()` told the holders of lazy
  fixes (`Analyzer.forget_lazy_fixes`) to let them go and agreed (not when that would
  cost more checks than the parse it saves).

Whenever the re-parsed region does not parse on its own (an unclosed bracket, a
decorator whose function follows, an `else:` that now belongs to the block above, a
`from __future__` import...) it parses the region together with everything after it
(the blocks before it are complete top-level statements, so the file parses iff that rest
does, see `_from_region_on`: a line being typed does not cost a parse of the whole file
to find out that it does not parse); where that argument does not hold it falls back to
a full `ast.parse`; the result is then identical by construction.

Why a region that parses alone parses the same inside the file: every block starts
with a top-level statement at column 0, so the tokenizer is at a clean line start with
no open bracket, string or continuation at each block boundary; a region that parses
alone ends in that state too, and no top-level statement needs a particular follower
that could start the next block (`else`, `except`, `case`... cannot start a module).
One tokenizer state does survive the end of a module: a trailing backslash; a region
whose last line ends with one is never parsed alone.
The property test in tests/lsp/test_incremental.py checks this against `ast.parse`.

The parser also reports the line mapping between the previous text and the new one
(`LineDelta`), which the language server uses to move the last good diagnostics while
the file does not parse.
"""

from __future__ import annotations

import ast
import gc
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from gradguard.engine.source import split_lines

_PARSE_ERRORS = (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError)


def _parse(text: str, path: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(text, filename=path or "<unknown>")


def _start_line(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", None)
    if decorators:
        return min(stmt.lineno, min(d.lineno for d in decorators))
    return stmt.lineno


@dataclass(frozen=True)
class LineDelta:
    """How the lines of one text map to the lines of the next one.

    Lines 1..prefix are unchanged; the old lines old_start..old_end (1-based, inclusive,
    maybe empty) were replaced by new lines old_start..new_end; everything after moved
    by `delta` lines."""

    prefix: int
    old_end: int
    new_end: int

    @property
    def start(self) -> int:
        return self.prefix + 1

    @property
    def delta(self) -> int:
        return self.new_end - self.old_end

    def map_line(self, line: int) -> int | None:
        """New line of an old line; None when the line was inside the changed region."""
        if line <= self.prefix:
            return line
        if line > self.old_end:
            return line + self.delta
        return None

    @staticmethod
    def between(old: list[str], new: list[str]) -> LineDelta:
        n_old, n_new = len(old), len(new)
        limit = min(n_old, n_new)
        prefix = 0
        # compare in chunks first: list slices compare in C
        step = 256
        while prefix + step <= limit and old[prefix : prefix + step] == new[prefix : prefix + step]:
            prefix += step
        while prefix < limit and old[prefix] == new[prefix]:
            prefix += 1
        suffix = 0
        limit -= prefix
        while (
            suffix + step <= limit
            and old[n_old - suffix - step : n_old - suffix] == new[n_new - suffix - step : n_new - suffix]
        ):
            suffix += step
        while suffix < limit and old[n_old - suffix - 1] == new[n_new - suffix - 1]:
            suffix += 1
        return LineDelta(prefix, n_old - suffix, n_new - suffix)


class _Block:
    __slots__ = ("nodes", "start", "stmts")

    def __init__(self, start: int, stmts: list[ast.stmt], nodes: list[ast.AST] | None = None) -> None:
        self.start = start  # first line of the block's span (1-based)
        self.stmts = stmts
        self.nodes = nodes  # its nodes that have a position, once it has been moved (see _move)


def _group(stmts: list[ast.stmt], first_start: int | None) -> list[_Block]:
    """Top-level statements -> blocks; `first_start` is the span start of the first block."""
    blocks: list[_Block] = []
    last_end = 0
    for stmt in stmts:
        start = _start_line(stmt)
        if blocks and start <= last_end:  # `a = 1; b = 2` share a line: one block
            blocks[-1].stmts.append(stmt)
        else:
            blocks.append(_Block(start, [stmt]))
        last_end = max(last_end, stmt.end_lineno or stmt.lineno)
    if blocks and first_start is not None:
        blocks[0].start = first_start
    return blocks


@dataclass
class ParseStats:
    mode: str = "none"  # "full", "incremental", "unchanged"
    reparsed_lines: int = 0
    fallback_reason: str = ""


class IncrementalParser:
    """Keeps the last good parse of one document; see the module docstring."""

    def __init__(self, path: str = "", on_move: Callable[[], bool] | None = None) -> None:
        self.path = path
        # Set (by the language server): the blocks below an edit that added or removed lines are
        # moved in place instead of parsed again, if `on_move()`, called first, returns True:
        # whoever computes positions from earlier nodes later (lazy fixes) has let go of them.
        # Unset: nodes are never mutated after they were returned (see the module docstring).
        self.on_move = on_move
        self._lines: list[str] | None = None  # lines of the last good parse
        self._blocks: list[_Block] = []
        self._tree: ast.Module | None = None
        self.stats = ParseStats()

    @property
    def last_good_lines(self) -> list[str] | None:
        return self._lines

    def reset(self) -> None:
        self._lines = None
        self._blocks = []
        self._tree = None

    def parse(self, text: str, lines: list[str] | None = None) -> ast.Module:
        """Like `ast.parse(text)`; raises what it raises. `lines` may pass the text
        already split with `split_lines` (it is not modified)."""
        if lines is None:
            lines = split_lines(text)
        old = self._lines
        if old is None or self._tree is None:
            return self._full(text, lines, "first parse")
        change = LineDelta.between(old, lines)
        if change.prefix == len(old) == len(lines):
            self.stats = ParseStats("unchanged")
            return self._tree
        # A parse allocates tens of thousands of long-lived nodes: without a pause, the cyclic
        # garbage collector runs over the whole heap several times for nothing (~2x the time).
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            try:
                tree = self._incremental(lines, change)
            except _Fallback as reason:
                return self._full(text, lines, str(reason))
            return tree
        finally:
            if paused:
                gc.enable()

    # -- internals ---------------------------------------------------------------------------
    def _full(self, text: str, lines: list[str], reason: str) -> ast.Module:
        tree = _parse(text, self.path)  # raises; the last good state is kept then
        self._tree = tree
        self._lines = list(lines)
        self._blocks = _group(tree.body, 1)
        self.stats = ParseStats("full", len(lines), reason)
        return tree

    def _incremental(self, lines: list[str], change: LineDelta) -> ast.Module:
        blocks = self._blocks
        old_lines = self._lines
        assert old_lines is not None
        n_old = len(old_lines)
        if not blocks:
            raise _Fallback("empty module")
        # old changed lines: change.start .. change.old_end (may be empty: pure insertion)
        lo = change.start
        hi = change.old_end
        if hi < lo:  # insertion between lines prefix and prefix+1: extend the block above
            lo = hi = max(1, change.prefix)
        first = _block_index(blocks, lo)
        last = _block_index(blocks, hi)
        region_start = blocks[first].start
        old_region_end = (blocks[last + 1].start - 1) if last + 1 < len(blocks) else n_old
        delta = change.delta
        new_region_end = old_region_end + delta
        region_text = "".join(lines[region_start - 1 : new_region_end])
        if region_start > 1 and region_text.startswith("\ufeff"):
            raise _Fallback("byte order mark inside the file")
        if region_start > 1 and "__future__" in region_text:
            raise _Fallback("__future__ import in the edited region")
        if region_start > 1 and lines[region_start - 2].rstrip("\r\n").endswith("\\"):
            raise _Fallback("line continuation into the edited region")
        if (
            new_region_end < len(lines)
            and new_region_end >= region_start
            and (lines[new_region_end - 1].rstrip("\r\n").endswith("\\"))
        ):
            # a backslash at the end of a module is accepted alone, but joins the next line here
            raise _Fallback("line continuation out of the edited region")
        tail = blocks[last + 1 :]
        try:
            region = _parse("\n" * (region_start - 1) + region_text, self.path)
        except _PARSE_ERRORS as exc:
            if not tail:
                if _starts_clean(lines, region_start):
                    raise  # the file is the prefix and this region: it does not parse either
                raise _Fallback(f"region does not parse alone: {exc.__class__.__name__}") from None
            return self._from_region_on(lines, first, region_start, exc)
        new_blocks = blocks[:first]
        region_blocks = _group(region.body, region_start)
        new_blocks.extend(region_blocks)
        reparsed = new_region_end - region_start + 1
        if tail:
            if delta and self.on_move is not None and self.on_move():
                moved = self._move(tail, delta)  # the blocks after the edit moved: so do their nodes
            elif delta:
                # the blocks after the edit moved: parse them again at their new place
                tail_start = tail[0].start + delta
                tail_text = "".join(lines[tail_start - 1 :])
                try:
                    tail_tree = _parse("\n" * (tail_start - 1) + tail_text, self.path)
                except _PARSE_ERRORS as exc:  # pragma: no cover - it parsed before
                    raise _Fallback(f"tail does not parse: {exc.__class__.__name__}") from None
                moved = _group(tail_tree.body, tail_start)
                reparsed += len(lines) - tail_start + 1
            else:
                moved = [_Block(b.start, b.stmts, b.nodes) for b in tail]
            new_blocks.extend(moved)
        if new_blocks:
            new_blocks[0].start = 1
        body = [stmt for block in new_blocks for stmt in block.stmts]
        tree = ast.Module(body=body, type_ignores=[])
        self._tree = tree
        self._lines = list(lines)
        self._blocks = new_blocks
        self.stats = ParseStats("incremental", reparsed)
        return tree

    def _move(self, tail: list[_Block], delta: int) -> list[_Block]:
        """The blocks after an edit, moved `delta` lines in place: every node's `lineno` and
        `end_lineno` (its columns do not change: blocks start at column 0). Cheaper than parsing
        them again (~4x for the lines below an Enter in a 5,000-line file); the first move of a
        block collects its nodes once."""
        moved = []
        for block in tail:
            nodes = block.nodes
            if nodes is None:
                nodes = [n for stmt in block.stmts for n in ast.walk(stmt) if hasattr(n, "end_lineno")]
            for node in nodes:
                node.lineno += delta  # type: ignore[attr-defined]
                if node.end_lineno is not None:  # type: ignore[attr-defined]
                    node.end_lineno += delta  # type: ignore[attr-defined]
            moved.append(_Block(block.start + delta, block.stmts, nodes))
        return moved

    def _from_region_on(self, lines: list[str], first: int, region_start: int, exc: Exception) -> ast.Module:
        """The edited region does not parse alone (a line being typed, a decorator whose
        function follows...): parse it together with everything after it, not the whole file.
        The blocks before it end with a complete top-level statement, so the file parses iff
        this rest does, as long as the rest's first statement line starts at column 0 and does
        not continue a statement above (`else:`, `except:`...); otherwise the whole file is parsed."""
        rest_text = "".join(lines[region_start - 1 :])
        if "__future__" in rest_text or not _starts_clean(lines, region_start):
            raise _Fallback(f"region does not parse alone: {exc.__class__.__name__}")
        rest = _parse("\n" * (region_start - 1) + rest_text, self.path)  # raises: the file does not parse
        new_blocks = self._blocks[:first]
        new_blocks.extend(_group(rest.body, region_start))
        if new_blocks:
            new_blocks[0].start = 1
        tree = ast.Module(body=[stmt for block in new_blocks for stmt in block.stmts], type_ignores=[])
        self._tree = tree
        self._lines = list(lines)
        self._blocks = new_blocks
        self.stats = ParseStats("incremental", len(lines) - region_start + 1)
        return tree


class _Fallback(Exception):
    pass


_CONTINUATIONS = ("else", "elif", "except", "finally")
_WORD = re.compile(r"\w+")


def _starts_clean(lines: list[str], start: int) -> bool:
    """Whether the first line from `start` (1-based) with code on it starts at column 0 with
    something other than a continuation of a compound statement above (`else`, `except`...):
    then it cannot continue the complete top-level statements before `start`."""
    for line in lines[start - 1 :]:
        code = line.strip()
        if not code or code.startswith("#"):
            continue
        if line[0] in " \t\f":
            return False
        word = _WORD.match(code)
        return word is None or word.group() not in _CONTINUATIONS
    return True  # nothing but blank lines and comments


def _block_index(blocks: list[_Block], line: int) -> int:
    """Index of the block whose span holds `line` (binary search on the starts)."""
    lo, hi = 0, len(blocks) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if blocks[mid].start <= line:
            lo = mid
        else:
            hi = mid - 1
    return lo
