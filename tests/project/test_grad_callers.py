"""A private helper that the project calls only with gradients off, from another file
(`grad_callers`, `ProjectIndex.grad_off_helpers`): its body runs without gradients, so the
rules that need them (GG203 here) stay silent; a call with gradients on anywhere in the
project keeps it reported. Each case is run with torch: the silent project works, the
reported one raises what the message says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.grad_callers import grad_call_facts
from gradguard.engine.project import build_project
from gradguard.lsp.workspace import WorkspaceIndex

HEAD = """import torch
import torch.nn as nn


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.conv = nn.Conv1d(4, 2, 1)

    def forward(self, x):
        return self.fc(x)

    def _sync_conv(self):
        self.conv.weight.copy_(self.fc.weight[..., None])
        self.conv.bias.copy_(self.fc.bias)
"""

CALLER_OFF = """import torch

from pkg.head import Head


def convert(head: Head) -> Head:
    with torch.no_grad():
        head._sync_conv()
    return head


@torch.inference_mode()
def convert_again(head: Head) -> Head:
    head._sync_conv()
    return head
"""

CALLER_ON = """import torch

from pkg.head import Head


def convert(head: Head) -> Head:
    with torch.no_grad():
        head._sync_conv()
    return head


def convert_with_grad(head: Head) -> Head:
    head._sync_conv()
    return head
"""

RUN = """
import sys
sys.path.insert(0, {root!r})
import torch
from pkg.caller import *
from pkg.head import Head
head = Head()
for name in {names!r}:
    globals()[name](head)
