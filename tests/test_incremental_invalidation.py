"""The analyzer's per-unit cache (what the language server re-checks after an edit) never keeps a
finding that rests on something the edit changed: after each edit, checking with the analyzer
that checked the previous text gives exactly what a fresh analyzer gives, and the finding that
the edit should make appear or disappear does.

Each case is a text and an edit elsewhere than in the unit whose finding changes: a function
called by `__init__`, a base class, a module-level name, lines inserted above (a message that
cites a line number), and `__init__` of the same class."""

from __future__ import annotations

import pytest
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.finding import Fix
from gradguard.engine.incremental import IncrementalParser
from rule_examples import invalid_cases, valid_cases

GATE = """import torch
from torch.nn import Module, Parameter
{above}

class Gate({base}):
    def __init__(self, n):
        super().__init__()
        self.alpha = {init}

    def forward(self, x):
        self.alpha.clamp_(0, 1)
        return self.alpha * x
"""

BASE = """

class Base(Module):
    def __init__(self, n):
        super().__init__()
        self.alpha = Parameter(torch.zeros(n))

    def forward(self, x):
        return x * self.alpha
"""

LEAF = """import torch


def step():
    w = torch.zeros(3, requires_grad=True)
    w.add_(1)
    return w
"""

# name -> (text, old, new, finding before the edit, finding after it) as (code, line, words of its message)
CASES = {
    # `__init__` calls a function of the file: the attribute is what that function returns
    "callee of __init__ edited": (
        GATE.format(
            above="\n\ndef make(n):\n    return Parameter(torch.zeros(n))\n",
            base="Module",
            init="make(n)",
        ),
        "return Parameter(torch.zeros(n))",
        "return torch.zeros(n)",
        ("GG201", 15, "on parameter `self.alpha`"),
        None,
    ),
    # the subclass's attributes come from the base class's `__init__` (another unit)
    "base class __init__ edited": (
        GATE.format(above=BASE, base="Base", init="self.alpha").replace(
            "        self.alpha = self.alpha\n", ""
        ),
        "self.alpha = Parameter(torch.zeros(n))",
        "self.register_buffer('alpha', torch.zeros(n))",
        ("GG201", 19, "on parameter `self.alpha`"),
        None,
    ),
    # a module-level name read by `__init__`
    "module-level name edited": (
        GATE.format(above="\nMAKE = Parameter\n", base="Module", init="MAKE(torch.zeros(n))"),
        "MAKE = Parameter",
        "MAKE = torch.as_tensor",
        ("GG201", 13, "on parameter `self.alpha`"),
        None,
    ),
    # `__init__` and `forward` of one class
    "__init__ edited": (
        GATE.format(above="", base="Module", init="Parameter(torch.zeros(n))"),
        "self.alpha = Parameter(torch.zeros(n))",
        "self.register_buffer('alpha', torch.zeros(n))",
        ("GG201", 11, "on parameter `self.alpha`"),
        None,
    ),
    # a probe comment lies outside every statement, yet gives the class its input shapes
    "probe comment added above a class": (
        "import torch.nn as nn\n\n# gradguard: probe Net() input=(4, 20)\nclass Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(20, 5)\n\n"
        "    def forward(self, x):\n        return self.fc(x)\n",
        "input=(4, 20)",
        "input=(4, 30)",
        None,
        ("GG501", 10, "expects 20 input features but gets an input of shape [4, 30]"),
    ),
    # GG103 is silent on a list the class only takes the `len()` of (a placeholder); a function
    # elsewhere in the file that reads its items makes it a list of parameters in use
    "another unit starts reading a placeholder list": (
        "import torch\nimport torch.nn as nn\n\n\nclass GAN(nn.Module):\n    def __init__(self, shapes):\n"
        "        super().__init__()\n        self.inputs = [nn.Parameter(torch.empty(s)) for s in shapes]\n"
        "        self.names = ['input_%d' % i for i in range(len(self.inputs))]\n"
        "        self.fc = nn.Linear(3, 1)\n\n    def forward(self, x):\n        return self.fc(x).mean()\n"
        "\n\ndef use(m):\n    return sum(p.sum() for p in m.other)\n",
        "m.other",
        "m.inputs",
        None,
        ("GG103", 8, "self.inputs"),
    ),
    # the unit moves: its finding moves, and so does the line its message cites
    "lines inserted above a finding that cites a line": (
        LEAF,
        "import torch\n",
        "import torch\n\n\n",
        ("GG203", 6, "requires grad (line 5)"),
        ("GG203", 8, "requires grad (line 7)"),
    ),
}


def summary(findings) -> list[tuple[int, str, int, str]]:
    return sorted((f.line, f.code, f.column, f.message) for f in findings)


def has(findings, expected) -> bool:
    code, line, words = expected
    return any(f.code == code and f.line == line and words in f.message for f in findings)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("direction", ["edit", "undo"])
