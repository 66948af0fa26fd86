"""Precision review: every gradguard finding on real, well-tested PyTorch libraries.

    .venv/bin/python bench/precision.py                       # timm, torchvision, transformers
    .venv/bin/python bench/precision.py --packages timm --rule GG201 --context 2

Runs `gradguard check --format json` on the unzipped wheels and prints, per rule, the
number of findings and each finding's location, message and source line(s), so that a
human can judge every one (real bug or false positive). Writes the raw findings to
bench/results/precision-<time>.json. Figures only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus


def run_gradguard(dirs: list[Path], select: str | None, jobs: int) -> tuple[list[dict], str]:
    argv = [sys.executable, "-m", "gradguard", "check", "--format", "json", "--exit-zero", "-j", str(jobs)]
    if select:
        argv += ["--select", select]
    argv += [str(d) for d in dirs]
    # cold runs, and no result cache written into the corpus
    env = dict(os.environ, PYTHONPATH=str(corpus.ROOT / "server"), NO_COLOR="1", GRADGUARD_NO_CACHE="1")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"gradguard failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout or "[]"), proc.stderr


def source_lines(path: str, first: int, last: int, context: int) -> list[tuple[int, str]]:
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    lo, hi = max(1, first - context), min(len(lines), last + context)
    hi = min(hi, lo + 12)  # long statements: the head is enough to judge
    return [(n, lines[n - 1]) for n in range(lo, hi + 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", nargs="+", default=["timm", "torchvision", "transformers"])
    parser.add_argument("--rule", help="only this rule code or prefix (passed as --select)")
    parser.add_argument("--context", type=int, default=0, help="source lines of context around each finding")
    parser.add_argument("--jobs", type=int, default=0, help="-j for gradguard (default: all cores)")
    args = parser.parse_args(argv)

    dirs = [corpus.ensure_package(p) for p in args.packages]
    n_files = sum(len(corpus.python_files(d)) for d in dirs)
    t0 = time.perf_counter()
    findings, stderr = run_gradguard(dirs, args.rule, args.jobs)
    wall = time.perf_counter() - t0

    by_rule: dict[str, list[dict]] = defaultdict(list)
    for f in findings:
        by_rule[f["code"]].append(f)
    print(f"{', '.join(args.packages)}: {n_files} files, {len(findings)} findings in {wall:.1f}s wall")
    notes = [line for line in stderr.splitlines() if line.startswith("gradguard:")]
    if notes:
        print(f"{len(notes)} files skipped or failed:")
        for line in notes[:20]:
            print(f"  {line}")
    print()
    print("findings per rule:")
    for code, items in sorted(by_rule.items()):
        print(f"  {code} {items[0]['name']:<34} {len(items):5d}")
    per_package = Counter(Path(f["path"]).relative_to(corpus.SRC_DIR).parts[0] for f in findings)
    print("findings per package: " + ", ".join(f"{k}={v}" for k, v in sorted(per_package.items())))

    for code, items in sorted(by_rule.items()):
        print()
        print(f"=== {code} {items[0]['name']} ({len(items)}) " + "=" * 40)
        for f in sorted(items, key=lambda f: (f["path"], f["line"], f["column"])):
            rel = Path(f["path"]).relative_to(corpus.SRC_DIR)
            print(f"\n{rel}:{f['line']}:{f['column']}: {f['message']}")
            for number, text in source_lines(f["path"], f["line"], f["end_line"], args.context):
                marker = ">" if f["line"] <= number <= f["end_line"] else " "
                print(f"  {marker}{number:5d} | {text}")

    corpus.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = corpus.RESULTS_DIR / f"precision-{stamp}.json"
    out.write_text(
        json.dumps({"packages": args.packages, "files": n_files, "findings": findings}, indent=2) + "\n"
    )
    print(f"\nwrote {out.relative_to(corpus.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
