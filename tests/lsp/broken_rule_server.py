"""Starts the language server with one extra rule that always crashes (for the tests)."""

from gradguard.engine import rule as rule_module
from gradguard.engine.rule import Rule


class AlwaysCrashes(Rule):
    code = "GG999"
    name = "always-crashes"
    summary = "A rule with a bug, to check that the others keep working."
    message = "never shown"
    explanation = "Used only by tests/lsp/test_robustness.py."

    def check(self, unit):
        raise RuntimeError("this rule is broken on purpose")


def main() -> None:
    rule_module.all_rules()["GG999"] = AlwaysCrashes
    from gradguard.lsp.server import start

    start("info")
