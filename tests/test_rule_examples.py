"""Every rule's own examples are its tests: VALID stays silent, INVALID is flagged on
the stated lines, and the fixes produce exactly the stated code, which parses."""

import ast

import pytest

from gradguard.engine.analyzer import Analyzer
from gradguard.engine.config import Config
from gradguard.engine.rule import all_rules
from rule_examples import invalid_cases, valid_cases


def analyzer_for(rule):
    return Analyzer(Config(select=(rule.code,)))


def test_catalog_is_complete():
    rules = all_rules()
    assert rules, "no rules discovered"
    for code, rule in rules.items():
        assert code.startswith("GG") and len(code) == 5
        assert rule.name and rule.summary and rule.message and rule.explanation.strip()
        assert rule.VALID, f"{code} has no VALID examples"
        assert rule.INVALID, f"{code} has no INVALID examples"
    names = [r.name for r in rules.values()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule,example", list(valid_cases()))
def test_valid_is_silent(rule, example):
    findings = [f for f in analyzer_for(rule).check(example.code).findings if f.code == rule.code]
    assert findings == [], f"{rule.code} flagged valid code ({example.note}): {findings}"


@pytest.mark.parametrize("rule,example", list(invalid_cases()))
def test_invalid_is_flagged(rule, example):
    findings = [f for f in analyzer_for(rule).check(example.code).findings if f.code == rule.code]
    assert [f.line for f in findings] == example.lines, findings
    for finding in findings:
        assert finding.name == rule.name
        assert finding.message
        assert (finding.line, finding.column) < (finding.end_line, finding.end_column)


@pytest.mark.parametrize("rule,example", list(invalid_cases()))
def test_fix_produces_expected_code(rule, example):
    analyzer = analyzer_for(rule)
    fixed, applied = analyzer.fix(example.code, unsafe=True)
    if example.fixed is None:
        assert applied == 0, f"{rule.code} fixed code its example says has no fix:\n{fixed}"
        return
    assert applied >= 1
    ast.parse(fixed)
    assert fixed == example.fixed
    # the fix removes the finding
    assert [f for f in analyzer.check(fixed).findings if f.code == rule.code] == []


@pytest.mark.parametrize("rule,example", list(invalid_cases()))
def test_fix_applicability_matches_rule(rule, example):
    # A rule declares the best applicability its fixes can have; a particular fix may
    # be downgraded to unsafe (e.g. removing a method that other code calls), never upgraded.
    for finding in analyzer_for(rule).check(example.code).findings:
        if finding.fix is not None:
            assert rule.fix_applicability is not None
            if rule.fix_applicability.value == "unsafe":
                assert finding.fix.applicability == rule.fix_applicability
