"""Typing new lines as an editor sends them (issue 10): Enter, then a statement key by key, above,
inside and below findings. After every keystroke whose text parses, the language server's path
(one `IncrementalParser` and one `Analyzer` kept across the keystrokes; the parser moves the
nodes below an Enter in place and the analyzer lets go of the lazy fixes first, as in the
server) finds exactly what a fresh analyzer finds in the same text: lines, columns, messages
(one cites a line number) and the edits of the fixes, whether those were computed after every
keystroke or only at the end (still lazy while the nodes moved). Most statements do not parse
until their last key (`print(`, `y = `).
"""

from __future__ import annotations

import pytest
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.incremental import IncrementalParser

TEXT = """import torch
from torch import nn


def make_weight(n):
    w = torch.zeros(n, requires_grad=True)
    w.add_(1)
    return w


def scale(x, w):
    y = x * 2
    return y * w


def run(n):
    w = make_weight(n)
    x = torch.randn(n)
    return scale(x, w)


class Gate(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(n))

    def forward(self, x):
        self.alpha.clamp_(0, 1)
        return self.alpha * x


def train(model, data):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in data:
        loss = model(x).sum()
        loss.backward()
        opt.step()
"""

# (the 1-based line after which Enter is pressed, the statement then typed on the new line): the
# new line gets the indentation of that line (of the line below it when that one opens a block)
TYPED = {
    "module level, above every finding": (2, "SCALE = 2"),
    "above a finding in its unit (its message cites a line)": (6, "print(w)"),
    "above a finding, adding one": (17, "w.add_(1)"),
    "in a callee whose caller is above": (12, "y = y + x"),
    "above a finding with a fix": (27, "y = x + 1"),
    "below every finding, removing one": (35, "opt.zero_grad()"),
    "after the last line": (37, "print(model)"),
}

PATH = "typed.py"


def keystrokes(text: str, after: int, statement: str) -> list[str]:
    """The texts an editor holds while the statement is typed on a new line below line `after`."""
    lines = text.splitlines(keepends=True)
    current = lines[after - 1]
    indent = current[: len(current) - len(current.lstrip())]
    if current.rstrip().endswith(":") and after < len(lines):
        below = lines[after]
        indent = below[: len(below) - len(below.lstrip())]
    head = "".join(lines[:after])
    if not head.endswith("\n"):
        head += "\n"
    tail = "".join(lines[after:])
    return [head + indent + statement[:n] + "\n" + tail for n in range(len(statement) + 1)]


def described(findings, fixes: bool = True) -> list:
    return sorted(
        (
            f.line,
            f.column,
            f.end_line,
            f.end_column,
            f.code,
            f.message,
            [e.to_dict() for e in f.fix.edits] if f.fix and fixes else None,
            [[e.to_dict() for e in a.edits] for a in f.alternatives] if fixes else None,
        )
        for f in findings
    )


def session() -> tuple[IncrementalParser, Analyzer]:
    """A parser and an analyzer wired as the language server wires them."""
    analyzer = Analyzer()
    return IncrementalParser(PATH, on_move=lambda: analyzer.forget_lazy_fixes(PATH) >= 0), analyzer


def test_the_text_has_findings_above_inside_and_below_the_typed_lines() -> None:
    codes = sorted((f.line, f.code) for f in Analyzer().check(TEXT, PATH).findings)
    assert codes == [(7, "GG203"), (28, "GG201"), (36, "GG401")]


@pytest.mark.parametrize("fixes", ["every keystroke", "at the end"])
@pytest.mark.parametrize("where", list(TYPED))
def test_typing_a_new_line_finds_what_a_fresh_check_finds(where: str, fixes: str) -> None:
    after, statement = TYPED[where]
    parser, analyzer = session()
    analyzer.check(TEXT, PATH, parser.parse(TEXT))
    broken = 0
    texts = keystrokes(TEXT, after, statement)
    steps = [*texts, *reversed(texts[:-1]), TEXT, texts[0]]  # typed, deleted key by key, Enter again
    for text in steps:
        try:
            tree = parser.parse(text)
        except SyntaxError:
            broken += 1
            continue
        again = analyzer.check(text, PATH, tree).findings
        fresh = Analyzer().check(text, PATH).findings
        every = fixes == "every keystroke" or text is steps[-1]
        assert described(again, every) == described(fresh, every), text
    assert broken > 0  # the statement did not parse while being typed
    # what typing it changed: the finding moved, appeared or went away as a fresh check says
    final = {f.code for f in Analyzer().check(texts[-1], PATH).findings}
    if "adding" in where:
        assert sum(f.code == "GG203" for f in analyzer.check(texts[-1], PATH).findings) == 2
    if "removing" in where:
        assert "GG401" not in final


def test_typing_new_lines_everywhere_in_turn_finds_what_a_fresh_check_finds() -> None:
    """The statements typed one after another into the same buffer (every unit cached in between)."""
    parser, analyzer = session()
    text = TEXT
    analyzer.check(text, PATH, parser.parse(text))
    # from the bottom up, so that the line numbers of TYPED still hold
    for after, statement in sorted(TYPED.values(), reverse=True):
        typed = keystrokes(text, after, statement)
        for current in typed:
            try:
                tree = parser.parse(current)
            except SyntaxError:
                continue
            again = analyzer.check(current, PATH, tree).findings
            assert described(again) == described(Analyzer().check(current, PATH).findings), current
        text = typed[-1]
    assert text.count("\n") == TEXT.count("\n") + len(TYPED)
