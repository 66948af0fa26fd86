"""Open documents and notebooks, kept as lists of lines.

pygls's own `TextDocument` splits lines with `str.splitlines`, which also breaks at form
feeds, U+2028 and other separators where LSP (and Python's parser) do not, and it
re-splits the whole document on every change. Here lines are split only at \\n, \\r\\n
and \\r, and an incremental change re-splits only the lines it touches.

Positions from the client are in the negotiated encoding (UTF-16 by default); invalid
ones are clamped the way VS Code clamps them: a column past the end of a line means
the end of that line, a line past the end of the document means the end of the document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

from gradguard.engine.notebook import cell_python as _cell_python  # the name the server's modules use
from gradguard.engine.source import split_lines

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"


def content_of(line: str) -> str:
    """A line without its line ending."""
    if line.endswith("\r\n"):
        return line[:-2]
    if line.endswith(("\n", "\r")):
        return line[:-1]
    return line


def to_char_column(content: str, column: int, encoding: str = UTF16) -> int:
    """A client column (in `encoding` units) -> a code-point column, clamped to the line.
    A column inside a character (half a surrogate pair) rounds up to the character's end."""
    if column <= 0:
        return 0
    if content.isascii() or encoding == UTF32:
        return min(column, len(content))
    units = 0
    for index, ch in enumerate(content):
        if units >= column:
            return index
        code = ord(ch)
        if encoding == UTF16:
            units += 2 if code > 0xFFFF else 1
        else:
            units += 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
    return len(content)


def from_char_column(content: str, column: int, encoding: str = UTF16) -> int:
    """A code-point column -> a client column in `encoding` units."""
    column = max(0, min(column, len(content)))
    prefix = content[:column]
    if prefix.isascii() or encoding == UTF32:
        return column
    if encoding == UTF16:
        return sum(2 if ord(ch) > 0xFFFF else 1 for ch in prefix)
    return sum(
        1 if ord(ch) < 0x80 else 2 if ord(ch) < 0x800 else 3 if ord(ch) < 0x10000 else 4 for ch in prefix
    )


def uri_to_path(uri: str) -> str:
    """file: URIs -> a filesystem path; anything else (untitled:, cells) is kept as is."""
    try:
        parsed = urlparse(uri)
    except ValueError:  # a malformed URI ("file://[x"): not a path
        return uri
    if parsed.scheme == "file":
        path = unquote(parsed.path)
        if re.match(r"^/[A-Za-z]:", path):  # file:///c:/x -> c:/x
            path = path[1:]
        return path
    return uri


class TextDoc:
    """One open text document (or notebook cell)."""

    __slots__ = ("_text", "language_id", "lines", "notebook", "uri", "version")

    def __init__(self, uri: str, text: str, version: int | None, language_id: str = "python") -> None:
        self.uri = uri
        self.version = version
        self.language_id = language_id
        self.lines: list[str] = split_lines(text)
        self._text: str | None = text
        self.notebook: str | None = None  # uri of the notebook this cell belongs to

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self.lines)
        return self._text

    def set_text(self, text: str) -> None:
        self.lines = split_lines(text)
        self._text = text

    def position(self, line: int, character: int, encoding: str = UTF16) -> tuple[int, int]:
        """Client position -> (0-based line index, code-point column), clamped to the text."""
        lines = self.lines
        if line < 0:
            return 0, 0
        if line >= len(lines):
            # the empty line after a final line ending, or past the end: end of document
            if lines and content_of(lines[-1]) == lines[-1]:
                return len(lines) - 1, len(lines[-1])
            return len(lines), 0
        return line, to_char_column(content_of(lines[line]), character, encoding)

    def apply_change(self, change: object, encoding: str = UTF16) -> None:
        """Apply one TextDocumentContentChangeEvent (whole-document or ranged)."""
        text = getattr(change, "text", "")
        change_range = getattr(change, "range", None)
        if change_range is None:
            self.set_text(text)
            return
        start = self.position(change_range.start.line, change_range.start.character, encoding)
        end = self.position(change_range.end.line, change_range.end.character, encoding)
        if end < start:
            start, end = end, start
        self.replace(start, end, text)

    def replace(self, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        """Replace between two (line index, code-point column) positions."""
        lines = self.lines
        (l1, c1), (l2, c2) = start, end
        first = lines[l1] if l1 < len(lines) else ""
        last = lines[l2] if l2 < len(lines) else ""
        chunk = first[:c1] + text + last[c2:]
        lo = l1
        if lo > 0 and chunk.startswith("\n") and lines[lo - 1].endswith("\r"):
            # "\r" + "\n" become one line ending
            lo -= 1
            chunk = lines[lo] + chunk
        hi = min(l2 + 1, len(lines))
        if chunk.endswith("\r") and hi < len(lines) and lines[hi].startswith("\n"):
            chunk += lines[hi]
            hi += 1
        lines[lo:hi] = split_lines(chunk)
        self._text = None

    def client_position(self, line: int, column: int, encoding: str = UTF16) -> tuple[int, int]:
        """(0-based line, code-point column) -> client (line, character), clamped."""
        lines = self.lines
        if line < 0:
            return 0, 0
        if line >= len(lines):
            if not lines:
                return 0, 0
            if content_of(lines[-1]) != lines[-1]:  # text ends with a line ending
                return len(lines), 0
            last = lines[-1]
            return len(lines) - 1, from_char_column(last, len(last), encoding)
        return line, from_char_column(content_of(lines[line]), column, encoding)


@dataclass
class Cell:
    uri: str
    kind: int  # 1 markup, 2 code


@dataclass
class Notebook:
    uri: str
    notebook_type: str
    version: int
    cells: list[Cell] = field(default_factory=list)


@dataclass
class CellSpan:
    uri: str
    start: int  # 0-based first line of the cell in the combined text
    count: int  # number of lines


class DocumentStore:
    """Text documents and notebooks the client has open."""

    def __init__(self) -> None:
        self.docs: dict[str, TextDoc] = {}
        self.notebooks: dict[str, Notebook] = {}

    def open(self, uri: str, text: str, version: int | None, language_id: str = "python") -> TextDoc:
        doc = TextDoc(uri, text, version, language_id)
        self.docs[uri] = doc
        return doc

    def get(self, uri: str) -> TextDoc | None:
        return self.docs.get(uri)

    def close(self, uri: str) -> None:
        self.docs.pop(uri, None)

    # -- notebooks ---------------------------------------------------------------------------
    def notebook_of(self, uri: str) -> Notebook | None:
        doc = self.docs.get(uri)
        if doc is not None and doc.notebook:
            return self.notebooks.get(doc.notebook)
        return self.notebooks.get(uri)

    def combined(self, notebook: Notebook) -> tuple[str, list[CellSpan]]:
        """The notebook's code cells as one program, in order, and where each cell is."""
        parts: list[str] = []
        spans: list[CellSpan] = []
        line = 0
        for cell in notebook.cells:
            if cell.kind != 2:
                continue
            doc = self.docs.get(cell.uri)
            if doc is None or doc.language_id not in ("python", ""):
                continue
            text = _cell_python(doc.text)
            if text and not text.endswith(("\n", "\r")):
                text += "\n"
            count = len(split_lines(text))
            spans.append(CellSpan(cell.uri, line, count))
            parts.append(text)
            line += count
        return "".join(parts), spans


def cell_at(spans: Iterable[CellSpan], line: int) -> CellSpan | None:
    """The cell holding a 0-based line of the combined text."""
    found = None
    for span in spans:
        if span.start <= line < span.start + max(span.count, 1):
            return span
        if span.start <= line:
            found = span
    return found
