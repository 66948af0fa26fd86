"""Branch-correlated values (`gradguard.engine.path_facts`): a later test on the same condition sees
the values of the matching arm of an earlier `if`, and falls back to the join whenever the condition
may have changed in between. Every case also runs with torch: the reported ones raise, the silent
ones run."""

from __future__ import annotations

import ast
import textwrap

import pytest
from gradguard.engine import path_facts
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.config import Config

_ERROR = "modified by an inplace operation"


def _lines(code: str) -> list[int]:
    result = Analyzer(Config(select=("GG204",))).check(code).findings
    return [f.line for f in result]


def _forward(signature: str, body: str) -> str:
    """A module whose `forward(self, <signature>)` runs `body` (GG204 reports in forward)."""
    body = textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)
    return f"import torch\n\nclass F(torch.nn.Module):\n    def forward(self, {signature}):\n{body}\n"


_HUBER = """
    if huber:
        out = torch.clip(x, -1, 1)
    else:
        out = torch.sigmoid(x)
"""
_MODES = """
    if mode == "sigmoid":
        out = torch.sigmoid(x)
    elif mode == "clip":
        out = torch.clip(x, -1, 1)
    else:
        out = torch.tanh(x)
    y = out.sum()
"""

# name: (code, call that runs it, expected GG204 lines, whether the call raises)
CASES = {
    "same test again": (
        _forward("x, huber", _HUBER + "    if huber:\n        out /= 2\n    return out"),
        "F()(torch.randn(4, requires_grad=True), True).sum().backward()",
        [],
        False,
    ),
    "a name bound on one arm only": (
        _forward(
            "x, huber",
            """
            if huber:
                out = torch.clip(x, -1, 1)
                scale = 2
            else:
                out = torch.sigmoid(x)
            if huber:
                out /= scale
            return out
            """,
        ),
        "F()(torch.randn(4, requires_grad=True), True).sum().backward()",
        [],
        False,
    ),
    "negated test, the sigmoid arm": (
        _forward("x, huber", _HUBER + "    if not huber:\n        out /= 2\n    return out"),
        "F()(torch.randn(4, requires_grad=True), False).sum().backward()",
        [10],
        True,
    ),
    "the else of the same test": (
        _forward(
            "x, huber",
            """
            if not huber:
                out = torch.sigmoid(x)
            else:
                out = torch.clip(x, -1, 1)
            if huber:
                out /= 2
            else:
                out = out * 2
            return out
            """,
        ),
        "F()(torch.randn(4, requires_grad=True), True).sum().backward()",
        [],
        False,
    ),
    "elif chain of == against constants": (
        _forward("x, mode", _MODES + '    if mode == "clip":\n        out.mul_(2)\n    return y + out.sum()'),
        "F()(torch.randn(4, requires_grad=True), 'clip').backward()",
        [],
        False,
    ),
    "elif chain, arms that save their output": (
        _forward("x, mode", _MODES + '    if mode != "clip":\n        out.mul_(2)\n    return y + out.sum()'),
        "F()(torch.randn(4, requires_grad=True), 'tanh').backward()",
        [13],
        True,
    ),
    "the same item of a configuration tested again": (
        _forward(
            "x, cfg",
            _HUBER.replace("huber", 'cfg["huber"]')
            + '    if cfg["huber"]:\n        out /= 2\n    return out',
        ),
        "F()(torch.randn(4, requires_grad=True), {'huber': True}).sum().backward()",
        [],
        False,
    ),
    "the item tested written in between": (
        _forward(
            "x, cfg",
            _HUBER.replace("huber", 'cfg["huber"]')
            + '    cfg["huber"] = not cfg["huber"]\n    if cfg["huber"]:\n        out /= 2\n    return out',
        ),
        "F()(torch.randn(4, requires_grad=True), {'huber': False}).sum().backward()",
        [11],
        True,
    ),
    "the test's name rebound in between": (
        _forward(
            "x, huber", _HUBER + "    huber = not huber\n    if huber:\n        out /= 2\n    return out"
        ),
        "F()(torch.randn(4, requires_grad=True), False).sum().backward()",
        [11],
        True,
    ),
    "the value rewritten in between": (
        _forward(
            "x, huber",
            _HUBER + "    out = torch.sigmoid(out)\n    if huber:\n        out /= 2\n    return out",
        ),
        "F()(torch.randn(4, requires_grad=True), True).sum().backward()",
        [11],
        True,
    ),
    "the test rebound in a loop after the later test": (
        _forward(
            "x, huber, steps",
            _HUBER + "    for _ in range(steps):\n        if huber:\n            out /= 2\n"
            "        huber = True\n    return out",
        ),
        "F()(torch.randn(4, requires_grad=True), False, 2).sum().backward()",
        [11],
        True,
    ),
    "the attribute tested written in between": (
        """import torch

class Head(torch.nn.Module):
    def __init__(self, huber):
        super().__init__()
        self.huber = huber

    def forward(self, x):
        if self.huber:
            out = torch.clip(x, -1, 1)
        else:
            out = torch.sigmoid(x)
        self.huber = not self.huber
        if self.huber:
            out /= 2
        return out
""",
        "Head(False)(torch.randn(4, requires_grad=True)).sum().backward()",
        [15],
        True,
    ),
    "a method that may change the attribute called in between": (
        """import torch

class Head(torch.nn.Module):
    def __init__(self, huber):
        super().__init__()
        self.huber = huber

    def flip(self):
        self.huber = not self.huber

    def forward(self, x):
        if self.huber:
            out = torch.clip(x, -1, 1)
        else:
            out = torch.sigmoid(x)
        self.flip()
        if self.huber:
            out /= 2
        return out
""",
        "Head(False)(torch.randn(4, requires_grad=True)).sum().backward()",
        [18],
        True,
    ),
    "the tested attribute only read in between": (
        """import torch

class Head(torch.nn.Module):
    def __init__(self, loss, classes):
        super().__init__()
        self.loss, self.classes = loss, classes

    def forward(self, x):
        if self.loss == "modified_huber":
            out = torch.clip(x, -1, 1)
        else:
            out = torch.sigmoid(x)
        if len(self.classes) > 2:
            if self.loss == "modified_huber":
                out[out.sum(1) == 0, :] = 1
        return out
""",
        "Head('modified_huber', [0, 1, 2])(torch.randn(3, 4, requires_grad=True)).sum().backward()",
        [],
        False,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_correlated_branches(name):
    code, call, lines, raises = CASES[name]
    assert _lines(code) == lines
    scope: dict = {}
    exec(compile(code, "case.py", "exec"), scope)
    if raises:
        with pytest.raises(RuntimeError, match=_ERROR):
            exec(call, scope)
    else:
        exec(call, scope)


_ELIF_ONLY = """
import torch

import config


class Likelihood(torch.nn.Module):
    def forward(self, y, dist):
        policy = config.nan_policy()
        if policy == "mask":
            keep = config.observed(y)
            dist = config.masked(dist.mean[..., keep], keep.reshape(-1))
            y = y[..., keep]
        elif policy == "fill":
            missing = torch.isnan(y)
            y = torch.nan_to_num(y)
        out = dist.log_prob(y)
        if policy == "fill":
            out = out * ~missing
        return out
"""


def test_names_bound_on_some_arms_of_an_elif_chain(monkeypatch):
    """gpytorch likelihoods/gaussian_likelihood.py (`log_marginal`): `keep` is bound only on the
    `if` arm and `missing` only on the `elif` arm of a chain without `else`, and the later test
    repeats the `elif`'s; recording the chain's arms gave the arms that never bound `keep` a value
    of None, and every rule failed on the file."""
    import sys
    import types

    import torch

    result = Analyzer().check(_ELIF_ONLY)
    assert result.errors == [] and result.findings == []
    for policy in ("mask", "fill", "other"):
        config = types.SimpleNamespace(
            nan_policy=lambda policy=policy: policy,
            observed=lambda y: ~torch.isnan(y),
            masked=lambda mean, keep: torch.distributions.Normal(mean, 1.0, validate_args=False),
        )
        monkeypatch.setitem(sys.modules, "config", config)
        scope: dict = {}
        exec(compile(_ELIF_ONLY, "case.py", "exec"), scope)
        y = torch.tensor([0.5, float("nan"), 1.0])
        mean = torch.zeros(3, requires_grad=True)
        out = scope["Likelihood"]()(y, torch.distributions.Normal(mean, 1.0, validate_args=False))
        out[~torch.isnan(out)].sum().backward()


# -- can one run run both? (`one_run_runs_both`, `runs_before_each`) --------------------------------
_RUNS = """
def train(model, loader, args, scaler):
    for epoch in range(2):
        for step, batch in enumerate(loader):
            if args["fp16"]:
                with autocast():
                    out = model(batch)
            else:
                loss = model(batch)  # L9
            if args["fp16"]:
                scaler.scale(loss).backward()  # L11
            else:
                loss.backward()  # L13
            if step % 2:
                loss.backward()  # L15
            else:
                loss.backward()  # L17
            try:
                loss.backward()  # L19
            except ValueError:
                loss.backward()  # L21
            except TypeError:
                loss.backward()  # L23
            match args["mode"]:
                case "a":
                    loss.backward()  # L26
                case _:
                    loss.backward()  # L28
            CHANGE
"""


def _runs_both(first: int, second: int, change: str = "pass") -> bool:
    body = ast.parse(_RUNS.replace("CHANGE", change)).body[0].body
    nodes = {n.lineno: n for n in ast.walk(ast.Module(body=body, type_ignores=[])) if isinstance(n, ast.stmt)}
    return path_facts.one_run_runs_both(body, nodes[first], nodes[second])


@pytest.mark.parametrize(
    "first,second,change,both",
    [
        (11, 13, "pass", False),  # the arms of one `if` whose test the loops never change
        (11, 13, 'args["fp16"] = False', True),  # ... that the loop changes
        (11, 13, "configure(args)", True),  # ... handed to a call
        (11, 13, 'clip(args["max_norm"])', False),  # another item handed on
        (15, 17, "pass", True),  # `step % 2`: not a test of names only
        (9, 11, "pass", False),  # opposite arms of two `if`s with the same test
        (9, 13, "pass", True),
        (21, 23, "pass", True),  # two handlers of one `try`: each iteration may raise another error
        (19, 21, "pass", True),  # the body, then a handler
        (26, 28, "pass", False),  # two cases of one `match`
        (11, 26, "pass", True),
    ],
)
def test_one_run_runs_both(first, second, change, both):
    assert _runs_both(first, second, change) is both


def test_exclusive_arms_outside_a_loop():
    body = ast.parse("def f(flag):\n    if flag:\n        a()\n    else:\n        b()\n").body[0].body
    assert path_facts.one_run_runs_both(body, body[0].body[0], body[0].orelse[0]) is False
    code = "def f():\n    try:\n        a()\n    except ValueError:\n        b()\n    except TypeError:\n        c()\n"
    body = ast.parse(code).body[0].body
    first, second = body[0].handlers[0].body[0], body[0].handlers[1].body[0]
    assert path_facts.one_run_runs_both(body, first, second) is False
    assert path_facts.one_run_runs_both(body, body[0].body[0], first) is True


def test_runs_before_each():
    body = ast.parse(_RUNS.replace("CHANGE", "pass")).body[0].body
    nodes = {n.lineno: n for n in ast.walk(ast.Module(body=body, type_ignores=[])) if isinstance(n, ast.stmt)}
    assert path_facts.runs_before_each(body, nodes[9], nodes[13])  # the `else` of the same test, later
    assert not path_facts.runs_before_each(body, nodes[9], nodes[11])
    assert not path_facts.runs_before_each(body, nodes[9], nodes[15])  # under another test
    changed = ast.parse(_RUNS.replace("CHANGE", "args = other")).body[0].body
    nodes = {
        n.lineno: n for n in ast.walk(ast.Module(body=changed, type_ignores=[])) if isinstance(n, ast.stmt)
    }
    assert not path_facts.runs_before_each(changed, nodes[9], nodes[13])
