"""Engine behaviour independent of any particular rule's logic."""

import ast

import pytest

from gradguard.engine.analyzer import Analyzer, apply_fixes
from gradguard.engine.config import Config
from gradguard.engine.finding import Applicability, Fix, TextEdit
from gradguard.engine.index import ModuleContext, Unit, split_units
from gradguard.engine.rule import Rule
from gradguard.engine.source import SourceFile, apply_edits, char_column_from_utf16, split_lines, utf16_column

MODULE = """\
import torch
import torch.nn as nn


class Rectifier(nn.Module):
    def forward(self, x):
        x[x < 0] = 0
        return x
"""


def gg202(text):
    return [f for f in Analyzer(Config(select=("GG202",))).check(text).findings]


def test_columns_are_code_points_not_bytes():
    text = MODULE.replace("    def forward(self, x):\n", "    def forward(self, x):\n        é = 'ü'\n")
    text = text.replace("        x[x < 0] = 0", "        x[x < 0] = 0; label = 'naïve'")
    (finding,) = gg202(text)
    assert (finding.line, finding.column, finding.end_column) == (8, 9, 21)
    text = text.replace("        x[x < 0] = 0;", "        é; x[x < 0] = 0;")
    (finding,) = gg202(text)
    assert (finding.column, finding.end_column) == (12, 24)  # 'é' is one column, two bytes


def test_utf16_conversion():
    line = "a😀b"
    assert utf16_column(line, 2) == 3
    assert char_column_from_utf16(line, 3) == 2
    assert char_column_from_utf16(line, 99) == 3


def test_line_splitting_matches_the_parser():
    text = "import torch\r\nx = 1\x0c\ny = 2\rz = 3"
    assert split_lines(text) == ["import torch\r\n", "x = 1\x0c\n", "y = 2\r", "z = 3"]
    tree = ast.parse(text)
    assert [n.lineno for n in tree.body] == [1, 2, 3, 4]


def test_crlf_fix_keeps_line_endings():
    text = MODULE.replace("\n", "\r\n")
    fixed, applied = Analyzer().fix(text, unsafe=True)  # rebinding forward's input: an unsafe fix
    assert applied == 1
    assert "        x = torch.relu(x)\r\n" in fixed
    assert "\n" not in fixed.replace("\r\n", "")


def test_findings_are_shifted_when_an_earlier_unit_changes():
    analyzer = Analyzer(Config(select=("GG202",)))
    first = analyzer.check(MODULE).findings
    assert [f.line for f in first] == [7]
    grown = MODULE.replace(
        "import torch.nn as nn\n", "import torch.nn as nn\n\n\ndef helper():\n    return 1\n"
    )
    second = analyzer.check(grown).findings
    assert [f.line for f in second] == [11]
    assert analyzer.check(MODULE).findings[0].line == 7


def test_cache_does_not_leak_between_import_styles():
    analyzer = Analyzer(Config(select=("GG202",)))
    assert len(analyzer.check(MODULE).findings) == 1
    no_torch = MODULE.replace("import torch\nimport torch.nn as nn\n", "import numpy as nn\n")
    assert analyzer.check(no_torch).findings == []


def test_syntax_error_is_one_finding_with_position():
    result = Analyzer().check("import torch\n\ndef f(x:\n    return x\n")
    assert [f.code for f in result.findings] == ["GG000"]
    assert result.findings[0].line == 3
    assert result.tree is None


@pytest.mark.parametrize("junk", ["\x00\x01", "def" * 10000, "(" * 5000, "x = " + "-" * 100000 + "1"])
def test_hostile_input_never_raises(junk):
    result = Analyzer().check("import torch\n" + junk)
    assert all(f.code == "GG000" for f in result.findings)


class _Exploding(Rule):
    code = "GG998"
    name = "exploding"
    summary = message = explanation = "test rule"

    def check(self, unit):
        raise RuntimeError("boom")


def test_a_crashing_rule_does_not_hide_the_others():
    analyzer = Analyzer(Config(select=("GG202",)))
    analyzer._rules.append(_Exploding())
    result = analyzer.check(MODULE)
    assert [f.code for f in result.findings] == ["GG202"]
    assert result.errors and {e.code for e in result.errors} == {"GG998"}
    assert "boom" in result.errors[0].traceback


