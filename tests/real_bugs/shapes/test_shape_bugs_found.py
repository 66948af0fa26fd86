"""gradguard finds the shape bugs of this folder on the line their header names (no torch needed).

Each file's `# expect: GG501@23` header says which rule should report where; test_shape_bugs.py runs the
files with torch to prove they fail that way. At least 15 of the 21 must be found (the issue's bar), and
the ones found today must stay found.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
if str(ROOT / "server") not in sys.path:
    sys.path.insert(0, str(ROOT / "server"))

from gradguard.engine.analyzer import Analyzer
from gradguard.engine.config import Config

FILES = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("test_"))


def expected(path: Path) -> tuple[str, int]:
    match = re.search(r"^# expect: (GG\d{3})@(\d+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, path.name
    return match.group(1), int(match.group(2))


def found(path: Path) -> bool:
    code, line = expected(path)
    result = Analyzer(Config()).check(path.read_text(encoding="utf-8"), str(path))
    assert not result.errors, result.errors
    return any(f.code == code and f.line <= line <= f.end_line for f in result.findings)


def test_at_least_15_shape_bugs_are_reported_on_their_line() -> None:
    hits = [p.name for p in FILES if found(p)]
    misses = [p.name for p in FILES if p.name not in hits]
    assert len(hits) >= 15, f"found {len(hits)}/{len(FILES)}; missed {misses}"
    assert len(hits) == len(FILES), f"missed {misses}"  # all 21 today: a miss is a regression
