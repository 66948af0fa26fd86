"""GG104: a layer or `nn.Parameter` constructed inside `forward`."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from gradguard.engine.finding import Finding
from gradguard.engine.index import Unit, is_false, keyword, self_attribute, self_name, walk
from gradguard.engine.queries import node_text
from gradguard.engine.rule import Invalid, Message, Rule, Valid

# torch.nn layers that own parameters (by default).
LAYERS_WITH_PARAMETERS = frozenset(
    {
        "Linear",
        "Bilinear",
        "LazyLinear",
        "Conv1d",
        "Conv2d",
        "Conv3d",
        "ConvTranspose1d",
        "ConvTranspose2d",
        "ConvTranspose3d",
        "LazyConv1d",
        "LazyConv2d",
        "LazyConv3d",
        "LazyConvTranspose1d",
        "LazyConvTranspose2d",
        "LazyConvTranspose3d",
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "SyncBatchNorm",
        "LazyBatchNorm1d",
        "LazyBatchNorm2d",
        "LazyBatchNorm3d",
        "LayerNorm",
        "GroupNorm",
        "RMSNorm",
        "Embedding",
        "EmbeddingBag",
        "RNN",
        "LSTM",
        "GRU",
        "RNNCell",
        "LSTMCell",
        "GRUCell",
        "MultiheadAttention",
        "Transformer",
        "TransformerEncoderLayer",
        "TransformerDecoderLayer",
        "PReLU",
    }
)
_AFFINE_KEYWORDS = ("affine", "elementwise_affine")
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
    (`if self.proj is None: self.proj = nn.Linear(...)`).
    """

    VALID = [
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
                        flag = not any(is_false(keyword(node, k)) for k in _AFFINE_KEYWORDS)
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
                    yield self.finding(unit, node, message)


def _stored_on_self(unit: Unit, call: ast.Call, me: str) -> ast.stmt | None:
    """The statement storing the call on the module (`self.x = ...`, `setattr(self, ...)`,
    `self.register_parameter(...)`, `self.add_module(...)`), or None."""
    parent = unit.parent(call)
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
