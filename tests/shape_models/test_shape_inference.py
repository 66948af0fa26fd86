"""The shapes the value analysis infers for the shape-model suite, compared with torch's meta-device run.

For every model a file declares (`# gradguard: probe Net(...) input=(...)`), torch runs the model on the meta
device and records the shape of every tensor assignment in `forward` (and the methods and sub-modules it
calls; see truth.py). The engine evaluates the same probe comment (the constructor and `forward` called on
that input, no torch) and gives its shape for each of those assignments. Each one is

- known: every dimension an int, equal to torch's (for a tuple, every tensor in it);
- unknown: no shape, or some dimensions unknown (allowed);
- wrong: a rank or a known dimension that differs from torch's (never allowed).

Run `python tests/shape_models/test_shape_inference.py [-v] [files...]` for the table (needs torch).
"""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
if str(ROOT / "server") not in sys.path:
    sys.path.insert(0, str(ROOT / "server"))

import truth
from gradguard.engine import shape_flow
from gradguard.engine.index import ModuleContext
from gradguard.engine.semantic import Semantics
from gradguard.engine.source import SourceFile
from gradguard.engine.symshape import Shape

KNOWN, UNKNOWN, WRONG = "known", "unknown", "wrong"


class Inferred:
    """The engine's view of one file: its semantics and the assignment statements of its methods."""

    def __init__(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        source = SourceFile(text, str(path))
        self.semantics = Semantics(tree, ModuleContext(tree, source))
        self.semantics.shape_index.source = source
        self.statements: dict[int, tuple[ast.AST, ast.stmt]] = {}
        for cls in tree.body:
            if not isinstance(cls, ast.ClassDef):
                continue
            for func in cls.body:
                if not isinstance(func, ast.FunctionDef):
                    continue
                for stmt in ast.walk(func):
                    if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                        self.statements.setdefault(stmt.lineno, (func, stmt))

    def values(self, model: str, line: int, name: str) -> list:
        """The value the assignment binds to `name`, in each call context the model's probe reaches."""
        root = shape_flow.probe_flows(self.semantics).get(model)
        found = self.statements.get(line)
        if root is None or found is None:
            return []
        func, stmt = found
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for target in targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name) and node.id == name:
                    return shape_flow.values_at(self.semantics, func, node, within=[root])
                if isinstance(node, ast.Attribute) and node is target and ast.unparse(node) == name:
                    if isinstance(stmt, ast.AugAssign) or stmt.value is None:
                        return []
                    return shape_flow.values_at(self.semantics, func, stmt.value, within=[root])
        return []


def _facts(value: Any) -> Any:
    """("tensor", dims (ints or None), exact) / ("tuple", [...]) / None."""
    if value is None:
        return None
    if isinstance(value.shape, Shape) and (value.is_tensor or not value.items):
        shape = value.shape
        return ("tensor", [d.value for d in shape.dims], shape.exact)
    if value.items is not None:
        return ("tuple", [_facts(item) for item in value.items])
    return None


def _is_tensor(measured: Any) -> bool:
    return isinstance(measured, tuple) and all(isinstance(d, int) for d in measured)


def judge_contexts(ours: list, measured: Any) -> str:
    """One statement: `ours` has the engine's facts in each call context, `measured` torch's shape
    (or the list of distinct shapes when the statement ran several times)."""
    runs = measured if isinstance(measured, list) else [measured]
    if not ours:
        return UNKNOWN
    verdicts = []
    for facts in ours:
        each = [judge(facts, run) for run in runs]
        if all(v == WRONG for v in each):
            return WRONG  # this context's shape is none of those torch saw
        verdicts.append(KNOWN if KNOWN in each else UNKNOWN)
    if all(v == KNOWN for v in verdicts) and len({repr(f) for f in ours}) == len(runs):
        return KNOWN  # one known shape per distinct shape torch saw
    return UNKNOWN


def judge(ours: Any, measured: Any) -> str:
    """known / unknown / wrong for one value and one shape torch measured (a shape tuple, a tuple of
    those for a tuple of tensors)."""
    if isinstance(measured, list):
        # several shapes: wrong only when it fits none of them
        verdicts = [judge(ours, m) for m in measured]
        return WRONG if all(v == WRONG for v in verdicts) else UNKNOWN
    if ours is None:
        return UNKNOWN
    if _is_tensor(measured):
        if ours[0] != "tensor":
            return UNKNOWN
        dims, exact = ours[1], ours[2]
        if exact:
            if len(dims) != len(measured) or any(d is not None and d != m for d, m in zip(dims, measured)):
                return WRONG
            return KNOWN if all(d is not None for d in dims) else UNKNOWN
        if len(dims) > len(measured) or any(
            d is not None and d != m for d, m in zip(reversed(dims), reversed(measured))
        ):
            return WRONG
        return UNKNOWN
    if isinstance(measured, tuple):
        if ours[0] != "tuple":
            return UNKNOWN
        if len(ours[1]) != len(measured):
            return WRONG
        verdicts = [judge(o, m) if m is not None else KNOWN for o, m in zip(ours[1], measured)]
        if WRONG in verdicts:
            return WRONG
        return KNOWN if all(v == KNOWN for v in verdicts) else UNKNOWN
    return UNKNOWN


