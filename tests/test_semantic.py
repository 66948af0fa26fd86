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
            if isinstance(node, ast.Name) and node.id == name and node.lineno == line and isinstance(node.ctx, ast.Load):
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

        def fit(rnn, data, opt, detach):
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
