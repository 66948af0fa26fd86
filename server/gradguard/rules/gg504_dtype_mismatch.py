"""GG504: float64 tensors fed to float32 layers or multiplied with float32 tensors."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine.finding import Applicability, Finding, Severity
from gradguard.engine.fixes import replace_node
from gradguard.engine.index import ModuleContext, Unit, dotted_name, self_attribute, self_name
from gradguard.engine.queries import unit_text
from gradguard.engine.rule import Invalid, Rule, Valid
from gradguard.engine.shapes import F32, F64, bindings, calls_by_attr, inference, nn_bound_names

# layer -> the error PyTorch raises for a float64 input (checked with torch 2.13)
_LAYER_ERRORS = {
    "Linear": '"mat1 and mat2 must have the same dtype, but got Double and Float"',
    "Conv1d": '"Input type (double) and bias type (float) should be the same"',
    "Conv2d": '"Input type (double) and bias type (float) should be the same"',
    "Conv3d": '"Input type (double) and bias type (float) should be the same"',
    "LSTM": '"RNN input dtype (torch.float64) does not match weight dtype (torch.float32)..."',
    "GRU": '"RNN input dtype (torch.float64) does not match weight dtype (torch.float32)..."',
    "RNN": '"RNN input dtype (torch.float64) does not match weight dtype (torch.float32)..."',
}
_CONVERTERS = {"double", "to", "type", "half", "bfloat16", "float"}


class DtypeMismatch(Rule):
    code = "GG504"
    name = "dtype-mismatch"
    summary = "A float64 tensor fed to a float32 layer, or multiplied with a float32 tensor."
    why = (
        "Layers and matrix products do not promote dtypes: a float64 input meeting float32 weights raises "
        '"mat1 and mat2 must have the same dtype".'
    )
    message = "`{arg}` is float64 but `{callee}` has float32 weights: PyTorch raises {error}; convert it with `.float()`"
    matmul_message = (
        "`{op}` multiplies a float64 and a float32 tensor: PyTorch raises "
        '"expected m1 and m2 to have the same dtype, but got: {a} != {b}"; convert `{arg}` with `.float()`'
    )
    explanation = """
    Layers are created with float32 parameters, and matrix products do not promote
    dtypes: a float64 ("double") input makes them raise, e.g.

    > RuntimeError: mat1 and mat2 must have the same dtype, but got Double and Float

    (`nn.Conv2d` reports *"Input type (double) and bias type (float) should be the
    same"*, `torch.mm`/`@` *"expected m1 and m2 to have the same dtype, but got: double
    != float"*).

    The usual source is NumPy: `np.random.randn`, `np.zeros`, `np.array([1.0, ...])`
    are float64, and `torch.from_numpy` / `torch.tensor` keep that dtype. Explicit
    `dtype=torch.float64` and `.double()` do the same. Convert the data once with
    `.float()` (or build the array as `np.float32`), or convert the model with
    `model.double()` if you really need double precision. Files that call
    `torch.set_default_dtype` are not checked.
    """
    severity = Severity.ERROR
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import numpy as np
            import torch

            model = torch.nn.Linear(3, 1)
            x = torch.from_numpy(np.random.randn(8, 3)).float()
            y = model(x)
            """,
            note="converted with .float()",
        ),
        Valid(
            """
            import numpy as np
            import torch

            model = torch.nn.Linear(3, 1).double()
            x = torch.from_numpy(np.random.randn(8, 3))
            y = model(x)
            """,
            note="double model",
        ),
        Valid(
            """
            import numpy as np
            import torch

            layer = torch.nn.Linear(3, 1)
            x = torch.from_numpy(np.random.randn(8, 3).astype(np.float32))
            y = layer(x)
            z = torch.randn(2, 2, dtype=torch.float64) + torch.randn(2, 2)
            """,
            note="float32 numpy data; elementwise ops promote",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import numpy as np
            import torch

            features = np.random.randn(16, 3)
            model = torch.nn.Linear(3, 1)
            x = torch.from_numpy(features)
            prediction = model(x)
            """,
            lines=[7],
            fixed="""
            import numpy as np
            import torch

            features = np.random.randn(16, 3)
            model = torch.nn.Linear(3, 1)
            x = torch.from_numpy(features)
            prediction = model(x.float())
            """,
            raises="mat1 and mat2 must have the same dtype, but got Double and Float",
            check_fixed="assert prediction.shape == (16, 1)",
        ),
        Invalid(
            """
            import torch

            x = torch.randn(4, 3, dtype=torch.float64)
            w = torch.randn(3, 2, requires_grad=True)
            y = x @ w
            """,
            lines=[5],
            fixed="""
            import torch

            x = torch.randn(4, 3, dtype=torch.float64)
            w = torch.randn(3, 2, requires_grad=True)
            y = x.float() @ w
            """,
            raises="expected m1 and m2 to have the same dtype, but got: double != float",
            check_fixed="y.sum().backward(); assert w.grad is not None",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(1, 4, 3)

                def forward(self, x):
                    x = x.double()
                    return self.conv(x)
            """,
            lines=[11],
            fixed="""
            import torch
            import torch.nn as nn

            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(1, 4, 3)

                def forward(self, x):
                    x = x.double()
                    return self.conv(x.float())
            """,
            raises="Input type (double) and bias type (float) should be the same",
            run="Encoder()(torch.randn(1, 1, 8, 8))",
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        # the same pre-check as the start of `check`
        if module.changes_default_dtype:
            return False
        if "float64" in text or "double" in text:
            return True
        needles = module.__dict__.get("_gg504_numpy_needles")
        if needles is None:
            needles = module.__dict__["_gg504_numpy_needles"] = tuple(
                f"{alias}."
                for alias, name in module.aliases.items()
                if name == "numpy" or name.startswith("numpy.")
            )
        return any(needle in text for needle in needles)

    def check(self, unit: Unit) -> Iterator[Finding]:
        module = unit.module
        if module.changes_default_dtype:
            return
        text = unit_text(unit)
        numpy = [
            f"{alias}."
            for alias, name in module.aliases.items()
            if name == "numpy" or name.startswith("numpy.")
        ]
        if not any(needle in text for needle in ("float64", "double", *numpy)):
            return  # no float64 source in sight
        infer = inference(unit)
        converted = _converted_receivers(unit)
        class_layers: dict[int, dict[str, str]] = {}
        # float64 @ float32 through torch.matmul / torch.mm / x.mm(...)
        for call in calls_by_attr(unit, "matmul", "mm", "bmm"):
            name = module.call_name(call)
            func = call.func
            if name in ("torch.matmul", "torch.mm", "torch.bmm") and len(call.args) == 2:
                yield from self._matmul(unit, infer, call, call.args[0], call.args[1], unit.segment(func))
            elif name is None and len(call.args) == 1:
                yield from self._matmul(unit, infer, call, func.value, call.args[0], f".{func.attr}()")  # type: ignore[attr-defined]
        # float64 into a layer: `self.<layer>(x)` or a local name bound to `nn.Linear(...)`
        attrs = set()
        for cls in unit.module_classes():
            layer_map = class_layers[id(cls)] = {
                name: kind
                for name, info in unit.class_attributes(cls).items()
                if info.kind == "layer" and (kind := _layer_of(module, info.value)) is not None
            }
            attrs.update(layer_map)
        local = nn_bound_names(unit)
        candidates = calls_by_attr(unit, *attrs) if attrs else []
        if local:
            candidates += [c for c in unit.calls() if isinstance(c.func, ast.Name) and c.func.id in local]
        for call in candidates:
            if not call.args:
                continue
            func = call.func
            layer = self._layer_kind(unit, call, class_layers, converted)
            if layer is None:
                continue
            arg = call.args[0]
            if infer.dtype(arg) != F64:
                continue
            fix = self.make_fix(
                "Convert the input with `.float()`", [replace_node(unit, arg, _float(unit, arg))]
            )
            message = self.message.format(
                arg=_label(unit, arg), callee=unit.segment(func), error=_LAYER_ERRORS[layer]
            )
            yield self.finding(unit, call, message, fix=fix)
        for node in unit.nodes_of(ast.BinOp):
            assert isinstance(node, ast.BinOp)
            if isinstance(node.op, ast.MatMult):
                yield from self._matmul(unit, infer, node, node.left, node.right, "@")

    def _matmul(self, unit, infer, node, left, right, op) -> Iterator[Finding]:
        a, b = infer.dtype(left), infer.dtype(right)
        if {a, b} != {F32, F64}:
            return
        wrong = left if a == F64 else right
        names = {F32: "float", F64: "double"}
        fix = self.make_fix("Convert with `.float()`", [replace_node(unit, wrong, _float(unit, wrong))])
        message = self.matmul_message.format(op=op, a=names[a], b=names[b], arg=_label(unit, wrong))
        yield self.finding(unit, node, message, fix=fix)

    def _layer_kind(self, unit: Unit, call: ast.Call, cache: dict, converted: set[str]) -> str | None:
        func = call.func
        module = unit.module
        if isinstance(func, ast.Attribute):
            if not isinstance(func.value, ast.Name):
                return None
        elif not (isinstance(func, ast.Name) and func.id in nn_bound_names(unit)):
            return None
        scope = unit.enclosing_function(call)
        if isinstance(func, ast.Attribute) and scope is not None:
            me = self_name(scope) or "self"
            attr = self_attribute(func, me)
            cls = unit.enclosing_class(scope) if attr else None
            if (
                cls is None
                or not module.is_module_class(cls.name)
                or me in converted
                or f"{me}.{attr}" in converted
            ):
                return None
            layer_map = cache.get(id(cls))
            if layer_map is None:
                layer_map = cache[id(cls)] = {
                    name: _layer_of(module, info.value)
                    for name, info in unit.class_attributes(cls).items()
                    if info.kind == "layer"
                }
            return layer_map.get(attr)  # type: ignore[arg-type]
        if isinstance(func, ast.Name) and func.id not in converted and func.id in nn_bound_names(unit):
            value = bindings(unit, scope).value_of(func.id, func)
            return _layer_of(module, value)
        return None


def _layer_of(module, value) -> str | None:
    if not isinstance(value, ast.Call):
        return None
    name = module.call_name(value) or ""
    if name.startswith("torch.nn."):
        last = name.rsplit(".", 1)[-1]
        if last in _LAYER_ERRORS:
            return last
        if last == "Sequential" and value.args:
            return _layer_of(module, value.args[0])
    return None


def _converted_receivers(unit: Unit) -> set[str]:
    """Dotted names on which `.double()`, `.to(...)`, `.type(...)`... is called anywhere:
    such modules may not be float32."""
    names = set()
    for call in calls_by_attr(unit, *_CONVERTERS):
        dotted = dotted_name(call.func.value)  # type: ignore[attr-defined]
        if dotted:
            names.add(dotted)
            names.add(dotted.split(".")[0])
    return names


def _label(unit: Unit, node: ast.AST) -> str:
    text = unit.segment(node)
    return text if len(text) <= 40 and "\n" not in text else "this tensor"


def _float(unit: Unit, node: ast.AST) -> str:
    text = unit.segment(node)
    if isinstance(node, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
        return f"{text}.float()"
    return f"({text}).float()"
