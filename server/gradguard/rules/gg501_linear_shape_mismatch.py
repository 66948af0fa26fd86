"""GG501: a tensor whose shape does not fit the layer it feeds (Linear in_features, Conv in_channels, ...)."""

from __future__ import annotations

import ast
import math
from collections.abc import Iterator

from gradguard.engine import shape_report, torch_facts
from gradguard.engine.finding import Applicability, Finding, Severity, TextEdit
from gradguard.engine.index import ModuleContext, Unit, callee_name
from gradguard.engine.queries import unit_contains
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.symshape import Shape
from gradguard.rules import _shape_fixes as fixes


class LinearShapeMismatch(Rule):
    code = "GG501"
    name = "linear-shape-mismatch"
    summary = (
        "A tensor whose shape does not fit the layer it feeds: `nn.Linear`'s `in_features`, a convolution's "
        "`in_channels`, a norm's features, an RNN's input or hidden state."
    )
    why = (
        "A layer checks its input against the sizes it was built with: an input of another size makes the "
        'call raise ("mat1 and mat2 shapes cannot be multiplied", "expected input ... to have 3 channels").'
    )
    severity = Severity.ERROR
    fix_applicability = Applicability.SAFE
    message = Message("`{callee}` expects {expected} {what} but gets an input of shape {shape}")
    explanation = """
    A layer's weights are sized by its constructor: `nn.Linear(in_features, out)`
    multiplies the **last** dimension of its input by an `(out, in_features)` weight,
    `nn.Conv2d(in_channels, ...)` wants `in_channels` in dimension 1, a norm layer its
    `num_features`, an RNN its `input_size` and a hidden state of
    `(num_layers * directions, batch, hidden_size)`. An input of another size raises
    on the first forward pass:

    > RuntimeError: mat1 and mat2 shapes cannot be multiplied (8x1176 and 864x10)

    gradguard follows shapes through the model: from `torch.randn(8, 1, 32, 32)`-style
    inputs in the file (a `__main__` block, a test), from a
    `# gradguard: probe Net(...) input=(8, 1, 32, 32)` comment, from jaxtyping
    annotations (`Float[Tensor, "b 1 32 32"]`), through convolutions, pooling,
    `flatten`/`view` and the layers of `nn.Sequential`, with dimensions it cannot know
    kept as symbols. It reports only a size that certainly differs.

    The classic case is a classifier written for one image size and fed another (a
    LeNet for 32x32 on 28x28 MNIST): the flattened feature count changes. The fix sets
    `in_features` to the count the convolutions really produce. It is offered only
    when the input comes from a `flatten`/`view` of the features and the constructor
    argument is a literal; it is **unsafe**: the right size depends on every input
    the model will see (the count gradguard computed holds for the input it followed),
    and checkpoints saved for the old size no longer load. When the input itself is
    wrong fix the input instead: an input of shape `(N, C, H, W)` (or any rank above
    2) whose `C*H*W` is exactly `in_features` is flattened, `model(images.flatten(1))`,
    when the layer is the one called or the first of the `nn.Sequential` called.
    Other wrong inputs (grayscale into an RGB model, an RNN's hidden state) have no
    fix: the repair is not in the shapes.

    **Fix safety.** Setting `in_features` is unsafe: it changes the layer's weight
    shape, so checkpoints saved before the fix no longer load; and the input may be the
    thing that is wrong (not flattened, wrong image size). Flattening the input is safe
    when the shapes come from the code around the call (the call raised every time it
    ran) and unsafe when they hold for the input of one call elsewhere (another caller
    may pass flat features, which the layer takes).
    """

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(1, 6, 5)
                    self.fc = nn.Linear(6 * 12 * 12, 10)

                def forward(self, x):
                    x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
                    x = torch.flatten(x, 1)
                    return self.fc(x)

            net = Net()
            out = net(torch.randn(8, 1, 28, 28))
            """,
            note="28x28 inputs give 6 * 12 * 12 features",
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
        Valid(
            """
            import torch
            import torch.nn as nn

            class Head(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(64, 10)

                def forward(self, x):
                    if x.dim() == 4:
                        x = x.mean((2, 3))
                    return self.fc(x)

            logits = Head()(torch.randn(2, 64, 7, 7))
            """,
            note="the branch that pools runs for 4-D inputs",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(1, 8, 3)
                    self.fc = nn.Linear(100, 10)

                def forward(self, x):
                    return self.fc(torch.flatten(self.conv(x), 1))

            model = Net()
            model.fc = nn.Linear(8 * 26 * 26, 10)
            out = model(torch.randn(2, 1, 28, 28))
            """,
            note="the layer is replaced from outside the class before the call (fine-tuning)",
        ),
        Valid(
            """
            import torch

            # crypten test/test_nn.py: layers built in a loop, each taking the previous one's output size
            for num_layers in range(1, 6):
                input_size = (3, 10)
                layer_idx = range(input_size[1], input_size[1] - num_layers, -1)
                layers = [torch.nn.Linear(num_feat, num_feat - 1) for num_feat in layer_idx]
                sequential = torch.nn.Sequential(*layers)
                out = sequential(torch.rand(input_size))
            """,
            note="the size of each layer depends on the loop variable: Linear(10, 9), Linear(9, 8), ...",
        ),
        Valid(
            """
            import torch

            layers = []
            for num_feat in range(10, 5, -1):
                layers.append(torch.nn.Linear(num_feat, num_feat - 1))
            out = torch.nn.Sequential(*layers)(torch.rand(3, 10))
            blocks = [torch.nn.Linear(n, n - 1) for n in range(10, 5, -1)]
            y = blocks[1](blocks[0](torch.rand(3, 10)))
            """,
            note="layers appended in a `for` loop, and two elements of a list built from a loop variable",
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
            lines=[12],
            raises="mat1 and mat2 shapes cannot be multiplied (4x300 and 320x50)",
            run="Net()(torch.randn(4, 20, 15))",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(1, 6, 5)
                    self.fc = nn.Linear(6 * 12 * 12, 10)

                def forward(self, x):
                    x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
                    x = torch.flatten(x, 1)
                    return self.fc(x)

            net = Net()
            out = net(torch.randn(8, 1, 32, 32))
            """,
            lines=[13],
            fixed="""
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(1, 6, 5)
                    self.fc = nn.Linear(1176, 10)

                def forward(self, x):
                    x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
                    x = torch.flatten(x, 1)
                    return self.fc(x)

            net = Net()
            out = net(torch.randn(8, 1, 32, 32))
            """,
            raises="mat1 and mat2 shapes cannot be multiplied (8x1176 and 864x10)",
            check_fixed="assert out.shape == (8, 10)",
            note="a classifier written for 28x28 images fed 32x32 ones",
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

            model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
            images = torch.randn(64, 1, 28, 28)
            logits = model(images)
            """,
            lines=[6],
            fixed="""
            import torch
            import torch.nn as nn

            model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
            images = torch.randn(64, 1, 28, 28)
            logits = model(images.flatten(1))
            """,
            raises="mat1 and mat2 shapes cannot be multiplied (1792x28 and 784x256)",
            check_fixed="assert logits.shape == (64, 10)",
            note="images not flattened for an MLP: 1*28*28 == 784",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            stem = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2), nn.ReLU())
            gray = torch.randn(4, 1, 40, 40)
            features = stem(gray)
            """,
            lines=[6],
            raises="expected input[4, 1, 40, 40] to have 3 channels, but got 1 channels instead",
            note="grayscale images into an RGB stem",
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        return shape_report.shape_flow.may_have_problems(text, statement, module)

    def check(self, unit: Unit) -> Iterator[Finding]:
        for problem in shape_report.of_code(unit, self.code):
            error = problem.error
            if error is None:
                continue
            module, value, member = problem.data if isinstance(problem.data, tuple) else (None, None, False)
            spec = getattr(getattr(module, "layer", None), "spec", None)
            argument = error.argument
            got = problem.inputs[0] if problem.inputs else None
            current = spec.params.get(argument) if spec is not None and argument else None
            callee = shape_report.callee(unit, problem.node)
            if member and spec is not None:
                callee += f"`'s `{_short(str(spec))}"  # a layer inside the nn.Sequential called
            detail = shape_report.torch_says(problem) + shape_report.origin(unit, problem) + "."
            if argument in torch_facts.COUNTING_PARAMETERS and current is not None:
                message = self.message.format(
                    callee=callee,
                    expected=shape_report.shape_flow.show(current),
                    what=torch_facts.COUNTING_PARAMETERS[argument],
                    shape=shape_report.shape(got),
                )
            else:
                name = spec.name if spec is not None else "layer"
                message = f"`{callee}` ({name}): {problem.message}"
                if len(message) > 100:
                    message = f"`{callee}` ({name}) cannot take an input of shape {shape_report.shape(got)}"
            fix = self._fix(unit, problem, module, value, got)
            if fix is not None:
                detail += f" The layer needs `{argument}={error.expected}` for this input."
            else:
                fix = self._flatten(unit, problem, spec, member, got)
            yield self.finding(unit, problem.node, message, fix=fix, detail=detail)

    def _flatten(self, unit: Unit, problem, spec, member: bool, got):
        """`linear(images)` with images `(N, C, H, W)` and `in_features == C*H*W` -> `images.flatten(1)`:
        only for the layer called directly, or the first layer of the `nn.Sequential` called (a later
        layer's input is not the call's argument)."""
        if problem.error.argument != "in_features" or spec is None or problem.flow is None:
            return None
        expected = fixes.number(spec.params.get("in_features"))
        dims = fixes.exact(got)
        if expected is None or dims is None or len(dims) < 3:
            return None
        sizes = [fixes.number(d) for d in dims[1:]]
        if any(size is None for size in sizes) or math.prod(s for s in sizes if s is not None) != expected:
            return None
        call = problem.node
        x_node = fixes.argument(call, 0, "input")
        if x_node is None or len(call.args) + len(call.keywords) != 1 or not isinstance(call, ast.Call):
            return None
        if member:
            items = problem.flow.value_of(call.func).items
            if not items or items[0].layer is None or items[0].layer.spec is not spec:
                return None
        argument = fixes.exact(problem.flow.value_of(x_node).shape)
        if argument is None or not fixes.same_dims(argument, dims):
            return None
        return self.make_fix(
            "Flatten the input before the Linear: `.flatten(1)`",
            [fixes.append(unit, x_node, ".flatten(1)")],
            fixes.applicability(problem),
        )

    def _fix(self, unit: Unit, problem, module, value, got):
        """`nn.Linear(6 * 12 * 12, 10)` -> `nn.Linear(1176, 10)` when a flatten/view of the
        features feeds it and the argument is a literal of this unit."""
        error = problem.error
        if error.argument != "in_features" or error.expected is None or error.expected.value is None:
            return None
        ctor = getattr(module, "node", None)
        if not isinstance(ctor, ast.Call) or not unit_contains(unit, ctor):
            return None
        argument = (
            ctor.args[0]
            if ctor.args
            else next((k.value for k in ctor.keywords if k.arg == "in_features"), None)
        )
        if argument is None or not _literal_int(argument):
            return None
        if not (isinstance(got, Shape) and got.exact and len(got.dims) == 2) or value is None:
            return None
        if not value.sites or not all(_flattens(site) for site in value.sites):
            return None
        number = str(error.expected.value)
        line, col, end_line, end_col = unit.node_range(argument)
        return self.make_fix(
            f"Set `in_features` to {number}",
            [TextEdit(line, col, end_line, end_col, number)],
            Applicability.UNSAFE,
        )


def _short(what: str) -> str:
    return what if len(what) <= 30 else what.split("(", 1)[0]


def _literal_int(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int) and not isinstance(node.value, bool)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Add, ast.Sub, ast.FloorDiv)):
        return _literal_int(node.left) and _literal_int(node.right)
    return False


def _flattens(site: ast.AST) -> bool:
    """`flatten(...)`, or a `view`/`reshape` whose last size is -1: the layer's input is the
    features the model computed, flattened (not a size written by hand)."""
    if not isinstance(site, ast.Call):
        return False
    func = site.func
    name = callee_name(func) or ""
    if name not in torch_facts.FLATTENING_METHODS:
        return False
    if name == "flatten":
        return True
    sizes = (
        site.args[1:]
        if isinstance(func, ast.Name) or (isinstance(func, ast.Attribute) and _is_torch(func))
        else site.args
    )
    if len(sizes) == 1 and isinstance(sizes[0], (ast.Tuple, ast.List)):
        sizes = sizes[0].elts
    last = sizes[-1] if sizes else None
    return (
        isinstance(last, ast.UnaryOp)
        and isinstance(last.op, ast.USub)
        and isinstance(last.operand, ast.Constant)
        and last.operand.value == 1
    )


def _is_torch(func: ast.Attribute) -> bool:
    return isinstance(func.value, ast.Name) and func.value.id == "torch"
