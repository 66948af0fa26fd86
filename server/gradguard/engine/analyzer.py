"""Run the rules over a file: parse once, index once, check each unit, filter.

`Analyzer` caches each unit's findings by the unit's text and the module context, so
that re-checking a file after a small edit only re-runs the rules on the class or
function that changed (the language server relies on this). An entry also records the
other top-level statements its analysis consulted, directly or through a summary built for
another unit (`Semantics.consulted`), and is reused only while they are unchanged; see
`_CacheEntry` for when an entry also depends on where the units are.
"""

from __future__ import annotations

import ast
import gc
import logging
import re
import sys
import traceback
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gradguard.engine.catalog import SyntaxErrorRule, all_rules
from gradguard.engine.config import Config
from gradguard.engine.finding import Applicability, Finding, Severity, TextEdit
from gradguard.engine.fix_guard import guard_edits
from gradguard.engine.incremental import LineDelta
from gradguard.engine.index import ModuleContext, Unit, split_units, statement_start_line
from gradguard.engine.mentions import MENTIONS, SCRIPT_ROOTS, Mentions
from gradguard.engine.project import ProjectIndex
from gradguard.engine.rule import Rule
from gradguard.engine.semantic import Semantics
from gradguard.engine.shape_flow import SCRIPT_TRIGGERS
from gradguard.engine.source import SourceFile, apply_edits
from gradguard.engine.suppression import is_suppressed, suppressions

log = logging.getLogger(__name__)


@dataclass
class RuleError:
    code: str
    path: str
    line: int
    traceback: str
    cause: str = ""  # one line: "RecursionError: maximum recursion depth exceeded"


@dataclass
class CheckResult:
    findings: list[Finding]
    tree: ast.Module | None
    errors: list[RuleError] = field(default_factory=list)
    syntax_error: Finding | None = None
    # the semantic model the rules used (None when every unit came from the cache): an editor
    # reuses its flows for hovers and inlay hints of the same version
    semantics: Semantics | None = field(default=None, repr=False, compare=False)


def parse(text: str, path: str = "<unknown>") -> ast.Module:
    with warnings.catch_warnings():
        # invalid escape sequences etc. are the user's business, not ours
        warnings.simplefilter("ignore")
        return ast.parse(text, filename=path or "<unknown>")


# Syntax that newer Pythons accept and an older one running gradguard rejects: (pattern on the
# line of the error, first version that accepts it, what it is).
_NEWER_SYNTAX = (
    (re.compile(r"^\s*type\s+[A-Za-z_]\w*\s*(\[.*\])?\s*="), (3, 12), "a `type` alias statement"),
    (re.compile(r"^\s*(async\s+)?def\s+[A-Za-z_]\w*\s*\["), (3, 12), "a generic function (`def f[T](...)`)"),
    (re.compile(r"^\s*class\s+[A-Za-z_]\w*\s*\["), (3, 12), "a generic class (`class C[T]: ...`)"),
    (
        re.compile(r"^\s*except\*?\s*[^\s(:][^:]*,[^:]*:"),
        (3, 14),
        "several exception types without parentheses (`except A, B:`)",
    ),
    (re.compile(r"(?<![\w'\"])(?:[tT][rR]?|[rR][tT])['\"]"), (3, 14), 'a template string (`t"..."`)'),
)
_F_STRING = re.compile(r"(?<![\w'\"])(?:[fF][rR]?|[rR][fF])['\"]")


def _version(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version[:2])


def _version_mismatch(exc: BaseException, source: SourceFile) -> str | None:
    """When the error is syntax a newer Python accepts: a message that says so."""
    line = source.line_text(getattr(exc, "lineno", None) or 1)
    running = sys.version_info[:2]
    here = f"gradguard runs on Python {_version(running)} ({sys.executable or 'python'})"
    for pattern, needed, what in _NEWER_SYNTAX:
        if running < needed and pattern.search(line):
            return (
                f"{what} needs Python {_version(needed)}+, but {here}, which cannot parse it. This is a "
                f"version mismatch, not an error in the code: run gradguard with Python "
                f"{_version(needed)} or newer"
            )
    message = str(getattr(exc, "msg", "") or "")
    if running < (3, 12) and (message.startswith("f-string") or _F_STRING.search(line)):
        return (
            f"Python {_version(running)} cannot parse this f-string; Python 3.12+ accepts quotes, "
            f"backslashes and comments inside its `{{}}` (PEP 701). {here}: if the code targets Python "
            f"3.12+, this is a version mismatch, not an error in the code; run gradguard with Python "
            f"3.12 or newer"
        )
    return None


