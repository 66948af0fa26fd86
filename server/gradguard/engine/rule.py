"""The rule framework.

A rule is one class in one module under `gradguard.rules`: its code, name, message,
markdown explanation, VALID/INVALID examples (which are its tests and its docs) and
its detection. Everything user-facing about a rule (hover, `gradguard explain`, the
README table, SARIF rule metadata) is read from this class.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import textwrap
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable, Iterator

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


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]  # one line: what the rule catches
    message: ClassVar[str]  # default message of a finding
    explanation: ClassVar[str]  # markdown: what PyTorch does, why it matters, the fix
    # One or two sentences for the hover: why this is a problem. Empty: the explanation's first
    # paragraph, when that is short enough (see `short_why`).
    why: ClassVar[str] = ""
    severity: ClassVar[Severity] = Severity.WARNING
    fix_applicability: ClassVar[Applicability | None] = None  # None: the rule never fixes
    tags: ClassVar[tuple[str, ...]] = ()
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
        return " ".join(cls.why.split()) or " ".join(cls.summary.split())

    @classmethod
    def doc_url(cls) -> str:
        return f"{DOCS_BASE_URL}#{cls.code.lower()}-{cls.name}"

    @classmethod
    def full_explanation(cls) -> str:
        """Markdown used by hover, `gradguard explain` and the docs."""
        parts = [
            f"## {cls.code} {cls.name}",
            "",
            cls.summary.strip(),
            "",
            textwrap.dedent(cls.explanation).strip(),
        ]
        if cls.INVALID:
            example = cls.INVALID[0]
            parts += ["", "### Example", "", "```python", example.code.rstrip(), "```"]
            if example.fixed:
                parts += ["", "Fixed:", "", "```python", example.fixed.rstrip(), "```"]
        fix = {
            None: "No automatic fix.",
            Applicability.SAFE: "Automatic fix: safe.",
            Applicability.UNSAFE: "Automatic fix: unsafe (review it; applied only on request).",
        }[cls.fix_applicability]
        # No link to a web page: this text is the documentation, and editors show it locally.
        parts += ["", fix]
        return "\n".join(parts) + "\n"


class SyntaxErrorRule(Rule):
    """Not a real rule: the metadata of the GG000 finding the analyzer emits."""

    code = "GG000"
    name = "syntax-error"
    summary = "The file does not parse; gradguard cannot check it until it does."
    why = "gradguard reads the file with Python's own parser: until it parses, no other rule can check it."
    message = "Syntax error"
    explanation = """
    gradguard reads your code with Python's own parser. While the file has a syntax
    error, no other rule can run on it; the language server keeps showing the last
    findings until the file parses again.
    """
    severity = Severity.ERROR


class InternalErrorRule(Rule):
    """Not a real rule: the metadata of the GG001 finding that stands for a rule that failed."""

    code = "GG001"
    name = "internal-error"
    summary = "A rule failed on this code (a bug in gradguard); its findings here are missing."
    why = "A check that silently skipped code would pass code it never read: the gap is reported instead."
    message = "Internal error"
    explanation = """
    One of gradguard's rules raised an exception on this part of the file (for example a
    `RecursionError` on a very deeply nested expression). The other rules' findings are still
    reported, but the failing rule's findings for this class or function are missing, so the
    check is incomplete: `gradguard check` exits with status 2. The message names the rule and
    the cause; the full traceback is in the log (stderr for `gradguard check`, the "gradguard"
    output channel in VS Code). Please report it with the code that triggers it.
    """
    severity = Severity.ERROR


_REGISTRY: dict[str, type[Rule]] | None = None


def all_rules() -> dict[str, type[Rule]]:
    """Every rule, by code, discovered from the modules of `gradguard.rules`."""
    global _REGISTRY
    if _REGISTRY is None:
        import gradguard.rules as package

        found: dict[str, type[Rule]] = {}
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, Rule)
                    and value is not Rule
                    and value.__module__ == module.__name__
                    and getattr(value, "code", None)
                ):
                    if value.code in found:
                        raise RuntimeError(f"duplicate rule code {value.code}")
                    found[value.code] = value
        _REGISTRY = dict(sorted(found.items()))
    return _REGISTRY


def rule_class(code: str) -> type[Rule] | None:
    if code == SyntaxErrorRule.code:
        return SyntaxErrorRule
    if code == InternalErrorRule.code:
        return InternalErrorRule
    found = all_rules().get(code.upper())
    if found is None and code.upper().startswith("GG9"):
        # the probe's codes (GG901-GG903) are not static rules, but explain/hover know them
        from gradguard.probe.metadata import PROBE_CODES

        found = PROBE_CODES.get(code.upper())
    return found


def iter_rule_metadata() -> Iterator[type[Rule]]:
    yield SyntaxErrorRule
    yield InternalErrorRule
    yield from all_rules().values()