x = torch.randn(3, 4)
assert torch.allclose(head.conv(x[..., None])[..., 0], head.fc(x), atol=1e-6)
print("ok")
"""


def _project(tmp_path: Path, caller: str) -> Path:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "head.py").write_text(HEAD)
    (pkg / "caller.py").write_text(caller)
    return pkg


def _codes(index, path: Path) -> list[tuple[str, int]]:
    findings = Analyzer(project=index).check(path.read_text(), str(path)).findings
    return [(f.code, f.line) for f in findings]


def _run(root: Path, names: list[str]) -> subprocess.CompletedProcess:
    code = RUN.format(root=str(root), names=names)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_a_helper_called_only_without_grad_from_another_file_is_silent(tmp_path: Path) -> None:
    pkg = _project(tmp_path, CALLER_OFF)
    index = build_project([pkg])
    assert _codes(index, pkg / "head.py") == []
    assert index.for_file(pkg / "head.py").grad_off_helpers == {"_sync_conv"}
    result = _run(tmp_path, ["convert", "convert_again"])
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_one_call_with_grad_keeps_it_reported(tmp_path: Path) -> None:
    pkg = _project(tmp_path, CALLER_ON)
    index = build_project([pkg])
    assert _codes(index, pkg / "head.py") == [("GG203", 15), ("GG203", 16)]
    assert _run(tmp_path, ["convert"]).returncode == 0
    failed = _run(tmp_path, ["convert_with_grad"])
    assert failed.returncode != 0
    assert "a leaf Variable that requires grad is being used in an in-place operation" in failed.stderr


def test_alone_the_file_is_reported(tmp_path: Path) -> None:
    pkg = _project(tmp_path, CALLER_OFF)
    analyzer = Analyzer()
    findings = analyzer.check(HEAD, str(pkg / "head.py")).findings
    assert [f.code for f in findings] == ["GG203", "GG203"]


def test_an_edit_to_the_caller_rechecks_the_callee(tmp_path: Path) -> None:
    """The callee's signature carries the answer: the per-unit cache of one analyzer is not
    reused when the caller changes, and the language server's list of files to check again
    names the callee."""
    pkg = _project(tmp_path, CALLER_OFF)
    index = build_project([pkg])
    analyzer = Analyzer(project=index)
    head, caller = pkg / "head.py", pkg / "caller.py"
    assert analyzer.check(HEAD, str(head)).findings == []
    old = index.file(caller)
    assert index.update(caller, CALLER_ON)
    assert str(head.resolve()) in WorkspaceIndex._affected(index, str(caller), old)
    assert [f.code for f in analyzer.check(HEAD, str(head)).findings] == ["GG203", "GG203"]
    old = index.file(caller)
    assert index.update(caller, CALLER_OFF)
    assert str(head.resolve()) in WorkspaceIndex._affected(index, str(caller), old)
    assert analyzer.check(HEAD, str(head)).findings == []
    # an edit that changes no call of a helper is no change
    assert not index.update(caller, CALLER_OFF + "\n# a comment\n")


@pytest.mark.parametrize(
    ("text", "off", "uses"),
    [
        ("with torch.no_grad():\n    m._h(x)\n", {"_h"}, set()),
        ("@torch.no_grad()\ndef f(m):\n    return m._h(1)\n", {"_h"}, set()),
        ("@torch.inference_mode(False)\ndef f(m):\n    return m._h(1)\n", set(), {"_h"}),
        ("with torch.set_grad_enabled(False):\n    _h()\n", {"_h"}, set()),
        ("with torch.set_grad_enabled(train):\n    _h()\n", set(), {"_h"}),
        ("with torch.no_grad():\n    with torch.enable_grad():\n        _h()\n", set(), {"_h"}),
        # a body runs where it is called: a function or lambda defined under no_grad is not
        ("with torch.no_grad():\n    def g():\n        return _h()\n", set(), {"_h"}),
        ("with torch.no_grad():\n    g = lambda: _h()\n", set(), {"_h"}),
        # passed, not called; a mention in a comment counts too
        ("with torch.no_grad():\n    run(m._h)\n", set(), {"_h"}),
        ("with torch.no_grad():\n    m._h()  # see _h\n", set(), {"_h"}),
        ("with torch.no_grad():\n    m._h()\nm._h()\n", set(), {"_h"}),
        # a name that ends another identifier counts as a mention (textual: errs towards used)
        ("with torch.no_grad():\n    m._h()\nfoo_h = 1\n", set(), {"_h"}),
        # a continuation line inside brackets, or in a triple-quoted string, keeps the region
        ("with torch.no_grad():\n    y = f(\na)\n    m._h()\n", {"_h"}, set()),
        ('@torch.no_grad()\ndef f(m):\n    """doc\nat column 0\n"""\n    return m._h(1)\n', {"_h"}, set()),
        (
            "class A:\n    @torch.no_grad()\n    def f(self):\n        return self._h(1)\n\n    def g(self):\n"
            "        return self._h(2)\n",
            set(),
            {"_h"},
        ),
        # a docstring documents a name, a one-line string may use it (`getattr`)
        ('with torch.no_grad():\n    m._h()\ndef g():\n    """Calls _h."""\n', {"_h"}, set()),
        (
            'with torch.no_grad():\n    m._h()\nx = """\n"""\ndef g():\n    """\n    _h\n    """\n',
            {"_h"},
            set(),
        ),
        ('with torch.no_grad():\n    m._h()\ngetattr(m, "_h")()\n', set(), {"_h"}),
        # a docstring inside the grad-off function names it: neither a use nor a grad-off call
        ('@torch.no_grad()\ndef f(m):\n    """Calls m._h(x)."""\n    return m._h(1)\n', {"_h"}, set()),
        # a closing quote that starts a line opens nothing: the call after it is read
        ('with torch.no_grad():\n    m._h()\nx = """a\n"""\nm._h()\ny = """b\n"""\n', set(), {"_h"}),
        # a public name with `_` inside is keyed by its tail (`copy_h` -> `_h`)
        ("with torch.no_grad():\n    m.copy_h()\n", {"_h"}, set()),
        ("with torch.no_grad():\n    m.copy_h()\nm.copy_h()\n", set(), {"_h"}),
        # a definition under no_grad is no call there; the call with gradients on is what counts
        ("with torch.no_grad():\n    def _h(x):\n        return x\ny = _h(m)\n", set(), {"_h"}),
        # a file naming no grad mode: its own call of the helper it defines is a use, its `def` is not
        ("def _h(x):\n    return x\ny = _h(m)\n", set(), {"_h"}),
        ("def _h(x):\n    return x\n", set(), set()),
    ],
)
def test_grad_call_facts(text: str, off: set[str], uses: set[str]) -> None:
    found_off, found_uses, _, _ = grad_call_facts("import torch\n" + text)
    assert ("_h" in found_off, "_h" in found_uses) == ("_h" in off, "_h" in uses)


# fairseq2 0.8.1 (trainer.py, evaluator.py): each class has its own private `_do_run`; the evaluator calls
# its own only from an `@torch.inference_mode()` method, the trainer (a file naming no grad mode) calls
# its own with gradients on, and backpropagates in it
TRAINER = """import torch


