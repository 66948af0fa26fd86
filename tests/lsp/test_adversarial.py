"""The malformed and hostile LSP exchanges of tests/adversarial/lsp_exchanges.py, each against a
fresh real server process (`python -m gradguard lsp` over stdio, raw bytes on its stdin)."""

from __future__ import annotations

import pytest
from adversarial.lsp_exchanges import CASES, run_case


@pytest.mark.parametrize("item", CASES, ids=[c.name for c in CASES])
def test_adversarial_exchange(item):
    outcome = run_case(item)
    assert outcome.handled, f"{item.what}: {outcome.detail}"
