"""`Mentions`: the top-level statements whose text names a function (the statements
`Semantics._find_call_sites` walks) are the ones a whole-word regular expression finds."""

from __future__ import annotations

import ast
import re
import textwrap

from gradguard.engine.index import statement_start_line
from gradguard.engine.mentions import Mentions
from gradguard.engine.source import split_lines

CODE = textwrap.dedent(
    """
    import torch

    def helper(x):
        return x * 2

    def helper_two(x):  # a longer name that starts with "helper"
        return x

    @decorate(helper)
    def uses_in_decorator(y):
        return y

    a = helper(1); b = helper_two(2)
    c = my_helper(3)
    d = "helper"  # in a string: extra, harmless
    # helper in a comment between statements

    class Net(torch.nn.Module):
        def forward(self, x):
            return helper(
                x
            )

    def _helper(z):
        return zhelper(z) + helper_(z) + helper2(z)

    e = ñhelper(1) + helperé(2)
    """
).lstrip("\n")


def names_by_regex(body: list[ast.stmt], lines: list[str], name: str) -> list[str]:
    mention = re.compile(r"\b" + re.escape(name) + r"\b")
    found = []
    for stmt in body:
        text = "".join(lines[statement_start_line(stmt) - 1 : stmt.end_lineno or stmt.lineno])
        if mention.search(text):
            found.append(ast.unparse(stmt).splitlines()[-1].strip())
    return found


def test_the_statements_found_are_those_a_whole_word_regex_finds():
    tree = ast.parse(CODE)
    lines = split_lines(CODE)
    mentions = Mentions(tree.body, lines)
    for name in ("helper", "helper_two", "_helper", "my_helper", "torch", "Net", "absent", "e", "z"):
        got = [ast.unparse(s).splitlines()[-1].strip() for s in mentions.statements_naming(name)]
        assert got == names_by_regex(tree.body, lines, name), name


def test_statements_sharing_a_line_are_both_found_and_neighbours_are_not():
    tree = ast.parse(CODE)
    found = Mentions(tree.body, split_lines(CODE)).statements_naming("helper_two")
    assert [s.lineno for s in found] == [6, 13, 13]  # the def, `a = ...` and `b = ...` of line 13
    found = Mentions(tree.body, split_lines(CODE)).statements_naming("helper")
    lines = {s.lineno for s in found}
    assert {3, 10, 13, 15, 18} <= lines  # def, decorated def, both of line 13, the string, the class
    assert 24 not in lines  # `_helper`'s body names only longer identifiers
