"""What every fix must keep, whichever rule made it: the file's line endings and its comments.

`guard_edits(source, edits, cache)` is applied to each fix before `apply_fixes` applies it
(`gradguard check --fix`, the editor's "fix all"); a client applying one fix can call it too:

* new text gets the file's line ending (a fix built with "\\n" in a CRLF or a lone-CR
  file would otherwise mix endings);
* a comment inside a replaced or deleted range that the new text does not carry along
  is kept on a line of its own just before the statement (the logical line) where the
  edit starts, at that line's indentation. Where no such place exists, the fix is
  dropped rather than applied without the comment.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import replace

from gradguard.engine.finding import TextEdit
from gradguard.engine.source import SourceFile

_BARE_LF = re.compile(r"(?<!\r)\n")


def normalize_newlines(new_text: str, newline: str) -> str:
    if "\n" not in new_text and "\r" not in new_text:
        return new_text
    if newline == "\r\n":
        return _BARE_LF.sub("\r\n", new_text)
    if newline == "\r":
        return new_text.replace("\r\n", "\r").replace("\n", "\r")
    return new_text


class _Comments:
    """Comment tokens of a text (with offsets) and the lines where a new line may be inserted
    (not inside brackets, strings or after a backslash continuation)."""

    def __init__(self, source: SourceFile) -> None:
        self.ok = True
        self.comments: list[tuple[int, int, str]] = []  # (start offset, end offset, text)
        self.unsafe_rows: set[int] = set()
        lines = [line.rstrip("\r\n") + "\n" for line in source.lines]
        if lines and lines[0].startswith("\ufeff"):
            lines[0] = " " + lines[0][1:]  # same length; tokenize rejects a BOM in a str
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO("".join(lines)).readline))
        except (tokenize.TokenError, SyntaxError):
            self.ok = False
            return
        depth = 0
        last_row, last_type = 1, tokenize.NEWLINE
        breaks = (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)
        for tok in tokens:
            (row, col), (end_row, end_col) = tok.start, tok.end
            if tok.type == tokenize.COMMENT:
                self.comments.append(
                    (source.offset(row, col + 1), source.offset(end_row, end_col + 1), tok.string)
                )
            elif tok.type == tokenize.OP:
                if tok.string in "([{":
                    depth += 1
                elif tok.string in ")]}":
                    depth = max(0, depth - 1)
            if end_row > row:  # a multi-line string
                self.unsafe_rows.update(range(row + 1, end_row + 1))
            if tok.type == tokenize.NL and depth > 0:
                self.unsafe_rows.add(row + 1)  # a line break inside brackets
            if row > last_row and last_type not in breaks and tok.type != tokenize.ENDMARKER:
                self.unsafe_rows.update(range(last_row + 1, row + 1))  # backslash continuation
            last_row, last_type = end_row, tok.type

    def anchor(self, row: int) -> int | None:
        while row >= 1 and row in self.unsafe_rows:
            row -= 1
        return row if row >= 1 else None


def guard_edits(source: SourceFile, edits: list[TextEdit], cache: dict) -> list[TextEdit] | None:
    """The edits with line endings normalised and dropped comments kept (see the module
    docstring); None when a comment cannot be kept. `cache` holds the comment index of
    `source` between calls."""
    newline = source.newline()
    edits = [
        e
        if normalize_newlines(e.new_text, newline) == e.new_text
        else replace(e, new_text=normalize_newlines(e.new_text, newline))
        for e in edits
    ]
    spans = []
    for edit in edits:
        start = source.offset(edit.start_line, edit.start_column)
        end = source.offset(edit.end_line, edit.end_column)
        spans.append((start, end))
    if not any("#" in source.text[s:e] for s, e in spans):
        return edits
    index = cache.get("comments")
    if index is None:
        index = cache["comments"] = _Comments(source)
    if not index.ok:
        return None  # cannot tell what the edit removes: do not risk a comment
    carried = "".join(e.new_text for e in edits)
    missing: dict[int, list[str]] = {}  # anchor row -> comments to put there
    ends: dict[int, int] = {}  # anchor row -> last row of the edit that dropped them
    for edit, (start, end) in zip(edits, spans):
        for c_start, c_end, text in index.comments:
            if c_end <= start or c_start >= end:
                continue
            at = carried.find(text)
            if at >= 0:  # carried along by the new text
                carried = carried[:at] + carried[at + len(text) :]
                continue
            row = index.anchor(edit.start_line)
            if row is None:
                return None
            missing.setdefault(row, []).append(text)
            ends.setdefault(row, edit.end_line)
    if not missing:
        return edits
    result = list(edits)
    for row, texts in missing.items():
        # the indentation of the code there (not of a blank line the edit starts with)
        indent = next(
            (source.indentation(r) for r in range(row, ends[row] + 1) if source.line_text(r).strip()),
            source.indentation(row),
        )
        block = "".join(f"{indent}{text}{newline}" for text in texts)
        for i, edit in enumerate(result):
            if (edit.start_line, edit.start_column) == (row, 1) == (edit.end_line, edit.end_column):
                result[i] = replace(edit, new_text=block + edit.new_text)  # an insertion at the same place
                break
        else:
            result.append(TextEdit(row, 1, row, 1, block))
    return result
