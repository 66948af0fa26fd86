"""What a keystroke costs the server's engine thread (issue 10), in process: the lines below an Enter
are moved, not parsed again, and no garbage collection walks what an analysis left behind."""

from __future__ import annotations

import ast
import gc

import pytest
from gradguard.lsp import server as lsp_server
from gradguard.lsp.server import GradguardServer

URI = "file:///project/typed.py"


def _text(n: int, bugs: int) -> str:
    """n modules; the first `bugs` change their parameter in place in `forward` (GG201, with a fix)."""
    parts = ["import torch\nfrom torch import nn\n\n"]
    for i in range(n):
        body = "self.w.clamp_(0, 1)" if i < bugs else "x = x + 1"
        parts.append(
            f"class Block{i}(nn.Module):\n"
            f"    def __init__(self):\n        super().__init__()\n        self.w = nn.Parameter(torch.ones(3))\n\n"
            f"    def forward(self, x):\n        {body}\n        return x * self.w\n\n\n"
        )
    return "".join(parts)


def _analyse(ls: GradguardServer, text: str, version: int):
    doc = ls.store.get(URI)
    if doc is None:
        ls.store.open(URI, text, version)
    else:
        doc.set_text(text)
        doc.version = version
    snap = ls._snapshot(URI)
    assert snap is not None
    return ls._analyse_sync(snap)


def _described(findings) -> list:
    return sorted((f.line, f.column, f.code, f.message, [e.to_dict() for e in f.fix.edits]) for f in findings)


@pytest.mark.parametrize("bugs, moved", [(3, True), (40, False)])
def test_an_enter_moves_the_lines_below_and_finds_what_a_fresh_check_finds(bugs: int, moved: bool):
    """Below an Enter, the units whose fixes were not computed yet are checked again: a few of them
    cost less than parsing the lines below again; many (a file full of fixable findings) more."""
    ls = GradguardServer()
    text = _text(40, bugs)
    first = _analyse(ls, text, 1)
    assert first is not None and len(first.findings) == bugs
    lines = text.splitlines(keepends=True)
    at = 7  # inside Block0.forward, above its finding
    entered = "".join([*lines[:at], "        \n", *lines[at:]])
    second = _analyse(ls, entered, 2)
    assert second is not None
    _, version, mode, reparsed, _ = ls.stats[-1]
    assert (version, mode) == (2, "incremental")
    assert (reparsed < 20) == moved  # (not the 400 lines below, when they moved)
    state = ls._states[URI]
    assert ast.dump(state.tree, include_attributes=True) == ast.dump(
        ast.parse(entered), include_attributes=True
    )
    expected = _analyse(GradguardServer(), entered, 1)
    assert expected is not None
    assert _described(second.findings) == _described(expected.findings)


def test_an_analysis_leaves_nothing_for_the_garbage_collector_to_walk():
    ls = GradguardServer()
    text = _text(30, 3)
    try:
        assert _analyse(ls, text, 1) is not None
        assert gc.isenabled()
        assert gc.get_count()[0] < 100  # the young objects (the trees, the findings) were set aside
        frozen = gc.get_freeze_count()
        assert frozen > 10_000
        lsp_server._collect_if_grown()  # idle: a full collection (they grew), then frozen again
        assert lsp_server._frozen_after_collect[0] == gc.get_freeze_count() > 10_000
        lsp_server._collect_if_grown()  # nothing grew since: no collection
        assert gc.get_freeze_count() == lsp_server._frozen_after_collect[0]
    finally:
        gc.unfreeze()
