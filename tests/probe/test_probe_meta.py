"""The probe's first pass on the meta device: shape errors are found there (on the user's
line, without running the real pass), models too big for the memory limit are sized there
without allocating, and a model the meta device cannot run gets its normal CPU results."""

from __future__ import annotations

import pytest
from gradguard.engine.finding import Severity

from .conftest import run_probes

pytestmark = pytest.mark.torch

HEADER = "import numpy as np\nimport torch\nimport torch.nn as nn\n\nCPU_SCALE = torch.ones(8)\n\n\n"

SHAPE = (
    HEADER
    + """\
# gradguard: probe Mismatch() input=(4, 6)
class Mismatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 8)
        self.out = nn.Linear(5, 1)
        print(f"constructed on {self.fc.weight.device}")

    def forward(self, x):
        h = torch.tanh(self.fc(x))
        return self.out(h)
"""
)

# every module here has one unused layer (`self.spare`, line 5 of the class) and a
# forward the meta device cannot run; the CPU pass must still find the unused layer
_CPU_ONLY_FORWARDS = {
    "Item": "        scale = float(x.abs().max().item())\n        return self.fc(x) / (1.0 + scale)\n",
    "Numpy": "        mean = float(np.mean(x.detach().numpy()))\n        return self.fc(x - mean)\n",
    "Masked": "        h = self.fc(x)\n        return h[h > 0].sum() + h.mean()\n",
    "Branch": "        h = self.fc(x)\n        if (h > 100).any():\n            h = h * 0\n        return h\n",
    "Unique": "        h = self.fc(x)\n        return h * torch.unique(x.round()).numel()\n",
    "Repeat": "        h = self.fc(x)\n        counts = torch.ones(h.shape[0], dtype=torch.long)\n"
    "        return torch.repeat_interleave(h, counts, dim=0)\n",
    "CpuConst": "        return self.fc(x) * CPU_SCALE\n",
}


def _cpu_only_module(name: str, forward: str) -> str:
    return (
        f"class {name}(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(4, 8)\n"
        "        self.spare = nn.Linear(4, 8)\n"
        "\n"
        "    def forward(self, x):\n"
        f"{forward}"
        "\n\n"
    )


CPU_ONLY = HEADER + "".join(_cpu_only_module(name, body) for name, body in _CPU_ONLY_FORWARDS.items())

BIG = (
    HEADER
    + """\
class Big(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.table = nn.Parameter(torch.zeros(400 * 2**20))  # 1.6 GB; backward needs twice as much again

    def forward(self, x):
        return self.fc(x) * self.table[0]
"""
)

INFERRED = (
    HEADER
    + """\
class Sequence(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 8)
        self.mix = nn.Linear(8, 8)

    def forward(self, x):
        h = self.embed(x)
        b, t, f = h.shape
        return self.mix(h.reshape(b * t, f))
"""
)


# forward itself uses sympy, torch._dynamo and symbolic_shapes, which the meta pass keeps
# from being imported for its own needs: the user's code must get the real modules, on
# meta and on CPU, and so must everything after the meta pass (gradcheck of a Function)
REAL_MODULES = (
    "import sys\n"
    + HEADER
    + """\
class CompilerBits(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.spare = nn.Linear(4, 4)

    def forward(self, x):
        import sympy
        import torch._dynamo
        from torch.fx.experimental import symbolic_shapes

        assert isinstance(sympy.Integer(3), sympy.Basic)
        assert hasattr(symbolic_shapes, "ShapeEnv") and not torch._dynamo.is_compiling()
        print("modules on", x.device, all(getattr(sys.modules[m], "__file__", None) for m in
              ("sympy", "torch._dynamo", "torch.fx.experimental.symbolic_shapes")))
        return self.fc(x)


class Double(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad
"""
)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta")
    jobs = {}
    texts = {
        "shape": SHAPE,
        "guess": SHAPE.replace("# gradguard: probe Mismatch() input=(4, 6)\n", "\n"),
        "cpu_only": CPU_ONLY,
        "big": BIG,
        "inferred": INFERRED,
        "real_modules": REAL_MODULES,
    }
    for name, text in texts.items():
        path = root / f"{name}.py"
        path.write_text(text)
        jobs[name] = (text, str(path))
    return run_probes(jobs, timeout=60)


