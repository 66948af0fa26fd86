"""Snapshots of every rule's INVALID examples, the way ruff snapshots its diagnostics: the range,
severity, message, detail and every fix offered (title and applicability) of each finding, so that a
change to any of them shows up in review as a diff of `tests/snapshots/rule_examples.txt`.

After an intended change, rewrite the snapshot and read its diff:

    GRADGUARD_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest -q tests/test_rule_snapshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

from gradguard.engine.analyzer import Analyzer
from gradguard.engine.config import Config
from gradguard.engine.rule import all_rules

SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "rule_examples.txt"


def render(code: str, index: int, text: str) -> str:
    """One example's findings of its own rule, one block per finding."""
    findings = [f for f in Analyzer(Config(select=(code,))).check(text).findings if f.code == code]
    lines = [f"== {code}-{index}: {len(findings)} finding(s)"]
    for f in findings:
        lines.append(f"{f.line}:{f.column}-{f.end_line}:{f.end_column} {f.severity.value} {f.message}")
        if f.detail:
            lines.extend(f"  | {part}" for part in f.detail.splitlines())
        for fix in [f.fix, *f.alternatives]:
            if fix is not None:
                lines.append(f"  fix ({fix.applicability.value}): {fix.title}")
    return "\n".join(lines)


def snapshot_text() -> str:
    blocks = [
        render(code, index, example.code)
        for code, rule in sorted(all_rules().items())
        for index, example in enumerate(rule.INVALID)
    ]
    return "\n\n".join(blocks) + "\n"


def test_rule_examples_match_their_snapshot():
    current = snapshot_text()
    if os.environ.get("GRADGUARD_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current, encoding="utf-8")
    recorded = SNAPSHOT.read_text(encoding="utf-8")
    if current != recorded:
        # the first block that differs, so the failure says which rule changed
        for old, new in zip(recorded.split("\n\n"), current.split("\n\n"), strict=False):
            if old != new:
                raise AssertionError(f"snapshot differs:\n--- recorded\n{old}\n+++ now\n{new}")
        raise AssertionError("snapshot differs in the number of examples (rules added or removed)")


def test_the_snapshot_notices_a_changed_message(monkeypatch):
    """The comparison is not vacuous: a rule whose message changes no longer matches."""
    code, rule = next(iter(sorted(all_rules().items())))
    monkeypatch.setattr(rule, "message", "a different message")
    changed = render(code, 0, rule.INVALID[0].code)
    recorded = SNAPSHOT.read_text(encoding="utf-8").split("\n\n")
    assert changed not in recorded
