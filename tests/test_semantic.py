"""The semantic model: bindings (which definition reaches each use) and values (what each
name holds), through branches, loops, calls, methods and classes."""

from __future__ import annotations

import ast
import textwrap

import pytest
from gradguard.engine import values as v
from gradguard.engine.index import ModuleContext
from gradguard.engine.interpreter import BACKWARD, INPLACE
from gradguard.engine.semantic import Semantics
from gradguard.engine.source import SourceFile


class Model:
    def __init__(self, code: str) -> None:
        self.code = textwrap.dedent(code).lstrip("\n")
        self.tree = ast.parse(self.code)
        self.module = ModuleContext(self.tree, SourceFile(self.code, "case.py"))
        self.semantics = Semantics(self.tree, self.module)

    def function(self, name: str | None):
        if name is None:
            return None
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                return node
        raise KeyError(name)

    def flow(self, name: str | None = None):
        return self.semantics.flow(self.function(name))

    def value(self, name: str, line: int, function: str | None = None) -> v.Value:
        """The value of the name where it is loaded (or bound) on `line`."""
        flow = self.flow(function)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and node.id == name and node.lineno == line and node in flow.values:
                return flow.values[node]
        raise AssertionError(f"{name} not evaluated on line {line}")

    def reaching_lines(self, name: str, line: int, function: str | None = None) -> list[int]:
        flow = self.flow(function)
        for node in ast.walk(self.tree):
            if (
                isinstance(node, ast.Name)
                and node.id == name
                and node.lineno == line
                and isinstance(node.ctx, ast.Load)
            ):
                return sorted(getattr(d, "lineno", 0) for d in flow.reaching(node))
        raise AssertionError(f"no load of {name} on line {line}")


# -- bindings ----------------------------------------------------------------------------------
def test_reaching_definitions_through_branches_and_loops():
    m = Model(
        """
        def f(flag, items):
            x = 1
            if flag:
                x = 2
            else:
                pass
            print(x)
            for item in items:
                print(x)
                x = item
            print(x)
            while flag:
                y = x
                break
            else:
                y = 0
            print(y)
        """
    )
    assert m.reaching_lines("x", 7, "f") == [2, 4]
    # the loop body sees the value from before the loop and from the previous iteration
    assert m.reaching_lines("x", 9, "f") == [2, 4, 10]
    assert m.reaching_lines("x", 11, "f") == [2, 4, 10]
    assert m.reaching_lines("y", 17, "f") == [13, 16]


def test_return_and_raise_end_a_path():
    m = Model(
        """
        def f(flag):
            x = 1
            if flag:
                x = 2
                return x
            print(x)
            try:
                x = 3
            except ValueError:
                raise
            print(x)
        """
    )
    assert m.reaching_lines("x", 6, "f") == [2]
    assert m.reaching_lines("x", 11, "f") == [8]


def test_with_walrus_del_unpacking_and_comprehension_scope():
    m = Model(
        """
        def f(pairs, path):
            with open(path) as handle:
                first, *rest = pairs
            if (n := len(rest)) > 1:
                print(n)
            squares = [k * k for k in rest]
            print(first, rest, handle)
            k = 5
            del k
            return squares
        """
    )
    assert m.reaching_lines("handle", 7, "f") == [2]
    assert m.reaching_lines("first", 7, "f") == [3]
    assert m.reaching_lines("n", 5, "f") == [4]
    assert m.value("rest", 7, "f").is_only(v.LIST)
    # the comprehension's `k` does not leak; `del` unbinds
    assert m.reaching_lines("rest", 6, "f") == [3]


def test_global_and_module_names():
    m = Model(
        """
        import torch
        import torch.nn as nn

        model = nn.Linear(3, 1)
        counter = 0

        def step(x):
            global counter
            counter = counter + 1
            return model(x)
        """
    )
    assert m.value("model", 10, "step").is_module
    assert m.value("counter", 9, "step").is_only(v.INT)


