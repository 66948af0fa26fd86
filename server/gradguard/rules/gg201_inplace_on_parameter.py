"""GG201: `self.weight += x` (or `.add_()`, `self.weight[i] = ...`) on a parameter in `forward`."""

from __future__ import annotations

import ast
import builtins
import keyword
from typing import Iterator

from gradguard.engine.finding import Applicability, Finding, Severity, TextEdit
from gradguard.engine.fixes import parse_expression, render, replace_node
from gradguard.engine.index import (
    AttributeInfo,
    FunctionNode,
    Unit,
    is_false,
    self_attribute,
    self_name,
)
from gradguard.engine.index import (
    keyword as kwarg,
)
from gradguard.engine.rule import Invalid, Rule, Valid

# Methods ending in `_` that do not write the tensor's data.
_NOT_INPLACE = {"requires_grad_", "share_memory_", "detach_", "resize_", "resize_as_", "record_stream_"}
# In-place methods whose out-of-place twin takes the same arguments.
_OUT_OF_PLACE = {
    "add_",
    "sub_",
    "mul_",
    "div_",
    "clamp_",
    "clamp_min_",
    "clamp_max_",
    "clip_",
    "pow_",
    "abs_",
    "neg_",
    "exp_",
    "log_",
    "sqrt_",
    "relu_",
    "sigmoid_",
    "tanh_",
    "masked_fill_",
    "lerp_",
    "addcmul_",
    "addcdiv_",
    "index_add_",
    "index_fill_",
    "scatter_",
    "scatter_add_",
    "renorm_",
    "true_divide_",
    "square_",
    "reciprocal_",
    "sign_",
    "floor_",
    "ceil_",
    "round_",
}
_OPERATORS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}
_ATOMIC = (ast.Name, ast.Attribute, ast.Call, ast.Constant, ast.Subscript, ast.List, ast.Dict)
_LEAF_ERROR = "a leaf Variable that requires grad is being used in an in-place operation"


def is_inplace_method(name: str) -> bool:
    return name.endswith("_") and not name.startswith("_") and name not in _NOT_INPLACE


def leaf_error(index: ast.expr | None) -> str:
    """The error PyTorch raises for an in-place change of a leaf that requires grad;
    `index` is the subscript of an indexed write (basic indexing writes through a view)."""
    if index is None:
        return _LEAF_ERROR
    kind = _index_kind(index)
    if kind == "basic":
        return "a view of " + _LEAF_ERROR
    if kind == "advanced":
        return _LEAF_ERROR
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


