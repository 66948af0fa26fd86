"""Which top-level statements of a file mention a name, found by a plain substring search.

`Semantics._find_call_sites` walks only the statements whose text names the function it looks
for. Joining each statement's lines and searching them with a `\\bname\\b` regular expression
cost ~5 ms per name on a 5,000-line file (a pattern starting with `\\b` gets no literal-prefix
scan), several times per edit in the language server. Here the file's text is joined once and
searched with `str.find` (a fast substring scan); each hit maps to its line, then to the
statements whose lines hold it.

The answer may include a statement that does not really use the name (a hit in a string or a
comment, or next to a character that continues an identifier in a way `isalnum` does not
see): callers walk the statements they get, so an extra one costs time, never a wrong
answer. It never leaves out a statement whose text holds the name as a whole word.
"""

from __future__ import annotations

import ast
import bisect
import itertools
import re

from gradguard.engine.index import _CHILD_FIELDS, child_fields, iter_children, statement_start_line

# `Semantics.consulted` holds MENTIONS + name when an analysis rested on which top-level
# statements name `name` (the call sites of a function): a statement that starts or stops
# naming it changes that, whatever its own name
MENTIONS = "@mentions "
# ... and SCRIPT_ROOTS when it rested on the roots of concrete shapes (`shape_flow.roots`): whether
# the script statements build tensors, and the probe comments (which may lie outside every statement)
SCRIPT_ROOTS = "@script-roots"


class Mentions:
    """The statements of `body` (top-level statements of a module whose text is `lines`)
    whose text mentions a name."""

    def __init__(self, body: list[ast.stmt], lines: list[str]) -> None:
        self._body = body
        self._text = "".join(lines)
        # offset of the first character of each line (1-based line n starts at _offsets[n - 1])
        self._offsets = list(itertools.accumulate((len(line) for line in lines), initial=0))
        self._starts = [statement_start_line(stmt) for stmt in body]
        self._ends = [stmt.end_lineno or stmt.lineno for stmt in body]
        self._naming: dict[str, list[ast.stmt]] = {}  # name -> `statements_naming` (asked again and again)

    @property
    def starts(self) -> list[int]:
        """The first line (decorators included) of each statement of `body`."""
        return self._starts

    @property
    def ends(self) -> list[int]:
        """The last line of each statement of `body`."""
        return self._ends

    def statements_naming(self, name: str) -> list[ast.stmt]:
        """The statements whose lines hold `name` as a whole word, in the order of `body` (a fresh list)."""
        found = self._naming.get(name)
        if found is None:
            found = self._naming[name] = self._search(name)
        return list(found)

    def _search(self, name: str) -> list[ast.stmt]:
        text = self._text
        found: set[int] = set()
        size = len(name)
        at = text.find(name)
        while at >= 0:
            end = at + size
            if not _continues(text, at - 1) and not _continues(text, end):
                line = bisect.bisect_right(self._offsets, at)  # 1-based line of the hit
                index = bisect.bisect_right(self._starts, line) - 1
                # statements sharing the line (`a = f(1); b = f(2)`) all hold it
                while index >= 0 and self._ends[index] >= line:
                    found.add(index)
                    index -= 1
            at = text.find(name, at + 1)
        return [self._body[i] for i in sorted(found)]

    def names_naming(self, name: str) -> tuple[str, ...]:
        """The names (as `consulted` has them) of the statements naming `name`, in order."""
        seen: dict[str, None] = {}
        for stmt in self.statements_naming(name):
            named = isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            seen[stmt.name if named else ""] = None  # type: ignore[attr-defined]
        return tuple(seen)


def _continues(text: str, index: int) -> bool:
    """Whether the character at `index` would make a hit part of a longer identifier."""
    if index < 0 or index >= len(text):
        return False
    char = text[index]
    return char == "_" or char.isalnum()


class NameUses:
    """What one top-level statement does with the plain names it reads, from one walk that
    serves every name (`Semantics._find_call_sites` asks for several names per check, and the
    statements naming them are often the same large ones): the calls `name(...)` with their
    calling scope, the names read other than as the callee of such a call, and the names
    declared `global`/`nonlocal`."""

    __slots__ = ("calls", "declared", "escaped")

    def __init__(self, stmt: ast.stmt) -> None:
        calls: dict[str, list[tuple[ast.Call, ast.AST | None]]] = {}
        loads: list[ast.Name] = []
        declared: set[str] = set()
        scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
        fields_of = _CHILD_FIELDS.get
        node_type = ast.AST
        # one walk, carrying the innermost function (statements of the script have none); the
        # order of the calls of one name is the order the walk meets them
        pending: list[tuple[ast.AST, ast.AST | None]] = [(stmt, None)]
        while pending:
            node, scope = pending.pop()
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                calls.setdefault(node.func.id, []).append((node, scope))
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                loads.append(node)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                declared.update(node.names)
            if isinstance(node, scopes):
                # decorators and defaults run in the enclosing scope, the body in its own
                body = node.body if isinstance(node.body, list) else [node.body]
                pending.extend((child, node) for child in body)
                inside = {id(child) for child in body}
                pending.extend((child, scope) for child in iter_children(node) if id(child) not in inside)
            else:
                # (`iter_children` inlined: `ast.iter_child_nodes` without the context/operator
                # nodes, which are none of the above and have no children)
                fields = fields_of(node.__class__)
                if fields is None:
                    fields = child_fields(node.__class__)
                for name in fields:
                    value = getattr(node, name, None)
                    if value is None:
                        continue
                    if value.__class__ is list:
                        pending.extend([(item, scope) for item in value if isinstance(item, node_type)])
                    elif isinstance(value, node_type):
                        pending.append((value, scope))
        callees = {id(call.func) for sites in calls.values() for call, _ in sites}
        self.calls = calls
        # names read other than as the callee of a call (passed, stored, returned...)
        self.escaped = frozenset(n.id for n in loads if id(n) not in callees)
        self.declared = frozenset(declared)


