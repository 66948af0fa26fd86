"""Starts the language server for the tests with one extra rule that always crashes and a
test command that adds extra findings the way the probe does."""

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
    import threading

    from gradguard.engine.finding import Finding, Severity
    from gradguard.lsp.server import server, start

    @server.command("test.addExtraFindings")
    def add_extra(ls, *args):
        uri, from_thread = args[0], bool(args[1]) if len(args) > 1 else False
        finding = Finding(
            code="GG901",
            name="probe-no-grad",
            severity=Severity.WARNING,
            message="no gradient reached fc.weight",
            line=4,
            column=5,
            end_line=4,
            end_column=20,
            source="gradguard-probe",
        )
        if from_thread:
            worker = threading.Thread(target=ls.set_extra_findings, args=(uri, "probe", [finding]))
            worker.start()
            worker.join()
        else:
            ls.set_extra_findings(uri, "probe", [finding])
        return True

    start("info")
