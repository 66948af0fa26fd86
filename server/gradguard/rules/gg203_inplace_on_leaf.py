"""GG203: in-place change of a tensor created with `requires_grad=True`."""

from __future__ import annotations

import ast
from typing import Iterator

from gradguard.engine.finding import Applicability, Finding, Severity, TextEdit
from gradguard.engine.fixes import indent_block, torch_name
from gradguard.engine.index import (
    TENSOR_FACTORIES,
    Unit,
    creates_grad_leaf,
    is_true,
    keyword,
    statement_start_line,
)
from gradguard.engine.rule import Invalid, Rule, Valid
from gradguard.rules.gg201_inplace_on_parameter import (
    _OPERATORS,
    _OUT_OF_PLACE,
    freezes_something,
    inplace_changes,
    method_call_index,
)

# Re-initialisations: wrapping them in no_grad is exactly what anyone means.
_REINIT = {"zero_", "fill_", "uniform_", "normal_", "random_", "bernoulli_", "exponential_", "geometric_"}

_VARIABLE = {"torch.autograd.Variable", "torch.autograd.variable.Variable"}
_LEAF_ERROR = "a leaf Variable that requires grad is being used in an in-place operation"


class InplaceOnLeaf(Rule):
    code = "GG203"
    triggers = ("requires_grad", "Parameter", "parameters")  # = _LEAF_WORDS (its own pre-check)
    name = "inplace-on-leaf"
    summary = "In-place change of a `requires_grad=True` tensor: PyTorch raises the leaf in-place error."
    why = (
        "A tensor created with `requires_grad=True` is a leaf: changing it in place while gradients are "
        'enabled raises "a leaf Variable that requires grad is being used in an in-place operation".'
    )
    message = (
        "In-place {what} on `{name}`, {origin} (line {line}): PyTorch raises "
        '"{error}"; to update the leaf, do it under `with torch.no_grad():`; '
        "if the change should be differentiated, write {alternative}"
    )
    explanation = """
    A tensor you create with `requires_grad=True` (or mark with `.requires_grad_()`)
    is a *leaf*: autograd accumulates its gradient in `.grad`. While gradients are
    enabled, changing it in place (`x += 1`, `x *= 0.1`, `x.add_(...)`, `x.zero_()`,
    `x[0] = 1`) raises immediately:

        RuntimeError: a leaf Variable that requires grad is being used in an in-place operation.

    (for a write through basic indexing: *"a view of a leaf Variable that requires grad
    is being used in an in-place operation."*)

    What to write depends on what the change is for:

    * **Updating the leaf itself** (a hand-written SGD step, re-initialising,
      rescaling data): the update must not be recorded, so do it under
      `torch.no_grad()`:

      ```python
      with torch.no_grad():
          w -= lr * w.grad
      w.grad.zero_()
      ```

      `w` stays a leaf, and the next `loss.backward()` fills `w.grad` again.
    * **Computing something new from it** (the change should be differentiated):
      write it out of place, `h = h + layer(x)`. The result is a new, non-leaf tensor,
      and gradients flow back to the original `h`.

    The automatic fix wraps the statement in `with torch.no_grad():`. That is
    marked safe for gradient steps (the statement reads `w.grad`) and
    re-initialisations (`zero_`, `fill_`, `uniform_`, `normal_`, ...); otherwise it is
    unsafe, because if you meant the change to be differentiated, the no_grad
    version silently drops that gradient path: review it and write the out-of-place
    form instead when that is what you meant.

    Not reported: changes under `torch.no_grad()` / `@torch.no_grad()`, writes
    through `.data` or `.grad`, tensors rebound to a computed (non-leaf) value before
    the change, and `nn.init.*_` calls (they run under no_grad).
    """
    severity = Severity.ERROR
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch

            w = torch.randn(3, requires_grad=True)
            x, y = torch.randn(16, 3), torch.randn(16)
            for step in range(100):
                loss = ((x @ w - y) ** 2).mean()
                loss.backward()
                with torch.no_grad():
                    w -= 0.1 * w.grad
                w.grad.zero_()
            """,
            note="the canonical manual SGD loop",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            @torch.no_grad()
            def sgd_step(params, lr):
                for p in params:
                    p.add_(p.grad, alpha=-lr)

            def make_weight(n):
                w = torch.empty(n, n, requires_grad=True)
                nn.init.xavier_uniform_(w)
                w.data.mul_(0.5)
                return w
            """,
            note="optimizer-like code under @no_grad, nn.init and .data",
        ),
        Valid(
            """
            import torch

            def accumulate(xs):
                total = torch.zeros(3, requires_grad=True)
                total = total * 1.0
                for x in xs:
                    total += x
                return total
            """,
            note="rebound to a non-leaf before the in-place change",
        ),
        Valid(
            """
            import torch

            def embed(tokens):
                table = torch.randn(100, 8)
                table[0] = 0.0
                out = table[tokens]
                out.requires_grad_()
                return out
            """,
            note="tensors that do not require grad",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(3, 1)
            teacher = nn.Linear(3, 1)
            for p in teacher.parameters():
                p.requires_grad = False
            loss = model(torch.randn(4, 3)).sum()
            loss.backward()
            for p in model.parameters():
                p.data -= 0.1 * p.grad
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.clamp_(-1, 1)
            for p in teacher.parameters():
                p.mul_(0.5)
            """,
            note="parameter updates through .data / under no_grad; a frozen model",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(3, 1)
            x, y = torch.randn(32, 3), torch.randn(32, 1)
            for epoch in range(20):
                loss = nn.functional.mse_loss(model(x), y)
                model.zero_grad()
                loss.backward()
                for p in model.parameters():
                    p -= 0.1 * p.grad
            """,
            lines=[11],
            fixed="""
            import torch
            import torch.nn as nn

            model = nn.Linear(3, 1)
            x, y = torch.randn(32, 3), torch.randn(32, 1)
            for epoch in range(20):
                loss = nn.functional.mse_loss(model(x), y)
                model.zero_grad()
                loss.backward()
                for p in model.parameters():
                    with torch.no_grad():
                        p -= 0.1 * p.grad
            """,
            raises=_LEAF_ERROR,
            check_fixed=(
                "assert model.weight.is_leaf and model.weight.grad is not None\n"
                "assert float(nn.functional.mse_loss(model(x), y)) < float(loss.detach())"
            ),
            note="a hand-written SGD step over model.parameters()",
        ),
        Invalid(
            """
            import torch

            w = torch.randn(3, requires_grad=True)
            x, y = torch.randn(16, 3), torch.randn(16)
            for step in range(100):
                loss = ((x @ w - y) ** 2).mean()
                loss.backward()
                w -= 0.1 * w.grad
                w.grad.zero_()
            """,
            lines=[8],
            fixed="""
            import torch

            w = torch.randn(3, requires_grad=True)
            x, y = torch.randn(16, 3), torch.randn(16)
            for step in range(100):
                loss = ((x @ w - y) ** 2).mean()
                loss.backward()
                with torch.no_grad():
                    w -= 0.1 * w.grad
                w.grad.zero_()
            """,
            raises=_LEAF_ERROR,
            check_fixed="assert w.requires_grad and w.grad_fn is None and float(loss.detach()) < 1e3",
            note="a manual SGD step (safe fix)",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.optim as optim

            X = torch.randn(100, 10, requires_grad=True)
            y = torch.randint(0, 2, (100,))
            model = nn.Linear(10, 2)
            criterion = nn.CrossEntropyLoss()
            optimizer = optim.SGD(model.parameters(), lr=0.01)

            for epoch in range(10):
                output = model(X)
                loss = criterion(output, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                X *= 0.1
            """,
            lines=[17],
            fixed="""
            import torch
            import torch.nn as nn
            import torch.optim as optim

            X = torch.randn(100, 10, requires_grad=True)
            y = torch.randint(0, 2, (100,))
            model = nn.Linear(10, 2)
            criterion = nn.CrossEntropyLoss()
            optimizer = optim.SGD(model.parameters(), lr=0.01)

            for epoch in range(10):
                output = model(X)
                loss = criterion(output, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    X *= 0.1
            """,
            raises=_LEAF_ERROR,
            check_fixed="assert X.grad is not None and model.weight.grad is not None",
            note="seed 002's example 3 (unsafe fix: it could have meant X = X * 0.1)",
        ),
        Invalid(
            """
            import torch

            def init_embeddings(n, dim):
                emb = torch.randn(n, dim).requires_grad_()
                emb[0] = 0.0  # padding row
                emb.clamp_(-1.0, 1.0)
                return emb
            """,
            lines=[5, 6],
            fixed="""
            import torch

            def init_embeddings(n, dim):
                emb = torch.randn(n, dim).requires_grad_()
                with torch.no_grad():
                    emb[0] = 0.0  # padding row
                    emb.clamp_(-1.0, 1.0)
                return emb
            """,
            raises="a view of a leaf Variable that requires grad is being used in an in-place operation",
            run="e = init_embeddings(10, 4)\ne[[1, 2]].sum().backward()",
            check_fixed="assert e.is_leaf and e.grad is not None and float(e[0].detach().abs().sum()) == 0.0",
        ),
        Invalid(
            """
            import torch as th

            w = th.randn(10, requires_grad=True)
            w[w > 1.0] = 1.0
            w.zero_()
            """,
            lines=[4, 5],
            fixed="""
            import torch as th

            w = th.randn(10, requires_grad=True)
            with th.no_grad():
                w[w > 1.0] = 1.0
            with th.no_grad():
                w.zero_()
            """,
            raises=_LEAF_ERROR,
            check_fixed="assert w.is_leaf and w.requires_grad and float(w.detach().abs().sum()) == 0.0",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        if not _may_create_leaves(unit):
            return
        created = _leaf_creations(unit)
        if not created:
            return
        names = {name for _, name in created}
        changes = []
        for node, receiver, what, error in inplace_changes(unit):
            if isinstance(receiver, ast.Name) and receiver.id in names:
                scope = unit.enclosing_function(node)
                if (scope, receiver.id) in created:
                    changes.append((node, receiver, what, error, scope))
        if not changes:
            return
        bindings = _bindings(unit, {(scope, receiver.id) for _, receiver, _, _, scope in changes})
        origins = {key: "a parameter (a leaf that requires grad)" for key in _parameter_loops(unit)}
        flagged = []
        for node, receiver, what, error, scope in changes:
            key = (scope, receiver.id)
            position = (receiver.lineno, receiver.col_offset)
            before = [b for b in bindings.get(key, []) if b[0] < position]
            if not before:
                continue
            _, leaf_line = max(before)
            if leaf_line is None or unit.in_no_grad(node):
                continue
            origin = origins.get((scope, receiver.id), "a leaf tensor that requires grad")
            message = self.message.format(
                what=what,
                name=receiver.id,
                origin=origin,
                line=leaf_line,
                error=error,
                alternative=_out_of_place_hint(node, receiver.id),
            )
            flagged.append((node, message, _wrappable(unit, node, receiver.id)))
        torch = torch_name(unit)
        # consecutive flagged statements go under one `with torch.no_grad():`
        runs = {id(w[0]): w[1] for _, _, w in flagged if w is not None}
        for node, message, wrappable in flagged:
            fix = None
            if wrappable is not None and torch is not None:
                statement, applicability = wrappable
                last = statement
                while True:
                    following = _next_sibling(unit, last)
                    if following is None or runs.get(id(following)) is not applicability:
                        break
                    last = following
                header = f"with {torch}.no_grad():"
                fix = self.make_fix(
                    f"Wrap in `{header}`",
                    lambda first=statement, last=last, header=header: [_wrap(unit, first, last, header)],
                    applicability,
                )
            yield self.finding(unit, node, message, fix=fix)


def _out_of_place_hint(node: ast.AST, name: str) -> str:
    if isinstance(node, ast.AugAssign) and type(node.op) in _OPERATORS:
        return f"`{name} = {name} {_OPERATORS[type(node.op)]} ...`"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _OUT_OF_PLACE
    ):
        return f"`{name} = {name}.{node.func.attr[:-1]}(...)`"
    if isinstance(node, ast.Assign):
        return f"a new tensor (`torch.where(...)`, `{name}.index_put(...)`)"
    return "it out of place"


def _wrappable(unit: Unit, node: ast.AST, name: str) -> tuple[ast.stmt, Applicability] | None:
    """The statement to put under no_grad (when the change is the whole statement, alone
    on its lines) and how safe that is."""
    statement = unit.parent(node) if isinstance(node, ast.Call) else node
    if not isinstance(statement, (ast.Expr, ast.Assign, ast.AugAssign)):
        return None
    if isinstance(statement, ast.Expr) and statement.value is not node:
        return None
    siblings = _block(unit, statement)
    if siblings is None:
        return None
    first, last = statement.lineno, statement.end_lineno or statement.lineno
    for s in siblings:
        if s is not statement and s.lineno <= last and (s.end_lineno or s.lineno) >= first:
            return None  # shares a line with another statement (`a = 1; w += 1`)
    safe = _is_update_of_leaf(statement, node, name)
    return statement, Applicability.SAFE if safe else Applicability.UNSAFE


def _block(unit: Unit, statement: ast.stmt) -> list[ast.stmt] | None:
    parent = unit.parent(statement)
    if parent is None:
        return unit.nodes if statement in unit.nodes else None
    for field in ("body", "orelse", "finalbody"):
        block = getattr(parent, field, None)
        if isinstance(block, list) and statement in block:
            return block
    return None


def _next_sibling(unit: Unit, statement: ast.stmt) -> ast.stmt | None:
    block = _block(unit, statement)
    if block is None:
        return None
    index = block.index(statement)
    return block[index + 1] if index + 1 < len(block) else None


def _wrap(unit: Unit, first: ast.stmt, last: ast.stmt, header: str):
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


def _is_update_of_leaf(statement: ast.stmt, node: ast.AST, name: str) -> bool:
    """A gradient step (reads `name.grad`) or a re-initialisation: no_grad is what is meant."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _REINIT:
        return all(isinstance(a, ast.Constant) for a in node.args)
    for sub in ast.walk(statement):
        if (
            isinstance(sub, ast.Attribute)
            and sub.attr == "grad"
            and isinstance(sub.value, ast.Name)
            and sub.value.id == name
        ):
            return True
    return False


_LEAF_WORDS = ("requires_grad", "Parameter", "parameters")


def _may_create_leaves(unit: Unit) -> bool:
    """A cheap textual pre-check: no leaf can be made without one of these words."""
    first = unit.nodes[0]
    last = unit.nodes[-1]
    text = unit.source.text_between(first.lineno, 1, (last.end_lineno or last.lineno) + 1, 1)
    return any(word in text for word in _LEAF_WORDS)


def _leaf_creations(unit: Unit) -> set[tuple[ast.AST | None, str]]:
    """(scope, name) pairs of names bound somewhere to a new leaf that requires grad
    (or marked as requiring grad)."""
    found = set()
    for node in unit.nodes_of(ast.Assign):
        assert isinstance(node, ast.Assign)
        if _creates_leaf(node.value, unit):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.add((unit.enclosing_function(node), target.id))
    for node, name in _grad_markings(unit):
        found.add((unit.enclosing_function(node), name))
    found.update(_parameter_loops(unit))
    return found


def _parameter_loops(unit: Unit) -> dict[tuple[ast.AST | None, str], ast.For]:
    """`for p in model.parameters():` / `for name, p in model.named_parameters():` loops
    (scope, p) -> loop; none when the unit switches `requires_grad` off anywhere."""
    cached = unit.__dict__.get("_gg203_parameter_loops")
    if cached is not None:
        return cached
    loops: dict[tuple[ast.AST | None, str], ast.For] = {}
    candidates = method_call_index(unit)
    if ("parameters" in candidates or "named_parameters" in candidates) and not freezes_something(unit):
        for loop in unit.nodes_of(ast.For):
            name = _parameter_loop_target(loop)
            if name is not None:
                loops[(unit.enclosing_function(loop), name)] = loop
    unit.__dict__["_gg203_parameter_loops"] = loops
    return loops


def _parameter_loop_target(loop: ast.AST) -> str | None:
    if not isinstance(loop, ast.For):
        return None
    call = loop.iter
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and not call.args):
        return None
    target = loop.target
    if call.func.attr == "parameters" and isinstance(target, ast.Name):
        return target.id
    if (
        call.func.attr == "named_parameters"
        and isinstance(target, ast.Tuple)
        and len(target.elts) == 2
        and isinstance(target.elts[1], ast.Name)
    ):
        return target.elts[1].id
    return None


def _grad_markings(unit: Unit) -> list[tuple[ast.AST, str]]:
    """`x.requires_grad_()` statements and `x.requires_grad = True` assignments."""
    marks = []
    for call in method_call_index(unit).get("requires_grad_", ()):
        receiver = call.func.value  # type: ignore[attr-defined]
        arg = call.args[0] if call.args else keyword(call, "requires_grad")
        if (
            isinstance(receiver, ast.Name)
            and (arg is None or is_true(arg))
            and isinstance(unit.parent(call), ast.Expr)
        ):
            marks.append((call, receiver.id))
    for node in unit.nodes_of(ast.Assign):
        assert isinstance(node, ast.Assign)
        if is_true(node.value):
            for target in node.targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == "requires_grad"
                    and isinstance(target.value, ast.Name)
                ):
                    marks.append((node, target.value.id))
    return marks


def _creates_leaf(value: ast.expr, unit: Unit) -> bool:
    if not isinstance(value, ast.Call):
        return False
    if creates_grad_leaf(value, unit.module):
        return True
    func = value.func
    last = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if last == "Variable" and is_true(keyword(value, "requires_grad")):
        # the pre-0.4 API: `Variable(t, requires_grad=True)` is always a new leaf
        return unit.module.call_name(value) in _VARIABLE
    if last.endswith("Parameter") and unit.module.is_parameter_constructor(value):
        flag = value.args[1] if len(value.args) > 1 else keyword(value, "requires_grad")
        return flag is None or is_true(flag)
    return False


def _bindings(unit: Unit, keys: set[tuple[ast.AST | None, str]]) -> dict:
    """For each (scope, name): [((line, col), leaf_line or None)] of every binding,
    where leaf_line is set when the binding makes the name a new leaf requiring grad."""
    wanted = {name for _, name in keys}
    result: dict[tuple[ast.AST | None, str], list] = {}
    for node in unit.nodes_of(ast.Name):
        assert isinstance(node, ast.Name)
        if node.id not in wanted or not isinstance(node.ctx, (ast.Store, ast.Del)):
            continue
        parent = unit.parent(node)
        if isinstance(parent, ast.AugAssign):
            continue  # `w += 1` changes the tensor in place; it stays what it was
        key = (unit.enclosing_function(node), node.id)
        if key not in keys:
            continue
        leaf_line = None
        if isinstance(parent, ast.Assign) and _creates_leaf(parent.value, unit):
            leaf_line = parent.lineno
        loop = unit.parent(parent) if isinstance(parent, ast.Tuple) else parent
        if _parameter_loop_target(loop) == node.id and (key[0], node.id) in _parameter_loops(unit):
            leaf_line = loop.lineno
        result.setdefault(key, []).append(((node.lineno, node.col_offset), leaf_line))
    for node, name in _grad_markings(unit):
        key = (unit.enclosing_function(node), name)
        if key not in keys:
            continue
        # marking x as requiring grad makes it a leaf that requires grad only if x was a fresh tensor
        position = (node.lineno, node.col_offset)
        earlier = [b for b in result.get(key, []) if b[0] < position]
        if earlier and _fresh_binding(unit, key, max(earlier)[0]):
            result[key].append((position, node.lineno))
    return result


def _fresh_binding(unit: Unit, key: tuple, position: tuple[int, int]) -> bool:
    for node in unit.nodes_of(ast.Assign):
        assert isinstance(node, ast.Assign)
        for target in node.targets:
            if isinstance(target, ast.Name) and (target.lineno, target.col_offset) == position:
                return (
                    isinstance(node.value, ast.Call) and unit.module.call_name(node.value) in TENSOR_FACTORIES
                )
    return False
