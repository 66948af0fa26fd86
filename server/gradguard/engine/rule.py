"""The rule framework.

A rule is one class in one module under `gradguard.rules`: its code, name, message,
markdown explanation, VALID/INVALID examples (which are its tests and its docs) and
its detection. Everything user-facing about a rule (hover, `gradguard explain`, the
README table, SARIF rule metadata) is read from this class.
"""

from __future__ import annotations

import ast
import string
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from gradguard.engine.finding import Applicability, Finding, Fix, Severity, TextEdit
from gradguard.engine.index import ModuleContext, Unit

DOCS_BASE_URL = "https://github.com/gradguard/gradguard/blob/main/docs/rules.md"


@dataclass
class Valid:
    """Code the rule must stay silent on.

    run: driver code appended when executing; when given, the torch tests run `code` + `run`
        and see it work (the code the rule is quiet on is correct, not merely unflagged).
    """

    code: str
    note: str = ""
    run: str = ""

    def __post_init__(self) -> None:
        self.code = textwrap.dedent(self.code).lstrip("\n")
        self.run = textwrap.dedent(self.run).lstrip("\n")


@dataclass
class Invalid:
    """Code the rule must flag.

    lines: the 1-based start lines of the expected findings of this rule, in order.
    fixed: the text after applying all of this rule's fixes (safe and unsafe); None
        means the rule offers no fix here.
    raises: a substring of the error PyTorch raises when `code` + `run` executes
        (checked by the torch tests); None when the bug is silent (e.g. no learning).
    run: driver code appended to the example (and to the fixed code) when executing.
    check_fixed: driver code appended only to the fixed code; it must run cleanly and
        typically asserts that gradients now arrive.
    """

    code: str
    lines: list[int]
    fixed: str | None = None
    raises: str | None = None
    run: str = ""
    check_fixed: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        self.code = textwrap.dedent(self.code).lstrip("\n")
        if self.fixed is not None:
            self.fixed = textwrap.dedent(self.fixed).lstrip("\n")
        self.run = textwrap.dedent(self.run).strip("\n")
        self.check_fixed = textwrap.dedent(self.check_fixed).strip("\n")


def split_message(text: str) -> tuple[str, str]:
    """(message, detail) of a rule's message text, as in a commit message: its first line is the
    short `message` (what is wrong, under ~100 characters for the Problems panel), the rest the
    `detail` (what PyTorch does, the consequence, the way out). Only a line break outside
    backticks separates them (code quoted in a message may span lines); both come out on one line."""
    ticks = 0
    for i, char in enumerate(text):
        if char == "`":
            ticks += 1
        elif char == "\n" and ticks % 2 == 0:
            return " ".join(text[:i].split()), " ".join(text[i + 1 :].split())
    return " ".join(text.split()), ""


class Message(str):
    """A message variant of a rule: a `str.format` template that declares its parameters, the
    `{names}` in it (parsed from the template; `{{` and `}}` are literal braces). `format()` takes
    exactly those names as keywords and refuses a missing or an unknown one, so a variant is never
    shown with a placeholder left in it, nor filled with a value it does not say. It is a `str`, so
    the docs and the catalog read it as the template it is."""

    params: frozenset[str]

    def __new__(cls, template: str) -> Message:
        names = set()
        for _, field, _, _ in string.Formatter().parse(template):
            if field is None:
                continue
            if not field.isidentifier():
                raise ValueError(f"message placeholder {{{field}}} is not a plain name: {template!r}")
            names.add(field)
        message = super().__new__(cls, template)
        message.params = frozenset(names)
        return message

    def format(self, *args: object, **params: object) -> str:
        if args:
            raise TypeError(f"a message is filled by name, not position: {str(self)!r}")
        missing, unknown = self.params - params.keys(), params.keys() - self.params
        if missing or unknown:
            raise TypeError(
                f"message {str(self)!r} takes {sorted(self.params)}: missing {sorted(missing)}, "
                f"unknown {sorted(unknown)}"
            )
        return str.format(self, **params)


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]  # one line: what the rule catches
    message: ClassVar[str]  # default message of a finding (a `Message` when it has parameters)
    explanation: ClassVar[str]  # markdown: what PyTorch does, why it matters, the fix
    # One or two sentences for the hover: why this is a problem. Empty: the explanation's first
    # paragraph, when that is short enough (see `short_why`).
    why: ClassVar[str] = ""
    severity: ClassVar[Severity] = Severity.WARNING
    fix_applicability: ClassVar[Applicability | None] = None  # None: the rule never fixes
    tags: ClassVar[tuple[str, ...]] = ()
    # A suggestion reports code that is correct today (a safer equivalent form exists). The editor
    # shows it; `gradguard check` reports it only when `select` names it, so that a CI run lists
    # problems only.
    suggestion: ClassVar[bool] = False
    VALID: ClassVar[list[Valid]] = []
    INVALID: ClassVar[list[Invalid]] = []
    # Cheap applicability, checked by the analyzer before it indexes a top-level def/class
    # unit (the script unit always runs every rule). Set these only where the rule's code
    # provably cannot report anything otherwise; the defaults mean "always run".
    # needs_class: "module" -- the unit must be a top-level nn.Module subclass (the rule only
    #   starts from `unit.module_classes()`); "function" -- a torch.autograd.Function subclass.
    needs_class: ClassVar[str | None] = None
    # triggers: substrings of the unit's source text (its decorators included), at least one
    #   of which must occur for the rule to be able to fire.
    triggers: ClassVar[tuple[str, ...]] = ()

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        """A further cheap pre-check for what `needs_class`/`triggers` cannot express; the
        analyzer calls it (only when a rule overrides it) after those passed. `text` is the
        source text of the top-level `statement` (decorators included)."""
        return True

    def check(self, unit: Unit) -> Iterable[Finding]:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers for subclasses ---------------------------------------------------------------
    def finding(
        self,
        unit: Unit,
        node: ast.AST,
        message: str | None = None,
        fix: Fix | None = None,
        end_node: ast.AST | None = None,
        alternatives: list[Fix] | None = None,
        detail: str = "",
    ) -> Finding:
        """A finding at `node`; `message` (else the rule's) is split by `split_message`."""
        message, rest = split_message(message or self.message)
        detail = detail or rest
        line, col, end_line, end_col = unit.node_range(node)
        if end_node is not None:
            _, _, end_line, end_col = unit.node_range(end_node)
        return Finding(
            code=self.code,
            name=self.name,
            severity=self.severity,
            message=message,
            line=line,
            column=col,
            end_line=end_line,
            end_column=end_col,
            path=unit.path,
            fix=fix,
            alternatives=alternatives or [],
            tags=self.tags,
            detail=detail,
        )

    def make_fix(
        self,
        title: str,
        edits: list[TextEdit] | Callable[[], list[TextEdit] | None],
        applicability: Applicability | None = None,
    ) -> Fix:
        return Fix(title, applicability or self.fix_applicability or Applicability.UNSAFE, edits)

    @classmethod
    def short_why(cls) -> str:
        """One or two sentences on why the finding matters (the hover's text)."""
        return short_why(cls)

    @classmethod
    def doc_url(cls) -> str:
        return doc_url(cls)

    @classmethod
    def full_explanation(cls) -> str:
        """Markdown used by hover, `gradguard explain` and the docs."""
        return full_explanation(cls)


