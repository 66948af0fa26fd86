"""Cross-file cases: each directory under `cases/` is a small project, checked with the
project index, and must be reported exactly as if its files were one file.

The one-file form is `_single.py` when a case has one (written by hand where the
project form cannot simply be concatenated: `import a.b as c`, an installed package's
base class inlined as what its source says it is); otherwise it is generated: the files
in import order (dependencies first), with the imports of the project's own modules
removed. Findings are compared by rule, message and the text of the flagged line.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.project import ProjectIndex, build_project

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).resolve().parent / "cases"

# what each case must report (so that no comparison passes by both sides being empty)
EXPECTED = {
    "subclass_base": {"GG101", "GG103", "GG202"},  # the three findings of issue 11
    "training_loop": {"GG302"},  # the loss is computed under no_grad: `total += loss` keeps no graph
    "function_misuse": {"GG602"},
    "relative_dot": {"GG101", "GG103"},
    "relative_dotdot": {"GG103", "GG104"},
    "init_reexport": {"GG101", "GG204"},
    "star_import": {"GG103", "GG204"},
    "dunder_all": {"GG101", "GG103"},
    "two_packages": {"GG101", "GG103", "GG201"},
    "import_as": {"GG101", "GG103"},
    "transformers_model": {"GG101", "GG103"},
    "lightning_hook": {"GG103"},  # not GG101: Lightning calls LightningModule.backward
    "import_cycle": {"GG101"},
    "compiled_missing": {"GG103"},  # classes on unknown bases: silent
    "function_helper": set(),  # zero_grad happens in a helper of another file: silent
    # the module's backward is called by hand in another file: the removal is an unsafe fix
    "explicit_backward": {"GG101"},
    # `conv_dense.weight[i] = ...` of a class defined elsewhere: `weight` is a ModuleList (neuraloperator)
    "module_list_weight": set(),
    # a list of blocks of another file that own nothing is silent; one whose blocks hold a dropout is not
    "stateless_blocks": {"GG103"},
    # `.bias.copy_()` on a module of a class whose base, in another file, registers `bias` as a buffer
    # (gptqmodel): silent; as an `nn.Parameter`: reported (tests below run both with torch)
    "buffer_bias": set(),
    "parameter_bias": {"GG203"},
}
NEEDS = {"transformers_model": "transformers", "lightning_hook": "lightning"}


def case_files(case: Path) -> list[Path]:
    return sorted(p for p in case.rglob("*.py") if p.name != "_single.py")


def project_findings(case: Path, with_text: bool = True) -> list[tuple]:
    index = build_project([case])
    analyzer = Analyzer(project=index)
    out = []
    for path in case_files(case):
        text = path.read_text()
        lines = text.splitlines()
        for f in analyzer.check(text, str(path)).findings:
            out.append(_key(f, lines if with_text else None))
    return sorted(out)


def _key(finding, lines: list[str] | None) -> tuple[str, str, str, str | None]:
    """Rule, message (line numbers in it masked), the flagged line's text (unless the
    one-file form is written by hand), and the fix's applicability."""
    fix = finding.fix.applicability.value if finding.fix is not None else None
    text = lines[finding.line - 1].strip() if lines is not None else ""
    return (finding.code, re.sub(r"\bline \d+", "line N", finding.message), text, fix)


def single_source(case: Path) -> str:
    hand = case / "_single.py"
    if hand.exists():
        return hand.read_text()
    index = build_project([case])
    files = [str(p.resolve()) for p in case_files(case)]
    order: list[str] = []

    def visit(path: str, stack: tuple[str, ...]) -> None:
        if path in order or path in stack:
            return
        for dep in sorted(index.graph().edges.get(path, ())):
            visit(dep, (*stack, path))
        order.append(path)

    for path in files:
        visit(path, ())
    parts = []
    for path in order:
        text = Path(path).read_text()
        lines = text.splitlines(keepends=True)
        tree = ast.parse(text)
        resolver = index.for_file(path)
        drop: set[int] = set()
        for stmt in tree.body:
            if isinstance(stmt, ast.ImportFrom):
                module = resolver.absolute(stmt.module, stmt.level)
                own = stmt.level > 0 or (module is not None and resolver.in_project(module))
            elif isinstance(stmt, ast.Import):
                own = all(resolver.in_project(a.name) for a in stmt.names)
            else:
                continue
            if own:
                drop.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
        parts.append("".join(line for n, line in enumerate(lines, 1) if n not in drop))
    return "\n\n".join(parts)


def single_findings(case: Path, with_text: bool = True) -> list[tuple]:
    text = single_source(case)
    lines = text.splitlines()
    found = Analyzer().check(text, "single.py").findings
    return sorted(_key(f, lines if with_text else None) for f in found)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_case_reported_as_if_one_file(name: str) -> None:
    module = NEEDS.get(name)
    if module is not None and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (scripts/setup installs its sources)")
    case = CASES / name
    generated = not (case / "_single.py").exists()
    project = project_findings(case, with_text=generated)
    single = single_findings(case, with_text=generated)
    assert project == single
    assert {key[0] for key in project} == EXPECTED[name]


