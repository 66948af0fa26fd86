"""What the editor shows of shapes: the hover line of a tensor, a module or an int, and the inlay hints
after assignments (`x = self.conv(x)` -> `x: [4, 64, 16, 16]`).

`ShapeView` is built for one version of a document (its parsed tree) and answers lazily: the value
analysis runs only for the functions asked about, and is kept for the next question. Shapes come from
the call contexts the file's roots reach (its script's `model(torch.randn(...))`, a probe comment)
when there are some, else from the function's natural context (symbols for what is not known).
Shapes measured by the probe (meta device) replace inferred ones and are marked as measured.

Lines are 1-based, columns 0-based code points (the language server converts to the client's
encoding).
"""

from __future__ import annotations

import ast
import bisect
from dataclasses import dataclass

from gradguard.engine import shape_flow
from gradguard.engine.index import KIND_MODULE, ModuleContext
from gradguard.engine.semantic import Semantics
from gradguard.engine.source import SourceFile
from gradguard.engine.symshape import Dim, Shape
from gradguard.engine.values import INT, MODULE, NO, TENSOR, YES, Value, join_all

MODES = ("forward", "all", "off")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_ASSIGNMENTS = (ast.Assign, ast.AnnAssign, ast.AugAssign)


@dataclass(frozen=True)
class Measured:
    """A shape the probe measured (meta device) for a name assigned on a line."""

    dims: tuple[int, ...] | None  # None: the line ran with several shapes
    dtype: str | None = None


@dataclass(frozen=True)
class Hint:
    line: int  # 1-based
    column: int  # 0-based code points: where the label goes (after the assigned name)
    label: str
    measured: bool = False
    tooltip: str = ""


