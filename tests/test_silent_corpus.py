"""Correct PyTorch programs that every gradguard rule must stay silent on.

(a) every file in tests/silent/ is checked with all rules enabled: zero findings, no rule
    crashes;
(b) every file runs with torch (tiny sizes, seeded) and asserts that it works (its loss
    goes down or its parameters change), which proves the code really is correct.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.config import Config
from gradguard.engine.rule import all_rules

SILENT_DIR = Path(__file__).resolve().parent / "silent"
FILES = sorted(SILENT_DIR.glob("*.py"))


def _ids(paths):
    return [p.stem for p in paths]


def test_corpus_is_large_enough():
    assert len(FILES) >= 45, f"only {len(FILES)} silent programs"


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer(Config())


def test_all_rules_enabled(analyzer):
    assert {r.code for r in analyzer.rules} == set(all_rules())


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_no_findings(analyzer, path):
    text = path.read_text(encoding="utf-8")
    result = analyzer.check(text, str(path))
    assert result.tree is not None, "silent program does not parse"
    assert not result.errors, "\n".join(f"{e.code}: {e.traceback}" for e in result.errors)
    assert result.findings == [], "\n".join(
        f"{path.name}:{f.line}:{f.column}: {f.code} {f.message}" for f in result.findings
    )


@pytest.fixture(scope="module")
def torch_warm():
    """Pay torch's one-off lazy imports (optimizers, autograd engine) once, not in the
    first program."""
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    return torch


@pytest.mark.torch
@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_program_runs_and_learns(path, torch_warm):
    torch = torch_warm
    torch.manual_seed(0)
    namespace = {"__name__": "__main__", "__file__": str(path)}
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add contention on a shared machine
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, namespace)  # noqa: S102 - each program asserts that it trains / works
    finally:
        torch.set_num_threads(threads)
