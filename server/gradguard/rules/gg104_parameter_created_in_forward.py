"""GG104: a layer or `nn.Parameter` constructed inside `forward`."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Applicability, Finding
from gradguard.engine.fixes import insert_after_statement, replace_node
from gradguard.engine.index import Unit, callee_name, is_false, keyword, self_attribute, self_name, walk
from gradguard.engine.queries import node_text
from gradguard.engine.rule import Invalid, Message, Rule, Valid

# torch.nn layers that own parameters (by default), from torch_facts (generated: default instances)
LAYERS_WITH_PARAMETERS = frozenset(
    n for n in torch_facts.layers() if (facts := torch_facts.layer(n)) is not None and facts.owns_parameters
)
_CONTAINERS = frozenset(f"torch.nn.{name}" for name in torch_facts.containers())
_CTOR_TEXT = re.compile(r"Parameter\(|(" + "|".join(sorted(LAYERS_WITH_PARAMETERS)) + r")\(")


class ParameterCreatedInForward(Rule):
    code = "GG104"
    needs_class = "module"  # starts from unit.module_classes() only
    name = "parameter-created-in-forward"
    summary = "A layer with weights or an `nn.Parameter` is constructed inside `forward`."
    why = (
        "A layer built inside `forward` gets fresh random weights on every call and is not among the "
        "parameters the optimizer updates, so that part of the model never learns."
    )
    message = Message("`{ctor}` is created inside `forward`: new random weights on every call, never trained")
    explanation = """
    Constructing `nn.Linear(...)`, `nn.Conv2d(...)`, `nn.LayerNorm(...)`,
    `nn.Parameter(...)` ... inside `forward` builds fresh, randomly initialised weights on
    every call. They are not among the `model.parameters()` the optimizer was built from,
    so the optimizer never updates them; the gradients computed for them are thrown away
    with the object. The model's output for the same input changes from call to call,
    and that part of the model never learns. The same holds for assigning
    `self.fc = nn.Linear(...)` unconditionally in `forward`: it is replaced on every call.

    Create layers and parameters once, in `__init__`, and only *use* them in
    `forward`. Parameter-free layers (`nn.ReLU()`, `nn.Dropout()`, `nn.Identity()`,
    `nn.Flatten()`, `nn.Softmax()`, ...) built in `forward` are merely wasteful and are
    not reported; neither is lazy initialisation guarded by a condition
    (`if self.proj is None: self.proj = nn.Linear(...)`), nor a builder method behind a
    decorator that may cache its result (`functools.cache`, `cached_property`, a decorator
    that stores it on the module, or one whose code is not in the file).

    **Fix safety.** Unsafe: for a layer built and called at once in a plain statement of
    `forward` (`nn.Linear(d, h)(x)`) whose arguments are constants, module-level names or
    `__init__`'s parameters, the fix creates it once at the end of `__init__`
    (`self.linear = nn.Linear(d, h)`) and calls `self.linear(x)` in `forward`. The model then
    has new parameters: its `state_dict` gains keys (old checkpoints no longer load strictly),
    the optimizer trains them, the random initialisation happens in a different order, and a
    name that `__init__` takes as a parameter now means that parameter, not the module-level
    name of the same spelling. No fix for layers stored in a variable, built in a loop or a
    condition, or sized from the input.
    """
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class Guide(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.deps = nn.ModuleDict()
                    self.prototype = None

                def _setup_prototype(self, x):
                    self.prototype = x.shape
                    dep = nn.Linear(x.shape[-1], 2, bias=False)
                    dep.weight.data.zero_()
                    self.deps["loc"] = dep

                def forward(self, x):
                    if self.prototype is None:
                        self._setup_prototype(x)
                    return self.deps["loc"](x)
            """,
            note="pyro infer/autoguide/structured.py: a one-time setup behind a test of the module's own "
            "state builds its layers on the first call only",
            run="""
            g = Guide()
            g(torch.randn(3, 4)).sum().backward()
            weight = g.deps["loc"].weight
            g(torch.randn(3, 4))
            assert g.deps["loc"].weight is weight and len(list(g.parameters())) == 1
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Embedding(nn.Module):
                def __init__(self, hidden=8, out=2):
                    super().__init__()
                    self.hidden = hidden
                    self.out = out
                    self.final = None

                def forward(self, y):
                    if self.final is None:
                        c_in = int(torch.tensor(y.shape[1:]).prod().item())
                        self.final = nn.Sequential(
                            nn.Flatten(),
                            nn.Linear(c_in, self.hidden),
                            nn.ReLU(),
                            nn.Linear(self.hidden, self.out),
                        )
                    return self.final(y)
            """,
            note="sbi neural_nets/embedding_nets/resnet.py: layers built inside an `nn.Sequential` stored on "
            "the module behind a test of its own state are made on the first call only, and registered",
            run="""
            e = Embedding()
            e(torch.randn(3, 2, 2)).sum().backward()
            weight = e.final[1].weight
            e(torch.randn(3, 2, 2))
            assert e.final[1].weight is weight and len(list(e.parameters())) == 4
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            from torch.nn import Parameter

            class Explainer(nn.Module):
                def __init__(self, epochs=10, lr=0.01):
                    super().__init__()
                    self.epochs = epochs
                    self.lr = lr

                def _initialize_mask(self, x):
                    return Parameter(torch.randn(x.size(0), 1) * 0.1)

                def forward(self, model, x):
                    mask = self._initialize_mask(x)
                    optimizer = torch.optim.Adam([mask], lr=self.lr)
                    for _ in range(self.epochs):
                        optimizer.zero_grad()
                        loss = model(x * mask.sigmoid()).sum()
                        loss.backward()
                        optimizer.step()
                    return mask
            """,
            note="forward creates a mask and the optimizer that trains it in the same call "
            "(torch_geometric explain/algorithm/gnn_explainer.py)",
            run="print(Explainer()(nn.Linear(3, 1), torch.randn(5, 3)).shape)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 4)
                    self.proj = None

                def forward(self, x):
                    x = nn.ReLU()(self.fc(x))
                    x = nn.Dropout(0.1)(x)
                    x = nn.Flatten()(x)
                    if self.proj is None:
                        self.proj = nn.Linear(x.shape[-1], 2)
                    fixed = nn.Parameter(torch.ones(2), requires_grad=False)
                    norm = nn.LayerNorm(2, elementwise_affine=False)
                    return norm(self.proj(x) * fixed)
            """,
            note="parameter-free layers, lazy init, non-trainable parameter",
        ),
        Valid(
            """
            import torch.nn as nn

            class Factory(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = self.make_body()

                def make_body(self):
                    return nn.Sequential(nn.Linear(4, 4), nn.ReLU())

                def forward(self, x):
                    return self.body(x)
            """,
            note="layers built in a helper called from __init__",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            def build_and_train(data, targets):
                model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
                opt = torch.optim.SGD(model.parameters(), lr=0.1)
                loss = nn.functional.mse_loss(model(data), targets)
                loss.backward()
                opt.step()
                return model

            class Head(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 2)

                def forward(self, x):
                    act = nn.Sequential(nn.GELU(), nn.Dropout(0.1))
                    with torch.no_grad():
                        probe = nn.Linear(2, 2)(self.fc(x))
                    return act(self.fc(x)), probe
            """,
            note="layers built in a training function; parameter-free Sequential; a probe under no_grad",
        ),
        Valid(
            """
            import functools
            import torch
            import torch.nn as nn

            def singleton(cache_key):
                def inner_fn(fn):
                    @functools.wraps(fn)
                    def wrapper(self, *args, **kwargs):
                        instance = getattr(self, cache_key)
                        if instance is not None:
                            return instance
                        instance = fn(self, *args, **kwargs)
                        setattr(self, cache_key, instance)
                        return instance
                    return wrapper
                return inner_fn

            class BYOL(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.projector = None

                @singleton("projector")
                def _get_projector(self, hidden):
                    return nn.Sequential(nn.Linear(hidden.shape[-1], 2), nn.LayerNorm(2)).to(hidden)

                @functools.cache
                def _get_head(self, dim):
                    return nn.Linear(dim, 1)

                def forward(self, hidden):
                    return self._get_head(2)(self._get_projector(hidden)(hidden))
            """,
            note="dev6 byol-pytorch byol_pytorch.py: the builder is behind a decorator of the file that "
            "keeps its result on the module (`setattr(self, cache_key, ...)`), or behind `functools.cache`: "
            "it builds its layers on the first call only",
            run="""
            m = BYOL()
            m(torch.randn(3, 4)).sum().backward()
            weights = [p for p in m.parameters()]
            m(torch.randn(3, 4))
            assert [p for p in m.parameters()] == weights and m._get_head(2) is m._get_head(2)
            """,
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(10, 20)

                def forward(self, x):
                    x = torch.relu(self.fc1(x))
                    fc2 = nn.Linear(20, 1)
                    return fc2(x)
            """,
            lines=[11],
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Gate(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.dim = dim

                def forward(self, x):
                    self.scale = nn.Parameter(torch.ones(self.dim))
                    return self.mix(x) * self.scale

                def mix(self, x):
                    return nn.Linear(self.dim, self.dim)(x)
            """,
            lines=[10, 14],
        ),
        Invalid(
            """
            import functools
            import torch.nn as nn

            def logged(fn):
                @functools.wraps(fn)
                def wrapper(self, *args):
                    print("building", fn.__name__)
                    return fn(self, *args)
                return wrapper

            class Head(nn.Module):
                @logged
                def _build(self, dim):
                    return nn.Linear(dim, 1)

                def forward(self, x):
                    return self._build(x.shape[-1])(x)
            """,
            lines=[14],
            raises="the output changed between two calls",
            run="""
            import torch
            x, head = torch.randn(2, 3), Head()
            assert torch.equal(head(x), head(x)), "the output changed between two calls"
            """,
            note="a decorator of the file that keeps nothing between calls: the builder runs on every call",
        ),
        Invalid(
            """
            import torch

            D_in, H, D_out = 10, 5, 2

            class ThreeLayerNet(torch.nn.Module):
                def __init__(self, D_in, H, D_out):
                    super().__init__()

                def forward(self, x):
                    h = torch.nn.Linear(D_in, H)(x).clamp(min=0)
                    return torch.nn.Linear(H, D_out)(h)
            """,
            lines=[10, 11],
            fixed="""
            import torch

            D_in, H, D_out = 10, 5, 2

            class ThreeLayerNet(torch.nn.Module):
                def __init__(self, D_in, H, D_out):
                    super().__init__()
                    self.linear = torch.nn.Linear(D_in, H)
                    self.linear2 = torch.nn.Linear(H, D_out)

                def forward(self, x):
                    h = self.linear(x).clamp(min=0)
                    return self.linear2(h)
            """,
            raises="the model's parameters are empty",
            run="""
            model = ThreeLayerNet(D_in, H, D_out)
            assert list(model.parameters()), "the model's parameters are empty"
            """,
            check_fixed="assert torch.equal(model(torch.ones(1, D_in)), model(torch.ones(1, D_in)))",
            note="the layers are built and called in forward (pytorch/tutorials two_layer_net_module)",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        module = unit.module
        for cls in unit.module_classes():
            methods = list(unit.methods_reachable_from(cls, "forward"))
            if _builds_optimizer(unit, methods):
                # an explainer or test-time adapter: `forward` creates what it trains and the
                # optimizer that trains it (`torch.optim.Adam([mask], ...)`) within the same call
                continue
            for func in methods:
                if not _CTOR_TEXT.search(node_text(unit, func)):
                    continue
                if func.name != "forward" and (_lazy_setup(unit, methods, func) or _may_run_once(unit, func)):
                    continue
                me = self_name(func) or "self"
                in_forward = func.name == "forward"
                for node in walk(func):
                    if not isinstance(node, ast.Call):
                        continue
                    ctor = module.call_name(node)
                    if module.is_parameter_constructor(node):
                        flag = keyword(node, "requires_grad") is None or not is_false(
                            keyword(node, "requires_grad")
                        )
                        label = "nn.Parameter(...)"
                    elif (
                        ctor
                        and ctor.startswith("torch.nn.")
                        and ctor.rsplit(".", 1)[1] in LAYERS_WITH_PARAMETERS
                    ):
                        # `affine=False`, `elementwise_affine=False`: the constructor switches off every parameter
                        facts = torch_facts.layer(ctor.rsplit(".", 1)[1])
                        switches = facts.switches if facts is not None else ()
                        flag = not any(is_false(keyword(node, k)) for k in switches)
                        label = f"nn.{ctor.rsplit('.', 1)[1]}(...)"
                    else:
                        continue
                    if not flag or unit.in_no_grad(node):
                        continue
                    stored = _stored_on_self(unit, node, me)
                    if stored is not None:
                        # `self.x = nn.Linear(...)`: lazy init when guarded; replaced every call when not
                        if not in_forward or unit.parent(stored) is not func:
                            continue
                        message = (
                            f"`{label}` is assigned to `self` on every call of `forward`\nIt is re-created "
                            "with new random weights each time, so it never learns; create it in `__init__`."
                        )
                    else:
                        where = "`forward`" if in_forward else f"`{func.name}` (called from `forward`)"
                        message = (
                            f"`{label}` is created inside {where}: new weights on every call\nIt gets new "
                            "random weights each time, is not in the `.parameters()` the optimizer updates, "
                            "so it never learns; create it in `__init__`."
                        )
                    fix = None
                    if stored is None and in_forward:
                        fix = self._fix(unit, cls, func, node)
                    yield self.finding(unit, node, message, fix=fix)

    def _fix(self, unit: Unit, cls: ast.ClassDef, forward, ctor: ast.Call):
        """`nn.Linear(d, h)(x)` in a plain statement of forward -> `self.linear(x)`, with
        `self.linear = nn.Linear(d, h)` at the end of `__init__`."""
        call = unit.parent(ctor)
        init = unit.methods(cls).get("__init__")
        if not isinstance(call, ast.Call) or call.func is not ctor or init is None:
            return None
        statement = unit.enclosing_statement(call)
        if statement is None or statement not in forward.body:
            return None  # in a loop or a condition: one layer per iteration or branch
        if not _movable(ctor, forward, init):
            return None
        me = self_name(init) or "self"
        name = _attribute_name(unit, cls, ctor)
        if name is None:
            return None
        return self.make_fix(
            f"Create `{me}.{name}` in `__init__`",
            [
                insert_after_statement(unit, init.body[-1], f"{me}.{name} = {unit.segment(ctor)}"),
                replace_node(unit, ctor, f"{self_name(forward) or 'self'}.{name}"),
            ],
        )


def _movable(ctor: ast.Call, forward, init) -> bool:
    """The constructor's arguments mean the same at the end of `__init__`: constants, arithmetic,
    and free names of forward (module-level or enclosing names) that `__init__` does not assign;
    a parameter of `__init__` of the same name is taken to be meant (see Fix safety)."""
    own = {a.arg for a in forward.args.posonlyargs + forward.args.args + forward.args.kwonlyargs}
    own |= {n.id for n in walk(forward) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    own |= {n.id for n in walk(init) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for arg in [*ctor.args, *(k.value for k in ctor.keywords)]:
        for node in ast.walk(arg):
            if isinstance(node, ast.Name):
                if node.id in own:
                    return False
            elif not isinstance(
                node,
                (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Attribute, ast.operator, ast.unaryop, ast.Load),
            ):
                return False  # a call (`x.size(1)`), a subscript, a starred argument ...
    return True


def _attribute_name(unit: Unit, cls: ast.ClassDef, ctor: ast.Call) -> str | None:
    """`linear`, `linear2`, ...: the class name in snake case, numbered past the attributes the
    class already has and the other layers of its kind built in forward before this one."""
    func = ctor.func
    kind = callee_name(func)
    if not kind:
        return None
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", kind).lower()
    taken = {
        attr
        for node in ast.walk(cls)
        for attr in [self_attribute(node)]
        if isinstance(node, ast.Attribute) and attr is not None
    }
    taken |= {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    earlier = sum(
        1
        for node in ast.walk(cls)
        if isinstance(node, ast.Call)
        and node is not ctor
        and isinstance(node.func, type(func))
        and ast.dump(node.func) == ast.dump(func)
        and isinstance(parent := unit.parent(node), ast.Call)
        and parent.func is node
        and (node.lineno, node.col_offset) < (ctor.lineno, ctor.col_offset)
    )
    index = 0
    while True:
        index += 1
        name = base if index == 1 else f"{base}{index}"
        if name in taken:
            continue
        if earlier == 0:
            return name
        earlier -= 1


def _stored_on_self(unit: Unit, call: ast.Call, me: str) -> ast.stmt | None:
    """The statement storing the call on the module (`self.x = ...`, `setattr(self, ...)`,
    `self.register_parameter(...)`, `self.add_module(...)`), or None."""
    parent = unit.parent(call)
    # `self.head = nn.Sequential(nn.Linear(...), ...)`, `nn.ModuleList([...])`, `nn.ModuleDict({...})`: the
    # layer is stored with its container (not with a plain list, which does not register it)
    held: ast.expr = call
    if isinstance(parent, (ast.List, ast.Tuple)) or (isinstance(parent, ast.Dict) and call in parent.values):
        held = parent
    container = unit.parent(held)
    if (
        isinstance(container, ast.Call)
        and held in container.args
        and unit.module.call_name(container) in _CONTAINERS
    ):
        return _stored_on_self(unit, container, me)
    if isinstance(parent, (ast.Assign, ast.AnnAssign)):
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        if any(self_attribute(t, me) for t in targets):
            return parent
        names = {t.id for t in targets if isinstance(t, ast.Name)}
        func = unit.enclosing_function(call)
        if names and func is not None:
            # `new = nn.Embedding(...); ...; self.bias = new`: stored on the module later
            for node in walk(func):
                if (
                    isinstance(node, ast.Assign)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in names
                    and any(self_attribute(t, me) for t in node.targets)
                ):
                    return node
        return None
    if isinstance(parent, ast.Call) and call in parent.args:
        func = parent.func
        if isinstance(func, ast.Name) and func.id == "setattr":
            return unit.enclosing_statement(parent)
        if isinstance(func, ast.Attribute) and func.attr in (
            "register_parameter",
            "add_module",
            "register_module",
        ):
            return unit.enclosing_statement(parent)
        if isinstance(func, ast.Attribute) and func.attr == "append" and self_attribute(func.value, me):
            return unit.enclosing_statement(parent)  # self.layers.append(...): a growing ModuleList
    return None


def _builds_optimizer(unit: Unit, methods) -> bool:
    """Whether one of these methods constructs a `torch.optim` optimizer."""
    for func in methods:
        if "optim" not in node_text(unit, func):
            continue
        for node in walk(func):
            if isinstance(node, ast.Call):
                qual = unit.module.call_name(node)
                if (
                    qual
                    and qual.startswith("torch.optim.")
                    and "lr_scheduler" not in qual
                    and qual.rsplit(".", 1)[1][:1].isupper()
                ):
                    return True
    return False


def _lazy_setup(unit: Unit, methods, func: ast.AST) -> bool:
    """`func` is a one-time setup: every call of it from the forward methods is guarded by a test
    of the module's own state (`if self.prototype_trace is None: self._setup_prototype(...)`,
    `if not self.initialized: ...`), which the first call changes (pyro autoguide)."""
    name = getattr(func, "name", None)
    calls = [
        node
        for method in methods
        for node in walk(method)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == name
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == (self_name(method) or "self")
    ]
    return bool(calls) and all(_guarded_by_state(unit, call) for call in calls)


# decorators known to call the method every time (checks, grad modes, compilation, descriptors)
_PASS_THROUGH_MODULES = (
    "torch.",
    "abc.",
    "typing.",
    "typing_extensions.",
    "beartype",
    "jaxtyping",
    "typeguard",
)
_PASS_THROUGH_NAMES = frozenset({"staticmethod", "classmethod", "property", "functools.wraps"})
_CACHING = frozenset({"functools.cache", "functools.lru_cache", "functools.cached_property"})


def _may_run_once(unit: Unit, func: ast.AST) -> bool:
    """A builder method (not `forward`) behind a decorator that may cache its result, so that it
    builds its layers on the first call only (`@functools.cache`, `@cached_property`, a decorator
    of the file that keeps the result: `setattr(self, key, instance)`, `cache[key] = ...`). A
    decorator the file does not define and that is not known to call through (`torch.*`, type
    checkers, `property`) may cache too: the finding would be a guess, so none is made."""
    for deco in getattr(func, "decorator_list", ()):
        target = deco.func if isinstance(deco, ast.Call) else deco
        qual = unit.module.qualname(target)
        if qual is not None:
            if qual in _CACHING:
                return True
            if qual in _PASS_THROUGH_NAMES or qual.startswith(_PASS_THROUGH_MODULES):
                continue
            return True  # imported from elsewhere: unknown
        if isinstance(target, ast.Name) and target.id in _PASS_THROUGH_NAMES:
            continue
        defined = None
        if isinstance(target, ast.Name):
            unit.semantics.rests_on_text_naming(target.id)  # (its definition, edited elsewhere)
            defined = unit.semantics.top.get(target.id)
        if isinstance(defined, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _keeps_state(defined):
            continue  # a decorator of the file that keeps nothing between calls
        return True
    return False


def _keeps_state(decorator: ast.AST) -> bool:
    """The decorator's code stores something that outlives a call: `setattr(...)`, an item or an
    attribute store, `nonlocal`/`global`."""
    for node in walk(decorator):
        if isinstance(node, (ast.Nonlocal, ast.Global)):
            return True
        if isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.ctx, ast.Store):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            return True
    return False


def _guarded_by_state(unit: Unit, node: ast.AST) -> bool:
    child, parent = node, unit.parent(node)
    while parent is not None and not isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
        if isinstance(parent, ast.If) and child in parent.body and _state_test(parent.test):
            return True
        child, parent = parent, unit.parent(parent)
    return False


def _state_test(test: ast.expr) -> bool:
    """`self.x is None`, `not self.x`, `self.x == False`, `not hasattr(self, "x")`."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        operand = test.operand
        if (
            isinstance(operand, ast.Call)
            and isinstance(operand.func, ast.Name)
            and operand.func.id == "hasattr"
        ):
            return (
                bool(operand.args) and isinstance(operand.args[0], ast.Name) and operand.args[0].id == "self"
            )
        return _self_attr(operand)
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and _self_attr(test.left):
        right = test.comparators[0]
        return isinstance(right, ast.Constant) and right.value in (None, False)
    return False


def _self_attr(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
