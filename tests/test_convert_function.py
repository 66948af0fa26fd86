"""The "Convert to torch.autograd.Function" transformation (issue 7).

Each realistic module in `convert_cases/` is converted, and the converted code is run
with torch: it imports, the module's parameters get gradients through `Function.apply`,
those gradients equal what plain autograd computes for the module's forward, and
`torch.autograd.gradcheck` passes on the generated Function in float64 wherever the
hand-written backward math is right (and fails where it is wrong).
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import textwrap
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from gradguard.engine.finding import Applicability
from gradguard.engine.index import ModuleContext, Unit
from gradguard.engine.source import SourceFile, apply_edits
from gradguard.rules._gg101_convert_function import (
    FIX_TITLE,
    analyse_conversion,
    conversion_fix,
    convert_module_source,
)

CASES = Path(__file__).parent / "convert_cases"


@dataclass
class Case:
    file: str
    cls: str
    ctor: tuple
    shape: tuple
    input_grad: bool  # does the hand-written backward return an input gradient?
    math_ok: bool = True


REALISTIC = [
    Case("linear_bias.py", "ManualLinear", (4, 3), (8, 4), True),
    Case("scalar_weighting.py", "WeightedSum", (5,), (5,), False),
    Case("sigmoid_bias.py", "BiasedSigmoid", (6,), (4, 6), True),
    Case("flatten_gain.py", "FlattenGain", (12,), (2, 3, 4), True),
    Case("leaky_input_grad.py", "ManualLeakyReLU", (0.2,), (3, 5), True),
    Case("swish_two_stashes.py", "LearnableSwish", (), (4, 3), True),
    Case("glu_chunk.py", "ManualGLU", (), (3, 8), True),
    Case("wrong_transpose.py", "SquareLinear", (3,), (5, 3), True, math_ok=False),
]


def comments(code: str) -> list[str]:
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    return sorted(tok.string for tok in tokens if tok.type == tokenize.COMMENT)


def load(code: str, name: str = "<converted>") -> dict:
    namespace: dict = {"__name__": "converted"}
    exec(compile(code, name, "exec"), namespace)
    return namespace


class Recorder:
    """Stands in for the generated Function in the module's globals and records what
    the module's forward passes to `apply`."""

    def __init__(self, function):
        self.function = function
        self.calls: list[tuple] = []

    def apply(self, *args):
        self.calls.append(args)
        return self.function.apply(*args)


def converted(case: Case) -> str:
    source = (CASES / case.file).read_text()
    out = convert_module_source(source, case.cls)
    assert out is not None, f"{case.file} was not converted"
    return out


@pytest.mark.parametrize("case", REALISTIC, ids=lambda c: c.file)
def test_conversion_keeps_comments_and_removes_the_method(case):
    source = (CASES / case.file).read_text()
    out = converted(case)
    ast.parse(out)
    assert comments(out) == comments(source)
    tree = ast.parse(out)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    function = classes[f"{case.cls}Function"]
    assert ast.unparse(function.bases[0]) == "torch.autograd.Function"
    for method in function.body:
        assert [ast.unparse(d) for d in method.decorator_list] == ["staticmethod"]
        assert method.args.args[0].arg == "ctx"
    module_methods = {m.name for m in classes[case.cls].body if isinstance(m, ast.FunctionDef)}
    assert "backward" not in module_methods and "forward" in module_methods
    # the Function comes first, the module's forward calls it
    names = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    assert names.index(f"{case.cls}Function") < names.index(case.cls)
    assert f"{case.cls}Function.apply(" in out
    # nothing of the module is left on self
    forward_source = ast.unparse(function)
    assert "self" not in forward_source


