"""`Mentions`: the top-level statements whose text names a function (the statements
`Semantics._find_call_sites` walks) are the ones a whole-word regular expression finds."""

from __future__ import annotations

import ast
import re
import textwrap

import pytest
from gradguard.engine import values as v
from gradguard.engine.index import ModuleContext, statement_start_line
from gradguard.engine.mentions import Mentions, only_unresolved_import
from gradguard.engine.semantic import Semantics, value_key
from gradguard.engine.source import SourceFile, split_lines

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


SCRIPT = textwrap.dedent(
    """
    import torch
    from ._helpers import only_imported, also_imported as renamed, read_later
    from . import sibling
    from .other import rebound
    from ._more import only_imported as again

    rebound = torch.zeros(3)
    x = read_later(2)
    if torch.cuda.is_available():
        from ._cuda import conditional

    def uses(t):
        return only_imported(t) + renamed(t) + sibling.f(t)
    """
).lstrip("\n")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("only_imported", True),  # bound twice, by unresolved imports only, read only inside a def
        ("renamed", True),
        ("also_imported", False),  # named by the import, but it binds `renamed`
        ("sibling", True),
        ("rebound", False),  # rebound by an assignment
        ("read_later", False),  # read by the script
        ("conditional", False),  # imported inside an `if`
        ("torch", False),  # a resolved import
        ("uses", False),  # a def, not an import
    ],
)
def test_only_unresolved_import(name: str, expected: bool) -> None:
    tree = ast.parse(SCRIPT)
    statements = Mentions(tree.body, split_lines(SCRIPT)).statements_naming(name)
    assert only_unresolved_import(statements, name) is expected


@pytest.mark.parametrize("name", ["only_imported", "renamed", "sibling", "rebound", "read_later", "x"])
def test_a_name_only_imported_holds_what_the_whole_script_would_give(name: str) -> None:
    """`global_value` answers without interpreting the script when the shortcut applies: the
    same value as once the script's flow is built."""
    tree = ast.parse(SCRIPT)
    module = ModuleContext(tree, SourceFile(SCRIPT, "case.py"))
    lines = split_lines(SCRIPT)
    quick = Semantics(tree, module, lines)
    value = quick.global_value(name)
    shortcut = None not in quick._flows
    full = Semantics(tree, module, lines)
    full.flow(None)
    assert value_key(value) == value_key(full.global_value(name))
    assert shortcut is (name in ("only_imported", "renamed", "sibling"))


METHODS = textwrap.dedent(
    """
    import torch


    class Loss(torch.nn.Module):
        def kernel(self, size, sigma):
            g = torch.arange(size, dtype=torch.float32) ** 2
            return (-g / (2 * sigma**2)).exp()

        def score(self, x, size=11, sigma=1.5):
            return (x * self.kernel(size, sigma).sum()).mean()

        def forward(self, x):
            return self.score(x)
    """
).lstrip("\n")


def _method_parameter(code: str, method: str, name: str):
    """What `name`, a parameter of `Loss.<method>`, holds in its natural context, with the file's
    lines known (as the analyzer builds the model)."""
    tree = ast.parse(code)
    semantics = Semantics(tree, ModuleContext(tree, SourceFile(code, "case.py")), split_lines(code))
    func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == method)
    flow = semantics.flow(func)
    return next(
        value for node, value in flow.values.items() if isinstance(node, ast.Name) and node.id == name
    )


def test_a_method_called_only_as_self_method_takes_its_callers_values():
    sigma = _method_parameter(METHODS, "kernel", "sigma")
    assert sigma.no_grad and not sigma.kinds & v.TENSOR


@pytest.mark.parametrize(
    "other_use",
    [
        "\n\ndef run(loss, t):\n    return loss.kernel(3, t)\n",  # called on another object elsewhere
        "\n\nclass Other:\n    kernel = None\n",  # another statement names it
    ],
)
def test_a_method_used_any_other_way_keeps_the_natural_guess(other_use):
    sigma = _method_parameter(METHODS + other_use, "kernel", "sigma")
    assert not sigma.no_grad


@pytest.mark.parametrize(
    "use",
    [
        "        self.fn = self.kernel\n",  # read without a call
        "        f = lambda: self.kernel(3, torch.ones(1, requires_grad=True))\n",  # from a nested scope
    ],
)
def test_a_method_read_in_its_class_other_than_by_a_direct_call_keeps_the_natural_guess(use):
    code = METHODS.replace("        return self.score(x)\n", use + "        return self.score(x)\n")
    assert not _method_parameter(code, "kernel", "sigma").no_grad
