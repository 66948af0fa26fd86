"""The semantic index shared by all rules.

Two levels, so that the language server can re-check only what an edit touched:

* `ModuleContext` is computed from the top-level statements alone (imports, class
  bases, a few cheap per-function flags). It is small and hashable; when it changes,
  every unit is re-checked.
* `Unit` is one top-level `def`/`class` (or all the remaining top-level script
  statements together). It is walked once; rules query its node buckets and helpers
  instead of walking the tree again.

Rules may use the unit and the module context, nothing else: that is what makes
per-unit caching correct.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, TypeVar

from gradguard.engine import holdings
from gradguard.engine.source import SourceFile

if TYPE_CHECKING:
    from gradguard.engine.semantic import Semantics
    from gradguard.engine.project import FileResolver

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
_T = TypeVar("_T")
_FUNCTION_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef)
_WITH_TYPES = (ast.With, ast.AsyncWith)

# Qualified names (after resolving imports) of the base classes we recognise.
MODULE_BASES = {
    "torch.nn.Module",
    "torch.nn.modules.module.Module",
    "torch.jit.ScriptModule",
    "lightning.LightningModule",
    "lightning.pytorch.LightningModule",
    "pytorch_lightning.LightningModule",
    "pytorch_lightning.core.LightningModule",
}
FUNCTION_BASES = {
    "torch.autograd.Function",
    "torch.autograd.function.Function",
    "torch.autograd.function.InplaceFunction",
}
_NOT_MODULES_IN_NN = {"Parameter", "UninitializedParameter", "Buffer", "UninitializedBuffer"}
# Without a project resolver (or when Lightning is not installed), a base under these
# prefixes is taken to be Lightning's LightningModule, whose `backward(loss)` hook
# Lightning calls itself. With a resolver, the hook is found in Lightning's source.
_LIGHTNING_PREFIXES = ("lightning.", "pytorch_lightning.")

GRAD_DISABLING = {
    "torch.no_grad",
    "torch.inference_mode",
    "torch.autograd.no_grad",
    "torch.autograd.grad_mode.no_grad",
    "torch.autograd.inference_mode",
}
GRAD_MODE_SETTERS = {"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"}

PARAMETER_CTORS = {"torch.nn.Parameter", "torch.nn.parameter.Parameter"}

KIND_MODULE = "module"
KIND_FUNCTION = "function"
KIND_OTHER = "other"


def dotted_name(node: ast.AST) -> str | None:
    """`self.w.grad` -> "self.w.grad"; None for anything that is not a plain chain."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def chain_root(node: ast.AST | None) -> str | None:
    """`x` of `x`, `x.a.b`, `x[i].a`: the name an attribute/index chain reads, else None."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def callee_name(func: ast.AST) -> str | None:
    """The last name of a callee: `f` -> "f", `a.b.f` -> "f"; None for any other expression."""
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def self_attribute(node: ast.AST, self_name: str = "self") -> str | None:
    """`self.w` -> "w" (only one level); None otherwise."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == self_name:
        return node.attr
    return None


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def is_false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def statement_start_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", None)
    if decorators:
        return min(d.lineno for d in decorators)
    return node.lineno


@dataclass(frozen=True)
class ClassSummary:
    name: str
    kind: str  # KIND_MODULE / KIND_FUNCTION / KIND_OTHER
    bases: tuple[str, ...]
    # a module class whose framework base defines `backward` and calls overrides of it
    # (Lightning's LightningModule): the qualified name of that base
    backward_hook: str | None = None


@dataclass(frozen=True)
class FunctionSummary:
    name: str
    # method names called on anything inside the function, restricted to the
    # training-loop vocabulary (found textually: cheap and good enough for a flag)
    calls: frozenset[str]


_LOOP_VOCABULARY = ("zero_grad", "backward", "step", "clip_grad")