@pytest.mark.parametrize("case", REALISTIC, ids=lambda c: c.file)
def test_converted_module_learns_through_apply(case):
    torch.manual_seed(0)
    original = load((CASES / case.file).read_text(), case.file)
    namespace = load(converted(case))
    recorder = Recorder(namespace[f"{case.cls}Function"])
    namespace[f"{case.cls}Function"] = recorder

    module = namespace[case.cls](*case.ctor)
    reference = original[case.cls](*case.ctor)
    reference.load_state_dict(module.state_dict())

    x = torch.randn(*case.shape, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out = module(x)
    assert len(recorder.calls) == 1, "the module's forward must go through Function.apply"
    assert out.grad_fn is not None and type(out.grad_fn).__name__ == f"{case.cls}FunctionBackward"
    (out * torch.linspace(0.5, 1.5, out.numel()).reshape(out.shape)).sum().backward()
    # the original forward is ordinary autograd code: its gradients are the truth
    ref_out = reference(x_ref)
    assert torch.allclose(out, ref_out)
    (ref_out * torch.linspace(0.5, 1.5, out.numel()).reshape(out.shape)).sum().backward()

    params = dict(module.named_parameters())
    ref_params = dict(reference.named_parameters())
    for name, param in params.items():
        assert param.grad is not None, f"{name} got no gradient through apply"
        assert param.grad.abs().sum() > 0
        assert param.grad.shape == param.shape
        if case.math_ok:
            assert torch.allclose(param.grad, ref_params[name].grad, atol=1e-5), name
        else:
            assert not torch.allclose(param.grad, ref_params[name].grad, atol=1e-5), name
    if case.input_grad:
        assert x.grad is not None and torch.allclose(x.grad, x_ref.grad, atol=1e-5)
    else:
        assert x.grad is None  # the hand-written backward computes no input gradient


@pytest.mark.parametrize("case", REALISTIC, ids=lambda c: c.file)
def test_gradcheck_on_generated_function(case):
    torch.manual_seed(1)
    namespace = load(converted(case))
    function = namespace[f"{case.cls}Function"]
    recorder = Recorder(function)
    namespace[f"{case.cls}Function"] = recorder
    module = namespace[case.cls](*case.ctor).double()
    x = torch.randn(*case.shape, dtype=torch.float64)
    module(x)
    (recorded,) = recorder.calls
    args = []
    for index, arg in enumerate(recorded):
        if isinstance(arg, torch.Tensor):
            wants_grad = case.input_grad if index == 0 else isinstance(arg, torch.nn.Parameter)
            arg = arg.detach().clone().requires_grad_(wants_grad)
            assert arg.dtype == torch.float64
        args.append(arg)
    assert any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
    ok = torch.autograd.gradcheck(function.apply, tuple(args), raise_exception=False)
    assert ok is case.math_ok


def test_wrong_shape_gradient_is_reproduced_and_fails_loudly():
    # the seed's layer with in != out and a swapped product: the conversion keeps the
    # math; autograd then rejects the gradient's shape instead of ignoring it
    source = textwrap.dedent(
        """
        import torch
        import torch.nn as nn

        class MyLinear(nn.Module):
            def __init__(self, n_in, n_out):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(n_in, n_out))

            def forward(self, x):
                self.x = x
                return torch.mm(x, self.weight)

            def backward(self, grad_output):
                self.weight.grad = torch.mm(grad_output.t(), self.x)
                return torch.mm(grad_output, self.weight.t())
        """
    )
    out = convert_module_source(source, "MyLinear")
    assert out is not None
    namespace = load(out)
    layer = namespace["MyLinear"](4, 3)
    with pytest.raises(RuntimeError, match="returned an invalid gradient at index 1"):
        layer(torch.randn(2, 4)).sum().backward()


def test_seed_example_three_exact_output():
    source = textwrap.dedent(
        """
        import torch
        import torch.nn as nn

        class CorrectCustomLayerVector(nn.Module):
            def __init__(self, input_dim, output_dim):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(input_dim, output_dim))
                self.bias = nn.Parameter(torch.zeros(output_dim))

            def forward(self, x):
                self.x = x # store for backward pass
                return torch.matmul(x, self.weight) + self.bias

            def backward(self, grad_output):
                dw = torch.matmul(self.x.t(), grad_output)
                db = torch.sum(grad_output, dim=0)
                self.weight.grad = dw
                self.bias.grad = db

        # ... model definition and training loop ...
        """
    ).lstrip()
    expected = textwrap.dedent(
        """
        import torch
        import torch.nn as nn

        class CorrectCustomLayerVectorFunction(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, weight, bias):
                # store for backward pass
                ctx.save_for_backward(x)
                return torch.matmul(x, weight) + bias

            @staticmethod
            def backward(ctx, grad_output):
                x, = ctx.saved_tensors
                dw = torch.matmul(x.t(), grad_output)
                db = torch.sum(grad_output, dim=0)
                return None, dw, db


        class CorrectCustomLayerVector(nn.Module):
            def __init__(self, input_dim, output_dim):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(input_dim, output_dim))
                self.bias = nn.Parameter(torch.zeros(output_dim))

            def forward(self, x):
                return CorrectCustomLayerVectorFunction.apply(x, self.weight, self.bias)

        # ... model definition and training loop ...
        """
    ).lstrip()
    assert convert_module_source(source, "CorrectCustomLayerVector") == expected


# -- cases that cannot be translated: no action ---------------------------------------------

HEADER = "import torch\nimport torch.nn as nn\n\n"

UNTRANSLATABLE = {
    "backward calls another method": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, x):
                self.x = x
                return x @ self.weight

            def backward(self, grad_output):
                self.weight.grad = self._weight_grad(grad_output)
                return grad_output @ self.weight.t()

            def _weight_grad(self, g):
                return self.x.t() @ g
        """,
    "return inside a branch of backward": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, x):
                self.x = x
                return x @ self.weight

            def backward(self, grad_output):
                if grad_output.abs().max() > 1:
                    return grad_output.clamp(-1, 1) @ self.weight.t()
                self.weight.grad = self.x.t() @ grad_output
                return grad_output @ self.weight.t()
        """,
    "grad accumulated in place (.grad used as a value)": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, x):
                self.x = x
                return x @ self.weight

            def backward(self, grad_output):
                self.weight.grad.add_(self.x.t() @ grad_output)
        """,
    "first write is += inside a branch": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, x):
                self.x = x
                return x @ self.weight

            def backward(self, grad_output):
                for g in grad_output.split(1):
                    self.weight.grad += self.x.t() @ g
        """,
    "reads an attribute set in another method": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def set_mask(self, mask):
                self.mask = mask

            def forward(self, x):
                self.x = x
                return (x @ self.weight) * self.mask

            def backward(self, grad_output):
                g = grad_output * self.mask
                self.weight.grad = self.x.t() @ g
                return g @ self.weight.t()
        """,
    "reads a variable of forward (seed example 2)": """
        class CorrectCustomLayerScalar(nn.Module):
            def __init__(self, input_dim):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(input_dim))

            def forward(self, x):
                return torch.sum(x * self.weight)

            def backward(self, grad_output):
                self.weight.grad = grad_output * x # x should be available here, context-dependent
        """,
    "forward uses a layer": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3, 3)

            def forward(self, x):
                self.x = x
                return self.fc(x)

            def backward(self, grad_output):
                self.fc.weight.grad = grad_output.t() @ self.x
        """,
    "forward reads the stash of the previous call": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))
                self.prev = None

            def forward(self, x):
                if self.prev is not None:
                    x = x + self.prev
                self.prev = x
                return x @ self.weight

            def backward(self, grad_output):
                self.weight.grad = self.prev.t() @ grad_output
        """,
    "forward returns from a branch": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, x):
                self.x = x
                if x.dim() == 1:
                    return x @ self.weight
                return x @ self.weight

            def backward(self, grad_output):
                self.weight.grad = self.x.t() @ grad_output
        """,
    "stash of unknown type read by backward": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, x):
                self.cache = helper(x)
                return x @ self.weight

            def backward(self, grad_output):
                self.weight.grad = self.cache.t() @ grad_output

        def helper(x):
            return x
        """,
    "two gradients returned for one input": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, x):
                self.x = x
                return x @ self.weight

            def backward(self, grad_output):
                return grad_output @ self.weight.t(), self.x.t() @ grad_output
        """,
    "backward stores state on self": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, x):
                self.x = x
                return x @ self.weight

            def backward(self, grad_output):
                self.weight.grad = self.x.t() @ grad_output
                self.x = None
        """,
    "variadic forward": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, *xs):
                self.x = xs[0]
                return xs[0] @ self.weight

            def backward(self, grad_output):
                self.weight.grad = self.x.t() @ grad_output
        """,
    "another method reads the stash": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, x):
                self.x = x
                return x @ self.weight

            def backward(self, grad_output):
                self.weight.grad = self.x.t() @ grad_output

            def last_input(self):
                return self.x
        """,
}


@pytest.mark.parametrize("name", list(UNTRANSLATABLE))
def test_untranslatable_modules_get_no_action(name):
    source = HEADER + textwrap.dedent(UNTRANSLATABLE[name]).lstrip()
    compile(source, name, "exec")
    tree = ast.parse(source)
    cls = next(node for node in tree.body if isinstance(node, ast.ClassDef))
    src = SourceFile(source)
    unit = Unit([cls], src, ModuleContext(tree, src))
    assert conversion_fix(unit, cls) is None
    assert convert_module_source(source, cls.name) is None


def test_no_backward_no_action():
    source = HEADER + "class M(nn.Module):\n    def forward(self, x):\n        return x\n"
    assert convert_module_source(source, "M") is None


# -- the fix object -----------------------------------------------------------------------------


def _unit_for(source: str, name: str):
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    src = SourceFile(source)
    return Unit([cls], src, ModuleContext(tree, src)), cls


def test_fix_is_unsafe_lazy_and_titled():
    source = (CASES / "linear_bias.py").read_text()
    unit, cls = _unit_for(source, "ManualLinear")
    conversion = analyse_conversion(unit, cls)
    assert conversion is not None and conversion.complete
    fix = conversion.fix
    assert fix.title == FIX_TITLE == "Convert to torch.autograd.Function"
    assert fix.applicability is Applicability.UNSAFE
    assert fix._edits is None  # nothing computed until asked
    (edit,) = fix.edits
    assert edit.start_line == cls.lineno and edit.start_column == 1
    assert edit.end_line == cls.end_lineno
    assert apply_edits(source, fix.edits) == convert_module_source(source, "ManualLinear")


def test_incomplete_backward_is_reported_as_such():
    # backward gives only the bias a gradient: converting would stop the weight learning
    source = (
        HEADER
        + textwrap.dedent(
            """
        class ScaledLinear(nn.Module):
            def __init__(self, n_in, n_out):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.1)
                self.bias = nn.Parameter(torch.zeros(n_out))

            def forward(self, x):
                return x @ self.weight + self.bias

            def backward(self, grad_output):
                self.bias.grad = grad_output.sum(0)
                return grad_output @ self.weight.T
        """
        ).lstrip()
    )
    unit, cls = _unit_for(source, "ScaledLinear")
    conversion = analyse_conversion(unit, cls)
    assert conversion is not None and not conversion.complete
    namespace = load(apply_edits(source, conversion.fix.edits))
    layer = namespace["ScaledLinear"](4, 3)
    layer(torch.randn(8, 4)).pow(2).sum().backward()
    assert layer.weight.grad is None and layer.bias.grad is not None


def test_analysis_does_not_import_libcst():
    code = textwrap.dedent(
        f"""
        import ast, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / "server")!r})
        from gradguard.rules._gg101_convert_function import conversion_fix
        from gradguard.engine.index import ModuleContext, Unit
        from gradguard.engine.source import SourceFile
        source = open({str(CASES / "linear_bias.py")!r}).read()
        tree = ast.parse(source)
        cls = [n for n in tree.body if isinstance(n, ast.ClassDef)][0]
        src = SourceFile(source)
        fix = conversion_fix(Unit([cls], src, ModuleContext(tree, src)), cls)
        assert fix is not None
        assert "libcst" not in sys.modules, "analysis imported libcst"
        assert fix.edits
        assert "libcst" in sys.modules
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# -- spelling variants: imports, indentation, line endings, positions -------------------------