class Trainer:
    def __init__(self, model, optimizer):
        self._model = model
        self._optimizer = optimizer

    def run(self, batches):
        self._model.train()
        self._do_run(batches)

    def _do_run(self, batches):
        for x, y in batches:
            loss = torch.nn.functional.mse_loss(self._model(x), y)
            loss.backward()
            self._optimizer.step()
            self._optimizer.zero_grad()
"""

EVALUATOR = """import torch


class Evaluator:
    def __init__(self, model):
        self._model = model

    @torch.inference_mode()
    def run(self, batches):
        return self._do_run(batches)

    def _do_run(self, batches):
        self._model.eval()
        return [torch.nn.functional.mse_loss(self._model(x), y).item() for x, y in batches]
"""

RUN_TRAINER = """
import sys
sys.path.insert(0, {root!r})
import torch
from loop.trainer import Trainer
from loop.evaluator import Evaluator
model = torch.nn.Linear(3, 1)
batches = [(torch.randn(4, 3), torch.randn(4, 1)) for _ in range(3)]
before = model.weight.detach().clone()
Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1)).run(batches)
assert not torch.equal(before, model.weight)
assert len(Evaluator(model).run(batches)) == 3
print("trained")
"""


def test_a_helper_its_own_file_calls_with_grad_is_not_another_files_grad_off_helper(tmp_path: Path) -> None:
    pkg = tmp_path / "loop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "trainer.py").write_text(TRAINER)
    (pkg / "evaluator.py").write_text(EVALUATOR)
    index = build_project([pkg])
    assert "_do_run" not in index.grad_off_helpers()
    assert _codes(index, pkg / "trainer.py") == []
    result = subprocess.run(
        [sys.executable, "-c", RUN_TRAINER.format(root=str(tmp_path))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "trained" in result.stdout, result.stderr


# -- a project that never trains and runs its modules under no_grad (hummingbird's Executor) ------
OPERATOR = """import torch


class KernelOp(torch.nn.Module):
    def __init__(self, fit):
        super().__init__()
        self.fit = torch.nn.Parameter(torch.as_tensor(fit), requires_grad=False)

    def forward(self, x):
        k = torch.exp(x @ self.fit)
        k -= k.mean(dim=0)
        return k
"""

EXECUTOR = """import torch

from engine.ops import KernelOp


class Executor(torch.nn.Module):
    def __init__(self, operators):
        super().__init__()
        self._operators = torch.nn.ModuleList(operators)

    def forward(self, x):
        with torch.no_grad():
            for operator in self._operators:
                x = operator(x)
            return x


def convert(fit):
    return Executor([KernelOp(fit)])
