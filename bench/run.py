"""Throughput benchmark: gradguard vs ruff vs torchfix on the .py files of real libraries.

    .venv/bin/python bench/run.py                 # timm + torchvision, all tools
    .venv/bin/python bench/run.py --packages timm --no-torchfix --repeat 3

Reports figures, never passes or fails. Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
from gradguard.engine.analyzer import Analyzer, parse
from gradguard.engine.config import Config
from gradguard.engine.rule import all_rules


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def parse_paused(text: str, path: str) -> None:
    """`ast.parse` with the cyclic GC paused, as `Analyzer.check` parses (the fair floor)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        parse(text, path)
    finally:
        if enabled:
            gc.enable()


def run_tool(name: str, argv: list[str], env: dict | None = None) -> dict:
    """Run a command to completion; CPU seconds of it and all its (waited-for) children."""
    before = children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env, text=True, check=False)
    wall = time.perf_counter() - start
    cpu = children_cpu() - before
    return {
        "tool": name,
        "argv": argv,
        "returncode": proc.returncode,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "stdout": proc.stdout,
        "stderr_tail": proc.stderr[-2000:],
    }


def in_process(files: list[tuple[Path, str]], repeat: int) -> dict:
    """Parse + check every file in this process (no interpreter start-up, no output)."""
    best = None
    per_file: dict[str, float] = {}
    findings = 0
    errors = 0
    for _ in range(repeat):
        analyzer = Analyzer(Config())  # fresh: no cache hits between runs
        total = 0.0
        findings = errors = 0
        for path, text in files:
            t0 = time.process_time()
            result = analyzer.check(text, str(path))
            elapsed = time.process_time() - t0
            total += elapsed
            findings += len(result.findings)
            errors += len(result.errors)
            key = str(path)
            per_file[key] = min(per_file.get(key, elapsed), elapsed)
        best = total if best is None else min(best, total)
    return {"cpu_seconds": best, "findings": findings, "rule_errors": errors, "per_file": per_file}