def test_every_case_has_expectations() -> None:
    assert sorted(p.name for p in CASES.iterdir() if p.is_dir()) == sorted(EXPECTED)
    assert len(EXPECTED) >= 14


@pytest.mark.parametrize("name", ["subclass_base", "relative_dot", "star_import", "import_as"])
def test_the_index_is_what_finds_them(name: str) -> None:
    """Without the project index each file alone misses the module rules."""
    case = CASES / name
    alone = Analyzer()
    codes = {f.code for p in case_files(case) for f in alone.check(p.read_text(), str(p)).findings}
    assert not codes & {"GG101", "GG103"}


def test_cli_reports_the_issue_case_in_a_stable_order() -> None:
    """`gradguard check` indexes the tree and checks it with two worker processes."""
    env_path = str(ROOT / "server")
    argv = [sys.executable, "-m", "gradguard", "check", "--format", "json", "-j", "2", str(CASES)]
    runs = [
        subprocess.run(argv, capture_output=True, text=True, env={"PYTHONPATH": env_path}, check=False)
        for _ in range(2)
    ]
    assert runs[0].returncode == 1, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    import json

    found = json.loads(runs[0].stdout)
    model = [f["code"] for f in found if f["path"].endswith("subclass_base/model.py")]
    assert sorted(model) == ["GG101", "GG103", "GG202"]
    assert len(found) > 8  # more than one file, more than one case (many files: the worker pool runs)
    no_project = subprocess.run(
        [*argv[:-1], "--no-project", str(CASES / "subclass_base")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path},
        check=False,
    )
    assert no_project.returncode == 0, no_project.stdout


def test_cli_jobs_keep_the_serial_order_with_cross_file_findings(tmp_path: Path) -> None:
    """`--jobs 2` prints what `--jobs 1` prints, in the same order (files in path order), when
    the findings rest on another file's facts: 40 models in 4 packages, each subclassing a base
    class of another package (GG101 only through the index)."""
    import json

    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("from .base import Base\n")
    (tmp_path / "core" / "base.py").write_text(
        "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n"
    )
    for i in range(40):
        package = tmp_path / f"pkg{i % 4}"
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text("")
        (package / f"m{i:02d}.py").write_text(
            "import torch\nfrom core import Base\n\n\nclass Net(Base):\n    def forward(self, x):\n"
            "        return torch.relu(x)\n\n    def backward(self, grad):\n        return grad\n"
        )
    env = {"PYTHONPATH": str(ROOT / "server")}

    def run(*extra: str) -> str:
        argv = [sys.executable, "-m", "gradguard", "check", "--format", "json", *extra, str(tmp_path)]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        assert done.returncode in (0, 1), done.stderr
        return done.stdout

    serial, parallel = run("-j", "1"), run("-j", "2")
    assert parallel == serial
    found = json.loads(parallel)
    paths = [f["path"] for f in found]
    assert [f["code"] for f in found] == ["GG101"] * 40
    assert paths == sorted(paths, key=lambda p: Path(p).parts)
    assert json.loads(run("-j", "2", "--no-project")) == []


def test_update_invalidates_dependents_cached_findings(tmp_path: Path) -> None:
    """An edit to base.py changes model.py's findings: the module signature carries the
    facts of the files it imports, so the per-unit cache is not reused."""
    (tmp_path / "base.py").write_text("import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n")
    model = tmp_path / "model.py"
    model.write_text(
        "from base import Base\n\n\nclass Net(Base):\n    def backward(self, grad):\n        return grad\n"
    )
    index = build_project([tmp_path])
    analyzer = Analyzer(project=index)
    text = model.read_text()
    assert [f.code for f in analyzer.check(text, str(model)).findings] == ["GG101"]
    changed = index.update(tmp_path / "base.py", "class Base:\n    pass\n")
    assert changed
    assert index.dependents(tmp_path / "base.py") == {str(model.resolve())}
    assert analyzer.check(text, str(model)).findings == []
    # and back: a change that other files cannot see is not a change
    assert index.update(tmp_path / "base.py", "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n")
    assert [f.code for f in analyzer.check(text, str(model)).findings] == ["GG101"]
    assert not index.update(
        tmp_path / "base.py", "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass  # same facts\n"
    )


def test_what_a_class_of_another_file_holds_invalidates_its_dependents(tmp_path: Path) -> None:
    """GG103 on a list of another file's blocks rests on what those blocks hold: when the block
    gains a layer with parameters, the list's file is reported; when it loses it, silent again."""
    stateless = (
        "import torch.nn as nn\n\n\nclass Block(nn.Module):\n    def __init__(self, k=3):\n"
        "        super().__init__()\n        self.k = k\n        self.pool = nn.AvgPool1d(k)\n"
    )
    (tmp_path / "blocks.py").write_text(stateless)
    model = tmp_path / "model.py"
    model.write_text(
        "import torch.nn as nn\nfrom blocks import Block\n\n\nclass Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.blocks = [Block() for _ in range(2)]\n"
    )
    index = build_project([tmp_path])
    analyzer = Analyzer(project=index)
    text = model.read_text()
    assert analyzer.check(text, str(model)).findings == []
    assert index.update(tmp_path / "blocks.py", stateless + "        self.proj = nn.Linear(k, k)\n")
    assert index.dependents(tmp_path / "blocks.py") == {str(model.resolve())}
    assert [f.code for f in analyzer.check(text, str(model)).findings] == ["GG103"]
    assert index.update(tmp_path / "blocks.py", stateless)
    assert analyzer.check(text, str(model)).findings == []
    # an edit of the block that changes nothing it holds is no change for model.py
    assert not index.update(
        tmp_path / "blocks.py", stateless + "\n    def forward(self, x):\n        return x\n"
    )


