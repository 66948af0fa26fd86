"""What a keystroke costs the server's engine thread (issue 10), in process: the lines below an Enter
are moved, not parsed again, and no garbage collection walks what an analysis left behind."""

from __future__ import annotations

import ast
import gc

from gradguard.lsp import server as lsp_server
from gradguard.lsp.server import GradguardServer

URI = "file:///project/typed.py"


def _text(n: int) -> str:
    parts = ["import torch\nfrom torch import nn\n\n"]
    for i in range(n):
        parts.append(
            f"class Block{i}(nn.Module):\n"
            f"    def __init__(self):\n        super().__init__()\n        self.w = nn.Parameter(torch.ones(3))\n\n"
            f"    def forward(self, x):\n        self.w.clamp_(0, 1)\n        return x * self.w\n\n\n"
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


def test_an_enter_moves_the_lines_below_and_finds_what_a_fresh_check_finds():
    ls = GradguardServer()
    text = _text(40)
    first = _analyse(ls, text, 1)
    assert first is not None and len(first.findings) == 40  # GG201 in every forward
    lines = text.splitlines(keepends=True)
    at = 7  # inside Block0.forward
    entered = "".join([*lines[:at], "        \n", *lines[at:]])
    second = _analyse(ls, entered, 2)
    assert second is not None
    _, version, mode, reparsed, _ = ls.stats[-1]
    assert (version, mode) == (2, "incremental") and reparsed < 20  # not the 400 lines below
    state = ls._states[URI]
    assert ast.dump(state.tree, include_attributes=True) == ast.dump(
        ast.parse(entered), include_attributes=True
    )
    fresh = GradguardServer()
    expected = _analyse(fresh, entered, 1)
    assert expected is not None

    def described(findings):
        return sorted(
            (f.line, f.column, f.code, f.message, [e.to_dict() for e in f.fix.edits]) for f in findings
        )

    assert described(second.findings) == described(expected.findings)


def test_an_analysis_leaves_nothing_for_the_garbage_collector_to_walk():
    ls = GradguardServer()
    text = _text(30)
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