"""

RUN_ENGINE = """
import sys
sys.path.insert(0, {root!r})
import torch
from engine.executor import convert
from engine.ops import KernelOp
fit = torch.randn(4, 4)
x = torch.randn(3, 4, requires_grad=True)
out = convert(fit)(x)
assert not out.requires_grad and out.shape == (3, 4)
print("executor ok")
KernelOp(fit)(x).sum().backward()
"""


def _engine(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    pkg = tmp_path / "engine"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "ops.py").write_text(OPERATOR)
    (pkg / "executor.py").write_text(EXECUTOR)
    for name, text in (extra or {}).items():
        (pkg / name).write_text(text)
    return pkg


def test_an_inference_engine_runs_its_operators_without_grad(tmp_path: Path) -> None:
    """Through the executor (the only path the project has) the operator works, with an input
    that requires grad too; called alone with gradients on, backward raises what GG204 says."""
    pkg = _engine(tmp_path)
    index = build_project([pkg])
    assert index.inference_only()
    assert _codes(index, pkg / "ops.py") == []
    alone = Analyzer().check(OPERATOR, str(pkg / "ops.py")).findings
    assert [(f.code, f.line) for f in alone] == [("GG204", 11)]
    result = subprocess.run(
        [sys.executable, "-c", RUN_ENGINE.format(root=str(tmp_path))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "executor ok" in result.stdout, result.stderr
    assert result.returncode != 0 and "modified by an inplace operation" in result.stderr


@pytest.mark.parametrize(
    "extra",
    [
        # the project trains somewhere: its modules may run with gradients on
        "import torch\n\n\ndef fine_tune(op, x):\n    op(x).sum().backward()\n",
        "import torch\n\n\ndef fine_tune(op):\n    return torch.optim.SGD(op.parameters(), lr=0.1)\n",
        # the project builds a trainable layer: a model library, whose users train it
        "import torch\n\n\nclass Head(torch.nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.proj = torch.nn.Linear(4, 4)\n",
    ],
)
def test_a_project_that_may_train_is_no_inference_engine(tmp_path: Path, extra: str) -> None:
    pkg = _engine(tmp_path, {"extra.py": extra})
    index = build_project([pkg])
    assert not index.inference_only()
    assert _codes(index, pkg / "ops.py") == [("GG204", 11)]


def test_without_a_grad_off_forward_the_operators_are_reported(tmp_path: Path) -> None:
    pkg = _engine(tmp_path)
    (pkg / "executor.py").write_text(
        EXECUTOR.replace("        with torch.no_grad():\n", "        if True:\n")
    )
    index = build_project([pkg])
    assert not index.inference_only()
    assert _codes(index, pkg / "ops.py") == [("GG204", 11)]


def test_an_edit_that_makes_the_project_train_rechecks_its_modules(tmp_path: Path) -> None:
    pkg = _engine(tmp_path, {"extra.py": "import torch\n"})
    index = build_project([pkg])
    analyzer = Analyzer(project=index)
    ops, extra = pkg / "ops.py", pkg / "extra.py"
    assert analyzer.check(OPERATOR, str(ops)).findings == []
    old = index.file(extra)
    assert index.update(extra, "import torch\n\n\ndef fine_tune(op, x):\n    op(x).sum().backward()\n")
    assert str(ops.resolve()) in WorkspaceIndex._affected(index, str(extra), old)
    assert [f.code for f in analyzer.check(OPERATOR, str(ops)).findings] == ["GG204"]


def test_a_new_file_rechecks_every_module_only_when_it_flips_the_project(tmp_path: Path) -> None:
    """Opening many files (each builds a layer) must not re-check the whole project per file: the
    project-level answer changes at most once (the language server stalled on 500 opens)."""
    pkg = _engine(
        tmp_path, {"extra.py": "import torch\n\n\ndef fine_tune(op, x):\n    op(x).sum().backward()\n"}
    )
    index = build_project([pkg])
    assert not index.inference_only()
    layer = (
        "import torch\n\n\nclass Head(torch.nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.proj = torch.nn.Linear(4, 4)\n"
    )
    new = pkg / "head.py"
    new.write_text(layer)
    assert index.update(new, layer)
    assert str((pkg / "ops.py").resolve()) not in WorkspaceIndex._affected(index, str(new), None)
    # a new file that makes an inference engine train does flip it
    (tmp_path / "second").mkdir()
    engine = _engine(tmp_path / "second")
    index = build_project([engine])
    assert index.inference_only()
    new = engine / "head.py"
    new.write_text(layer)
    assert index.update(new, layer)
    assert str((engine / "ops.py").resolve()) in WorkspaceIndex._affected(index, str(new), None)


def test_an_edit_that_only_renames_a_local_changes_no_fact_other_files_rest_on(tmp_path: Path) -> None:
    """Most keystrokes change the textual `_name` mentions (`y` -> `my_y`, a comment `a_b`): the
    index must not report a change (that clears its memos and re-checks every importer)."""
    pkg = _engine(tmp_path)
    index = build_project([pkg])
    ops = pkg / "ops.py"
    text = ops.read_text()
    edited = text.replace("        return k\n", "        my_k = k  # a_comment\n        return my_k\n")
    assert edited != text
    assert not index.update(ops, edited)
    assert index.inference_only()


# -- a public method that the project calls only with gradients off ------------------------------
# from llmcompressor 0.14.0.1 llmcompressor/modeling/moe/linear_experts.py (`copy_from_experts_module`,
# called only by the `@torch.no_grad()` classmethods `from_experts_module` in two other files)
EXPERT = '''import torch
import torch.nn as nn


class ExpertMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(4, 8)

    def copy_from_fused(self, fused, index):
        self.up.weight.copy_(fused.up_proj[index])
        self.up.bias.copy_(fused.up_bias[index])

    def copy_to_fused(self, fused, index):
        """Inverse of :meth:`copy_from_fused`."""
        fused.up_proj[index].copy_(self.up.weight)
'''

BUILDER = """import torch
import torch.nn as nn

