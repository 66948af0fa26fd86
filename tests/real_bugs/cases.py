"""The real-bug corpus: autograd bugs reconstructed from public bug reports.

Each case is a runnable script whose header names where the bug comes from and what should happen:

    # source: <URL of the issue / thread / commit>     (one line per source)
    # what: <what the person wrote and what happened>  (continuation lines start with "#   ")
    # expect: GG204@23 GG401@40                        (`none` for correct programs)
    # fails: <substring of the exception>              (`no-learning`: an AssertionError; `none`: runs cleanly)
    # fix: <the mechanical fix in words, or `none`>

`expect` lists the findings gradguard should report: a rule code (or alternatives joined by `|`, any
of which counts) and the 1-based line of the offending statement. This module only parses; the
tests in this directory run the cases and `bench/recall.py` measures how many gradguard finds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

CASES_DIR = Path(__file__).resolve().parent

# codes the corpus may expect: the engine's rules plus the codes planned for them (docs: issue 10/13)
PLANNED_CODES = frozenset({"GG205", "GG206"})

_EXPECT_ITEM = re.compile(r"^(GG\d{3}(?:\|GG\d{3})*)@(\d+)$")
_KEYS = ("source", "what", "expect", "fails", "fix")


@dataclass(frozen=True)
class Expected:
    codes: tuple[str, ...]  # alternatives: a finding with any of these codes on `line` counts
    line: int

    def __str__(self) -> str:
        return f"{'|'.join(self.codes)}@{self.line}"


@dataclass
class Case:
    path: Path
    sources: list[str]
    what: str
    expected: list[Expected]
    fails: str
    fix: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def silent(self) -> bool:
        return not self.expected


class HeaderError(ValueError):
    pass


def parse_header(text: str, path: Path) -> Case:
    values: dict[str, list[str]] = {key: [] for key in _KEYS}
    last: str | None = None
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        match = re.match(r"^# (\w+): ?(.*)$", line)
        if match and match.group(1) in values:
            last = match.group(1)
            values[last].append(match.group(2).strip())
        elif last is not None and re.match(r"^#\s{2,}\S", line):
            values[last][-1] += " " + line[1:].strip()
        else:
            last = None
    for key in _KEYS:
        if not values[key]:
            raise HeaderError(f"{path.name}: missing '# {key}:' header line")
        if key != "source" and len(values[key]) > 1:
            raise HeaderError(f"{path.name}: '# {key}:' given twice")
    expected: list[Expected] = []
    expect = values["expect"][0]
    if expect != "none":
        for item in expect.split():
            match = _EXPECT_ITEM.match(item)
            if not match:
                raise HeaderError(f"{path.name}: bad expect item {item!r} (want CODE@LINE)")
            expected.append(Expected(tuple(match.group(1).split("|")), int(match.group(2))))
    return Case(
        path=path,
        sources=values["source"],
        what=values["what"][0],
        expected=expected,
        fails=values["fails"][0],
        fix=values["fix"][0],
    )


def case_paths(directory: Path = CASES_DIR) -> list[Path]:
    """Every case script: a .py file whose first line is a `# source:` header."""
    paths = []
    for path in sorted(directory.glob("*.py")):
        with path.open(encoding="utf-8") as handle:
            if handle.readline().startswith("# source:"):
                paths.append(path)
    return paths


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    return [parse_header(p.read_text(encoding="utf-8"), p) for p in case_paths(directory)]
