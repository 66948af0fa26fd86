"""Findings and fixes: plain data, independent of any editor protocol.

Positions are 1-based lines and 1-based columns counted in Unicode code points
(what a person sees). Converting to UTF-8 bytes (ast) or UTF-16 units (LSP) is the
job of `SourceFile` and of the language server.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFORMATION = "information"
    HINT = "hint"


class Applicability(str, enum.Enum):
    SAFE = "safe"  # keeps behaviour except for the bug it fixes; applied by --fix and fix-all
    UNSAFE = "unsafe"  # may change other behaviour; only with --unsafe-fixes or by hand


@dataclass(frozen=True, order=True)
class TextEdit:
    """Replace [start, end) with new_text. Lines and columns are 1-based, columns in code points."""

    start_line: int
    start_column: int
    end_line: int
    end_column: int
    new_text: str

    def shifted(self, line_delta: int) -> "TextEdit":
        return TextEdit(
            self.start_line + line_delta,
            self.start_column,
            self.end_line + line_delta,
            self.end_column,
            self.new_text,
        )

    def to_dict(self) -> dict:
        return {
            "start_line": self.start_line,
            "start_column": self.start_column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "new_text": self.new_text,
        }


class Fix:
    """A proposed change. Edits are computed lazily: building them may need libcst,
    which is too slow to run for every finding on every keystroke."""

    __slots__ = ("title", "applicability", "_compute", "_edits", "kind")

    def __init__(
        self,
        title: str,
        applicability: Applicability,
        edits: list[TextEdit] | Callable[[], list[TextEdit] | None],
        kind: str = "fix",
    ) -> None:
        self.title = title
        self.applicability = Applicability(applicability)
        self.kind = kind
        self._compute: Callable[[], list[TextEdit] | None] | None
        if callable(edits):
            self._compute = edits
            self._edits: list[TextEdit] | None = None
        else:
            self._compute = None
            self._edits = list(edits)

    @property
    def edits(self) -> list[TextEdit]:
        """The edits; an empty list when the fix turned out not to be applicable."""
        if self._edits is None:
            computed = self._compute() if self._compute else None
            self._edits = list(computed) if computed else []
            self._compute = None
        return self._edits

    @property
    def safe(self) -> bool:
        return self.applicability is Applicability.SAFE

    @property
    def pending(self) -> bool:
        """Whether the edits are still to be computed (from the nodes the rule kept)."""
        return self._edits is None

    def shifted(self, line_delta: int) -> "Fix":
        if line_delta == 0:
            return self
        if self._edits is not None:
            return Fix(
                self.title, self.applicability, [e.shifted(line_delta) for e in self._edits], self.kind
            )
        # Stay lazy: the edits are computed against the unit's own text, then moved.
        return Fix(
            self.title, self.applicability, lambda: [e.shifted(line_delta) for e in self.edits], self.kind
        )

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "applicability": self.applicability.value,
            "edits": [e.to_dict() for e in self.edits],
        }


@dataclass
class Finding:
    code: str
    name: str
    severity: Severity
    message: str
    line: int
    column: int
    end_line: int
    end_column: int
    path: str = ""
    fix: Fix | None = None
    # Extra fixes a client may offer beside the main one (e.g. GG101's
    # "convert to torch.autograd.Function"). Never applied by fix-all.
    alternatives: list[Fix] = field(default_factory=list)
    tags: tuple[str, ...] = ()  # "unnecessary", "deprecated"
    source: str = "gradguard"
    # The rest of what the finding has to say (what torch does, the consequence, the way out):
    # `message` is the short sentence an editor's Problems panel shows (under ~100 characters),
    # `detail` goes to the hover, to the CLI's second line and to JSON/SARIF. Empty: none.
    detail: str = ""
    cell: int | None = None  # notebooks: the 1-based cell; line and columns are then within it

    @property
    def sort_key(self) -> tuple:
        return (self.path, self.line, self.column, self.code, self.end_line, self.end_column)

    def shifted(self, line_delta: int) -> "Finding":
        if line_delta == 0:
            return self
        return Finding(
            self.code,
            self.name,
            self.severity,
            self.message,
            self.line + line_delta,
            self.column,
            self.end_line + line_delta,
            self.end_column,
            self.path,
            self.fix.shifted(line_delta) if self.fix else None,
            [f.shifted(line_delta) for f in self.alternatives],
            self.tags,
            self.source,
            self.detail,
        )

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "detail": self.detail,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "fix": self.fix.to_dict() if self.fix and self.fix.edits else None,
            **({"cell": self.cell} if self.cell is not None else {}),
        }
