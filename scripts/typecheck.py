"""mypy over server/gradguard ([tool.mypy] in pyproject.toml), held to a baseline that only goes down.

    python scripts/typecheck.py            fail when mypy reports more errors than scripts/mypy-baseline
    python scripts/typecheck.py --update   write the current count there (after fixing some)

Without mypy installed (it comes with the `test` extra) the check is skipped, except under CI.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "scripts" / "mypy-baseline"


def count_errors(output: str) -> int:
    """The error count of mypy's last line ("Found 3 errors in 2 files ..." or "Success: ...")."""
    found = re.search(r"^Found (\d+) errors? in \d+ files?", output, re.MULTILINE)
    if found:
        return int(found.group(1))
    if re.search(r"^Success: no issues found", output, re.MULTILINE):
        return 0
    raise ValueError(f"no mypy summary in its output:\n{output[-2000:]}")


def main(argv: list[str]) -> int:
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("CI"):
            print("mypy is not installed (pip install -e '.[test]')", file=sys.stderr)
            return 1
        print("skipped: mypy is not installed (pip install -e '.[test]')")
        return 0
    result = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in (0, 1):
        print(result.stdout + result.stderr, file=sys.stderr)
        return 2
    errors = count_errors(result.stdout)
    allowed = int(BASELINE.read_text(encoding="utf-8").split()[0])
    if "--update" in argv:
        BASELINE.write_text(f"{errors}\n", encoding="utf-8")
        print(f"mypy: {errors} errors; baseline {allowed} -> {errors}")
        return 0
    if errors > allowed:
        print(result.stdout, end="")
        print(f"mypy: {errors} errors, more than the baseline's {allowed}: fix the new ones", file=sys.stderr)
        return 1
    note = (
        f"; lower the baseline: python {Path(__file__).relative_to(ROOT)} --update"
        if errors < allowed
        else ""
    )
    print(f"mypy: {errors} errors (baseline {allowed}){note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
