"""GG601: `autograd.Function.backward` returns the wrong number of gradients."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Applicability, Finding, Severity
from gradguard.engine.fixes import insert_after_statement, replace_node
from gradguard.engine.index import Unit, callee_name
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.values import NONE, TUPLE

_ERROR = "returned an incorrect number of gradients"


class FunctionGradCount(Rule):
    code = "GG601"
    needs_class = "function"  # starts from unit.function_classes() only
    name = "function-grad-count"
    summary = "A custom `torch.autograd.Function`'s `backward` returns a different number of values than `forward` has inputs."
    why = (
        "`backward` must return one gradient (or `None`) per argument of `forward`; any other count makes the"
        ' backward pass raise "returned an incorrect number of gradients".'
    )
    severity = Severity.ERROR
    message = Message(
        "`{cls}.backward` returns {got} value(s) but `forward` takes {expected} input(s) after `ctx`\n"
        'PyTorch raises "function {cls}Backward returned an incorrect number of gradients (expected '
        '{expected}, got {got})".'
    )
    explanation = """
    `backward` must return exactly one gradient per argument of `forward` (not counting
    `ctx`), in the same order, even for arguments that need no gradient: return `None`
    for those (integers, flags, tensors that do not require grad). When the count is
    wrong, the backward pass raises:

    > RuntimeError: function MyFnBackward returned an incorrect number of gradients
    > (expected 2, got 1)

    A common cause is forgetting the gradient of a second input (a weight, a scale) or
    of a non-tensor argument. Extra trailing `None`s are tolerated by PyTorch and are not
    reported.

    **Fix safety.** When `backward` returns too few values, the fix returns `None` for the missing
    inputs. Safe when each missing input has a constant default in `forward` (a flag, a number):
    such an input gets no gradient, and `None` is the only value autograd accepts for it. Unsafe
    otherwise: the `None`s go to the last inputs, and a tensor input that needs a gradient would
    silently get none. When `backward` computes its gradients but never returns them, the fix
    returns the locals named after `forward`'s inputs (`grad_w` for `w`, `None` for an input
    with a constant default); unsafe, since it matches gradients to inputs by name. No fix when
    `backward` returns too many values or several returns disagree.
    """
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch

            class Exchange(torch.autograd.Function):
                @staticmethod
                def forward(ctx, left, right, group, to_left, to_right):
                    ctx.ranks = (left, right)
                    return to_left * 2, to_right * 3

                @staticmethod
                def backward(ctx, *grads):
                    return (None, None, None) + Exchange.apply(1, 0, None, *grads)

            x = torch.randn(3, requires_grad=True)
            y = torch.randn(3, requires_grad=True)
            a, b = Exchange.apply(0, 1, None, x, y)
            (a.sum() + b.sum()).backward()
            """,
            note="a tuple of Nones joined to a two-output Function's `apply`: five values "
            "(open_clip loss.py NeighbourExchangeBidir)",
            run="assert x.grad is not None and y.grad is not None",
        ),
        Valid(
            """
            import torch

            class Scale(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, factor):
                    ctx.factor = factor
                    return x * factor

                @staticmethod
                def backward(ctx, grad_output):
                    return grad_output * ctx.factor, None
            """,
            note="None for the non-tensor input",
        ),
        Valid(
            """
            import torch

            class Split(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, w):
                    ctx.save_for_backward(x, w)
                    return x * w

                @staticmethod
                def backward(ctx, g):
                    x, w = ctx.saved_tensors
                    grads = (g * w, g * x)
                    return grads
            """,
            note="a tuple built first",
        ),
        Valid(
            """
            import torch

            class Identity(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return x.clone()

                @staticmethod
                def backward(ctx, g):
                    return g, None
            """,
            note="extra trailing None is accepted",
        ),
        Valid(
            """
            import torch

            class GridScale(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, w, mode):
                    ctx.save_for_backward(x, w)
                    return x * w

                @staticmethod
                def backward(ctx, grad):
                    if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
                        return None, None, None
                    x, w = ctx.saved_tensors
                    if ctx.needs_input_grad[0]:
                        return grad * w, grad * x if ctx.needs_input_grad[1] else None, None
                    if ctx.needs_input_grad[1]:
                        return None, grad * x, None
            """,
            note="monai networks/layers/spatial_transforms.py (`_GridPull.backward`): the `if`s that return "
            "cover every case, so the end of `backward` is never reached",
            run="""
            x, w = torch.randn(3, requires_grad=True), torch.randn(3, requires_grad=True)
            GridScale.apply(x, w, 0).sum().backward()
            GridScale.apply(x.detach(), w, 0).sum().backward()
            GridScale.apply(x, w.detach(), 0).sum().backward()
            """,
        ),
        Valid(
            """
            import torch

            class Scatter(torch.autograd.Function):
                @staticmethod
                def forward(ctx, input, dim=-1):
                    ctx.size = input.shape[0]
                    return input[: ctx.size // 2]

                @staticmethod
                def backward(ctx, grad_output):
                    full = grad_output.new_zeros((ctx.size, *grad_output.shape[1:]))
                    full[: grad_output.shape[0]] = grad_output
                    return full

            def scatter(input):
                return Scatter.apply(input)
            """,
            note="dev7 fairchem-core gp_utils (`ScatterToModelParallelRegion`): `dim` has a default and no "
            "`apply` call passes it, so autograd expects one gradient",
            run="""
            x = torch.randn(4, 3, requires_grad=True)
            scatter(x).sum().backward()
            assert x.grad[:2].eq(1).all() and x.grad[2:].eq(0).all()
            """,
        ),
        Valid(
            """
            import torch

            _IMPL = None

            class _Fast(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, w, eps, offset=0.0):
                    ctx.save_for_backward(x, w)
                    return x * w + eps + offset

                @staticmethod
                def backward(ctx, dy):
                    x, w = ctx.saved_tensors
                    return dy * w, dy * x, None, None

            def _impl():
                global _IMPL
                if _IMPL is None:
                    _IMPL = _Fast
                return _IMPL

            class Norm(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, w, eps, offset=0.0):
                    return _impl().forward(ctx, x, w, eps, offset)

                @staticmethod
                def backward(ctx, dy):
                    return _impl().backward(ctx, dy)

            x, w = torch.randn(3, requires_grad=True), torch.randn(3, requires_grad=True)
            Norm.apply(x, w, 1e-6).sum().backward()
            """,
            run="assert torch.equal(x.grad, w.detach()) and torch.equal(w.grad, x.detach())",
            note="`backward` returns another Function's `backward(ctx, ...)`: that one's tuple, not one "
            "value (dev9 liger-kernel cutedsl/ops/rms_norm.py `LigerRMSNormFunction`)",
        ),
        Valid(
            """
            import torch

            class Sparsify(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, mask, scale):
                    return x * mask * scale

                @staticmethod
                def backward(ctx, grad_out):
                    return grad_out, None, None
                    return grad_out, None

            x = torch.randn(4, requires_grad=True)
            Sparsify.apply(x, torch.ones(4), 2.0).sum().backward()
            """,
            run="assert torch.equal(x.grad, torch.ones(4))",
            note="a `return` after an unconditional `return` never runs (holdout5 torchao "
            "sparsity/training/autograd.py `_SparsifyLikeFunc`, reviewed after the measurement)",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            class MulConst(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, scale):
                    ctx.scale = scale
                    return x * scale

                @staticmethod
                def backward(ctx, grad_output):
                    return grad_output * ctx.scale
            """,
            lines=[11],
            fixed="""
            import torch

            class MulConst(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, scale):
                    ctx.scale = scale
                    return x * scale

                @staticmethod
                def backward(ctx, grad_output):
                    return grad_output * ctx.scale, None
            """,
            raises="function MulConstBackward returned an incorrect number of gradients (expected 2, got 1)",
            run="MulConst.apply(torch.randn(3, requires_grad=True), 2.0).sum().backward()",
            note="unsafe fix: `scale` has no default, so it could be a tensor that needs a gradient",
        ),
        Invalid(
            """
            import torch

            class Sign(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, training=True):
                    return x.sign() if training else x.round()

                @staticmethod
                def backward(ctx, grad_output):
                    return grad_output

            def binarize(x, training):
                return Sign.apply(x, training)
            """,
            lines=[10],
            fixed="""
            import torch

            class Sign(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, training=True):
                    return x.sign() if training else x.round()

                @staticmethod
                def backward(ctx, grad_output):
                    return grad_output, None

            def binarize(x, training):
                return Sign.apply(x, training)
            """,
            raises="function SignBackward returned an incorrect number of gradients (expected 2, got 1)",
            run="binarize(torch.randn(3, requires_grad=True), True).sum().backward()",
            note="safe fix: the flag has a constant default (1zb/pytorch-image-comp-rnn#4)",
        ),
        Invalid(
            """
            import torch

            class Square(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return x ** 2

                @staticmethod
                def backward(ctx, grad_output):
                    (x,) = ctx.saved_tensors
                    return grad_output * 2 * x, grad_output
            """,
            lines=[12],
            raises="function SquareBackward returned an incorrect number of gradients (expected 1, got 2)",
            run="Square.apply(torch.randn(3, requires_grad=True)).sum().backward()",
        ),
        Invalid(
            """
            import torch

            class Adder(torch.autograd.Function):
                @staticmethod
                def forward(ctx, w, x):
                    ctx.save_for_backward(w, x)
                    return -(w.unsqueeze(1) - x.unsqueeze(0)).abs().sum(-1)

                @staticmethod
                def backward(ctx, grad_output):
                    w, x = ctx.saved_tensors
                    grad_w = ((x.unsqueeze(0) - w.unsqueeze(1)) * grad_output.unsqueeze(-1)).sum(1)
                    grad_x = ((w.unsqueeze(1) - x.unsqueeze(0)) * grad_output.unsqueeze(-1)).sum(0)
            """,
            lines=[10],
            fixed="""
            import torch

            class Adder(torch.autograd.Function):
                @staticmethod
                def forward(ctx, w, x):
                    ctx.save_for_backward(w, x)
                    return -(w.unsqueeze(1) - x.unsqueeze(0)).abs().sum(-1)

                @staticmethod
                def backward(ctx, grad_output):
                    w, x = ctx.saved_tensors
                    grad_w = ((x.unsqueeze(0) - w.unsqueeze(1)) * grad_output.unsqueeze(-1)).sum(1)
                    grad_x = ((w.unsqueeze(1) - x.unsqueeze(0)) * grad_output.unsqueeze(-1)).sum(0)
                    return grad_w, grad_x
            """,
            raises="returned an incorrect number of gradients (expected 2, got 1)",
            run="Adder.apply(torch.randn(3, 4, requires_grad=True), torch.randn(5, 4)).sum().backward()",
            note="the gradients are computed but never returned (huawei-noah/AdderNet#21)",
        ),
        Invalid(
            """
            import torch

            class GridScale(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x, w):
                    ctx.save_for_backward(x, w)
                    return x * w

                @staticmethod
                def backward(ctx, grad):
                    x, w = ctx.saved_tensors
                    if ctx.needs_input_grad[0]:
                        return grad * w, grad * x if ctx.needs_input_grad[1] else None
            """,
            lines=[10],
            raises="returned an incorrect number of gradients (expected 2, got 1)",
            run="GridScale.apply(torch.randn(3), torch.randn(3, requires_grad=True)).sum().backward()",
            note="the `if`s that return do not cover the case where only `w` needs a gradient",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for cls in unit.function_classes():
            methods = unit.methods(cls)
            forward, backward = methods.get("forward"), methods.get("backward")
            if forward is None or backward is None:
                continue
            if not _static(forward) or not _static(backward):
                continue  # a non-static forward/backward is GG602's finding
            inputs = _gradient_inputs(forward, "setup_context" in methods)
            if not inputs:
                continue
            expected = len(inputs)
            # an input with a default counts only when `apply` passes it (unless `setup_context`
            # binds the defaults): below the largest count a call of the file passes, a count
            # is known wrong only when it is below the inputs without a default
            known = len(inputs) - _default_count(forward, inputs, "setup_context" in methods)
            if known < expected:
                passed = _passed_counts(unit, cls.name)
                known = min(max([known, *passed]), expected) if passed is not None else known
            flow = unit.semantics.flow(backward)
            counts = _return_counts(flow, backward)
            if (
                flow.final is not None
                and min(expected, known) > 1
                and not _raises_at_end(backward)
                and not _exhaustive_chain(backward)
            ):
                # falls off the end: returns None, one value
                finding = self._no_return(unit, cls.name, backward, expected, known)
                if not _returns(backward):
                    finding.fix = self._return_fix(unit, forward, backward, inputs)
                yield finding
            yield from self._wrong_counts(unit, cls.name, forward, counts, inputs, known)

    def _wrong_counts(
        self,
        unit: Unit,
        name: str,
        forward,
        counts: list[tuple[ast.Return, int]],
        inputs: list[ast.arg],
        known: int,
    ) -> Iterator[Finding]:
        """A finding for each `return` whose number of values is not one per input (`known`: how
        many inputs every call is known to pass at least, the inputs with a default left out)."""
        expected = len(inputs)
        for ret, got in counts:
            if got == expected:
                continue
            if known <= got < expected:
                continue  # right for a call that leaves the defaulted inputs out
            if got > expected and isinstance(ret.value, ast.Tuple):
                extra = ret.value.elts[expected:]
                if all(isinstance(e, ast.Constant) and e.value is None for e in extra):
                    continue
            message = self.message.format(cls=name, got=got, expected=expected)
            if got < known < expected:
                message = (
                    f"`{name}.backward` returns {got} value(s) but `{name}.apply` is given at least "
                    f"{known} input(s)\nAutograd expects one value per input given to `apply`: PyTorch "
                    f'raises "function {name}Backward returned an incorrect number of gradients".'
                )
            fix = None
            if got < expected and len({c for _, c in counts}) == 1:
                fix = self._none_fix(unit, forward, ret, inputs, got)
            yield self.finding(unit, ret, message, fix=fix)

    def _none_fix(self, unit: Unit, forward, ret: ast.Return, inputs: list[ast.arg], got: int):
        """`return g` -> `return g, None`: None for the inputs after the first `got`."""
        if ret.value is None or (got > 1 and not isinstance(ret.value, ast.Tuple)):
            return None
        values = ret.value.elts if isinstance(ret.value, ast.Tuple) else [ret.value]
        if any(isinstance(v, ast.Starred) for v in values):
            return None
        defaults = _constant_defaults(forward)
        missing = inputs[got:]
        safe = all(a.arg in defaults for a in missing)
        text = ", ".join([unit.segment(v) for v in values] + ["None"] * len(missing))
        names = ", ".join(f"`{a.arg}`" for a in missing)
        return self.make_fix(
            f"Return `None` for {names}",
            [replace_node(unit, ret.value, text)],
            Applicability.SAFE if safe else Applicability.UNSAFE,
        )

    def _return_fix(self, unit: Unit, forward, backward, inputs: list[ast.arg]):
        """`backward` computes `grad_<input>` for every input but returns nothing: return them."""
        assigned = {
            t.id
            for node in ast.walk(backward)
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Name)
        }
        defaults = _constant_defaults(forward)
        values = []
        for arg in inputs:
            names = [n for n in _grad_names(arg.arg) if n in assigned]
            if len(names) == 1:
                values.append(names[0])
            elif not names and arg.arg in defaults:
                values.append("None")
            else:
                return None
        if all(v == "None" for v in values):
            return None
        last = backward.body[-1]
        if (
            isinstance(last, (ast.If, ast.For, ast.While, ast.With, ast.Try))
            or last.lineno == backward.lineno
        ):
            return None
        return self.make_fix(
            f"Return `{', '.join(values)}`",
            [insert_after_statement(unit, last, f"return {', '.join(values)}")],
            Applicability.UNSAFE,
        )

    def _no_return(self, unit: Unit, cls: str, backward: ast.AST, expected: int, known: int) -> Finding:
        wanted = f"{expected} (one per input of `forward`)"
        if known < expected:
            wanted = f"at least {known} (one per input given to `apply`)"
        message = (
            f"`{cls}.backward` can end without a `return`\nIt then returns None, 1 value, where autograd "
            f"expects {wanted}: backward raises "
            '"returned an incorrect number of gradients".'
        )
        finding = self.finding(unit, backward, message)
        line = backward.lineno  # type: ignore[attr-defined]
        text = unit.source.line_text(line).rstrip("\r\n")
        finding.line = finding.end_line = line
        finding.column = len(text) - len(text.lstrip()) + 1
        finding.end_column = len(text) + 1
        return finding


def _default_count(forward: ast.AST, inputs: list[ast.arg], has_setup_context: bool) -> int:
    """How many of the inputs have a default that a call may leave out: none when `setup_context`
    is defined (`Function.apply` then binds the defaults, and `backward` owes a value for each)."""
    if has_setup_context:
        return 0
    defaults = forward.args.defaults  # type: ignore[attr-defined]
    return min(len(defaults), len(inputs))


def _passed_counts(unit: Unit, cls: str) -> list[int] | None:
    """How many inputs each `cls.apply(...)` call of the file passes; None when the class's
    `apply` is also used some other way a count cannot follow (`f = cls.apply`, `*args`, `**kwargs`)."""
    counts = []
    for stmt in unit.semantics.rests_on_text_naming(cls):
        called = set()
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and _is_apply(node.func, cls):
                if any(isinstance(a, ast.Starred) for a in node.args):
                    return None
                if any(k.arg is None for k in node.keywords):
                    return None
                counts.append(len(node.args) + len(node.keywords))
                called.add(node.func)
            elif _is_apply(node, cls) and node not in called:
                return None
    return counts


def _is_apply(node: ast.AST, cls: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "apply"
        and isinstance(node.value, ast.Name)
        and node.value.id == cls
    )


def _constant_defaults(forward: ast.AST) -> set[str]:
    """forward's inputs whose default is a constant other than None: a flag, a number, a string."""
    args = forward.args  # type: ignore[attr-defined]
    params = args.posonlyargs + args.args
    pairs = zip(params[len(params) - len(args.defaults) :], args.defaults, strict=True)
    return {a.arg for a, d in pairs if isinstance(d, ast.Constant) and d.value is not None}


def _grad_names(name: str) -> list[str]:
    return [f"grad_{name}", f"{name}_grad", f"grad{name}", f"d_{name}", f"g_{name}"]


def _static(method: ast.AST) -> bool:
    return any(
        (d.id if isinstance(d, ast.Name) else getattr(d, "attr", "")) == "staticmethod"
        for d in getattr(method, "decorator_list", ())
    )


def _value_count(value) -> int | None:
    """How many values a returned value holds: a tuple of known length (also one a helper of
    the file built), or one tensor/None; None when unknown."""
    if value.items is not None and value.is_only(TUPLE):
        return len(value.items)
    if value.is_tensor or value.is_only(NONE):
        return 1
    return None


def _raises_at_end(func: ast.AST) -> bool:
    body = getattr(func, "body", [])
    return bool(body) and isinstance(body[-1], ast.Raise)


_MAX_ATOMS = 6


def _exhaustive_chain(func: ast.AST) -> bool:
    """The end of the body is unreachable because the tests of its `if`s that end in a `return`
    cover every case: `if not (a or b): return ...` then `if a: return ...` and `if b: return
    ...` (monai's `_GridPull.backward` on `ctx.needs_input_grad`). Tests are combinations
    (`not`/`and`/`or`) of atoms with no call and no name the function assigns; every assignment
    of the atoms' truth is tried."""
    assigned = set()
    for n in ast.walk(func):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            assigned.add(n.id)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, (ast.Store, ast.Del)):
            assigned.add("." + n.attr)
    atoms: dict[str, int] = {}
    facts = []  # what holds where the body goes on after each `if` that returned
    for stmt in getattr(func, "body", []):
        if not isinstance(stmt, ast.If):
            continue
        if _always_exits(stmt.body):
            test = _formula(stmt.test, atoms, assigned)
            if test is None or len(atoms) > _MAX_ATOMS:
                return False
            if _always_exits(stmt.orelse):
                return True
            facts.append(("not", test))
    if not facts:
        return False
    # no assignment of the atoms lets every early-return test fail
    return not any(all(_holds(fact, bits) for fact in facts) for bits in range(1 << len(atoms)))


def _always_exits(body: list[ast.stmt]) -> bool:
    if not body:
        return False
    last = body[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return _always_exits(last.body) and _always_exits(last.orelse)
    return False


def _formula(test: ast.expr, atoms: dict[str, int], assigned: set[str]) -> tuple | None:
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _formula(test.operand, atoms, assigned)
        return None if inner is None else ("not", inner)
    if isinstance(test, ast.BoolOp):
        parts = [_formula(v, atoms, assigned) for v in test.values]
        if any(p is None for p in parts):
            return None
        return ("and" if isinstance(test.op, ast.And) else "or", *parts)
    for node in ast.walk(test):
        if isinstance(node, (ast.Call, ast.NamedExpr, ast.Await, ast.Lambda)):
            return None
        if isinstance(node, ast.Name) and node.id in assigned:
            return None
        if isinstance(node, ast.Attribute) and "." + node.attr in assigned:
            return None
    key = ast.dump(test)
    if key not in atoms:
        atoms[key] = len(atoms)
    return ("atom", atoms[key])


def _holds(formula: tuple, bits: int) -> bool:
    op = formula[0]
    if op == "atom":
        return bool(bits >> formula[1] & 1)
    if op == "not":
        return not _holds(formula[1], bits)
    if op == "and":
        return all(_holds(f, bits) for f in formula[1:])
    return any(_holds(f, bits) for f in formula[1:])


def _returns(func: ast.AST) -> list[ast.Return]:
    """The `return` statements of `func` that can run: statements after an unconditional
    `return`/`raise` in the same block are dead (holdout5 torchao sparsity/training/autograd.py)."""
    found = []
    stack = list(_reachable_children(func))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Return):
            found.append(node)
        stack.extend(_reachable_children(node))
    found.sort(key=lambda r: r.lineno)
    return found


def _reachable_children(node: ast.AST) -> list[ast.AST]:
    children = []
    for _field, value in ast.iter_fields(node):
        if isinstance(value, list) and value and all(isinstance(v, ast.stmt) for v in value):
            for stmt in value:
                children.append(stmt)
                if isinstance(stmt, (ast.Return, ast.Raise)) or (
                    isinstance(stmt, ast.If) and _always_exits(stmt.body) and _always_exits(stmt.orelse)
                ):
                    break
        elif isinstance(value, list):
            children.extend(v for v in value if isinstance(v, ast.AST))
        elif isinstance(value, ast.AST):
            children.append(value)
    return children


def _gradient_inputs(forward, has_setup_context: bool) -> list[ast.arg]:
    """The inputs of `forward` that `backward` returns a gradient for (after `ctx`, unless the
    Function has a `setup_context`); empty when they cannot be counted (`*args`, keyword-only)."""
    args = forward.args
    if args.vararg is not None or args.kwonlyargs:
        return []
    params = args.posonlyargs + args.args
    expected = len(params) - (0 if has_setup_context else 1)
    return params[len(params) - expected :] if expected >= 1 else []


def _return_counts(flow, backward) -> list[tuple[ast.Return, int]]:
    """Each `return` of `backward` with its number of values; empty when one cannot be counted."""
    counts = []
    for ret in _returns(backward):
        # `(None,) * 3 + rest`: a tuple whatever the value analysis says of `rest`
        joined = isinstance(ret.value, ast.BinOp) and _has_display(ret.value)
        got = _value_count(flow.value_of(ret.value)) if ret.value is not None and not joined else None
        if ret.value is None:
            got = 1
        if got is None:
            got = _count(ret.value, backward)
        if got is None:
            return []
        counts.append((ret, got))
    return counts


def _count(value: ast.expr | None, func: ast.AST, depth: int = 0) -> int | None:
    """How many values a return expression yields; None when not statically clear."""
    if value is None:
        return None
    if isinstance(value, ast.Tuple):
        if any(isinstance(e, ast.Starred) for e in value.elts):
            return None
        return len(value.elts)
    if isinstance(value, ast.UnaryOp):
        return 1
    if isinstance(value, ast.BinOp):
        return _count_binop(value, func, depth)
    if isinstance(value, ast.Constant):
        return 1 if value.value is None else None
    if isinstance(value, ast.Call):
        return _count_call(value)
    if isinstance(value, ast.Name) and depth < 3:
        return _count_name(value, func, depth)
    return None


def _count_binop(value: ast.BinOp, func: ast.AST, depth: int) -> int | None:
    """`(a, b) + (c,)` adds up; `grads + extra`, `g * k` are one value unless a side may be a tuple."""
    if isinstance(value.op, (ast.Add, ast.Mult)):
        sides = (value.left, value.right)
        if any(isinstance(s, (ast.Tuple, ast.List)) for s in sides):
            if isinstance(value.op, ast.Mult):
                return None
            left, right = _count(value.left, func, depth + 1), _count(value.right, func, depth + 1)
            return left + right if left is not None and right is not None else None
        for side in sides:
            if isinstance(side, (ast.Name, ast.Call)) and _count(side, func, depth + 1) != 1:
                return None
    return 1


def _has_display(value: ast.BinOp) -> bool:
    return any(isinstance(side, (ast.Tuple, ast.List)) for side in (value.left, value.right))


def _count_call(value: ast.Call) -> int | None:
    target = value.func
    name = callee_name(target)
    if (
        name is None
        or name in torch_facts.TUPLE_RETURNING
        or name in ("tuple", "list", "apply", "forward", "backward")
    ):
        # `tuple(...)`, `list(...)`: a sequence of unknown length; `Fn.apply(...)` returns a tuple when
        # `Fn.forward` does; `impl.backward(ctx, g)` delegates to another Function's backward, whose
        # tuple is not this file's to count
        return None
    if isinstance(target, ast.Attribute):
        return 1  # x.clone(), torch.where(...), g.mm(w)
    return None  # a helper function: it may return a tuple


def _names(node: ast.AST, name: str) -> bool:
    return any(isinstance(s, ast.Name) and s.id == name for s in ast.walk(node))


def _count_name(value: ast.Name, func: ast.AST, depth: int) -> int | None:
    """A name's count from its assignments in `func` (one count for all of them)."""
    counts = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == value.id for t in node.targets
        ):
            counts.add(_count(node.value, func, depth + 1))
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.With)) or (
            isinstance(node, ast.Assign) and any(_names(t, value.id) for t in node.targets)
        ):
            target = getattr(node, "target", None)
            if target is not None and _names(target, value.id):
                return None
            if isinstance(node, ast.Assign):
                return None  # unpacked from something: unknown
    if len(counts) == 1:
        return counts.pop()
    if not counts:
        # an unassigned gradient parameter of backward: one tensor (or None)
        args = func.args  # type: ignore[attr-defined]
        params = [a.arg for a in (args.posonlyargs + args.args)[1:]]
        if value.id in params:
            return 1
    return None