def test_global_writers_found_by_their_lines():
    """The functions declaring a name `global` (looked up only in functions whose lines may start a
    `global` statement): the same with the file's lines as with a walk of every function."""
    code = textwrap.dedent(
        """
        counter = 0
        total = 0
        flag = 0

        def plain():
            global counter
            counter += 1

        def one_line(c):
            if c: global total
            total = 1

        def after_semicolon():
            x = 1; global flag
            flag = x

        def outer():
            def inner():
                global counter
                counter = 2
            return inner

        def docs(global_pool=None):
            \"\"\"Uses global pooling: global average pooling.\"\"\"
            return global_pool
        """
    ).lstrip("\n")
    tree = ast.parse(code)
    module = ModuleContext(tree, SourceFile(code, "case.py"))
    with_lines = Semantics(tree, module, code.splitlines(keepends=True))._global_writers()
    walked = Semantics(tree, module)._global_writers()  # (no lines: every function walked)
    names = {name: [f.name for f in funcs] for name, funcs in with_lines.items()}
    assert names == {name: [f.name for f in funcs] for name, funcs in walked.items()}
    assert names == {
        "counter": ["plain", "outer", "inner"],
        "total": ["one_line"],
        "flag": ["after_semicolon"],
    }
    docs_only = 'def f(global_pool=None):\n    """global average pooling"""\n    return 1\n'
    tree = ast.parse(docs_only)
    semantics = Semantics(
        tree, ModuleContext(tree, SourceFile(docs_only, "d.py")), docs_only.splitlines(True)
    )
    assert semantics._global_writers() == {}


# -- values ------------------------------------------------------------------------------------
MODULE_CODE = """
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self, dims, use_buffer):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.layers = [nn.Linear(4, 4) for _ in range(dims)]
        self.w = nn.Parameter(torch.zeros(4))
        self.scale = torch.ones(4, requires_grad=True)
        if use_buffer:
            self.register_buffer("stat", torch.zeros(4))
        else:
            self.stat = nn.Parameter(torch.zeros(4))

    def forward(self, x):
        h = self.fc(x)
        return h * self.w
"""


def test_class_attributes():
    m = Model(MODULE_CODE)
    info = m.semantics.class_info("Net")
    assert info.attrs["fc"].is_module and info.attrs["fc"].cls == "torch.nn.Linear"
    layers = info.attrs["layers"]
    assert layers.is_only(v.LIST) and layers.elem.is_module
    assert info.attrs["w"].is_parameter
    scale = info.attrs["scale"]
    assert scale.is_tensor and not scale.is_parameter and scale.requires_grad and scale.leaf == v.YES
    # a buffer in one branch and a parameter in the other is either, never the last one written
    stat = info.attrs["stat"]
    assert stat.kinds & v.BUFFER and stat.kinds & v.PARAMETER
    assert not stat.is_buffer and not stat.is_parameter


def test_forward_values_and_module_call_summary():
    m = Model(
        MODULE_CODE
        + """
model = Net(2, True)
out = model(torch.randn(2, 4))
loss = out.sum()
"""
    )
    h = m.value("h", 17, "forward")
    assert h.requires_grad and h.leaf == v.NO
    out = m.value("out", 21)
    assert out.requires_grad
    model = m.value("model", 20)
    # the gradient of the output goes into the model instance
    assert model.sources and model.sources <= out.sources


def test_graph_cuts_are_recorded_with_their_place():
    m = Model(
        """
        import torch
        import torch.nn as nn

        def train(x, y):
            model = nn.Linear(3, 1)
            out = model(x)
            detached = out.detach()
            number = out.item()
            rewrapped = torch.tensor(out)
            with torch.no_grad():
                frozen = model(x)
            loss = ((detached - y) ** 2).mean()
            print(loss, number, rewrapped, frozen)
        """
    )
    detached = m.value("detached", 12, "train")
    assert detached.no_grad and [c.kind for c in detached.cuts] == [v.DETACH]
    assert detached.cuts[0].node.lineno == 7
    assert m.value("number", 13, "train").is_only(v.FLOAT | v.INT | v.BOOL)
    assert m.value("rewrapped", 13, "train").cuts[0].kind == v.REWRAP
    assert m.value("frozen", 13, "train").cuts[0].kind == v.NO_GRAD
    loss = m.value("loss", 13, "train")
    # `y` is an unknown argument: the loss may require grad, but nothing of the model reaches it
    assert not loss.sources and loss.blocked


