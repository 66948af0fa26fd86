"""GG603: an input or output tensor stored as a `ctx` attribute instead of `save_for_backward`."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Applicability, Finding, TextEdit
from gradguard.engine.fixes import delete_statement, replace_node
from gradguard.engine.index import Unit, callee_name
from gradguard.engine.interpreter import ATTRIBUTE_STORE
from gradguard.engine.rule import Invalid, Message, Rule, Valid

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


class CtxAttributeTensor(Rule):
    code = "GG603"
    needs_class = "function"  # starts from unit.function_classes() only
    name = "ctx-attribute-tensor"
    summary = "An input or output tensor of a custom autograd Function is stored on `ctx` instead of `ctx.save_for_backward`."
    why = (
        "A tensor kept as a `ctx` attribute escapes autograd's in-place check (backward silently uses "
        "modified values), and an output stored there leaks memory; `ctx.save_for_backward` does neither."
    )
    message = Message(
        "`{ctx}.{attr} = {value}` stores the {role} tensor on ctx instead of `save_for_backward`\nAutograd "
        "cannot check it for in-place changes (backward silently uses the modified values){leak}; use "
        "`{ctx}.save_for_backward({value})` and `{ctx}.saved_tensors`."
    )
    explanation = """
    Tensors that `backward` needs and that are inputs or outputs of `forward` must be
    saved with `ctx.save_for_backward(...)` and read back with `ctx.saved_tensors`.
    Storing them as plain attributes (`ctx.x = x`) runs, but:

    * autograd records the version of every saved tensor. If the tensor is modified in
      place after `forward` (an optimizer step, `x.add_(1)`, a `ReLU(inplace=True)`),
      `saved_tensors` raises *"one of the variables needed for gradient computation has
      been modified by an inplace operation"*. A `ctx` attribute is not checked:
      `backward` silently computes the gradient from the modified values.
    * storing an **output** on `ctx` creates a reference cycle (output → grad_fn →
      ctx → output) that keeps the tensors alive until the garbage collector runs: a
      memory leak in long training runs.
    * saved-tensor hooks (activation offloading, checkpointing) do not see it.

    Non-tensor values (`ctx.scale = scale`, `ctx.shape = x.shape`) and intermediate
    tensors that are neither inputs nor outputs belong on `ctx` and are not reported.

    **Fix safety.** Unsafe: `save_for_backward` checks that the saved tensors are not modified in
    place before `backward` (a later in-place change now raises instead of silently giving wrong
    gradients), and `backward` reads them from `ctx.saved_tensors`.
    """
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import torch

            class Scale(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, factor):
                    ctx.factor = factor
                    ctx.shape = x.shape
                    ctx.save_for_backward(x)
                    return x * factor

                @staticmethod
                def backward(ctx, g):
                    (x,) = ctx.saved_tensors
                    return g * ctx.factor, None
            """,
            note="non-tensor attributes",
        ),
        Valid(
            """
            import torch

            # backward reads the stored input only for its shape (torchani nn/_infer.py)
            class Gather(torch.autograd.Function):
                @staticmethod
                def forward(ctx, aev, idx):
                    ctx.aev = aev
                    ctx.idx = idx
                    return aev.index_select(0, idx).sum(0, keepdim=True)

                @staticmethod
                def backward(ctx, grad_o):
                    aev = ctx.aev
                    aev_grad = torch.zeros_like(aev)
                    aev_grad[ctx.idx] = grad_o.expand(len(ctx.idx), -1)
                    return aev_grad, None
            """,
            note="an input read in backward only for its metadata (zeros_like, .shape)",
            run="""
            aev = torch.randn(5, 3, requires_grad=True)
            Gather.apply(aev, torch.tensor([0, 2])).sum().backward()
            assert aev.grad[0].eq(1).all() and aev.grad[1].eq(0).all()
            """,
        ),
        Valid(
            """
            import torch

            class Clip(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    mask = (x > 0) & (x < 1)
                    ctx.mask = mask
                    return x.clamp(0, 1)

                @staticmethod
                def backward(ctx, g):
                    return g * ctx.mask
            """,
            note="an intermediate tensor may live on ctx",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            class Exp(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    result = x.exp()
                    ctx.result = result
                    return result

                @staticmethod
                def backward(ctx, grad_output):
                    return grad_output * ctx.result
            """,
            lines=[7],
            fixed="""
            import torch

            class Exp(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    result = x.exp()
                    ctx.save_for_backward(result)
                    return result

                @staticmethod
                def backward(ctx, grad_output):
                    result, = ctx.saved_tensors
                    return grad_output * result
            """,
            check_fixed="""
            x = torch.randn(3, requires_grad=True)
            Exp.apply(x).sum().backward()
            assert torch.allclose(x.grad, x.exp())
            """,
        ),
        Invalid(
            """
            import torch

            class LinearFn(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, w):
                    ctx.x = x
                    ctx.w = w
                    return x.mm(w.t())

                @staticmethod
                def backward(ctx, grad_output):
                    x = ctx.x
                    return grad_output.mm(ctx.w), grad_output.t().mm(x)
            """,
            lines=[6, 7],
            fixed="""
            import torch

            class LinearFn(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, w):
                    ctx.save_for_backward(x, w)
                    return x.mm(w.t())

                @staticmethod
                def backward(ctx, grad_output):
                    x, w = ctx.saved_tensors
                    return grad_output.mm(w), grad_output.t().mm(x)
            """,
            check_fixed="""
            x = torch.randn(2, 3, requires_grad=True)
            w = torch.randn(4, 3, requires_grad=True)
            LinearFn.apply(x, w).sum().backward()
            assert torch.allclose(w.grad, torch.ones(2, 4).t().mm(x))
            """,
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for cls in unit.function_classes():
            methods = unit.methods(cls)
            forward, backward = methods.get("forward"), methods.get("backward")
            if forward is None or "setup_context" in methods:
                continue
            params = forward.args.posonlyargs + forward.args.args
            if not params:
                continue
            ctx = params[0].arg
            body = _walk(forward)
            stored = _stored_tensors(unit, forward, params, ctx)
            if not stored:
                continue
            fix = None
            if backward is not None:
                edits = _fix_edits(unit, forward, backward, ctx, stored, body)
                if edits:
                    fix = self.make_fix("Use `save_for_backward` / `saved_tensors`", edits)
            if backward is not None:
                # an input whose values `backward` never reads (`torch.zeros_like(ctx.x)`, `ctx.x.shape`):
                # an in-place change of it changes nothing backward computes
                stored = [
                    s for s in stored if s[3] == "output" or not _metadata_only(unit, backward, ctx, s[1])
                ]
                if not stored:
                    continue
            for node, attr, value, role in stored:
                leak = " and keeps a reference cycle that leaks memory" if role == "output" else ""
                message = self.message.format(ctx=ctx, attr=attr, value=value, role=role, leak=leak)
                yield self.finding(unit, node, message, fix=fix)


def _stored_tensors(
    unit: Unit, forward: ast.AST, params: list, ctx: str
) -> list[tuple[ast.Assign, str, str, str]]:
    """`ctx.attr = name` in forward where `name` holds one of forward's input tensors (or a
    view of one) or the very tensor forward returns: (statement, attr, name, "input"/"output").
    A fresh tensor computed in forward is neither."""
    flow = unit.semantics.flow(forward)
    # an input is known to be a tensor when forward uses it as one (a method, `@`, a torch function)
    used = _tensor_inputs(_walk(forward), {p.arg for p in params[1:]})
    inputs = {p for p in params[1:] if p.arg in used}
    returned: set = set()
    for _, value in flow.returns:
        for part in (value, *(value.items or ())):
            returned |= part.sites
    found = []
    for event in flow.events_of(ATTRIBUTE_STORE):
        node, target = event.node, event.target
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == ctx
            and isinstance(node.value, ast.Name)
        ):
            continue
        value = event.value
        if not value.is_tensor:
            continue
        if value.sites & returned:
            found.append((node, target.attr, node.value.id, "output"))
        elif value.roots and value.roots <= inputs:
            found.append((node, target.attr, node.value.id, "input"))
    return found


def _tensor_inputs(body: list[ast.AST], inputs: set[str]) -> set[str]:
    """Inputs used as tensors: a method is called on them or they are matmul operands
    or arguments of a `torch.*` function."""
    found = set()
    for node in body:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if (
                isinstance(receiver, ast.Name)
                and receiver.id in inputs
                and node.func.attr in torch_facts.TENSOR_INPUT_METHODS
            ):
                found.add(receiver.id)
            root = receiver
            parts = [node.func.attr]
            while isinstance(root, ast.Attribute):
                parts.append(root.attr)
                root = root.value
            if (
                isinstance(root, ast.Name)
                and root.id in ("torch", "F")
                and len(parts) <= 2
                and parts[-1] in ("nn", "functional", "special", "linalg", "fft") + tuple(parts[:1])
                and node.args
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in inputs
            ):
                found.add(node.args[0].id)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            found.update(v.id for v in (node.left, node.right) if isinstance(v, ast.Name) and v.id in inputs)
    return found


def _walk(func: ast.AST) -> list[ast.AST]:
    """Nodes of a function body, not entering nested scopes, in source order."""
    out = []
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, _SCOPES):
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    out.sort(key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0)))
    return out


def _fix_edits(unit, forward, backward, ctx, stored, body) -> list[TextEdit] | None:
    # forward: one save_for_backward where the last stored attribute was set
    if any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "save_for_backward"
        for n in body
    ):
        return None
    names = [value for _, _, value, _ in stored]
    attrs = [attr for _, attr, _, _ in stored]
    if len(set(names)) != len(names) or len(set(attrs)) != len(attrs):
        return None
    first, last = stored[0][0], stored[-1][0]
    for node in body:
        if isinstance(node, (ast.Assign, ast.AugAssign)) and first.lineno < node.lineno < last.lineno:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id in names for t in targets):
                return None
    for node, _, _, _ in stored:
        if not isinstance(unit.parent(node), (ast.FunctionDef, ast.AsyncFunctionDef)):
            return None  # conditional stores: keep it manual
    edits = [delete_statement(unit, node) for node, _, _, _ in stored[:-1]]
    edits.append(replace_node(unit, last, f"{ctx}.save_for_backward({', '.join(names)})"))
    backward_edits = _backward_edits(unit, backward, attrs)
    return None if backward_edits is None else edits + backward_edits


def _backward_edits(unit, backward, attrs: list[str]) -> list[TextEdit] | None:
    """backward: read the saved tensors back once, at the top, under the attributes' names."""
    bparams = backward.args.posonlyargs + backward.args.args
    if not bparams or not backward.body:
        return None
    bctx = bparams[0].arg
    bbody = _walk(backward)
    reads = []
    drop = []
    for node in bbody:
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == bctx
            and node.attr in attrs
        ):
            if not isinstance(node.ctx, ast.Load):
                return None
            reads.append(node)
    for node in bbody:
        # `x = ctx.x` where the local name equals the attribute: drop the line
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Attribute)
            and node.value in reads
            and node.targets[0].id == node.value.attr
            and isinstance(unit.parent(node), (ast.FunctionDef, ast.AsyncFunctionDef))
        ):
            drop.append(node)
    dropped_targets = {id(n.targets[0]) for n in drop}
    for attr in attrs:
        clash = [
            n for n in bbody if isinstance(n, ast.Name) and n.id == attr and id(n) not in dropped_targets
        ]
        bound_elsewhere = [n for n in clash if not isinstance(n.ctx, ast.Load)]
        if bound_elsewhere or (clash and not any(d.targets[0].id == attr for d in drop)):
            return None
    return _unpack_saved(unit, backward, bctx, attrs, reads, drop)


