"""The editor e2e test skips without its dependencies, except under CI, where it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _run_e2e_without_deps(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["GRADGUARD_EDITOR_DEPS"] = str(tmp_path / "no-editor-deps")
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            str(HERE / "test_vscode_extension.py"),
        ],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_skips_with_a_reason_when_editor_deps_are_missing(tmp_path: Path) -> None:
    proc = _run_e2e_without_deps(tmp_path, ci=None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 skipped" in proc.stdout
    assert "install-editor-deps.sh" in proc.stdout and "code-server" in proc.stdout


def test_fails_under_ci_when_editor_deps_are_missing(tmp_path: Path) -> None:
    proc = _run_e2e_without_deps(tmp_path, ci="true")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed" in proc.stdout
    assert "CI is set" in proc.stdout