def test_functions_of_the_file_are_evaluated_with_the_callers_values():
    m = Model(
        """
        import torch

        def activate(t):
            return torch.sigmoid(t)

        def run(w):
            x = torch.randn(3, requires_grad=True)
            y = activate(x)
            y.mul_(2)
            z = activate(torch.zeros(3))
            return y, z
        """
    )
    y = m.value("y", 9, "run")
    assert y.requires_grad
    z = m.value("z", 11, "run")
    assert z.no_grad
    inplace = m.flow("run").events_of(INPLACE)
    assert len(inplace) == 1 and inplace[0].saved and inplace[0].saved[0].op == "sigmoid"


@pytest.mark.parametrize(
    ("code", "hit"),
    [
        ("h = torch.sigmoid(a)\nh.mul_(2)", "sigmoid"),
        ("h = a * w\na.add_(1)", "mul"),
        ("h = a * 2\na.add_(1)", None),  # mul by a constant saves nothing
        ("p, q = a.chunk(2)\nh = p.exp()\nq.zero_()\nh.add_(1)", "exp"),  # exp's output, written later
        ("h = torch.tanh(a)\nv = h[0]\nv.add_(1)", "tanh"),  # through a view
        ("h = torch.tanh(a)\nh2 = h.clone()\nh2.add_(1)", None),  # clone is a new tensor
        ("h = torch.tanh(a)\nh = h + 1\nh.add_(1)", None),  # rebinding, not the saved one
    ],
)
def test_inplace_after_save(code, hit):
    body = textwrap.indent(code, "    ")
    m = Model(
        f"""
import torch

def f():
    w = torch.randn(4, requires_grad=True)
    a = torch.randn(4, requires_grad=True) * 1.0
{body}
"""
    )
    events = [e for e in m.flow("f").events_of(INPLACE) if e.saved]
    if hit is None:
        assert not events
    else:
        assert events and events[-1].saved[0].op == hit


def test_hidden_state_carried_across_iterations_is_stale():
    m = Model(
        """
        import torch

        def fit(data, opt, detach):
            rnn = torch.nn.RNN(3, 4)  # a known layer: an unknown callable's outputs share no known graph
            h = torch.zeros(1, 4)
            for x in data:
                if detach:
                    h = h.detach()
                out, h = rnn(x, h)
                loss = out.sum()
                loss.backward()
                opt.step()
        """
    )
    (backward,) = m.flow("fit").events_of(BACKWARD)
    # freed by the same backward, in the previous iteration
    assert backward.node in backward.value.stale


def test_gradient_accumulation_is_not_stale():
    m = Model(
        """
        def accumulate(model, loader, opt):
            total = 0
            for i, (x, y) in enumerate(loader):
                total = total + model(x).sum()
                if i % 4 == 0:
                    total.backward()
                    opt.step()
                    total = 0
        """
    )
    (backward,) = m.flow("accumulate").events_of(BACKWARD)
    assert not backward.value.stale


def test_requires_grad_narrowing():
    m = Model(
        """
        import torch

        def f(t: torch.Tensor):
            if t.requires_grad:
                a = t
            else:
                b = t
            return a, b
        """
    )
    assert m.value("t", 5, "f").grad == v.YES
    assert m.value("t", 7, "f").grad == v.NO