class ModuleContext:
    """Module-wide facts computed from the top-level statements only."""

    def __init__(self, tree: ast.Module, source: SourceFile, resolver: FileResolver | None = None) -> None:
        # the project this file belongs to (gradguard.engine.project): resolves relative and
        # star imports, and the names other files define; None checks the file alone
        self.resolver = resolver
        self.aliases: dict[str, str] = {}
        self.classes: dict[str, ClassSummary] = {}
        self.functions: dict[str, FunctionSummary] = {}
        self.grad_leaves: set[str] = set()  # top-level names bound to requires_grad=True tensors
        # names of `*backward*` methods called with arguments anywhere in the file
        # (`layer.backward(grad)`, `m.mm_backward(g)`); found textually, so cheap
        self.explicit_backward_calls: frozenset[str] = _explicit_backward_calls(source.text)
        # somewhere in the file a `.backward(` call trains something (cheap, textual)
        self.mentions_backward: bool = ".backward(" in source.text
        # the file changes torch's default dtype somewhere (GG504 then cannot assume float32)
        self.changes_default_dtype: bool = (
            "set_default_dtype" in source.text or "set_default_tensor_type" in source.text
        )
        self._source_lines = source.lines
        self._class_nodes: dict[str, ast.ClassDef] = {}
        self._scan(tree.body, source)
        if resolver is not None:
            self._import_project_names(resolver)
        self.signature = hash(
            (
                tuple(sorted(self.aliases.items())),
                tuple(sorted(self.classes.items())),
                tuple(sorted(self.functions.items())),
                tuple(sorted(self.grad_leaves)),
                tuple(sorted(self.explicit_backward_calls)),
                self.changes_default_dtype,
                resolver.signature if resolver is not None else None,
            )
        )

    # -- construction -------------------------------------------------------------------
    def _scan(self, body: list[ast.stmt], source: SourceFile) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Import):
                self._import(stmt)
            elif isinstance(stmt, ast.ImportFrom):
                self._import_from(stmt)
            elif isinstance(stmt, ast.ClassDef):
                quals = [self.qualname(b) for b in stmt.bases]
                bases = tuple(q or dotted_name(b) or "?" for q, b in zip(quals, stmt.bases))
                kind, hook = self._kind_of(bases, tuple(q is not None for q in quals))
                self.classes[stmt.name] = ClassSummary(stmt.name, kind, bases, hook)
                self._class_nodes[stmt.name] = stmt
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                text = source.text_between(stmt.lineno, 1, (stmt.end_lineno or stmt.lineno) + 1, 1)
                calls = frozenset(word for word in _LOOP_VOCABULARY if word in text)
                self.functions[stmt.name] = FunctionSummary(stmt.name, calls)
            elif isinstance(stmt, (ast.If, ast.Try)):
                # `try: import torch` / `if TYPE_CHECKING:` blocks
                self._scan(stmt.body, source)
                for handler in getattr(stmt, "handlers", ()):
                    self._scan(handler.body, source)
                self._scan(stmt.orelse, source)
            elif isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
                if creates_grad_leaf(stmt.value, self):
                    for target in stmt.targets:
                        if isinstance(target, ast.Name):
                            self.grad_leaves.add(target.id)

    def _import(self, stmt: ast.Import) -> None:
        for alias in stmt.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top

    def _import_from(self, stmt: ast.ImportFrom) -> None:
        module = stmt.module
        if stmt.level:  # relative: only a project knows what it is
            module = self.resolver.absolute(stmt.module, stmt.level) if self.resolver else None
        if not module:
            return
        for alias in stmt.names:
            if alias.name != "*":
                self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
            elif self.resolver is not None:
                self.aliases.update(self.resolver.star_exports(module))

    def _kind_of(self, bases: tuple[str, ...], qualified: tuple[bool, ...] = ()) -> tuple[str, str | None]:
        """(kind, backward_hook) of a class from its bases: the first base that is a module or
        an autograd Function decides the kind; any base may carry a backward hook."""
        kind, hook = KIND_OTHER, None
        for i, base in enumerate(bases):
            base_kind, base_hook = self._base_kind(base, i < len(qualified) and qualified[i])
            if kind == KIND_OTHER and base_kind != KIND_OTHER:
                kind = base_kind
            hook = hook or base_hook
        return kind, hook if kind == KIND_MODULE else None

    def _base_kind(self, base: str, qualified: bool) -> tuple[str, str | None]:
        local = self.classes.get(base)
        if local is not None:
            return local.kind, local.backward_hook
        resolver = self.resolver
        if base.startswith("torch."):
            kind, hook = _table_kind(base)
            if kind != KIND_OTHER or resolver is None:
                return kind, hook
        if resolver is not None and qualified:
            facts = resolver.class_facts(base)
            if facts.kind in (KIND_MODULE, KIND_FUNCTION):
                return facts.kind, facts.backward_hook
            if facts.kind != "unknown":
                return KIND_OTHER, None
        return _table_kind(base)

    def _import_project_names(self, resolver: FileResolver) -> None:
        """Classes and functions imported from other files of the project become this
        file's own, with their resolved kinds: a subclass of a project base class is a
        module, `model = Net()` builds a module, exactly as if they were defined here."""
        for local, target in list(self.aliases.items()):
            if local in self.classes or local in self.functions:
                continue
            found = resolver.imported(target)
            if found is None:
                continue
            if found[0] == "class":
                kind = found[1] if found[1] in (KIND_MODULE, KIND_FUNCTION) else KIND_OTHER
                hook = found[2] if kind == KIND_MODULE else None
                self.classes[local] = ClassSummary(local, kind, (target,), hook)
            else:
                self.functions[local] = FunctionSummary(local, found[1])
            del self.aliases[local]
        self.explicit_backward_calls = self.explicit_backward_calls | resolver.explicit_backward_calls
        self.changes_default_dtype = self.changes_default_dtype or resolver.changes_default_dtype

    # -- queries ------------------------------------------------------------------------
    @property
    def imports_torch(self) -> bool:
        if any(v == "torch" or v.startswith("torch.") for v in self.aliases.values()):
            return True
        # a class built on torch classes another file imports (a project base class, a
        # star import): this file is torch code too
        return self.resolver is not None and any(s.kind != KIND_OTHER for s in self.classes.values())

    def cache(self, key: str, factory: Callable[[], _T]) -> _T:
        """A value computed once per file (by whichever rule asks first) and shared; keys are
        namespaced by their user (`"gg602.has_function"`)."""
        caches = self.__dict__.setdefault("_caches", {})
        if key in caches:
            return caches[key]
        value = caches[key] = factory()
        return value

    def qualname(self, node: ast.AST) -> str | None:
        """Resolve a name or attribute chain through the imports: with `import torch.nn as nn`,
        `nn.Linear` -> "torch.nn.Linear". None when the chain does not start at an import."""
        cache = self.__dict__.get("_qualnames")
        if cache is None:
            cache = self.__dict__["_qualnames"] = {}
        elif node in cache:
            return cache[node]
        start = node
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            cache[start] = None
            return None
        base = self.aliases.get(node.id)
        if base is None:
            cache[start] = None
            return None
        parts.append(base)
        result = cache[start] = ".".join(reversed(parts))
        return result

    def call_name(self, call: ast.AST) -> str | None:
        """Qualified name of a call's function (None when not resolvable)."""
        if isinstance(call, ast.Call):
            return self.qualname(call.func)
        return None

    def is_module_class(self, name: str) -> bool:
        summary = self.classes.get(name)
        return summary is not None and summary.kind == KIND_MODULE

    def class_node(self, name: str) -> ast.ClassDef | None:
        """The statement of the class `name` defined at the top level of this file (None otherwise)."""
        return self._class_nodes.get(name)

    def is_function_class(self, name: str) -> bool:
        summary = self.classes.get(name)
        return summary is not None and summary.kind == KIND_FUNCTION

    def class_holdings(self, name: str) -> tuple[str, frozenset[str]]:
        """What registering an instance of the module class `name` (as this file names it)
        carries: `holdings.NONE` / `MODE` / `STATE` / `UNKNOWN`, and the classes of this file
        the answer rests on. A class of this file is read from its text, one imported from
        another file of the project through the project index, exactly alike."""
        memo = self.__dict__.setdefault("_holdings", {})
        found = memo.get(name)
        if found is None:
            memo[name] = (holdings.UNKNOWN, frozenset((name,)))  # cycle guard
            found = memo[name] = self._class_holdings(name)
        return found

    def imported_class(self, name: str) -> str | None:
        """The qualified name of a class imported from another file of the project."""
        summary = self.classes.get(name)
        if name in self._class_nodes or summary is None or self.resolver is None or len(summary.bases) != 1:
            return None
        return summary.bases[0]

    def _class_holdings(self, name: str) -> tuple[str, frozenset[str]]:
        node = self._class_nodes.get(name)
        summary = self.classes.get(name)
        if node is None:
            if summary is not None and self.resolver is not None and summary.bases:
                return self.resolver.holdings(summary.bases[0]), frozenset()  # imported from the project
            qual = self.aliases.get(name.split(".")[0])
            if qual is not None:
                return self._qualified_holdings(qual + name[len(name.split(".")[0]) :]), frozenset()
            return holdings.UNKNOWN, frozenset()
        if summary is None:
            return holdings.UNKNOWN, frozenset((name,))
        uses = {name}
        bases = []
        for base in node.bases:
            written = dotted_name(base)
            if written is None:
                bases.append(holdings.UNKNOWN)
                continue
            verdict, more = self._written_holdings(written, name, base=True)
            uses |= more
            bases.append(verdict)
        text = "".join(self._source_lines[node.lineno - 1 : node.end_lineno or node.lineno])

        def callee(written: str) -> str:
            verdict, more = self._written_holdings(written, name)
            uses.update(more)
            return verdict

        verdict = holdings.judge(holdings.class_holds(text), bases, callee)
        return verdict, frozenset(uses)

    def _written_holdings(self, written: str, exclude: str, base: bool = False) -> tuple[str, frozenset[str]]:
        """A name as written in this file, called and stored on `self` (or a base class of `exclude`):
        its verdict (`holdings.written_verdict`) and the classes of this file it rests on."""
        uses: set[str] = set()

        def lookup(name: str) -> holdings.Written | None:
            head = name.split(".")[0]
            summary = self.classes.get(head)
            if head in self._class_nodes or summary is not None:
                if "." in name or head == exclude:
                    return holdings.Written()
                if head not in self._class_nodes and summary is not None and self.resolver is not None:
                    return self.resolver.written(summary.bases[0])  # imported from the project

                def verdict() -> str:
                    found, more = self.class_holdings(head)
                    uses.update(more)
                    return found

                if summary is None or summary.kind == KIND_MODULE:
                    return holdings.Written(is_class=True, is_module=True, verdict=verdict)
                uses.add(head)  # the verdict rests on its bases
                plain = all(b == "object" for b in summary.bases)
                return holdings.Written(is_class=True, plain=plain, verdict=verdict)
            if head in self.functions:
                return holdings.Written()
            qual = self.aliases.get(head)
            if qual is None:
                return None
            full = qual + name[len(head) :]
            return self.resolver.written(full) if self.resolver is not None else holdings.Written(full)

        verdict = holdings.written_verdict(written, base, lookup)
        return verdict, frozenset(uses)

    def _qualified_holdings(self, full: str) -> str:
        """What a class named by its qualified name holds: torch's and the standard library's from the
        torch facts, another file's from the project index, else unknown."""
        quick = holdings.qualified_verdict(full)
        if quick is not None:
            return quick
        if self.resolver is not None:
            return self.resolver.holdings(full)
        return holdings.UNKNOWN

    def is_layer_constructor(self, call: ast.AST) -> bool:
        """`nn.Linear(...)`, `nn.Sequential(...)`, or a module class defined in this file."""
        if not isinstance(call, ast.Call):
            return False
        name = self.call_name(call)
        if name and name.startswith("torch.nn.") and name.count(".") == 2:
            last = name.rsplit(".", 1)[1]
            return last[:1].isupper() and last not in _NOT_MODULES_IN_NN
        if isinstance(call.func, ast.Name) and self.is_module_class(call.func.id):
            return True
        if name and self.resolver is not None and name.rsplit(".", 1)[-1][:1].isupper():
            # an installed library's (or another project file's) module class
            return self.resolver.class_facts(name).kind == KIND_MODULE
        return False

    def is_parameter_constructor(self, call: ast.AST) -> bool:
        return isinstance(call, ast.Call) and self.call_name(call) in PARAMETER_CTORS


