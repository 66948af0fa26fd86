"""GG601: `autograd.Function.backward` returns the wrong number of gradients."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.finding import Finding, Severity
from gradguard.engine.index import Unit
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.values import NONE, TUPLE

_ERROR = "returned an incorrect number of gradients"
# tensor methods / torch functions that return tuples
_TUPLE_RETURNING = {
    "chunk",
    "split",
    "unbind",
    "tensor_split",
    "split_with_sizes",
    "hsplit",
    "vsplit",
    "dsplit",
    "max",
    "min",
    "sort",
    "topk",
    "kthvalue",
    "median",
    "mode",
    "grad",
    "broadcast_tensors",
    "meshgrid",
    "frexp",
    "aminmax",
    "unique",
    "lu",
    "qr",
    "svd",
    "eig",
    "eigh",
    "slogdet",
    "std_mean",
    "var_mean",
    "tuple",
    "list",
    "apply",
}


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
    """

    VALID = [
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
            raises="function MulConstBackward returned an incorrect number of gradients (expected 2, got 1)",
            run="MulConst.apply(torch.randn(3, requires_grad=True), 2.0).sum().backward()",
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
            raises="returned an incorrect number of gradients (expected 2, got 1)",
            run="Adder.apply(torch.randn(3, 4, requires_grad=True), torch.randn(5, 4)).sum().backward()",
            note="the gradients are computed but never returned (huawei-noah/AdderNet#21)",
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
            args = forward.args
            if args.vararg is not None or args.kwonlyargs:
                continue
            params = args.posonlyargs + args.args
            expected = len(params) - (0 if "setup_context" in methods else 1)
            if expected < 1:
                continue
            flow = unit.semantics.flow(backward)
            counts = []
            for ret in _returns(backward):
                got = _value_count(flow.value_of(ret.value)) if ret.value is not None else 1
                if got is None:
                    got = _count(ret.value, backward)
                if got is None:
                    counts = []
                    break
                counts.append((ret, got))
            if flow.final is not None and expected > 1 and not _raises_at_end(backward):
                # falls off the end: returns None, one value
                yield self._no_return(unit, cls.name, backward, expected)
            for ret, got in counts:
                if got == expected:
                    continue
                if got > expected and isinstance(ret.value, ast.Tuple):
                    extra = ret.value.elts[expected:]
                    if all(isinstance(e, ast.Constant) and e.value is None for e in extra):
                        continue
                message = self.message.format(cls=cls.name, got=got, expected=expected)
                yield self.finding(unit, ret, message)

    def _no_return(self, unit: Unit, cls: str, backward: ast.AST, expected: int) -> Finding:
        message = (
            f"`{cls}.backward` can end without a `return`\nIt then returns None, 1 value, where autograd "
            f"expects {expected} (one per input of `forward`): backward raises "
            '"returned an incorrect number of gradients".'
        )
        finding = self.finding(unit, backward, message)
        line = backward.lineno  # type: ignore[attr-defined]
        text = unit.source.line_text(line).rstrip("\r\n")
        finding.line = finding.end_line = line
        finding.column = len(text) - len(text.lstrip()) + 1
        finding.end_column = len(text) + 1
        return finding


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


def _returns(func: ast.AST) -> list[ast.Return]:
    found = []
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Return):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    found.sort(key=lambda r: r.lineno)
    return found


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
        if isinstance(value.op, (ast.Add, ast.Mult)):
            sides = (value.left, value.right)
            if any(isinstance(s, (ast.Tuple, ast.List)) for s in sides):
                if isinstance(value.op, ast.Mult):
                    return None
                left, right = _count(value.left, func, depth + 1), _count(value.right, func, depth + 1)
                return left + right if left is not None and right is not None else None
            # `grads + extra`, `g * k`: fine unless a side may itself be a tuple
            for side in sides:
                if isinstance(side, (ast.Name, ast.Call)) and _count(side, func, depth + 1) != 1:
                    return None
        return 1
    if isinstance(value, ast.Constant):
        return 1 if value.value is None else None
    if isinstance(value, ast.Call):
        target = value.func
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
        if name is None or name in _TUPLE_RETURNING:
            return None
        if isinstance(target, ast.Attribute):
            return 1  # x.clone(), torch.where(...), g.mm(w)
        return None  # a helper function: it may return a tuple
    if isinstance(value, ast.Name) and depth < 3:
        counts = set()
        for node in ast.walk(func):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == value.id for t in node.targets
            ):
                counts.add(_count(node.value, func, depth + 1))
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.With)) or (
                isinstance(node, ast.Assign)
                and any(
                    isinstance(s, ast.Name) and s.id == value.id for t in node.targets for s in ast.walk(t)
                )
            ):
                target = getattr(node, "target", None)
                if target is not None and any(
                    isinstance(s, ast.Name) and s.id == value.id for s in ast.walk(target)
                ):
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
    return None
