"""GG602: a custom `autograd.Function` defined or called the legacy way."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.finding import Applicability, Finding, TextEdit
from gradguard.engine.fixes import replace_node
from gradguard.engine.index import KIND_FUNCTION, ModuleContext, Unit, statement_start_line
from gradguard.engine.interpreter import FUNCTION_INSTANCE_CALL
from gradguard.engine.queries import describe, flows
from gradguard.engine.rule import Invalid, Rule, Valid

_LEGACY = "Legacy autograd function with non-static forward method is deprecated"


class FunctionMisuse(Rule):
    code = "GG602"
    name = "function-misuse"
    summary = "A `torch.autograd.Function` with non-static `forward`/`backward`, or called as `Fn()(x)` / `Fn.forward(...)` instead of `Fn.apply(x)`."
    why = (
        "A `torch.autograd.Function` is used through `Fn.apply(...)` with static `forward` and `backward`: "
        "calling an instance raises, and calling `forward` directly bypasses your `backward`."
    )
    message = "Use `{cls}.apply(...)`"
    instance_message = (
        "`{cls}()(...)` calls an instance of an autograd Function; call `{cls}.apply(...)`\nPyTorch raises "
        f'"{_LEGACY}".'
    )
    direct_message = (
        "`{cls}.{method}(...)` calls the method directly; call `{cls}.apply(...)`\nAutograd never records "
        "`{cls}Backward`, so your `backward` is not used."
    )
    static_message = (
        "`{cls}.{method}` should be a `@staticmethod`\nAutograd calls it on the class with the ctx as first "
        "argument (so `{arg}` is the ctx, not an instance), and instances cannot be called."
    )
    explanation = f"""
    A custom `torch.autograd.Function` is never instantiated. Its `forward` and
    `backward` are `@staticmethod`s taking a `ctx` first, and it is used through
    `Fn.apply(*inputs)`, which runs `forward`, records a `FnBackward` node in the graph
    and makes autograd call your `backward`.

    * Calling an instance, `Fn()(x)` (the pre-1.3 style), raises:
      *"{_LEGACY}. Please use new-style autograd function with static forward
      method."*
    * Calling `Fn.forward(ctx, x)` directly just runs the function body: no
      `FnBackward` node is recorded and your `backward` is never called (gradients,
      if any, come from the ops inside `forward`).
    * A `forward`/`backward` without `@staticmethod` still works through
      `Fn.apply`, but only because the class attribute is a plain function that then
      receives the ctx as `self`: any instance state it reads (set in `__init__`) is
      not there. Mark both methods `@staticmethod` and name the first argument `ctx`.
    """
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch

            class Exp(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    y = x.exp()
                    ctx.save_for_backward(y)
                    return y

                @staticmethod
                def backward(ctx, g):
                    (y,) = ctx.saved_tensors
                    return g * y

            out = Exp.apply(torch.randn(3, requires_grad=True))
            """,
            note="new-style Function",
        ),
        Valid(
            """
            import torch

            class Net(torch.nn.Module):
                def forward(self, x):
                    return x * 2

            y = Net()(torch.randn(2))
            z = Net.forward(Net(), torch.randn(2))
            """,
            note="modules are called as instances",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            class Exp(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    y = x.exp()
                    ctx.save_for_backward(y)
                    return y

                @staticmethod
                def backward(ctx, g):
                    (y,) = ctx.saved_tensors
                    return g * y

            x = torch.randn(3, requires_grad=True)
            y = Exp()(x)
            """,
            lines=[16],
            fixed="""
            import torch

            class Exp(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    y = x.exp()
                    ctx.save_for_backward(y)
                    return y

                @staticmethod
                def backward(ctx, g):
                    (y,) = ctx.saved_tensors
                    return g * y

            x = torch.randn(3, requires_grad=True)
            y = Exp.apply(x)
            """,
            raises=_LEGACY,
            check_fixed="y.sum().backward(); assert torch.allclose(x.grad, x.exp())",
        ),
        Invalid(
            """
            import torch

            class Round(torch.autograd.Function):
                def forward(self, x):
                    return x.round()

                def backward(self, grad_output):
                    return grad_output

            x = torch.randn(4, requires_grad=True)
            y = Round.forward(None, x)
            """,
            lines=[4, 7, 11],
            fixed="""
            import torch

            class Round(torch.autograd.Function):
                @staticmethod
                def forward(self, x):
                    return x.round()

                @staticmethod
                def backward(self, grad_output):
                    return grad_output

            x = torch.randn(4, requires_grad=True)
            y = Round.apply(x)
            """,
            run="y.sum().backward()",
            check_fixed="assert torch.equal(x.grad, torch.ones(4))",
        ),
        Invalid(
            """
            import torch

            class Mult(torch.autograd.Function):
                @staticmethod
                def forward(ctx, a, b):
                    ctx.save_for_backward(a, b)
                    return a * b

                @staticmethod
                def backward(ctx, grad):
                    a, b = ctx.saved_tensors
                    return grad * b, grad * a

            mult = Mult()
            x = torch.rand(3, requires_grad=True)
            y = mult(x, torch.ones(3))
            """,
            lines=[16],
            fixed="""
            import torch

            class Mult(torch.autograd.Function):
                @staticmethod
                def forward(ctx, a, b):
                    ctx.save_for_backward(a, b)
                    return a * b

                @staticmethod
                def backward(ctx, grad):
                    a, b = ctx.saved_tensors
                    return grad * b, grad * a

            mult = Mult()
            x = torch.rand(3, requires_grad=True)
            y = Mult.apply(x, torch.ones(3))
            """,
            raises=_LEGACY,
            check_fixed="y.sum().backward(); assert torch.equal(x.grad, torch.ones(3))",
            note="an instance kept in a variable and called later",
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        # both halves of `check` need an autograd.Function subclass somewhere in the file
        found = module.__dict__.get("_gg602_has_function")
        if found is None:
            found = module.__dict__["_gg602_has_function"] = any(
                summary.kind == KIND_FUNCTION for summary in module.classes.values()
            )
        return found

    def check(self, unit: Unit) -> Iterator[Finding]:
        module = unit.module
        for cls in unit.function_classes():
            for name, method in unit.methods(cls).items():
                if name not in ("forward", "backward", "setup_context", "jvp", "vmap"):
                    continue
                if any(_decorator_name(d) in ("staticmethod", "classmethod") for d in method.decorator_list):
                    continue
                if name not in ("forward", "backward"):
                    continue
                line = statement_start_line(method)
                indent = unit.source.indentation(line)
                newline = unit.source.newline()
                fix = self.make_fix(
                    "Add `@staticmethod`", [TextEdit(line, 1, line, 1, f"{indent}@staticmethod{newline}")]
                )
                params = method.args.posonlyargs + method.args.args
                arg = params[0].arg if params else "ctx"
                message = self.static_message.format(cls=cls.name, method=name, arg=arg)
                yield self._at_def(unit, method, message, fix)
        if not any(summary.kind == KIND_FUNCTION for summary in module.classes.values()):
            return  # no autograd.Function in this file: nothing can be misused
        for call in unit.calls():
            func = call.func
            # Fn()(x)
            if isinstance(func, ast.Call) and isinstance(func.func, ast.Name):
                cls_name = func.func.id
                if not module.is_function_class(cls_name):
                    continue
                fix = None
                if not func.args and not func.keywords:
                    fix = self.make_fix(
                        f"Call `{cls_name}.apply(...)`", [replace_node(unit, func, f"{cls_name}.apply")]
                    )
                yield self.finding(unit, call, self.instance_message.format(cls=cls_name), fix=fix)
            # Fn.forward(ctx, x) / Fn.backward(...)
            elif (
                isinstance(func, ast.Attribute)
                and func.attr in ("forward", "backward")
                and isinstance(func.value, ast.Name)
                and module.is_function_class(func.value.id)
            ):
                cls_name = func.value.id
                fix = None
                if func.attr == "forward" and _calls_super_or_inside(unit, call, cls_name):
                    continue
                if (
                    func.attr == "forward"
                    and call.args
                    and isinstance(call.args[0], ast.Constant)
                    and call.args[0].value is None
                    and not call.keywords
                    and not any(isinstance(a, ast.Starred) for a in call.args)
                ):
                    rest = ", ".join(unit.segment(a) for a in call.args[1:])
                    fix = self.make_fix(
                        f"Call `{cls_name}.apply(...)`",
                        [replace_node(unit, call, f"{cls_name}.apply({rest})")],
                    )
                message = self.direct_message.format(cls=cls_name, method=func.attr)
                yield self.finding(unit, call, message, fix=fix)
        yield from self._instances_called_later(unit)

    def _instances_called_later(self, unit: Unit) -> Iterator[Finding]:
        """`f = Fn()` ... `f(x)`: an instance of the Function kept in a variable and called."""
        for _, flow in flows(unit, "("):
            for event in flow.events_of(FUNCTION_INSTANCE_CALL):
                call = event.node
                if not isinstance(call, ast.Call) or isinstance(call.func, ast.Call) or event.op == "apply":
                    continue  # `Fn()(x)` is reported above; `Fn().apply(x)` works
                cls_name = event.value.cls or "Function"
                fix = None
                if isinstance(call.func, ast.Name):
                    fix = self.make_fix(
                        f"Call `{cls_name}.apply(...)`",
                        [replace_node(unit, call.func, f"{cls_name}.apply")],
                        Applicability.UNSAFE,
                    )
                message = self.held_message.format(cls=cls_name, name=describe(unit, call.func))
                yield self.finding(unit, call, message, fix=fix)

    held_message = (
        "`{name}` holds an instance of the autograd Function `{cls}`; call `{cls}.apply(...)`\nCalling it "
        f'raises "{_LEGACY}".'
    )

    def _at_def(self, unit: Unit, method: ast.AST, message: str, fix) -> Finding:
        finding = self.finding(unit, method, message, fix=fix)
        # underline only the `def name(...)` header line
        line = method.lineno  # type: ignore[attr-defined]
        text = unit.source.line_text(line).rstrip("\r\n")
        finding.line = line
        finding.column = len(text) - len(text.lstrip()) + 1
        finding.end_line = line
        finding.end_column = len(text) + 1
        return finding


def _decorator_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _calls_super_or_inside(unit: Unit, call: ast.AST, cls_name: str) -> bool:
    """`Fn.forward(ctx, ...)` inside another Function's forward (delegation) is deliberate."""
    func = unit.enclosing_function(call)
    if func is None:
        return False
    cls = unit.enclosing_class(func)
    return cls is not None and unit.module.is_function_class(cls.name)
