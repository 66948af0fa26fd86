"""What a finding says, and how loudly: a short `message` for the Problems panel with the rest in
`detail` (carried by every output), a one- or two-sentence `why` per rule for the hover, and the
severity policy (error where PyTorch raises, warning where training silently goes wrong,
information for style)."""

from __future__ import annotations

import ast
import json

import pytest
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.config import Config
from gradguard.engine.finding import Severity
from gradguard.engine.rule import Rule, all_rules, iter_rule_metadata, split_message
from gradguard.output.render import render
from gradguard.probe.metadata import PROBE_CODES
from rule_examples import invalid_cases

MAX_MESSAGE = 100


class PrintsGradients(Rule):
    """A test rule whose findings have a detail."""

    code = "GG998"
    name = "prints-gradients"
    summary = "Test rule."
    message = "Printing a gradient"
    explanation = "Only for tests/test_messages.py."

    def check(self, unit):
        for node in unit.nodes_of(ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "print":
                yield self.finding(
                    unit,
                    node,
                    message="`print` of a gradient",
                    detail="The gradient is printed every step, which slows training down.",
                )


@pytest.fixture
def detail_findings(monkeypatch):
    monkeypatch.setitem(all_rules(), PrintsGradients.code, PrintsGradients)
    result = Analyzer(Config(select=(PrintsGradients.code,))).check(
        "import torch\nprint(torch.ones(1))\n", "demo.py"
    )
    assert [(f.code, f.line) for f in result.findings] == [("GG998", 2)]
    return result.findings


def test_rule_finding_carries_the_detail(detail_findings):
    (finding,) = detail_findings
    assert finding.message == "`print` of a gradient"
    assert finding.detail == "The gradient is printed every step, which slows training down."
    assert finding.shifted(3).detail == finding.detail


def test_text_output_shows_message_then_detail(detail_findings):
    out = render(detail_findings, "text").splitlines()
    assert out[0] == "demo.py:2:1: GG998 `print` of a gradient"
    assert out[1] == "    The gradient is printed every step, which slows training down."


def test_json_sarif_and_github_carry_both(detail_findings):
    (item,) = json.loads(render(detail_findings, "json"))
    assert item["message"] == "`print` of a gradient"
    assert item["detail"] == "The gradient is printed every step, which slows training down."
    sarif = json.loads(render(detail_findings, "sarif"))
    (result,) = sarif["runs"][0]["results"]
    assert result["message"]["text"] == (
        "`print` of a gradient. The gradient is printed every step, which slows training down."
    )
    github = render(detail_findings, "github")
    assert "::GG998 `print` of a gradient. The gradient is printed every step" in github


def test_detail_is_optional():
    example = all_rules()["GG202"].INVALID[0]
    findings = Analyzer(Config(select=("GG202",))).check(example.code).findings
    assert findings and all(isinstance(f.detail, str) for f in findings)
    items = json.loads(render(findings, "json"))
    assert all("detail" in item for item in items)


@pytest.mark.parametrize("rule,example", list(invalid_cases()))
def test_messages_fit_the_problems_panel(rule, example):
    findings = [
        f for f in Analyzer(Config(select=(rule.code,))).check(example.code).findings if f.code == rule.code
    ]
    long = [f.message for f in findings if len(f.message) > MAX_MESSAGE]
    assert not long, (
        f"{rule.code}: messages over {MAX_MESSAGE} characters (move the rest to `detail`): {long}"
    )


@pytest.mark.parametrize(
    "rule", list(iter_rule_metadata()) + list(PROBE_CODES.values()), ids=lambda r: r.code
)
def test_every_rule_has_a_short_why(rule):
    why = rule.short_why()
    assert rule.why, f"{rule.code} has no `why` for the hover"
    assert 40 <= len(why) <= 300, (rule.code, len(why))
    sentences = [s for s in why.replace("...", "").split(". ") if s.strip()]
    assert len(sentences) <= 2, (rule.code, why)


# Rules whose examples all raise but which also fire where PyTorch stays silent.
SILENT_BEYOND_THE_EXAMPLES = {
    "GG305": "when other terms of the loss are tracked, the copied term is dropped silently",
    "GG206": "memory grows silently when nothing deep-copies the model or backpropagates through the buffer",
}


@pytest.mark.parametrize("code", sorted(all_rules()))
def test_severity_policy(code):
    """error where PyTorch raises (every INVALID example states `raises=`, and
    tests/test_rule_runtime.py sees it raise with torch 2.13); warning where training silently
    goes wrong; information/hint for code that only wastes (style)."""
    rule = all_rules()[code]
    raising = [bool(example.raises) for example in rule.INVALID]
    if rule.severity is Severity.ERROR:
        assert all(raising), f"{code} is an error but some of its examples do not raise"
    elif all(raising):
        assert code in SILENT_BEYOND_THE_EXAMPLES, f"{code}: every example raises, so it should be an error"
    if rule.severity in (Severity.INFORMATION, Severity.HINT):
        assert not any(raising), f"{code} raises but is only {rule.severity.value}"


def test_severities_of_the_in_place_family_agree():
    # the example: GG202, GG203 and GG204 all make backward raise
    assert {all_rules()[c].severity for c in ("GG201", "GG202", "GG203", "GG204")} == {Severity.ERROR}


def test_split_message_at_the_first_line_break_outside_code():
    assert split_message("Short\nThe rest, on\n  two lines.") == ("Short", "The rest, on two lines.")
    # code quoted in a message may span lines: its line breaks do not split, and come out as spaces
    assert split_message("`opt.zero_grad(\n    set_to_none=True)` clears\nDetail.") == (
        "`opt.zero_grad( set_to_none=True)` clears",
        "Detail.",
    )
    assert split_message("No detail") == ("No detail", "")


def test_long_messages_keep_the_rest_as_detail_in_the_cli():
    example = all_rules()["GG402"].INVALID[0]
    findings = Analyzer(Config(select=("GG402",))).check(example.code, "train.py").findings
    assert findings and all(len(f.message) <= MAX_MESSAGE and f.detail for f in findings)
    first, second = render(findings, "text").splitlines()[:2]
    assert first.startswith("train.py:") and findings[0].message in first
    assert second == f"    {findings[0].detail}"
    assert "call it before `backward()`" in second
