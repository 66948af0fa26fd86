"""Checks that a file's findings do not depend on the order in which the analysis is asked for
things: the rules run in another order (reversed, shuffled), the units checked in another order,
and one rule at a time (`Config(select=(code,))`) against every rule at once.

The value analysis computes flows, class summaries and call summaries on demand and memoises
them; a result that depends on what was computed before it makes the language server's
incremental re-check (which re-runs only some units and rules) differ from a fresh check.

Used by tests/test_order_independence.py and bench/order.py."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

from gradguard.engine import analyzer as analyzer_module
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.config import Config
from gradguard.engine.rule import all_rules

SEED = 20261201


def finding_key(finding) -> tuple:
    return (finding.code, finding.line, finding.column, finding.end_line, finding.end_column, finding.message)


class _OrderedAnalyzer(Analyzer):
    """An analyzer that runs each unit's rules in another order."""

    def __init__(self, config: Config, order: str) -> None:
        super().__init__(config)
        self._order = order
        self._random = random.Random(SEED)

    def _run_rules(self, unit, errors, rules=None):
        rules = list(self._rules if rules is None else rules)
        if self._order == "reversed":
            rules.reverse()
        elif self._order == "shuffled":
            self._random.shuffle(rules)
        return super()._run_rules(unit, errors, rules)


@contextmanager
def _units_in(order: str) -> Iterator[None]:
    """Units checked in another order (the script unit among them)."""
    original = analyzer_module.split_units
    rng = random.Random(SEED)

    def split(tree):
        units = original(tree)
        if order == "reversed":
            units.reverse()
        else:
            rng.shuffle(units)
        return units

    analyzer_module.split_units = split
    try:
        yield
    finally:
        analyzer_module.split_units = original


def findings(
    text: str, path: str = "", config: Config | None = None, rules: str = "", units: str = ""
) -> set:
    """The findings of one fresh check, as comparable keys."""
    config = config or Config()
    analyzer = _OrderedAnalyzer(config, rules) if rules else Analyzer(config)
    if units:
        with _units_in(units):
            result = analyzer.check(text, path)
    else:
        result = analyzer.check(text, path)
    return {finding_key(f) for f in result.findings}


VARIANTS = (
    ("rules-reversed", {"rules": "reversed"}),
    ("rules-shuffled", {"rules": "shuffled"}),
    ("units-reversed", {"units": "reversed"}),
    ("units-shuffled", {"units": "shuffled"}),
)


def differences(text: str, path: str = "", single: bool = True, codes: list[str] | None = None) -> dict:
    """variant -> (findings only in the baseline, findings only in the variant); only the variants
    that differ. `single`: also each rule alone against every rule at once (`codes`: which)."""
    base = findings(text, path)
    found: dict[str, tuple[set, set]] = {}
    for name, options in VARIANTS:
        other = findings(text, path, **options)
        if other != base:
            found[name] = (base - other, other - base)
    if single:
        if codes == ["found"]:  # the rules reporting in the plain check only (faster)
            codes = sorted({f[0] for f in base})
        for code in sorted(all_rules()) if codes is None else codes:
            mine = {f for f in base if f[0] == code}
            alone = findings(text, path, Config(select=(code,)))
            alone = {f for f in alone if f[0] == code}
            if alone != mine:
                found[f"single-{code}"] = (mine - alone, alone - mine)
    return found
