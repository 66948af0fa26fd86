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


def insert_before_statement(unit: Unit, stmt: ast.stmt, code: str) -> TextEdit:
    """Insert whole lines of code before stmt, at stmt's indentation."""
    line = statement_start_line(stmt)
    indent = unit.source.indentation(line)
    newline = unit.source.newline()
    text = "".join(f"{indent}{row}{newline}" if row else newline for row in code.splitlines())
    return TextEdit(line, 1, line, 1, text)


def delete_statement(unit: Unit, stmt: ast.stmt) -> TextEdit:
    """Delete a statement's whole lines (with its decorators). Leaves a `pass` when the
    statement is the only one in its block."""
    start = statement_start_line(stmt)
    end = stmt.end_lineno or stmt.lineno
    parent = unit.parent(stmt)
    siblings = _block_of(parent, stmt) if parent is not None else None
    if siblings is not None and len(siblings) == 1:
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


def enclosing_block(unit: Unit, statement: ast.stmt) -> list[ast.stmt] | None:
    """The statement list that holds `statement` (the unit's own list at the top)."""
    parent = unit.parent(statement)
    if parent is None:
        return unit.nodes if statement in unit.nodes else None
    return _block_of(parent, statement)


def next_statement(unit: Unit, statement: ast.stmt) -> ast.stmt | None:
    block = enclosing_block(unit, statement)
    if block is None:
        return None
    index = block.index(statement)
    return block[index + 1] if index + 1 < len(block) else None


def alone_on_its_lines(unit: Unit, statement: ast.stmt) -> bool:
    """No other statement shares a line with it (`a = 1; w += 1` shares)."""
    siblings = enclosing_block(unit, statement)
    if siblings is None:
        return False
    first, last = statement.lineno, statement.end_lineno or statement.lineno
    return not any(
        s is not statement and s.lineno <= last and (s.end_lineno or s.lineno) >= first for s in siblings
    )


def wrap_statements(unit: Unit, first: ast.stmt, last: ast.stmt, header: str) -> TextEdit:
    """Put the statements from `first` to `last` (one block) under `header`."""
    if first is last:
        return indent_block(unit, first, header)
    start = statement_start_line(first)
    end = last.end_lineno or last.lineno
    indent = unit.source.indentation(start)
    step = "\t" if "\t" in indent else "    "
    newline = unit.source.newline()
    body = "".join(step + row if row.strip() else row for row in unit.source.lines[start - 1 : end])
    if not body.endswith(("\n", "\r")):
        body += newline
    return TextEdit(start, 1, end + 1, 1, f"{indent}{header}{newline}{body}")
