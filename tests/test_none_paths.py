"""`if x is not None:` whose `None` branch raises later in its block (`x.attr` evaluated
unconditionally): only the other branch goes on; left alone when that path can escape first."""

from __future__ import annotations

import ast
import textwrap

import pytest
from gradguard.engine.none_paths import dead_none_branches


def _known(code: str) -> list[bool]:
    func = ast.parse(textwrap.dedent(code)).body[0]
    assert isinstance(func, ast.FunctionDef)
    return list(dead_none_branches(func.body).values())


@pytest.mark.parametrize(
    "code,expected",
    [
        ("def f(x, m=None):\n    if m is not None:\n        x = x * m\n    m = m.squeeze(-1)\n", [True]),
        ("def f(x, m=None):\n    if m is None:\n        x = x + 1\n    y = m[0]\n", [False]),
        # the `None` branch rebinds or leaves; the use is conditional, after a rebinding, or in a try
        (
            "def f(x, m=None):\n    if m is not None:\n        x = x * m\n    else:\n        m = x\n    m.t()\n",
            [],
        ),
        ("def f(x, m=None):\n    if m is None:\n        return x\n    m.t()\n", []),
        (
            "def f(x, m=None):\n    if m is not None:\n        x = x * m\n    y = m.t() if m is not None else x\n",
            [],
        ),
        ("def f(x, m=None):\n    if m is not None:\n        x = x * m\n    m = x\n    m.t()\n", []),
        (
            "def f(x, m=None):\n    if m is not None:\n        x = x * m\n    if x:\n        return x\n    m.t()\n",
            [],
        ),
        (
            "def f(x, m=None):\n    try:\n        if m is not None:\n            x = x * m\n        m.t()\n    except AttributeError:\n        pass\n",
            [],
        ),
        ("def f(x, m=None):\n    if m is not None:\n        x = x * m\n    y = m.__class__\n", []),
    ],
)
def test_dead_none_branches(code, expected):
    assert _known(code) == expected


def test_none_has_no_tensor_attribute():
    mask = None
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'squeeze'"):
        mask.squeeze(-1)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="not subscriptable"):
        mask[0]  # type: ignore[index]
