"""Record the CLI's findings on library sources, or compare them with a recording.

    .venv/bin/python bench/findings_diff.py record before.json            # timm torchvision transformers
    .venv/bin/python bench/findings_diff.py compare before.json           # run again, diff with the file
    .venv/bin/python bench/findings_diff.py compare before.json after.json  # diff two recordings
    .venv/bin/python bench/findings_diff.py record out.json --packages timm
    .venv/bin/python bench/findings_diff.py record out.json --packages kornia-0.9.0 monai-1.6.1  # bench/.corpus/libs/

For speed work: a change that only makes the engine faster must leave every finding (code, path, line,
column, message) and every offered fix as it was. Runs `python -m gradguard check --format json` from
this repository's `server/`, one package at a time; exits 1 when the findings differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus

KEY = ("code", "path", "line", "column", "message")


def run_check(package: str, jobs: int) -> list[dict]:
    # a library unpacked by bench/libraries.py (never one of its holdout set while working), or a wheel
    unpacked = corpus.CORPUS_DIR / "libs" / package
    directory = unpacked if unpacked.is_dir() else corpus.ensure_package(package)
    # cold runs, and no result cache written into the corpus
    env = dict(os.environ, PYTHONPATH=str(corpus.ROOT / "server"), NO_COLOR="1", GRADGUARD_NO_CACHE="1")
    argv = [sys.executable, "-m", "gradguard", "check", "--format", "json", "--exit-zero"]
    argv += ["-j", str(jobs), str(directory)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"gradguard check {package} exited {proc.returncode}: {proc.stderr[-2000:]}")
    findings = json.loads(proc.stdout or "[]")
    root = str(corpus.CORPUS_DIR.resolve())
    for finding in findings:  # paths relative to the corpus, so recordings compare across checkouts
        path = str(Path(finding["path"]).resolve())
        if path.startswith(root):
            finding["path"] = os.path.relpath(path, root)
    return findings


def record(packages: list[str], jobs: int) -> list[dict]:
    findings: list[dict] = []
    for package in packages:
        found = run_check(package, jobs)
        print(f"{package}: {len(found)} findings", file=sys.stderr)
        findings.extend(found)
    return sorted(findings, key=lambda f: tuple(str(f.get(k)) for k in KEY))


def key(finding: dict) -> tuple:
    return tuple(finding.get(k) for k in KEY)


def compare(before: list[dict], after: list[dict]) -> int:
    old = {key(f): f for f in before}
    new = {key(f): f for f in after}
    gone = sorted(set(old) - set(new), key=str)
    added = sorted(set(new) - set(old), key=str)
    changed = sorted((k for k in set(old) & set(new) if old[k] != new[k]), key=str)
    for k in gone:
        print("- " + " ".join(map(str, k)))
    for k in added:
        print("+ " + " ".join(map(str, k)))
    for k in changed:
        print("~ " + " ".join(map(str, k)) + " (same finding, other fields differ: fix or explanation)")
    print(
        f"before {len(before)}, after {len(after)}: {len(gone)} gone, {len(added)} new, "
        f"{len(changed)} with other fields changed"
    )
    return 1 if gone or added or changed or len(before) != len(after) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["record", "compare"])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--packages", nargs="+", default=["timm", "torchvision", "transformers"])
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    if args.mode == "record":
        findings = record(args.packages, args.jobs)
        args.files[0].write_text(json.dumps(findings, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"{len(findings)} findings written to {args.files[0]}", file=sys.stderr)
        return 0
    before = json.loads(args.files[0].read_text(encoding="utf-8"))
    if len(args.files) > 1:
        after = json.loads(args.files[1].read_text(encoding="utf-8"))
    else:
        after = record(args.packages, args.jobs)
    return compare(before, after)


if __name__ == "__main__":
    raise SystemExit(main())
