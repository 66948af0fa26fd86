"""The engine's side of issue 15: what the command line and the language server both rely on."""

import ast
import sys

from gradguard.engine import rule as rule_module
from gradguard.engine.analyzer import Analyzer, _script_spans, internal_error_finding, syntax_error_finding
from gradguard.engine.config import Config, ConfigError
from gradguard.engine.source import SourceFile

BUGGY = """\
import torch
import torch.nn as nn


class Rectifier(nn.Module):
    def forward(self, x):
        x = torch.tanh(x)  # saves its output for backward
        x[x < 0] = 0
        return x * 2
"""


class Broken(rule_module.Rule):
    code = "GG999"
    name = "always-crashes"
    summary = "test"
    message = "never"
    explanation = "test"

    def check(self, unit):
        raise RecursionError("maximum recursion depth exceeded")


def test_a_rule_that_raises_costs_only_its_own_findings(monkeypatch):
    monkeypatch.setitem(rule_module.all_rules(), "GG999", Broken)
    result = Analyzer().check(BUGGY, "m.py")
    assert "GG202" in [f.code for f in result.findings]  # what the server publishes
    assert {e.code for e in result.errors} == {"GG999"}
    error = next(e for e in result.errors if e.line == 5)
    assert error.cause == "RecursionError: maximum recursion depth exceeded"
    assert "Traceback" in error.traceback
    finding = internal_error_finding(error, SourceFile(BUGGY, "m.py"))
    assert (finding.code, finding.name, finding.line) == ("GG001", "internal-error", 5)
    assert "GG999 (always-crashes)" in finding.message and "RecursionError" in finding.message


def test_script_key_is_linear_in_statements_per_line():
    line = "".join(f"a{i}=1;" for i in range(20_000))
    tree = ast.parse(line)
    spans = _script_spans(tree.body, SourceFile(line))
    assert sum(len(text) for _, _, text in spans) == len(line)  # one copy, not one per statement


def test_syntax_error_messages_are_never_empty():
    source = SourceFile("x = " + "-" * 100_000 + "1\n")
    for exc in (MemoryError(), RecursionError("maximum recursion depth exceeded during ast construction")):
        message = syntax_error_finding(exc, source, "x.py").message
        assert "nested too deeply" in message and f"Python {sys.version_info[0]}." in message


def test_newer_syntax_is_called_a_version_mismatch():
    text = "type Vector = list[float]\n"
    try:
        ast.parse(text)
    except SyntaxError as exc:
        message = syntax_error_finding(exc, SourceFile(text), "x.py").message
        assert "version mismatch" in message and "Python 3.12" in message
    # a plain syntax error is not blamed on the version
    try:
        ast.parse("def f(:\n")
    except SyntaxError as exc:
        assert "version mismatch" not in syntax_error_finding(exc, SourceFile("def f(:\n"), "x.py").message


def test_ignore_all_and_wrong_types():
    assert not Config(ignore=("ALL",)).enabled("GG202")
    assert Config(select=("GG202",), ignore=("ALL",)).enabled("GG202")
    for table in ({"exclude": 5}, [{"select": ["GG2"]}], {"severity": 5}, {"select": [5]}):
        try:
            Config.from_table(table, "pyproject.toml")
        except ConfigError as exc:
            assert "pyproject.toml" in str(exc)
        else:
            raise AssertionError(f"accepted {table!r}")
