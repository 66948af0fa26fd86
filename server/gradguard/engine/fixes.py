"""Building blocks for fixes.

Edits replace exact source ranges, so everything outside them (comments, blank lines,
formatting) is untouched. New code is built as libcst nodes and rendered by libcst,
so what we insert is well-formed; libcst is imported only when a fix is computed.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from gradguard.engine.finding import TextEdit
from gradguard.engine.index import Unit, statement_start_line

if TYPE_CHECKING:  # pragma: no cover
    import libcst


def render(node: "libcst.CSTNode") -> str:
    import libcst

    return libcst.Module(body=[]).code_for_node(node)


def parse_expression(code: str) -> "libcst.BaseExpression":
    import libcst

    return libcst.parse_expression(code)


def torch_name(unit: Unit) -> str | None:
    """The local name bound to the `torch` package, if any (`import torch as th` -> "th")."""
    for local, qualified in unit.module.aliases.items():
        if qualified == "torch":
            return local
    return None


def nn_name(unit: Unit) -> str | None:
    """The local expression for `torch.nn` ("nn", or "torch.nn"), if reachable."""
    for local, qualified in unit.module.aliases.items():
        if qualified == "torch.nn":
            return local
    torch = torch_name(unit)
    return f"{torch}.nn" if torch else None


def replace_node(unit: Unit, node: ast.AST, new_text: str) -> TextEdit:
    line, col, end_line, end_col = unit.node_range(node)
    return TextEdit(line, col, end_line, end_col, new_text)


def _siblings(unit: Unit, stmt: ast.stmt) -> list[ast.stmt]:
    parent = unit.parent(stmt)
    if parent is None:
        return unit.nodes if any(n is stmt for n in unit.nodes) else [stmt]
    return _block_of(parent, stmt) or [stmt]


def line_neighbours(unit: Unit, stmt: ast.stmt) -> tuple[ast.stmt | None, ast.stmt | None]:
    """The statements of the same block that share stmt's first / last line (`a(); stmt; b()`)."""
    siblings = _siblings(unit, stmt)
    index = next(i for i, s in enumerate(siblings) if s is stmt)
    before = siblings[index - 1] if index > 0 else None
    after = siblings[index + 1] if index + 1 < len(siblings) else None
    if before is not None and (before.end_lineno or before.lineno) != statement_start_line(stmt):
        before = None
    if after is not None and statement_start_line(after) != (stmt.end_lineno or stmt.lineno):
        after = None
    return before, after


def _starts_line(unit: Unit, stmt: ast.stmt) -> bool:
    """Nothing but indentation before the statement on its first line (no `if x:` header,
    no other statement)."""
    line = statement_start_line(stmt)
    node = stmt
    decorators = getattr(stmt, "decorator_list", None)
    if decorators:
        node = min(decorators, key=lambda d: (d.lineno, d.col_offset))
    _, col, _, _ = unit.node_range(node)
    if decorators:
        col -= 1  # the `@`
    return unit.source.line_text(line)[: col - 1].strip() == ""


def _ends_line(unit: Unit, stmt: ast.stmt) -> bool:
    """Nothing but blanks or a comment after the statement on its last line."""
    _, _, end_line, end_col = unit.node_range(stmt)
    rest = unit.source.line_text(end_line)[end_col - 1 :].strip()
    return rest == "" or rest.startswith("#")


def owns_lines(unit: Unit, stmt: ast.stmt) -> bool:
    """The statement is alone on its lines (comments aside)."""
    return _starts_line(unit, stmt) and _ends_line(unit, stmt)


def trailing_comment(unit: Unit, stmt: ast.stmt) -> str:
    """The comment after a statement that owns its lines (`  # note`, with the blanks before
    it), to move along with it; "" otherwise."""
    if not owns_lines(unit, stmt):
        return ""
    _, _, end_line, end_col = unit.node_range(stmt)
    rest = unit.source.line_text(end_line)[end_col - 1 :].rstrip("\r\n")
    return rest if rest.strip().startswith("#") else ""


