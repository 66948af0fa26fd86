"""Generate the rule documentation from the rules themselves.

`python -m gradguard.docs` rewrites docs/rules.md and the rules table in README.md
(between the `<!-- rules:start -->` / `<!-- rules:end -->` markers). A test checks that
both are current, so the rule classes stay the single source of truth.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gradguard.engine.catalog import iter_all_metadata

START, END = "<!-- rules:start -->", "<!-- rules:end -->"


def rules_table() -> str:
    rows = ["| code | name | what it catches | fix |", "|---|---|---|---|"]
    for rule in iter_all_metadata():
        fix = getattr(rule.fix_applicability, "value", None) or "—"
        anchor = f"docs/rules.md#{rule.code.lower()}-{rule.name}"
        rows.append(f"| [{rule.code}]({anchor}) | {rule.name} | {rule.summary.strip()} | {fix} |")
    return "\n".join(rows) + "\n"


def rules_markdown() -> str:
    parts = [
        "# gradguard rules",
        "",
        "Generated from the rule classes by `python -m gradguard.docs`; do not edit by hand.",
        "",
    ]
    for rule in iter_all_metadata():
        # full_explanation starts with "## CODE name", whose anchor is "code-name"
        parts.append(rule.full_explanation())
    return "\n".join(parts).rstrip() + "\n"


def readme_with_table(readme: str) -> str:
    if START not in readme or END not in readme:
        raise ValueError("README.md has no rules table markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{rules_table()}{END}{tail}"


def main(root: Path) -> int:
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "rules.md").write_text(rules_markdown(), encoding="utf-8")
    readme = root / "README.md"
    readme.write_text(readme_with_table(readme.read_text(encoding="utf-8")), encoding="utf-8")
    print("wrote docs/rules.md and the README rules table")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()))
