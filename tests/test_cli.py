"""The command line: exit codes, formats, fixes written safely, bad input handled."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SARIF_SCHEMA = ROOT / ".cache" / "sarif" / "sarif-schema-2.1.0.json"

BUGGY = """\
import torch
import torch.nn as nn


class Rectifier(nn.Module):
    def forward(self, x):
        x = torch.tanh(x)
        x[x < 0] = 0  # clip negatives
        return x * 2
"""

CLEAN = """\
import torch
import torch.nn as nn


class Rectifier(nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2
"""


def gradguard(*args, cwd=None, input=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "server"), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "gradguard", *map(str, args)],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def project(tmp_path):
    (tmp_path / "buggy.py").write_text(BUGGY)
    (tmp_path / "clean.py").write_text(CLEAN)
    return tmp_path


def test_exit_codes(project):
    assert gradguard("check", project / "clean.py").returncode == 0
    result = gradguard("check", project)
    assert result.returncode == 1
    assert "buggy.py:8:9: GG202" in result.stdout
    assert gradguard("check", project / "missing.py").returncode == 2
    bad = gradguard("check", "--select", "NOPE", project)
    assert bad.returncode == 2 and "unknown rule" in bad.stderr
    assert gradguard("check", "--format", "yaml", project).returncode == 2
    assert gradguard("check", "--exit-zero", project).returncode == 0


def test_json_output(project):
    result = gradguard("check", "--format", "json", project)
    items = json.loads(result.stdout)
    assert len(items) == 1
    item = items[0]
    for key in (
        "path",
        "code",
        "name",
        "severity",
        "message",
        "line",
        "column",
        "end_line",
        "end_column",
        "fix",
    ):
        assert key in item
    assert (item["code"], item["line"], item["column"], item["end_line"], item["end_column"]) == (
        "GG202",
        8,
        9,
        8,
        21,
    )
    assert item["fix"]["applicability"] == "safe"  # a local tensor: rebinding it changes nothing else
    assert item["fix"]["edits"][0]["new_text"] == "x = torch.relu(x)"


def test_sarif_is_valid(project):
    jsonschema = pytest.importorskip("jsonschema")
    if not SARIF_SCHEMA.exists():
        if os.environ.get("CI"):
            pytest.fail(f"SARIF schema missing at {SARIF_SCHEMA}: scripts/test should have fetched it")
        pytest.skip("SARIF schema not fetched (run scripts/test)")
    result = gradguard("check", "--format", "sarif", project)
    log = json.loads(result.stdout)
    jsonschema.validate(log, json.loads(SARIF_SCHEMA.read_text()))
    results = log["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["GG202"]
    assert results[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 8


def test_github_annotations(project):
    result = gradguard("check", "--format", "github", project)
    assert result.stdout.startswith("::error title=gradguard GG202,file=")
    assert ",line=8,col=9," in result.stdout


def test_fix_rewrites_file_and_keeps_comments(project):
    result = gradguard("check", "--fix", project / "buggy.py")
    assert result.returncode == 0, result.stdout + result.stderr
    text = (project / "buggy.py").read_text()
    assert "x = torch.relu(x)  # clip negatives" in text
    assert not list(project.glob(".*.gradguard"))  # no temporary file left behind


def test_diff_does_not_write(project):
    result = gradguard("check", "--diff", project / "buggy.py")
    assert result.returncode == 1
    assert "-        x[x < 0] = 0  # clip negatives" in result.stdout
    assert "+        x = torch.relu(x)  # clip negatives" in result.stdout
    assert (project / "buggy.py").read_text() == BUGGY


def test_bad_files_do_not_stop_the_run(project):
    (project / "binary.py").write_bytes(b"\x00\x01\x02garbage")
    (project / "latin1.py").write_bytes("# caf\xe9\nimport torch\n".encode("latin-1"))
    (project / "broken.py").write_text("import torch\ndef f(:\n")
    result = gradguard("check", project)
    assert result.returncode == 2  # files were skipped: the check is incomplete
    assert "binary.py: skipped: binary file" in result.stderr
    assert "latin1.py: skipped: not valid UTF-8" in result.stderr
    assert "broken.py:2:7: GG000 Syntax error" in result.stdout
    assert "buggy.py:8:9: GG202" in result.stdout  # the good file is still checked
    assert "Traceback" not in result.stderr


def test_select_ignore_and_noqa(project):
    assert gradguard("check", "--ignore", "GG202", project).returncode == 0
    assert gradguard("check", "--select", "GG2", project).returncode == 1
    assert gradguard("check", "--select", "GG000", project).returncode == 0
    (project / "buggy.py").write_text(BUGGY.replace("# clip negatives", "# noqa: GG202"))
    assert gradguard("check", project).returncode == 0
    (project / "buggy.py").write_text(BUGGY.replace("# clip negatives", "# gradguard: ignore[GG202]"))
    assert gradguard("check", project).returncode == 0
    (project / "buggy.py").write_text(BUGGY.replace("# clip negatives", "# noqa: E501"))
    assert gradguard("check", project).returncode == 1


def test_pyproject_config_and_cli_override(project):
    (project / "pyproject.toml").write_text('[tool.gradguard]\nignore = ["GG202"]\n')
    assert gradguard("check", project, cwd=project).returncode == 0
    assert gradguard("check", "--select", "GG202", "--ignore", "", project, cwd=project).returncode == 1
    (project / "pyproject.toml").write_text('[tool.gradguard]\nseverity = { GG202 = "error" }\n')
    items = json.loads(gradguard("check", "--format", "json", project, cwd=project).stdout)
    assert items[0]["severity"] == "error"
    (project / "pyproject.toml").write_text('[tool.gradguard]\nseverity = { GG202 = "fatal" }\n')
    result = gradguard("check", project, cwd=project)
    assert result.returncode == 2 and "unknown severity" in result.stderr


def test_directories_skip_virtualenvs_and_gitignored(project):
    venv = project / "env1"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr\n")
    (venv / "lib.py").write_text(BUGGY)
    (project / "node_modules").mkdir()
    (project / "node_modules" / "x.py").write_text(BUGGY)
    (project / "generated").mkdir()
    (project / "generated" / "g.py").write_text(BUGGY)
    (project / ".gitignore").write_text("generated/\n")
    items = json.loads(gradguard("check", "--format", "json", project).stdout)
    assert [Path(i["path"]).name for i in items] == ["buggy.py"]


def test_parallel_output_is_stable(tmp_path):
    for i in range(30):
        (tmp_path / f"m{i:02d}.py").write_text(BUGGY)
    one = gradguard("check", "--jobs", "1", "--format", "json", tmp_path).stdout
    two = gradguard("check", "--jobs", "2", "--format", "json", tmp_path).stdout
    assert one == two and len(json.loads(one)) == 30


def test_explain_and_rules():
    explained = gradguard("explain", "gg202")
    assert explained.returncode == 0 and "## GG202 masked-assignment" in explained.stdout
    assert gradguard("explain", "GG999").returncode == 2
    listing = gradguard("rules").stdout
    assert "GG202  masked-assignment" in listing


def test_checking_never_imports_torch(project):
    code = (
        "import sys; from gradguard.cli import main\n"
        f"main(['check', '--jobs', '1', r'{project}'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "server"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "torch was imported" not in result.stderr, result.stderr


SUGGESTION_ONLY = """\
import torch.nn as nn


class Rectifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        h[h < 0] = 0
        return h
"""


def test_suggestions_are_reported_only_when_selected(tmp_path):
    """GG205 reports correct code: `check` lists it only when `select` is set (CI lists problems only)."""
    (tmp_path / "model.py").write_text(SUGGESTION_ONLY)
    default = gradguard("check", tmp_path)
    assert default.returncode == 0 and "GG205" not in default.stdout
    selected = gradguard("check", "--select", "GG205", tmp_path)
    assert selected.returncode == 1 and "model.py:11:9: GG205" in selected.stdout
    (tmp_path / "pyproject.toml").write_text('[tool.gradguard]\nselect = ["ALL"]\n')
    assert "GG205" in gradguard("check", tmp_path).stdout
    (tmp_path / "pyproject.toml").write_text('[tool.gradguard]\nignore = ["GG101"]\n')
    assert "GG205" not in gradguard("check", tmp_path).stdout
