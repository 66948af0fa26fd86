"""The engine's fast paths must give exactly what the slow, obvious code gives.

`Unit` indexes a tree with an inlined child walk and keeps parent links in a dict (no
reference cycles); `walk` replaces `ast.walk`; `nodes_of` / `method_calls` /
`methods_reachable_from` are cached; `Analyzer.check` pauses the cyclic GC per file.
"""

from __future__ import annotations

import ast
import gc
import weakref
from pathlib import Path

import gradguard
import pytest
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.index import ModuleContext, Unit, iter_children, split_units, walk
from gradguard.engine.source import SourceFile

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = (
    sorted((ROOT / "tests" / "silent").glob("*.py"))[:20]
    + sorted(Path(gradguard.__file__).resolve().parent.rglob("*.py"))[:40]
)

# Expression contexts and operators are shared singletons in CPython trees; the fast
# walk leaves them out on purpose.
SINGLETONS = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


def units_of(text: str):
    tree = ast.parse(text)
    source = SourceFile(text)
    module = ModuleContext(tree, source)
    return tree, [Unit(stmts, source, module) for _, _, stmts in split_units(tree)]


def test_samples_found():
    assert len(SAMPLES) >= 40


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_walk_and_children_match_ast(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    expected = [n for n in ast.walk(tree) if not isinstance(n, SINGLETONS)]
    assert list(walk(tree)) == expected
    for node in expected:
        assert list(iter_children(node)) == [
            c for c in ast.iter_child_nodes(node) if not isinstance(c, SINGLETONS)
        ]


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_parents_buckets_and_order(path):
    tree, units = units_of(path.read_text(encoding="utf-8"))
    true_parent = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, SINGLETONS):
                true_parent[child] = node
    indexed = 0
    for unit in units:
        roots = set(unit.nodes)
        for stmt in unit.nodes:
            for node in ast.walk(stmt):
                if isinstance(node, SINGLETONS):
                    continue
                indexed += 1
                assert unit.parent(node) is (None if node in roots else true_parent[node])
        all_calls = [n for stmt in unit.nodes for n in ast.walk(stmt) if isinstance(n, ast.Call)]
        calls = unit.nodes_of(ast.Call)
        assert sorted(map(id, calls)) == sorted(map(id, all_calls))
        positions = [(c.lineno, c.col_offset) for c in calls]
        assert positions == sorted(positions)
    assert indexed > 0


def test_cached_queries_return_fresh_lists():
    text = "import torch\nx = torch.ones(2)\nx.add_(1)\nx.mul_(2)\nx.add_(3)\n"
    _, [unit] = units_of(text)
    first = unit.nodes_of(ast.Call)
    first.clear()
    assert len(unit.nodes_of(ast.Call)) == 4
    adds = unit.method_calls("add_")
    assert [c.lineno for c in adds] == [3, 5]
    adds.pop()
    assert [c.lineno for c in unit.method_calls("add_")] == [3, 5]
    assert [c.lineno for c in unit.method_calls("add_", "mul_")] == [3, 4, 5]


def test_methods_reachable_from_is_transitive_and_cached():
    text = (
        "import torch.nn as nn\n"
        "class M(nn.Module):\n"
        "    def forward(self, x):\n        return self.a(x)\n"
        "    def a(self, x):\n        return self.b(x) + self.b(x)\n"
        "    def b(self, x):\n        return x\n"
        "    def unused(self):\n        return self.forward(1)\n"
    )
    _, units = units_of(text)
    unit = units[-1]  # units[0] is the script unit (the import)
    (cls,) = unit.module_classes()
    names = [f.name for f in unit.methods_reachable_from(cls, "forward")]
    assert names == ["forward", "a", "b"]
    names_again = unit.methods_reachable_from(cls, "forward")
    names_again.clear()
    assert [f.name for f in unit.methods_reachable_from(cls, "forward")] == ["forward", "a", "b"]


def test_index_creates_no_reference_cycles():
    """Trees must be freed by reference counting alone once the unit is dropped."""
    text = (ROOT / "tests" / "silent" / "gan_fake_detach.py").read_text(encoding="utf-8")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        tree, units = units_of(text)
        for unit in units:
            unit.enclosing_function(unit.nodes_of(ast.Call)[-1])
        probe = weakref.ref(tree.body[-1])
        del tree, units, unit
        assert probe() is None, "the index keeps the tree alive through a reference cycle"
    finally:
        if was_enabled:
            gc.enable()


