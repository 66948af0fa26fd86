"""The real-bug corpus (tests/real_bugs/): headers are well formed, and every case fails with torch
exactly the way its header says (correct programs run cleanly and train).

Whether gradguard *finds* these bugs is measured, not asserted: see bench/recall.py.
"""

from __future__ import annotations

import contextlib
import gc
import io
import linecache
import random
import runpy
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import PLANNED_CODES, Case, load_cases  # noqa: E402
from gradguard.engine.rule import all_rules  # noqa: E402

CASES = load_cases()
IDS = [c.name for c in CASES]


def test_corpus_is_large_enough():
    buggy = [c for c in CASES if not c.silent]
    silent = [c for c in CASES if c.silent]
    assert len(buggy) >= 50, f"only {len(buggy)} buggy cases"
    assert len(silent) >= 12, f"only {len(silent)} correct (silent) cases"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_header(case: Case):
    known = set(all_rules()) | PLANNED_CODES
    for source in case.sources:
        assert source.startswith("https://") and " " not in source, f"not a URL: {source!r}"
    assert len(case.what) > 20, "describe what the person wrote and what happened"
    assert case.fix, "say the mechanical fix, or `none`"
    lines = case.path.read_text(encoding="utf-8").splitlines()
    if case.silent:
        assert case.fails == "none", "a correct program must have `fails: none`"
        assert case.name.startswith("ok_"), "correct programs are named ok_*.py"
    else:
        assert case.fails != "none", "a buggy program must fail (an exception or `no-learning`)"
        assert not case.name.startswith("ok_")
    for item in case.expected:
        for code in item.codes:
            assert code in known, f"unknown rule code {code}"
        assert 1 <= item.line <= len(lines), f"{item}: no such line"
        statement = lines[item.line - 1].strip()
        assert statement and not statement.startswith("#"), f"{item} points at a blank line or comment"
    # the file must parse: gradguard reads it
    compile("\n".join(lines) + "\n", str(case.path), "exec")


@pytest.fixture(scope="module")
def torch_warm():
    """Pay torch's one-off lazy imports (optimizers, autograd engine) once, not in the first case."""
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    return torch


def _run(case: Case, torch) -> BaseException | None:
    """Run one case in a fresh namespace with fixed seeds; return what it raised."""
    import numpy as np

    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add contention on a shared machine
    gc_was_enabled = gc.isenabled()
    linecache.checkcache(str(case.path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                runpy.run_path(str(case.path), run_name="__main__")
    except Exception as exc:  # noqa: BLE001 - the case's failure is what we check
        return exc
    finally:
        torch.set_num_threads(threads)
        if gc_was_enabled:
            gc.enable()
    return None


@pytest.mark.torch
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_case_fails_as_described(case: Case, torch_warm):
    raised = _run(case, torch_warm)
    described = None if raised is None else f"{type(raised).__name__}: {raised}"
    if case.fails == "none":
        assert raised is None, f"a correct program raised {described}"
    elif case.fails == "no-learning":
        assert isinstance(raised, AssertionError), f"expected the closing assertion to fail, got {described}"
    else:
        assert raised is not None, f"expected an exception containing {case.fails!r}; the script ran cleanly"
        assert not isinstance(raised, (SyntaxError, NameError, ImportError)), described
        assert case.fails in described, f"expected {case.fails!r} in: {described}"