VARIANT_BODY = """
class Scale(nn.Module):
{i}def __init__(self, init):
{i}{i}super().__init__()
{i}{i}self.w = nn.Parameter(init)  # per-feature scale
{i}{i}self.eps = 1e-3

{i}def forward(self, x):
{i}{i}\"\"\"Scale the input.\"\"\"
{i}{i}self.x = x
{i}{i}y = x * (self.w + self.eps)  # ünïcödé comment
{i}{i}return (
{i}{i}{i}y  # the output
{i}{i})

{i}def backward(self, grad_output):
{i}{i}self.w.grad = (grad_output * self.x).sum(0)
{i}{i}return grad_output * (self.w + self.eps)
"""


@pytest.mark.parametrize(
    "imports,indent,newline,prefix,base",
    [
        ("import torch as th\nfrom torch import nn\n", "    ", "\n", "", "th.autograd.Function"),
        (
            "from torch import nn\n",
            "\t",
            "\r\n",
            "# ☃ a snowman above the class\n",
            "torch.autograd.Function",
        ),
        (
            "import torch.nn as nn\nfrom torch.autograd import Function\n",
            "  ",
            "\n",
            "x = '😀'\n",
            "Function",
        ),
    ],
    ids=["torch-alias", "no-torch-name-crlf-tabs", "function-imported"],
)
def test_spelling_variants_convert_and_run(imports, indent, newline, prefix, base):
    source = (imports + prefix + "\n" + VARIANT_BODY.format(i=indent)).replace("\n", newline)
    out = convert_module_source(source, "Scale")
    assert out is not None
    assert comments(out) == comments(source)
    assert out.count("\n") == out.count(newline)  # one line ending style throughout
    assert f"class ScaleFunction({base}):" in out
    if base == "torch.autograd.Function":  # `torch` was not bound: imported right before
        assert f"import torch{newline * 3}class ScaleFunction(torch.autograd.Function):" in out
    assert "Scale the input." in out  # the docstring stays with the module
    namespace = load(out)
    module = namespace["Scale"](torch.ones(3))
    x = torch.randn(4, 3, requires_grad=True)
    y = module(x)
    assert type(y.grad_fn).__name__ == "ScaleFunctionBackward"
    y.sum().backward()
    assert torch.allclose(module.w.grad, x.detach().sum(0))
    assert torch.allclose(x.grad, (module.w + 1e-3).detach().expand(4, 3))


