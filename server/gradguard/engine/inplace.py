"""In-place writes, classified once for the rules that report them.

Every in-place write the value analysis saw (`t.add_(x)`, `t += x` on a tensor,
`t[i] = v`, a helper that writes into its argument) is one `Write`, with what the written
tensor was at that moment:

* `LEAF` — a leaf that requires grad (a parameter, a `requires_grad=True` tensor) or a view
  of one: PyTorch raises "a leaf Variable that requires grad is being used in an in-place
  operation" at once (GG201 for a module's parameters in `forward`, GG203 elsewhere);
* `SAVED` — a tensor an op saved for backward (its output, such as `sigmoid`'s, or an
  input, such as `x` in `x * w`), or a view of one: backward raises "one of the variables
  needed for gradient computation has been modified by an inplace operation" (GG204;
  masked writes `x[x < t] = v` are GG202's);
* `MULTI_VIEW` — one of several views an op returned (`chunk`, `split`, `unbind`) that
  requires grad: PyTorch raises "... is a view and is being modified inplace. This view
  is the output of a function that returns multiple views" at once (GG204);
* `BUFFER` — a registered buffer written from values that require grad (GG206);
* `OTHER` — anything else (legal for autograd; GG205 looks at masked writes among them).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

from gradguard.engine.index import Unit
from gradguard.engine.interpreter import INPLACE, Event, Flow
from gradguard.engine.queries import in_forward, scope_text, scopes, unit_text
from gradguard.engine.values import MAYBE, YES, Value

# an in-place method call, an augmented assignment, an item assignment, a call with
# `inplace=True`: a scope without any of these has no in-place write to classify (a superset)
INPLACE_TEXT = re.compile(r"[a-z]_\s*\(|[-+*/@%&|^]=|\]\s*=[^=]|inplace")

LEAF = "leaf"
SAVED = "saved"
BUFFER = "buffer"
MULTI_VIEW = "multi_view"
OTHER = "other"


class Write:
    """One in-place write and what it wrote into."""

    __slots__ = ("event", "flow", "func", "in_forward", "kind", "masked")

    def __init__(self, event: Event, flow: Flow, func: ast.AST | None, kind: str, in_forward: bool) -> None:
        self.event = event
        self.flow = flow
        self.func = func
        self.kind = kind
        self.in_forward = in_forward  # in a method reachable from an nn.Module's forward
        self.masked = masked_write(event.statement if event.op == "setitem" else None)

    @property
    def node(self) -> ast.AST:
        """Where to report: the call for a method, else the statement."""
        event = self.event
        return event.node

    @property
    def target(self) -> ast.AST | None:
        """The expression written into (`t` in `t.add_(x)`, `t[i]` in `t[i] = v`)."""
        return self.event.target

    @property
    def written(self) -> ast.AST | None:
        """The tensor expression written into (`t` in `t[i] = v` too)."""
        target = self.event.target
        if isinstance(target, ast.Subscript):
            return target.value
        return target

    @property
    def value(self) -> Value:
        return self.event.value


def writes(unit: Unit, where: Callable[[ast.AST | None], bool] | None = None) -> list[Write]:
    """The unit's in-place writes (natural contexts), in source order. With `where`, only those
    of the scopes it accepts: the other scopes are not analysed (a rule that needs the writes
    of some scopes only says which, before any flow is computed)."""
    if where is None:
        return unit.cache("inplace_writes", lambda: _collect(unit, None))
    return _collect(unit, where)


def masked_writes(unit: Unit) -> list[Write]:
    """`writes(unit)` of the scopes holding a masked write statement (`x[x < t] = v`, see
    `masked_write`): the only ones whose writes can have `masked` set."""
    masked = unit.cache("inplace.masked_scopes", lambda: _masked_scopes(unit))
    return writes(unit, lambda func: func in masked)


def _masked_scopes(unit: Unit) -> set:
    return {
        unit.enclosing_function(node) for node in unit.nodes_of(ast.Assign) if masked_write(node) is not None
    }


def _collect(unit: Unit, where: Callable[[ast.AST | None], bool] | None) -> list[Write]:
    found: list[Write] = []
    # a layer built with `inplace=True` in one method writes in place where another calls it
    needle = None if "inplace" in unit_text(unit) else INPLACE_TEXT
    known: dict = unit.cache("inplace.scope_writes", dict)  # scope -> its writes, classified once
    for func in scopes(unit):
        if where is not None and not where(func):
            continue
        got = known.get(func)
        if got is None:
            if needle is not None and needle.search(scope_text(unit, func)) is None:
                got = []
            else:
                got = _scope_writes(unit, func, unit.semantics.flow(func))
            known[func] = got
        found.extend(got)
    found.sort(key=lambda w: (getattr(w.node, "lineno", 0), getattr(w.node, "col_offset", 0)))
    return found


def _scope_writes(unit: Unit, func: ast.AST | None, flow: Flow) -> list[Write]:
    events = flow.events_of(INPLACE)
    if not events:
        return []
    forward = in_forward(unit, func)
    views = unit.semantics.multi_output_views
    return [
        Write(event, flow, func, _classify(unit, func, event, forward, views), forward) for event in events
    ]


def _classify(unit: Unit, func: ast.AST | None, event: Event, forward: bool, views: set) -> str:
    if event.nograd is not None:
        return OTHER
    value = event.value
    if value.leaf == YES and value.grad == YES and value.is_tensor:
        return LEAF
    if event.saved:
        return SAVED
    if (
        value.sites
        and value.sites <= views
        and (value.grad == YES or (forward and value.grad == MAYBE and from_input(unit, func, value)))
    ):
        return MULTI_VIEW
    if value.is_buffer and any(
        a.grad == YES or (forward and a.grad == MAYBE and a.is_tensor and from_input(unit, func, a))
        for a in event.args
    ):
        return BUFFER
    return OTHER


def from_input(unit: Unit, func: ast.AST | None, value) -> bool:
    """A tensor that may require grad because it is computed from an input of the method (an
    activation) or from a root the gradient reaches (a parameter, a module); not one built only
    from factories, Python numbers, comparisons and attributes of unknown kind
    (`1.0 / (factors * self.base**e)`, `1 - counts.clamp(max=1)`)."""
    if any(unit.semantics.source_kinds.get(s) != "opaque" for s in value.sources):
        return True
    args = getattr(func, "args", None)
    if args is None:
        return False
    inputs = {a.arg for a in (*args.posonlyargs, *args.args[1:], *args.kwonlyargs)}
    inputs |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    return not inputs.isdisjoint(value.names)


def saved_op_text(unit: Unit, saved) -> str:
    """`torch.sigmoid(...)` / `x * w`: the op that saved a tensor, for messages."""
    from gradguard.engine.queries import describe

    node = saved.node
    if isinstance(node, ast.Call):
        return describe(unit, node.func) + "(...)"
    if isinstance(node, ast.BinOp):
        return describe(unit, node)
    return saved.op


def callers_tensor(write: Write) -> bool:
    """The written tensor is (a view of) one the caller passed in as an argument."""
    roots = write.value.roots
    return bool(roots) and all(isinstance(r, ast.arg) for r in roots)


def local_tensor(write: Write) -> bool:
    """The written tensor was created in this function (by an op or a call of it), so
    rebinding the name instead of writing into the tensor changes nothing else: no
    caller, attribute or other local name holds it."""
    roots = write.value.roots
    if not roots or any(isinstance(r, (ast.arg, ast.Attribute)) for r in roots):
        return False
    written = write.written
    if not isinstance(written, ast.Name) or write.func is None:
        return False
    name = written.id
    for node in ast.walk(write.func):
        # `y = x` / `self.h = x` / `return x` before the write: someone else may hold it
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Name):
            if node.value.id == name and node.lineno <= write.event.statement.lineno:  # type: ignore[union-attr]
                return False
    return True


LEAF_ERROR = "a leaf Variable that requires grad is being used in an in-place operation"


def describe_inplace(write: Write) -> tuple[str, str]:
    """("`+=`" / "`.add_()`" / "indexed write", the error PyTorch raises when the written
    tensor is a leaf that requires grad)."""
    op = write.event.op
    if op == "setitem":
        target = write.target
        return "indexed write", leaf_error(target.slice if isinstance(target, ast.Subscript) else None)
    if op.endswith("="):
        return f"`{op}`", LEAF_ERROR
    if op == "call":
        return "in-place change in a call", LEAF_ERROR
    return f"`.{op}()`", LEAF_ERROR


def leaf_error(index: ast.expr | None) -> str:
    """The error PyTorch raises for an in-place change of a leaf that requires grad;
    `index` is the subscript of an indexed write (basic indexing writes through a view)."""
    if index is None:
        return LEAF_ERROR
    kind = _index_kind(index)
    if kind == "basic":
        return "a view of " + LEAF_ERROR
    if kind == "advanced":
        return LEAF_ERROR
    return "… leaf Variable that requires grad is being used in an in-place operation"


def _index_kind(index: ast.expr) -> str:
    if isinstance(index, ast.Tuple):
        kinds = {_index_kind(e) for e in index.elts}
        return "advanced" if "advanced" in kinds else "unknown" if "unknown" in kinds else "basic"
    if isinstance(index, ast.Slice) or (isinstance(index, ast.Constant) and isinstance(index.value, int)):
        return "basic"
    if isinstance(index, ast.Constant) and index.value in (None, Ellipsis):
        return "basic"
    if isinstance(index, ast.UnaryOp) and isinstance(index.operand, ast.Constant):
        return "basic"
    if isinstance(index, (ast.Compare, ast.List, ast.BoolOp, ast.Call)) or (
        isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.Invert)
    ):
        return "advanced"
    return "unknown"


def masked_write(stmt: ast.AST | None) -> tuple[ast.Subscript, str] | None:
    """`x[mask] = v` with a boolean mask: a comparison involving `x` itself, `~m`, or an
    `&`/`|` of such masks. Returns (the subscript target, "x"); None for anything else
    (slices, integer indices, a bare name used as an index)."""
    if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
        return None
    target = stmt.targets[0]
    if not isinstance(target, ast.Subscript) or not isinstance(target.value, ast.Name):
        return None
    name = target.value.id
    return (target, name) if _is_mask(target.slice, name) else None


def _is_mask(mask: ast.expr, name: str) -> bool:
    if isinstance(mask, ast.Compare):
        return any(isinstance(n, ast.Name) and n.id == name for n in [mask.left, *mask.comparators])
    if isinstance(mask, ast.UnaryOp) and isinstance(mask.op, ast.Invert):
        return _is_mask(mask.operand, name) or isinstance(mask.operand, ast.Name)
    if isinstance(mask, ast.BinOp) and isinstance(mask.op, (ast.BitAnd, ast.BitOr)):
        return _is_mask(mask.left, name) or _is_mask(mask.right, name)
    return False
