"""The catalog of finding codes: every code gradguard can report, with its metadata.

* GG000 and GG001, which the analyzer itself emits (a file that does not parse, a rule that
  failed), are plain `CodeInfo` here;
* the static rules GG1xx-GG6xx are the `Rule` classes of the modules of `RULE_PACKAGE`;
* the probe's codes GG9xx are plain `CodeInfo` listed by `PROBE_METADATA` (its `CODES`): the
  probe, not the analyzer, produces them, and nothing here runs them.

The rules and the probe sit above the engine, so both are loaded by module name, once, the first
time they are asked for: the engine imports neither (tests/test_layers.py checks that).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

from gradguard.engine.finding import Severity
from gradguard.engine.rule import CodeInfo, Documented, Rule

RULE_PACKAGE = "gradguard.rules"
PROBE_METADATA = "gradguard.probe.metadata"

SYNTAX_ERROR = CodeInfo(
    code="GG000",
    name="syntax-error",
    summary="The file does not parse; gradguard cannot check it until it does.",
    why="gradguard reads the file with Python's own parser: until it parses, no other rule can check it.",
    message="Syntax error",
    explanation="""
    gradguard reads your code with Python's own parser. While the file has a syntax
    error, no other rule can run on it; the language server keeps showing the last
    findings until the file parses again.
    """,
    severity=Severity.ERROR,
)

INTERNAL_ERROR = CodeInfo(
    code="GG001",
    name="internal-error",
    summary="A rule failed on this code (a bug in gradguard); its findings here are missing.",
    why="A check that silently skipped code would pass code it never read: the gap is reported instead.",
    message="Internal error",
    explanation="""
    One of gradguard's rules raised an exception on this part of the file (for example a
    `RecursionError` on a very deeply nested expression). The other rules' findings are still
    reported, but the failing rule's findings for this class or function are missing, so the
    check is incomplete: `gradguard check` exits with status 2. The message names the rule and
    the cause; the full traceback is in the log (stderr for `gradguard check`, the "gradguard"
    output channel in VS Code). Please report it with the code that triggers it.
    """,
    severity=Severity.ERROR,
)

# The names these had when they were `Rule` subclasses in `engine/rule.py`.
SyntaxErrorRule = SYNTAX_ERROR
InternalErrorRule = INTERNAL_ERROR

_BUILTIN: dict[str, CodeInfo] = {info.code: info for info in (SYNTAX_ERROR, INTERNAL_ERROR)}
_REGISTRY: dict[str, type[Rule]] | None = None
_PROBE: dict[str, CodeInfo] | None = None


def all_rules() -> dict[str, type[Rule]]:
    """Every static rule, by code, discovered from the modules of `RULE_PACKAGE` (the analyzer
    runs these). The same dict on every call, so a test can add a rule to it."""
    global _REGISTRY
    if _REGISTRY is None:
        package = importlib.import_module(RULE_PACKAGE)
        found: dict[str, type[Rule]] = {}
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{RULE_PACKAGE}.{info.name}")
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


def probe_codes() -> dict[str, CodeInfo]:
    """The probe's codes (GG901-GG903), by code: metadata only, never run by the analyzer."""
    global _PROBE
    if _PROBE is None:
        try:
            module = importlib.import_module(PROBE_METADATA)
        except ImportError:  # a build without the probe
            _PROBE = {}
        else:
            _PROBE = {info.code: info for info in module.CODES}
    return _PROBE


def rule_class(code: str) -> Documented | type[Rule] | None:
    """The metadata of a code, any case (`gg202`); None when no rule or probe has it."""
    code = code.upper()
    return _BUILTIN.get(code) or all_rules().get(code) or probe_codes().get(code)


lookup = rule_class


def iter_rule_metadata() -> Iterator[Documented | type[Rule]]:
    """GG000, GG001 and the static rules, in code order (`gradguard rules`, SARIF)."""
    yield from _BUILTIN.values()
    yield from all_rules().values()


def iter_all_metadata() -> Iterator[Documented | type[Rule]]:
    """Every code: the analyzer's, the rules' and the probe's (the generated docs)."""
    yield from iter_rule_metadata()
    yield from probe_codes().values()


def known_codes() -> set[str]:
    """Every code a configuration may select, ignore or re-grade."""
    return set(_BUILTIN) | set(all_rules()) | set(probe_codes())


def suggestion_codes() -> tuple[str, ...]:
    """The rules that report correct code with a safer equivalent (`Rule.suggestion`)."""
    return tuple(code for code, rule in all_rules().items() if rule.suggestion)