def largest_files(files: list[tuple[Path, str]], count: int, repeat: int) -> list[dict]:
    biggest = sorted(files, key=lambda item: corpus.count_lines(item[1]), reverse=True)[:count]
    rows = []
    for path, text in biggest:
        parse_times, check_times, wall_times = [], [], []
        for _ in range(repeat):
            t0 = time.process_time()
            parse_paused(text, str(path))
            parse_times.append(time.process_time() - t0)
            analyzer = Analyzer(Config())
            w0, t0 = time.perf_counter(), time.process_time()
            analyzer.check(text, str(path))  # parse + index + all rules + filter
            check_times.append(time.process_time() - t0)
            wall_times.append(time.perf_counter() - w0)
        rows.append(
            {
                "file": str(path.relative_to(corpus.SRC_DIR)),
                "lines": corpus.count_lines(text),
                "parse_cpu_ms": statistics.median(parse_times) * 1000,
                "check_cpu_ms": statistics.median(check_times) * 1000,
                "check_cpu_ms_min": min(check_times) * 1000,
                "check_wall_ms": statistics.median(wall_times) * 1000,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", nargs="+", default=["timm", "torchvision"])
    parser.add_argument("--jobs", type=int, default=1, help="-j for gradguard and torchfix (default 1)")
    parser.add_argument(
        "--repeat", type=int, default=5, help="repetitions for in-process and per-file timing"
    )
    parser.add_argument("--no-ruff", action="store_true")
    parser.add_argument("--no-torchfix", action="store_true")
    parser.add_argument("--no-cli", action="store_true", help="skip the gradguard CLI subprocess run")
    parser.add_argument("--slowest", type=int, default=10, help="list the N slowest files in-process")
    args = parser.parse_args(argv)

    dirs = [corpus.ensure_package(p) for p in args.packages]
    files: list[tuple[Path, str]] = []
    for d in dirs:
        for path in corpus.python_files(d):
            files.append((path, path.read_text(encoding="utf-8", errors="replace")))
    total_lines = sum(corpus.count_lines(text) for _, text in files)
    print(
        f"corpus: {', '.join(args.packages)}: {len(files)} files, {total_lines} lines; "
        f"{len(all_rules())} rules: {', '.join(sorted(all_rules()))}"
    )

    parse_cpu = []
    for _ in range(max(1, args.repeat // 2)):
        t0 = time.process_time()
        for path, text in files:
            parse_paused(text, str(path))
        parse_cpu.append(time.process_time() - t0)
    engine = in_process(files, args.repeat)

    tools: list[dict] = []
    # cold runs, and no result cache written into the corpus
    env = dict(os.environ, PYTHONPATH=str(corpus.ROOT / "server"), NO_COLOR="1", GRADGUARD_NO_CACHE="1")
    if not args.no_cli:
        result = run_tool(
            "gradguard check (CLI)",
            [
                sys.executable,
                "-m",
                "gradguard",
                "check",
                "--format",
                "json",
                "--exit-zero",
                "-j",
                str(args.jobs),
                *map(str, dirs),
            ],
            env=env,
        )
        try:
            result["findings"] = len(json.loads(result["stdout"] or "[]"))
        except json.JSONDecodeError:
            result["findings"] = None
        tools.append(result)
    ruff = None if args.no_ruff else corpus.ruff_executable()
    if ruff:
        result = run_tool(
            "ruff check --select ALL",
            [
                str(ruff),
                "check",
                "--isolated",
                "--select",
                "ALL",
                "--no-cache",
                "--exit-zero",
                "--output-format",
                "concise",
                *map(str, dirs),
            ],
        )
        result["findings"] = sum(
            1 for line in result["stdout"].splitlines() if ": " in line and line[:1] != " "
        )
        tools.append(result)
    torchfix = None if args.no_torchfix else corpus.ensure_torchfix()
    if torchfix:
        result = run_tool(
            "torchfix --select ALL", [str(torchfix), "--select", "ALL", "-j", str(args.jobs), *map(str, dirs)]
        )
        result["findings"] = sum(1 for line in result["stdout"].splitlines() if " TOR" in line)
        tools.append(result)

    biggest = largest_files(files, 3, args.repeat)

    # -- report ---------------------------------------------------------------------------
    rows = [
        ("ast.parse only (GC paused)", min(parse_cpu), None, None),
        ("gradguard engine (in-process)", engine["cpu_seconds"], None, engine["findings"]),
    ]
    rows += [(t["tool"], t["cpu_seconds"], t["wall_seconds"], t.get("findings")) for t in tools]
    print()
    print(
        f"{'tool':34} {'files':>6} {'lines':>8} {'CPU s':>8} {'wall s':>7} {'lines/CPU s':>12} {'findings':>9}"
    )
    for name, cpu, wall, found in rows:
        rate = total_lines / cpu if cpu else float("inf")
        wall_text = f"{wall:7.2f}" if wall is not None else f"{'-':>7}"
        found_text = f"{found:9d}" if isinstance(found, int) else f"{'-':>9}"
        print(f"{name:34} {len(files):6d} {total_lines:8d} {cpu:8.2f} {wall_text} {rate:12,.0f} {found_text}")
    for t in tools:
        if t["returncode"] not in (0, 1):
            print(f"  ! {t['tool']} exited {t['returncode']}: {t['stderr_tail'][-300:]}")
    print()
    print("largest files (CPU ms, median of runs, in-process, fresh analyzer; wall ms depends on load):")
    print(f"  {'file':50} {'lines':>6} {'parse':>7} {'check':>7} {'min':>7} {'wall':>7}")
    for row in biggest:
        print(
            f"  {row['file']:50} {row['lines']:6d} {row['parse_cpu_ms']:7.1f} {row['check_cpu_ms']:7.1f}"
            f" {row['check_cpu_ms_min']:7.1f} {row['check_wall_ms']:7.1f}"
        )
    slowest = sorted(engine["per_file"].items(), key=lambda kv: kv[1], reverse=True)[: args.slowest]
    print()
    print(f"slowest {len(slowest)} files in-process (CPU ms):")
    texts = {str(p): t for p, t in files}
    for path, seconds in slowest:
        lines = corpus.count_lines(texts[path])
        rel = str(Path(path).relative_to(corpus.SRC_DIR))
        print(
            f"  {rel:60} {lines:6d} lines {seconds * 1000:8.1f} ms  {lines / seconds if seconds else 0:10,.0f} lines/s"
        )
    if engine["rule_errors"]:
        print(f"\n! {engine['rule_errors']} rule errors during the in-process run")

    corpus.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = corpus.RESULTS_DIR / f"throughput-{stamp}.json"
    payload = {
        "timestamp": stamp,
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "packages": args.packages,
        "files": len(files),
        "lines": total_lines,
        "rules": sorted(all_rules()),
        "parse_cpu_seconds": min(parse_cpu),
        "engine": {k: v for k, v in engine.items() if k != "per_file"}
        | {"lines_per_cpu_second": total_lines / engine["cpu_seconds"]},
        "tools": [
            {k: v for k, v in t.items() if k not in ("stdout",)}
            | {"lines_per_cpu_second": total_lines / t["cpu_seconds"] if t["cpu_seconds"] else None}
            for t in tools
        ],
        "largest_files": biggest,
        "slowest_files": [{"file": p, "cpu_ms": s * 1000} for p, s in slowest],
    }
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out.relative_to(corpus.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
