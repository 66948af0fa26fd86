"""The incremental parser must give exactly what a full `ast.parse` gives."""

from __future__ import annotations

import ast
import warnings

import pytest
from gradguard.engine.incremental import IncrementalParser, LineDelta
from gradguard.engine.source import split_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BLOCKS = [
    "import torch\n",
    "import torch.nn as nn\n",
    "x = 1; y = 2\n",
    "# a comment\n\n",
    "\n\n",
    "@decorator\ndef f(a, b):\n    return a + b\n",
    "def g():\n    s = '''multi\nline\n'''\n    return s\n",
    "class M(nn.Module):\n    def forward(self, x):\n        return (x +\n                1)\n\n    def backward(self):\n        pass\n",
    "if x:\n    y = 1\nelse:\n    y = 2\n",
    "try:\n    import foo\nexcept ImportError:\n    foo = None\n",
    "total = 1 + \\\n    2\n",
    "values = [\n    1,\n    2,\n]\n",
    "async def h():\n    await z\n",
    "match p:\n    case 1:\n        pass\n",
    "for i in range(3):\n    pass\nelse:\n    pass\n",
    "while True:\n\tbreak\n",
    "w = 'é𝔘'  # non-ASCII\n",
    "@a\n@b(1)\nclass C:\n    x: int = 3\n",
]

FRAGMENTS = [
    "\n",
    "\r\n",
    "\r",
    " ",
    "    ",
    "\t",
    "(",
    ")",
    "[",
    "]",
    "'",
    '"',
    "'''",
    "\\",
    ":",
    "#",
    "x",
    "y",
    "1",
    "else:",
    "except:",
    "def k():\n",
    "    pass\n",
    "@d\n",
    "class Q:\n",
    "\ufeff",
    "from __future__ import annotations\n",
    ";",
    "é",
    "𝔘",
    "\x0c",
    "\x00",
    "return 1\n",
    "\n\n",
]


def check_same(parser: IncrementalParser, text: str) -> None:
    expected_error = got_error = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        expected, expected_error = None, exc
    try:
        got = parser.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        got, got_error = None, exc
    if expected is None:
        assert got is None, f"incremental parse accepted text that does not parse:\n{text!r}"
        # the error the editor shows is the one a full parse reports
        assert _error(got_error) == _error(expected_error), f"text={text!r}"
        return
    assert got is not None, f"incremental parse rejected valid text:\n{text!r}"
    assert ast.dump(got, include_attributes=True) == ast.dump(expected, include_attributes=True), (
        f"mode={parser.stats.mode} text={text!r}"
    )


def _error(exc):
    return (
        type(exc),
        getattr(exc, "msg", str(exc)),
        getattr(exc, "lineno", None),
        getattr(exc, "offset", None),
    )


@st.composite
def edit_sequences(draw):
    blocks = draw(st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=8))
    text = "".join(blocks)
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    edits = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["insert", "delete", "replace", "block"]))
        edits.append(
            (
                kind,
                draw(st.floats(0, 1)),
                draw(st.integers(0, 12)),
                draw(st.sampled_from(FRAGMENTS)),
                draw(st.sampled_from(BLOCKS)),
            )
        )
    return text, edits


def apply(text: str, edit) -> str:
    kind, where, length, fragment, block = edit
    pos = int(where * len(text))
    if kind == "insert":
        return text[:pos] + fragment + text[pos:]
    if kind == "delete":
        return text[:pos] + text[pos + length :]
    if kind == "replace":
        return text[:pos] + fragment + text[pos + length :]
    # insert a whole block at a line start
    lines = split_lines(text)
    index = int(where * len(lines))
    return "".join(lines[:index]) + block + "".join(lines[index:])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edit_sequences())
def test_incremental_parse_equals_full_parse(case):
    text, edits = case
    parser = IncrementalParser()
    check_same(parser, text)
    for edit in edits:
        text = apply(text, edit)
        check_same(parser, text)