# -- through GG101, the analyzer and the CLI --------------------------------------------------


def _gg101(text: str):
    from gradguard.engine.analyzer import Analyzer
    from gradguard.engine.config import Config

    analyzer = Analyzer(Config(select=("GG101",)))
    return analyzer, [f for f in analyzer.check(text).findings if f.code == "GG101"]


def test_gg101_offers_the_conversion_as_its_fix_and_removal_as_alternative():
    source = (CASES / "linear_bias.py").read_text()
    _, (finding,) = _gg101(source)
    assert finding.fix.title == FIX_TITLE
    assert finding.fix.applicability is Applicability.UNSAFE
    assert [alt.title for alt in finding.alternatives] == ["Remove `backward` (autograd never calls it)"]
    assert apply_edits(source, finding.fix.edits) == converted(REALISTIC[0])


def test_gg101_keeps_removal_when_the_conversion_would_drop_gradients():
    source = (
        HEADER
        + textwrap.dedent(
            """
        class OnlyBias(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))
                self.bias = nn.Parameter(torch.zeros(3))

            def forward(self, x):
                return x @ self.weight + self.bias

            def backward(self, grad_output):
                self.bias.grad = grad_output.sum(0)
        """
        ).lstrip()
    )
    _, (finding,) = _gg101(source)
    assert finding.fix.title.startswith("Remove")
    assert [alt.title for alt in finding.alternatives] == [FIX_TITLE]