def _table_kind(base: str) -> tuple[str, str | None]:
    """The kinds known without resolving anything (torch's public names)."""
    if base in MODULE_BASES:
        return KIND_MODULE, base if base.startswith(_LIGHTNING_PREFIXES) else None
    if base in FUNCTION_BASES:
        return KIND_FUNCTION, None
    if base.startswith("torch.nn.") and base.count(".") == 2:
        last = base.rsplit(".", 1)[1]
        if last[:1].isupper() and last not in _NOT_MODULES_IN_NN:
            return KIND_MODULE, None  # subclass of a built-in layer, e.g. nn.Linear
    if base.startswith(_LIGHTNING_PREFIXES):
        return KIND_OTHER, base
    return KIND_OTHER, None


_BACKWARD_CALL_RE = re.compile(
    r"\.[ \t]*(\w*?[Bb]ackward\w*)[ \t]*\((?![ \t]*(?:\)|retain_graph\b|create_graph\b|inputs\b))"
)


def _explicit_backward_calls(text: str) -> frozenset[str]:
    if "ackward" not in text:
        return frozenset()
    return frozenset(_BACKWARD_CALL_RE.findall(text))


TENSOR_FACTORIES = {
    "torch.tensor",
    "torch.randn",
    "torch.rand",
    "torch.zeros",
    "torch.ones",
    "torch.empty",
    "torch.full",
    "torch.arange",
    "torch.linspace",
    "torch.eye",
    "torch.randint",
    "torch.zeros_like",
    "torch.ones_like",
    "torch.randn_like",
    "torch.rand_like",
    "torch.empty_like",
    "torch.full_like",
    "torch.as_tensor",
    "torch.Tensor",
}


