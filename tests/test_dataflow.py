"""The per-function data flow that GG204/GG301-GG305 build on."""

import ast
import textwrap

import pytest
from gradguard.engine import dataflow as df
from gradguard.engine.index import ModuleContext, Unit, split_units
from gradguard.engine.source import SourceFile


def units(code: str) -> list[Unit]:
    code = textwrap.dedent(code).lstrip("\n")
    source = SourceFile(code)
    tree = ast.parse(code)
    module = ModuleContext(tree, source)
    return [Unit(statements, source, module) for _, _, statements in split_units(tree)]


def only_unit(code: str) -> Unit:
    """The unit of the code's last top-level statement (the imports are the script unit)."""
    return units(code)[-1]


def function(unit: Unit, name: str):
    for node in unit.nodes_of(ast.FunctionDef):
        if node.name == name:
            return node
    raise KeyError(name)


def final(code: str, func: str | None = None) -> dict:
    unit = only_unit(code)
    return df.flow_of(unit, function(unit, func) if func else None).final


HEADER = """
import torch
import torch.nn as nn
import torch.nn.functional as F
"""


def test_module_calls_are_live_and_detach_cuts():
    env = final(
        HEADER
        + """
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
    assert env["model"].bits & df.MODULE
    assert env["out"].live and env["out"].tracked
    assert not env["x"].tracked
    for name in ("cut", "data", "item", "loss"):
        assert env[name].only(df.CUT), name
    assert env["mixed"].tracked  # a target next to a tracked prediction
    assert [o.lineno for o in env["loss"].origins_of("cut")] == [8]


def test_position_sensitive_reads_and_branch_merge():
    unit = only_unit(
        HEADER
        + """
def step(model, x, y, freeze):
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
    func = function(unit, "step")
    flow = df.flow_of(unit, func)
    assert flow.final["first"].tracked
    assert flow.final["second"].only(df.CUT)
    assert flow.final["feats"].tracked and flow.final["feats"].bits & df.CUT  # merged branches
    # reads are answered as of their position in the function
    ret = flow.returns[0][0]
    assert flow.value(ret.value.elts[0]).tracked
    assert flow.value(ret.value.elts[1]).only(df.CUT)


def test_no_grad_and_enable_grad():
    env = final(
        HEADER
        + """
def step(model, x):
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
    assert env["a"].only(df.NOGRAD)
    assert env["b"].tracked
    assert env["c"].only(df.NOGRAD)
    assert env["d"].only(df.NOGRAD)
    assert env["e"].tracked


def test_no_grad_decorator_covers_the_function():
    env = final(
        HEADER
        + """
@torch.no_grad()
def evaluate(model, x):
    out = model(x)
    return out
""",
        "evaluate",
    )
    assert env["out"].only(df.NOGRAD)


def test_nondifferentiable_ops_and_straight_through():
    env = final(
        HEADER
        + """
def step(model, x, y):
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
    for name in ("pred", "rounded", "hits", "as_int"):
        assert env[name].only(df.NONDIFF), name
    assert not env["labels"].bits  # labels were never tracked
    assert env["ste"].tracked


def test_module_attributes_across_init_and_forward():
    unit = only_unit(
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
    func = function(unit, "forward")
    env = df.flow_of(unit, func).final
    assert env["h"].live
    assert env["scaled"].live
    assert not env["stats"].tracked
    assert env["crit"].only(df.CUT)  # a parameter-free loss layer adds no tracking
    assert func in df.forward_functions(unit)


def test_lists_appends_and_iteration_over_module_lists():
    unit = only_unit(
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
    env = df.flow_of(unit, function(unit, "forward")).final
    assert env["losses"].is_list and env["losses"].live
    assert env["logged"].is_list and not env["logged"].tracked
    assert env["scores"].is_list and env["scores"].live


def test_saved_outputs_and_inplace_writes():
    env_unit = only_unit(
        HEADER
        + """
def f(model, x):
    y = torch.sigmoid(model(x))
    z = y
    z.mul_(2)
    g = F.gelu(model(x))
    s = model(x).softmax(-1)
    s += 1
    return z
"""
    )
    flow = df.flow_of(env_unit, function(env_unit, "f"))
    writes = [(stmt.lineno, name, before.saved is not None) for stmt, name, before in flow.inplace]
    assert writes == [(8, "z", True), (11, "s", True)]
    assert flow.final["g"].saved is None


def test_dependencies_between_names():
    unit = only_unit(
        HEADER
        + """
def f(model, x, y):
    logits = model(x)
    probs = logits.detach()
    loss = F.cross_entropy(probs, y)
    return loss
"""
    )
    func = function(unit, "f")
    assert df.derives_from(unit, func, "loss") >= {"probs", "logits", "x", "y"}
    assert "y" not in df.derives_from(unit, func, "probs")


def test_backward_calls_skip_object_methods():
    unit = only_unit(
        HEADER
        + """
def f(model, accelerator, x):
    loss = model(x).sum()
    accelerator.backward(loss)
    loss.backward(retain_graph=True)
    loss.backward()
"""
    )
    assert [c.lineno for c, _ in df.backward_calls(unit)] == [8, 9]


def test_flow_is_cached_per_function():
    unit = only_unit(
        HEADER
        + """
def f(model, x):
    return model(x)
"""
    )
    func = function(unit, "f")
    assert df.flow_of(unit, func) is df.flow_of(unit, func)
    assert df.flow_of(unit, None) is not df.flow_of(unit, func)


@pytest.mark.parametrize(
    "snippet",
    [
        "x = [y async for y in z]",
        "match x:\n    case [a, *rest]:\n        b = a\n    case _:\n        b = None",
        "try:\n    a = 1\nexcept* ValueError:\n    a = 2",
        "(a := torch.zeros(1)).add_(1)",
        "lambda q: q.detach()",
        "del x",
        "a, *b = torch.zeros(3)",
        "x[0].y += 1",
        "f'{x!r}'",
    ],
)
def test_unusual_syntax_does_not_crash(snippet):
    body = textwrap.indent(snippet, "    ")
    unit = only_unit(HEADER + f"async def f(x, z):\n{body}\n")
    func = unit.nodes[0]
    assert isinstance(func, ast.AsyncFunctionDef)
    flow = df.flow_of(unit, func)
    assert "x" in flow.params


def test_indices_of_max_and_topk_are_not_differentiable():
    env = final(
        HEADER
        + """
def f(model, x):
    out = model(x)
    values, idx = out.max(dim=1)
    _, pred = torch.max(out, 1)
    top = out.topk(2).indices
    second = out.max(1)[1]
    first = out.max(1)[0]
    whole_max = torch.max(out)
    return values
""",
        "f",
    )
    assert env["values"].tracked and env["first"].tracked and env["whole_max"].tracked
    for name in ("idx", "pred", "top", "second"):
        assert env[name].only(df.NONDIFF), name


def test_cached_flows_create_no_reference_cycles():
    import gc
    import weakref

    code = (
        HEADER
        + """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        y = torch.sigmoid(self.fc(x))
        y.mul_(2)
        return y.detach()

def step(model, x):
    loss = model(x).sum()
    loss.backward()
"""
    )
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        found = units(code)
        for unit in found:
            for func in unit.nodes_of(ast.FunctionDef):
                df.flow_of(unit, func).value(func.body[-1].value or func.body[0].value)
            list(df.backward_calls(unit))
        probe = weakref.ref(found[-1].nodes[0])
        del found, unit, func
        assert probe() is None
    finally:
        if was_enabled:
            gc.enable()


def test_set_grad_enabled_statement_switches_tracking():
    env = final(
        HEADER
        + """
def f(model, x):
    torch.set_grad_enabled(False)
    a = model(x)
    torch.set_grad_enabled(True)
    b = model(x)
    return a, b
""",
        "f",
    )
    assert env["a"].only(df.NOGRAD)
    assert env["b"].tracked
