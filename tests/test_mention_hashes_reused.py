"""The analyzer reuses the last check's mention hashes (which top-level statements name a word,
`_UnitTexts._kept_mention`) for the next text of a file only when they hold: after every edit below
(typing lines inside a function, between statements, a decorator, a new or removed def, a comment
naming the word), each reused hash is the one a fresh computation gives, and an edit that makes
another statement name a word changes its hash."""

from __future__ import annotations

import ast
import textwrap

import pytest
from gradguard.engine.analyzer import _UnitTexts
from gradguard.engine.mentions import MENTIONS
from gradguard.engine.source import SourceFile

BASE = textwrap.dedent(
    """\
    import torch


    def helper(x):
        return x * 2


    def other(y):
        z = y + 1
        return z


    @decorate
    def caller(a):
        b = helper(a)
        return b


    value = other(3)
    """
)

WORDS = ["helper", "other", "decorate", "caller", "torch", "z", "b", "value", "print", "missing"]


def edited(after: int, text: str, remove: int = 0) -> str:
    lines = BASE.splitlines(keepends=True)
    return "".join(lines[:after] + [text] * bool(text) + lines[after + remove :])


EDITS = {
    "a line typed in a function": edited(9, "    print(y)\n"),
    "a line typed at the end of a function": edited(10, "    print(z)\n"),
    "a call of a helper typed in another function": edited(9, "    w = helper(y)\n"),
    "a line removed from a function": edited(8, "", remove=1),
    "a statement typed between two defs": edited(11, "helper(1)\n"),
    "a comment naming a word between two defs": edited(11, "# other\n"),
    "a blank line between two defs": edited(11, "\n"),
    "a decorator added": edited(3, "@other\n"),
    "a def added": edited(11, "def more(q):\n    return other(q)\n"),
    "a def removed": edited(7, "", remove=4),
    "a word renamed in place": BASE.replace("z = y + 1", "zz = y + 1"),
    "the first line edited": "import torch as torch\n" + BASE.split("\n", 1)[1],
    "the last line edited": BASE.replace("value = other(3)", "value = other(3) + helper(4)"),
    "a line typed after the last": BASE + "print(value)\n",
}


def texts(text: str, previous=None) -> _UnitTexts:
    return _UnitTexts(ast.parse(text), SourceFile(text, "m.py"), previous)


@pytest.mark.parametrize("edit", list(EDITS))
def test_reused_mention_hashes_are_the_fresh_ones(edit: str) -> None:
    before = texts(BASE)
    for word in WORDS:
        before.fingerprint({MENTIONS + word}, False)
    state = before.mention_state()
    assert state is not None
    after, fresh = texts(EDITS[edit], state), texts(EDITS[edit])
    for word in WORDS:
        assert after.fingerprint({MENTIONS + word}, False) == fresh.fingerprint({MENTIONS + word}, False), (
            word
        )


def test_a_line_typed_inside_a_function_reuses_the_hashes_of_words_it_does_not_hold() -> None:
    before = texts(BASE)
    before.fingerprint({MENTIONS + w for w in WORDS}, False)
    after = texts(EDITS["a line typed in a function"], before.mention_state())
    assert after._kept_mention("helper") == before._hash(MENTIONS + "helper", False)
    assert after._kept_mention("print") is None  # typed: computed again


def test_a_new_call_of_a_helper_changes_its_mention_hash() -> None:
    before = texts(BASE)
    before.fingerprint({MENTIONS + "helper"}, False)
    text = EDITS["a call of a helper typed in another function"]
    after = texts(text, before.mention_state())
    assert after.fingerprint({MENTIONS + "helper"}, False) != before.fingerprint({MENTIONS + "helper"}, False)


def test_a_function_that_grows_over_an_unchanged_comment_naming_a_word_changes_its_hash() -> None:
    # the comment line is unchanged and the typed lines do not name the word: only the spans tell
    old = "def a():\n    s = 1\n# helper\ndef b():\n    pass\n"
    new = "def a():\n    s = 1\n# helper\n    s2 = 2\ndef b():\n    pass\n"
    before = texts(old)
    before.fingerprint({MENTIONS + "helper"}, False)
    after = texts(new, before.mention_state())
    assert after.fingerprint({MENTIONS + "helper"}, False) == texts(new).fingerprint(
        {MENTIONS + "helper"}, False
    )
    assert after.fingerprint({MENTIONS + "helper"}, False) != before.fingerprint({MENTIONS + "helper"}, False)