def syntax_error_finding(exc: BaseException, source: SourceFile, path: str) -> Finding:
    line = getattr(exc, "lineno", None) or 1
    line = max(1, min(line, max(1, len(source.lines))))
    offset = getattr(exc, "offset", None) or 1
    text = source.line_text(line)
    # SyntaxError.offset is 1-based in code points for str input
    column = max(1, min(offset, len(text.rstrip("\r\n")) + 1))
    end_line = getattr(exc, "end_lineno", None) or line
    end_offset = getattr(exc, "end_offset", None) or column + 1
    if end_line != line or end_offset <= column:
        end_line, end_offset = line, column + 1
    running = _version(sys.version_info)
    if isinstance(exc, RecursionError):
        message = (
            f"nested too deeply for Python {running}'s parser ({exc or 'maximum recursion depth exceeded'}); "
            f"Python {running} cannot compile this file either"
        )
    elif isinstance(exc, MemoryError):
        message = (
            f"Python {running}'s parser gave up on this file (MemoryError: its expressions are nested "
            f"too deeply); Python {running} cannot compile it either"
        )
    else:
        message = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
        mismatch = _version_mismatch(exc, source)
        if mismatch:
            message = f"{message} ({mismatch})"
    return Finding(
        code=SyntaxErrorRule.code,
        name=SyntaxErrorRule.name,
        severity=Severity.ERROR,
        message=f"Syntax error: {message}",
        line=line,
        column=column,
        end_line=end_line,
        end_column=end_offset,
        path=path,
    )


class _CacheEntry:
    """A unit's findings, and the other top-level statements (name, text hash) its analysis
    used: the entry is valid while those are unchanged too.

    `place`: None when the findings move with the unit (stored relative to its first line;
    for the script unit, each relative to the first line of its span of statements), and the
    other units count by their text only. Otherwise the unit's first line (the script's span
    starts), and the other units count by their text and place: the entry is valid only where
    every line it rests on is where it was. That is the case when a finding's text cites a
    line number (moving the unit moves the finding, not the number written in its message),
    when a finding lies outside the unit, or when it offers a fix (its edits may reach
    elsewhere).

    `movable`: for a def/class unit placed only because it offers fixes (no finding cites a
    line or lies outside it), the other units it rests on by their text only (as for an
    entry that is not placed), and its last line relative to its first. When the unit moved
    (an Enter above it), the entry still holds if those are unchanged and every edit of its
    fixes, computed once, lies inside the unit: its findings and fixes move with it."""

    __slots__ = ("dependencies", "findings", "movable", "place")

    def __init__(
        self,
        findings: list,
        dependencies: tuple,
        place: object = None,
        movable: tuple[tuple, int] | None = None,
    ) -> None:
        self.findings = findings
        self.dependencies = dependencies
        self.place = place
        self.movable = movable

    def moves(self, texts: _UnitTexts) -> bool:
        """Whether this placed entry holds for its unit at another place (see `movable`)."""
        if self.movable is None:
            return False
        loose, last = self.movable
        if "libcst" not in sys.modules or not texts.unchanged(loose, False):
            # (computing fixes may need libcst: ~100 ms to import, not on a keystroke; until
            # something else loaded it, the unit is checked again as before)
            return False
        try:
            inside = all(
                edit.start_line >= 0
                and (edit.end_line <= last or (edit.end_line == last + 1 and edit.end_column == 1))
                for finding in self.findings  # stored relative to the unit's first line (line 0)
                for fix in ([finding.fix] if finding.fix else []) + list(finding.alternatives)
                for edit in fix.edits
            )
        except Exception:  # a fix that fails to compute: the unit is checked again, as before
            log.debug("computing a cached fix failed", exc_info=True)
            inside = False
        if not inside:
            self.movable = None  # reaches outside the unit: checked again whenever it moves
        return inside


def _has_lazy_fixes(entry: _CacheEntry) -> bool:
    """Whether a cached entry holds a fix whose edits are still to be computed from its nodes."""
    for finding in entry.findings:
        if isinstance(finding, tuple):  # (span, finding) of an unplaced script entry
            finding = finding[1]
        if any(fix.pending for fix in ([finding.fix] if finding.fix else []) + list(finding.alternatives)):
            return True
    return False