from moe.expert import ExpertMLP


class LinearExperts(nn.ModuleList):
    @classmethod
    @torch.no_grad()
    def from_fused(cls, fused):
        self = cls([ExpertMLP() for _ in range(fused.up_proj.shape[0])])
        for index, expert in enumerate(self):
            expert.copy_from_fused(fused, index)
        return self
"""

BUILDER_WITH_GRAD = BUILDER.replace("    @torch.no_grad()\n", "")

RUN_EXPERTS = """
import sys
sys.path.insert(0, {root!r})
import torch
from types import SimpleNamespace
from moe.builder import LinearExperts
fused = SimpleNamespace(up_proj=torch.randn(2, 8, 4), up_bias=torch.randn(2, 8))
experts = LinearExperts.from_fused(fused)
assert torch.equal(experts[1].up.weight, fused.up_proj[1]) and experts[1].up.weight.requires_grad
experts[1].up(torch.randn(3, 4)).sum().backward()
assert experts[1].up.weight.grad is not None
print("ok")
"""


def _experts(tmp_path: Path, builder: str) -> Path:
    pkg = tmp_path / "moe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "expert.py").write_text(EXPERT)
    (pkg / "builder.py").write_text(builder)
    return pkg


def _run_experts(root: Path) -> subprocess.CompletedProcess:
    code = RUN_EXPERTS.format(root=str(root))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_a_public_method_called_only_without_grad_from_another_file_is_silent(tmp_path: Path) -> None:
    """Its only caller in the project is a `@torch.no_grad()` classmethod (the docstring naming it
    documents it, no use): the copies into the layer's parameters work, and it stays trainable."""
    pkg = _experts(tmp_path, BUILDER)
    index = build_project([pkg])
    assert _codes(index, pkg / "expert.py") == []
    result = _run_experts(tmp_path)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_a_public_method_one_caller_of_which_has_grad_on_is_reported(tmp_path: Path) -> None:
    pkg = _experts(tmp_path, BUILDER_WITH_GRAD)
    index = build_project([pkg])
    assert _codes(index, pkg / "expert.py") == [("GG203", 11), ("GG203", 12)]
    failed = _run_experts(tmp_path)
    assert failed.returncode != 0
    assert "a leaf Variable that requires grad is being used in an in-place operation" in failed.stderr


@pytest.mark.parametrize(
    "extra",
    [
        "def sync(expert, fused):\n    expert.copy_from_fused(fused, 0)\n",  # a call with gradients on
        "def sync(expert):\n    return expert.copy_from_fused\n",  # a reference, called who knows where
        'def sync(expert, fused):\n    getattr(expert, "copy_from_fused")(fused, 0)\n',  # named in a string
    ],
)
def test_any_other_mention_of_a_public_method_keeps_it_reported(tmp_path: Path, extra: str) -> None:
    pkg = _experts(tmp_path, BUILDER)
    (pkg / "other.py").write_text(extra)
    index = build_project([pkg])
    assert _codes(index, pkg / "expert.py") == [("GG203", 11), ("GG203", 12)]


def test_a_public_method_the_project_never_calls_is_reported(tmp_path: Path) -> None:
    pkg = _experts(tmp_path, "import torch\n")
    index = build_project([pkg])
    assert _codes(index, pkg / "expert.py") == [("GG203", 11), ("GG203", 12)]