def insert_before_statement(unit: Unit, stmt: ast.stmt, code: str, comment: str = "") -> TextEdit:
    """Insert code just before stmt: whole lines at stmt's indentation, or `code; ` in front
    of it when stmt does not start its line (`a(); stmt`, `if x: stmt`). `comment` (from
    `trailing_comment`) ends the last inserted line; it cannot follow inline code."""
    line = statement_start_line(stmt)
    if not _starts_line(unit, stmt) and "\n" not in code and "\r" not in code:
        start_line, start_col, _, _ = unit.node_range(stmt)
        return TextEdit(start_line, start_col, start_line, start_col, f"{code}; ")
    indent = unit.source.indentation(line)
    newline = unit.source.newline()
    text = "".join(f"{indent}{row}{newline}" if row else newline for row in code.splitlines())
    if comment and text:
        text = text[: -len(newline)] + comment + newline
    return TextEdit(line, 1, line, 1, text)


def insert_after_statement(unit: Unit, stmt: ast.stmt, code: str, comment: str = "") -> TextEdit:
    """Insert one line of code just after stmt: on the next line at stmt's indentation when
    stmt owns its lines, else `; code` right after it (`stmt; b()`, `if x: stmt`).
    `comment` (from `trailing_comment`) ends the inserted line when it is a line of its own."""
    _, _, end_line, end_col = unit.node_range(stmt)
    if not owns_lines(unit, stmt):
        return TextEdit(end_line, end_col, end_line, end_col, f"; {code}")
    indent = unit.source.indentation(statement_start_line(stmt))
    newline = unit.source.newline()
    lines = unit.source.lines
    if end_line >= len(lines) and not lines[-1].endswith(("\n", "\r")):
        at = len(lines[-1]) + 1  # the file ends without a line break
        return TextEdit(end_line, at, end_line, at, f"{newline}{indent}{code}{comment}")
    return TextEdit(end_line + 1, 1, end_line + 1, 1, f"{indent}{code}{comment}{newline}")


def delete_statement(unit: Unit, stmt: ast.stmt) -> TextEdit:
    """Delete a statement: its whole lines (with its decorators) when it is alone on them,
    else only the statement and its `;` (`a(); stmt; b()` -> `a(); b()`). Leaves a `pass`
    when the statement is the only one in its block."""
    start = statement_start_line(stmt)
    end = stmt.end_lineno or stmt.lineno
    before, after = line_neighbours(unit, stmt)
    if after is not None:  # `stmt; b()` -> `b()`
        line, col, _, _ = unit.node_range(stmt)
        after_line, after_col, _, _ = unit.node_range(after)
        return TextEdit(line, col, after_line, after_col, "")
    if before is not None:  # `a(); stmt` -> `a()`
        _, _, before_line, before_col = unit.node_range(before)
        _, _, end_line, end_col = unit.node_range(stmt)
        return TextEdit(before_line, before_col, end_line, end_col, "")
    siblings = _siblings(unit, stmt)
    if len(siblings) == 1 and unit.parent(stmt) is not None:
        if not _starts_line(unit, stmt):  # `if x: stmt` -> `if x: pass`
            return replace_node(unit, stmt, "pass")
        indent = unit.source.indentation(start)
        return TextEdit(start, 1, end + 1, 1, f"{indent}pass{unit.source.newline()}")
    # swallow one blank line after the statement so no double gap remains
    if unit.source.line_text(end + 1).strip() == "" and unit.source.line_text(start - 1).strip() == "":
        if end + 1 <= len(unit.source.lines):
            end += 1
    return TextEdit(start, 1, end + 1, 1, "")


def _block_of(parent: ast.AST, stmt: ast.stmt) -> list[ast.stmt] | None:
    for field in ("body", "orelse", "finalbody"):
        block = getattr(parent, field, None)
        if isinstance(block, list) and stmt in block:
            return block
    return None


def indent_block(unit: Unit, stmt: ast.stmt, header: str) -> TextEdit:
    """Wrap statement lines under a new block header (`with torch.no_grad():`)."""
    start = statement_start_line(stmt)
    end = stmt.end_lineno or stmt.lineno
    indent = unit.source.indentation(start)
    unit_indent = "    " if "\t" not in indent else "\t"
    lines = unit.source.lines[start - 1 : end]
    body = "".join(unit_indent + row if row.strip() else row for row in lines)
    if not body.endswith(("\n", "\r")):
        body += unit.source.newline()
    return TextEdit(start, 1, end + 1, 1, f"{indent}{header}{unit.source.newline()}{body}")