NAME_USES_FILES = 4  # files whose call-site walks are kept (see Analyzer._name_uses)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


class _KeptScans(dict):
    """`Semantics.integer_names_cache` of one check that also answers from the previous check of
    the file (`Analyzer._integer_scans`): a function node an incremental parse reused is the very
    same object, never changed but for its positions, and `integer_use.scan` returns names only
    (and rests on the module's imports, in `ModuleContext.signature`). The interpreter reads it
    with `get`; what this check used is what is kept for the next one."""

    def __init__(self, previous: dict) -> None:
        super().__init__()
        self.previous = previous

    def get(self, key, default=None):  # type: ignore[override]
        found = dict.get(self, key)
        if found is None and isinstance(key, _SCOPES):
            found = self.previous.get(key)
            if found is not None:
                self[key] = found
        return default if found is None else found


VARIANTS = 3  # entries kept per unit text (its dependencies differing: an edit, then its undo)


_CITES_A_LINE = re.compile(r"\blines?\s+\d")


def _cites_a_line(finding: Finding) -> bool:
    texts = [finding.message, finding.detail]
    texts.extend(fix.title for fix in ([finding.fix] if finding.fix else []) + list(finding.alternatives))
    return any(_CITES_A_LINE.search(text) for text in texts if text)


def _only_fixes_place(findings: list[Finding], first: int, last: int) -> bool:
    """Whether findings of the unit on lines first..last are placed (`_positional`) only
    because they offer fixes: none cites a line or lies outside the unit."""
    return not any(
        _cites_a_line(finding) or not (first <= finding.line and finding.end_line <= last)
        for finding in findings
    )


def _positional(findings: list[Finding], spans: list[tuple[int, int]]) -> bool:
    """Whether findings of a unit covering `spans` (first, last line) hold only where it is
    (see `_CacheEntry`)."""
    for finding in findings:
        if finding.fix is not None or finding.alternatives or _cites_a_line(finding):
            return True
        if not any(first <= finding.line and finding.end_line <= last for first, last in spans):
            return True
    return False


