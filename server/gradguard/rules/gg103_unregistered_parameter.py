"""GG103: tensors and layers stored on a module where `nn.Module` cannot see them."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from gradguard.engine.finding import Applicability, Finding
from gradguard.engine.fixes import nn_name, replace_node
from gradguard.engine.index import (
    TENSOR_FACTORIES,
    Unit,
    creates_grad_leaf,
    keyword,
    self_attribute,
    self_name,
    walk,
)
from gradguard.engine.queries import node_text
from gradguard.engine.rule import Invalid, Rule, Valid
from gradguard.engine.semantic import is_param_free_layer

# `requires_grad`, a container display/comprehension, or a container being filled
_CANDIDATE_TEXT = re.compile(
    r"requires_grad|self\.\w+\s*(:[^=\n]*)?=\s*[\[\(\{]|\.(append|extend|insert)\(|=\s*(list|dict)\(\)|\]\s*=[^=]"
)
_KIND_MODULE = "module"
_KIND_PARAM = "param"
_EMPTY_LIST_CALLS = {"list"}
_EMPTY_DICT_CALLS = {"dict"}


class UnregisteredParameter(Rule):
    code = "GG103"
    needs_class = "module"  # starts from unit.module_classes() only
    name = "unregistered-parameter"
    summary = (
        "A tensor with `requires_grad=True`, or a Python list/dict of layers or parameters, stored on a "
        "module in `__init__`: `nn.Module` does not register it."
    )
    why = (
        "`nn.Module` registers only parameters, modules and buffers: a plain tensor or a Python list of "
        "layers is missing from `model.parameters()` and `state_dict()`, so the optimizer never updates it."
    )
    message = "`self.{attr}` is not registered with the module"
    explanation = """
    `nn.Module` registers what you assign to `self.x` only when it is an
    `nn.Parameter`, an `nn.Module`, or a buffer (`register_buffer`). Anything else is a
    plain Python attribute:

    * `self.w = torch.randn(3, requires_grad=True)` gets gradients in `backward()`, but
      it is missing from `model.parameters()`, so an optimizer built from them never
      updates it; it is missing from `state_dict()` (not saved, not loaded), and
      `model.to(device)` / `model.double()` do not convert it.
    * `self.layers = [nn.Linear(...), ...]` (a Python list, tuple or dict, including a
      comprehension) hides the layers: their parameters are not in `model.parameters()`
      and never train, are not saved in `state_dict()`, and `.to()`, `.train()` and
      `.eval()` do not reach them.

    Use `nn.Parameter(tensor)` for a learnable tensor (it requires grad by default),
    `nn.ModuleList`/`nn.ModuleDict` for containers of layers and
    `nn.ParameterList`/`nn.ParameterDict` for containers of parameters. Lists of
    numbers, shapes or names, lists of parameter-free layers, and lists of layers that
    are also passed to `nn.Sequential(*layers)` are fine and not reported. The fix
    changes the module's `state_dict()` keys, so checkpoints saved before it will have
    different keys.
    """
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class MLP(nn.Module):
                def __init__(self, sizes=(8, 16, 4)):
                    super().__init__()
                    self.sizes = [8, 16, 4]
                    self.names = ["in", "hidden", "out"]
                    layers = []
                    for a, b in zip(sizes, sizes[1:]):
                        layers.append(nn.Linear(a, b))
                        layers.append(nn.ReLU())
                    self.layers = layers
                    self.net = nn.Sequential(*layers)
                    self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
                    self.scale = nn.Parameter(torch.ones(1))
                    self.acts = [nn.ReLU(), nn.Dropout(0.1)]
                    self.register_buffer("mask", torch.ones(4))

                def forward(self, x):
                    return self.net(x) * self.scale
            """,
            note="numbers, names, a list also given to nn.Sequential, ModuleList, parameter-free layers",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Ensemble(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(4, 2)
                    self.b = nn.Linear(4, 2)
                    self.members = [self.a, self.b]
                    self.cache = torch.zeros(2)

                def forward(self, x):
                    return sum(m(x) for m in self.members)
            """,
            note="a list of layers that are already registered; a constant tensor",
        ),
        Valid(
            """
            import torch

            class Stats:
                def __init__(self):
                    self.history = [torch.zeros(3, requires_grad=True)]
            """,
            note="not an nn.Module",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Affine(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.weight = torch.randn(dim, requires_grad=True)
                    self.bias = nn.Parameter(torch.zeros(dim))

                def forward(self, x):
                    return x * self.weight + self.bias
            """,
            lines=[7],
            fixed="""
            import torch
            import torch.nn as nn

            class Affine(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(dim))
                    self.bias = nn.Parameter(torch.zeros(dim))

                def forward(self, x):
                    return x * self.weight + self.bias
            """,
            check_fixed="""
            m = Affine(3)
            assert len(list(m.parameters())) == 2
            m(torch.randn(2, 3)).sum().backward()
            assert m.weight.grad is not None and "weight" in m.state_dict()
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Tower(nn.Module):
                def __init__(self, depth=3):
                    super().__init__()
                    self.layers = [nn.Linear(16, 16) for _ in range(depth)]
                    self.heads = {"cls": nn.Linear(16, 10), "box": nn.Linear(16, 4)}
                    self.out = nn.Linear(16, 1)

                def forward(self, x):
                    for layer in self.layers:
                        x = torch.relu(layer(x))
                    return self.out(x) + self.heads["cls"](x).sum(1, keepdim=True)
            """,
            lines=[7, 8],
            fixed="""
            import torch
            import torch.nn as nn

            class Tower(nn.Module):
                def __init__(self, depth=3):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(16, 16) for _ in range(depth)])
                    self.heads = nn.ModuleDict({"cls": nn.Linear(16, 10), "box": nn.Linear(16, 4)})
                    self.out = nn.Linear(16, 1)

                def forward(self, x):
                    for layer in self.layers:
                        x = torch.relu(layer(x))
                    return self.out(x) + self.heads["cls"](x).sum(1, keepdim=True)
            """,
            check_fixed="""
            m = Tower()
            assert len(list(m.parameters())) == 2 * 3 + 2 * 2 + 2
            m(torch.randn(2, 16)).sum().backward()
            assert all(layer.weight.grad is not None for layer in m.layers)
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Experts(nn.Module):
                def __init__(self, n=4):
                    super().__init__()
                    self.experts = []
                    for _ in range(n):
                        self.experts.append(nn.Linear(8, 8))
                    self.gates = []
                    for _ in range(n):
                        self.gates.append(nn.Parameter(torch.zeros(1)))

                def forward(self, x):
                    return sum(g * e(x) for g, e in zip(self.gates, self.experts))
            """,
            lines=[7, 10],
            fixed="""
            import torch
            import torch.nn as nn

            class Experts(nn.Module):
                def __init__(self, n=4):
                    super().__init__()
                    self.experts = nn.ModuleList()
                    for _ in range(n):
                        self.experts.append(nn.Linear(8, 8))
                    self.gates = nn.ParameterList()
                    for _ in range(n):
                        self.gates.append(nn.Parameter(torch.zeros(1)))

                def forward(self, x):
                    return sum(g * e(x) for g, e in zip(self.gates, self.experts))
            """,
            check_fixed="""
            m = Experts()
            assert len(list(m.parameters())) == 4 * 2 + 4
            """,
        ),
        Invalid(
            """
            import torch.nn as nn

            class Stack(nn.Module):
                def __init__(self):
                    super().__init__()
                    blocks = []
                    for i in range(3):
                        blocks.append(nn.Conv2d(4, 4, 3, padding=1))
                    self.blocks = blocks

                def forward(self, x):
                    for block in self.blocks:
                        x = block(x)
                    return x
            """,
            lines=[9],
            fixed="""
            import torch.nn as nn

            class Stack(nn.Module):
                def __init__(self):
                    super().__init__()
                    blocks = []
                    for i in range(3):
                        blocks.append(nn.Conv2d(4, 4, 3, padding=1))
                    self.blocks = nn.ModuleList(blocks)

                def forward(self, x):
                    for block in self.blocks:
                        x = block(x)
                    return x
            """,
            check_fixed="assert len(list(Stack().parameters())) == 6",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            from torch.autograd import Variable

            class Scale(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.alpha = Variable(torch.ones(1), requires_grad=True)
                    self.beta = torch.zeros(1)
                    self.beta.requires_grad = True

                def forward(self, x):
                    return x * self.alpha + self.beta
            """,
            lines=[8, 9],
            fixed="""
            import torch
            import torch.nn as nn
            from torch.autograd import Variable

            class Scale(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.alpha = nn.Parameter(torch.ones(1))
                    self.beta = nn.Parameter(torch.zeros(1))
                    self.beta.requires_grad = True

                def forward(self, x):
                    return x * self.alpha + self.beta
            """,
            check_fixed="assert len(list(Scale().parameters())) == 2",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for cls in unit.module_classes():
            init = unit.methods(cls).get("__init__")
            if init is not None and _CANDIDATE_TEXT.search(node_text(unit, init)):
                yield from self._check_init(unit, init)

    # -- one __init__ -----------------------------------------------------------------------------
    def _check_init(self, unit: Unit, init: ast.AST) -> Iterator[Finding]:
        me = self_name(init) or "self"  # type: ignore[arg-type]
        assigns: list[tuple[ast.stmt, str, ast.expr]] = []  # self.x = value
        local_lists: dict[str, ast.expr] = {}  # name -> its empty-list value
        added: dict[str, set[str]] = {}  # "self.x" / "x" -> kinds of fresh objects put in it
        registered: set[str] = set()  # containers handed to a layer constructor
        calls: list[ast.Call] = []
        later_grad: set[str] = set()  # self.x made to require grad after its assignment
        for node in _statements(init):
            if isinstance(node, (ast.For, ast.AsyncFor)) and _registers_in_body(node, me):
                # `for i, layer in enumerate(self.layers): self.add_module(str(i), layer)`
                for inner in walk(node.iter):
                    key = _container_key(inner, me)
                    if key:
                        registered.add(key)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = node.value
                if value is None:
                    continue
                if isinstance(value, ast.Call):
                    calls.extend(n for n in walk(value) if isinstance(n, ast.Call))
                for target in targets:
                    attr = self_attribute(target, me)
                    if attr:
                        assigns.append((node, attr, value))
                    elif (
                        isinstance(target, ast.Attribute)
                        and target.attr == "requires_grad"
                        and _is_true(value)
                        and self_attribute(target.value, me)
                    ):
                        later_grad.add(self_attribute(target.value, me))  # self.w.requires_grad = True
                    elif isinstance(target, ast.Name) and _is_empty_container(value):
                        local_lists[target.id] = value
                    elif isinstance(target, ast.Subscript):
                        key = _container_key(target.value, me)
                        kind = self._fresh_kind(unit, value)
                        if key and kind:
                            added.setdefault(key, set()).add(kind)
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                calls.extend(n for n in walk(node.value) if isinstance(n, ast.Call))
                func = node.value.func
                flag = node.value.args[0] if node.value.args else keyword(node.value, "requires_grad")
                if (
                    isinstance(func, ast.Attribute)
                    and func.attr == "requires_grad_"
                    and (flag is None or _is_true(flag))
                ):
                    attr = self_attribute(func.value, me)
                    if attr:
                        later_grad.add(attr)  # self.w.requires_grad_()
        for node in calls:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("append", "insert", "extend"):
                key = _container_key(func.value, me)
                if key and node.args:
                    item = node.args[-1]
                    kinds = (
                        self._element_kinds(unit, item)
                        if func.attr == "extend"
                        else {k for k in [self._fresh_kind(unit, item)] if k}
                    )
                    if kinds:
                        added.setdefault(key, set()).update(kinds)
            elif (
                unit.module.is_layer_constructor(node)
                or unit.module.is_parameter_constructor(node)
                or (isinstance(func, ast.Attribute) and func.attr in _REGISTER_METHODS)
            ):
                for arg in node.args:
                    inner = arg.value if isinstance(arg, ast.Starred) else arg
                    key = _container_key(inner, me)
                    if key:
                        registered.add(key)
        for stmt, attr, value in assigns:
            key = f"{me}.{attr}"
            if key in registered:
                continue
            if isinstance(value, ast.Call) and (
                _creates_grad_leaf(value, unit.module)
                or (attr in later_grad and unit.module.call_name(value) in TENSOR_FACTORIES)
            ):
                yield self._grad_tensor(unit, attr, value)
                continue
            if _is_empty_container(value):
                kinds = added.get(key)
                if kinds:
                    yield self._container(unit, attr, value, kinds, empty=True)
                continue
            if isinstance(value, ast.Name) and value.id in local_lists:
                kinds = added.get(value.id)
                if kinds and value.id not in registered:
                    yield self._container(unit, attr, value, kinds, wrap_name=True)
                continue
            kinds = self._element_kinds(unit, value)
            if kinds:
                yield self._container(unit, attr, value, kinds)

    def _fresh_kind(self, unit: Unit, node: ast.AST) -> str | None:
        """A newly built layer with parameters, or a parameter/grad tensor."""
        if not isinstance(node, ast.Call):
            return None
        module = unit.module
        if module.is_parameter_constructor(node):
            if keyword(node, "requires_grad") is not None and not _is_true(keyword(node, "requires_grad")):
                return None
            return _KIND_PARAM
        if _creates_grad_leaf(node, module):
            return _KIND_PARAM
        if module.is_layer_constructor(node):
            return None if is_param_free_layer(module.call_name(node)) else _KIND_MODULE
        return None

    def _element_kinds(self, unit: Unit, value: ast.AST) -> set[str]:
        """Kinds of the fresh objects in a list/tuple/dict display or comprehension."""
        if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
            elements = value.elts
        elif isinstance(value, ast.Dict):
            elements = value.values
        elif isinstance(value, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
            elements = [value.elt]
        elif isinstance(value, ast.DictComp):
            elements = [value.value]
        else:
            return set()
        return {k for k in (self._fresh_kind(unit, e) for e in elements) if k}

    # -- findings ----------------------------------------------------------------------------------
    def _grad_tensor(self, unit: Unit, attr: str, value: ast.Call) -> Finding:
        message = (
            f"`self.{attr}` requires grad but is a plain tensor, not an `nn.Parameter`: it is missing from "
            "`.parameters()` (an optimizer never updates it) and `state_dict()`, and `.to()` does not move it"
        )
        nn = nn_name(unit)
        fix = None
        if nn:
            inner = _without_requires_grad(unit, value)
            fix = self.make_fix(
                "Wrap in `nn.Parameter(...)`", [replace_node(unit, value, f"{nn}.Parameter({inner})")]
            )
        return self.finding(unit, value, message, fix=fix)

    def _container(
        self,
        unit: Unit,
        attr: str,
        value: ast.expr,
        kinds: set[str],
        empty: bool = False,
        wrap_name: bool = False,
    ) -> Finding:
        dict_like = isinstance(value, (ast.Dict, ast.DictComp)) or (
            empty and (isinstance(value, ast.Dict) or _call_name(value) in _EMPTY_DICT_CALLS)
        )
        what = (
            "layers"
            if kinds == {_KIND_MODULE}
            else "parameters"
            if kinds == {_KIND_PARAM}
            else "layers/parameters"
        )
        container = "dict" if dict_like else "list" if not isinstance(value, ast.Tuple) else "tuple"
        suggestion = ("Module" if kinds == {_KIND_MODULE} else "Parameter") + (
            "Dict" if dict_like else "List"
        )
        message = (
            f"`self.{attr}` is a plain Python {container} of {what}: `nn.Module` does not register them, so they "
            f"are missing from `.parameters()` (never trained) and `state_dict()`; use `nn.{suggestion}`"
        )
        fix = None
        nn = nn_name(unit)
        if nn and len(kinds) == 1:
            new = _container_text(unit, value, f"{nn}.{suggestion}", empty, wrap_name, dict_like)
            if new is not None:
                fix = self.make_fix(f"Use `nn.{suggestion}`", [replace_node(unit, value, new)])
        return self.finding(unit, value, message, fix=fix)


def _container_text(
    unit: Unit, value: ast.expr, ctor: str, empty: bool, wrap_name: bool, dict_like: bool
) -> str | None:
    if empty:
        return f"{ctor}()"
    if wrap_name:
        return f"{ctor}({unit.segment(value)})"
    if dict_like:
        if isinstance(value, ast.Dict) and not all(
            isinstance(k, ast.Constant) and isinstance(k.value, str) and "." not in k.value
            for k in value.keys
        ):
            return None  # ModuleDict keys must be strings without dots
        if isinstance(value, ast.DictComp) and not isinstance(value.key, ast.JoinedStr):
            return None
        return f"{ctor}({unit.segment(value)})"
    if isinstance(value, (ast.List, ast.ListComp)):
        return f"{ctor}({unit.segment(value)})"
    if isinstance(value, ast.GeneratorExp):
        return f"{ctor}([{unit.segment(value)[1:-1]}])" if unit.segment(value).startswith("(") else None
    if isinstance(value, ast.Tuple) and value.lineno == value.end_lineno:
        return f"{ctor}([{', '.join(unit.segment(e) for e in value.elts)}])"
    return None


_VARIABLE = {"torch.autograd.Variable", "torch.autograd.variable.Variable"}


def _creates_grad_leaf(call: ast.Call, module) -> bool:
    """A tensor factory with `requires_grad=True`, or the old `Variable(t, requires_grad=True)`."""
    if creates_grad_leaf(call, module):
        return True
    return (
        bool(call.args) and module.call_name(call) in _VARIABLE and _is_true(keyword(call, "requires_grad"))
    )


def _without_requires_grad(unit: Unit, call: ast.Call) -> str:
    """`torch.randn(3, requires_grad=True)` -> "torch.randn(3)";
    `torch.zeros(3).requires_grad_()` -> "torch.zeros(3)"; `Variable(t, requires_grad=True)` -> "t".
    Keeps the text otherwise."""
    func = call.func
    if unit.module.call_name(call) in _VARIABLE and len(call.args) == 1 and len(call.keywords) == 1:
        return unit.segment(call.args[0])
    if isinstance(func, ast.Attribute) and func.attr == "requires_grad_":
        return unit.segment(func.value)
    kw = next((k for k in call.keywords if k.arg == "requires_grad"), None)
    if kw is None or call.lineno != call.end_lineno:
        return unit.segment(call)
    parts = [unit.segment(a) for a in call.args] + [unit.segment(k) for k in call.keywords if k is not kw]
    return f"{unit.segment(func)}({', '.join(parts)})"


def _is_empty_container(value: ast.AST) -> bool:
    if isinstance(value, (ast.List, ast.Dict)):
        return not (value.elts if isinstance(value, ast.List) else value.keys)
    return (
        isinstance(value, ast.Call)
        and not value.args
        and not value.keywords
        and _call_name(value) in (_EMPTY_LIST_CALLS | _EMPTY_DICT_CALLS)
    )


def _call_name(value: ast.AST) -> str | None:
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return value.func.id
    return None


def _container_key(node: ast.AST, me: str) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    attr = self_attribute(node, me)
    return f"{me}.{attr}" if attr else None


_REGISTER_METHODS = ("add_module", "register_module", "register_parameter", "register_buffer")


_BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(func: ast.AST) -> Iterator[ast.stmt]:
    """Every statement of a function, nested blocks included (not nested defs/classes)."""
    stack = list(reversed(func.body))  # type: ignore[attr-defined]
    while stack:
        stmt = stack.pop()
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in _BLOCK_FIELDS:
            block = getattr(stmt, field, None)
            if block:
                stack.extend(reversed(block))


def _registers_in_body(loop: ast.AST, me: str) -> bool:
    for stmt in loop.body:  # type: ignore[attr-defined]
        for node in walk(stmt):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _REGISTER_METHODS:
                return True
            if isinstance(func, ast.Name) and func.id == "setattr":
                return True
    return False


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True
