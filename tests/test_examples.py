"""The bundled gallery of buggy programs covers every rule, and every example file
is real Python that imports torch (the gallery is what `scripts/setup` lints)."""

import ast
from pathlib import Path

from gradguard.engine.analyzer import Analyzer
from gradguard.engine.files import collect_files
from gradguard.engine.rule import all_rules

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def gallery_findings():
    analyzer = Analyzer()
    findings = []
    for path in collect_files([str(EXAMPLES)]).files:
        if "probe" in path.parts:  # probe targets are for `gradguard probe`, not the static gallery
            continue
        text = path.read_text(encoding="utf-8")
        ast.parse(text)
        assert "import torch" in text, f"{path.name} should be a real PyTorch program"
        findings += analyzer.check(text, str(path)).findings
    return findings


def test_gallery_covers_every_rule():
    found = {f.code for f in gallery_findings()}
    missing = sorted(set(all_rules()) - found)
    assert not missing, f"no example in examples/ triggers {missing}"


def test_gallery_has_no_syntax_errors():
    assert not [f for f in gallery_findings() if f.code == "GG000"]
