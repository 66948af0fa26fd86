"""Planning a probe statically (no torch): targets, constructor and input sources, the
messages that say what is missing, the code lens positions, and what the child runs
of the user's file."""

from __future__ import annotations

import sys
import textwrap

from gradguard.lsp.probe_features import code_lenses, probe_targets
from gradguard.probe.targets import find_targets


def plan(code: str):
    found = find_targets(textwrap.dedent(code), "model.py")
    return {t.name: t for t in found.targets}


def test_comment_gives_constructor_and_input():
    targets = plan(
        """
        import torch
        import torch.nn as nn

        # gradguard: probe Net(20, 5) input=(4, 20)
        class Net(nn.Module):
            def __init__(self, a, b):
                super().__init__()
                self.fc = nn.Linear(a, b)

            def forward(self, x):
                return self.fc(x)
        """
    )
    net = targets["Net"]
    assert net.ctors[0] == {"args": "20, 5", "text": "Net(20, 5)", "origin": "probe comment, line 5"}
    assert net.inputs == [{"kind": "shape", "shape": [4, 20]}]
    assert net.input_origin == "probe comment, line 5"


def test_comment_above_class_with_several_inputs():
    targets = plan(
        """
        import torch
        import torch.nn as nn

        # gradguard: probe input=[(4, 20), long(4, 7, high=100), torch.ones(4)]
        class Net(nn.Module):
            def forward(self, x, tokens, mask):
                return x
        """
    )
    assert targets["Net"].inputs == [
        {"kind": "shape", "shape": [4, 20]},
        {"kind": "long", "shape": [4, 7], "high": 100},
        {"kind": "expr", "expr": "torch.ones(4)"},
    ]
    assert targets["Net"].input_need is None


def test_usage_in_main_block_is_resolved_through_variables():
    targets = plan(
        """
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, d, k):
                super().__init__()
                self.fc = nn.Linear(d, k)

            def forward(self, x):
                return self.fc(x)

        if __name__ == "__main__":
            d = 20
            model = Net(d, 5)
            x = torch.randn(4, d)
            print(model(x))
        """
    )
    net = targets["Net"]
    assert [c["text"] for c in net.ctors] == ["Net(20, 5)"]
    assert net.inputs == [{"kind": "expr", "expr": "torch.randn(4, 20)"}]
    assert net.input_origin == "used on line 17"


def test_batches_from_a_loader_are_not_guessed():
    targets = plan(
        """
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 2)

            def forward(self, x):
                return self.fc(x)

        def train(loader):
            model = Net()
            for x, y in loader:
                model(x)
        """
    )
    net = targets["Net"]
    assert net.inputs is None  # the child infers it from the first layer, and says so
    assert net.first_layer == "fc"
    assert net.ctors == [{"args": "", "text": "Net()", "origin": "used on line 14"}]


def test_what_is_missing_is_said_with_the_comment_to_write():
    targets = plan(
        """
        import torch.nn as nn

        class Pair(nn.Module):
            def __init__(self, in_dim, out_dim):
                super().__init__()
                self.fc = nn.Linear(in_dim, out_dim)

            def forward(self, x, mask):
                return self.fc(x) * mask
        """
    )
    pair = targets["Pair"]
    assert pair.ctors == []
    assert "`Pair.__init__(in_dim, out_dim)`" in pair.ctor_need
    assert "# gradguard: probe Pair(in_dim, out_dim) input=(4, ...)" in pair.ctor_need
    assert "`Pair.forward(x, mask)` takes 2 inputs" in pair.input_need
    assert "# gradguard: probe input=[(4, 20), (4, 3)]" in pair.input_need


def test_containers_without_forward_are_not_targets():
    targets = plan(
        """
        import torch.nn as nn

        class ActorCritic(nn.Module):
            def __init__(self):
                super().__init__()
                self.actor = nn.Linear(4, 2)

            def act(self, x):
                return self.actor(x)

        class MyLinear(nn.Linear):
            pass
        """
    )
    assert set(targets) == {"MyLinear"}


def test_function_inputs():
    targets = plan(
        """
        import torch

        class Scale(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, factor: float):
                ctx.factor = factor
                return x * factor

            @staticmethod
            def backward(ctx, grad):
                return grad * ctx.factor, None

        class Clip(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, bound):
                return x.clamp(-bound, bound)

            @staticmethod
            def backward(ctx, grad):
                return grad, None

        class Used(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, k):
                return x * k

            @staticmethod
            def backward(ctx, grad):
                return grad, None

        v = torch.randn(5)
        y = Used.apply(v, 3)
        """
    )
    assert targets["Scale"].inputs == [{"kind": "shape", "shape": [3, 3]}, {"kind": "value", "value": 0.5}]
    assert targets["Clip"].inputs is None
    assert "cannot tell what `bound` is" in targets["Clip"].input_need
    assert targets["Used"].inputs == [
        {"kind": "expr", "expr": "torch.randn(5)"},
        {"kind": "value", "value": 3},
    ]


def test_code_lens_positions_without_torch():
    text = textwrap.dedent(
        """
        import torch
        from torch import nn

        class Net(nn.Module):
            def forward(self, x):
                return x

        class Fn(torch.autograd.Function):
            pass

        class Plain:
            pass

        class Container(nn.Module):
            def act(self, x):
                return x
        """
    ).lstrip()
    assert probe_targets(text) == [("module", "Net", 3, 0), ("function", "Fn", 7, 0)]
    lenses = code_lenses("file:///m.py", text)
    assert [(lens.command.title, lens.command.arguments) for lens in lenses] == [
        ("Check gradient flow", ["file:///m.py", "Net"]),
        ("Run gradcheck", ["file:///m.py", "Fn"]),
    ]
    assert probe_targets("class Net(nn.Module):\n    pass\n") == []  # no torch import
    assert probe_targets("class (:\n") == []


def test_server_side_never_imports_torch():
    import subprocess

    from .conftest import EXAMPLES, probe_env

    code = (
        "import sys\n"
        "import gradguard.lsp.server, gradguard.lsp.probe_features as pf, gradguard.probe.report, gradguard.probe.cli\n"
        "from gradguard.probe.targets import find_targets\n"
        f"text = open({str(EXAMPLES / 'unused_layer.py')!r}).read()\n"
        "assert pf.code_lenses('file:///x.py', text) and find_targets(text, 'x.py').targets\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=probe_env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_child_runs_definitions_not_the_script(tmp_path):
    from gradguard.probe import runner

    source = textwrap.dedent(
        """
        import os
        LOG = []
        WIDTH = 4

        def train():
            LOG.append("trained")

        class Net:
            def __init__(self):
                LOG.append("built")

        model = Net()
        result = train()
        train()
        for i in range(3):
            LOG.append(i)

        if __name__ == "__main__":
            LOG.append("main")
        """
    )
    path = str(tmp_path / "script.py")
    runner._user_path = path
    module = runner.load_user_module(source, path)
    assert module.WIDTH == 4
    assert module.LOG == []
    assert not hasattr(module, "model") and not hasattr(module, "result")
    sys.modules.pop(runner.USER_MODULE, None)


def test_runner_is_standalone():
    """The child runs with the user's interpreter, which may not have gradguard installed."""
    import ast
    from pathlib import Path

    from gradguard.probe import runner

    tree = ast.parse(Path(runner.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert "gradguard" not in imported
    assert imported <= set(sys.stdlib_module_names) | {"torch", "__future__"}, imported