class InplaceOnParameter(Rule):
    code = "GG201"
    needs_class = "module"  # starts from unit.module_classes() only
    name = "inplace-on-parameter"
    summary = "In-place change of an `nn.Parameter` in `forward`: PyTorch raises the leaf in-place error."
    message = (
        "In-place {what} on {kind} `{target}` in `{method}`: PyTorch raises "
        '"{error}" whenever this runs with gradients enabled{hint}'
    )
    explanation = """
    A module's parameters are *leaf* tensors that require grad: autograd accumulates
    their gradients, so it cannot let them be overwritten in the middle of a recorded
    computation. Any in-place change of a parameter while gradients are enabled
    (`self.weight += x`, `self.weight.add_(x)`, `self.weight.clamp_(0, 1)`,
    `self.weight[0] = 1`) raises at once:

        RuntimeError: a leaf Variable that requires grad is being used in an in-place operation.

    (for an indexed write: *"a view of a leaf Variable that requires grad is being used
    in an in-place operation."*)

    In `forward` you almost always meant a new tensor built from the parameter:

    ```python
    def forward(self, x):
        weight = self.weight + x      # not: self.weight += x
        return weight
    ```

    Gradients then flow into `self.weight` through `weight`. The automatic fix does
    exactly this when the change is a plain statement of `forward` and nothing else
    in the class changes that parameter in place.

    If you meant to change the parameter's value (a constraint, a projection, an
    EMA copy), do it outside the recorded computation, e.g. after
    `optimizer.step()`, under `with torch.no_grad():`.

    Not reported: changes under `torch.no_grad()` / `@torch.no_grad()`, writes through
    `.data`, buffers (`register_buffer`), parameters created with
    `requires_grad=False` or frozen in the class, `nn.init.*_` calls, and
    `nn.ReLU(inplace=True)` (it changes activations, not parameters).
    """
    severity = Severity.ERROR
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class RunningNorm(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.weight = nn.Parameter(torch.ones(n))
                    self.register_buffer("running_mean", torch.zeros(n))
                    self.act = nn.ReLU(inplace=True)

                def forward(self, x):
                    if self.training:
                        self.running_mean.mul_(0.9).add_(0.1 * x.mean(0).detach())
                    return self.act(self.weight * (x - self.running_mean))
            """,
            note="buffer updates and an in-place ReLU",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Constrained(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.weight = nn.Parameter(torch.empty(n, n))
                    self.reset_parameters()

                def reset_parameters(self):
                    nn.init.kaiming_uniform_(self.weight)
                    with torch.no_grad():
                        self.weight.mul_(0.5)

                @torch.no_grad()
                def project(self):
                    self.weight.clamp_(-1, 1)

                def forward(self, x):
                    self.weight.data.clamp_(-1, 1)
                    with torch.no_grad():
                        self.weight.div_(self.weight.norm())
                    self.project()
                    return x @ self.weight
            """,
            note="init, no_grad, @no_grad helpers and .data writes",
        ),
        Valid(
            """
            import torch
            from torch import nn

            class Shifted(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.shift = nn.Parameter(torch.zeros(4), requires_grad=False)
                    self.scale = nn.Parameter(torch.ones(4))

                def forward(self, x):
                    self.shift += 0.01
                    scale = self.scale * 2
                    scale += 1
                    return x * scale + self.shift
            """,
            note="a parameter that does not require grad; in-place on a derived tensor",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class SGDLike:
                def __init__(self, params, lr):
                    self.params = list(params)
                    self.lr = lr

                @torch.no_grad()
                def step(self):
                    for p in self.params:
                        p.add_(p.grad, alpha=-self.lr)

            class EMA(nn.Module):
                def __init__(self, model):
                    super().__init__()
                    self.model = model
                    self.shadow = nn.Linear(4, 4)

                def forward(self, x):
                    with torch.no_grad():
                        for s, p in zip(self.shadow.parameters(), self.model.parameters()):
                            s.mul_(0.99).add_(p, alpha=0.01)
                    return self.model(x)
            """,
            note="optimizer-like code and an EMA update under no_grad",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class MyModule(nn.Module):
                def __init__(self, size):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(size))

                def forward(self, x):
                    self.weight += x
                    return self.weight
            """,
            lines=[10],
            fixed="""
            import torch
            import torch.nn as nn

            class MyModule(nn.Module):
                def __init__(self, size):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(size))

                def forward(self, x):
                    weight = self.weight + x
                    return weight
            """,
            raises=_LEAF_ERROR,
            run="m = MyModule(5)\nm(torch.randn(5)).sum().backward()",
            check_fixed="assert m.weight.grad is not None and torch.equal(m.weight.grad, torch.ones(5))",
        ),
        Invalid(
            """
            import torch
            from torch.nn import Module, Parameter

            class Gate(Module):
                def __init__(self, n):
                    super().__init__()
                    self.alpha = Parameter(torch.zeros(n))
                    self.beta = Parameter(torch.ones(n))

                def forward(self, x):
                    self.alpha.clamp_(0, 1)  # keep the gate in [0, 1]
                    y = self.alpha * x
                    return y + self.beta * (1 - self.alpha)
            """,
            lines=[11],
            fixed="""
            import torch
            from torch.nn import Module, Parameter

            class Gate(Module):
                def __init__(self, n):
                    super().__init__()
                    self.alpha = Parameter(torch.zeros(n))
                    self.beta = Parameter(torch.ones(n))

                def forward(self, x):
                    alpha = self.alpha.clamp(0, 1)  # keep the gate in [0, 1]
                    y = alpha * x
                    return y + self.beta * (1 - alpha)
            """,
            raises=_LEAF_ERROR,
            run="g = Gate(3)\ng(torch.randn(2, 3)).sum().backward()",
            check_fixed="assert g.alpha.grad is not None and g.beta.grad is not None",
            note="another import style; a method call",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class MaskedLinear(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 4)

                def forward(self, x):
                    self.drop_first_input()
                    return self.fc(x)

                def drop_first_input(self):
                    self.fc.weight[:, 0] = 0.0
            """,
            lines=[14],
            raises="a view of a leaf Variable that requires grad is being used in an in-place operation",
            run="MaskedLinear()(torch.randn(2, 8)).sum().backward()",
            note="a layer's weight, in a helper forward calls; no automatic fix",
        ),
        Invalid(
            """
            import torch

            class Scaler(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.scale = torch.nn.Parameter(torch.ones(1))

                def forward(self, x):
                    for _ in range(2):
                        self.scale *= 2
                    return x * self.scale
            """,
            lines=[10],
            raises=_LEAF_ERROR,
            run="Scaler()(torch.randn(3)).sum().backward()",
            note="inside a loop: no automatic fix",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        classes = unit.module_classes()
        if not classes:
            return
        # only in-place changes of `self.x` / `self.x.weight` can concern a parameter
        aliases = unit.module.aliases
        changes = [c for c in inplace_changes(unit) if _on_self_attribute(c[1], aliases)]
        if not changes or freezes_something(unit):
            return  # (`p.requires_grad = False` somewhere: we cannot tell which parameters)
        for cls in classes:
            attributes = unit.class_attributes(cls)
            leaves = {
                name
                for name, info in attributes.items()
                if info.kind == "grad_tensor" or (info.kind == "parameter" and not _created_frozen(info))
            }
            layers = {
                name
                for name, info in attributes.items()
                if info.kind == "layer" and (info.ctor or "").startswith("torch.nn.")
            }
            if not leaves and not layers:
                continue
            sites = list(_mutations(unit, cls, changes, leaves, layers))
            if not sites:
                continue
            reachable = _grad_enabled_methods(unit, cls)
            counts: dict[str, int] = {}
            for _, target, _, _, _ in sites:
                counts[target] = counts.get(target, 0) + 1
            for node, target, what, func, error in sites:
                if func not in reachable or unit.in_no_grad(node):
                    continue
                fix = None
                hint = "; update it under `torch.no_grad()` outside `forward`, or compute a new tensor"
                if counts[target] == 1 and func.name == "forward":
                    edit = _out_of_place(unit, func, node, target)
                    if edit is not None:
                        local, build = edit
                        hint = f"; compute `{local} = ...` out of place instead"
                        fix = self.make_fix(f"Compute `{local}` out of place", build)
                info = attributes.get(target.split(".")[1])
                kind = "leaf tensor" if info is not None and info.kind == "grad_tensor" else "parameter"
                message = self.message.format(
                    what=what, kind=kind, target=target, method=func.name, error=error, hint=hint
                )
                yield self.finding(unit, node, message, fix=fix)


def freezes_something(unit: Unit) -> bool:
    """Does the unit switch `requires_grad` off anywhere (`p.requires_grad = False`,
    `m.requires_grad_(False)`)?"""
    for node in unit.nodes_of(ast.Assign):
        for target in node.targets:  # type: ignore[attr-defined]
            if isinstance(target, ast.Attribute) and target.attr == "requires_grad" and is_false(node.value):  # type: ignore[attr-defined]
                return True
    for call in method_call_index(unit).get("requires_grad_", ()):
        arg = call.args[0] if call.args else kwarg(call, "requires_grad")
        if is_false(arg):
            return True
    return False


def _created_frozen(info: AttributeInfo) -> bool:
    value = info.value
    if not isinstance(value, ast.Call):
        return False
    flag = value.args[1] if len(value.args) > 1 else kwarg(value, "requires_grad")
    return flag is not None and not (isinstance(flag, ast.Constant) and flag.value is True)


def _grad_enabled_methods(unit: Unit, cls: ast.ClassDef) -> set[FunctionNode]:
    """`forward` and the methods it calls as `self.m(...)` with gradients enabled: the
    engine's (cached) reachable set, minus methods reached only through calls under
    `torch.no_grad()` or decorated with it."""
    reachable = unit.methods_reachable_from(cls, "forward")
    if not reachable:
        return set()
    calls = method_call_index(unit)
    seen: set[FunctionNode] = set()
    todo = [reachable[0]]
    while todo:
        func = todo.pop()
        if func in seen or unit.decorator_disables_grad(func):
            continue
        seen.add(func)
        for callee in reachable:
            if callee in seen:
                continue
            for call in calls.get(callee.name, ()):
                receiver = call.func.value  # type: ignore[attr-defined]
                if (
                    isinstance(receiver, ast.Name)
                    and receiver.id == (self_name(func) or "self")
                    and unit.enclosing_function(call) is func
                    and not unit.in_no_grad(call)
                ):
                    todo.append(callee)
                    break
    return seen


_PRECEDENCE = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2, ast.FloorDiv: 2, ast.Mod: 2, ast.MatMult: 2}


def _binds_tighter(value: ast.expr, op: ast.operator) -> bool:
    """Can `value` follow `target <op>` without parentheses (`w + 0.1 * g`)?"""
    if not isinstance(value, ast.BinOp):
        return False
    inner, outer = _PRECEDENCE.get(type(value.op)), _PRECEDENCE.get(type(op))
    return inner is not None and outer is not None and inner > outer


def _leaf_target(node: ast.AST, me: str, leaves: set[str], layers: set[str]) -> str | None:
    """`self.w` (a parameter) or `self.fc.weight` (a built-in layer's parameter) -> its text."""
    attr = self_attribute(node, me)
    if attr is not None:
        return f"{me}.{attr}" if attr in leaves else None
    if isinstance(node, ast.Attribute) and node.attr in ("weight", "bias"):
        layer = self_attribute(node.value, me)
        if layer is not None and layer in layers:
            return f"{me}.{layer}.{node.attr}"
    return None


def _on_self_attribute(node: ast.expr, aliases: dict[str, str]) -> bool:
    """`<name>.x` or `<name>.x.weight` where <name> is not an import (`nn.init.normal_`)."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
        node = node.value
    return (
        isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id not in aliases
    )


def _mutations(unit: Unit, cls: ast.ClassDef, changes: list, leaves: set[str], layers: set[str]):
    """(node, target text, description, method, error) for every in-place change of a leaf in the class."""
    methods = set(unit.methods(cls).values())
    for node, receiver, what, error in changes:
        func = unit.enclosing_function(node)
        if func not in methods:
            continue
        target = _leaf_target(receiver, self_name(func) or "self", leaves, layers)
        if target is not None:
            yield node, target, what, func, error


def method_call_index(unit: Unit) -> dict[str, list[ast.Call]]:
    """`<anything>.name(...)` calls of the unit by method name (built once per unit,
    shared by GG201 and GG203)."""
    cache = unit.__dict__.get("_gg_method_calls")
    if cache is None:
        cache = {}
        for call in unit.calls():
            func = call.func
            if isinstance(func, ast.Attribute):
                cache.setdefault(func.attr, []).append(call)
        unit.__dict__["_gg_method_calls"] = cache
    return cache


def inplace_changes(unit: Unit) -> list[tuple[ast.AST, ast.expr, str, str]]:
    """Every in-place change in the unit: (node, changed expression, description, the
    error PyTorch raises if the changed tensor is a leaf that requires grad).
    Computed once per unit (GG201 and GG203 both use it)."""
    cached = unit.__dict__.get("_gg_inplace_changes")
    if cached is not None:
        return cached
    found: list[tuple[ast.AST, ast.expr, str, str]] = []
    for node in unit.nodes_of(ast.AugAssign):
        target = node.target  # type: ignore[attr-defined]
        if isinstance(target, ast.Subscript):
            found.append((node, target.value, "indexed write", leaf_error(target.slice)))
        else:
            op = _OPERATORS.get(type(node.op), "")  # type: ignore[attr-defined]
            found.append((node, target, f"`{op}=`" if op else "update", _LEAF_ERROR))
    for node in unit.nodes_of(ast.Assign):
        for target in node.targets:  # type: ignore[attr-defined]
            if isinstance(target, ast.Subscript):
                found.append((node, target.value, "indexed write", leaf_error(target.slice)))
    for name, calls in method_call_index(unit).items():
        if is_inplace_method(name):
            found.extend((call, call.func.value, f"`.{name}()`", _LEAF_ERROR) for call in calls)  # type: ignore[attr-defined]
    unit.__dict__["_gg_inplace_changes"] = found
    return found


def _out_of_place(unit: Unit, func: FunctionNode, node: ast.AST, target: str):
    """`self.w += x` -> `w = self.w + x` (and later reads of `self.w` in forward -> `w`)."""
    statement = unit.parent(node) if isinstance(node, ast.Call) else node
    if unit.parent(statement) is not func:
        return None  # inside a loop or a branch: the rewrite would change what runs
    if isinstance(node, ast.Call):
        if not isinstance(statement, ast.Expr) or node.func.attr not in _OUT_OF_PLACE:  # type: ignore[attr-defined]
            return None
        # `self.w.add_(x)` -> `self.w.add(x)`
        func_text = unit.segment(node.func)[:-1]
        args_start = unit.node_range(node.func)[2:]
        end = unit.node_range(node)[2:]
        args = unit.source.text_between(*args_start, *end)
        value = f"{func_text}{args}"
    elif isinstance(node, ast.AugAssign) and type(node.op) in _OPERATORS:
        right = node.value
        right_text = unit.segment(right)
        if not isinstance(right, _ATOMIC) and not _binds_tighter(right, node.op):
            right_text = f"({right_text})"
        value = f"{target} {_OPERATORS[type(node.op)]} {right_text}"
    else:
        return None
    local = target.split(".", 1)[1].replace(".", "_")
    if not local.isidentifier() or keyword.iskeyword(local) or hasattr(builtins, local):
        return None
    used = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)} | {
        a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)
    }
    if local in used:
        return None
    later_reads = []
    # by position, not line: `self.w += x; return self.w` reads it later on the same line
    end = (statement.end_lineno or statement.lineno, statement.end_col_offset or 0)
    methods = set(unit.methods(unit.parent(func)).keys())  # type: ignore[arg-type]
    me = self_name(func) or "self"
    for sub in ast.walk(func):
        if (getattr(sub, "lineno", 0), getattr(sub, "col_offset", 0)) < end:
            continue
        if isinstance(sub, ast.Attribute) and unit.segment(sub) == target:
            if not isinstance(sub.ctx, ast.Load):
                return None  # re-assigned later: leave it to a human
            later_reads.append(sub)
        elif isinstance(sub, ast.Call) and self_attribute(sub.func, me) in methods:
            return None  # another method may read the parameter after the change

    def build() -> list[TextEdit]:
        import libcst as cst

        line = render(cst.Assign(targets=[cst.AssignTarget(cst.Name(local))], value=parse_expression(value)))
        return [replace_node(unit, statement, line)] + [replace_node(unit, r, local) for r in later_reads]

    return local, build
