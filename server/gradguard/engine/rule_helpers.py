"""Helpers shared by more than one rule (a rule imports only the engine, never another rule)."""

from __future__ import annotations

import ast
import re

from gradguard.engine.index import FunctionNode, Unit, self_name

# Augmented assignments a tensor does in place -> the operator (`x @= y` is not one: torch.Tensor has no
# `__imatmul__`, see `torch_facts.operator("MatMult")`, so it rebinds `x` to a new tensor).
AUGMENTED_OPERATORS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}

# `mm_backward`, `linear_backward`, `mmBackward`, `customBackward`
_BACKWARD_NAME = re.compile(r"^(?:backward|\w+_backward|[a-z]\w*Backward)$")
# Parameter names that carry an upstream gradient.
_GRAD_ARG = re.compile(r"grad|^(?:dout|d_out|dy|dz|delta|upstream|top_diff|dl_dy|dloss)$", re.I)
# Calls inside the method that mean it hands the work to autograd (a training helper).
_DELEGATING = {"backward", "manual_backward", "grad"}


def fake_backward_methods(unit: Unit, cls: ast.ClassDef) -> list[FunctionNode]:
    """The methods of module class `cls` that look like a hand-written backward pass
    and that autograd never calls (GG101; GG102 and GG105 leave these methods to it)."""
    if _is_lightning(unit, cls):
        return []
    methods = unit.methods(cls)
    candidates = [m for name, m in methods.items() if _BACKWARD_NAME.match(name) and _takes_gradient(m)]
    if not candidates:
        return []
    forward_names = {f.name for f in unit.methods_reachable_from(cls, "forward")}
    found = []
    for func in candidates:
        if func.name in forward_names:  # forward itself calls it: a helper, e.g. a reverse-direction RNN pass
            continue
        if _delegates_to_autograd(func):
            continue
        if _stateless_helper(func):
            continue
        if _referenced_elsewhere(unit, func.name):
            continue
        found.append(func)
    return found


def _is_lightning(unit: Unit, cls: ast.ClassDef) -> bool:
    """A base class from a framework defines `backward` and calls overrides of it
    (Lightning's `LightningModule.backward(loss)`): found by the module context, from the
    framework's source when the project resolver can read it."""
    summary = unit.module.classes.get(cls.name)
    return summary is not None and summary.backward_hook is not None


def _takes_gradient(func: FunctionNode) -> bool:
    args = func.args
    params = [a.arg for a in args.posonlyargs + args.args][1:] + [a.arg for a in args.kwonlyargs]
    if func.name == "backward":
        return bool(params) or args.vararg is not None
    return any(_GRAD_ARG.search(p) for p in params)


def _stateless_helper(func: FunctionNode) -> bool:
    """A `@staticmethod` whose first parameter is no `ctx`: a gradient formula kept in the class's
    namespace and called by name (`Surrogate.backward(grad, x, alpha)`). It has no module to read
    what `forward` stashed on or to set parameters' `.grad` on, so nobody wrote it believing autograd
    calls it (spikingjelly surrogate.py). A staticmethod `backward(ctx, grad)` on a module is an
    `autograd.Function` written as a module: still reported."""
    if not any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in func.decorator_list):
        return False
    args = func.args.posonlyargs + func.args.args
    return bool(args) and args[0].arg not in ("ctx", "context", "self")


def _delegates_to_autograd(func: FunctionNode) -> bool:
    for node in ast.walk(func):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _DELEGATING
        ):
            if node.func.attr == "grad" and not _is_autograd(node.func.value):
                continue
            return True
    return False


def _is_autograd(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "autograd") or (
        isinstance(node, ast.Name) and node.id == "autograd"
    )


def _referenced_elsewhere(unit: Unit, name: str) -> bool:
    """Is the method passed around (`register_hook(self.mm_backward)`) or called from a
    lambda / nested function (which may be a hook autograd does call)?"""
    for node in unit.nodes_of(ast.Attribute):
        if node.attr != name:  # type: ignore[attr-defined]
            continue
        parent = unit.parent(node)
        if not (isinstance(parent, ast.Call) and parent.func is node):
            return True
        for anc in unit.ancestors(parent):
            if isinstance(anc, ast.Lambda):
                return True
            if isinstance(anc, (ast.FunctionDef, ast.AsyncFunctionDef)):
                outer = unit.parent(anc)
                if not isinstance(outer, ast.ClassDef) and outer is not None:
                    return True
                break
    return False


# -- where a module reads one of its attributes (GG103, GG201) ---------------------------------------
def self_attribute_reads(
    unit: Unit, cls: ast.ClassDef, attr: str
) -> list[tuple[ast.Attribute, FunctionNode]] | None:
    """Every load of `self.<attr>` in the methods of the module class `cls`, each with its method; None
    when the attribute may be read where this cannot see it: the name is an attribute, or a string,
    anywhere else in the file (another object's, a subclass's, `getattr(self, "x")`), the class reads
    attributes by a computed name (`getattr`, `__dict__`, `vars`), or a base class other than torch's
    may read it."""
    for base in cls.bases:
        qual = unit.module.qualname(base)
        if qual is None or not qual.startswith("torch."):
            return None
    reads: list[tuple[ast.Attribute, FunctionNode]] = []
    mine: set[int] = set()
    for method in cls.body:
        if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        me = self_name(method)
        if me is None or any(
            _decorator_name(d) in ("staticmethod", "classmethod") for d in method.decorator_list
        ):
            continue
        for node in ast.walk(method):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == attr
                and isinstance(node.value, ast.Name)
                and node.value.id == me
            ):
                mine.add(id(node))
                if isinstance(node.ctx, ast.Load):
                    reads.append((node, method))
    # (only the statements that name `attr`, booked for the per-unit cache: a use added elsewhere
    # in the file must re-run this)
    for stmt in unit.semantics.rests_on_text_naming(attr):
        for node in ast.walk(stmt):
            if isinstance(node, ast.Attribute) and node.attr == attr and id(node) not in mine:
                return None
            if isinstance(node, ast.Constant) and node.value == attr:
                return None
    for node in ast.walk(cls):
        if (isinstance(node, ast.Name) and node.id in ("getattr", "vars")) or (
            isinstance(node, ast.Attribute) and node.attr == "__dict__"
        ):
            return None
    return reads


def _decorator_name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def rebound_before(node: ast.AST, method: FunctionNode, me: str, attr: str, unit: Unit) -> bool:
    """`node` (a read of `me.<attr>` in `method`) runs after a statement of the method's own body,
    not inside any branch or loop, that binds `me.<attr>` anew: it reads that new value."""
    top = node
    for ancestor in unit.ancestors(node):
        if ancestor is method:
            break
        top = ancestor
    else:
        return False
    if top not in method.body:
        return False
    for stmt in method.body[: method.body.index(top)]:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(
                isinstance(t, ast.Attribute)
                and t.attr == attr
                and isinstance(t.value, ast.Name)
                and t.value.id == me
                for t in targets
            ):
                return True
    return False