def test_project_index_without_files_is_harmless() -> None:
    index = ProjectIndex([], search_paths=[])
    analyzer = Analyzer(project=index)
    found = analyzer.check("import torch\nx = torch.randn(3, requires_grad=True)\nx += 1\n", "")
    assert [f.code for f in found.findings] == ["GG203"]


def test_alone_each_file_gets_what_the_index_corrects() -> None:
    alone = Analyzer()

    def codes(name: str) -> dict[str, list]:
        out: dict[str, list] = {}
        for p in case_files(CASES / name):
            for f in alone.check(p.read_text(), str(p)).findings:
                out.setdefault(f.code, []).append(f)
        return out

    # the helper that clears the gradients lives in utils.py: alone, train.py is a false positive
    assert "GG401" in codes("function_helper")
    # `Clamp()(x)` is only a misuse when Clamp is known to be an autograd Function
    assert "GG602" not in codes("function_misuse")
    # run.py calls Manual.backward by hand: alone, deleting it looks like a safe fix
    (fake,) = codes("explicit_backward")["GG101"]
    assert fake.fix is not None and fake.fix.applicability.value == "safe"


def test_an_instance_of_a_class_that_is_no_module_holds_nothing_only_on_plain_bases(tmp_path: Path) -> None:
    """A block storing an instance of a class that is no module: registering the block carries
    nothing of it when the class's bases are all `object`; with any other base the verdict is
    unknown. One file and the project index (a class of another file) judge alike."""
    helpers = (
        "class Mixin:\n    pass\n\n\nclass Plain(object):\n    pass\n\n\nclass Derived(Mixin):\n    pass\n"
    )
    block = (
        "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.helper = {cls}()\n        self.pool = nn.AvgPool1d(3)\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.blocks = [Block() for _ in range(2)]\n"
    )
    analyzer = Analyzer()
    for cls, expected in (("Plain", []), ("Derived", ["GG103"])):
        one = "import torch.nn as nn\n\n\n" + helpers + "\n\n" + block.format(cls=cls)
        assert [f.code for f in analyzer.check(one, "one.py").findings] == expected, cls
        root = tmp_path / cls
        root.mkdir()
        (root / "helpers.py").write_text(helpers)
        model = root / "model.py"
        model.write_text(f"import torch.nn as nn\nfrom helpers import {cls}\n\n\n" + block.format(cls=cls))
        across = Analyzer(project=build_project([root]))
        assert [f.code for f in across.check(model.read_text(), str(model)).findings] == expected, cls


@pytest.mark.parametrize("name, error", [("buffer_bias", None), ("parameter_bias", "leaf Variable")])
def test_the_bias_cases_do_what_torch_does(name: str, error: str | None) -> None:
    """Copying into a buffer `bias` runs with gradients on; into a parameter `bias` it raises."""
    pytest.importorskip("torch")
    done = subprocess.run(
        [sys.executable, "-c", "from pkg.bench import run; run()"],
        cwd=CASES / name,
        capture_output=True,
        text=True,
        check=False,
    )
    if error is None:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0 and error in done.stderr


def test_what_a_base_of_another_file_registers_invalidates_its_dependents(tmp_path: Path) -> None:
    """`.bias` of a class whose base (in another file) registers it as a buffer is no parameter;
    when the base makes it an `nn.Parameter`, the copy into it is reported, and silent again after."""
    case = CASES / "buffer_bias" / "pkg"
    package = tmp_path / "pkg"
    package.mkdir()
    for source in case.glob("*.py"):
        (package / source.name).write_text(source.read_text())
    buffer = (case / "quant.py").read_text()
    parameter = buffer.replace('self.register_buffer("bias", ', "self.bias = nn.Parameter(")
    assert parameter.count("nn.Parameter(") == 1
    compile(parameter, "quant.py", "exec")
    index = build_project([tmp_path])
    analyzer = Analyzer(project=index)
    bench = package / "bench.py"
    text = bench.read_text()
    assert analyzer.check(text, str(bench)).findings == []
    assert index.update(package / "quant.py", parameter)
    assert str(bench.resolve()) in index.dependents(package / "quant.py")
    lines = text.splitlines()
    found = analyzer.check(text, str(bench)).findings
    assert {(f.code, lines[f.line - 1].strip()) for f in found} == {
        ("GG203", "cloned.bias.copy_(source.bias)"),
        ("GG203", "source.bias.fill_(1.0)"),
    }
    assert index.update(package / "quant.py", buffer)
    assert analyzer.check(text, str(bench)).findings == []