def test_zero_gradient_outputs_carry_no_live_gradient():
    m = Model(
        """
        import torch
        import torch.nn as nn

        def f(model, counts):
            net = nn.Linear(3, 1)
            hard = torch.round(net(torch.randn(2, 3)))
            same = hard.abs().mean() * 2
            mixed = hard - counts
            opaque = torch.sign(model(counts))
            either = hard if counts else torch.zeros(2)
            tracked = net(hard)
            fed = net(counts)
            return same, mixed, opaque, either, tracked, fed
        """
    )
    same, mixed = m.value("same", 7, "f"), m.value("mixed", 8, "f")
    # `round` of a layer's output requires grad, but its gradient is zero: no live gradient
    assert same.grad == v.YES and v.live_grad(same) == v.NO
    # an argument of unknown grad status next to it may carry one
    assert v.live_grad(mixed) == v.MAYBE
    assert v.live_grad(m.value("opaque", 9, "f")) == v.NO  # whatever the model is
    assert v.live_grad(m.value("either", 10, "f")) == v.NO
    # a layer's parameters after it: its gradient goes to them (its sources), none elsewhere
    tracked = m.value("tracked", 11, "f")
    assert tracked.grad == v.YES and tracked.sources and v.live_grad(tracked) == v.NO
    # ... and an input of unknown grad status may take some too
    assert v.live_grad(m.value("fed", 12, "f")) == v.MAYBE


def test_optimizer_and_loop_events():
    m = Model(
        """
        import torch
        import torch.nn as nn

        model = nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in []:
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
        """
    )
    flow = m.flow(None)
    opt = m.value("opt", 7)
    assert opt.is_optimizer and m.value("model", 5).sources <= opt.sources
    kinds = [e.kind for e in flow.events_of("zero_grad", "backward", "step")]
    assert kinds == ["zero_grad", "backward", "step"]


def test_unknown_code_never_raises():
    m = Model(
        """
        import torch
        async def f(*args, **kwargs):
            async with args[0] as a:
                yield a
            match kwargs:
                case {"x": x}:
                    print(x)
                case _:
                    pass
            lam = lambda q: q + 1
            print(lam(3), [*args], {**kwargs}, f"{a!r}")
            x: int
            nonlocal_thing = type("X", (), {})
        """
    )
    m.flow("f")


# -- the facts the autograd rules build on (what the earlier per-rule data flow covered) ------
HEADER = """
import torch
import torch.nn as nn
import torch.nn.functional as F
"""


def final(code: str, function: str | None = None) -> dict:
    m = Model(HEADER + textwrap.dedent(code))
    flow = m.flow(function)
    return flow.exit_state.env if flow.exit_state is not None else flow.final.env


def detached(value: v.Value, *kinds: str) -> bool:
    """Nothing of a model reaches it, and a cut of one of `kinds` (or any) disconnected one."""
    return not value.sources and any(c.blocked and (not kinds or c.kind in kinds) for c in value.cuts)


def test_module_calls_reach_the_model_and_detach_cuts():
    env = final(
        """
        model = nn.Linear(3, 1)
        x = torch.randn(4, 3)
        out = model(x)
        cut = out.detach()
        data = out.data
        item = out.sum().item()
        loss = F.mse_loss(cut, x[:, :1])
        mixed = F.mse_loss(out, cut)
        """
    )
    assert env["model"].is_module
    assert env["out"].requires_grad and env["out"].sources
    assert env["x"].no_grad
    for name in ("cut", "data", "item", "loss"):
        assert detached(env[name]), name
    assert env["mixed"].sources  # a target next to a tracked prediction
    assert [c.node.lineno for c in env["loss"].cuts] == [8]


def test_branches_join_and_reads_see_their_place():
    m = Model(
        HEADER
        + """
def step(model: nn.Module, x, y, freeze):
    out = model(x)
    first = out
    out = out.detach()
    second = out
    feats = model(x)
    if freeze:
        feats = feats.detach()
    return first, second, feats
"""
    )
    flow = m.flow("step")
    env = flow.exit_state.env
    assert env["first"].requires_grad
    assert detached(env["second"])
    feats = env["feats"]
    assert feats.sources and feats.cuts  # tracked on one path, cut on the other
    ret = flow.returns[0][0]
    assert flow.value_of(ret.value.elts[0]).sources
    assert detached(flow.value_of(ret.value.elts[1]))