class ShapeView:
    def __init__(
        self,
        tree: ast.Module,
        source: SourceFile,
        measured: dict[tuple[int, str], Measured] | None = None,
        semantics: Semantics | None = None,
    ) -> None:
        """`semantics`: the model a check of this same tree built (its flows are reused)."""
        self.tree = tree
        self.source = source
        if semantics is not None and semantics.tree is tree:
            self.semantics = semantics
            self.module = semantics.module
        else:
            self.module = ModuleContext(tree, source)
            self.semantics = Semantics(tree, self.module)
        self.semantics.shape_index.source = source
        self.measured = measured or {}
        self._starts = [_first_line(s) for s in tree.body]
        self._parents: dict[ast.AST, dict[ast.AST, ast.AST]] = {}

    # -- hover --------------------------------------------------------------------------------------
    def hover(self, line: int, column: int) -> str | None:
        """One line about the name under the cursor: a tensor's shape, dtype and gradient status, a
        module's layer and parameter count, an int's value."""
        if not self.module.imports_torch:
            return None
        found = self._node_at(line, column)
        if found is None:
            return None
        node, top = found
        scope = self._scope(node, top)
        value, flow = self._value(scope, node)
        if isinstance(node, ast.Attribute) and (value is None or not value.known):
            value = self._attribute(node, top, scope, flow) or value
        measured = self._measured_for(node, top)
        if value is None and measured is None:
            return None
        if value is not None and value.is_module:
            return _describe_module(value)
        if (
            value is not None
            and value.kinds == INT
            and isinstance(value.dim, Dim)
            and not value.dim.is_unknown
        ):
            return f"int = {shape_flow.show(value.dim)}"
        if measured is None and (value is None or not (value.is_tensor or isinstance(value.shape, Shape))):
            return None  # not known to be a tensor
        return _describe_tensor(value, flow, measured)

    # -- inlay hints --------------------------------------------------------------------------------
    def inlay_hints(self, first: int, last: int, mode: str = "forward") -> list[Hint]:
        """The shape after each assignment in lines first..last: in `forward` (and the methods it
        calls) and in training loops for mode "forward", everywhere for "all"."""
        if mode not in ("forward", "all") or not self.module.imports_torch:
            return []
        hints: list[Hint] = []
        index = bisect.bisect_right(self._starts, last)
        for top in self.tree.body[:index]:
            if (top.end_lineno or top.lineno) < first:
                continue
            for stmt, scope in self._assignments(top, mode):
                if not (first <= stmt.lineno <= last):
                    continue
                for name in _target_names(stmt):
                    hint = self._hint(name, scope, stmt, top)
                    if hint is not None:
                        hints.append(hint)
        return hints

    def _hint(self, name: ast.Name, scope: ast.AST | None, stmt: ast.stmt, top: ast.stmt) -> Hint | None:
        line = name.end_lineno or name.lineno
        column = self.source.char_column(line, name.end_col_offset or 0)
        measured = self.measured.get((stmt.lineno, name.id))
        if measured is not None and measured.dims is not None:
            text = "[" + ", ".join(str(d) for d in measured.dims) + "]"
            return Hint(line, column, f": {text}", True, "measured by the probe (on the meta device)")
        value, _ = self._value(scope, name)
        if value is None or not isinstance(value.shape, Shape) or not value.may_be(TENSOR):
            return None
        shape = value.shape
        if not shape.dims:
            if not shape.exact:
                return None  # nothing known
        return Hint(line, column, f": {shape_flow.show(shape)}", False, _describe_tensor(value, None, None))

    # -- lookups ------------------------------------------------------------------------------------
    def _top(self, line: int) -> ast.stmt | None:
        index = bisect.bisect_right(self._starts, line) - 1
        if index < 0:
            return None
        stmt = self.tree.body[index]
        return stmt if line <= (stmt.end_lineno or stmt.lineno) else None

    def _node_at(self, line: int, column: int) -> tuple[ast.AST, ast.stmt] | None:
        top = self._top(line)
        if top is None:
            return None
        best = None
        for node in ast.walk(top):
            if (
                not isinstance(node, (ast.Name, ast.Attribute))
                or node.lineno != line
                or node.end_lineno != line
            ):
                continue
            if isinstance(node, ast.Attribute):
                # the attribute's own name (`fc` of `self.fc`)
                end = self.source.char_column(line, node.end_col_offset or 0)
                start = end - len(node.attr)
            else:
                start = self.source.char_column(line, node.col_offset)
                end = start + len(node.id)
            if start <= column <= end:
                best = node
        return (best, top) if best is not None else None

    def _parents_of(self, top: ast.stmt) -> dict[ast.AST, ast.AST]:
        parents = self._parents.get(top)
        if parents is None:
            parents = {}
            for parent in ast.walk(top):
                for child in ast.iter_child_nodes(parent):
                    parents[child] = parent
            self._parents[top] = parents
        return parents

    def _scope(self, node: ast.AST, top: ast.stmt) -> ast.AST | None:
        parents = self._parents_of(top)
        current = parents.get(node)
        while current is not None:
            if isinstance(current, _SCOPES):
                return current
            current = parents.get(current)
        return None

    def _value(self, scope: ast.AST | None, node: ast.AST):
        """(the value, the flow it came from): the join over the contexts the roots reach, else the
        natural flow's value."""
        semantics = self.semantics
        if scope is not None:
            contexts = [f for f in shape_flow.context_flows(semantics, scope) if node in f.values]
            if contexts:
                return join_all(f.values[node] for f in contexts), contexts[0]
        try:
            flow = semantics.flow(scope)
        except RecursionError:
            return None, None
        return flow.values.get(node), flow

    def _attribute(self, node: ast.Attribute, top: ast.stmt, scope: ast.AST | None, flow) -> Value | None:
        """`self.fc` where the flow did not keep a value: a store's value, or the attribute of the
        receiver (a method call's callee)."""
        parent = self._parents_of(top).get(node)
        if isinstance(parent, ast.Assign) and node in parent.targets:
            value, _ = self._value(scope, parent.value)
            return value
        if flow is None:
            return None
        base = flow.values.get(node.value)
        if base is None:
            return None
        try:
            return self.semantics.attribute(flow, base, node, None)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - a hover must never fail
            return None

    def _measured_for(self, node: ast.AST, top: ast.stmt) -> Measured | None:
        if not self.measured or not isinstance(node, ast.Name):
            return None
        parents = self._parents_of(top)
        current = parents.get(node)
        while current is not None and not isinstance(current, ast.stmt):
            current = parents.get(current)
        if isinstance(current, _ASSIGNMENTS):
            return self.measured.get((current.lineno, node.id))
        return None

    def _assignments(self, top: ast.stmt, mode: str):
        """(assignment statement, its scope) in `top`, those the mode shows."""
        parents = self._parents_of(top)
        wanted_scopes: set[ast.AST] | None = None
        if mode == "forward":
            wanted_scopes = set()
            if isinstance(top, ast.ClassDef) and self.semantics.class_kind(top) == KIND_MODULE:
                names = self.semantics.forward_methods(top)
                wanted_scopes = {s for s in top.body if isinstance(s, _SCOPES[:2]) and s.name in names}
        training = _training_loops(top) if mode == "forward" else set()
        for node in ast.walk(top):
            if not isinstance(node, _ASSIGNMENTS):
                continue
            scope = None
            current = parents.get(node)
            in_loop = False
            while current is not None:
                if current in training:
                    in_loop = True
                if isinstance(current, _SCOPES) and scope is None:
                    scope = current
                current = parents.get(current)
            if (
                wanted_scopes is None
                or in_loop
                or (scope is not None and _outermost(scope, parents) in wanted_scopes)
            ):
                yield node, scope


_TENSORISH = TENSOR | (1 << 1) | (1 << 2)