def compare_file(path: Path) -> list[tuple[str, int, str, str, Any, Any]]:
    """(verdict, line, name, model, ours, measured) for every tensor assignment of every model."""
    inferred = Inferred(path)
    rows = []
    for model in truth.declared_models(path):
        measured = truth.measure(path, [model]).shapes
        for (_, line, name), shape in sorted(measured.items()):
            ours = [_facts(v) for v in inferred.values(model.cls, line, name)]
            rows.append((judge_contexts(ours, shape), line, name, model.cls, ours, shape))
    return rows


def _table(paths: list[Path], verbose: bool) -> tuple[int, int, list[str]]:
    total = known = 0
    wrong = []
    for path in paths:
        rows = compare_file(path)
        counts = {KNOWN: 0, UNKNOWN: 0, WRONG: 0}
        for verdict, line, name, model, ours, shape in rows:
            counts[verdict] += 1
            if verdict == WRONG:
                wrong.append(f"{path.name}:{line} {name} ({model}): inferred {ours}, torch {shape}")
            if verbose and verdict != KNOWN:
                print(f"    {verdict:8} {path.name}:{line} {name} ({model}): inferred {ours}, torch {shape}")
        total += len(rows)
        known += counts[KNOWN]
        print(f"{path.name:40} known {counts[KNOWN]:3}  unknown {counts[UNKNOWN]:3}  wrong {counts[WRONG]}")
    return total, known, wrong


# -- the test ------------------------------------------------------------------------------------------
@pytest.mark.torch
def test_inferred_shapes_are_known_and_never_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        total, known, wrong = _table(truth.model_files(), verbose=False)
    finally:
        torch.set_num_threads(threads)
    assert total >= 300, total
    assert wrong == [], "\n".join(wrong)
    assert known / total >= 0.90, (
        f"{known}/{total} = {known / total:.1%} of the tensor assignments have a shape"
    )


@pytest.mark.parametrize(
    "ours,measured,verdict",
    [
        (("tensor", [4, 10], True), (4, 10), KNOWN),
        (("tensor", [4, None], True), (4, 10), UNKNOWN),
        (("tensor", [None, 10], False), (4, 10), UNKNOWN),
        (("tensor", [4, 11], True), (4, 10), WRONG),
        (("tensor", [4, 10, 1], True), (4, 10), WRONG),
        (("tensor", [11], False), (4, 10), WRONG),
        (("tensor", [4, 10], True), [(4, 10), (4, 20)], UNKNOWN),
        (("tensor", [4, 30], True), [(4, 10), (4, 20)], WRONG),
        (("tuple", [("tensor", [2, 3], True), ("tensor", [3], True)]), ((2, 3), (3,)), KNOWN),
        (("tuple", [("tensor", [2, 3], True)]), ((2, 3), (3,)), WRONG),
        (None, (4, 10), UNKNOWN),
    ],
)
def test_judge(ours: Any, measured: Any, verdict: str) -> None:
    assert judge(ours, measured) == verdict


def test_judge_contexts() -> None:
    a, b = ("tensor", [4, 10], True), ("tensor", [4, 20], True)
    assert judge_contexts([a, b], [(4, 10), (4, 20)]) == KNOWN
    assert judge_contexts([a], [(4, 10), (4, 20)]) == UNKNOWN  # a context the engine did not see
    assert judge_contexts([a, ("tensor", [4, 30], True)], [(4, 10), (4, 20)]) == WRONG
    assert judge_contexts([a, a], (4, 10)) == KNOWN
    assert judge_contexts([], (4, 10)) == UNKNOWN


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    names = [a for a in argv if not a.startswith("-")]
    paths = [HERE / n for n in names] if names else truth.model_files()
    total, known, wrong = _table(paths, verbose)
    print(f"{known}/{total} = {known / max(total, 1):.1%} known, {len(wrong)} wrong")
    for line in wrong:
        print("WRONG", line)
    return 0


if __name__ == "__main__":
    functools.partial(main, sys.argv[1:])()
