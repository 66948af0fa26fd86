"""Notebook code cells as Python: what the CLI and the language server check of a cell."""

from __future__ import annotations

import re

from gradguard.engine.source import split_lines

_MAGIC = re.compile(r"^\s*(%|!)")
_CELL_MAGIC_KEEP = ("%%time", "%%timeit", "%%capture")


def _content(line: str) -> str:
    """A line without its line ending."""
    if line.endswith("\r\n"):
        return line[:-2]
    if line.endswith(("\n", "\r")):
        return line[:-1]
    return line


def cell_python(text: str) -> str:
    """A code cell's text made parseable: IPython magics (`%x`, `!cmd`) become comments of
    the same length, and a cell magic other than %%time/%%timeit/%%capture blanks the cell
    (it is not Python). Line and column positions are kept."""
    lines = split_lines(text)
    if not lines:
        return ""
    if lines[0].lstrip().startswith("%%"):
        keep = lines[0].lstrip().startswith(_CELL_MAGIC_KEEP)
        out = ["#" + _content(lines[0])[1:] + lines[0][len(_content(lines[0])) :]]
        for line in lines[1:]:
            body = _content(line)
            out.append(
                line if keep else "#" * min(1, len(body)) + " " * max(0, len(body) - 1) + line[len(body) :]
            )
        return "".join(out)
    out = []
    for line in lines:
        body = _content(line)
        if _MAGIC.match(body):
            indent = len(body) - len(body.lstrip())
            out.append(body[:indent] + "#" + body[indent + 1 :] + line[len(body) :])
        else:
            out.append(line)
    return "".join(out)
