"""GG602: a custom `autograd.Function` defined or called the legacy way."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.finding import Applicability, Finding, TextEdit
from gradguard.engine.fixes import replace_node
from gradguard.engine.index import KIND_FUNCTION, ModuleContext, Unit, statement_start_line
from gradguard.engine.interpreter import FUNCTION_INSTANCE_CALL
from gradguard.engine.queries import describe, flows
from gradguard.engine.rule import Invalid, Message, Rule, Valid

_LEGACY = "Legacy autograd function with non-static forward method is deprecated"


class FunctionMisuse(Rule):
    code = "GG602"
    name = "function-misuse"
    summary = "A `torch.autograd.Function` with non-static `forward`/`backward`, or called as `Fn()(x)` / `Fn.forward(...)` instead of `Fn.apply(x)`."
    why = (
        "A `torch.autograd.Function` is used through `Fn.apply(...)` with static `forward` and `backward`: "
        "calling an instance raises, and calling `forward` directly bypasses your `backward`."
    )
    message = Message("Use `{cls}.apply(...)`")
    instance_message = Message(
        "`{cls}()(...)` calls an instance of an autograd Function; call `{cls}.apply(...)`\nPyTorch raises "
        f'"{_LEGACY}".'
    )
    direct_message = Message(
        "`{cls}.{method}(...)` calls the method directly; call `{cls}.apply(...)`\nAutograd never records "
        "`{cls}Backward`, so your `backward` is not used."
    )
    static_message = Message(
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
      (A method that already takes `ctx` first and only lacks the decorator is not
      reported: autograd runs it exactly as a static one.)

    **Fix safety.** Adding `@staticmethod` is safe (a stray `self` before `ctx` is removed with
    it; no fix when the body reads `self`). `Fn()(x)` -> `Fn.apply(x)` is safe. A Function instance
    held in a variable (`f = Fn(); f(x)` -> `Fn.apply(x)`) is safe when the class keeps no state (no
    `__init__` beyond `super().__init__()`), else unsafe: state set on the instance is not seen by
    `apply`. `Fn.forward(None, x)` -> `Fn.apply(x)` is safe.
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
        Valid(
            """
            import torch

            class Scale(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return x * 3

                @staticmethod
                def backward(ctx, grad):
                    return grad * 3

            class ScaleTwice(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return Scale.forward(ctx, x) * 2

                @staticmethod
                def backward(ctx, grad):
                    return Scale.backward(ctx, grad) * 2

            x = torch.ones(3, requires_grad=True)
            y = ScaleTwice.apply(x)
            """,
            run="y.sum().backward(); assert torch.equal(x.grad, torch.full((3,), 6.0))",
            # fairscale nn/pipe/skip/portal.py: PortalCopy.backward calls Copy.backward(ctx, ...)
            note="a Function's backward delegating to another Function's backward: autograd records the "
            "outer Function and its backward calls the inner one (fairscale nn/pipe/skip/portal.py)",
        ),
        Valid(
            """
            import torch

            class Rotate(torch.autograd.Function):
                @staticmethod
                def forward(ctx, q, k, section):
                    ctx.section = section
                    return q * 2, k * 3

                def backward(ctx, dq, dk):
                    return dq * 2, dk * 3, None

            q, k = torch.randn(4, requires_grad=True), torch.randn(4, requires_grad=True)
            a, b = Rotate.apply(q, k, [1, 2])
            """,
            run="(a.sum() + b.sum()).backward(); assert torch.equal(k.grad, torch.full((4,), 3.0))",
            note="a `backward` taking `ctx` first without `@staticmethod`: autograd calls it on the class "
            "with the ctx, as a static method (dev9 liger-kernel qwen2vl_mrope, colossalai shardformer attn)",
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

            class Square(torch.autograd.Function):
                def forward(self, ctx, x):
                    ctx.save_for_backward(x)
                    return x * x

                def backward(self, ctx, grad):
                    (x,) = ctx.saved_tensors
                    return 2 * x * grad

            x = torch.randn(3, requires_grad=True)
            y = Square.apply(x)
            """,
            lines=[4, 8],
            fixed="""
            import torch

            class Square(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return x * x

                @staticmethod
                def backward(ctx, grad):
                    (x,) = ctx.saved_tensors
                    return 2 * x * grad

            x = torch.randn(3, requires_grad=True)
            y = Square.apply(x)
            """,
            raises="missing 1 required positional argument",
            run="y.sum().backward()",
            check_fixed="assert torch.allclose(x.grad, 2 * x.detach())",
            note="both `self` and `ctx`: autograd passes the ctx as `self`; the fix also drops `self`",
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
        return module.cache(
            "gg602.has_function",
            lambda: any(summary.kind == KIND_FUNCTION for summary in module.classes.values()),
        )

    def check(self, unit: Unit) -> Iterator[Finding]:
        yield from self._non_static_methods(unit)
        if not any(summary.kind == KIND_FUNCTION for summary in unit.module.classes.values()):
            return  # no autograd.Function in this file: nothing can be misused
        yield from self._misused_calls(unit)
        yield from self._instances_called_later(unit)

    def _non_static_methods(self, unit: Unit) -> Iterator[Finding]:
        """`forward`/`backward` of a Function defined without `@staticmethod`."""
        for cls in unit.function_classes():
            for name, method in unit.methods(cls).items():
                if name not in ("forward", "backward", "setup_context", "jvp", "vmap"):
                    continue
                if any(_decorator_name(d) in ("staticmethod", "classmethod") for d in method.decorator_list):
                    continue
                if name not in ("forward", "backward"):
                    continue
                params = method.args.posonlyargs + method.args.args
                if params and params[0].arg not in ("self", "cls"):
                    # `def backward(ctx, g)` without the decorator: autograd passes the ctx to the plain
                    # function exactly as to a static method (eager, torch.compile, torch.func)
                    continue
                line = statement_start_line(method)
                indent = unit.source.indentation(line)
                newline = unit.source.newline()
                edits = [TextEdit(line, 1, line, 1, f"{indent}@staticmethod{newline}")]
                arg = params[0].arg if params else "ctx"
                title = "Add `@staticmethod`"
                if _stray_self(method):
                    if _reads_name(method, params[0].arg):
                        edits = []  # `self` is the instance the body reads: no mechanical fix
                    else:  # `def forward(self, ctx, x)`: autograd would pass the ctx as `self`
                        first, second = params[0], params[1]
                        start = unit.node_range(first)[:2]
                        end = unit.node_range(second)[:2]
                        edits.append(TextEdit(*start, *end, ""))
                        title = f"Add `@staticmethod` and remove `{first.arg}`"
                fix = self.make_fix(title, edits) if edits else None
                message = self.static_message.format(cls=cls.name, method=name, arg=arg)
                yield self._at_def(unit, method, message, fix)

    def _misused_calls(self, unit: Unit) -> Iterator[Finding]:
        """`Fn()(x)` and `Fn.forward(ctx, x)` / `Fn.backward(...)` called directly."""
        module = unit.module
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
                if _calls_super_or_inside(unit, call, cls_name):
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
                    # safe when the instance carries no state: the class's `__init__` (if any) only
                    # calls `super().__init__()`; else its attributes are lost (unsafe)
                    stateless = _stateless_function(unit, cls_name)
                    fix = self.make_fix(
                        f"Call `{cls_name}.apply(...)`",
                        [replace_node(unit, call.func, f"{cls_name}.apply")],
                        Applicability.SAFE if stateless else Applicability.UNSAFE,
                    )
                message = self.held_message.format(cls=cls_name, name=describe(unit, call.func))
                yield self.finding(unit, call, message, fix=fix)

    held_message = Message(
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


def _stray_self(method: ast.AST) -> bool:
    """`def forward(self, ctx, ...)`: a method written with both an instance and a ctx argument."""
    params = method.args.posonlyargs + method.args.args  # type: ignore[attr-defined]
    return len(params) >= 2 and params[0].arg == "self" and params[1].arg in ("ctx", "context")


def _reads_name(method: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(method))


def _stateless_function(unit: Unit, cls_name: str) -> bool:
    """The file's autograd.Function `cls_name` keeps no instance state: no `__init__`, or one that
    only calls `super().__init__()` (and `pass`/a docstring), and no other method but
    forward/backward/setup_context/jvp/vmap and static ones."""
    try:
        tree = ast.parse(unit.source.text)  # only for a held instance's call (rare)
    except (SyntaxError, ValueError):
        return False
    classes = [c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == cls_name]
    if len(classes) != 1:
        return False
    for item in classes[0].body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if item.name in ("forward", "backward", "setup_context", "jvp", "vmap"):
                continue
            if any(_decorator_name(d) == "staticmethod" for d in item.decorator_list):
                continue
            if item.name != "__init__" or len(item.args.args) != 1 or item.args.vararg or item.args.kwarg:
                return False
            for statement in item.body:
                if isinstance(statement, ast.Pass) or (
                    isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
                ):
                    continue
                call = statement.value if isinstance(statement, ast.Expr) else None
                if not (
                    isinstance(call, ast.Call)
                    and not call.args
                    and not call.keywords
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "__init__"
                    and isinstance(call.func.value, ast.Call)
                    and isinstance(call.func.value.func, ast.Name)
                    and call.func.value.func.id == "super"
                ):
                    return False
        elif not isinstance(item, (ast.Pass, ast.Expr)):
            return False  # class attributes: state the instance may rely on
    return True


def _decorator_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _calls_super_or_inside(unit: Unit, call: ast.AST, cls_name: str) -> bool:
    """`Fn.forward(ctx, ...)` / `Fn.backward(ctx, ...)` inside another Function's methods (delegation:
    autograd records the outer Function, whose backward calls the inner one's) is deliberate."""
    func = unit.enclosing_function(call)
    if func is None:
        return False
    cls = unit.enclosing_class(func)
    return cls is not None and unit.module.is_function_class(cls.name)