def test_overlapping_fixes_are_applied_in_later_passes():
    text = "abcdef\n"
    first = Fix("one", Applicability.SAFE, [TextEdit(1, 1, 1, 4, "XYZ")])
    second = Fix("two", Applicability.SAFE, [TextEdit(1, 3, 1, 6, "Q")])
    new, applied = apply_fixes(text, [first, second])
    assert (new, applied) == ("XYZdef\n", 1)


def test_fix_batch_that_breaks_syntax_is_not_applied():
    text = "x = 1\n"
    breaking = Fix("bad", Applicability.SAFE, [TextEdit(1, 1, 1, 2, "(")])
    assert apply_fixes(text, [breaking]) == (text, 0)


def test_apply_edits_rejects_overlap():
    with pytest.raises(ValueError):
        apply_edits("abc", [TextEdit(1, 1, 1, 3, "x"), TextEdit(1, 2, 1, 4, "y")])


def test_noqa_on_last_line_of_a_multiline_statement():
    text = MODULE.replace(
        "        x[x < 0] = 0\n", "        x[\n            x < 0\n        ] = 0  # noqa: GG202\n"
    )
    assert gg202(text) == []


@pytest.mark.parametrize(
    "imports,base",
    [
        ("import torch.nn as nn", "nn.Module"),
        ("from torch import nn", "nn.Module"),
        ("from torch.nn import Module", "Module"),
        ("import torch", "torch.nn.Module"),
        ("import torch as th", "th.nn.Module"),
    ],
)
def test_module_classes_are_recognised_however_torch_is_imported(imports, base):
    text = f"import torch\n{imports}\n\nclass Net({base}):\n    def forward(self, x):\n        return x\n\nclass Sub(Net):\n    pass\n"
    tree = ast.parse(text)
    source = SourceFile(text)
    module = ModuleContext(tree, source)
    assert module.is_module_class("Net") and module.is_module_class("Sub")


def test_no_grad_regions():
    text = (
        "import torch\n"
        "@torch.no_grad()\n"
        "def a(p):\n    p.add_(1)\n"
        "def b(p):\n    with torch.no_grad():\n        p.add_(1)\n    p.add_(1)\n"
        "def c(p):\n    with torch.set_grad_enabled(False):\n        p.add_(1)\n"
        "def d(p):\n    with torch.inference_mode(False):\n        p.add_(1)\n"
    )
    tree = ast.parse(text)
    source = SourceFile(text)
    module = ModuleContext(tree, source)
    answers = []
    for _, _, statements in split_units(tree):
        unit = Unit(statements, source, module)
        answers += [(c.lineno, unit.in_no_grad(c)) for c in unit.method_calls("add_")]
    assert answers == [(4, True), (7, True), (8, False), (11, True), (14, False)]


def test_masked_write_into_saved_output_is_reported_once():
    text = (
        "import torch\nimport torch.nn as nn\n\n"
        "class Gate(nn.Module):\n"
        "    def forward(self, x):\n"
        "        g = torch.sigmoid(x)\n"
        "        g[g < 0.5] = 0\n"
        "        return g\n"
    )
    findings = Analyzer().check(text).findings
    assert [(f.code, f.line) for f in findings] == [("GG202", 7)]


def test_writes_into_saved_outputs_that_gg202_does_not_cover_are_gg204():
    # a bare-name index is not a mask GG202 recognises (GG204 reports it); a masked write into
    # a saved output is GG202's, in forward and in a training loop alike
    in_forward = (
        "import torch\nimport torch.nn as nn\n\n"
        "class Gate(nn.Module):\n"
        "    def forward(self, x, mask):\n"
        "        g = torch.sigmoid(x)\n"
        "        g[mask] = 0\n"
        "        return g\n"
    )
    in_loop = (
        "import torch\n\n"
        "model = torch.nn.Linear(4, 4)\n"
        "for step in range(3):\n"
        "    y = torch.sigmoid(model(torch.randn(2, 4)))\n"
        "    y[y < 0.5] = 0\n"
        "    y.sum().backward()\n"
    )
    assert [(f.code, f.line) for f in Analyzer().check(in_forward).findings] == [("GG204", 7)]
    assert [(f.code, f.line) for f in Analyzer().check(in_loop).findings] == [("GG202", 6)]