class _UnitTexts:
    """The source text of each top-level statement of a tree, by name, computed on demand
    (for checking cached findings' dependencies)."""

    def __init__(self, tree: ast.Module, source: SourceFile, previous: _MentionState | None = None) -> None:
        self._source = source
        self._tree = tree
        self._by_name: dict[str, ast.stmt] | None = None
        self._hashes: dict[tuple[str, bool], int] = {}
        self._script: list[tuple[int, int, str]] | None = None
        self._mentions: Mentions | None = None
        self._previous = previous  # the mention hashes of the last check of the file (see `_kept_mention`)
        self._changed: tuple[str, str] | None = None  # (once compared) the changed old and new lines

    def script_spans(self) -> list[tuple[int, int, str]]:
        """(first line, last line, text) of each span of lines the script's statements cover."""
        if self._script is None:
            script = [
                s
                for s in self._tree.body
                if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            ]
            self._script = _script_spans(script, self._source)
        return self._script

    @property
    def mentions(self) -> Mentions:
        if self._mentions is None:
            self._mentions = Mentions(self._tree.body, self._source.lines)
        return self._mentions

    def script_key(self) -> tuple:
        return tuple((first, text) for first, _, text in self.script_spans())

    def _hash(self, name: str, placed: bool) -> int:
        found = self._hashes.get((name, placed))
        if found is None:
            if name.startswith(MENTIONS):
                word = name[len(MENTIONS) :]
                found = self._kept_mention(word)
                if found is None:
                    found = hash(self.mentions.names_naming(word))
            elif name == SCRIPT_ROOTS:
                # (a superset of `shape_flow.roots`' tests: the script spans that may build tensors,
                # and every line that may hold a probe comment, where it is: a comment above a
                # class names that class)
                key = self.script_key()
                script = tuple(
                    (first, text) if placed else text
                    for first, text in key
                    if any(trigger in text for trigger in SCRIPT_TRIGGERS)
                )
                probes = (
                    tuple(
                        (number, line)
                        for number, line in enumerate(self._source.lines)
                        if "probe" in line and "gradguard" in line
                    )
                    if "probe" in self._source.text and "gradguard" in self._source.text
                    else ()
                )
                found = hash((script, probes))
            elif name == "":
                found = hash(self.script_key() if placed else tuple(text for _, text in self.script_key()))
            else:
                if self._by_name is None:
                    self._by_name = {
                        s.name: s
                        for s in self._tree.body
                        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                    }
                stmt = self._by_name.get(name)
                if stmt is None:
                    found = 0
                else:
                    start = statement_start_line(stmt)
                    text = self._source.text_between(start, 1, (stmt.end_lineno or stmt.lineno) + 1, 1)
                    found = hash((start, text) if placed else text)
            self._hashes[(name, placed)] = found
        return found

    def _kept_mention(self, word: str) -> int | None:
        """The hash of `names_naming(word)` from the last check of the file, when it holds for this
        text: every top-level statement (same names, same order) covers the same unchanged lines
        as before, and `word` occurs in neither the old nor the new changed lines. Then a whole-word
        hit lies on an unchanged line of the same statements before and after; there is no other."""
        previous = self._previous
        if previous is None:
            return None
        found = previous.hashes.get(word)
        if found is None:
            return None
        if self._changed is None:
            changed = previous.changed_lines(self._source.lines, self._statement_names(), self.mentions)
            if changed is None:
                self._previous = None
                return None
            self._changed = changed
        old, new = self._changed
        return None if word in old or word in new else found

    def _statement_names(self) -> tuple[str, ...]:
        return tuple(
            s.name if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else ""
            for s in self._tree.body
        )

    def mention_state(self) -> _MentionState | None:
        """What the next check of the file needs to reuse this one's mention hashes."""
        if self._mentions is None:
            return None
        hashes = {
            name[len(MENTIONS) :]: h for (name, _), h in self._hashes.items() if name.startswith(MENTIONS)
        }
        if not hashes:
            return None
        mentions = self._mentions
        return _MentionState(
            self._source.lines, self._statement_names(), mentions.starts, mentions.ends, hashes
        )

    def fingerprint(self, names: set[str], placed: bool) -> tuple:
        return tuple(sorted((name, self._hash(name, placed)) for name in names))

    def unchanged(self, dependencies: tuple, placed: bool) -> bool:
        return all(self._hash(name, placed) == digest for name, digest in dependencies)


class _MentionState:
    """The mention hashes (`MENTIONS` dependencies) of one check of a file, with what tells whether
    they hold for the next text of the file (`_UnitTexts._kept_mention`): its lines, and the names
    and line spans (first line, decorators included, and last) of its top-level statements."""

    __slots__ = ("ends", "hashes", "lines", "names", "starts")

    def __init__(
        self, lines: list[str], names: tuple, starts: list[int], ends: list[int], hashes: dict[str, int]
    ) -> None:
        self.lines = lines
        self.names = names
        self.starts = starts
        self.ends = ends
        self.hashes = hashes

    def changed_lines(self, lines: list[str], names: tuple, mentions: Mentions) -> tuple[str, str] | None:
        """(old changed lines, new changed lines) joined, when each top-level statement of the new
        text (`names`, spans from `mentions`) covers the same unchanged lines as in the old one;
        None otherwise. Unchanged line L (old) is L' (new); a span covers the unchanged lines up to
        its last line and from its first line, so it is enough that the number of unchanged lines
        up to each first line - 1 and each last line is the same in both texts."""
        if names != self.names:
            return None
        change = LineDelta.between(self.lines, lines)
        prefix, old_end, new_end = change.prefix, change.old_end, change.new_end

        def before_old(line: int) -> int:  # unchanged old lines <= line
            return line if line <= prefix else prefix if line <= old_end else line - (old_end - prefix)

        def before_new(line: int) -> int:
            return line if line <= prefix else prefix if line <= new_end else line - (new_end - prefix)

        for old_first, old_last, first, last in zip(
            self.starts, self.ends, mentions.starts, mentions.ends, strict=True
        ):
            if before_old(old_first - 1) != before_new(first - 1) or before_old(old_last) != before_new(last):
                return None
        return "".join(self.lines[prefix:old_end]), "".join(lines[prefix:new_end])


def _script_spans(statements: list[ast.stmt], source: SourceFile) -> list[tuple[int, int, str]]:
    """The spans of lines the script unit's statements cover: (first line, last line, their
    text). Statements sharing lines (`a = 1; b = 2`) share one span: a span per statement
    would copy a long line once per statement (quadratic memory)."""
    spans: list[list[int]] = []
    for stmt in statements:
        start, end = stmt.lineno, stmt.end_lineno or stmt.lineno
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    return [(start, end, source.text_between(start, 1, end + 1, 1)) for start, end in spans]