def test_no_grad_enable_grad_and_the_decorator():
    env = final(
        """
        def step(model: nn.Module, x):
            with torch.no_grad():
                a = model(x)
                with torch.enable_grad():
                    b = model(x)
                c = a * 2
            with torch.set_grad_enabled(False):
                d = model(x)
            e = model(x)
            return a, b, c, d, e
        """,
        "step",
    )
    for name in ("a", "c", "d"):
        assert detached(env[name], v.NO_GRAD), name
    assert env["b"].requires_grad and env["e"].requires_grad
    env = final(
        """
        @torch.no_grad()
        def evaluate(model: nn.Module, x):
            out = model(x)
            return out
        """,
        "evaluate",
    )
    assert detached(env["out"], v.NO_GRAD)


def test_the_items_of_a_tuple_a_call_returns_under_no_grad_have_no_graph():
    env = final(
        """
        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):
                h = self.fc(x)
                return h * 2, h

        def step(x):
            head = Head()
            student, _ = head(x)
            with torch.no_grad():
                teacher, embed = head(x)
            return student, teacher, embed
        """,
        "step",
    )
    assert env["student"].requires_grad
    assert detached(env["teacher"], v.NO_GRAD) and detached(env["embed"], v.NO_GRAD)


def _inplace_modes(m: Model, function: str) -> dict[str, bool]:
    """method of each in-place call in `function` -> whether it ran with gradients off"""
    return {e.node.func.attr: e.nograd is not None for e in m.flow(function).events_of(INPLACE)}


def test_the_branches_of_is_grad_enabled_and_of_negated_tests():
    m = Model(
        HEADER
        + textwrap.dedent(
            """
            def f(w):
                if not torch.is_grad_enabled():
                    w.add_(1)
                else:
                    w.mul_(2)
                if torch.is_grad_enabled():
                    w.sub_(1)
                else:
                    w.div_(2)
                w.neg_()

            def g(w):
                if torch.is_grad_enabled():
                    return w * 2
                w.abs_()
            """
        )
    )
    # both paths of a two-way test go on: the code after it runs with gradients on again
    assert _inplace_modes(m, "f") == {"add_": True, "mul_": False, "sub_": False, "div_": True, "neg_": False}
    assert _inplace_modes(m, "g") == {"abs_": True}  # after `if torch.is_grad_enabled(): return`
    m = Model(
        HEADER
        + textwrap.dedent(
            """
            def f():
                w = torch.zeros(3, requires_grad=True)
                if not w.requires_grad:
                    a = w
                else:
                    b = w
                return a, b
            """
        )
    )
    env = m.flow("f").exit_state.env
    assert env["a"].grad == v.NO and env["b"].grad == v.YES  # (`not` used to be ignored)


def test_a_private_helper_called_only_where_gradients_are_off():
    code = HEADER + textwrap.dedent(
        """
        class Average:
            def _copy(self, target, source):
                target.copy_(source)

            def _scale(self, target):
                target.mul_(0.5)

            def _public_path(self, target):
                target.add_(1)

            @torch.no_grad()
            def on_step(self, target, source):
                self._copy(target, source)
                with torch.enable_grad():
                    self._scale(target)

            def sync(self, target):
                with torch.no_grad():
                    self._scale(target)
                self._public_path(target)
        """
    )
    tree = ast.parse(code)
    semantics = Semantics(
        tree, ModuleContext(tree, SourceFile(code, "case.py")), code.splitlines(keepends=True)
    )
    methods = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert semantics.called_without_grad(methods["_copy"])  # from a `@torch.no_grad()` method only
    assert not semantics.called_without_grad(methods["_scale"])  # once under `enable_grad`
    assert not semantics.called_without_grad(methods["_public_path"])  # called with gradients on
    assert not semantics.called_without_grad(methods["sync"])  # public: callers outside the file
    modes = {
        e.node.func.attr: e.nograd is not None for e in semantics.flow(methods["_copy"]).events_of(INPLACE)
    }
    assert modes == {"copy_": True}


