"""GG502: matrix product of tensors with known, incompatible shapes."""

from __future__ import annotations

import ast
import math
from collections.abc import Iterator

from gradguard.engine.finding import Finding, Severity
from gradguard.engine.index import ModuleContext, Unit, statement_start_line
from gradguard.engine.queries import unit_text
from gradguard.engine.rule import Invalid, Rule, Valid
from gradguard.engine.shapes import calls_by_attr, inference, matmul_mismatch

_FUNCTIONS = {"torch.matmul": "matmul", "torch.mm": "mm", "torch.bmm": "bmm"}


class MatmulShapeMismatch(Rule):
    code = "GG502"
    name = "matmul-shape-mismatch"
    summary = "`@`/`matmul`/`mm`/`bmm` on tensors whose constant shapes have different inner dimensions."
    why = (
        "A matrix product needs the left operand's last dimension to equal the right operand's second-to-last"
        " one; with these constant shapes the call always raises."
    )
    message = "`{op}` multiplies shapes {left} and {right}: the inner dimensions {a} and {b} differ, so PyTorch raises {error}"
    explanation = """
    A matrix product needs the last dimension of the left operand to equal the
    second-to-last dimension of the right one (`(n, k) @ (k, m)`). When both shapes
    are known constants and they differ, the call always raises, for example:

    > RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x10 and 20x5)

    (`torch.bmm` and batched `matmul` report *"Expected size for first two dimensions
    of batch2 tensor to be: [4, 10] but got: [4, 20]"*). Usually one operand needs a
    transpose (`w.T`, `w.mT`) or was built with its dimensions swapped. Only tensors
    whose shapes are literal constants are checked.
    """
    severity = Severity.ERROR

    VALID = [
        Valid(
            """
            import torch

            x = torch.randn(8, 3)
            w = torch.randn(4, 3, requires_grad=True)
            y = x @ w.T
            z = torch.matmul(torch.randn(5, 2, 3), torch.randn(3, 7))
            """,
            note="compatible shapes (w.T is fine)",
        ),
        Valid(
            """
            import torch

            def f(x, w):
                return x @ w
            """,
            note="unknown shapes",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            x = torch.randn(2, 10)
            w = torch.randn(20, 5, requires_grad=True)
            y = x @ w
            """,
            lines=[5],
            raises="mat1 and mat2 shapes cannot be multiplied (2x10 and 20x5)",
        ),
        Invalid(
            """
            import torch

            queries = torch.randn(4, 2, 10)
            keys = torch.randn(4, 20, 5)
            scores = torch.bmm(queries, keys)
            """,
            lines=[5],
            raises="Expected size for first two dimensions of batch2 tensor to be: [4, 10] but got: [4, 20].",
        ),
        Invalid(
            """
            import torch

            a = torch.ones(3, 4)
            b = a.mm(a)
            """,
            lines=[4],
            raises="mat1 and mat2 shapes cannot be multiplied (3x4 and 3x4)",
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        # the pre-check of `check`, except that an `@` counts only beyond the statement's own
        # decorators (each puts one `@` in the text; `a @ b` needs another)
        if "mm(" in text or "matmul" in text:
            return True
        extra = text.count("@") - len(getattr(statement, "decorator_list", ()))
        if extra > 0:
            extra -= _docstring_ats(text, statement)
        return extra > 0

    def check(self, unit: Unit) -> Iterator[Finding]:
        text = unit_text(unit)
        if "@" not in text and "mm(" not in text and "matmul" not in text:
            return
        infer = inference(unit)
        for node in unit.nodes_of(ast.BinOp):
            assert isinstance(node, ast.BinOp)
            if isinstance(node.op, ast.MatMult):
                yield from self._check(unit, infer, node, "matmul", node.left, node.right, "@")
        for call in calls_by_attr(unit, "matmul", "mm", "bmm"):
            name = unit.module.call_name(call)
            if name in _FUNCTIONS and len(call.args) == 2 and not call.keywords:
                kind = _FUNCTIONS[name]
                yield from self._check(unit, infer, call, kind, call.args[0], call.args[1], f"torch.{kind}")
            elif name is None and len(call.args) == 1 and not call.keywords:
                kind = call.func.attr  # type: ignore[attr-defined]
                yield from self._check(unit, infer, call, kind, call.func.value, call.args[0], f".{kind}()")  # type: ignore[attr-defined]

    def _check(self, unit, infer, node, kind, left, right, op) -> Iterator[Finding]:
        a, b = infer.shape(left), infer.shape(right)
        if not a or not b:
            return
        error = _error(kind, a, b)
        if error is None:
            return
        inner = (a[-1], b[0] if len(b) == 1 else b[-2])
        message = self.message.format(op=op, left=_fmt(a), right=_fmt(b), a=inner[0], b=inner[1], error=error)
        yield self.finding(unit, node, message)


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _error(kind: str, a: tuple[int, ...], b: tuple[int, ...]) -> str | None:
    """The error PyTorch raises for these shapes, or None when we do not claim one."""
    if kind == "mm":
        if len(a) == 2 and len(b) == 2 and a[1] != b[0]:
            return f'"mat1 and mat2 shapes cannot be multiplied ({a[0]}x{a[1]} and {b[0]}x{b[1]})"'
        return None
    if kind == "bmm":
        if len(a) == 3 and len(b) == 3 and a[0] == b[0] and a[2] != b[1]:
            return (
                '"Expected size for first two dimensions of batch2 tensor to be: '
                f'[{a[0]}, {a[2]}] but got: [{b[0]}, {b[1]}]."'
            )
        return None
    # matmul / @
    if matmul_mismatch(a, b) is None:
        return None
    if len(b) == 2 and len(a) >= 1:
        rows = math.prod(a[:-1]) if len(a) > 1 else 1
        return f'"mat1 and mat2 shapes cannot be multiplied ({rows}x{a[-1]} and {b[0]}x{b[1]})"'
    broadcast = all(x == y or 1 in (x, y) for x, y in zip(reversed(a[:-2]), reversed(b[:-2])))
    if len(a) >= 2 and len(b) >= 3 and broadcast:
        return 'a RuntimeError ("Expected size for first two dimensions of batch2 tensor ...")'
    return "a RuntimeError"


def _docstring_ats(text: str, statement: ast.stmt) -> int:
    """The `@`s on the lines that hold nothing but the docstring of `statement` (and maybe a
    trailing comment): none of them can be a matmul. `text` starts at the statement's first
    line (decorators included)."""
    body = getattr(statement, "body", None)
    if not body or "\r" in text:
        return 0
    doc = body[0]
    if not (
        isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)
    ):
        return 0
    if doc.end_lineno is None or doc.end_col_offset is None:
        return 0
    lines = text.split("\n")
    first = doc.lineno - statement_start_line(statement)
    last = doc.end_lineno - statement_start_line(statement)
    if first < 0 or last >= len(lines):
        return 0
    if lines[first].encode()[: doc.col_offset].strip():
        return 0  # code before the docstring on its first line (`def f(): """..."""`)
    rest = lines[last].encode()[doc.end_col_offset :].strip()
    if rest and not rest.startswith(b"#"):
        return 0  # code after it (`"""..."""; y = a @ b`)
    return sum(line.count("@") for line in lines[first : last + 1])
