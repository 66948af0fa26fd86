"""Shapes measured by torch for every assignment in the `forward` of each model in this directory.

Each model file is code from a public source (named in its first lines) and declares the model to build and
its input with the probe's comment syntax (see `gradguard/probe/targets.py`):

    # gradguard: probe Net() input=(4, 1, 28, 28)                  one float32 tensor of that shape
    # gradguard: probe GPT(GPTConfig(n_layer=2)) input=long(4, 16, high=50)       an int64 tensor
    # gradguard: probe RNNModel("LSTM", 50, 32, 32, 2) input=[long(35, 4), (torch.zeros(2, 4, 32), torch.zeros(2, 4, 32))]

Inputs are a shape tuple, `long(*shape, high=N)`, a list of those for several inputs, or any Python
expression evaluated in the file's namespace (built on the meta device). A file may declare several
models (one comment each, naming the class).

`measure(path)` runs each declared model's forward on the meta device with every assignment statement in
`forward` -- and in the methods forward calls on `self`, and in the `forward` of every other module class
of the file (sub-modules) -- instrumented, and returns `{(file, line, name): shape}`:

- file is the file name (`mnist.py`), line the statement's first line, name the target (`x`, `self.h`;
  each name of a tuple target: `out, (h, c) = ...` gives `out`, `h` and `c`);
- shape is a tuple of ints for a tensor, a tuple of those (None for non-tensor items) for a tuple/list of
  tensors, and a list of the distinct values when the statement ran several times with different shapes
  (a loop); assignments that bind no tensor are not recorded.

`truth()` does this for every model file. Run `python tests/shape_models/truth.py [files...] [--json]` to
print the table.
"""

from __future__ import annotations

import ast
import json
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT / "server") not in sys.path:
    sys.path.insert(0, str(ROOT / "server"))

from gradguard.probe.targets import find_targets

Key = tuple[str, int, str]
RECORDER = "__gg_record__"


@dataclass
class Model:
    path: Path
    cls: str
    ctor: str
    inputs: list[dict]
    line: int


@dataclass
class Measurement:
    shapes: dict[Key, Any] = field(default_factory=dict)
    non_tensor: set[Key] = field(default_factory=set)  # assignments that ran and bound no tensor
    statements: set[tuple[str, int]] = field(default_factory=set)  # every instrumented assignment
    executed: set[tuple[str, int]] = field(default_factory=set)


def model_files() -> list[Path]:
    return sorted(
        p
        for p in HERE.glob("*.py")
        if p.name not in ("truth.py", "conftest.py", "__init__.py") and not p.name.startswith("test_")
    )


def declared_models(path: Path) -> list[Model]:
    """The models a file declares with `# gradguard: probe ...` comments."""
    text = path.read_text(encoding="utf-8")
    found = []
    for target in find_targets(text, str(path)).targets:
        if target.kind != "module" or not target.input_origin.startswith("probe comment"):
            continue
        ctor = next((c for c in target.ctors if c["origin"].startswith("probe comment")), None)
        text_ctor = ctor["text"] if ctor is not None else f"{target.name}()"
        line = int(target.input_origin.rsplit(" ", 1)[-1])
        found.append(Model(path, target.name, text_ctor, target.inputs or [], line))
    return sorted(found, key=lambda m: m.line)


# -- instrumenting ---------------------------------------------------------------------------------------
def _target_exprs(target: ast.expr) -> list[tuple[str, ast.expr]]:
    """(name, expression to read it back) for each name an assignment target binds."""
    if isinstance(target, ast.Name):
        return [(target.id, ast.Name(target.id, ast.Load()))]
    if isinstance(target, ast.Attribute):
        text = ast.unparse(target)
        return [(text, ast.parse(text, mode="eval").body)]
    if isinstance(target, (ast.Tuple, ast.List)):
        out = []
        for elt in target.elts:
            out.extend(_target_exprs(elt))
        return out
    if isinstance(target, ast.Starred):
        return _target_exprs(target.value)
    return []  # subscripts: a write into an existing tensor


class _Instrument:
    """Insert `__gg_record__(line, names, lambda: values)` after each assignment in the chosen functions."""

    def __init__(self, functions: set[int], statements: set[int]) -> None:
        self.functions = functions  # ids of the FunctionDef nodes to instrument
        self.statements = statements  # out: lines of the instrumented assignments

    def module(self, tree: ast.Module) -> ast.Module:
        tree.body = self._block(tree.body, active=False)
        return tree

    def _block(self, body: list[ast.stmt], active: bool) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                stmt.body = self._block(stmt.body, id(stmt) in self.functions)
                out.append(stmt)
                continue
            if isinstance(stmt, ast.ClassDef):
                stmt.body = self._block(stmt.body, active=False)
                out.append(stmt)
                continue
            for name in ("body", "orelse", "finalbody"):
                block = getattr(stmt, name, None)
                if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                    setattr(stmt, name, self._block(block, active))
            if isinstance(stmt, ast.Try):
                for handler in stmt.handlers:
                    handler.body = self._block(handler.body, active)
            if isinstance(stmt, ast.Match):
                for case in stmt.cases:
                    case.body = self._block(case.body, active)
            out.append(stmt)
            if active and isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                record = self._record(stmt)
                if record is not None:
                    out.append(record)
        return out

    def _record(self, stmt: ast.Assign | ast.AnnAssign | ast.AugAssign) -> ast.stmt | None:
        if isinstance(stmt, ast.AnnAssign) and stmt.value is None:
            return None
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        names: list[tuple[str, ast.expr]] = []
        for t in targets:
            names.extend(_target_exprs(t))
        if not names:
            return None
        self.statements.add(stmt.lineno)
        call = ast.Expr(
            ast.Call(
                ast.Name(RECORDER, ast.Load()),
                [
                    ast.Constant(stmt.lineno),
                    ast.Tuple([ast.Constant(n) for n, _ in names], ast.Load()),
                    ast.Lambda(
                        ast.arguments([], [], None, [], [], None, []),
                        ast.Tuple([e for _, e in names], ast.Load()),
                    ),
                ],
                [],
            )
        )
        return ast.fix_missing_locations(ast.copy_location(call, stmt))


