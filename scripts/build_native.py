"""Compile the engine's hot modules with mypyc into build/native/ (optional; see scripts/build-native).

The sources are never changed: they are copied to a temporary directory, adapted there for mypyc, compiled,
and the extension modules plus a manifest (a SHA-256 of each ORIGINAL source) are written to build/native/.
`gradguard.engine._native` loads them only while every recorded hash still matches the file on disk, so an
edited source falls back to pure Python until the next build.

Adaptations made to the copy (the engine is written for CPython, not for mypyc):
  * a class that uses its instance `__dict__`, is weak-referenced, is subclassed outside the compiled
    modules, or subclasses a builtin stays a regular Python class (`@mypyc_attr(native_class=False)`);
    its methods are still compiled;
  * a line mypy reports an error on gets `# type: ignore` (mypyc refuses to compile otherwise).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "server" / "gradguard" / "engine"
OUT = ROOT / "build" / "native"

# Engine modules not compiled: rule.py (the Rule base class every rule subclasses, and a str subclass),
# catalog.py (reads classes' __module__), data tables and cold paths where compiling buys nothing.
SKIP = {"__init__", "_native", "rule", "catalog", "torch_facts_data", "notebook", "config", "files"}
# classes subclassed or weak-referenced from code that is not compiled
NON_NATIVE = {"Analyzer", "ModuleContext", "Unit", "Semantics"}
_BUILTIN_BASES = {"str", "int", "float", "tuple", "list", "dict", "set", "frozenset", "bytes"}


def compiled_modules(engine: Path = ENGINE) -> list[Path]:
    return sorted(p for p in engine.glob("*.py") if p.stem not in SKIP)


def _needs_python_class(node: ast.ClassDef) -> bool:
    if node.name in NON_NATIVE:
        return True
    if any(isinstance(b, ast.Name) and b.id in _BUILTIN_BASES for b in node.bases):
        return True
    # a method alias in the class body (`__radd__ = __add__`): mypyc's native classes mishandle it
    if any(isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Name) for stmt in node.body):
        return True
    return any(isinstance(n, ast.Attribute) and n.attr == "__dict__" for n in ast.walk(node))


def adapt_method_aliases(text: str) -> str:
    """`__radd__ = __add__` in a class body fails in compiled code (the class namespace has no `__add__`
    yet): it becomes a one-line method that calls the other."""
    tree = ast.parse(text)
    lines = text.split("\n")
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        methods = {f.name for f in cls.body if isinstance(f, ast.FunctionDef) and not f.decorator_list}
        for stmt in cls.body:
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.Name)
                and stmt.value.id in methods
                and stmt.lineno == stmt.end_lineno
            ):
                name, target = stmt.targets[0].id, stmt.value.id
                lines[stmt.lineno - 1] = (
                    f"{' ' * stmt.col_offset}def {name}(self, *args, **kwargs): return self.{target}(*args, **kwargs)"
                )
    return "\n".join(lines)


def untype_functions(text: str, error_lines: set[int]) -> str:
    """Drop the annotations of each function holding a mypy error: mypyc then treats its values as
    `Any` (no runtime type checks that the pure-Python engine does not make). The header is rewritten
    on as many lines as it had, so line numbers stay."""
    tree = ast.parse(text)
    lines = text.split("\n")
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    done: set[int] = set()
    for line in sorted(error_lines):
        holders = [f for f in functions if f.lineno <= line <= (f.end_lineno or f.lineno)]
        if not holders:
            continue
        func = max(holders, key=lambda f: f.lineno)  # the innermost
        if func.lineno in done:
            continue
        done.add(func.lineno)
        first, last = func.lineno, func.body[0].lineno - 1
        while last > first and not lines[last - 1].rstrip().endswith(":"):
            last -= 1
        for arg in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]:
            arg.annotation = None
        for arg in (func.args.vararg, func.args.kwarg):
            if arg is not None:
                arg.annotation = None
        func.returns = None
        keyword = "async def" if isinstance(func, ast.AsyncFunctionDef) else "def"
        header = f"{' ' * func.col_offset}{keyword} {func.name}({ast.unparse(func.args)}):"
        lines[first - 1 : last] = [header] + [""] * (last - first)
    return "\n".join(lines)


def adapt_classes(text: str) -> str:
    tree = ast.parse(text)
    lines = text.split("\n")
    starts = sorted(
        (min([node.lineno] + [d.lineno for d in node.decorator_list]), node.col_offset)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and _needs_python_class(node)
    )
    for line, col in reversed(starts):
        lines.insert(line - 1, " " * col + "@_mypyc_attr(native_class=False)")
    text = "\n".join(lines)
    if starts:
        text = re.sub(
            r"^from __future__ import annotations\n",
            "from __future__ import annotations\nfrom mypy_extensions import mypyc_attr as _mypyc_attr\n",
            text,
            count=1,
            flags=re.M,
        )
    return text


def adapt_value_copy(text: str) -> str:
    """values.py builds `_copy` with exec from `Value.__slots__`; compiled, it is a plain function."""
    match = re.search(r"^def _make_copy\(\):\n.*?^_copy = _make_copy\(\)\n", text, re.M | re.S)
    if match is None:
        return text
    tree = ast.parse(text)
    slots: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Value":
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", None) == "__slots__":
                    slots = list(ast.literal_eval(stmt.value))
    if not slots:
        return text
    body = "".join(f"    new.{slot} = self.{slot}\n" for slot in slots)
    code = f"def _copy(self: Value) -> Value:\n    new = Value.__new__(Value)\n{body}    return new\n"
    return text[: match.start()] + code + text[match.end() :]


def _mypy_errors(work: Path, files: list[Path]) -> dict[str, set[int]]:
    argv = [sys.executable, "-m", "mypy", "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}"]
    argv += ["--no-incremental", "--follow-imports", "silent", *map(str, files)]
    proc = subprocess.run(argv, cwd=work, capture_output=True, text=True, check=False)
    errors: dict[str, set[int]] = {}
    for match in re.finditer(r"^(.+?\.py):(\d+): error:", proc.stdout, re.M):
        errors.setdefault(match[1], set()).add(int(match[2]))
    return errors


def ignore_type_errors(work: Path, files: list[Path]) -> int:
    """Functions with a mypy error lose their annotations; what mypy still reports is silenced."""
    untyped = _mypy_errors(work, files)
    for name, numbers in untyped.items():
        path = work / name
        path.write_text(untype_functions(path.read_text(encoding="utf-8"), numbers), encoding="utf-8")
    errors = _mypy_errors(work, files)
    for name, numbers in errors.items():
        path = work / name
        lines = path.read_text(encoding="utf-8").split("\n")
        for number in numbers:
            if lines[number - 1].rstrip().endswith("\\"):
                raise SystemExit(f"cannot silence a mypy error on a continued line: {name}:{number}")
            if "type: ignore" not in lines[number - 1]:
                lines[number - 1] += "  # type: ignore"
        path.write_text("\n".join(lines), encoding="utf-8")
    return sum(len(n) for n in untyped.values())


SETUP = """
from setuptools import setup
from mypyc.build import mypycify
setup(name="gradguard_native", ext_modules=mypycify({files!r}, opt_level={opt!r}, multi_file={multi!r}))
"""


def build(out: Path = OUT, opt: str = "2", keep: bool = False) -> int:
    sys.path.insert(0, str(ENGINE))
    import _native  # the loader's own hash and platform functions, so both sides agree

    files = compiled_modules()
    work = Path(tempfile.mkdtemp(prefix="gradguard-native-"))
    try:
        shutil.copytree(
            ROOT / "server" / "gradguard", work / "gradguard", ignore=shutil.ignore_patterns("__pycache__")
        )
        relative = [Path("gradguard/engine") / p.name for p in files]
        for rel in relative:
            path = work / rel
            path.write_text(
                adapt_method_aliases(adapt_value_copy(adapt_classes(path.read_text(encoding="utf-8")))),
                encoding="utf-8",
            )
        silenced = ignore_type_errors(work, relative)
        print(f"compiling {len(files)} modules ({silenced} mypy errors silenced in the copy)", flush=True)
        (work / "setup.py").write_text(
            SETUP.format(
                files=["--disable-error-code=annotation-unchecked", *map(str, relative)], opt=opt, multi=False
            )
        )
        env = dict(os.environ, PYTHONPATH=str(work))
        proc = subprocess.run(
            [sys.executable, "setup.py", "build_ext", "--inplace"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            errors = [
                line for line in proc.stdout.splitlines() if "error" in line.lower() and ": note:" not in line
            ]
            print("\n".join(errors or proc.stdout.splitlines()[-30:]) + proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit("mypyc failed; gradguard keeps running the pure-Python engine")
        if out.exists():
            shutil.rmtree(out)
        (out / "gradguard" / "engine").mkdir(parents=True)
        manifest: dict = {"format": _native.MANIFEST_FORMAT, "platform": _native.platform_tag()}
        manifest["modules"] = {}
        suffix = _native.importlib.machinery.EXTENSION_SUFFIXES[0]
        for source in files:
            built = work / "gradguard" / "engine" / (source.stem + suffix)
            target = Path("gradguard") / "engine" / built.name
            shutil.copy2(built, out / target)
            manifest["modules"][f"gradguard.engine.{source.stem}"] = {
                "file": str(target),
                "sha256": _native.source_hash(source),
            }
        manifest["support"] = {}
        for shared in work.glob(f"*__mypyc{suffix}"):  # the group's runtime library
            shutil.copy2(shared, out / shared.name)
            manifest["support"][shared.name[: -len(suffix)]] = shared.name
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        print(f"built {len(files)} modules into {out}")
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--opt", default="2", help="C optimisation level (mypyc's opt_level)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary build directory")
    parser.add_argument("--clean", action="store_true", help="remove the build (pure Python from then on)")
    args = parser.parse_args(argv)
    if args.clean:
        shutil.rmtree(args.out, ignore_errors=True)
        return 0
    return build(args.out, args.opt, args.keep)


if __name__ == "__main__":
    sys.exit(main())