def _outermost(scope: ast.AST, parents: dict) -> ast.AST:
    """The method a nested function/lambda belongs to."""
    current = scope
    parent = parents.get(current)
    while parent is not None:
        if isinstance(parent, _SCOPES):
            current = parent
        parent = parents.get(parent)
    return current


def _training_loops(top: ast.stmt) -> set[ast.AST]:
    """Loops whose body calls `.backward(...)`."""
    loops: set[ast.AST] = set()
    for node in ast.walk(top):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            for sub in ast.walk(node):
                if (
                    isinstance(sub, ast.Call)
                    and isinstance(sub.func, ast.Attribute)
                    and sub.func.attr == "backward"
                ):
                    loops.add(node)
                    break
    return loops


def _target_names(stmt: ast.stmt) -> list[ast.Name]:
    """The names an assignment binds (`x`, `a, (b, c)`, `*rest`); not the names inside a subscript or
    attribute target (`h[h < 0] = 0` binds nothing)."""
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]  # type: ignore[attr-defined]
    names: list[ast.Name] = []
    todo = list(targets)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.Name):
            names.append(node)
        elif isinstance(node, (ast.Tuple, ast.List)):
            todo.extend(node.elts)
        elif isinstance(node, ast.Starred):
            todo.append(node.value)
    return names


def _first_line(stmt: ast.stmt) -> int:
    return min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", ()))])


# -- wording --------------------------------------------------------------------------------------------
def _tensor_text(shape: object) -> str:
    if isinstance(shape, Shape) and (shape.dims or shape.exact):
        return "Tensor" + shape_flow.show(shape)
    return "Tensor"


def _describe_tensor(value: Value | None, flow, measured: Measured | None) -> str:
    parts = []
    if measured is not None and measured.dims is not None:
        parts.append("Tensor[" + ", ".join(str(d) for d in measured.dims) + "]")
    else:
        parts.append(_tensor_text(value.shape if value is not None else None))
    dtype = (measured.dtype if measured is not None and measured.dtype else None) or (
        value.dtype if value is not None else None
    )
    if dtype:
        parts[0] += f" {dtype}"
    if value is not None:
        if value.grad == YES:
            parts.append("requires grad")
        elif value.grad == NO:
            cut = next((c for c in value.cuts if getattr(c.node, "lineno", None)), None)
            if cut is not None and value.blocked:
                parts.append(f"cut from the graph by {_cut_words(cut.kind)} (line {cut.node.lineno})")
            else:
                parts.append("no grad")
        saved = _saved_by(value, flow)
        if saved:
            parts.append(saved)
    if measured is not None and measured.dims is not None:
        parts.append("measured by the probe")
    return " · ".join(parts)


def _cut_words(kind: str) -> str:
    return {
        "detach": "detach()",
        "item": "item()",
        "numpy": "numpy()",
        "data": ".data",
        "rewrap": "torch.tensor(...)",
        "no_grad": "no_grad",
        "nondiff": "a non-differentiable op",
        "zero_grad": "a zero-gradient op",
    }.get(kind, kind)


def _saved_by(value: Value, flow) -> str:
    """`saved by sigmoid (line 12)`: an op of the flow saved this tensor object for backward."""
    if flow is None or not value.roots:
        return ""
    state = getattr(flow, "exit_state", None)
    if state is None:
        return ""
    for root in value.roots:
        record = state.saved.get(root)
        if record is not None and getattr(record.node, "lineno", None):
            return f"saved by {record.op} (line {record.node.lineno})"
    return ""


def _describe_module(value: Value) -> str:
    layer = value.layer
    if isinstance(layer, shape_flow.Layer):
        text = f"nn.{layer.spec}"
        count = layer.spec.parameter_count()
    elif isinstance(layer, shape_flow.Instance):
        text = layer.cls
        count = None
    else:
        cls = value.cls or "module"
        text = f"nn.{cls.rsplit('.', 1)[-1]}" if cls.startswith("torch.nn.") else cls
        count = _container_count(value)
        if value.items is not None and cls.endswith(("Sequential", "ModuleList")):
            text += f" ({len(value.items)} modules)"
    if count is not None:
        n = count.value
        text += f" · {n:,} parameters" if n is not None else f" · {shape_flow.show(count)} parameters"
    return text


def _container_count(value: Value) -> Dim | None:
    if not value.items:
        return None
    total = Dim.const(0)
    for item in value.items:
        if not item.is_only(MODULE):
            return None
        layer = item.layer
        if isinstance(layer, shape_flow.Layer):
            count = layer.spec.parameter_count()
        elif item.items:
            count = _container_count(item)
        else:
            return None
        if count is None:
            return None
        total = total + count
    return total


__all__ = ["MODES", "Hint", "Measured", "ShapeView"]
