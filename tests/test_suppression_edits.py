"""The engine's suppression edits (the editor's "Disable GGxxx" quick fixes) and fix selection: a
suppression the edit writes is one the engine honours, and one pass never applies overlapping fixes."""

from __future__ import annotations

import pytest
from gradguard.engine.analyzer import apply_fixes, select_fixes
from gradguard.engine.finding import Applicability, Fix, TextEdit
from gradguard.engine.source import split_lines
from gradguard.engine.suppression import FILE, file_suppression, is_suppressed, line_suppression, suppressions


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("y[y < 0] = 0", "y[y < 0] = 0  # noqa: GG202"),
        ("y[y < 0] = 0  # noqa: GG201", "y[y < 0] = 0  # noqa: GG201, GG202"),
        (
            "y[y < 0] = 0  # gradguard: ignore[GG201] why",
            "y[y < 0] = 0  # gradguard: ignore[GG201, GG202] why",
        ),
        # a bare `# noqa` has no list to extend: a code list is added after it
        ("x = 1  # noqa", "x = 1  # noqa  # noqa: GG202"),
    ],
)
def test_line_suppression(line, expected):
    column, text = line_suppression(line, "GG202")
    after = line[:column] + text + line[column:]
    assert after == expected
    assert is_suppressed(suppressions([after]), "GG202", 1, 1)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import torch\n", "# gradguard: noqa: GG202\nimport torch\n"),
        (
            "#!/usr/bin/env python\n# -*- coding: utf-8 -*-\nx = 1\n",
            "#!/usr/bin/env python\n# -*- coding: utf-8 -*-\n# gradguard: noqa: GG202\nx = 1\n",
        ),
        ("x = 1\r\ny = 2\r\n", "# gradguard: noqa: GG202\r\nx = 1\r\ny = 2\r\n"),
        ("import torch\n# gradguard: noqa: GG201\n", "import torch\n# gradguard: noqa: GG201, GG202\n"),
        ("", "# gradguard: noqa: GG202\n"),
    ],
)
def test_file_suppression(source, expected):
    lines = split_lines(source)
    index, column, text = file_suppression(lines, "GG202")
    after = "".join(lines)
    offset = sum(len(line) for line in lines[:index]) + column
    after = after[:offset] + text + after[offset:]
    assert after == expected
    assert "GG202" in suppressions(split_lines(after))[FILE]  # the whole file


def edit(line: int, start: int, end: int, text: str = "z") -> TextEdit:
    return TextEdit(line, start, line, end, text)


def test_select_fixes_skips_overlaps_and_what_does_not_fit():
    a = [edit(1, 1, 4)]
    overlaps_a = [edit(1, 3, 6)]
    touches_a = [edit(1, 4, 6)]  # [1, 4) and [4, 6) share no character
    inserts_at_a = [edit(1, 1, 1)]  # an insertion where `a` starts collides with it
    far = [edit(3, 1, 2), edit(4, 1, 2)]
    assert select_fixes([far, overlaps_a, a, touches_a, inserts_at_a]) == [a, touches_a, far]
    assert select_fixes([a, far], fits=lambda edits: len(edits) == 1) == [a]
    assert select_fixes([[], a]) == [a]


def test_apply_fixes_applies_the_selection():
    text = "a = 1\nb = 2\n"
    fixes = [
        Fix("one", Applicability.SAFE, [edit(1, 5, 6, "10")]),
        Fix("overlapping", Applicability.SAFE, [edit(1, 1, 6, "c = 3")]),
        Fix("two", Applicability.SAFE, [edit(2, 5, 6, "20")]),
    ]
    # in the order of their first edit: "overlapping" starts first and "one" overlaps it
    assert apply_fixes(text, fixes) == ("c = 3\nb = 20\n", 2)
