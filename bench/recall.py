"""Recall on real bugs: does gradguard find the bugs in tests/real_bugs/?

    .venv/bin/python bench/recall.py                 # table per case, then totals
    .venv/bin/python bench/recall.py --json          # also write bench/results/recall-<time>.json
    .venv/bin/python bench/recall.py --json out.json --quiet

Runs the engine in-process with every rule enabled over each case of the real-bug corpus and
compares what it reports with the case's `# expect:` header (rule code and 1-based line). An
expected finding counts as found when a finding with that code (or one of its `|` alternatives)
covers the expected line. Prints, per case, expected vs reported (code@line), then:

* recall: expected findings reported with the right code on the right line;
* recall per rule (an expected item with alternatives is booked under its first code);
* findings on the correct programs (`ok_*.py`, expected silent): each one is a false positive;
* findings not expected on the buggy programs (code@line), each one worth a look.

Figures only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server"))  # this checkout's engine wins over any installed copy
sys.path.insert(0, str(ROOT / "tests" / "real_bugs"))

from cases import Case, load_cases  # noqa: E402
from gradguard.engine.analyzer import Analyzer  # noqa: E402
from gradguard.engine.config import Config  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"


def _covers(finding, line: int) -> bool:
    return finding.line <= line <= max(finding.line, finding.end_line)


def evaluate(case: Case, analyzer: Analyzer) -> dict:
    text = case.path.read_text(encoding="utf-8")
    result = analyzer.check(text, str(case.path))
    findings = sorted(result.findings, key=lambda f: (f.line, f.column, f.code))
    matched: set[int] = set()
    items = []
    for item in case.expected:
        hit = next(
            (i for i, f in enumerate(findings) if f.code in item.codes and _covers(f, item.line)),
            None,
        )
        if hit is not None:
            matched.add(hit)
        near = [
            f"{f.code}@{f.line}"
            for i, f in enumerate(findings)
            if i != hit and (f.code in item.codes or _covers(f, item.line))
        ]
        items.append({"expected": str(item), "rule": item.codes[0], "found": hit is not None, "near": near})
    unexpected = [
        {"code": f.code, "line": f.line, "message": f.message}
        for i, f in enumerate(findings)
        if i not in matched and not any(_covers(f, it.line) and f.code in it.codes for it in case.expected)
    ]
    return {
        "case": case.name,
        "silent": case.silent,
        "sources": case.sources,
        "expected": items,
        "reported": [f"{f.code}@{f.line}" for f in findings],
        "unexpected": unexpected,
        "rule_errors": [f"{e.code}: {e.traceback.strip().splitlines()[-1]}" for e in result.errors],
    }


def summarize(rows: list[dict]) -> dict:
    expected = [item for row in rows for item in row["expected"]]
    found = [item for item in expected if item["found"]]
    per_rule: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in expected:
        per_rule[item["rule"]][1] += 1
        per_rule[item["rule"]][0] += item["found"]
    buggy = [row for row in rows if not row["silent"]]
    return {
        "cases": len(rows),
        "buggy_cases": len(buggy),
        "silent_cases": len(rows) - len(buggy),
        "expected": len(expected),
        "found": len(found),
        "recall": round(len(found) / len(expected), 4) if expected else None,
        "cases_fully_found": sum(all(i["found"] for i in row["expected"]) for row in buggy),
        "per_rule": {code: {"found": f, "expected": n} for code, (f, n) in sorted(per_rule.items())},
        "false_positives_on_silent": [
            {"case": row["case"], **u} for row in rows if row["silent"] for u in row["unexpected"]
        ],
        "unexpected_on_buggy": [
            {"case": row["case"], **u} for row in rows if not row["silent"] for u in row["unexpected"]
        ],
        "misses": [
            {"case": row["case"], "expected": i["expected"], "near": i["near"]}
            for row in rows
            for i in row["expected"]
            if not i["found"]
        ],
        "rule_errors": [{"case": row["case"], "error": e} for row in rows for e in row["rule_errors"]],
    }


def print_report(rows: list[dict], summary: dict) -> None:
    width = max(len(row["case"]) for row in rows)
    print(f"{'case':<{width}}  {'expected':<34} reported")
    for row in rows:
        marks = []
        for item in row["expected"]:
            marks.append(("+" if item["found"] else "-") + item["expected"])
        expected = " ".join(marks) if marks else "none"
        reported = " ".join(row["reported"]) or "-"
        print(f"{row['case']:<{width}}  {expected:<34} {reported}")
    s = summary
    print()
    print(f"cases: {s['buggy_cases']} buggy, {s['silent_cases']} correct")
    print(
        f"recall: {s['found']}/{s['expected']} expected findings = {100 * (s['recall'] or 0):.1f}%"
        f"  (buggy cases fully found: {s['cases_fully_found']}/{s['buggy_cases']})"
    )
    print("recall per rule:")
    for code, v in s["per_rule"].items():
        print(f"  {code}  {v['found']:3d}/{v['expected']:<3d} {100 * v['found'] / v['expected']:5.1f}%")
    print(f"findings on correct programs (false positives): {len(s['false_positives_on_silent'])}")
    for fp in s["false_positives_on_silent"]:
        print(f"  {fp['case']}: {fp['code']}@{fp['line']} {fp['message'][:100]}")
    print(f"findings not expected on buggy programs: {len(s['unexpected_on_buggy'])}")
    for u in s["unexpected_on_buggy"]:
        print(f"  {u['case']}: {u['code']}@{u['line']} {u['message'][:100]}")
    print(f"misses: {len(s['misses'])}")
    for m in s["misses"]:
        near = f"  (reported nearby: {', '.join(m['near'])})" if m["near"] else ""
        print(f"  {m['case']}: {m['expected']}{near}")
    if s["rule_errors"]:
        print(f"rule crashes: {len(s['rule_errors'])}")
        for e in s["rule_errors"]:
            print(f"  {e['case']}: {e['error']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const="",
        metavar="PATH",
        help="also write the results as JSON (default path: bench/results/recall-<UTC time>.json)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the totals")
    parser.add_argument("--cases", type=Path, default=None, help="another directory of cases")
    args = parser.parse_args(argv)

    cases = load_cases(args.cases) if args.cases else load_cases()
    analyzer = Analyzer(Config())
    t0 = time.process_time()
    rows = [evaluate(case, analyzer) for case in cases]
    cpu = time.process_time() - t0
    summary = summarize(rows)
    summary["engine_cpu_seconds"] = round(cpu, 3)
    if args.quiet:
        s = summary
        print(f"recall: {s['found']}/{s['expected']} = {100 * (s['recall'] or 0):.1f}%")
    else:
        print_report(rows, summary)
    if args.json is not None:
        if args.json:
            out = Path(args.json)
        else:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            out = RESULTS_DIR / f"recall-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
        out.write_text(json.dumps({"summary": summary, "cases": rows}, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