def test_non_differentiable_ops_and_the_straight_through_estimator():
    env = final(
        """
        def step(model: nn.Module, x, y):
            out = model(x)
            pred = out.argmax(dim=1)
            rounded = torch.round(out)
            hits = (out > 0.5).float()
            labels = y.long()
            ste = out + (torch.round(out) - out).detach()
            as_int = out.to(torch.long)
            return pred
        """,
        "step",
    )
    for name in ("pred", "hits", "as_int"):
        assert detached(env[name], v.NONDIFF), name
    assert not env["rounded"].sources and env["rounded"].cuts[0].kind == v.ZERO_GRAD
    labels = env["labels"]
    assert not labels.sources and not any(c.blocked for c in labels.cuts)  # labels were never tracked
    assert env["ste"].requires_grad and env["ste"].sources


def test_module_attributes_in_forward():
    m = Model(
        HEADER
        + """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.w = nn.Parameter(torch.ones(4))
        self.loss = nn.MSELoss()
        self.register_buffer("running", torch.zeros(4))

    def forward(self, x):
        h = self.fc(x)
        scaled = x * self.w
        stats = self.running * 2
        crit = self.loss(h.detach(), x)
        return h
"""
    )
    env = m.flow("forward").exit_state.env
    assert env["h"].requires_grad and env["scaled"].requires_grad
    assert env["stats"].no_grad
    assert not env["crit"].sources  # a parameter-free loss layer adds no gradient of its own


def test_lists_appends_and_module_lists():
    m = Model(
        HEADER
        + """
class Heads(nn.Module):
    def __init__(self):
        super().__init__()
        self.heads = nn.ModuleList([nn.Linear(4, 1) for _ in range(3)])

    def forward(self, x):
        losses = []
        logged = []
        for head in self.heads:
            losses.append(head(x).sum())
            logged.append(head(x).sum().item())
        scores = [h(x) for h in self.heads]
        return losses, logged, scores
"""
    )
    env = m.flow("forward").exit_state.env
    assert env["losses"].is_only(v.LIST) and env["losses"].elem.requires_grad
    assert env["logged"].is_only(v.LIST) and not env["logged"].elem.sources
    assert env["scores"].is_only(v.LIST) and env["scores"].elem.requires_grad


def test_backward_of_objects_takes_their_argument():
    m = Model(
        HEADER
        + """
def f(model: nn.Module, accelerator, x):
    loss = model(x).sum()
    accelerator.backward(loss)
    loss.backward(retain_graph=True)
    loss.backward()
"""
    )
    events = m.flow("f").events_of(BACKWARD)
    assert [(e.node.lineno, e.op, e.data.retain) for e in events] == [
        (7, "delegated", False),
        (8, "", True),
        (9, "", False),
    ]


def test_indices_of_max_and_topk_carry_no_gradient():
    env = final(
        """
        def f(model: nn.Module, x):
            out = model(x)
            values, indices = out.max(1)
            top = out.topk(2).indices
            best = torch.max(out, dim=1)[1]
            return values
        """,
        "f",
    )
    assert env["values"].requires_grad
    assert detached(env["indices"], v.NONDIFF)
    assert detached(env["best"], v.NONDIFF)


def test_set_grad_enabled_statement_switches_tracking():
    env = final(
        """
        def f(model: nn.Module, x):
            torch.set_grad_enabled(False)
            a = model(x)
            torch.set_grad_enabled(True)
            b = model(x)
            return a, b
        """,
        "f",
    )
    assert detached(env["a"], v.NO_GRAD) and env["b"].requires_grad


@pytest.mark.parametrize(
    "snippet",
    [
        "x = [*a, *b]",
        "x = {**a}",
        "async def g():\n    async for i in a:\n        await i",
        "x = (y := 3) + y",
        "del a[0], b.c",
        "x = lambda *a, **k: a",
        "class C:\n    x = 1\n    y = [x for _ in range(2)]",
        "try:\n    pass\nexcept* ValueError:\n    pass",
    ],
)
def test_unusual_syntax_does_not_crash(snippet):
    m = Model("import torch\n" + snippet + "\n")
    m.flow(None)
