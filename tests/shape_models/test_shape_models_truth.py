"""The shape-model suite: every model builds and runs on the meta device, and the tracer records a shape
for every assignment in forward (and the methods it calls) that binds a tensor."""

from __future__ import annotations

import ast
import functools
import re
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import truth

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread is much faster than two fighting over a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FILES = truth.model_files()
measure = functools.lru_cache(maxsize=None)(truth.measure)  # each file runs once per session


def table(*names: str) -> dict:
    out: dict = {}
    for name in names:
        out.update(measure(truth.HERE / name).shapes)
    return out


def test_suite_size() -> None:
    models = [m for path in FILES for m in truth.declared_models(path)]
    assert len(FILES) >= 32, len(FILES)
    assert len(models) >= 36, len(models)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_model_runs_and_every_tensor_assignment_is_recorded(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert re.match(r"# source: https://\S+", first), f"{path.name}: the first line names the source URL"
    models = truth.declared_models(path)
    assert models, f"{path.name} declares no model (# gradguard: probe ...)"
    measured = measure(path)
    assert measured.shapes, f"{path.name}: nothing recorded"
    # every assignment that ran is either recorded with a shape or bound no tensor
    lines_with_shapes = {line for (_, line, _) in measured.shapes}
    lines_without = {line for (_, line, _) in measured.non_tensor}
    for _, line in measured.executed:
        assert line in lines_with_shapes or line in lines_without, (
            f"{path.name}:{line} ran but was not recorded"
        )
    # each declared model's own forward recorded at least one tensor
    tree = ast.parse(text)
    for model in models:
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == model.cls)
        forward = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "forward"), None)
        assert forward is not None
        assigns = [n for n in ast.walk(forward) if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign))]
        if not assigns:
            continue  # `return self.network(x)`: nothing to record
        span = range(forward.lineno, forward.end_lineno + 1)  # type: ignore[arg-type]
        assert any(line in span for line in lines_with_shapes), f"{model.cls}.forward recorded nothing"


def test_shapes_are_what_torch_measured() -> None:
    shapes = table("mnist.py", "nanogpt.py")
    mnist = {name: shape for (f, _, name), shape in shapes.items() if f == "mnist.py"}
    assert mnist["logits"] == (4, 10)
    nano = {(line, name): shape for (f, line, name), shape in shapes.items() if f == "nanogpt.py"}
    assert any(name == "q" and shape == (4, 4, 16, 8) for (_, name), shape in nano.items())
    assert any(name == "loss" and shape == () for (_, name), shape in nano.items())


def test_tuple_targets_and_loops() -> None:
    table = truth.truth(
        [truth.HERE / "time_sequence_prediction.py", truth.HERE / "word_language_model_rnn.py"]
    )
    names = {(f, name): shape for (f, _, name), shape in table.items()}
    assert names[("word_language_model_rnn.py", "hidden")] == ((2, 4, 32), (2, 4, 32))
    # `outputs.append(output)` is not an assignment; the concatenation is
    assert names[("time_sequence_prediction.py", "result")] == (3, 5)


def test_cli_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert truth.main([str(truth.HERE / "lenet.py")]) == 0
    out = capsys.readouterr().out
    assert "lenet.py:" in out and "[1, 10]" in out
    assert truth.main([str(truth.HERE / "lenet.py"), "--json"]) == 0
    assert '"lenet.py"' in capsys.readouterr().out
