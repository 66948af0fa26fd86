"""Source text with the position conversions the engine needs.

`ast` reports columns in UTF-8 bytes, findings use code points, LSP uses UTF-16
code units. Lines here are 1-based.
"""

from __future__ import annotations

import ast
import re

_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split only at \n, \r\n and \r (as ast and LSP do;
    str.splitlines would also split at form feeds and other separators)."""
    if "\r" not in text:
        parts = text.split("\n")
        lines = [part + "\n" for part in parts[:-1]]
        if parts[-1]:
            lines.append(parts[-1])
        return lines
    return _LINE_RE.findall(text)


class SourceFile:
    __slots__ = ("path", "text", "lines", "_line_starts")

    def __init__(self, text: str, path: str = "") -> None:
        self.path = path
        self.text = text
        # endings kept so that joining lines gives back the text exactly
        self.lines: list[str] = split_lines(text)
        self._line_starts: list[int] | None = None

    def line_text(self, line: int) -> str:
        if 1 <= line <= len(self.lines):
            return self.lines[line - 1]
        return ""

    def char_column(self, line: int, byte_col: int) -> int:
        """0-based UTF-8 byte column (from ast) -> 0-based code-point column."""
        text = self.line_text(line)
        if text.isascii():
            return byte_col
        return len(text.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))

    def node_range(self, node: ast.AST) -> tuple[int, int, int, int]:
        """(line, column, end_line, end_column), 1-based, code-point columns."""
        line = node.lineno
        end_line = node.end_lineno or line
        col = self.char_column(line, node.col_offset) + 1
        end_col = self.char_column(end_line, node.end_col_offset or node.col_offset) + 1
        return line, col, end_line, end_col

    def segment(self, node: ast.AST) -> str:
        """The exact source text of a node (code-point based)."""
        line, col, end_line, end_col = self.node_range(node)
        return self.text_between(line, col, end_line, end_col)

    def text_between(self, line: int, col: int, end_line: int, end_col: int) -> str:
        if line == end_line:
            return self.line_text(line)[col - 1 : end_col - 1]
        parts = [self.line_text(line)[col - 1 :]]
        parts.extend(self.lines[line : end_line - 1])
        parts.append(self.line_text(end_line)[: end_col - 1])
        return "".join(parts)

    def offset(self, line: int, col: int) -> int:
        """1-based line and code-point column -> 0-based offset into text."""
        if self._line_starts is None:
            starts = [0]
            total = 0
            for text in self.lines:
                total += len(text)
                starts.append(total)
            self._line_starts = starts
        starts = self._line_starts
        if line - 1 >= len(starts):
            return len(self.text)
        return starts[line - 1] + col - 1

    def indentation(self, line: int) -> str:
        text = self.line_text(line)
        return text[: len(text) - len(text.lstrip(" \t"))]

    def newline(self) -> str:
        """The line ending new lines get: the first line's (\\n, \\r\\n or a lone \\r)."""
        first = self.lines[0] if self.lines else "\n"
        if first.endswith("\r\n"):
            return "\r\n"
        if first.endswith("\r"):
            return "\r"
        return "\n"


def utf16_column(line_text: str, char_col: int) -> int:
    """0-based code-point column -> 0-based UTF-16 column."""
    prefix = line_text[:char_col]
    if prefix.isascii():
        return len(prefix)
    return len(prefix.encode("utf-16-le")) // 2


def char_column_from_utf16(line_text: str, utf16_col: int) -> int:
    """0-based UTF-16 column -> 0-based code-point column (clamped to the line)."""
    if line_text.isascii():
        return max(0, min(utf16_col, len(line_text)))
    units = 0
    for index, ch in enumerate(line_text):
        if units >= utf16_col:
            return index
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line_text)


def apply_edits(text: str, edits: list) -> str:
    """Apply non-overlapping TextEdits to text. Raises ValueError on overlap."""
    source = SourceFile(text)
    spans = []
    for edit in edits:
        start = source.offset(edit.start_line, edit.start_column)
        end = source.offset(edit.end_line, edit.end_column)
        if end < start:
            raise ValueError(f"edit ends before it starts: {edit}")
        spans.append((start, end, edit.new_text))
    spans.sort(key=lambda s: (s[0], s[1]))
    for (s1, e1, _), (s2, e2, _) in zip(spans, spans[1:]):
        if s2 < e1 or (s2 == e1 == s1 == e2):
            raise ValueError("overlapping edits")
    out = []
    cursor = 0
    for start, end, new_text in spans:
        out.append(text[cursor:start])
        out.append(new_text)
        cursor = end
    out.append(text[cursor:])
    return "".join(out)