def creates_grad_leaf(call: ast.Call, module: ModuleContext) -> bool:
    """`torch.randn(3, requires_grad=True)` or `torch.zeros(3).requires_grad_()`."""
    if not isinstance(call, ast.Call):
        return False
    if is_true(keyword(call, "requires_grad")) and module.call_name(call) in TENSOR_FACTORIES:
        return True
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "requires_grad_":
        arg = call.args[0] if call.args else keyword(call, "requires_grad")
        if arg is None or is_true(arg):
            inner = func.value
            return isinstance(inner, ast.Call) and module.call_name(inner) in TENSOR_FACTORIES
    return False


@dataclass
class AttributeInfo:
    """What a module's `self.<name>` holds, learned from `__init__` (and other methods)."""

    name: str
    kind: str  # "parameter" | "buffer" | "layer" | "grad_tensor" | "other"
    node: ast.AST  # the assignment (or register_* call) that defined it
    value: ast.expr | None = None  # the constructor call, when there is one
    ctor: str | None = None  # qualified (or local) name of the constructor


class Unit:
    """One top-level statement (or the script statements) with its node buckets."""

    def __init__(
        self,
        nodes: list[ast.stmt],
        source: SourceFile,
        module: ModuleContext,
        path: str = "",
        semantics: Semantics | None = None,
    ) -> None:
        self.nodes = nodes
        self.source = source
        self.module = module
        self.path = path
        self._semantics = semantics
        self._buckets: dict[type, list[ast.AST]] = defaultdict(list)
        # child -> parent. A dict on the unit rather than an attribute on the node: a
        # `node.parent` attribute makes every tree a reference cycle, which only the cyclic
        # garbage collector can free (that alone cost ~40% of the engine's time).
        self._parents: dict[ast.AST, ast.AST] = {}
        self._sorted: dict[tuple[type, ...], list[ast.AST]] = {}
        self._reachable: dict[tuple[int, str], list[FunctionNode]] = {}
        self._index(nodes)

    def _index(self, roots: list[ast.stmt]) -> None:
        # An inlined `iter_child_nodes` walk over the fields that can hold nodes (see
        # `child_fields`); ~2.5x faster than `ast.iter_child_nodes`.
        buckets = self._buckets
        parents = self._parents
        fields_of = _CHILD_FIELDS.get
        node_type = ast.AST
        stack: list[ast.AST] = list(roots)
        while stack:
            node = stack.pop()
            cls = node.__class__
            buckets[cls].append(node)
            fields = fields_of(cls)
            if fields is None:
                fields = child_fields(cls)
            for name in fields:
                value = getattr(node, name, None)
                if value is None:
                    continue
                if value.__class__ is list:
                    for item in value:
                        if isinstance(item, node_type):
                            parents[item] = node
                            stack.append(item)
                elif isinstance(value, node_type):
                    parents[value] = node
                    stack.append(value)

    def release(self) -> None:
        """Forget the indexes and every cache once the rules are done with the unit.

        Helpers cache objects that point back at the unit (unit -> cache -> helper ->
        unit); such a cycle keeps the whole tree alive until the cyclic garbage collector
        gets to it, which costs more than the rules themselves. The analyzer calls this
        when no finding may still need the unit (a lazy fix), so the tree is freed by
        reference counting as soon as the check returns. The unit stays usable (its
        queries answer as if it were empty) but should not be used again."""
        keep = {name: self.__dict__[name] for name in ("nodes", "source", "module", "path", "_semantics")}
        self.__dict__.clear()
        self.__dict__.update(keep)
        self._buckets = defaultdict(list)
        self._parents = {}
        self._sorted = {}
        self._reachable = {}

    @property
    def semantics(self) -> Semantics:
        """The file's semantic model (what every name holds; see `engine.semantic`)."""
        if self._semantics is None:
            from gradguard.engine.semantic import Semantics

            self._semantics = Semantics(ast.Module(body=list(self.nodes), type_ignores=[]), self.module)
        return self._semantics

    def cache(self, key: str, factory: Callable[[], _T]) -> _T:
        """A value computed once per unit (by whichever rule asks first) and shared; keys are
        namespaced by their user (`"loops.training_loops"`, `"gg405.reads"`). `release` drops them."""
        caches = self.__dict__.setdefault("_caches", {})
        if key in caches:
            return caches[key]
        value = caches[key] = factory()
        return value

    # -- node access -----------------------------------------------------------------------
    def nodes_of(self, *types: type) -> list[ast.AST]:
        """All nodes of these types in the unit, in source order (a fresh list).

        Expression contexts and operators (`ast.Load`, `ast.Add`, ...) are shared
        singletons in CPython's trees and are not indexed."""
        found = self._sorted.get(types)
        if found is None:
            if len(types) == 1:
                found = list(self._buckets.get(types[0], ()))
            else:
                found = [n for t in types for n in self._buckets.get(t, ())]
            found.sort(key=position)
            self._sorted[types] = found
        return list(found)

    def calls(self) -> list[ast.Call]:
        return self.nodes_of(ast.Call)  # type: ignore[return-value]

    def calls_by_method(self) -> dict[str, list[ast.Call]]:
        """The unit's `<anything>.name(...)` calls by method name, each list in source order:
        the one index of calls by method name, built once per unit (do not change it)."""
        return self.cache("index.calls_by_method", self._index_calls_by_method)

    def _index_calls_by_method(self) -> dict[str, list[ast.Call]]:
        index: dict[str, list[ast.Call]] = {}
        for call in self.calls():
            if isinstance(call.func, ast.Attribute):
                index.setdefault(call.func.attr, []).append(call)
        return index

    def method_calls(self, *names: str) -> list[ast.Call]:
        """Calls of the form `<anything>.name(...)` for any of the names, in source order."""
        index = self.calls_by_method()
        if len(names) == 1:
            return list(index.get(names[0], ()))
        found = [call for name in set(names) for call in index.get(name, ())]
        found.sort(key=position)
        return found

    def parent(self, node: ast.AST) -> ast.AST | None:
        return self._parents.get(node)

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        parents = self._parents
        parent = parents.get(node)
        while parent is not None:
            yield parent
            parent = parents.get(parent)

    def enclosing_function(self, node: ast.AST) -> FunctionNode | None:
        parents = self._parents
        anc = parents.get(node)
        while anc is not None:
            if isinstance(anc, _FUNCTION_TYPES):
                return anc  # type: ignore[return-value]
            anc = parents.get(anc)
        return None

    def enclosing_class(self, node: ast.AST) -> ast.ClassDef | None:
        parents = self._parents
        anc = parents.get(node)
        while anc is not None:
            if isinstance(anc, ast.ClassDef):
                return anc
            anc = parents.get(anc)
        return None

    def enclosing_statement(self, node: ast.AST) -> ast.stmt | None:
        parents = self._parents
        current: ast.AST | None = node
        while current is not None and not isinstance(current, ast.stmt):
            current = parents.get(current)
        return current  # type: ignore[return-value]

    # -- gradient mode -----------------------------------------------------------------------
    def grad_disabling_context(self, item: ast.withitem) -> bool:
        expr = item.context_expr
        if not isinstance(expr, ast.Call):
            return False
        name = self.module.call_name(expr)
        if name in GRAD_DISABLING:
            # inference_mode(False) / no_grad() ; inference_mode(mode=False) re-enables
            arg = expr.args[0] if expr.args else keyword(expr, "mode")
            return not is_false(arg)
        if name in GRAD_MODE_SETTERS:
            arg = expr.args[0] if expr.args else keyword(expr, "mode")
            return is_false(arg)
        return False

    def decorator_disables_grad(self, func: FunctionNode) -> bool:
        for deco in func.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            if self.module.qualname(target) in GRAD_DISABLING:
                return True
        return False

    def in_no_grad(self, node: ast.AST) -> bool:
        """Inside `with torch.no_grad():`, `inference_mode`, `set_grad_enabled(False)` or a
        function decorated with `@torch.no_grad()` (within this unit)."""
        parents = self._parents
        anc = parents.get(node)
        while anc is not None:
            if isinstance(anc, _WITH_TYPES):
                if any(self.grad_disabling_context(item) for item in anc.items):  # type: ignore[attr-defined]
                    return True
            elif isinstance(anc, _FUNCTION_TYPES):
                if anc.decorator_list and self.decorator_disables_grad(anc):  # type: ignore[arg-type]
                    return True
            anc = parents.get(anc)
        return False

    # -- classes -------------------------------------------------------------------------------
    def classes(self) -> list[ast.ClassDef]:
        return self.nodes_of(ast.ClassDef)  # type: ignore[return-value]

    def module_classes(self) -> list[ast.ClassDef]:
        return [c for c in self.classes() if self.module.is_module_class(c.name) and self._top_level_class(c)]

    def function_classes(self) -> list[ast.ClassDef]:
        return [
            c for c in self.classes() if self.module.is_function_class(c.name) and self._top_level_class(c)
        ]

    def _top_level_class(self, cls: ast.ClassDef) -> bool:
        # module-level classes only: a nested class of the same name is someone else
        return self.parent(cls) is None

    @staticmethod
    def methods(cls: ast.ClassDef) -> dict[str, FunctionNode]:
        return {
            stmt.name: stmt for stmt in cls.body if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
        }

    def class_attributes(self, cls: ast.ClassDef) -> dict[str, AttributeInfo]:
        cache = self.__dict__.setdefault("_attr_cache", {})
        if id(cls) not in cache:
            cache[id(cls)] = _collect_attributes(self, cls)
        return cache[id(cls)]

    def methods_reachable_from(self, cls: ast.ClassDef, start: str) -> list[FunctionNode]:
        """`start` and the methods of the class it calls as `self.m(...)`, transitively."""
        key = (id(cls), start)
        cached = self._reachable.get(key)
        if cached is None:
            cached = self._reachable[key] = self._methods_reachable_from(cls, start)
        return list(cached)

    def _methods_reachable_from(self, cls: ast.ClassDef, start: str) -> list[FunctionNode]:
        methods = self.methods(cls)
        seen: list[FunctionNode] = []
        todo = [start]
        names_seen = set()
        while todo:
            name = todo.pop()
            if name in names_seen or name not in methods:
                continue
            names_seen.add(name)
            func = methods[name]
            seen.append(func)
            for node in walk(func):
                if isinstance(node, ast.Call):
                    attr = self_attribute(node.func, self_name(func) or "self")
                    if attr:
                        todo.append(attr)
        return seen

    # -- reporting helpers -------------------------------------------------------------------
    def node_range(self, node: ast.AST) -> tuple[int, int, int, int]:
        return self.source.node_range(node)

    def segment(self, node: ast.AST) -> str:
        return self.source.segment(node)