class _Moves:
    """`on_move` of a parser that moves nodes in place (as the language server's does)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edit_sequences())
def test_incremental_parse_that_moves_nodes_equals_full_parse(case):
    text, edits = case
    parser = IncrementalParser(on_move=_Moves())
    check_same(parser, text)
    for edit in edits:
        text = apply(text, edit)
        check_same(parser, text)


def test_lines_inserted_move_the_nodes_below_in_place_after_telling_on_move():
    text = _big_file(50)
    moves = _Moves()
    parser = IncrementalParser(on_move=moves)
    old = parser.parse(text)
    below = old.body[-1]
    above = ast.dump(old.body[3], include_attributes=True)
    lines = text.splitlines(keepends=True)
    at = text.count("\n") // 2
    for n in range(1, 4):  # Enter, Enter, Enter: the same nodes move each time
        edited = "".join([*lines[:at], "\n" * n, *lines[at:]])
        tree = parser.parse(edited)
        assert moves.calls == n
        assert tree.body[-1] is below and below.lineno == old.body[-1].lineno
        assert ast.dump(tree, include_attributes=True) == ast.dump(ast.parse(edited), include_attributes=True)
        assert parser.stats.reparsed_lines < 20  # the lines below were moved, not parsed
    assert ast.dump(tree.body[3], include_attributes=True) == above  # above the edit: untouched
    parser.parse(text)  # and back
    assert moves.calls == 4 and tree.body[-1] is below
    assert ast.dump(below, include_attributes=True) == ast.dump(
        ast.parse(text).body[-1], include_attributes=True
    )


def _big_file(n: int) -> str:
    parts = ["import torch\nimport torch.nn as nn\n\n"]
    for i in range(n):
        parts.append(
            f"class Block{i}(nn.Module):\n"
            f"    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 4)\n\n"
            f"    def forward(self, x):\n        y = self.fc(x)\n        return y * {i}\n\n\n"
        )
    return "".join(parts)


def test_one_character_edit_reparses_only_its_block():
    text = _big_file(200)
    parser = IncrementalParser()
    parser.parse(text)
    assert parser.stats.mode == "full"
    edited = text.replace("return y * 100\n", "return y * 1000\n")
    tree = parser.parse(edited)
    assert parser.stats.mode == "incremental"
    assert parser.stats.reparsed_lines < 20
    assert ast.dump(tree, include_attributes=True) == ast.dump(ast.parse(edited), include_attributes=True)


def test_nodes_of_earlier_trees_are_never_mutated():
    # lazy fixes keep nodes: an edit that moves lines must not shift old nodes in place
    text = _big_file(5)
    parser = IncrementalParser()
    old = parser.parse(text)
    before = ast.dump(old, include_attributes=True)
    parser.parse("\n\n" + text)
    assert ast.dump(old, include_attributes=True) == before


def test_falls_back_when_region_does_not_parse_alone():
    text = "import torch\nif x:\n    pass\ny = 1\n"
    parser = IncrementalParser()
    parser.parse(text)
    edited = "import torch\nif x:\n    pass\nelse:\n    y = 1\n"
    tree = parser.parse(edited)
    assert ast.dump(tree, include_attributes=True) == ast.dump(ast.parse(edited), include_attributes=True)


def test_syntax_error_keeps_last_good_state():
    parser = IncrementalParser()
    parser.parse("import torch\ndef f():\n    return 1\n")
    with pytest.raises(SyntaxError):
        parser.parse("import torch\ndef f(:\n    return 1\n")
    assert parser.last_good_lines == ["import torch\n", "def f():\n", "    return 1\n"]
    tree = parser.parse("import torch\ndef f(a):\n    return 1\n")
    assert parser.stats.mode == "incremental"
    assert tree.body[1].args.args[0].arg == "a"


def test_line_delta_maps_lines():
    old = ["a\n", "b\n", "c\n", "d\n"]
    new = ["a\n", "B\n", "B2\n", "c\n", "d\n"]
    change = LineDelta.between(old, new)
    assert (change.prefix, change.old_end, change.new_end) == (1, 2, 3)
    assert change.map_line(1) == 1
    assert change.map_line(2) is None
    assert change.map_line(3) == 4


def test_a_line_being_typed_does_not_parse_the_whole_file(monkeypatch):
    # typing `print(x)` key by key inside a function: the file does not parse until `)`; the
    # parser finds that out from the edited block and what follows, never from the lines above it
    import gradguard.engine.incremental as incremental

    text = _big_file(60)
    parser = IncrementalParser()
    parser.parse(text)
    lines = split_lines(text)
    site = lines.index("        return y * 30\n")
    skipped: list[int] = []  # lines each parse left blank (the lines above what it parsed)
    real = incremental._parse
    monkeypatch.setattr(
        incremental,
        "_parse",
        lambda source, path: skipped.append(len(source) - len(source.lstrip("\n"))) or real(source, path),
    )
    for typed in ["", "p", "print", "print(", "print(x", "print(x)"]:
        edited = "".join([*lines[:site], f"        {typed}\n", *lines[site:]])
        check_same(parser, edited)
    # every parse started at the edited class: none of them read the lines above it again
    assert skipped and min(skipped) >= site - 12, skipped
    assert ast.dump(parser.parse(text), include_attributes=True) == ast.dump(
        ast.parse(text), include_attributes=True
    )


def test_region_that_needs_what_follows_parses_with_it():
    # a decorator typed above a function: the edited block alone does not parse, the file does
    text = "import torch\nx = 1\n\ndef f():\n    return 1\n\ny = 2\n"
    parser = IncrementalParser()
    parser.parse(text)
    for edited in [
        "import torch\nx = 1\n@torch.no_grad()\ndef f():\n    return 1\n\ny = 2\n",
        "import torch\nx = 1\nif x:\n    pass\nelse:\n    y = 2\n",
        "import torch\nx = (1,\n\ndef f():\n    return 1\n\ny = 2)\n",
    ]:
        parser = IncrementalParser()
        parser.parse(text)
        check_same(parser, edited)