def _functions_to_instrument(tree: ast.Module) -> set[int]:
    """`forward` of every class, and the methods a forward calls on self (transitively)."""
    chosen: set[int] = set()
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    by_name = {c.name: c for c in classes}
    for cls in classes:
        methods = _methods(cls, by_name)
        todo = [methods["forward"]] if "forward" in methods else []
        while todo:
            fn = todo.pop()
            if id(fn) in chosen:
                continue
            chosen.add(id(fn))
            me = fn.args.args[0].arg if fn.args.args else "self"
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == me
                    and node.func.attr in methods
                ):
                    todo.append(methods[node.func.attr])
    return chosen


def _methods(cls: ast.ClassDef, by_name: dict[str, ast.ClassDef]) -> dict[str, ast.FunctionDef]:
    found: dict[str, ast.FunctionDef] = {}
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in by_name and by_name[base.id] is not cls:
            found.update(_methods(by_name[base.id], by_name))
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef):
            found[stmt.name] = stmt
    return found


def _observe(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        items = [_observe(v) for v in value]
        if any(i is not None for i in items):
            return tuple(items)
    return None


def _load(path: Path, measurement: Measurement) -> tuple[dict, list[tuple[Key, Any]]]:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    lines: set[int] = set()
    tree = _Instrument(_functions_to_instrument(tree), lines).module(tree)
    measurement.statements |= {(path.name, line) for line in lines}
    observations: list[tuple[Key, Any]] = []

    def record(line: int, names: tuple[str, ...], read: Any) -> None:
        measurement.executed.add((path.name, line))
        values = read()
        for name, value in zip(names, values):
            seen = _observe(value)
            key = (path.name, line, name)
            if seen is None:
                measurement.non_tensor.add(key)
            else:
                observations.append((key, seen))

    module = types.ModuleType(f"gg_shape_model_{path.stem}")
    module.__file__ = str(path)
    namespace = module.__dict__
    namespace[RECORDER] = record
    sys.modules[module.__name__] = module  # dataclasses look their module up
    try:
        exec(compile(tree, str(path), "exec"), namespace)
    finally:
        sys.modules.pop(module.__name__, None)
    return namespace, observations


def _build_input(spec: dict, namespace: dict) -> Any:
    import torch

    kind = spec["kind"]
    if kind == "shape":
        return torch.empty(*spec["shape"], device="meta")
    if kind == "long":
        return torch.zeros(*spec["shape"], dtype=torch.long, device="meta")
    if kind == "value":
        return spec["value"]
    with torch.device("meta"):
        return eval(spec["expr"], namespace)


def measure(path: Path, models: Iterable[Model] | None = None) -> Measurement:
    """Run the declared models of one file on the meta device; see the module docstring."""
    import torch

    measurement = Measurement()
    namespace, observations = _load(path, measurement)
    for model in declared_models(path) if models is None else models:
        with torch.device("meta"):
            module = eval(model.ctor, namespace)
        inputs = [_build_input(spec, namespace) for spec in model.inputs]
        with torch.device("meta"):  # tensors forward creates (torch.zeros(...)) are meta tensors too
            module(*inputs)
    grouped: dict[Key, list[Any]] = {}
    for key, seen in observations:
        values = grouped.setdefault(key, [])
        if seen not in values:
            values.append(seen)
    for key, values in grouped.items():
        measurement.shapes[key] = values[0] if len(values) == 1 else values
        measurement.non_tensor.discard(key)
    return measurement


def truth(paths: Iterable[Path] | None = None) -> dict[Key, Any]:
    """`{(file, line, name): shape}` for every model file (or the given ones)."""
    table: dict[Key, Any] = {}
    for path in paths if paths is not None else model_files():
        table.update(measure(Path(path)).shapes)
    return table


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    files = [Path(a) for a in args if a != "--json"] or model_files()
    table = truth(files)
    if as_json:
        print(json.dumps([[f, line, name, shape] for (f, line, name), shape in sorted(table.items())]))
        return 0
    for (f, line, name), shape in sorted(table.items()):
        print(f"{f}:{line:<5} {name:<24} {_fmt(shape)}")
    print(f"{len(table)} assignments in {len({k[0] for k in table})} files")
    return 0


def _fmt(shape: Any) -> str:
    if isinstance(shape, list):
        return " | ".join(_fmt(s) for s in shape)
    if shape is None:
        return "-"
    if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
        return "[" + ", ".join(str(d) for d in shape) + "]"
    return "(" + ", ".join(_fmt(s) for s in shape) + ")"


if __name__ == "__main__":
    sys.exit(main())
