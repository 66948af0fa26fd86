"""The CLI's speed with its result cache: cold, warm, and after a one-file edit.

    .venv/bin/python bench/cache_speed.py                      # timm + torchvision
    .venv/bin/python bench/cache_speed.py --packages timm --jobs 1

Each package's sources are copied to a temporary directory (the edits and the cache stay out
of the shared corpus), then `gradguard check .` runs there, as a user would run it:

    no cache        --no-cache: the cold speed, the headline figure
    cold + write    an empty cache: analysing everything and writing the entries
    warm            nothing changed: every result read back
    body edit       a comment appended to one file: that file's entry misses, the rest hit
    top-level edit  a new top-level name in one file: the project index's facts change, so
                    every entry misses (the cache is coarse across files on purpose)

CPU time is the children's (user + system, workers included), as in bench/libraries.py.
Figures only; nothing here passes or fails (but a warm output differing from the cold one
is reported, loudly).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(directory: Path, jobs: int, *extra: str) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADGUARD_")}
    env.update(PYTHONPATH=str(corpus.ROOT / "server"), NO_COLOR="1")
    argv = [sys.executable, "-m", "gradguard", "check", "--format", "json", "--exit-zero", "-j", str(jobs)]
    before = _children_cpu()
    proc = subprocess.run([*argv, *extra, "."], capture_output=True, text=True, env=env, cwd=directory)
    cpu = _children_cpu() - before
    if proc.returncode not in (0, 1, 2):
        raise SystemExit(f"gradguard failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return cpu, proc.stdout


def entries(directory: Path) -> set[Path]:
    return set((directory / ".gradguard_cache").glob("v*/*/*/*.json"))


def measure(
    work: Path,
    files: list[Path],
    lines: int,
    jobs: int,
    totals: dict[str, float],
    label: str,
    *extra: str,
    expect: str | None = None,
) -> str:
    before = entries(work)
    cpu, out = run(work, jobs, *extra)
    misses = len(entries(work) - before)
    totals[label] = totals.get(label, 0.0) + cpu
    same = "" if expect is None else ("  output identical" if out == expect else "  OUTPUT DIFFERS")
    written = "" if "--no-cache" in extra else f"  {misses} of {len(files)} files analysed"
    print(f"  {label:<15} {cpu:7.2f} CPU s  {lines / cpu:>9,.0f} lines/CPU s{written}{same}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", nargs="+", default=["timm", "torchvision"])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)

    totals: dict[str, float] = {}
    total_lines = 0
    with tempfile.TemporaryDirectory(prefix="gg-cache-bench-") as tmp:
        for package in args.packages:
            source = corpus.ensure_package(package)
            work = Path(tmp) / package
            shutil.copytree(source, work / source.name)
            files = corpus.python_files(work)
            lines = sum(corpus.count_lines(p.read_text(encoding="utf-8", errors="replace")) for p in files)
            total_lines += lines
            target = max(files, key=lambda p: p.stat().st_size)  # the largest file: the worst miss
            print(f"{package}: {len(files)} files, {lines:,} lines (edited: {target.relative_to(work)})")

            reference = measure(work, files, lines, args.jobs, totals, "no cache", "--no-cache")
            measure(work, files, lines, args.jobs, totals, "cold + write", expect=reference)
            measure(work, files, lines, args.jobs, totals, "warm", expect=reference)
            text = target.read_text(encoding="utf-8")
            target.write_text(text + "\n# an edit that changes no top-level fact\n", encoding="utf-8")
            edited = run(work, args.jobs, "--no-cache")[1]
            measure(work, files, lines, args.jobs, totals, "body edit", expect=edited)
            target.write_text(text + "\nAN_EDIT_THAT_BINDS_A_NAME = 1\n", encoding="utf-8")
            edited = run(work, args.jobs, "--no-cache")[1]
            measure(work, files, lines, args.jobs, totals, "top-level edit", expect=edited)
    print(f"all: {total_lines:,} lines")
    for label, cpu in totals.items():
        print(f"  {label:<15} {cpu:7.2f} CPU s  {total_lines / cpu:>9,.0f} lines/CPU s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