def _unpack_saved(unit, backward, bctx: str, attrs: list[str], reads: list, drop: list) -> list[TextEdit]:
    """`a, b = ctx.saved_tensors` above backward's first statement (in place of a dropped `a = ctx.a`
    there), the other dropped reads deleted and each remaining `ctx.a` read as `a`."""
    dropped_reads = {id(n.value) for n in drop}
    edits = []
    first_stmt = backward.body[0]
    if (
        isinstance(first_stmt, ast.Expr)
        and isinstance(first_stmt.value, ast.Constant)
        and isinstance(first_stmt.value.value, str)
        and len(backward.body) > 1
    ):
        first_stmt = backward.body[1]
    unpack = ", ".join(attrs) + ("," if len(attrs) == 1 else "")
    line = first_stmt.lineno
    indent = unit.source.indentation(line)
    newline = unit.source.newline()
    header = f"{indent}{unpack} = {bctx}.saved_tensors{newline}"
    if drop and drop[0] is first_stmt:
        # replace the first dropped read in place
        edits.append(TextEdit(line, 1, (first_stmt.end_lineno or line) + 1, 1, header))
        drop = drop[1:]
    else:
        edits.append(TextEdit(line, 1, line, 1, header))
    edits += [delete_statement(unit, d) for d in drop]
    edits += [replace_node(unit, r, r.attr) for r in reads if id(r) not in dropped_reads]
    return edits


