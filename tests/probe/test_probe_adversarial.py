"""The hostile probe targets of tests/adversarial/probe_targets.py, each in a fresh process (its
peak memory is its own), with namespaces where the machine has them and without (the fallback)."""

from __future__ import annotations

import os

import pytest
from adversarial.probe_targets import CASES, run_case

pytestmark = pytest.mark.torch

FALLBACK = ["escape_then_hang", "kill_parent", "forge_lines", "relative_data", "network_and_env"]


def _check(item, result):
    assert result["handled"], f"{item.what}: {result['detail']}"
    if result.get("limit"):
        # the documented limit (code in the probe can fake its results) is said in the docs
        from gradguard.probe.metadata import NoGradient

        assert "code that wants to" in NoGradient.full_explanation()


@pytest.mark.parametrize("item", CASES, ids=[c.name for c in CASES])
def test_hostile_target(item):
    _check(item, run_case(item.name))


@pytest.mark.parametrize("item", [c for c in CASES if c.name in FALLBACK], ids=lambda c: c.name)
def test_hostile_target_without_namespaces(item, monkeypatch):
    monkeypatch.setitem(os.environ, "GRADGUARD_PROBE_NAMESPACES", "0")
    _check(item, run_case(item.name))