class Documented(Protocol):
    """What the catalog knows about a finding code: a `Rule` class, or plain `CodeInfo` for the
    codes no rule produces (GG000, GG001 and the probe's GG9xx)."""

    # read-only: a frozen `CodeInfo` and a `Rule` class both fit
    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def explanation(self) -> str: ...
    @property
    def why(self) -> str: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def fix_applicability(self) -> Applicability | None: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def INVALID(self) -> Sequence[Invalid]: ...  # the rules spell their class attribute so

    def short_why(self) -> str: ...

    def doc_url(self) -> str: ...

    def full_explanation(self) -> str: ...


@dataclass(frozen=True)
class CodeInfo:
    """The metadata of a finding code that no rule in `gradguard.rules` produces: read by
    `gradguard explain`, hover, `gradguard rules`, SARIF and the docs exactly like a rule's."""

    code: str
    name: str
    summary: str
    message: str
    explanation: str
    why: str = ""
    severity: Severity = Severity.WARNING
    fix_applicability: Applicability | None = None
    tags: tuple[str, ...] = ()
    VALID: tuple[Valid, ...] = ()
    INVALID: tuple[Invalid, ...] = ()

    def short_why(self) -> str:
        return short_why(self)

    def doc_url(self) -> str:
        return doc_url(self)

    def full_explanation(self) -> str:
        return full_explanation(self)


def short_why(meta: Documented | type[Rule]) -> str:
    """One or two sentences on why the finding matters (the hover's text)."""
    return " ".join(meta.why.split()) or " ".join(meta.summary.split())


def doc_url(meta: Documented | type[Rule]) -> str:
    return f"{DOCS_BASE_URL}#{meta.code.lower()}-{meta.name}"


def full_explanation(meta: Documented | type[Rule]) -> str:
    """Markdown used by hover, `gradguard explain` and the docs."""
    parts = [
        f"## {meta.code} {meta.name}",
        "",
        meta.summary.strip(),
        "",
        textwrap.dedent(meta.explanation).strip(),
    ]
    if meta.INVALID:
        example = meta.INVALID[0]
        parts += ["", "### Example", "", "```python", example.code.rstrip(), "```"]
        if example.fixed:
            parts += ["", "Fixed:", "", "```python", example.fixed.rstrip(), "```"]
    fix = {
        None: "No automatic fix.",
        Applicability.SAFE: "Automatic fix: safe.",
        Applicability.UNSAFE: "Automatic fix: unsafe (review it; applied only on request).",
    }[meta.fix_applicability]
    # No link to a web page: this text is the documentation, and editors show it locally.
    parts += ["", fix]
    return "\n".join(parts) + "\n"


# The catalog's names, once defined here: `gradguard.engine.catalog` holds them now.
_MOVED = ("all_rules", "rule_class", "iter_rule_metadata", "SyntaxErrorRule", "InternalErrorRule")


def __getattr__(name: str) -> object:
    if name in _MOVED:
        from gradguard.engine import catalog

        return getattr(catalog, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
