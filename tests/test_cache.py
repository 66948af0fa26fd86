"""The result cache of `gradguard check`: a warm run says exactly what a cold run says, and
nothing a result rests on can change without the result being computed again."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS_EMPTY = """\
from torch import nn


class Block(nn.Module):
    def forward(self, x):
        return x * 2
"""

LAYERS_WITH_PARAMETER = """\
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x)
"""

MODEL = """\
import torch
from torch import nn

from pkg.layers import Block


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = [Block(), Block()]

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


def train(model, data):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in data:
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
"""

BUGGY = """\
import torch
import torch.nn as nn


class Rectifier(nn.Module):
    def forward(self, x):
        x = torch.tanh(x)
        x[x < 0] = 0  # clip negatives
        return x * 2
"""


def run(project: Path, *args, server: Path = ROOT / "server", extra_path: str = ""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADGUARD_")}
    env.update(PYTHONPATH=str(server) + (os.pathsep + extra_path if extra_path else ""), NO_COLOR="1")
    proc = subprocess.run(
        [sys.executable, "-m", "gradguard", "check", *map(str, args)],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return proc.returncode, proc.stdout, proc.stderr


def codes(project: Path, *args, **kwargs) -> list[tuple[str, str]]:
    rc, out, err = run(project, "--format", "json", *args, **kwargs)
    assert rc in (0, 1), err
    return [(f["path"], f["code"]) for f in json.loads(out)]


def entries(project: Path) -> list[Path]:
    return sorted((project / ".gradguard_cache").glob("v*/*/*/*.json"))


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "layers.py").write_text(LAYERS_WITH_PARAMETER)
    (tmp_path / "pkg" / "model.py").write_text(MODEL)
    (tmp_path / "buggy.py").write_text(BUGGY)
    return tmp_path


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_warm_output_is_byte_identical_to_cold(project, fmt):
    reference = run(project, "--no-cache", "--format", fmt)
    assert not (project / ".gradguard_cache").exists()
    assert reference[0] == 1 and reference[1]
    cold = run(project, "--format", fmt)
    assert len(entries(project)) == 4  # every file, clean ones included
    warm = run(project, "--format", fmt)
    assert cold == reference
    assert warm == reference
    tag = (project / ".gradguard_cache" / "CACHEDIR.TAG").read_text()
    assert tag.startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert (project / ".gradguard_cache" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_warm_run_reads_the_entries(project):
    """A tampered entry shows through: the warm run did not analyse the file again."""
    run(project)
    for entry in entries(project):
        data = json.loads(entry.read_text())
        for finding in data["findings"]:
            finding["message"] = "FROM THE CACHE"
        entry.write_text(json.dumps(data))
    rc, out, _ = run(project)
    assert rc == 1 and out.count("FROM THE CACHE") == 3
    # --fix and --diff never read it; --no-cache neither
    assert "FROM THE CACHE" not in run(project, "--no-cache")[1]
    assert "FROM THE CACHE" not in run(project, "--diff", "--unsafe-fixes")[1]


def test_editing_a_file_invalidates_its_entry(project):
    assert ("pkg/model.py", "GG401") in codes(project)
    model = project / "pkg" / "model.py"
    model.write_text(
        MODEL.replace("        loss.backward()\n", "        opt.zero_grad()\n        loss.backward()\n")
    )
    assert ("pkg/model.py", "GG401") not in codes(project)
    assert codes(project) == codes(project, "--no-cache")


def test_a_cross_file_fact_invalidates_the_files_resting_on_it(project):
    """GG103 on `self.blocks = [Block(), Block()]` rests on what Block (in another file)
    holds: once Block has no parameter, the list registers nothing that matters."""
    assert ("pkg/model.py", "GG103") in codes(project)
    (project / "pkg" / "layers.py").write_text(LAYERS_EMPTY)
    assert ("pkg/model.py", "GG103") not in codes(project)
    assert codes(project) == codes(project, "--no-cache")
    (project / "pkg" / "layers.py").write_text(LAYERS_WITH_PARAMETER)  # and back
    assert ("pkg/model.py", "GG103") in codes(project)


def test_an_edit_inside_a_body_keeps_the_other_files_entries(project):
    codes(project)
    before = set(entries(project))
    model = project / "pkg" / "model.py"
    model.write_text(MODEL.replace("return x\n", "return x + 0\n"))
    codes(project)
    after = set(entries(project))
    assert len(after - before) == 1  # only model.py was checked again
    assert before <= after


def test_an_installed_module_changing_invalidates(tmp_path):
    """A class read from the search path (not a project file): its change is seen."""
    ext = tmp_path / "ext" / "extlib"
    ext.mkdir(parents=True)
    (ext / "__init__.py").write_text("")
    (ext / "layers.py").write_text(LAYERS_EMPTY)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "model.py").write_text(MODEL.replace("from pkg.layers", "from extlib.layers"))
    extra = str(tmp_path / "ext")
    assert ("model.py", "GG103") in codes(project, extra_path=extra)
    (ext / "layers.py").write_text("class Block:\n    def __call__(self, x):\n        return x\n")
    assert ("model.py", "GG103") not in codes(project, extra_path=extra)
    assert codes(project, extra_path=extra) == codes(project, "--no-cache", extra_path=extra)
    # and the entries written since are used again (the stale record was not kept)
    for entry in entries(project):
        data = json.loads(entry.read_text())
        data["findings"] = [{**f, "code": "GG999"} for f in data["findings"]]
        entry.write_text(json.dumps(data))
    assert codes(project, extra_path=extra) == [("model.py", "GG999")]  # GG401 read back


def test_settings_invalidate(project):
    everything = codes(project)
    assert codes(project, "--select", "GG401") == [("pkg/model.py", "GG401")]
    assert codes(project) == everything
    (project / "pyproject.toml").write_text('[tool.gradguard]\nignore = ["GG401"]\n')
    assert ("pkg/model.py", "GG401") not in codes(project)
    (project / "pyproject.toml").write_text('[tool.gradguard]\nseverity = { GG103 = "hint" }\n')
    rc, out, _ = run(project, "--format", "json")
    assert rc == 1
    assert {f["severity"] for f in json.loads(out) if f["code"] == "GG103"} == {"hint"}


def test_an_engine_source_change_invalidates(project, tmp_path_factory):
    server = tmp_path_factory.mktemp("server")
    shutil.copytree(
        ROOT / "server" / "gradguard", server / "gradguard", ignore=shutil.ignore_patterns("__pycache__")
    )
    rule = server / "gradguard" / "rules" / "gg401_missing_zero_grad.py"
    assert "Gradients are never cleared in this loop" in run(project, server=server)[1]
    rule.write_text(
        rule.read_text().replace("Gradients are never cleared in this loop", "Gradients pile up in this loop")
    )
    out = run(project, server=server)[1]
    assert "Gradients pile up in this loop" in out and "never cleared" not in out


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_text(""),
        lambda p: p.write_text(p.read_text()[: len(p.read_text()) // 2]),
        lambda p: p.write_bytes(b"\xff\xfe\x00garbage"),
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "format": 999})),
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "findings": [{"code": 1}]})),
        lambda p: p.write_text("[1, 2, 3]"),
        lambda p: (p.unlink(), p.mkdir()),
    ],
    ids=["empty", "truncated", "binary", "foreign-format", "bad-finding", "not-an-object", "a-directory"],
)
def test_a_damaged_entry_is_a_miss(project, damage):
    reference = run(project, "--no-cache")
    run(project)
    for entry in entries(project):
        damage(entry)
    assert run(project) == reference
    assert run(project) == reference  # and the entries were written again


def test_a_damaged_manifest_is_no_cache(project):
    reference = run(project, "--no-cache")
    run(project)
    for manifest in (project / ".gradguard_cache").glob("v*/*/manifest.json"):
        manifest.write_text("{not json")
    assert run(project) == reference
    assert run(project) == reference


def test_an_unusable_cache_dir_means_no_cache(project):
    reference = run(project, "--no-cache")
    blocker = project / "not-a-dir"
    blocker.write_text("a file where the cache directory would be")
    assert run(project, "--cache-dir", blocker / "cache") == reference
    assert run(project, "--cache-dir", blocker) == reference
    assert not (project / ".gradguard_cache").exists()


def test_no_cache_and_fix_write_nothing(project):
    assert run(project, "--no-cache")[0] == 1
    assert run(project, "--diff")[0] == 1
    assert run(project, "--fix", "--unsafe-fixes")[0] in (0, 1)
    assert not (project / ".gradguard_cache").exists()


def test_cache_dir_option_and_setting(project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    run(project, "--cache-dir", elsewhere / "c")
    assert (elsewhere / "c" / "CACHEDIR.TAG").is_file()
    assert not (project / ".gradguard_cache").exists()
    (project / "pyproject.toml").write_text('[tool.gradguard]\ncache-dir = "build/gg-cache"\n')
    run(project / "pkg")  # the setting is relative to the pyproject.toml, not to the cwd
    assert (project / "build" / "gg-cache" / "CACHEDIR.TAG").is_file()
    assert not (project / "pkg" / "build").exists()


def test_concurrent_runs_agree(project):
    reference = run(project, "--no-cache")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADGUARD_")}
    env.update(PYTHONPATH=str(ROOT / "server"), NO_COLOR="1")
    argv = [sys.executable, "-m", "gradguard", "check"]
    procs = [
        subprocess.Popen(
            argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert (proc.returncode, out, err) == reference
    assert run(project) == reference
