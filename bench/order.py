"""Order-independence benchmark: checks files with the rules in other orders, the units in other
orders and each rule alone, and counts the files and findings that differ from a plain check.

    PYTHONPATH=server .venv/bin/python bench/order.py realbugs examples rules src dev
    PYTHONPATH=server .venv/bin/python bench/order.py --no-single path/to/dir_or_file ...

Targets: `realbugs` (tests/real_bugs), `examples` (examples/), `rules` (every rule's VALID/INVALID
examples), `src` (timm + torchvision under bench/.corpus/src), `dev` (the dev set of
bench/libraries.py under bench/.corpus/libs), or paths. Never the holdout sets."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from gradguard.engine.rule import all_rules  # noqa: E402
from order_harness import differences  # noqa: E402


def _dev_dirs() -> list[Path]:
    import libraries

    dirs = []
    for name, version in libraries.LIBRARIES["dev"]:
        path = libraries.LIBS_DIR / f"{libraries._normalized(name)}-{version}"
        if path.is_dir():
            dirs.append(path)
        else:
            print(f"(missing {path.name})", file=sys.stderr)
    return dirs


def _rule_examples() -> list[tuple[str, str]]:
    texts = []
    for code, rule in sorted(all_rules().items()):
        for kind, examples in (("VALID", rule.VALID), ("INVALID", rule.INVALID)):
            for index, example in enumerate(examples):
                texts.append((f"{code}:{kind}[{index}]", example.code))
    return texts


def _files(target: str) -> list[tuple[str, str]]:
    if target == "rules":
        return _rule_examples()
    dirs = {
        "realbugs": [ROOT / "tests" / "real_bugs"],
        "examples": [ROOT / "examples"],
        "src": [
            ROOT / "bench" / ".corpus" / "src" / "timm",
            ROOT / "bench" / ".corpus" / "src" / "torchvision",
        ],
    }.get(target)
    if target == "dev":
        dirs = _dev_dirs()
    paths = [Path(target)] if dirs is None else dirs
    out = []
    for path in paths:
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            try:
                out.append(
                    (str(file.relative_to(ROOT) if file.is_relative_to(ROOT) else file), file.read_text())
                )
            except (OSError, UnicodeDecodeError):
                continue
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="+")
    parser.add_argument("--no-single", action="store_true", help="skip the one-rule-at-a-time checks")
    parser.add_argument(
        "--single-found",
        action="store_true",
        help="one rule at a time only for the rules reporting on the file (large corpora)",
    )
    parser.add_argument("--json", help="write every difference to this file")
    args = parser.parse_args(argv)
    all_diffs: dict = {}
    for target in args.targets:
        files = _files(target)
        started = time.perf_counter()
        differing = 0
        findings = Counter()
        for name, text in files:
            if "torch" not in text:
                continue
            try:
                diffs = differences(
                    text, name, single=not args.no_single, codes=["found"] if args.single_found else None
                )
            except RecursionError:
                continue
            if diffs:
                differing += 1
                all_diffs[name] = {
                    v: [sorted(map(list, a)), sorted(map(list, b))] for v, (a, b) in diffs.items()
                }
                for variant, (lost, gained) in diffs.items():
                    findings[variant.split("-")[0]] += len(lost) + len(gained)
        elapsed = time.perf_counter() - started
        print(
            f"{target}: {len(files)} files, {differing} differ; findings differing by variant: "
            f"{dict(findings)} ({elapsed:.0f} s)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(all_diffs, indent=1))
    for name, diffs in all_diffs.items():
        print(name)
        for variant, (lost, gained) in diffs.items():
            for f in lost:
                print(f"  {variant}: only in the plain check: {f[0]} {f[1]}:{f[2]} {f[5][:90]}")
            for f in gained:
                print(f"  {variant}: only in the variant:     {f[0]} {f[1]}:{f[2]} {f[5][:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