def test_editing_the_callers_decorator_flips_the_public_method(tmp_path: Path) -> None:
    """The language server's per-keystroke path: dropping `@torch.no_grad()` from the only caller
    reports the callee again, and putting it back silences it."""
    pkg = _experts(tmp_path, BUILDER)
    index = build_project([pkg])
    analyzer = Analyzer(project=index)
    expert, builder = pkg / "expert.py", pkg / "builder.py"
    assert analyzer.check(EXPERT, str(expert)).findings == []
    old = index.file(builder)
    assert index.update(builder, BUILDER_WITH_GRAD)
    assert str(expert.resolve()) in WorkspaceIndex._affected(index, str(builder), old)
    assert [f.code for f in analyzer.check(EXPERT, str(expert)).findings] == ["GG203", "GG203"]
    old = index.file(builder)
    assert index.update(builder, BUILDER)
    assert str(expert.resolve()) in WorkspaceIndex._affected(index, str(builder), old)
    assert analyzer.check(EXPERT, str(expert)).findings == []


# from torchquantum 0.1.8 plugin/qiskit/qiskit_processor.py and node/nodes.py: a public method called
# only under `no_grad` from another file calls, in its own file, a method of the same key (`_shift`)
# that shifts the parameters in place and restores them (parameter-shift gradient)
SHIFTER = """import math

import torch.nn as nn


class Processor:
    def preprocess_shift(
        self,
        layer: nn.Module,
    ):
        values = []
        for param in layer.parameters():
            param.copy_(param + math.pi / 2)
            values.append(layer.weight.sum().item())
            param.copy_(param - math.pi / 2)
        return values

    def process_shift(self, layer: nn.Module):
        return self.preprocess_shift(layer)
"""

NODE = """import torch


def shift_and_run(processor, layer):
    with torch.no_grad():
        return processor.process_shift(layer)
"""

RUN_SHIFT = """
import sys
sys.path.insert(0, {root!r})
import torch
from shift.processor import Processor
from shift.node import shift_and_run
layer = torch.nn.Linear(2, 2)
before = layer.weight.detach().clone()
{call}
assert torch.allclose(layer.weight, before) and layer.weight.requires_grad
print("ok")
"""


def _shift_project(tmp_path: Path, node: str) -> Path:
    pkg = tmp_path / "shift"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "processor.py").write_text(SHIFTER)
    (pkg / "node.py").write_text(node)
    return pkg


def _run_shift(root: Path, call: str) -> subprocess.CompletedProcess:
    code = RUN_SHIFT.format(root=str(root), call=call)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_a_call_within_a_grad_off_family_of_one_key_is_no_use(tmp_path: Path) -> None:
    """`process_shift` calls `preprocess_shift` (one key, `_shift`): its only way in is the other
    file's call under `no_grad`, so the in-place shifts run without gradients and work."""
    pkg = _shift_project(tmp_path, NODE)
    assert _codes(build_project([pkg]), pkg / "processor.py") == []
    result = _run_shift(tmp_path, "shift_and_run(Processor(), layer)")
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


@pytest.mark.parametrize(
    "node",
    [
        NODE + "\n\ndef run_with_grad(processor, layer):\n    return processor.process_shift(layer)\n",
        NODE.replace("    with torch.no_grad():\n        return", "    return"),
    ],
)
def test_a_family_entered_with_grad_on_is_reported(tmp_path: Path, node: str) -> None:
    pkg = _shift_project(tmp_path, node)
    assert _codes(build_project([pkg]), pkg / "processor.py") == [("GG203", 13), ("GG203", 15)]
    failed = _run_shift(tmp_path, "Processor().process_shift(layer)")
    assert failed.returncode != 0
    assert "a leaf Variable that requires grad is being used in an in-place operation" in failed.stderr


@pytest.mark.parametrize(
    ("body", "used"),
    [
        ("    return self.pre_h(x)\n", False),  # a call of its own key from its body
        ("    with torch.enable_grad():\n        return self.pre_h(x)\n", True),  # names a grad mode
        ("    g = lambda: self.pre_h(x)\n    return g\n", True),  # runs where it is called
        ("    return self.pre_h\n", True),  # a reference, not a call
    ],
)
def test_calls_within_a_family(body: str, used: bool) -> None:
    text = "import torch\nwith torch.no_grad():\n    m.run_h(1)\n\ndef pre_h(x):\n    return x\n\ndef run_h(\n    self, x\n):\n"
    text += body
    off, uses, _, _ = grad_call_facts(text)
    assert ("_h" in uses, "_h" in off) == (used, not used)