def test_gg101_untranslatable_has_no_conversion():
    source = HEADER + textwrap.dedent(UNTRANSLATABLE["backward calls another method"]).lstrip()
    _, (finding,) = _gg101(source)
    assert finding.fix.title.startswith("Remove")
    assert FIX_TITLE not in [alt.title for alt in finding.alternatives]


def test_cached_conversion_still_applies_after_lines_are_added_above():
    source = (CASES / "swish_two_stashes.py").read_text()
    analyzer, _ = _gg101(source)
    analyzer.check(source)  # fill the per-unit cache
    moved = source.replace("import torch\n", "import torch\n# a comment\nSIZE = 3  # é\n\n", 1)
    (finding,) = [f for f in analyzer.check(moved).findings if f.code == "GG101"]
    expected = converted(REALISTIC[5]).replace(
        "import torch\n", "import torch\n# a comment\nSIZE = 3  # é\n\n", 1
    )
    assert apply_edits(moved, finding.fix.edits) == expected


@pytest.mark.parametrize("case", REALISTIC, ids=lambda c: c.file)
def test_converted_code_is_quiet_under_every_rule(case):
    from gradguard.engine.analyzer import Analyzer

    result = Analyzer().check(converted(case), case.file)
    assert result.findings == [] and result.errors == []