def test_shape_mismatch_is_caught_on_meta_on_the_exact_line(reports):
    report = reports["shape"]
    assert [(f.code, f.severity, f.line, f.column, f.end_line, f.end_column) for f in report.findings] == [
        ("GG902", Severity.ERROR, 18, 16, 18, 27),  # `self.out(h)`
    ]
    message = report.findings[0].message
    assert message.startswith(
        "RuntimeError in the forward pass of `Mismatch()` (found on the meta device, before any real computation): "
    )
    assert "[4, 8] X [5, 1]" in message
    assert message.endswith("[input (4, 6), probe comment, line 8]")
    # only the meta construction ran: the real (CPU) pass never started
    assert "constructed on meta" in report.output_tail
    assert "constructed on cpu" not in report.output_tail


def test_modules_the_meta_device_cannot_run_get_their_cpu_results(reports):
    report = reports["cpu_only"]
    lines = CPU_ONLY.splitlines()
    expected_lines = [i + 1 for i, text in enumerate(lines) if text.strip().startswith("self.spare = ")]
    assert len(expected_lines) == len(_CPU_ONLY_FORWARDS)
    assert [(f.code, f.line) for f in report.findings] == [("GG901", line) for line in expected_lines], [
        f.message for f in report.findings
    ]
    for finding in report.findings:
        assert finding.message.startswith("`spare.weight`, `spare.bias` get no gradient"), finding.message
    notes = {n.name: n.summary for n in report.notes}
    assert set(notes) == set(_CPU_ONLY_FORWARDS)
    for name, summary in notes.items():
        # the meta pass gave up silently; the CPU pass checked the four parameters
        assert "meta pass: unavailable (forward:" in summary, (name, summary)
        assert summary.endswith("4 trainable parameters checked, 2 without gradient"), (name, summary)


def test_model_too_big_for_the_memory_limit_is_sized_on_meta_without_allocating(reports):
    report = reports["big"]
    assert len(report.findings) == 1, [f.message for f in report.findings]
    finding = report.findings[0]
    assert (finding.code, finding.severity, finding.line) == ("GG902", Severity.INFORMATION, 8)
    assert "needs 1.6 GB for its parameters and buffers (measured on the meta device)" in finding.message
    assert (
        "and about 3.1 GB more in backward (their gradients and temporaries of the same size), more than the "
        "probe's memory limit (4096 MB) allows"
    ) in finding.message
    # nothing ran on CPU: the note has no input and no parameter count
    assert report.notes[0].summary == "built Big() (constructor defaults); could not run"


def test_meta_pass_picks_the_inferred_input_that_fits(reports):
    report = reports["inferred"]
    assert report.findings == []
    (note,) = report.notes
    # (4, 6) does not fit `b, t, f = h.shape`; (4, 8, 6) does: found on meta, used on CPU
    assert note.summary == (
        "built Sequence() (constructor defaults); input (4, 8, 6) (inferred from self.embed = "
        "Linear(in_features=6)); meta pass: forward and backward; 4 trainable parameters checked, 0 without gradient"
    )


def test_an_inferred_input_that_fits_no_guess_is_information(reports):
    # the same model without the comment: the probe guessed the input, so the mismatch may be the guess
    (finding,) = reports["guess"].findings
    assert (finding.code, finding.severity, finding.line) == ("GG902", Severity.INFORMATION, 9)
    assert finding.message.startswith(
        "The probe could not run `Mismatch`: the input it inferred ((4, 6), inferred from self.fc = "
        "Linear(in_features=6)) does not fit `Mismatch.forward` (line 18) (checked on the meta device): RuntimeError: "
        "a and b must have same reduction dim"
    )
    assert "constructed on cpu" not in reports["guess"].output_tail


def test_the_users_code_gets_the_real_compiler_modules(reports):
    report = reports["real_modules"]
    assert [(f.code, f.line) for f in report.findings] == [("GG901", 13)], [
        f.message for f in report.findings
    ]
    assert report.findings[0].message.startswith("`spare.weight`, `spare.bias` get no gradient")
    notes = {n.name: n.summary for n in report.notes}
    assert "meta pass: forward and backward" in notes["CompilerBits"]
    assert notes["Double"].endswith("gradcheck passed")
    assert "modules on meta True" in report.output_tail
    assert "modules on cpu True" in report.output_tail
