"""Where the engine's time goes: parse, module context, unit indexing, each rule, filtering.

    .venv/bin/python bench/profile_engine.py                    # per-phase / per-rule table
    .venv/bin/python bench/profile_engine.py --cprofile 30      # plus the top 30 functions
    .venv/bin/python bench/profile_engine.py --file path/to/big.py

Figures only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
import gradguard.engine.analyzer as analyzer_module
from gradguard.engine.analyzer import Analyzer, RuleError
from gradguard.engine.config import Config
from gradguard.engine.index import ModuleContext, Unit

clock = time.process_time


class TimedAnalyzer(Analyzer):
    """An Analyzer that books CPU time per phase and per rule."""

    def __init__(self) -> None:
        super().__init__(Config(), cache_size=0)
        self.times: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def _run_rules(self, unit: Unit, errors: list[RuleError], rules=None):
        found = []
        for rule in self._rules if rules is None else rules:
            t0 = clock()
            try:
                found.extend(rule.check(unit))
            except Exception as exc:  # noqa: BLE001 - reported, never fatal here
                errors.append(RuleError(rule.code, unit.path, unit.nodes[0].lineno, repr(exc)))
            self.times[f"rule {rule.code}"] += clock() - t0
        return found


def install_phase_timers(timed: TimedAnalyzer) -> None:
    """Wrap parse / ModuleContext / Unit / _filter as the analyzer module sees them."""
    original_parse = analyzer_module.parse

    def parse(text, path="<unknown>"):
        t0 = clock()
        try:
            return original_parse(text, path)
        finally:
            timed.times["parse"] += clock() - t0

    class TimedModuleContext(ModuleContext):
        def __init__(self, tree, source, resolver=None):
            t0 = clock()
            super().__init__(tree, source, resolver)
            timed.times["module context"] += clock() - t0

    class TimedUnit(Unit):
        def __init__(self, *args, **kwargs):
            t0 = clock()
            super().__init__(*args, **kwargs)
            timed.times["unit index"] += clock() - t0
            timed.counts["units"] += 1

    original_filter = timed._filter

    def _filter(findings, source):
        t0 = clock()
        try:
            return original_filter(findings, source)
        finally:
            timed.times["filter + sort"] += clock() - t0

    analyzer_module.parse = parse
    analyzer_module.ModuleContext = TimedModuleContext
    analyzer_module.Unit = TimedUnit
    timed._filter = _filter  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", nargs="+", default=["timm", "torchvision"])
    parser.add_argument("--file", action="append", help="profile these files instead of the corpus")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="also print the top N functions")
    args = parser.parse_args(argv)

    if args.file:
        paths = [Path(f) for f in args.file]
    else:
        paths = [p for pkg in args.packages for p in corpus.python_files(corpus.ensure_package(pkg))]
    files = [(p, p.read_text(encoding="utf-8", errors="replace")) for p in paths]
    lines = sum(corpus.count_lines(t) for _, t in files)

    timed = TimedAnalyzer()
    install_phase_timers(timed)
    profiler = cProfile.Profile() if args.cprofile else None
    findings = 0
    start = clock()
    if profiler:
        profiler.enable()
    for path, text in files:
        findings += len(timed.check(text, str(path)).findings)
    if profiler:
        profiler.disable()
    total = clock() - start
    gc.collect()

    print(f"{len(files)} files, {lines} lines, {timed.counts['units']} units, {findings} findings")
    print(
        f"total CPU {total:.2f}s  ->  {lines / total:,.0f} lines/CPU s"
        + ("  (cProfile on: inflated)" if profiler else "")
    )
    booked = sum(timed.times.values())
    rows = sorted(timed.times.items(), key=lambda kv: kv[1], reverse=True)
    rows.append(("other (analyzer loop, cache keys, ...)", total - booked))
    print(f"\n{'phase':42} {'CPU s':>8} {'share':>7}")
    for name, seconds in rows:
        print(f"{name:42} {seconds:8.3f} {seconds / total:7.1%}")
    if profiler:
        print()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(args.cprofile)
        stats.sort_stats("cumulative").print_stats(args.cprofile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