# what reads only a tensor's metadata (shape, dtype, device), never its values
_METADATA_ATTRIBUTES = torch_facts.METADATA_ATTRIBUTES
_METADATA_METHODS = torch_facts.METADATA_METHODS | torch_facts.tensor_creating_methods()
_METADATA_FUNCTIONS = frozenset(name.rsplit(".", 1)[1] for name in torch_facts.like_factories())


def _metadata_only(unit: Unit, backward: ast.AST, ctx_name: str, attr: str) -> bool:
    """Whether `backward` reads `ctx.<attr>` (directly or through names bound to it) only for its
    metadata: `torch.zeros_like(aev)`, `aev.shape`, `aev.new_zeros(...)` (torchani nn/_infer.py)."""
    backward_args = backward.args  # type: ignore[attr-defined]
    params = backward_args.posonlyargs + backward_args.args
    me = params[0].arg if params else ctx_name
    reads = [
        n
        for n in ast.walk(backward)
        if isinstance(n, ast.Attribute)
        and n.attr == attr
        and isinstance(n.value, ast.Name)
        and n.value.id == me
        and isinstance(n.ctx, ast.Load)
    ]
    aliases: set[str] = set()
    for read in reads:
        parent = unit.parent(read)
        if (
            isinstance(parent, ast.Assign)
            and parent.value is read
            and len(parent.targets) == 1
            and isinstance(parent.targets[0], ast.Name)
        ):
            aliases.add(parent.targets[0].id)
        elif not _reads_metadata(unit, read):
            return False
    for node in ast.walk(backward):
        if isinstance(node, ast.Name) and node.id in aliases:
            if isinstance(node.ctx, ast.Load) and not _reads_metadata(unit, node):
                return False
            if not isinstance(node.ctx, ast.Load) and not (
                isinstance(unit.parent(node), ast.Assign) and unit.parent(node).value in reads  # type: ignore[union-attr]
            ):
                return False  # rebound to something else: not followed
    return bool(reads)


def _reads_metadata(unit: Unit, node: ast.AST) -> bool:
    parent = unit.parent(node)
    if isinstance(parent, ast.Attribute) and parent.value is node:
        if parent.attr in _METADATA_ATTRIBUTES:
            return True
        call = unit.parent(parent)
        return parent.attr in _METADATA_METHODS and isinstance(call, ast.Call) and call.func is parent
    if isinstance(parent, ast.Call) and parent.args and parent.args[0] is node:
        func = parent.func
        name = callee_name(func) or ""
        return name in _METADATA_FUNCTIONS
    return False
