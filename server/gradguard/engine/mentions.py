"""Which top-level statements of a file mention a name, found by a plain substring search.

`Semantics._find_call_sites` walks only the statements whose text names the function it looks
for. Joining each statement's lines and searching them with a `\\bname\\b` regular expression
cost ~5 ms per name on a 5,000-line file (a pattern starting with `\\b` gets no literal-prefix
scan), several times per edit in the language server. Here the file's text is joined once and
searched with `str.find` (a fast substring scan); each hit maps to its line, then to the
statements whose lines hold it.

The answer may include a statement that does not really use the name (a hit in a string or a
comment, or next to a character that continues an identifier in a way `isalnum` does not
see): callers walk the statements they get, so an extra one costs time, never a wrong
answer. It never leaves out a statement whose text holds the name as a whole word.
"""

from __future__ import annotations

import ast
import bisect
import itertools

from gradguard.engine.index import statement_start_line


class Mentions:
    """The statements of `body` (top-level statements of a module whose text is `lines`)
    whose text mentions a name."""

    def __init__(self, body: list[ast.stmt], lines: list[str]) -> None:
        self._body = body
        self._text = "".join(lines)
        # offset of the first character of each line (1-based line n starts at _offsets[n - 1])
        self._offsets = list(itertools.accumulate((len(line) for line in lines), initial=0))
        self._starts = [statement_start_line(stmt) for stmt in body]
        self._ends = [stmt.end_lineno or stmt.lineno for stmt in body]

    def statements_naming(self, name: str) -> list[ast.stmt]:
        """The statements whose lines hold `name` as a whole word, in the order of `body`."""
        text = self._text
        found: set[int] = set()
        size = len(name)
        at = text.find(name)
        while at >= 0:
            end = at + size
            if not _continues(text, at - 1) and not _continues(text, end):
                line = bisect.bisect_right(self._offsets, at)  # 1-based line of the hit
                index = bisect.bisect_right(self._starts, line) - 1
                # statements sharing the line (`a = f(1); b = f(2)`) all hold it
                while index >= 0 and self._ends[index] >= line:
                    found.add(index)
                    index -= 1
            at = text.find(name, at + 1)
        return [self._body[i] for i in sorted(found)]


def _continues(text: str, index: int) -> bool:
    """Whether the character at `index` would make a hit part of a longer identifier."""
    if index < 0 or index >= len(text):
        return False
    char = text[index]
    return char == "_" or char.isalnum()
