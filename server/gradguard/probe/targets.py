"""Find probe targets in a file and plan how to build them, statically (no torch).

For each `nn.Module` subclass: the constructor call (from a `# gradguard: probe`
comment, from the file's own use of the class, or from the defaults) and the input
(from the comment, from the file's own call of the model, or left to the child to
infer from the first layer `forward` applies). For each `autograd.Function`: the
inputs of `apply`. Everything that is only known at run time is tried by the child,
which reports exactly what it could not build.
"""

from __future__ import annotations

import ast
import builtins
import copy
from dataclasses import dataclass, field

from gradguard.engine.index import ModuleContext, Unit, self_name, split_units
from gradguard.engine.probe_comments import ProbeComment, probe_comments
from gradguard.engine.source import SourceFile


@dataclass
class Target:
    kind: str  # "module" | "function"
    name: str
    node: ast.ClassDef
    unit: Unit
    ctors: list[dict] = field(default_factory=list)
    ctor_need: str | None = None
    inputs: list[dict] | None = None
    input_origin: str = ""
    input_need: str | None = None
    first_layer: str | None = None

    @property
    def line(self) -> int:
        return self.node.lineno

    def to_plan(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "ctors": self.ctors,
            "ctor_need": self.ctor_need,
            "inputs": self.inputs,
            "input_origin": self.input_origin,
            "input_need": self.input_need,
            "first_layer": self.first_layer,
        }


@dataclass
class FileTargets:
    source: SourceFile
    tree: ast.Module
    module: ModuleContext
    targets: list[Target]
    units: dict[str, Unit]  # class name -> its unit


class PlanError(Exception):
    pass


def find_targets(text: str, path: str, only: str | None = None) -> FileTargets:
    """Every top-level nn.Module and autograd.Function class (or just `only`), with its
    build plan."""
    source = SourceFile(text, path)
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise PlanError(f"syntax error on line {exc.lineno}: {exc.msg}") from None
    module = ModuleContext(tree, source)
    units: dict[str, Unit] = {}
    targets: list[Target] = []
    classes = {s.name: s for s in tree.body if isinstance(s, ast.ClassDef)}
    for _, _, statements in split_units(tree):
        if len(statements) != 1 or not isinstance(statements[0], ast.ClassDef):
            continue
        unit = Unit(statements, source, module, path)
        cls = statements[0]
        units[cls.name] = unit
        if module.is_module_class(cls.name):
            if not has_forward(cls, module, classes):
                continue  # a container with act()/evaluate() methods: nothing to run
            targets.append(Target("module", cls.name, cls, unit))
        elif module.is_function_class(cls.name):
            targets.append(Target("function", cls.name, cls, unit))
    comments = probe_comments(source, tree)
    scopes = _Scopes(tree)
    if only is not None:
        targets = [t for t in targets if t.name == only]
    for target in targets:
        comment = comments.get(target.name)
        if target.kind == "module":
            _plan_module(target, comment, scopes, source)
        else:
            _plan_function(target, comment, scopes, source)
    return FileTargets(source, tree, module, targets, units)


def has_forward(cls: ast.ClassDef, module: ModuleContext, classes: dict[str, ast.ClassDef]) -> bool:
    """Whether calling the module does something: its own forward, a local base's, or a
    built-in layer base (class MyLinear(nn.Linear))."""
    if any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == "forward" for s in cls.body):
        return True
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in classes and classes[base.id] is not cls:
            if has_forward(classes[base.id], module, classes):
                return True
            continue
        name = module.qualname(base) or ""
        if name.startswith("torch.nn.") and name not in ("torch.nn.Module", "torch.nn.modules.module.Module"):
            return True
        if name and not name.startswith("torch."):
            return True  # an imported base class: it may define forward
    return False