def test_cli_unsafe_fixes_apply_the_conversion(tmp_path):
    root = Path(__file__).resolve().parents[1]
    target = tmp_path / "layer.py"
    target.write_text((CASES / "sigmoid_bias.py").read_text())
    env = dict(__import__("os").environ, PYTHONPATH=str(root / "server"), NO_COLOR="1")
    result = subprocess.run(
        [sys.executable, "-m", "gradguard", "check", "--fix", "--unsafe-fixes", "--jobs", "1", str(target)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = target.read_text()
    assert text == converted(REALISTIC[2])
    namespace = load(text)
    module = namespace["BiasedSigmoid"](6)
    module(torch.randn(4, 6)).sum().backward()
    assert module.bias.grad is not None and module.bias.grad.abs().sum() > 0


MORE_UNTRANSLATABLE = {
    "forward returns two outputs": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, x):
                self.x = x
                return x @ self.weight, x

            def backward(self, grad_output):
                self.weight.grad = self.x.t() @ grad_output
        """,
    "forward writes into its input": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, x):
                x.clamp_(min=0)
                self.x = x
                return x @ self.weight

            def backward(self, grad_output):
                self.weight.grad = self.x.t() @ grad_output
        """,
    "an input named ctx": """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(3, 3))

            def forward(self, ctx):
                self.x = ctx
                return ctx @ self.weight

            def backward(self, grad_output):
                self.weight.grad = self.x.t() @ grad_output
        """,
}


@pytest.mark.parametrize("name", list(MORE_UNTRANSLATABLE))
def test_more_untranslatable_modules(name):
    source = HEADER + textwrap.dedent(MORE_UNTRANSLATABLE[name]).lstrip()
    assert convert_module_source(source, "M") is None


def test_decorated_class_and_stash_reassigned_later():
    source = (
        HEADER
        + "import functools\n\n"
        + textwrap.dedent(
            """
        def register(cls):
            return cls

        @register
        class Gate(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.full((3,), 0.5))

            def forward(self, x):
                self.x = x
                x = x * self.w  # `x` is rebound after the stash
                return x

            def backward(self, grad_output):
                self.w.grad = (grad_output * self.x).sum(0)
                return grad_output * self.w
        """
        ).lstrip()
    )
    out = convert_module_source(source, "Gate")
    assert out is not None
    assert "@register\nclass Gate(nn.Module):" in out
    assert out.index("class GateFunction") < out.index("@register")
    namespace = load(out)
    gate = namespace["Gate"]()
    x = torch.randn(4, 3, requires_grad=True)
    gate(x).sum().backward()
    assert torch.allclose(gate.w.grad, x.detach().sum(0))
    assert torch.allclose(x.grad, torch.full((4, 3), 0.5))


COMMENTED = '''\
import torch
import torch.nn as nn


# a layer with comments everywhere
class Noisy(nn.Module):  # class header comment
    # before __init__
    def __init__(self, n):
        super().__init__()
        self.w = nn.Parameter(torch.ones(n))  # weight
        self.x = None  # filled by forward

    # before forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # forward header
        # first line of forward
        self.x = x; y = x * self.w  # two statements
        if self.training:
            y = y * 2.0  # training only
        return (
            y  # output
        )
        # after the return of forward

    # before backward
    def backward(self, grad_output):  # backward header
        """Hand-written gradient."""
        # inside backward
        self.w.grad = (grad_output * self.x).sum(0)  # weight grad (ignores the x2)
        # end of backward

    # after backward, still in the class
# after the class
'''


def test_every_comment_survives_and_training_flag_is_passed():
    out = convert_module_source(COMMENTED, "Noisy")
    assert out is not None
    assert comments(out) == comments(COMMENTED)
    assert "NoisyFunction.apply(x, self.w, self.training)" in out
    assert '"""Hand-written gradient."""' in out
    namespace = load(out)
    layer = namespace["Noisy"](3)
    x = torch.randn(4, 3)
    layer.eval()
    assert torch.equal(layer(x), x)
    layer.train()
    assert torch.equal(layer(x), 2 * x)
    layer(x).sum().backward()
    # the hand-written formula, faithfully: it ignores the factor 2 of training mode
    assert torch.allclose(layer.w.grad, x.sum(0))


# -- combinations: whatever is converted must run -------------------------------------------

FORWARD_PIECES = [
    ("self.x = x", set(), {"x"}),
    ("self.shape = x.shape", set(), {"shape"}),
    ("self.n = x.size(0)", set(), {"n"}),
    ("h = x * self.w", set(), {"h_local"}),
    ("self.h = h", {"h_local"}, {"h"}),
    ("x = x + 0.0", set(), set()),
    ("self.s = torch.sigmoid(x)", set(), {"s"}),
]
BACKWARD_PIECES = [
    ("self.w.grad = (grad_output * self.x).sum(0)", {"x"}),
    ("self.b.grad = grad_output.sum(0)", set()),
    ("if self.b.grad is None:\n    self.b.grad = grad_output.sum(0) * self.scale", set()),
    ("g = grad_output * self.w", set()),
    ("self.w.grad = (grad_output * self.h).sum(0) / self.n", {"h", "n"}),
    ("k = (self.s * (1 - self.s)).mean()", {"s"}),
]
BACKWARD_RETURNS = [
    ("", set()),
    ("return grad_output * self.w", set()),
    ("return (grad_output * self.w).reshape(self.shape)", {"shape"}),
]


def _combinations():
    import itertools

    for f_count in (1, 2, 3):
        for f_pieces in itertools.combinations(FORWARD_PIECES, f_count):
            provided = set().union(*(p[2] for p in f_pieces))
            needed = set().union(*(p[1] for p in f_pieces))
            if not needed <= provided:
                continue
            for b_pieces in itertools.combinations(BACKWARD_PIECES, 2):
                for ret in BACKWARD_RETURNS:
                    wants = set().union(*(p[1] for p in b_pieces)) | ret[1]
                    if wants <= provided:
                        yield [p[0] for p in f_pieces], [p[0] for p in b_pieces], ret[0]


def _module(f_lines, b_lines, ret):
    forward = "".join(f"        {line}\n" for line in f_lines)
    backward = "".join(textwrap.indent(line, "        ") + "\n" for line in b_lines)
    if ret:
        backward += f"        {ret}\n"
    return (
        HEADER
        + "class M(nn.Module):\n"
        + "    def __init__(self):\n"
        + "        super().__init__()\n"
        + "        self.w = nn.Parameter(torch.ones(3))\n"
        + "        self.b = nn.Parameter(torch.zeros(3))\n"
        + "        self.scale = 2.0\n\n"
        + "    def forward(self, x):\n"
        + forward
        + "        return x * self.w + self.b\n\n"
        + "    def backward(self, grad_output):\n"
        + backward
    )


def test_every_converted_combination_runs():
    converted_count = 0
    for f_lines, b_lines, ret in list(_combinations())[::4]:  # ~150 of the ~580, to stay quick
        source = _module(f_lines, b_lines, ret)
        out = convert_module_source(source, "M")
        if out is None:
            continue
        converted_count += 1
        namespace = load(out)
        module = namespace["M"]()
        x = torch.randn(4, 3, requires_grad=True)
        y = module(x)
        assert type(y.grad_fn).__name__ == "MFunctionBackward", source
        y.sum().backward()
        assert x.grad is None if not ret else x.grad.shape == x.shape, source
        assert comments(out) == comments(source)
    assert converted_count > 100


@pytest.mark.parametrize(
    "forward,backward",
    [
        ("    def forward(self, x): return x * self.w\n", None),
        ('    def forward(self, x):\n        """doc"""; self.x = x\n        return x * self.w\n', None),
        (None, "    def backward(self, grad_output): self.w.grad = (grad_output * self.x).sum(0)\n"),
    ],
    ids=["forward-one-liner", "docstring-and-stash-on-one-line", "backward-one-liner"],
)
def test_one_line_bodies_are_left_alone(forward, backward):
    forward = forward or "    def forward(self, x):\n        self.x = x\n        return x * self.w\n"
    backward = (
        backward
        or "    def backward(self, grad_output):\n        self.w.grad = (grad_output * self.x).sum(0)\n"
    )
    source = (
        HEADER
        + "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        + "        self.w = nn.Parameter(torch.ones(3))\n\n"
        + forward
        + "\n"
        + backward
    )
    compile(source, "m", "exec")
    assert convert_module_source(source, "M") is None


def test_two_inputs_keep_their_gradient_slots():
    source = (
        HEADER
        + textwrap.dedent(
            """
        class Bilinear(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.w = nn.Parameter(torch.randn(n))

            def forward(self, a, b):
                self.a = a
                self.b = b
                return a * b * self.w

            def backward(self, grad_output):
                self.w.grad = (grad_output * self.a * self.b).sum(0)
                return grad_output * self.b * self.w, grad_output * self.a * self.w
        """
        ).lstrip()
    )
    out = convert_module_source(source, "Bilinear")
    assert out is not None and "Function.apply(a, b, self.w)" in out
    function = load(out)["BilinearFunction"]
    a, b = (torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(function.apply, (a, b, w))


def test_non_tensor_input_with_default_gets_none():
    source = (
        HEADER
        + textwrap.dedent(
            """
        class WeightedReduce(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.w = nn.Parameter(torch.randn(n))

            def forward(self, x, dim=1):
                self.x = x
                return (x * self.w).sum(dim)

            def backward(self, grad_output):
                self.w.grad = (grad_output.unsqueeze(1) * self.x).sum(0)
                return grad_output.unsqueeze(1) * self.w
        """
        ).lstrip()
    )
    out = convert_module_source(source, "WeightedReduce")
    assert out is not None and "return grad_output.unsqueeze(1) * w, None, grad_w" in out
    namespace = load(out)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(namespace["WeightedReduceFunction"].apply, (x, 1, w))
    module = namespace["WeightedReduce"](3)
    module(torch.randn(4, 3)).sum().backward()
    assert module.w.grad is not None


SEVERAL_OUTPUTS = """
class ScaleShift(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(n))
        self.shift = nn.Parameter(torch.randn(n))

    def forward(self, x):
        self.x = x
        return x * self.scale, x + self.shift

    def backward(self, grad_scaled, grad_shifted):
        self.scale.grad = (grad_scaled * self.x).sum(0)
        self.shift.grad = grad_shifted.sum(0)
        return grad_scaled * self.scale + grad_shifted
"""


def test_several_outputs_get_one_gradient_each():
    source = HEADER + textwrap.dedent(SEVERAL_OUTPUTS).lstrip()
    out = convert_module_source(source, "ScaleShift")
    assert out is not None
    assert "def backward(ctx, grad_scaled, grad_shifted):" in out
    namespace = load(out)
    function = namespace["ScaleShiftFunction"]
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    scale, shift = (torch.randn(3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(function.apply, (x, scale, shift))
    # the converted module trains both parameters through apply, as autograd on the original would
    torch.manual_seed(0)
    module = namespace["ScaleShift"](3)
    reference = load(source)["ScaleShift"](3)
    reference.load_state_dict(module.state_dict())
    x = torch.randn(4, 3)
    a, b = module(x)
    assert type(a.grad_fn).__name__ == "ScaleShiftFunctionBackward"
    (a.pow(2).sum() + b.sum()).backward()
    ra, rb = reference(x)
    (ra.pow(2).sum() + rb.sum()).backward()
    for name, param in module.named_parameters():
        assert torch.allclose(param.grad, dict(reference.named_parameters())[name].grad, atol=1e-5), name


def test_several_outputs_with_one_gradient_argument_are_not_converted():
    source = HEADER + textwrap.dedent(SEVERAL_OUTPUTS).lstrip()
    source = source.replace(
        "def backward(self, grad_scaled, grad_shifted):", "def backward(self, grad_scaled):"
    )
    source = source.replace("grad_shifted.sum(0)", "grad_scaled.sum(0)").replace("+ grad_shifted", "")
    compile(source, "one_gradient", "exec")
    assert convert_module_source(source, "ScaleShift") is None


def test_sub_layer_module_says_why_it_is_not_converted():
    from gradguard.engine.analyzer import Analyzer
    from gradguard.engine.config import Config

    source = HEADER + textwrap.dedent(
        """
        class Gated(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.fc = nn.Linear(n, n)
                self.scale = nn.Parameter(torch.ones(n))

            def forward(self, x):
                self.h = self.fc(x)
                return self.h * self.scale

            def backward(self, grad_output):
                self.scale.grad = (grad_output * self.h).sum(0)
        """
    )
    assert convert_module_source(source, "Gated") is None
    (finding,) = Analyzer(Config(select=("GG101",))).check(source).findings
    assert "sub-layer `self.fc`" in finding.detail
    assert all(f.title != FIX_TITLE for f in [finding.fix, *finding.alternatives] if f is not None)
