"""The README's rules table and docs/rules.md are generated from the rule classes."""

from pathlib import Path

from gradguard import docs

ROOT = Path(__file__).resolve().parents[1]


def test_rules_doc_is_current():
    assert (ROOT / "docs" / "rules.md").read_text(encoding="utf-8") == docs.rules_markdown(), (
        "docs/rules.md is stale: run `.venv/bin/python -m gradguard.docs`"
    )


def test_readme_table_is_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert docs.readme_with_table(readme) == readme, (
        "README rules table is stale: run `python -m gradguard.docs`"
    )


def test_every_rule_is_documented_with_an_example():
    text = docs.rules_markdown()
    from gradguard.engine.rule import all_rules

    for code, rule in all_rules().items():
        assert f"## {code} {rule.name}" in text
        assert "```python" in rule.full_explanation()
