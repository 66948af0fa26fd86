"""`# gradguard: probe Net(20, 5) input=(4, 20)` comments: which class a comment names, how to build it
and what to call it with. Read by the probe (to plan a run) and by the shape analysis (to follow the
same call statically)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from gradguard.engine.source import SourceFile

_COMMENT = re.compile(r"#\s*gradguard\s*:\s*probe\b(?P<body>.*)$", re.IGNORECASE)
_INPUT = re.compile(r"\binputs?\s*=")


@dataclass
class ProbeComment:
    line: int
    ctor: ast.expr | None
    ctor_text: str
    inputs: list[dict] | None


def probe_comments(source: SourceFile, tree: ast.Module) -> dict[str, ProbeComment]:
    """`# gradguard: probe Net(20, 5) input=(4, 20)` anywhere (names the class), or
    `# gradguard: probe input=(4, 20)` right above a class (or its decorators)."""
    if "probe" not in source.text:
        return {}  # (one scan of the text: no line can hold a probe comment)
    class_starts = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            first = min([stmt.lineno] + [d.lineno for d in stmt.decorator_list])
            class_starts[first] = stmt.name
    found: dict[str, ProbeComment] = {}
    for number, line in enumerate(source.lines, start=1):
        if "probe" not in line or "#" not in line:
            continue
        match = _COMMENT.search(line.rstrip("\r\n"))
        if not match:
            continue
        parsed = _parse_comment(match.group("body").strip(), number)
        if parsed is None:
            continue
        name = None
        if parsed.ctor is not None:
            callee = parsed.ctor.func if isinstance(parsed.ctor, ast.Call) else parsed.ctor
            if isinstance(callee, ast.Name):
                name = callee.id
        if name is None:
            # the comment applies to the class that starts below it (comments/blank lines between)
            following = number + 1
            while following <= len(source.lines) and source.line_text(following).strip().startswith("#"):
                following += 1
            name = class_starts.get(following)
        if name is not None:
            found.setdefault(name, parsed)
    return found


def _parse_comment(body: str, line: int) -> ProbeComment | None:
    ctor_text, input_text = body, None
    for match in _INPUT.finditer(body):
        head, tail = body[: match.start()].strip(), body[match.end() :].strip()
        if _parses(tail) and (not head or _parses(head)):
            ctor_text, input_text = head, tail
            break
    ctor = None
    if ctor_text:
        if not _parses(ctor_text):
            return None
        ctor = ast.parse(ctor_text, mode="eval").body
    inputs = _input_specs(ast.parse(input_text, mode="eval").body, input_text) if input_text else None
    return ProbeComment(line, ctor, ctor_text, inputs)


def _parses(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


def _int_tuple(node: ast.expr) -> list[int] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List)) and node.elts:
        values = []
        for elt in node.elts:
            if not (
                isinstance(elt, ast.Constant)
                and isinstance(elt.value, int)
                and not isinstance(elt.value, bool)
            ):
                return None
            values.append(elt.value)
        return values
    return None


def _one_spec(node: ast.expr) -> dict:
    shape = _int_tuple(node)
    if shape is not None and not isinstance(node, ast.Constant):
        return {"kind": "shape", "shape": shape}
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("long", "int", "index")
    ):
        dims = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, int)]
        high: object = 10
        for kw in node.keywords:
            if kw.arg == "high" and isinstance(kw.value, ast.Constant):
                high = kw.value.value
        return {"kind": "long", "shape": dims, "high": high}
    if isinstance(node, ast.Constant):
        return {"kind": "value", "value": node.value}
    return {"kind": "expr", "expr": ast.unparse(node)}


def _input_specs(node: ast.expr, text: str) -> list[dict]:
    if _int_tuple(node) is not None and not isinstance(node, ast.Constant):
        return [_one_spec(node)]  # (4, 20): one tensor
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_one_spec(elt) for elt in node.elts]  # [(4, 20), (4, 3)]: several inputs
    return [_one_spec(node)]