def call_sites(statements: list[ast.stmt], name: str, uses: dict[int, tuple[ast.stmt, NameUses]]) -> list:
    """The direct calls `name(...)` in `statements` with their calling scope, in walk order;
    none when `name` is used any other way there (read without a call, declared global or
    nonlocal). `uses` memoises each statement's walk (by id, holding the statement)."""
    sites: list[tuple[ast.Call, ast.AST | None]] = []
    for stmt in statements:
        entry = uses.get(id(stmt))
        if entry is None or entry[0] is not stmt:
            entry = uses[id(stmt)] = (stmt, NameUses(stmt))
        found = entry[1]
        if name in found.declared or name in found.escaped:
            return []
        sites.extend(found.calls.get(name, ()))
    return sites


def only_unresolved_import(statements: list[ast.stmt], name: str) -> bool:
    """Whether, of the top-level statements naming `name` (`Mentions.statements_naming`), the
    script's (those other than `def`/`class`) are only `from <relative or unknown> import`
    statements binding it, at least one: the script reads it nowhere and binds it only to
    what such an import binds (the interpreter's unknown value). `def`/`class` statements
    naming it do not run in the script."""
    found = False
    for stmt in statements:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if not isinstance(stmt, ast.ImportFrom) or not (stmt.level or not stmt.module):
            return False
        # (`from ._x import name as other` names it too, and binds `other`)
        found = found or any((alias.asname or alias.name) == name for alias in stmt.names)
    return found


def method_call_sites(
    cls: ast.ClassDef, name: str, lines: list[str], walks: dict | None = None
) -> list[tuple[ast.Call, ast.AST]]:
    """The calls `self.<name>(...)` made directly in the methods of `cls` (with the calling
    method), when that is the only use of `.<name>` in the class: one method of that name, no
    use from a nested function or lambda, no other attribute read `x.<name>` (passed, stored,
    called on another object). Empty otherwise. The caller checks that no other top-level
    statement names it (`Mentions.statements_naming`). `lines` is the file's text: only the
    statements of the class whose text holds `.<name>` are looked at. `walks` (statement ->
    `_AttributeUses`) keeps each statement's one walk for the other names asked about."""
    methods = (ast.FunctionDef, ast.AsyncFunctionDef)
    if sum(1 for s in cls.body if isinstance(s, methods) and s.name == name) != 1:
        return []
    mention = re.compile(r"\." + re.escape(name) + r"\b")
    sites: list[tuple[ast.Call, ast.AST]] = []
    hits = _lines_matching(mention, cls, lines)
    for stmt in cls.body:
        start = statement_start_line(stmt)
        if not any(start <= line <= (stmt.end_lineno or stmt.lineno) for line in hits):
            continue  # neither calls nor reads it
        uses = walks.get(stmt) if walks is not None else None
        if uses is None:
            uses = _AttributeUses(stmt)
            if walks is not None:
                walks[stmt] = uses
        calls = uses.calls.get(name, ())
        # every `.<name>` of the statement is the callee of one of these calls, or it is used otherwise
        if uses.attributes.get(name, 0) != len(calls):
            return []
        method = stmt if isinstance(stmt, methods) else None
        sites.extend((call, method) for call in calls)  # type: ignore[misc]
    return sites


class _AttributeUses:
    """One walk of a statement of a class: how many `<anything>.<attr>` it holds per attribute
    name, and its calls `<self>.<attr>(...)` made directly in the method's own body (not in a
    nested scope, a decorator or a default) per attribute name, in the walk's order."""

    __slots__ = ("attributes", "calls")

    def __init__(self, stmt: ast.stmt) -> None:
        methods = (ast.FunctionDef, ast.AsyncFunctionDef)
        nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
        attributes: dict[str, int] = {}
        calls: dict[str, list[ast.Call]] = {}
        method = stmt if isinstance(stmt, methods) else None
        positional = (method.args.posonlyargs + method.args.args) if method is not None else []
        me = positional[0].arg if positional else None
        # (node, directly in the method's own body: not in a nested scope, a decorator or a default)
        pending: list[tuple[ast.AST, bool]] = [(child, False) for child in iter_children(stmt)]
        if method is not None:
            pending = [(child, True) for child in method.body]
            inside = {id(child) for child in method.body}
            pending += [(child, False) for child in iter_children(method) if id(child) not in inside]
        while pending:
            node, direct = pending.pop()
            if isinstance(node, ast.Attribute):
                attributes[node.attr] = attributes.get(node.attr, 0) + 1
            elif (
                direct
                and isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == me
            ):
                calls.setdefault(node.func.attr, []).append(node)
            inner = direct and not isinstance(node, nested)
            pending.extend((child, inner) for child in iter_children(node))
        self.attributes = attributes
        self.calls = calls


def _lines_matching(pattern: re.Pattern, cls: ast.ClassDef, lines: list[str]) -> list[int]:
    """The lines of the class's statements (1-based) holding a match of `pattern`, which never
    spans lines: one search of the class's text, rather than one per statement."""
    first = min((statement_start_line(stmt) for stmt in cls.body), default=1)
    last = max((stmt.end_lineno or stmt.lineno for stmt in cls.body), default=0)
    text = "".join(lines[first - 1 : last])
    if pattern.search(text) is None:
        return []
    offsets = list(itertools.accumulate((len(line) for line in lines[first - 1 : last]), initial=0))
    return sorted(
        {first - 1 + bisect.bisect_right(offsets, match.start()) for match in pattern.finditer(text)}
    )
