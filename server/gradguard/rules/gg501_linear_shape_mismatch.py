"""GG501: a reshape whose constant last dimension does not match the `nn.Linear` it feeds."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.finding import Finding, Severity
from gradguard.engine.index import Unit, keyword, self_attribute, self_name
from gradguard.engine.queries import unit_text
from gradguard.engine.rule import Invalid, Rule, Valid
from gradguard.engine.shapes import bindings, calls_by_attr, inference, nn_bound_names

_LINEAR = {"torch.nn.Linear", "torch.nn.modules.linear.Linear"}
_RESHAPES = {"view", "reshape", "flatten"}


class LinearShapeMismatch(Rule):
    code = "GG501"
    triggers = ("Linear",)  # its own pre-check
    name = "linear-shape-mismatch"
    summary = "A tensor whose statically known last dimension differs from the `in_features` of the `nn.Linear` it feeds."
    why = (
        "`nn.Linear` multiplies the last dimension of its input by its weight, so an input whose last "
        'dimension is not `in_features` raises "mat1 and mat2 shapes cannot be multiplied".'
    )
    severity = Severity.ERROR
    message = (
        "`{producer}` gives a last dimension of {got}, but `{layer}` is `nn.Linear({expected}, ...)`: the call "
        'raises "mat1 and mat2 shapes cannot be multiplied (...x{got} and {expected}x{out})"'
    )
    explanation = """
    `nn.Linear(in_features, out_features)` multiplies the **last** dimension of its input
    by a `(out_features, in_features)` weight. When a `view`/`reshape`/`flatten` right
    before it produces a different last dimension, the call raises:

    > RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x10 and 20x5)

    (the first pair is the input flattened to 2-D, the second the transposed weight).
    A common cause is `x.view(-1, 10)` written for one input size while the layer was
    built for another: the `-1` silently changes the batch dimension instead.

    Make the reshape keep the batch dimension and produce `in_features` values,
    `x.reshape(x.size(0), -1)` or `x.flatten(1)`, and build the layer for that size.
    Only constant sizes are checked (literals and simple arithmetic on them);
    anything computed at run time is left alone.
    """

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(1, 16, 5)
                    self.fc = nn.Linear(16 * 24 * 24, 10)

                def forward(self, x):
                    x = self.conv(x)
                    x = x.view(x.size(0), -1)
                    return self.fc(x)
            """,
            note="batch kept, rest computed at run time",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self, hidden):
                    super().__init__()
                    self.fc = nn.Linear(hidden, 10)

                def forward(self, x):
                    return self.fc(x.view(-1, 320))
            """,
            note="in_features not a constant",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            fc = nn.Linear(20, 5)
            x = torch.randn(4, 4, 5)
            y = fc(x.flatten(1))
            """,
            note="flatten gives 20",
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
                    self.fc1 = nn.Linear(320, 50)
                    self.fc2 = nn.Linear(50, 10)

                def forward(self, x):
                    x = x.view(-1, 300)
                    x = torch.relu(self.fc1(x))
                    return self.fc2(x)
            """,
            lines=[11],
            raises="mat1 and mat2 shapes cannot be multiplied (4x300 and 320x50)",
            run="Net()(torch.randn(4, 20, 15))",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            layer = nn.Linear(20, 5)
            x = torch.randn(1, 20)
            out = layer(x.reshape(-1, 10))
            """,
            lines=[6],
            raises="mat1 and mat2 shapes cannot be multiplied (2x10 and 20x5)",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            head = nn.Linear(64, 10)
            features = torch.randn(8, 16, 2, 2)
            flat = torch.flatten(features, 2)
            logits = head(flat)
            """,
            lines=[6],
            raises="mat1 and mat2 shapes cannot be multiplied (128x4 and 64x10)",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        if "Linear" not in unit_text(unit):
            return
        module = unit.module
        # the candidate callees: `self.<attr>` holding an nn.Linear, and local names bound to one
        class_layers: dict[int, dict[str, ast.Call]] = {}
        for cls in unit.module_classes():
            class_layers[id(cls)] = {
                name: info.value
                for name, info in unit.class_attributes(cls).items()
                if info.kind == "layer" and info.ctor in _LINEAR and isinstance(info.value, ast.Call)
            }
        attrs = {name for layers in class_layers.values() for name in layers}
        local = nn_bound_names(unit)
        if not attrs and not local:
            return
        candidates = calls_by_attr(unit, *attrs) if attrs else []
        if local:
            candidates += [c for c in unit.calls() if isinstance(c.func, ast.Name) and c.func.id in local]
        infer = inference(unit)
        for call in candidates:
            if not call.args:
                continue
            func = call.func
            ctor = None
            scope = unit.enclosing_function(call)
            if isinstance(func, ast.Attribute):
                if scope is None:
                    continue
                attr = self_attribute(func, self_name(scope) or "self")
                cls = unit.enclosing_class(scope) if attr else None
                if cls is not None and id(cls) in class_layers:
                    ctor = class_layers[id(cls)].get(attr)  # type: ignore[arg-type]
            elif isinstance(func, ast.Name):
                value = bindings(unit, scope).value_of(func.id, func)
                if isinstance(value, ast.Call) and module.call_name(value) in _LINEAR:
                    ctor = value
            if ctor is None:
                continue
            in_node = ctor.args[0] if ctor.args else keyword(ctor, "in_features")
            out_node = ctor.args[1] if len(ctor.args) > 1 else keyword(ctor, "out_features")
            expected = infer.int_value(in_node) if in_node is not None else None
            if expected is None:
                continue
            out = infer.int_value(out_node) if out_node is not None else None
            got, producer = self._last_dim(unit, infer, call.args[0])
            if got is None or got == expected:
                continue
            label = unit.segment(producer)
            if len(label) > 40 or "\n" in label:
                label = "this reshape"
            message = self.message.format(
                producer=label,
                got=got,
                layer=unit.segment(func),
                expected=expected,
                out=out if out is not None else "N",
            )
            yield self.finding(unit, producer if producer is not None else call, message)

    def _last_dim(self, unit: Unit, infer, expr: ast.AST) -> tuple[int | None, ast.AST | None]:
        producer = expr
        for _ in range(5):
            if isinstance(producer, ast.Name):
                scope = unit.enclosing_function(producer)
                value = bindings(unit, scope).value_of(producer.id, producer)
                if value is None:
                    break
                producer = value
            else:
                break
        if not _is_reshape(unit, producer):
            return None, None
        shape = infer.shape(producer)
        if shape:
            return shape[-1], producer
        call = producer
        if isinstance(call.func, ast.Attribute) and call.func.attr in ("view", "reshape") and call.args:  # type: ignore[attr-defined]
            args = call.args  # type: ignore[attr-defined]
            if len(args) == 1 and isinstance(args[0], (ast.Tuple, ast.List)):
                args = args[0].elts
            last = infer.int_value(args[-1])
            if last is not None and last > 0 and len(args) >= 2:
                return last, producer
        return None, None


def _is_reshape(unit: Unit, node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in _RESHAPES and unit.module.call_name(node) is None:
        return True
    return unit.module.call_name(node) in ("torch.flatten", "torch.reshape")
