"""The optional compiled engine: modules built by `scripts/build-native` (mypyc) into `build/native/`.

`install()` runs when `gradguard.engine` is first imported. It puts the compiled modules in front of the
sources only when every compiled module was built from exactly the source file that is on disk now (a
SHA-256 per file, recorded at build time in `build/native/manifest.json`), for this Python and this
platform. Anything else (no build, a stale build after an edit, another interpreter, a manifest that
does not read, `GRADGUARD_NATIVE=0`) leaves the pure-Python engine, which always works, in place. It is
all or nothing: compiled modules call each other directly, so a mix of compiled and edited sources is
never loaded.

Nothing here imports another engine module, so the check runs before any of them is imported.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path

MANIFEST_FORMAT = 1
ENGINE_DIR = Path(__file__).resolve().parent
# <repo>/server/gradguard/engine -> <repo>/build/native (absent in an installed copy: pure Python)
NATIVE_DIR = ENGINE_DIR.parents[2] / "build" / "native"
ENV = "GRADGUARD_NATIVE"  # "0" forces the pure-Python engine

# why the compiled engine is or is not in use (shown by `gradguard --version`-style diagnostics and tests)
status = "not installed yet"


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def platform_tag() -> str:
    return f"{sys.implementation.cache_tag}-{importlib.machinery.EXTENSION_SUFFIXES[0]}"


def _fresh_modules(native_dir: Path, engine_dir: Path) -> tuple[dict[str, Path] | None, str]:
    """{module name: extension file} when the build in `native_dir` matches the sources, else the reason."""
    try:
        manifest = json.loads((native_dir / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "not built (scripts/build-native)"
    except (OSError, ValueError) as exc:
        return None, f"unreadable manifest: {exc}"
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("platform") != platform_tag():
        return None, "built for another Python or platform"
    found: dict[str, Path] = {}
    for name, entry in manifest.get("modules", {}).items():
        source = engine_dir / (name.rsplit(".", 1)[-1] + ".py")
        try:
            if source_hash(source) != entry["sha256"]:
                return None, f"stale: {source.name} changed since the build"
        except OSError:
            return None, f"stale: {source.name} is gone"
        found[name] = native_dir / entry["file"]
    for name, file in manifest.get("support", {}).items():  # mypyc's shared runtime library
        found[name] = native_dir / file
    if not found or not all(path.is_file() for path in found.values()):
        return None, "incomplete build"
    return found, "in use"


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, modules: dict[str, Path]) -> None:
        self.modules = modules

    def find_spec(self, fullname, path=None, target=None):
        file = self.modules.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def install(native_dir: Path = NATIVE_DIR, engine_dir: Path = ENGINE_DIR) -> bool:
    """Use the compiled modules if they are fresh; True when they will be used."""
    global status
    if os.environ.get(ENV, "1") == "0":
        status = f"off ({ENV}=0)"
        return False
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return True
    modules, status = _fresh_modules(native_dir, engine_dir)
    return modules is not None and _load(modules)


def _load(modules: dict[str, Path]) -> bool:
    global status
    finder = _Finder(modules)
    before = set(sys.modules)
    sys.meta_path.insert(0, finder)
    try:  # a build that does not load (or fails at import) must not take the engine down
        for name in modules:
            importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any failure means: run the sources
        sys.meta_path.remove(finder)
        for name in set(sys.modules) - before:  # also the sources that bound compiled names
            del sys.modules[name]
        status = f"failed to load: {exc.__class__.__name__}: {exc}"
        return False
    status = "in use"
    return True


def active() -> bool:
    """Whether the engine modules now loaded are the compiled ones."""
    analyzer = sys.modules.get("gradguard.engine.analyzer")
    return analyzer is not None and str(getattr(analyzer, "__file__", "")).endswith(
        tuple(importlib.machinery.EXTENSION_SUFFIXES)
    )