def internal_error_finding(error: RuleError, source: SourceFile) -> Finding:
    """The finding that stands for a rule that failed on part of a file: its findings there
    are missing, and the run must say so rather than pass."""
    from gradguard.engine.catalog import InternalErrorRule, rule_class

    rule = rule_class(error.code) if error.code.startswith("GG") else None
    if rule is not None:
        what = f"rule {error.code} ({rule.name}) failed on this code ({error.cause or 'unknown cause'}); its"
    else:  # the analysis of the whole file
        what = f"{error.code} failed on this file ({error.cause or 'unknown cause'}); all"
    line = max(1, min(error.line, max(1, len(source.lines))))
    content = source.line_text(line).rstrip("\r\n")
    start = len(content) - len(content.lstrip()) + 1
    return Finding(
        code=InternalErrorRule.code,
        name=InternalErrorRule.name,
        severity=Severity.ERROR,
        message=f"Internal error: {what} findings here are missing. The traceback is in the log; please report it.",
        line=line,
        column=start,
        end_line=line,
        end_column=max(start + 1, len(content) + 1),
        path=error.path or source.path,
    )


def one_line_cause(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Analyzer:
    """Checks sources with a set of rules; keeps a per-unit cache between calls."""

    def __init__(
        self, config: Config | None = None, cache_size: int = 2048, project: ProjectIndex | None = None
    ) -> None:
        self.config = config or Config()
        # the project the checked files belong to: names imported from other files (and
        # installed packages) get their kinds from it; None checks every file alone
        self.project = project
        # unit key -> its entries (the most recent first; see VARIANTS)
        self._cache: OrderedDict[tuple, list[_CacheEntry]] = OrderedDict()
        self._cache_size = cache_size
        self._units_checked = 0  # the unit count of the file being checked (see _remember)
        # path -> id(top-level statement) -> (it, its `NameUses`), for the files checked last: the
        # walks `Semantics` makes to find call sites, kept for the statements an incremental
        # parse reused (the same nodes) from one check of a file to the next
        self._name_uses: OrderedDict[str, dict] = OrderedDict()
        # path -> (module signature, function node -> its `integer_use.scan`), of the files checked
        # last (see `_KeptScans`)
        self._integer_scans: OrderedDict[str, tuple[int, dict]] = OrderedDict()
        # path -> the mention hashes of its last check (see `_UnitTexts._kept_mention`)
        self._mention_states: OrderedDict[str, _MentionState] = OrderedDict()
        self._rules: list[Rule] = []
        self.configure(self.config)

    def configure(self, config: Config) -> None:
        self.config = config
        self._rules = [cls() for code, cls in all_rules().items() if config.enabled(code)]
        # per kind of top-level statement (None: not an nn.Module/autograd.Function class), the
        # rules whose `needs_class` it meets, as (rule, triggers, may_fire or None)
        self._prefilters = {
            kind: [
                (rule, rule.triggers, rule.may_fire if type(rule).may_fire is not Rule.may_fire else None)
                for rule in self._rules
                if rule.needs_class is None or rule.needs_class == kind
            ]
            for kind in (None, "module", "function")
        }
        self._cache.clear()
        self._name_uses.clear()
        self._integer_scans.clear()
        self._mention_states.clear()

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules)

    # -- checking ------------------------------------------------------------------------
    def check(self, text: str, path: str = "", tree: ast.Module | None = None) -> CheckResult:
        # Parsing and indexing allocate hundreds of thousands of long-lived objects, which
        # makes the cyclic garbage collector run over and over for nothing (~25% of the
        # engine's time). Pause it for the duration of one file; it resumes afterwards.
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            return self._check(text, path, tree)
        finally:
            self.__dict__.pop("_semantics", None)  # (an engine error must not keep the tree alive)
            if paused:
                gc.enable()

    def _check(self, text: str, path: str, tree: ast.Module | None) -> CheckResult:
        source = SourceFile(text, path)
        if tree is None:
            try:
                tree = parse(text, path)
            except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
                finding = syntax_error_finding(exc, source, path)
                findings = [finding] if self.config.enabled(SyntaxErrorRule.code) else []
                return CheckResult(findings, None, syntax_error=finding)
        errors: list[RuleError] = []
        findings = self._check_tree(tree, source, path, errors)
        semantics = self.__dict__.pop("_semantics", None)
        return CheckResult(self._filter(findings, source), tree, errors, semantics=semantics)

    def _check_tree(
        self, tree: ast.Module, source: SourceFile, path: str, errors: list[RuleError]
    ) -> list[Finding]:
        resolver = self.project.for_file(path) if self.project is not None and path else None
        module = ModuleContext(tree, source, resolver)
        if not module.imports_torch:
            # Every rule is about torch code: a file that never imports torch is silent.
            return []
        results: list[Finding] = []
        semantics: Semantics | None = None
        texts = _UnitTexts(tree, source, self._mention_states.pop(path, None))
        units = split_units(tree)
        self._units_checked = len(units)
        for start, end, statements in units:
            if start == 0:
                # the script unit: its statements' texts, each span of lines found again where
                # it is now (see _CacheEntry)
                spans = texts.script_spans()
                key: tuple = (module.signature, path, tuple(text for _, _, text in spans))
                place: object = tuple(first for first, _, _ in spans)
            else:
                key = (module.signature, path, source.text_between(start, 1, end + 1, 1))
                spans = [(start, end, "")]
                place = start
            cached = self._lookup(key, place, texts)
            if cached is not None:
                if start == 0 and cached.place is None:
                    results.extend(f.shifted(spans[i][0]) for i, f in cached.findings)
                else:
                    results.extend(f.shifted(start) for f in cached.findings)
                continue
            rules = self._rules if start == 0 else self.applicable_rules(statements[0], key[2], module)
            if not rules:
                self._remember(key, _CacheEntry([], ()))  # no rule can fire here: the unit is never indexed
                continue
            if semantics is None:
                semantics = self._semantics = Semantics(tree, module, source.lines)
                semantics._name_uses = self._name_uses_of(path, tree)
                semantics.integer_names_cache = self._integer_scans_of(path, module.signature)
                semantics._mentions = texts.mentions  # (built once per check, for both)
            semantics.consulted = set()
            unit = Unit(statements, source, module, path, semantics)
            found = self._run_rules(unit, errors, rules)
            own = "" if start == 0 else getattr(statements[0], "name", None)
            placed = _positional(found, [(first, last) for first, last, _ in spans])
            dependencies = texts.fingerprint(semantics.consulted - {own}, placed)
            movable = None
            if placed and start != 0 and _only_fixes_place(found, start, end):
                movable = (texts.fingerprint(semantics.consulted - {own}, False), end - start)
            if all(f.fix is None and not f.alternatives for f in found):
                unit.release()  # nothing may need it later: let the tree go by refcount
            results.extend(found)
            if not any(e.line == (statements[0].lineno) for e in errors):
                if start == 0 and not placed:
                    stored: list = []
                    for finding in found:
                        i = next(
                            i for i, (first, last, _) in enumerate(spans) if first <= finding.line <= last
                        )
                        stored.append((i, finding.shifted(-spans[i][0])))
                else:
                    stored = [f.shifted(-start) for f in found]
                self._remember(key, _CacheEntry(stored, dependencies, place if placed else None, movable))
        self._keep_for_next_check(path, texts, semantics, module.signature)
        return results

    def _keep_for_next_check(
        self, path: str, texts: _UnitTexts, semantics: Semantics | None, signature: int
    ) -> None:
        """What the next check of `path` may reuse: the mention hashes, the integer-use scans."""
        state = texts.mention_state()
        if state is not None:
            self._mention_states[path] = state
            while len(self._mention_states) > NAME_USES_FILES:
                self._mention_states.popitem(last=False)
        if semantics is not None and isinstance(semantics.integer_names_cache, _KeptScans):
            kept = {
                key: found for key, found in semantics.integer_names_cache.items() if isinstance(key, _SCOPES)
            }
            self._integer_scans[path] = (signature, kept)

    def _integer_scans_of(self, path: str, signature: int) -> _KeptScans:
        """The integer-use scans of functions kept from the last check of `path` (see `_KeptScans`)."""
        previous = self._integer_scans.pop(path, None)
        self._integer_scans[path] = (signature, {})
        while len(self._integer_scans) > NAME_USES_FILES:
            self._integer_scans.popitem(last=False)
        return _KeptScans(previous[1] if previous is not None and previous[0] == signature else {})

    def _name_uses_of(self, path: str, tree: ast.Module) -> dict:
        """The call-site walks of the statements of `tree` kept from the last check of `path`
        (only those still in it: the very same nodes, never mutated); `Semantics` adds to it."""
        previous = self._name_uses.pop(path, None) or {}
        kept = {}
        for stmt in tree.body:
            entry = previous.get(id(stmt))
            if entry is not None and entry[0] is stmt:
                kept[id(stmt)] = entry
        self._name_uses[path] = kept
        while len(self._name_uses) > NAME_USES_FILES:
            self._name_uses.popitem(last=False)
        return kept

    def forget(self, path: str) -> int:
        """Drop the cached findings of one file (an editor closed it); returns how many."""
        self._name_uses.pop(path, None)
        self._integer_scans.pop(path, None)
        self._mention_states.pop(path, None)
        stale = [key for key in self._cache if key[1] == path]
        for key in stale:
            del self._cache[key]
        return len(stale)

    def lazy_fix_units(self, path: str) -> list[tuple]:
        """The cache keys of one file's units whose entries hold fixes not computed yet (see
        `forget_lazy_fixes`)."""
        return [
            key
            for key, variants in self._cache.items()
            if key[1] == path and any(_has_lazy_fixes(entry) for entry in variants)
        ]

    def forget_lazy_fixes(self, path: str) -> int:
        """Drop the cached entries of one file that hold fixes not computed yet: nodes of the file
        are about to move in place (`IncrementalParser.on_move`), and such a fix would compute
        its edits from moved nodes against the text it was made for. Their units are checked
        again (as a moved unit whose fixes were never computed is). Returns how many."""
        stale = self.lazy_fix_units(path)
        for key in stale:
            del self._cache[key]
        return len(stale)

    def _lookup(self, key: tuple, place: object, texts: _UnitTexts) -> _CacheEntry | None:
        """The cached entry of a unit valid here and now, if any."""
        variants = self._cache.get(key)
        if variants is None:
            return None
        for entry in variants:
            if entry.place is not None and entry.place != place:
                continue
            if texts.unchanged(entry.dependencies, entry.place is not None):
                self._cache.move_to_end(key)
                return entry
        for entry in variants:  # a def/class that moved with fixes that move with it
            if entry.place is not None and entry.place != place and entry.moves(texts):
                self._cache.move_to_end(key)
                return entry
        return None

    def _remember(self, key: tuple, entry: _CacheEntry) -> None:
        variants = [
            e
            for e in self._cache.pop(key, [])
            if (e.dependencies, e.place) != (entry.dependencies, entry.place)
        ]
        self._cache[key] = [entry, *variants[: VARIANTS - 1]]
        # never smaller than the file being checked: a file of more units than the cache holds
        # would evict its own first units before they are checked again (nothing cached at all)
        limit = max(self._cache_size, self._units_checked + self._cache_size // 4)
        while len(self._cache) > limit:
            self._cache.popitem(last=False)

    def applicable_rules(self, statement: ast.stmt, text: str, module: ModuleContext) -> list[Rule]:
        """The rules that may fire on the unit of one top-level def/class (`text`: its
        source, decorators included), by their cheap `needs_class`/`triggers`/`may_fire`."""
        kind = None
        if isinstance(statement, ast.ClassDef):
            if module.is_module_class(statement.name):
                kind = "module"
            elif module.is_function_class(statement.name):
                kind = "function"
        rules = []
        seen: dict[str, bool] = {}  # trigger -> found (several rules share one; big texts cost)
        for rule, triggers, may_fire in self._prefilters[kind]:
            if triggers:
                for trigger in triggers:
                    found = seen.get(trigger)
                    if found is None:
                        found = seen[trigger] = trigger in text
                    if found:
                        break
                else:
                    continue
            if may_fire is not None and not may_fire(text, statement, module):
                continue
            rules.append(rule)
        return rules

    def _run_rules(
        self, unit: Unit, errors: list[RuleError], rules: list[Rule] | None = None
    ) -> list[Finding]:
        found: list[Finding] = []
        for rule in self._rules if rules is None else rules:
            try:
                found.extend(rule.check(unit))
            except Exception as exc:  # one broken rule must not hide the others' findings
                # (RecursionError included: a deep expression must not cost the other rules)
                line = unit.nodes[0].lineno
                errors.append(
                    RuleError(rule.code, unit.path, line, traceback.format_exc(), one_line_cause(exc))
                )
                log.exception("rule %s failed on %s:%s: %s", rule.code, unit.path, line, one_line_cause(exc))
        return found

    def _filter(self, findings: list[Finding], source: SourceFile) -> list[Finding]:
        table = suppressions(source.lines) if ("noqa" in source.text or "gradguard" in source.text) else {}
        kept = []
        seen = set()
        for finding in findings:
            if table and is_suppressed(table, finding.code, finding.line, finding.end_line):
                continue
            key = (finding.code, finding.line, finding.column, finding.end_line, finding.end_column)
            if key in seen:
                continue
            seen.add(key)
            finding.severity = self.config.severity_for(finding.code, finding.severity)
            kept.append(finding)
        kept.sort(key=lambda f: f.sort_key)
        return kept

    # -- fixing --------------------------------------------------------------------------
    def fix(self, text: str, path: str = "", unsafe: bool = False, max_passes: int = 10) -> tuple[str, int]:
        """Apply fixes until none is left (or they stop applying). Returns the new text and
        the number of fixes applied. Fixes that overlap are applied in later passes; a pass
        whose result would not parse is undone fix by fix, so the text stays valid Python."""
        applied_total = 0
        for _ in range(max_passes):
            result = self.check(text, path)
            if result.tree is None:
                break
            fixes = [
                f.fix
                for f in result.findings
                if f.fix is not None and (unsafe or f.fix.applicability is Applicability.SAFE)
            ]
            new_text, applied = apply_fixes(text, fixes, path)
            if applied == 0 or new_text == text:
                break
            text = new_text
            applied_total += applied
        return text, applied_total


def apply_fixes(text: str, fixes: list, path: str = "") -> tuple[str, int]:
    """Apply as many non-overlapping fixes as possible in one pass, keeping the text valid,
    its line endings and its comments (`fix_guard`)."""
    source = SourceFile(text, path)
    cache: dict = {}
    guarded = []
    for fix in fixes:
        edits = fix.edits
        if edits:
            edits = guard_edits(source, edits, cache)
        if edits:
            guarded.append(edits)
    chosen = select_fixes(guarded)
    if not chosen:
        return text, 0
    candidate = _apply(text, [e for edits in chosen for e in edits])
    if candidate is not None and _parses(candidate, path):
        return candidate, len(chosen)
    # Something in the batch breaks the file: keep the fixes that are fine one by one.
    for edits in chosen:
        single = _apply(text, edits)
        if single is not None and _parses(single, path):
            return single, 1
    return text, 0


def select_fixes(
    fixes: Iterable[list[TextEdit]], fits: Callable[[list[TextEdit]], bool] | None = None
) -> list[list[TextEdit]]:
    """The fixes (each a list of edits) that one pass applies: in the order of their first edit,
    each that `fits` (when given) and whose edits overlap none of the fixes chosen before it.
    `apply_fixes` and the language server's fix-all of a notebook choose with this."""
    chosen: list[list[TextEdit]] = []
    taken: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for edits in sorted(
        (es for es in fixes if es), key=lambda es: min((e.start_line, e.start_column) for e in es)
    ):
        if fits is not None and not fits(edits):
            continue
        spans = [((e.start_line, e.start_column), (e.end_line, e.end_column)) for e in edits]
        if any(_overlaps(span, other) for span in spans for other in taken):
            continue
        chosen.append(edits)
        taken.extend(spans)
    return chosen


def _overlaps(a: tuple, b: tuple) -> bool:
    (a_start, a_end), (b_start, b_end) = a, b
    if a_start == a_end or b_start == b_end:  # insertions collide only at the same point inside
        return a_start < b_end and b_start < a_end or a_start == b_start
    return a_start < b_end and b_start < a_end


def _apply(text: str, edits: list) -> str | None:
    try:
        return apply_edits(text, edits)
    except ValueError:
        return None


def _parses(text: str, path: str) -> bool:
    try:
        parse(text, path)
    except (SyntaxError, ValueError):
        return False
    return True


def check_source(text: str, path: str = "", config: Config | None = None) -> list[Finding]:
    """Check one source text with a fresh analyzer."""
    return Analyzer(config).check(text, path).findings
