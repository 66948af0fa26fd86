"""The optional compiled engine (scripts/build-native): used only when built from the current sources,
and then it finds exactly what the pure-Python engine finds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gradguard.engine import _native

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "server" / "gradguard" / "engine"


def _fake_build(tmp_path: Path, engine: Path) -> Path:
    """A native dir whose manifest records `engine`'s analyzer.py and values.py as they are now."""
    native = tmp_path / "native"
    (native / "gradguard" / "engine").mkdir(parents=True)
    suffix = _native.importlib.machinery.EXTENSION_SUFFIXES[0]
    modules = {}
    for stem in ("analyzer", "values"):
        file = Path("gradguard") / "engine" / (stem + suffix)
        (native / file).write_bytes(b"")
        modules[f"gradguard.engine.{stem}"] = {
            "file": str(file),
            "sha256": _native.source_hash(engine / f"{stem}.py"),
        }
    (native / ("abc__mypyc" + suffix)).write_bytes(b"")
    manifest = {
        "format": _native.MANIFEST_FORMAT,
        "platform": _native.platform_tag(),
        "modules": modules,
        "support": {"abc__mypyc": "abc__mypyc" + suffix},
    }
    (native / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return native


def test_a_fresh_build_is_used_and_an_edited_source_falls_back(tmp_path):
    engine = tmp_path / "engine"
    engine.mkdir()
    for stem in ("analyzer", "values"):
        shutil.copy(ENGINE / f"{stem}.py", engine / f"{stem}.py")
    native = _fake_build(tmp_path, engine)

    modules, why = _native._fresh_modules(native, engine)
    assert why == "in use"
    assert modules is not None and set(modules) == {
        "gradguard.engine.analyzer",
        "gradguard.engine.values",
        "abc__mypyc",
    }

    # one character changed in one source: nothing compiled is used, not even the unchanged module
    text = (engine / "values.py").read_text(encoding="utf-8")
    (engine / "values.py").write_text(text + "\n", encoding="utf-8")
    modules, why = _native._fresh_modules(native, engine)
    assert modules is None
    assert why == "stale: values.py changed since the build"

    (engine / "values.py").write_text(text, encoding="utf-8")
    assert _native._fresh_modules(native, engine)[0] is not None
    (engine / "values.py").unlink()
    assert _native._fresh_modules(native, engine) == (None, "stale: values.py is gone")


def test_a_build_for_another_python_or_an_incomplete_one_is_not_used(tmp_path):
    native = _fake_build(tmp_path, ENGINE)
    manifest = json.loads((native / "manifest.json").read_text(encoding="utf-8"))
    (native / manifest["support"]["abc__mypyc"]).unlink()
    assert _native._fresh_modules(native, ENGINE) == (None, "incomplete build")

    manifest["platform"] = "cpython-39-other.so"
    (native / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert _native._fresh_modules(native, ENGINE) == (None, "built for another Python or platform")
    assert _native._fresh_modules(tmp_path / "nothing", ENGINE) == (None, "not built (scripts/build-native)")


def test_the_switch_turns_it_off(tmp_path, monkeypatch):
    monkeypatch.setenv(_native.ENV, "0")
    before = list(sys.meta_path)
    assert _native.install(_fake_build(tmp_path, ENGINE), ENGINE) is False
    assert sys.meta_path == before


_DUMP = r"""
import json, sys
from gradguard.engine import _native
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.rule import all_rules

texts = [e.code for rule in all_rules().values() for e in (*rule.VALID, *rule.INVALID)]
texts += [open(p, encoding="utf-8").read() for p in sys.argv[1:]]
out = []
for index, text in enumerate(texts):
    result = Analyzer().check(text, f"example_{index}.py")
    out.append([[f.code, f.line, f.column, f.end_line, f.end_column, f.message, f.detail, repr(f.fix),
                 repr(f.alternatives)] for f in result.findings])
    out.append([e.code for e in result.errors])
print(json.dumps({"active": _native.active(), "status": _native.status, "findings": out}))
"""


def _dump(native: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "server"), GRADGUARD_NATIVE=native)
    cases = sorted(str(p) for p in (ROOT / "tests" / "real_bugs").glob("*.py") if p.name != "cases.py")
    proc = subprocess.run(
        [sys.executable, "-c", _DUMP, *cases],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=500,
    )
    return json.loads(proc.stdout)


def test_the_compiled_engine_finds_what_the_sources_find():
    modules, why = _native._fresh_modules(_native.NATIVE_DIR, _native.ENGINE_DIR)
    if modules is None:
        pytest.skip(f"compiled engine not usable: {why}")
    compiled = _dump("1")
    assert compiled["active"], compiled["status"]
    pure = _dump("0")
    assert not pure["active"]
    assert sum(len(f) for f in pure["findings"][::2]) > 100  # the examples do produce findings
    assert compiled["findings"] == pure["findings"]


def test_a_build_that_fails_to_load_leaves_the_sources_in_charge(tmp_path):
    # every hash matches, but the "extension modules" are empty files: importing them fails
    native = _fake_build(tmp_path, ENGINE)
    script = f"""
import importlib.util, sys
from pathlib import Path
# the loader on its own, before gradguard.engine is imported (the package itself runs the sources here)
spec = importlib.util.spec_from_file_location("loader", {str(ENGINE / "_native.py")!r})
_native = importlib.util.module_from_spec(spec)
spec.loader.exec_module(_native)
modules, why = _native._fresh_modules(Path({str(native)!r}), _native.ENGINE_DIR)
assert why == "in use", why
assert _native._load(modules) is False
print(_native.status)
from gradguard.engine.analyzer import Analyzer
import gradguard.engine.values as values
assert values.__file__.endswith(".py"), values.__file__
text = "import torch\\nx = torch.zeros(3, requires_grad=True)\\nx.add_(1)\\n"
print([f.code for f in Analyzer().check(text, "a.py").findings])
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "server"), GRADGUARD_NATIVE="0")
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    status, codes = proc.stdout.splitlines()
    assert status.startswith("failed to load: ImportError")
    assert codes == "['GG203']"
