"""A file's findings do not depend on the order in which the value analysis is asked for things:
the rules in another order, the units in another order, one rule alone or every rule at once
(see tests/order_harness.py and bench/order.py)."""

import textwrap
from pathlib import Path

import pytest
from gradguard.engine.config import Config
from order_harness import differences, findings
from rule_examples import invalid_cases, valid_cases

REAL_BUGS = Path(__file__).parent / "real_bugs"

# A method that stores on `self` is part of its class summary, and reads `self.<attr>` from it:
# asked first (by GG206 alone) it used to build the summary from inside itself, from a second
# flow of the same method that saw the base class's buffer, and keep the outer flow, where the
# attribute held the store's value instead; asked after the summary (every rule at once: another
# rule builds it first) the buffer was seen. The summary is now built before the method's flow.
BUFFER_STORE = textwrap.dedent(
    """\
    import torch
    import torch.nn as nn


    class Norm(nn.BatchNorm1d):
        def forward(self, x):
            mean = x.mean(0)
            self.running_mean = 0.9 * self.running_mean + 0.1 * mean
            return x - mean
    """
)

# The script instantiates a class whose `__init__` reads a script global: checking the class
# unit first built the script's flow while the class summary was still empty (`self.rnn`
# unknown), and kept it, so the script unit lost GG404. A result computed while a summary was
# unfinished is now dropped when it finishes.
SCRIPT_DURING_CLASS = textwrap.dedent(
    """\
    import torch
    from torch import nn

    SIZE = 1


    class RNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(input_size=SIZE, hidden_size=8, batch_first=True)
            self.out = nn.Linear(8, 1)

        def forward(self, x, h):
            r, h = self.rnn(x, h)
            return self.out(r), h


    model = RNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    h = None
    for step in range(3):
        out, h = model(torch.randn(1, 5, 1), h)
        loss = out.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    """
)


def test_buffer_store_found_by_the_rule_alone():
    alone = findings(BUFFER_STORE, "x.py", Config(select=("GG206",)))
    assert [f[:2] for f in alone] == [("GG206", 8)]
    assert differences(BUFFER_STORE, "x.py", codes=["GG206"]) == {}


def test_script_flow_not_kept_from_an_unfinished_class():
    plain = findings(SCRIPT_DURING_CLASS, "x.py")
    assert ("GG404", 22) in {f[:2] for f in plain}
    assert findings(SCRIPT_DURING_CLASS, "x.py", units="reversed") == plain
    assert differences(SCRIPT_DURING_CLASS, "x.py", codes=["GG404"]) == {}


@pytest.mark.parametrize("path", sorted(REAL_BUGS.glob("*.py")), ids=lambda p: p.stem)
def test_real_bugs_order_independent(path):
    text = path.read_text()
    if "torch" not in text:
        pytest.skip("no torch")
    # one rule at a time only for the rules that report here (the others' absence is checked
    # by the reordered runs of every rule): the whole run stays within seconds
    codes = sorted({f[0] for f in findings(text, path.name)})
    assert differences(text, path.name, codes=codes) == {}


@pytest.mark.parametrize("rule,example", [*valid_cases(), *invalid_cases()])
def test_rule_examples_order_independent(rule, example):
    assert differences(example.code, "x.py", codes=[rule.code]) == {}


# A name a function stores with `global`: its readers used to see what the flows computed so far
# had stored (none when the writer's unit came later, or no rule asked for its flow). The writers'
# flows are now computed before the name is read.
GLOBAL_STORE = textwrap.dedent(
    """\
    import torch


    def init():
        global W
        W = torch.zeros(3, requires_grad=True)


    def step():
        return W
    """
)


def _global_read(writer_first: bool) -> tuple:
    import ast

    from gradguard.engine.index import ModuleContext
    from gradguard.engine.semantic import Semantics, value_key
    from gradguard.engine.source import SourceFile

    tree = ast.parse(GLOBAL_STORE)
    semantics = Semantics(
        tree, ModuleContext(tree, SourceFile(GLOBAL_STORE, "x.py")), GLOBAL_STORE.splitlines(True)
    )
    init, step = tree.body[1], tree.body[2]
    if writer_first:
        semantics.flow(init)
    flow = semantics.flow(step)
    return value_key(flow.values[step.body[0].value])[:3]  # kinds, grad, leaf


def test_global_store_read_after_its_writers_in_any_order():
    first = _global_read(writer_first=True)
    assert _global_read(writer_first=False) == first
    assert first[0] & 1  # a tensor (TENSOR = 1 << 0)
