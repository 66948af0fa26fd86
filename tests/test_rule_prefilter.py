"""The analyzer's per-unit pre-check (`Rule.needs_class`, `Rule.triggers`, `Rule.may_fire`).

A rule is skipped on a top-level def/class when its cheap pre-check says it cannot fire there,
and a unit on which no rule can fire is not even indexed. Skipping must never lose a finding.
"""

import ast

import gradguard.engine.analyzer as analyzer_module
import pytest
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.config import Config
from gradguard.engine.index import ModuleContext, split_units, statement_start_line
from gradguard.engine.rule import Rule, all_rules
from gradguard.engine.source import SourceFile
from gradguard.rules.gg204_inplace_on_saved_output import _INPLACE_TEXT
from gradguard.rules.gg304_requires_grad_typo import TYPOS

RULES = all_rules()


class NoPrefilter(Analyzer):
    """Runs every rule on every unit (the behaviour without the pre-check)."""

    def applicable_rules(self, statement, text, module):
        return list(self._rules)


def _examples():
    for code, cls in RULES.items():
        for i, example in enumerate(cls.INVALID):
            yield pytest.param(code, example.code, id=f"{code}-invalid-{i}")
            if example.fixed is not None:
                yield pytest.param(code, example.fixed, id=f"{code}-fixed-{i}")
        for i, example in enumerate(cls.VALID):
            yield pytest.param(code, example.code, id=f"{code}-valid-{i}")


def _keys(findings):
    return sorted((f.code, f.line, f.column, f.end_line, f.end_column, f.message) for f in findings)


def _units(text):
    tree = ast.parse(text)
    source = SourceFile(text)
    module = ModuleContext(tree, source)
    for start, end, statements in split_units(tree):
        if start:
            yield statements[0], source.text_between(start, 1, end + 1, 1), module


@pytest.mark.parametrize(("code", "text"), list(_examples()))
def test_prefilter_loses_no_finding_on_the_rule_examples(code, text):
    assert _keys(Analyzer().check(text).findings) == _keys(NoPrefilter().check(text).findings)


@pytest.mark.parametrize("code", sorted(RULES))
def test_every_invalid_example_passes_its_rules_precheck(code):
    cls = RULES[code]
    analyzer = Analyzer(Config(select=(code,)))
    for example in cls.INVALID:
        if cls.triggers:
            assert any(t in example.code for t in cls.triggers), (code, example.code)
        flagged_lines = set(example.lines)
        for statement, text, module in _units(example.code):
            start, end = statement_start_line(statement), statement.end_lineno or statement.lineno
            if any(start <= line <= end for line in flagged_lines):
                assert [r.code for r in analyzer.applicable_rules(statement, text, module)] == [code], text


def test_a_rule_without_a_precheck_runs_everywhere():
    assert Rule.needs_class is None and Rule.triggers == ()
    analyzer = Analyzer()
    statement, text, module = next(_units("import torch\n\n\ndef f():\n    return 1\n"))
    applicable = analyzer.applicable_rules(statement, text, module)
    expected = [
        r
        for r in analyzer.rules
        if r.needs_class is None and not r.triggers and type(r).may_fire is Rule.may_fire
    ]
    assert all(r in applicable for r in expected)


def test_prefiltered_rule_fires_when_its_trigger_is_present():
    body = "import torch\n\n\n@register_model\ndef make():\n    w = torch.zeros(3, {kw}=True)\n    return w\n"
    flagged = Analyzer().check(body.format(kw="require_grad")).findings
    assert [f.code for f in flagged] == ["GG304"]
    assert flagged[0].line == 6
    statement, text, module = next(_units(body.format(kw="require_grad")))
    assert "GG304" in [r.code for r in Analyzer().applicable_rules(statement, text, module)]
    statement, text, module = next(_units(body.format(kw="requires_grad")))
    assert "GG304" not in [r.code for r in Analyzer().applicable_rules(statement, text, module)]


def test_units_no_rule_can_fire_on_are_not_indexed(monkeypatch):
    built = []
    real_unit = analyzer_module.Unit

    def counting_unit(statements, *args, **kwargs):
        built.append(getattr(statements[0], "name", "<script>"))
        return real_unit(statements, *args, **kwargs)

    monkeypatch.setattr(analyzer_module, "Unit", counting_unit)
    text = (
        "import torch\n\n\n"
        "@register_model\n"
        "def vit_tiny(pretrained=False, **kwargs):\n"
        '    """ViT-Tiny @ 224x224."""\n'
        "    return dict(patch_size=16, act_layer='gelu_tanh', **kwargs)\n\n\n"
        "@register_model\n"
        "def mixer(a, b):\n"
        '    """Mixes @ once."""\n'
        "    return a @ b\n"
    )
    analyzer = Analyzer()
    analyzer.check(text)
    assert built == [
        "<script>",
        "mixer",
    ]  # the matmul needs GG502; `vit_tiny` has only a decorator/docstring `@`
    built.clear()
    analyzer.check(text)  # both served from the cache
    assert built == []


@pytest.mark.parametrize(
    ("source", "applies"),
    [
        ('@deco\ndef f(a, b):\n    """x @ y"""\n    return a + b\n', False),
        ('@deco\ndef f(a, b):\n    """x @ y"""; return a @ b\n', True),  # code after the docstring
        ('@deco\ndef f(a, b): """x @ y"""; return a @ b\n', True),  # code before it
        ("@deco\ndef f(a, b):\n    return (a\n            @ b)\n", True),
        ("@deco\ndef f(a, b):\n    # y = a @ b\n    return a + b\n", True),  # a comment: conservative
        ("@deco\n@other\ndef f(a, b):\n    return torch.mm(a, b)\n", True),
    ],
)
def test_gg502_counts_only_matmul_candidates(source, applies):
    statement, text, module = next(_units("import torch\n" + source))
    rules = [r.code for r in Analyzer(Config(select=("GG502",))).applicable_rules(statement, text, module)]
    assert rules == (["GG502"] if applies else [])


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("x.add_(1)", True),
        ("x += 1", True),
        ("x[0] = 1", True),
        ("x[x < 0] = 0", True),
        ("x.clamp_ (min=0)", True),
        ("y = x + 1", False),
        ("x[0] == 1", False),
    ],
)
def test_gg204_inplace_text(text, found):
    # GG204 reports in-place writes; its pre-check must see every form the analysis reports
    assert (_INPLACE_TEXT.search(text) is not None) is found


def test_trigger_lists_cover_what_the_rules_look_for():
    # GG304 reports the names in TYPOS; its trigger must occur in each
    assert all(any(t in typo for t in RULES["GG304"].triggers) for typo in TYPOS)
