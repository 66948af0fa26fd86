"""GG504: float64 tensors fed to float32 layers or multiplied with float32 tensors."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine import shape_report, torch_facts
from gradguard.engine.finding import Applicability, Finding, Fix, Severity
from gradguard.engine.fixes import replace_node, torch_name
from gradguard.engine.index import ModuleContext, Unit, dotted_name
from gradguard.engine.rule import Invalid, Message, Rule, Valid


class DtypeMismatch(Rule):
    code = "GG504"
    name = "dtype-mismatch"
    summary = "A float64 tensor fed to a float32 layer, or multiplied with a float32 tensor."
    why = (
        "Layers and matrix products do not promote dtypes: a float64 input meeting float32 weights raises "
        '"mat1 and mat2 must have the same dtype".'
    )
    message = Message("`{arg}` is float64 but `{callee}` has float32 weights; convert it with `.float()`")
    matmul_message = Message(
        "`{op}` multiplies a float64 and a float32 tensor; convert `{arg}` with `.float()`"
    )
    explanation = """
    Layers are created with float32 parameters, and matrix products do not promote
    dtypes: a float64 ("double") input makes them raise, e.g.

    > RuntimeError: mat1 and mat2 must have the same dtype, but got Double and Float

    (`nn.Conv2d` reports *"Input type (double) and bias type (float) should be the
    same"*, `torch.mm`/`@` *"expected m1 and m2 to have the same dtype, but got: double
    != float"*).

    The usual source is NumPy: `np.random.randn`, `np.zeros`, `np.array([1.0, ...])`
    are float64, and `torch.from_numpy` / `torch.tensor(np_array)` keep that dtype.
    Explicit `dtype=torch.float64` and `.double()` do the same. gradguard follows the
    dtype through the value analysis, also into a model's `forward` called with such a
    tensor, and through a `TensorDataset` (its items `ds[i]`) and a `DataLoader` over one (its
    batches keep the tensors' dtypes). Convert the data once with `.float()` (or build the array as `np.float32`),
    or convert the model with `model.double()` if you really need double precision
    (models converted anywhere in the file with `.double()`/`.to(...)`/`.type(...)` are
    not checked). Files that call `torch.set_default_dtype` are not checked.

    The fix converts where the float64 tensor is made when that is a `name = torch.from_numpy(a)`
    / `torch.tensor(a)` in the same scope (`torch.from_numpy(a).float()`,
    `torch.tensor(a, dtype=torch.float32)`), and appends `.float()` to the operand otherwise (to a batch
    of a `DataLoader` where the model is called: each batch is converted).

    **Fix safety.** Unsafe: the values are rounded to float32 (what the layer computes in anyway).
    Converting where the tensor is made also changes every other use of it: values computed from it
    (targets derived from the features, say) become float32 too, and code that needed float64
    precision there loses it. Converting at the use copies the tensor on every call.
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
        Valid(
            """
            import numpy as np
            import torch
            from torch.utils.data import DataLoader, TensorDataset

            features = torch.from_numpy(np.random.randn(16, 3)).float()
            targets = torch.from_numpy(np.random.randn(16, 1))
            model = torch.nn.Linear(3, 1)
            for x, y in DataLoader(TensorDataset(features, targets), batch_size=4):
                loss = (model(x) - y.float()).pow(2).mean()
            """,
            note="float32 batches from a TensorDataset (the float64 targets are converted)",
            run="assert loss.dtype == torch.float32",
        ),
        Valid(
            """
            import numpy as np
            import torch

            def stop_positions(x, alphabet):
                x = torch.cat([x, torch.zeros(list(x.shape[:2]) + [1])], -1)
                return torch.matmul(x, torch.tensor(alphabet == "*", dtype=torch.double)) > 0
            """,
            run="""
            stops = stop_positions(torch.zeros(2, 3, 4, dtype=torch.float64), np.array(list("AC*G") + [""]))
            assert stops.shape == (2, 3)
            """,
            note="`torch.cat` promotes over every element: with `x` of unknown dtype (float64 here) the result is "
            "not known to be float32 (pyro-ppl contrib/mue/dataloaders.py, `write`)",
        ),
        Valid(
            """
            import numpy as np
            import torch
            import torch.nn as nn

            class DFT(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    (x, y) = np.meshgrid(np.arange(n), np.arange(n))
                    self.W = np.power(np.exp(-2 * np.pi * 1j / n), x * y)
                    self.W_real = torch.Tensor(np.real(self.W))
                    self.W_imag = torch.Tensor(np.imag(self.W))

                def dft(self, x_real, x_imag):
                    z_real = torch.matmul(x_real, self.W_real) - torch.matmul(x_imag, self.W_imag)
                    z_imag = torch.matmul(x_imag, self.W_real) + torch.matmul(x_real, self.W_imag)
                    return z_real, z_imag

            pt_data = torch.Tensor(np.random.uniform(-1, 1, 10))
            z_real, z_imag = DFT(10).dft(pt_data, torch.zeros_like(pt_data))
            """,
            run="""
            assert pt_data.dtype == z_real.dtype == torch.float32
            assert torch.Tensor(torch.zeros(2, dtype=torch.float64)).dtype == torch.float64
            """,
            note="dev7 torchlibrosa 0.1.0 (stft.py `DFT.dft` and its `debug`): the legacy constructor `torch.Tensor(a)` "
            "copies a float64 array into the default dtype, float32 (only a tensor argument keeps its dtype)",
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
            x = torch.from_numpy(features).float()
            prediction = model(x)
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
        Invalid(
            """
            import numpy as np
            import torch
            import torch.nn as nn

            class Regressor(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(3, 1)

                def forward(self, x):
                    return self.fc(x)

            data = np.random.rand(10, 3)
            model = Regressor()
            pred = model(torch.tensor(data))
            """,
            lines=[11],
            fixed="""
            import numpy as np
            import torch
            import torch.nn as nn

            class Regressor(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(3, 1)

                def forward(self, x):
                    return self.fc(x.float())

            data = np.random.rand(10, 3)
            model = Regressor()
            pred = model(torch.tensor(data))
            """,
            raises="mat1 and mat2 must have the same dtype, but got Double and Float",
            check_fixed="assert pred.shape == (10, 1)",
            note="numpy's float64 reaches the model through the script's call",
        ),
        Invalid(
            """
            import numpy as np
            import torch
            from torch.utils.data import DataLoader, TensorDataset

            features = torch.from_numpy(np.random.randn(16, 3))
            targets = torch.randn(16, 1)
            model = torch.nn.Linear(3, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in DataLoader(TensorDataset(features, targets), batch_size=4):
                optimizer.zero_grad()
                loss = (model(x) - y).pow(2).mean()
                loss.backward()
                optimizer.step()
            """,
            lines=[11],
            fixed="""
            import numpy as np
            import torch
            from torch.utils.data import DataLoader, TensorDataset

            features = torch.from_numpy(np.random.randn(16, 3))
            targets = torch.randn(16, 1)
            model = torch.nn.Linear(3, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in DataLoader(TensorDataset(features, targets), batch_size=4):
                optimizer.zero_grad()
                loss = (model(x.float()) - y).pow(2).mean()
                loss.backward()
                optimizer.step()
            """,
            raises="mat1 and mat2 must have the same dtype, but got Double and Float",
            check_fixed="assert loss.dtype == torch.float32 and model.weight.grad is not None",
            note="the float64 features reach the model as the batches of a TensorDataset's DataLoader",
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        # a unit may also be reached by float64 data from the file's script (see `check`)
        return not module.changes_default_dtype and shape_report.shape_flow.may_have_problems(
            text, statement, module
        )

    def check(self, unit: Unit) -> Iterator[Finding]:
        module = unit.module
        if module.changes_default_dtype:
            return
        converted = None
        for problem in shape_report.of_code(unit, self.code):
            node = problem.node
            if problem.kind == "matmul":
                a, b, wrong = problem.data
                if wrong is None:
                    continue
                names = {"float32": "float", "float64": "double"}
                fix, source = self._fix(unit, wrong)
                message = self.matmul_message.format(
                    op=_op(unit, node, problem.what), arg=_label(unit, wrong)
                )
                detail = (
                    'PyTorch raises "expected m1 and m2 to have the same dtype, but got: '
                    f'{names[a]} != {names[b]}"' + shape_report.origin(unit, problem) + "." + source
                )
                yield self.finding(unit, node, message, fix=fix, detail=detail)
                continue
            if problem.kind != "dtype" or not isinstance(node, ast.Call) or not node.args:
                continue
            layer = problem.what
            error = torch_facts.float64_input_error(layer)
            if error is None:
                continue
            if converted is None:
                converted = _converted_receivers(unit)
            dotted = dotted_name(node.func)
            for name in {dotted.split(".")[0]} if dotted else ():
                unit.semantics.rests_on_text_naming(name)  # (a conversion added elsewhere silences it)
            if dotted is not None and (dotted in converted or dotted.split(".")[0] in converted):
                continue
            if (
                isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in converted
            ):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Starred):
                continue
            fix, source = self._fix(unit, arg)
            message = self.message.format(arg=_label(unit, arg), callee=shape_report.callee(unit, node))
            detail = f"PyTorch raises {_quoted(error)}" + shape_report.origin(unit, problem) + "." + source
            yield self.finding(unit, node, message, fix=fix, detail=detail)

    def _fix(self, unit: Unit, operand: ast.AST) -> tuple[Fix, str]:
        """The fix, and what the message adds: convert where the float64 tensor is made when the
        operand is a name bound only by `name = torch.from_numpy(a)` / `torch.tensor(a)` in this
        scope (`.float()` / `dtype=torch.float32` there), else where it is used."""
        made = _made_from_numpy(unit, operand)
        if made is None:
            return self.make_fix(
                "Convert with `.float()`", [replace_node(unit, operand, _float(unit, operand))]
            ), ""
        call, replaced, new = made
        text = unit.segment(call)
        where = f"`{text}`" if len(text) <= 40 and "\n" not in text else f"the call on line {call.lineno}"
        fix = self.make_fix(
            "Convert to float32 where the tensor is made", [replace_node(unit, replaced, new)]
        )
        return fix, f" Convert it where it is made: {where}."


def _made_from_numpy(unit: Unit, operand: ast.AST) -> tuple[ast.Call, ast.AST, str] | None:
    """(the call that makes the float64 tensor, the node to replace, its new text) for a name whose only definition
    reaching the use is `name = torch.from_numpy(a)` / `torch.tensor(a)` / `torch.as_tensor(a)`
    (no `dtype=`) in the same scope: `torch.from_numpy(a).float()`, `torch.tensor(a, dtype=torch.float32)`."""
    if not isinstance(operand, ast.Name):
        return None
    flow = unit.semantics.flow(unit.enclosing_function(operand))
    definitions = flow.reaching(operand)
    if len(definitions) != 1:
        return None
    (definition,) = definitions
    if not (
        isinstance(definition, ast.Assign)
        and len(definition.targets) == 1
        and isinstance(definition.targets[0], ast.Name)
        and definition.targets[0].id == operand.id
        and isinstance(definition.value, ast.Call)
        and definition.value.args
        and not definition.value.keywords
    ):
        return None
    call = definition.value
    name = unit.module.call_name(call)
    text = unit.segment(call)
    if name == "torch.from_numpy":
        return call, call, f"{text}.float()"
    if name in ("torch.tensor", "torch.as_tensor") and len(call.args) == 1:
        torch = torch_name(unit)
        if torch is None:
            return None
        # after the argument, not before the closing bracket: a comment may sit between them
        (argument,) = call.args
        return call, argument, f"{unit.segment(argument)}, dtype={torch}.float32"
    return None


def _op(unit: Unit, node: ast.AST, what: str) -> str:
    if isinstance(node, ast.BinOp):
        return "@"
    if isinstance(node, ast.Call):
        return shape_report.callee(unit, node)
    return what


def _layer_of(module, value) -> str | None:
    if not isinstance(value, ast.Call):
        return None
    name = module.call_name(value) or ""
    if name.startswith("torch.nn."):
        last = name.rsplit(".", 1)[-1]
        if torch_facts.float64_input_error(last) is not None:
            return last
        if last == "Sequential" and value.args:
            return _layer_of(module, value.args[0])
    return None


def _quoted(error: str) -> str:
    """The error's first sentence, quoted (`...` when more follows)."""
    first, more, _ = error.partition(". ")
    return f'"{first}..."' if more else f'"{first}"'


def _converted_receivers(unit: Unit) -> set[str]:
    """Dotted names on which `.double()`, `.to(...)`, `.type(...)`... is called anywhere in the
    file: such modules may not be float32."""

    def collect() -> set[str]:
        names: set[str] = set()
        for node in ast.walk(unit.semantics.tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in torch_facts.DTYPE_CASTS
            ):
                dotted = dotted_name(node.func.value)
                if dotted:
                    names.add(dotted)
                    names.add(dotted.split(".")[0])
        return names

    cache = unit.semantics.__dict__
    found = cache.get("_gg504_converted")
    if found is None:
        found = cache["_gg504_converted"] = collect()
    return found


def _label(unit: Unit, node: ast.AST) -> str:
    text = unit.segment(node)
    return text if len(text) <= 40 and "\n" not in text else "this tensor"


def _float(unit: Unit, node: ast.AST) -> str:
    text = unit.segment(node)
    if isinstance(node, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
        return f"{text}.float()"
    return f"({text}).float()"
