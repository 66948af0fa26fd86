"""Building blocks for fixes.

Edits replace exact source ranges, so everything outside them (comments, blank lines,
formatting) is untouched. New code is built as libcst nodes and rendered by libcst,
so what we insert is well-formed; libcst is imported only when a fix is computed.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Callable

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


_LOWER = (ast.Lt, ast.LtE)
_UPPER = (ast.Gt, ast.GtE)
_FLIPPED = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE}


def masked_write_rewrite(
    unit: Unit, name: str, mask: ast.expr, value: ast.expr, value_is_tensor: bool
) -> tuple[Callable[[], str], str]:
    """The out-of-place statement for `name[mask] = value`, as (a builder of its text, a short
    label): `torch.relu` for `x[x < 0] = 0`, `clamp(min=t)` / `clamp(max=t)` for
    `x[x < t] = t` / `x[x > t] = t`, `masked_fill` for any other scalar written through a
    comparison of `x` itself (the mask has `x`'s shape), and `index_put` otherwise (it
    writes exactly what the item assignment writes, tensors and broadcasting included)."""
    comparison = _threshold(mask, name)
    value_text = unit.segment(value)
    if comparison is not None and not value_is_tensor:
        op, threshold = comparison
        same = ast.dump(threshold) == ast.dump(value)
        if same and _is_zero(threshold) and isinstance(op, _LOWER):
            torch = functional_relu(unit)
            return (lambda: _assign(name, torch, [name])), f"{torch}({name})"
        if same and isinstance(op, _LOWER):
            text = unit.segment(threshold)
            return (lambda: _assign(name, f"{name}.clamp", [], min=text)), f"{name}.clamp(min={text})"
        if same and isinstance(op, _UPPER):
            text = unit.segment(threshold)
            return (lambda: _assign(name, f"{name}.clamp", [], max=text)), f"{name}.clamp(max={text})"
    mask_text = unit.segment(mask)
    if _compares_itself(mask, name) and not value_is_tensor:
        return (
            lambda: _assign(name, f"{name}.masked_fill", [mask_text, value_text])
        ), f"{name}.masked_fill(...)"
    written = value_text if value_is_tensor else f"{name}.new_tensor({value_text})"
    return (
        lambda: _assign(name, f"{name}.index_put", [f"({mask_text},)", written])
    ), f"{name}.index_put(...)"


def functional_relu(unit: Unit) -> str:
    """`F.relu` when the file imports torch.nn.functional as some name, else `torch.relu`."""
    for alias, qual in unit.module.aliases.items():
        if qual == "torch.nn.functional":
            return f"{alias}.relu"
    torch = torch_name(unit)
    return f"{torch}.relu" if torch else "torch.relu"


def _threshold(mask: ast.expr, name: str) -> tuple[ast.cmpop, ast.expr] | None:
    """`x < t` / `t > x` -> (the comparison with x on the left, t)."""
    if not isinstance(mask, ast.Compare) or len(mask.ops) != 1:
        return None
    left, op, right = mask.left, mask.ops[0], mask.comparators[0]
    if isinstance(left, ast.Name) and left.id == name and isinstance(op, (*_LOWER, *_UPPER)):
        return op, right
    if isinstance(right, ast.Name) and right.id == name and isinstance(op, (*_LOWER, *_UPPER)):
        return _FLIPPED[type(op)](), left
    return None


def _compares_itself(mask: ast.expr, name: str) -> bool:
    """A comparison of `x` itself with something that is not an indexing of another tensor."""
    return (
        isinstance(mask, ast.Compare)
        and len(mask.ops) == 1
        and any(isinstance(n, ast.Name) and n.id == name for n in (mask.left, *mask.comparators))
    )


def _is_zero(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant) and not isinstance(node.value, bool) and node.value == 0


def _assign(name: str, func: str, args: list[str], **kwargs: str) -> str:
    """`name = func(*args, **kwargs)`, built and rendered by libcst."""
    import libcst as cst

    call = cst.Call(
        func=parse_expression(func),
        args=[cst.Arg(parse_expression(a)) for a in args]
        + [
            cst.Arg(
                parse_expression(v),
                keyword=cst.Name(k),
                equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
            )
            for k, v in kwargs.items()
        ],
    )
    return render(cst.Assign(targets=[cst.AssignTarget(cst.Name(name))], value=call))