def test_an_edit_elsewhere_invalidates_the_findings_that_rest_on_it(name: str, direction: str) -> None:
    text, old, new, before, after = CASES[name]
    edited = text.replace(old, new, 1)
    assert edited != text
    first, second = (text, edited) if direction == "edit" else (edited, text)
    expect_first, expect_second = (before, after) if direction == "edit" else (after, before)
    analyzer = Analyzer()
    found = analyzer.check(first, "case.py").findings
    if expect_first is not None:
        assert has(found, expect_first), summary(found)
    again = analyzer.check(second, "case.py").findings
    fresh = Analyzer().check(second, "case.py").findings
    assert summary(again) == summary(fresh)
    if expect_second is not None:
        assert has(again, expect_second), summary(again)
    elif expect_first is not None:  # the finding of the first text is gone
        assert not any(f.code == expect_first[0] for f in again), summary(again)


def test_a_unit_checked_after_a_summary_was_built_for_another_still_depends_on_it() -> None:
    """Two subclasses share the base class's summary (built while checking the first): an edit
    of the base class re-checks both."""
    text = (
        GATE.format(above=BASE, base="Base", init="self.alpha").replace(
            "        self.alpha = self.alpha\n", ""
        )
        + "\n\nclass Gate2(Base):\n    def forward(self, x):\n        self.alpha.clamp_(0, 1)\n"
        "        return x\n"
    )
    analyzer = Analyzer()
    lines = sorted(f.line for f in analyzer.check(text, "case.py").findings if f.code == "GG201")
    assert lines == [19, 25]
    edited = text.replace(
        "self.alpha = Parameter(torch.zeros(n))", "self.register_buffer('alpha', torch.zeros(n))"
    )
    assert [f for f in analyzer.check(edited, "case.py").findings if f.code == "GG201"] == []


def _moves(code: str) -> list[str]:
    """Texts a few edits away from `code`: blank lines inserted before each top-level statement
    after the first (the statements below move), and one at the end."""
    lines = code.splitlines(keepends=True)
    tops = [i for i, line in enumerate(lines) if i and line[:1].isalpha()]
    texts = ["".join([*lines[:i], "\n", "\n", *lines[i:]]) for i in tops[:6]]
    texts.append(code + "\n\n# end\n")
    return texts


@pytest.mark.parametrize("rule, example", list(invalid_cases()))
def test_checking_after_lines_moved_gives_what_a_fresh_check_gives(rule, example) -> None:
    """Every rule's INVALID examples: after blank lines are inserted above some of its units (and
    removed again), the analyzer that checked the previous text finds exactly what a fresh one
    finds, messages included (some cite line numbers)."""
    analyzer = Analyzer()
    analyzer.check(example.code, "case.py")
    for text in _moves(example.code):
        for current in (text, example.code):  # the edit, then its undo
            again = analyzer.check(current, "case.py").findings
            assert summary(again) == summary(Analyzer().check(current, "case.py").findings)


def _with_fixes(findings) -> list:
    return sorted(
        (
            f.line,
            f.code,
            f.column,
            f.message,
            [e.to_dict() for e in f.fix.edits] if f.fix else None,
            [[e.to_dict() for e in a.edits] for a in f.alternatives],
        )
        for f in findings
    )


@pytest.mark.parametrize("rule, example", list(invalid_cases()))
def test_fixes_after_lines_moved_are_what_a_fresh_check_offers(rule, example) -> None:
    """Every rule's INVALID examples: a unit that moved keeps its findings from the cache only
    where its fixes move with it; their edits land where a fresh check puts them."""
    import libcst  # noqa: F401  (loaded, so that moved units may keep their cached fixes)

    analyzer = Analyzer()
    first = analyzer.check(example.code, "case.py").findings
    _with_fixes(first)  # the fixes of the cached findings are computed before the move
    for text in _moves(example.code):
        for current in (text, example.code):
            again = analyzer.check(current, "case.py").findings
            assert _with_fixes(again) == _with_fixes(Analyzer().check(current, "case.py").findings)


MOVING_FIX = """import torch


def helper(x):
    return x


def trainable(tensors):
    return [t for t in tensors if t.requiresGrad]
"""


def test_a_unit_whose_fix_stays_inside_it_moves_without_being_checked_again(monkeypatch) -> None:
    import libcst  # noqa: F401  (loaded: computing a cached fix may need it, see _CacheEntry.moves)

    analyzer = Analyzer()
    before = [f for f in analyzer.check(MOVING_FIX, "case.py").findings if f.fix and f.fix.edits]
    assert before, "the example must offer a fix"
    moved = MOVING_FIX.replace("def helper(x):\n", "def helper(x):\n\n\n", 1)
    checked = []
    real = Analyzer._run_rules
    monkeypatch.setattr(
        Analyzer,
        "_run_rules",
        lambda self, unit, *a, **k: checked.append(unit.nodes[0]) or real(self, unit, *a, **k),
    )
    after = analyzer.check(moved, "case.py").findings
    # `trainable` moved, its findings and fix with it: not checked again (no rule looks at `helper`)
    assert checked == []
    assert _with_fixes(after) == _with_fixes(Analyzer().check(moved, "case.py").findings)
    fixed = [f for f in after if f.fix and f.fix.edits]
    assert [f.line for f in fixed] == [f.line + 2 for f in before]
    assert all(e.start_line == f.line for f in fixed for e in f.fix.edits[:1])