# -- usage in the file -----------------------------------------------------------------------------------
class _Scopes:
    """Simple assignments per scope (module body, each function), to resolve the names
    used in `Net(d, 5)` / `model(x)` to the expressions that made them."""

    def __init__(self, tree: ast.Module) -> None:
        self.calls: list[tuple[ast.Call, ast.AST]] = []  # (call, scope)
        self.assignments: dict[int, list[tuple[int, str, ast.expr]]] = {}
        self._walk(tree, tree)
        self._index()
        self.module_names: set[str] = set()
        for stmt in tree.body:
            for node in (
                ast.walk(stmt) if isinstance(stmt, (ast.If, ast.Try)) and not _is_main_guard(stmt) else [stmt]
            ):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    self.module_names.update((a.asname or a.name).split(".")[0] for a in node.names)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    self.module_names.add(node.name)
                elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        self.module_names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))

    def _walk(self, node: ast.AST, scope: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                self._walk(child, child)
                continue
            if isinstance(child, ast.ClassDef):
                self._walk(child, child)
                continue
            if (
                isinstance(child, ast.Assign)
                and len(child.targets) == 1
                and isinstance(child.targets[0], ast.Name)
            ):
                self.assignments.setdefault(id(scope), []).append(
                    (child.lineno, child.targets[0].id, child.value)
                )
            elif (
                isinstance(child, ast.AnnAssign)
                and isinstance(child.target, ast.Name)
                and child.value is not None
            ):
                self.assignments.setdefault(id(scope), []).append(
                    (child.lineno, child.target.id, child.value)
                )
            if isinstance(child, ast.Call):
                self.calls.append((child, scope))
            self._walk(child, scope)

    def resolve(self, expr: ast.expr, scope: ast.AST, line: int, depth: int = 0) -> ast.expr:
        """Replace names bound by an earlier simple assignment in the same scope."""
        if depth > 4:
            return expr
        assigned = self.assignments.get(id(scope), [])
        scopes = self

        class Inline(ast.NodeTransformer):
            def visit_Name(self, node: ast.Name) -> ast.AST:
                if not isinstance(node.ctx, ast.Load):
                    return node
                best = None
                for lineno, name, value in assigned:
                    if name == node.id and lineno < line:
                        best = (lineno, value)
                if best is None:
                    return node
                return scopes.resolve(best[1], scope, best[0], depth + 1)

        return Inline().visit(copy.deepcopy(expr))

    def _index(self) -> None:
        self.by_callee: dict[str, list[tuple[ast.Call, ast.AST]]] = {}  # f(...) by f
        self.by_inner: dict[str, list[tuple[ast.Call, ast.AST]]] = {}  # Net(...)(x) by Net
        self.by_apply: dict[str, list[tuple[ast.Call, ast.AST]]] = {}  # Fn.apply(...) by Fn
        for call, scope in self.calls:
            func = call.func
            if isinstance(func, ast.Name):
                self.by_callee.setdefault(func.id, []).append((call, scope))
            elif isinstance(func, ast.Call) and isinstance(func.func, ast.Name):
                self.by_inner.setdefault(func.func.id, []).append((call, scope))
            elif (
                isinstance(func, ast.Attribute) and func.attr == "apply" and isinstance(func.value, ast.Name)
            ):
                self.by_apply.setdefault(func.value.id, []).append((call, scope))
        self.holders: dict[str, list[tuple[str, int, int]]] = {}
        for scope_id, assigned in self.assignments.items():
            for lineno, var, value in assigned:
                if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
                    self.holders.setdefault(value.func.id, []).append((var, scope_id, lineno))

    def constructions(self, name: str) -> list[tuple[ast.Call, ast.AST]]:
        return list(self.by_callee.get(name, ()))

    def variables_holding(self, name: str) -> list[tuple[str, int, int]]:
        return list(self.holders.get(name, ()))


def _args_source(call: ast.Call) -> str:
    parts = [ast.unparse(a) for a in call.args]
    parts += [
        f"**{ast.unparse(k.value)}" if k.arg is None else f"{k.arg}={ast.unparse(k.value)}"
        for k in call.keywords
    ]
    return ", ".join(parts)


def _is_main_guard(stmt: ast.stmt) -> bool:
    test = getattr(stmt, "test", None)
    return (
        isinstance(stmt, ast.If)
        and isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
    )


def _usage_line(call: ast.expr) -> str:
    return f"line {call.lineno}"


def _plan_module(target: Target, comment: ProbeComment | None, scopes: _Scopes, source: SourceFile) -> None:
    cls = target.node
    methods = target.unit.methods(cls)
    if comment is not None and isinstance(comment.ctor, ast.Call):
        target.ctors.append(
            {
                "args": _args_source(comment.ctor),
                "text": comment.ctor_text,
                "origin": f"probe comment, line {comment.line}",
            }
        )
    inside = _nodes_inside(cls)
    for call, scope in scopes.constructions(target.name):
        if call in inside:
            continue
        resolved = scopes.resolve(call, scope, call.lineno)
        assert isinstance(resolved, ast.Call)
        text = ast.unparse(resolved)
        if any(c["text"] == text for c in target.ctors):
            continue
        target.ctors.append(
            {"args": _args_source(resolved), "text": text, "origin": f"used on {_usage_line(call)}"}
        )
    init = methods.get("__init__")
    required = _required_params(init) if init is not None else []
    if not required and not any(c["args"] == "" for c in target.ctors):
        target.ctors.append({"args": "", "text": f"{target.name}()", "origin": "constructor defaults"})
    if required:
        names = ", ".join(required)
        target.ctor_need = (
            f"values for `{target.name}.__init__({names})`; write them in a comment above the class, e.g. "
            f"`# gradguard: probe {target.name}({names}) input=(4, ...)` with numbers"
        )

    # input
    if comment is not None and comment.inputs is not None:
        target.inputs = comment.inputs
        target.input_origin = f"probe comment, line {comment.line}"
    else:
        usage = _model_call_inputs(target.name, scopes)
        if usage is not None:
            target.inputs, target.input_origin = usage
    forward = methods.get("forward")
    if forward is not None:
        target.first_layer = _first_layer(forward)
        params = _required_params(forward)
        if target.inputs is None and len(params) != 1:
            # the first layer only tells the shape of one input
            names = ", ".join(params) or "no arguments"
            if params:
                target.input_need = (
                    f"`{target.name}.forward({names})` takes {len(params)} inputs; write their shapes in a comment "
                    f"above the class, e.g. `# gradguard: probe input=[(4, 20), (4, 3)]`"
                )
            else:
                target.inputs = []
                target.input_origin = "forward takes no arguments"


def _model_call_inputs(name: str, scopes: _Scopes) -> tuple[list[dict], str] | None:
    """`model = Net(...)` then `model(torch.randn(4, 20))` (or `Net(...)(x)`) in the file."""
    holders = scopes.variables_holding(name)
    candidates = list(scopes.by_inner.get(name, ()))
    for var in {var for var, _, _ in holders}:
        candidates += scopes.by_callee.get(var, [])
    candidates.sort(key=lambda item: (item[0].lineno, item[0].col_offset))
    for call, scope in candidates:
        func = call.func
        direct = isinstance(func, ast.Call) and isinstance(func.func, ast.Name) and func.func.id == name
        via_var = isinstance(func, ast.Name) and any(
            var == func.id and scope_id == id(scope) and lineno < call.lineno
            for var, scope_id, lineno in holders
        )
        if not (direct or via_var) or call.keywords or not call.args:
            continue
        if any(isinstance(a, ast.Starred) for a in call.args):
            continue
        resolved = [scopes.resolve(a, scope, call.lineno) for a in call.args]
        if any(_mentions_unbound(r, scopes) for r in resolved):
            continue
        return [{"kind": "expr", "expr": ast.unparse(r)} for r in resolved], f"used on line {call.lineno}"
    return None


def _mentions_unbound(expr: ast.expr, scopes: _Scopes) -> bool:
    """A name still left after inlining is a loop variable, a batch from a DataLoader, ...:
    only module-level names (imports, classes, constants) and builtins exist in the child."""
    for node in ast.walk(expr):
        if (
            isinstance(node, ast.Name)
            and node.id not in scopes.module_names
            and not hasattr(builtins, node.id)
        ):
            return True
    return False


def _first_layer(forward: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The `self.<attr>` first applied to forward's first input (directly or through a
    reshape/method chain of it)."""
    me = self_name(forward) or "self"
    params = _required_params(forward)
    if not params:
        return None
    first = params[0]
    calls = [n for n in ast.walk(forward) if isinstance(n, ast.Call)]
    calls.sort(key=lambda n: (n.lineno, n.col_offset))
    for call in calls:
        func = call.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == me):
            continue
        if call.args and _rooted_at(call.args[0], first):
            return func.attr
    return None


def _rooted_at(expr: ast.expr, name: str) -> bool:
    while True:
        if isinstance(expr, ast.Name):
            return expr.id == name
        if isinstance(expr, ast.Attribute):
            expr = expr.value
        elif isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
            expr = expr.func.value
        elif isinstance(expr, ast.Subscript):
            expr = expr.value
        else:
            return False


def _required_params(func: ast.FunctionDef | ast.AsyncFunctionDef | None, skip: int = 1) -> list[str]:
    if func is None:
        return []
    args = func.args
    positional = args.posonlyargs + args.args
    n_defaults = len(args.defaults)
    required = [a.arg for a in positional[: len(positional) - n_defaults]][skip:]
    required += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    return required


def _nodes_inside(cls: ast.ClassDef) -> set:
    return set(ast.walk(cls))


# -- autograd Functions ------------------------------------------------------------------------------------
def function_inputs(cls: ast.ClassDef, methods: dict) -> list[ast.arg] | None:
    forward = methods.get("forward")
    if forward is None:
        return None
    positional = forward.args.posonlyargs + forward.args.args
    skip = 0 if "setup_context" in methods else 1  # forward(ctx, ...) unless setup_context is used
    return positional[skip:]


def _plan_function(target: Target, comment: ProbeComment | None, scopes: _Scopes, source: SourceFile) -> None:
    methods = target.unit.methods(target.node)
    if comment is not None and comment.inputs is not None:
        target.inputs = comment.inputs
        target.input_origin = f"probe comment, line {comment.line}"
        return
    for call, scope in scopes.by_apply.get(target.name, []):
        func = call.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "apply"
            and isinstance(func.value, ast.Name)
            and func.value.id == target.name
            and call.args
            and not any(isinstance(a, ast.Starred) for a in call.args)
        ):
            resolved = [scopes.resolve(a, scope, call.lineno) for a in call.args]
            if any(_mentions_unbound(r, scopes) for r in resolved):
                continue
            target.inputs = [_literal_or_expr(r) for r in resolved]
            target.input_origin = f"used on line {call.lineno}"
            return
    params = function_inputs(target.node, methods)
    if params is None:
        target.input_need = f"`{target.name}` has no `forward` of its own"
        return
    forward = methods["forward"]
    n_defaults = len(forward.args.defaults)
    positional = forward.args.posonlyargs + forward.args.args
    required = params[: len(params) - n_defaults] if n_defaults else params
    non_grad = _backward_none_positions(methods.get("backward"), len(params))
    specs: list[dict] = []
    for index, arg in enumerate(required):
        annotation = ast.unparse(arg.annotation) if arg.annotation is not None else ""
        if annotation in ("float",):
            # increasing values, so that (low, high) pairs make a real interval
            floats = sum(1 for spec in specs if spec["kind"] == "value" and isinstance(spec["value"], float))
            specs.append({"kind": "value", "value": 0.5 + floats})
        elif annotation in ("int",):
            specs.append({"kind": "value", "value": 1})
        elif annotation in ("bool",):
            specs.append({"kind": "value", "value": True})
        elif index in non_grad:
            names = ", ".join(a.arg for a in required)
            target.input_need = (
                f"cannot tell what `{arg.arg}` is (backward returns None for it, so it may not be a tensor); "
                f"write the inputs of `{target.name}.apply({names})` in a comment above the class, e.g. "
                f"`# gradguard: probe input=[(3, 3), 0.5]`"
            )
            return
        else:
            specs.append({"kind": "shape", "shape": [3, 3]})
    del positional
    target.inputs = specs
    target.input_origin = "default"


def _literal_or_expr(node: ast.expr) -> dict:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
        return {"kind": "value", "value": node.value}
    return {"kind": "expr", "expr": ast.unparse(node)}


def _backward_none_positions(backward, count: int) -> set[int]:
    positions: set[int] = set()
    if backward is None:
        return positions
    for node in ast.walk(backward):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
            for index, elt in enumerate(node.value.elts):
                if isinstance(elt, ast.Constant) and elt.value is None:
                    positions.add(index)
    return positions


def backward_return_element(cls: ast.ClassDef, methods: dict, index: int | None) -> ast.AST:
    """The node of backward's return for input `index` (the whole return, or the def)."""
    backward = methods.get("backward")
    if backward is None:
        return cls
    returns = [n for n in ast.walk(backward) if isinstance(n, ast.Return) and n.value is not None]
    if len(returns) != 1:
        return returns[-1] if returns else backward
    value = returns[0].value
    if index is not None and isinstance(value, ast.Tuple) and 0 <= index < len(value.elts):
        return value.elts[index]
    if index == 0 and value is not None and not isinstance(value, ast.Tuple):
        return value
    return returns[0]