def test_check_pauses_gc_only_for_its_duration():
    analyzer = Analyzer()
    text = "import torch\nx = torch.ones(2, requires_grad=True)\nx[x < 0] = 0\n"
    assert gc.isenabled()
    analyzer.check(text, "a.py")
    analyzer.check("import torch\ndef broken(:\n", "b.py")  # syntax error path
    assert gc.isenabled()
    gc.disable()
    try:
        analyzer.check(text, "a.py")
        assert not gc.isenabled(), "check must not enable a GC its caller disabled"
    finally:
        gc.enable()


def _reference_attributes(unit, cls):
    """The obvious implementation `_collect_attributes` must agree with."""
    from gradguard.engine.index import AttributeInfo, _classify, self_attribute, self_name

    found = {}
    methods = unit.methods(cls)
    ordered = [methods["__init__"]] if "__init__" in methods else []
    ordered += [m for name, m in methods.items() if name != "__init__"]
    registers = ("register_parameter", "register_buffer", "register_module", "add_module")
    for func in ordered:
        me = self_name(func) or "self"
        for node in ast.walk(func):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    attr = self_attribute(target, me)
                    if attr and attr not in found:
                        found[attr] = _classify(attr, node, node.value, unit.module)
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                attr = self_attribute(node.target, me)
                if attr and attr not in found:
                    found[attr] = _classify(attr, node, node.value, unit.module)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in registers
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == me
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                kind = {"register_parameter": "parameter", "register_buffer": "buffer"}.get(
                    node.func.attr, "layer"
                )
                value = node.args[1] if len(node.args) > 1 else None
                found[node.args[0].value] = AttributeInfo(node.args[0].value, kind, node, value)
    return found


TRICKY_CLASS = """
import torch
import torch.nn as nn

class Tricky(nn.Module):
    def helper(this):
        this.late = nn.Linear(2, 2)
        this.w = None

    def __init__(self, bias=True):
        super().__init__()
        if bias:
            if True:
                self.deep = nn.Parameter(torch.zeros(2))
            self.b = nn.Parameter(torch.zeros(2))
        else:
            self.register_parameter("b", None)
        self.deep = None
        self.w: torch.Tensor = torch.randn(2, requires_grad=True)
        self.register_buffer("stats", torch.zeros(2))
        self.layers = [nn.Linear(2, 2) for _ in range(2)]
        other.x = 1

        def inner():
            self.from_closure = nn.Linear(1, 1)

    class Nested(nn.Module):
        def __init__(self):
            self.nested_only = nn.Linear(1, 1)
"""


@pytest.mark.parametrize("path", SAMPLES + [None], ids=[p.name for p in SAMPLES] + ["tricky"])
def test_class_attributes_match_reference(path):
    text = TRICKY_CLASS if path is None else path.read_text(encoding="utf-8")
    _, units = units_of(text)
    for unit in units:
        for cls in unit.classes():
            got = unit.class_attributes(cls)
            want = _reference_attributes(unit, cls)
            assert list(got.items()) == list(want.items())
    if path is None:
        cls = next(c for u in units for c in u.classes() if c.name == "Tricky")
        unit = next(u for u in units if cls in u.classes())
        kinds = {k: v.kind for k, v in unit.class_attributes(cls).items()}
        # the shallower `self.deep = None` is seen before the nested Parameter (walk order)
        assert kinds == {
            "b": "parameter", "deep": "other", "w": "grad_tensor", "stats": "buffer", "layers": "other",
            "from_closure": "layer", "late": "layer",
        }  # fmt: skip


def test_checking_leaves_no_cyclic_garbage():
    """Without findings that hold a lazy fix, a checked tree is freed by reference counting:
    cyclic garbage (a unit caught in a cycle with a helper's cache keeps its whole tree
    alive) costs the cyclic GC a full traversal of every tree, ~25% of the CLI's time."""
    analyzer = Analyzer()
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests" / "silent").glob("*.py"))[:15]]
    gc.collect()
    gc.disable()
    try:
        for text in texts:
            result = analyzer.check(text, "silent.py")
            assert result.findings == []
            probe = weakref.ref(result.tree.body[-1])
            del result
            assert probe() is None, "the checked tree outlives the check (reference cycle)"
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_units_with_fixable_findings_stay_usable_for_lazy_fixes():
    text = (
        "import torch\nimport torch.nn as nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 4)\n\n"
        "    def forward(self, x):\n        y = torch.sigmoid(self.fc(x))\n        y[y < 0.5] = 0\n        return y\n"
    )
    result = Analyzer().check(text, "net.py")
    fixes = [f.fix for f in result.findings if f.code == "GG202" and f.fix is not None]
    assert fixes, [f.code for f in result.findings]
    assert fixes[0].edits and "masked_fill" in fixes[0].edits[0].new_text