CALLERS = """import torch


def activate(t):
    return torch.sigmoid(t)


def run():
    x = torch.randn(3, requires_grad=True)
    y = activate(x)
    y.mul_(2)
    return y
"""


def _value_of_t(result) -> object:
    activate = result.tree.body[1]
    flow = result.semantics.flow(activate)
    return next(value for node, value in flow.values.items() if getattr(node, "id", None) == "t")


def test_call_site_walks_kept_between_checks_are_those_of_the_same_statements() -> None:
    """The analyzer keeps `Semantics`' call-site walks of the statements an incremental parse
    reused; an edited caller is walked again, so a parameter's value follows its new callers."""
    analyzer, parser = Analyzer(), IncrementalParser("case.py")
    edited = CALLERS.replace("activate(x)", "activate(torch.zeros(3))")
    again = CALLERS.replace("activate(x)", "activate(x * 2)")
    for text, requires_grad in [(CALLERS, True), (edited, False), (again, True)]:
        tree = parser.parse(text)
        result = analyzer.check(text, "case.py", tree)
        assert parser.stats.mode in ("full", "incremental")
        assert bool(_value_of_t(result).requires_grad) is requires_grad
        fresh = Analyzer().check(text, "case.py")
        assert bool(_value_of_t(fresh).requires_grad) is requires_grad
        kept = analyzer._name_uses["case.py"]
        assert kept and all(entry[0] in tree.body for entry in kept.values())


def test_a_moved_unit_whose_cached_fix_fails_to_compute_is_checked_again() -> None:
    import libcst  # noqa: F401

    analyzer = Analyzer()
    analyzer.check(MOVING_FIX, "case.py")

    def broken() -> list:
        raise RuntimeError("no fix today")

    for variants in analyzer._cache.values():
        for entry in variants:
            for finding in entry.findings:
                if finding.fix is not None:
                    finding.fix = Fix(finding.fix.title, finding.fix.applicability, broken)
    moved = MOVING_FIX.replace("def helper(x):\n", "def helper(x):\n\n\n", 1)
    after = analyzer.check(moved, "case.py").findings
    assert _with_fixes(after) == _with_fixes(Analyzer().check(moved, "case.py").findings)


def _semantic_edits(code: str) -> list[str]:
    """Texts one semantic edit away from `code`: each top-level statement blanked out (its lines
    kept, so that only what the file says changes, not where), and the last statement of each
    function or class body replaced by `pass`."""
    import ast

    lines = code.splitlines(keepends=True)
    texts = []
    for stmt in ast.parse(code).body:
        decorators = getattr(stmt, "decorator_list", None)
        start = (decorators[0].lineno if decorators else stmt.lineno) - 1
        end = stmt.end_lineno or stmt.lineno
        texts.append("".join([*lines[:start], *["\n"] * (end - start), *lines[end:]]))
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)) and len(stmt.body) > 1:
            last = stmt.body[-1]
            first, stop = last.lineno - 1, last.end_lineno or last.lineno
            indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
            texts.append(
                "".join([*lines[:first], indent + "pass\n", *["\n"] * (stop - first - 1), *lines[stop:]])
            )
    return texts


def _real_files() -> list:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    files = sorted((root / "tests" / "real_bugs").glob("*.py")) + sorted((root / "examples").rglob("*.py"))
    return [pytest.param(p.read_text(encoding="utf-8"), id=str(p.relative_to(root))) for p in files]


def _examples() -> list:
    return [pytest.param(p.values[1].code, id=p.id) for p in [*invalid_cases(), *valid_cases()]]


@pytest.mark.parametrize("code", _examples() + _real_files())
def test_a_cached_recheck_after_a_statement_is_removed_and_restored_is_a_fresh_check(code: str) -> None:
    """What the editor does as a user deletes a line and undoes it: every top-level statement (and
    the last statement of each body) removed, then restored, with the analyzer that checked the
    previous text. It finds exactly what a fresh analyzer finds. Found before: a script call that
    gives a model its input shapes (removed and restored: the shape finding stayed away), and
    GG103's walk for the calls that pass a list of layers (neither booked what it read)."""
    for text in _semantic_edits(code):
        analyzer = Analyzer()
        analyzer.check(code, "case.py")
        for current in (text, code):  # the edit, then its undo
            again = analyzer.check(current, "case.py").findings
            assert summary(again) == summary(Analyzer().check(current, "case.py").findings), current
