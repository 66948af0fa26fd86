"""The import layers of `server/gradguard`, read from every `import` statement (function-level ones
included), so that the layering stays:

* the engine imports nothing above it (no rule, probe, language-server, CLI or output module);
* a rule imports only the engine and the rules' private helper modules (`gradguard.rules._*`),
  never another rule;
* output renders the engine's findings and imports only the engine;
* the probe imports the engine (and output, proctree), never a rule, the language server or the CLI;
* the language server imports the engine and the probe, never a rule module or the CLI;
* the CLI's result cache (`gradguard.cache`) imports only the engine;
* the CLI imports the engine, the probe, output and the cache, and of the language server only its entry
  point (`gradguard.lsp.server.start`);
* no module imports a private (`_`-prefixed) name from another layer.

The rules and the probe's code metadata reach the engine's catalog by module name
(`gradguard.engine.catalog`), not by an import.

`KNOWN` lists the imports that break these and are left for now (each with why); the test also
fails when one of them has gone, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parent.parent / "server"

KNOWN: set[tuple[str, str, str]] = set()

# what each layer may import, besides itself and the package root (`gradguard.__version__`)
ALLOWED = {
    "engine": set(),
    "rules": {"engine"},
    "output": {"engine"},
    "probe": {"engine", "output", "proctree"},
    "lsp": {"engine", "probe", "output", "proctree"},
    "cli": {"engine", "probe", "output", "proctree", "docs", "cache"},
    "cache": {"engine"},
    "docs": {"engine"},
    "proctree": set(),
    "__main__": {"cli"},
}
# single names one layer may import from another it otherwise may not
ENTRY_POINTS = {("cli", "gradguard.lsp.server", "start")}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "root"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str, module: str, is_package: bool) -> list[tuple[str, str]]:
    """(imported module, imported name or "") for every gradguard import in `source`."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "gradguard"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "gradguard":
                found += [(target, alias.name) for alias in node.names]
    return found


def violations(modules: dict[str, tuple[str, bool]]) -> set[tuple[str, str, str]]:
    """(importer, imported module, name) of every import that breaks the layers."""
    bad = set()
    for module, (source, is_package) in modules.items():
        mine = layer(module)
        for target, name in imports(source, module, is_package):
            # `from gradguard import lsp` imports a layer, `from gradguard import __version__` a name
            theirs = layer(f"{target}.{name}" if target == "gradguard" and name in ALLOWED else target)
            if theirs == "root" or (mine, target, name) in ENTRY_POINTS:
                continue
            if theirs == mine:
                if mine == "rules" and _another_rule(module, target, name):
                    bad.add((module, target, name))
                continue
            if theirs not in ALLOWED.get(mine, set()) or name.startswith("_"):
                bad.add((module, target, name))
    return bad


def _another_rule(module: str, target: str, name: str) -> bool:
    """A rule module importing another rule module (the package and `_` helpers are fine)."""
    imported = f"{target}.{name}" if target == "gradguard.rules" else target
    last = imported.rpartition(".")[2]
    return imported != module and imported.startswith("gradguard.rules.") and not last.startswith("_")


def _tree(root: Path) -> dict[str, tuple[str, bool]]:
    return {
        module_name(path, root): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for path in sorted((root / "gradguard").rglob("*.py"))
    }


def test_layers_hold():
    bad = violations(_tree(SERVER))
    new = sorted(bad - KNOWN)
    assert not new, "imports across the layers (see this test's docstring):\n" + "\n".join(
        f"  {module} imports {target}{'.' + name if name else ''}" for module, target, name in new
    )
    gone = sorted(KNOWN - bad)
    assert not gone, f"no longer imported: take these out of KNOWN: {gone}"


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("gradguard.engine.x", "from gradguard.rules import gg202_masked_assignment", True),
        ("gradguard.engine.x", "def f():\n    from gradguard.lsp.server import start", True),
        ("gradguard.engine.x", "from ..probe.metadata import CODES", True),
        ("gradguard.engine.x", "from gradguard.engine.source import SourceFile", False),
        ("gradguard.engine.x", "from gradguard import __version__", False),
        ("gradguard.rules.gg1", "from gradguard.rules.gg2 import helper", True),
        ("gradguard.rules.gg1", "from gradguard.rules import gg2", True),
        ("gradguard.rules.gg1", "from gradguard.rules._shared import helper", False),
        ("gradguard.rules.gg1", "from gradguard.engine.rule import Rule", False),
        ("gradguard.lsp.x", "from gradguard.rules.gg202_masked_assignment import MaskedAssignment", True),
        ("gradguard.lsp.x", "import gradguard.cli", True),
        ("gradguard.lsp.x", "from gradguard.probe.targets import _probe_comments", True),
        ("gradguard.lsp.x", "from gradguard.engine.catalog import rule_class", False),
        ("gradguard.cli", "from gradguard.lsp.server import start", False),
        ("gradguard.cli", "from gradguard.lsp.documents import content_of", True),
    ],
)
def test_the_check_sees_a_violation(module, source, expected):
    assert bool(violations({module: (source, False)})) is expected