def self_name(func: FunctionNode) -> str | None:
    """Name of the first positional parameter (usually `self`)."""
    args = func.args.posonlyargs + func.args.args
    return args[0].arg if args else None


def position(node: ast.AST) -> tuple[int, int]:
    """(line, column) for ordering nodes in source order; (0, 0) for nodes without a position."""
    return (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


# Fields that never hold a node (identifiers, numbers, flags), plus expression contexts and
# operators, which CPython shares as singletons between all the nodes of all trees.
_SCALAR_FIELDS = frozenset(
    {
        "id", "attr", "arg", "name", "module", "level", "asname", "kind", "type_comment",
        "is_async", "conversion", "simple", "tag", "ctx", "op", "ops",
    }
)  # fmt: skip
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def child_fields(cls: type) -> tuple[str, ...]:
    """The fields of a node class that can hold child nodes (cached)."""
    fields = _CHILD_FIELDS.get(cls)
    if fields is None:
        fields = tuple(
            f
            for f in getattr(cls, "_fields", ())
            if f not in _SCALAR_FIELDS and not (cls is ast.Constant and f == "value")
        )
        _CHILD_FIELDS[cls] = fields
    return fields


def iter_children(node: ast.AST) -> Iterator[ast.AST]:
    """`ast.iter_child_nodes` in the same order, without the context/operator singletons."""
    fields = _CHILD_FIELDS.get(node.__class__) or child_fields(node.__class__)
    node_type = ast.AST
    for name in fields:
        value = getattr(node, name, None)
        if value is None:
            continue
        if value.__class__ is list:
            for item in value:
                if isinstance(item, node_type):
                    yield item
        elif isinstance(value, node_type):
            yield value


def walk(node: ast.AST) -> Iterator[ast.AST]:
    """`ast.walk` (same breadth-first order) without the context/operator singletons;
    about twice as fast. Prefer the unit's buckets when they answer the question."""
    todo = [node]
    node_type = ast.AST
    fields_of = _CHILD_FIELDS.get
    index = 0
    while index < len(todo):
        current = todo[index]
        index += 1
        yield current
        fields = fields_of(current.__class__)
        if fields is None:
            fields = child_fields(current.__class__)
        for name in fields:
            value = getattr(current, name, None)
            if value is None:
                continue
            if value.__class__ is list:
                for item in value:
                    if isinstance(item, node_type):
                        todo.append(item)
            elif isinstance(value, node_type):
                todo.append(value)


_REGISTER_CALLS = ("register_parameter", "register_buffer", "register_module", "add_module")


def _collect_attributes(unit: Unit, cls: ast.ClassDef) -> dict[str, AttributeInfo]:
    """`self.<name>` assignments and `self.register_*` calls in the class's methods.

    Same result as walking each method with `ast.walk` (`__init__` first, then the others
    in definition order; breadth-first inside a method; the first assignment of a name
    wins, a `register_*` call always wins), but found from the unit's buckets: only the
    few candidate nodes climb their parent links to find their method and depth."""
    module = unit.module
    found: dict[str, AttributeInfo] = {}
    methods = unit.methods(cls)
    if not methods:
        return found
    ordered = [methods["__init__"]] if "__init__" in methods else []
    ordered += [m for name, m in methods.items() if name != "__init__"]
    for position, node in _attribute_candidates(unit, cls, ordered):
        _record_attribute(found, node, self_name(ordered[position]) or "self", module)
    return found


def _attribute_candidates(unit: Unit, cls: ast.ClassDef, ordered: list) -> list[tuple[int, ast.AST]]:
    """The assignments to an attribute and the `register_*` calls in the methods of `cls`, as
    (method rank, node), in the order of a breadth-first walk of each method in turn."""
    rank = {m: i for i, m in enumerate(ordered)}
    parents = unit._parents
    buckets = unit._buckets
    candidates: list[tuple[int, int, int, int, int, ast.AST]] = []

    def locate(node: ast.AST) -> None:
        depth = 0
        current = node
        parent = parents.get(current)
        while parent is not None and parent is not cls:
            current = parent
            parent = parents.get(current)
            depth += 1
        if parent is cls and current in rank:
            candidates.append((rank[current], depth, node.lineno, node.col_offset, len(candidates), node))

    for node in buckets.get(ast.Assign, ()):
        if any(t.__class__ is ast.Attribute and t.value.__class__ is ast.Name for t in node.targets):  # type: ignore[attr-defined]
            locate(node)
    for node in buckets.get(ast.AnnAssign, ()):
        target = node.target  # type: ignore[attr-defined]
        if (
            node.value is not None
            and target.__class__ is ast.Attribute
            and target.value.__class__ is ast.Name
        ):  # type: ignore[attr-defined]
            locate(node)
    for node in buckets.get(ast.Call, ()):
        func = node.func  # type: ignore[attr-defined]
        if func.__class__ is ast.Attribute and func.attr in _REGISTER_CALLS:
            locate(node)
    candidates.sort(key=lambda c: c[:5])
    return [(c[0], c[5]) for c in candidates]


def _record_attribute(found: dict[str, AttributeInfo], node: ast.AST, me: str, module: ModuleContext) -> None:
    """What one candidate says of an attribute: the first assignment of a name wins, a
    `register_*` call always wins."""
    if isinstance(node, ast.Assign):
        for target in node.targets:
            attr = self_attribute(target, me)
            if attr and attr not in found:
                found[attr] = _classify(attr, node, node.value, module)
    elif isinstance(node, ast.AnnAssign):
        attr = self_attribute(node.target, me)
        if attr and attr not in found:
            found[attr] = _classify(attr, node, node.value, module)  # type: ignore[arg-type]
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == me
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        kind = {
            "register_parameter": "parameter",
            "register_buffer": "buffer",
        }.get(node.func.attr, "layer")
        value = node.args[1] if len(node.args) > 1 else None
        found[node.args[0].value] = AttributeInfo(node.args[0].value, kind, node, value)


def _classify(attr: str, stmt: ast.AST, value: ast.expr, module: ModuleContext) -> AttributeInfo:
    if isinstance(value, ast.Call):
        ctor = module.call_name(value)
        if ctor is None and isinstance(value.func, ast.Name):
            ctor = value.func.id
        if module.is_parameter_constructor(value):
            return AttributeInfo(attr, "parameter", stmt, value, ctor)
        if module.is_layer_constructor(value):
            return AttributeInfo(attr, "layer", stmt, value, ctor)
        if creates_grad_leaf(value, module):
            return AttributeInfo(attr, "grad_tensor", stmt, value, ctor)
        return AttributeInfo(attr, "other", stmt, value, ctor)
    return AttributeInfo(attr, "other", stmt, value, None)


def split_units(tree: ast.Module) -> list[tuple[int, int, list[ast.stmt]]]:
    """Top-level `def`/`class` statements each become a unit; all other top-level
    statements form one script unit (their data flow crosses statements).

    Returns (start_line, end_line, statements) with the script unit first."""
    script: list[ast.stmt] = []
    units: list[tuple[int, int, list[ast.stmt]]] = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            units.append((statement_start_line(stmt), stmt.end_lineno or stmt.lineno, [stmt]))
        else:
            script.append(stmt)
    if script:
        units.insert(0, (0, 0, script))
    return units
