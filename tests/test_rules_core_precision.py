"""GG101, GG102, GG105, GG201, GG203 beyond their catalogue examples: more code they must
stay silent on, more code they must flag, and how safe their fixes claim to be."""

import textwrap

import pytest
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.config import Config


def findings(code: str, rule: str):
    analyzer = Analyzer(Config(select=(rule,)))
    return [f for f in analyzer.check(textwrap.dedent(code).lstrip("\n")).findings if f.code == rule]


SILENT = {
    "GG101": [
        """
        import torch
        from torch.autograd import Function

        class Round(Function):
            @staticmethod
            def forward(ctx, x):
                return x.round()

            @staticmethod
            def backward(ctx, grad_output):
                return grad_output
        """,
        """
        import torch
        import pytorch_lightning as pl

        class Lit(pl.LightningModule):
            def backward(self, loss):
                loss.backward()
        """,
        """
        import torch.nn as nn

        class Wrapper(nn.Module):
            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):
                return self.net(x)

            def backward(self):
                self.loss.backward()
        """,
        """
        import torch.nn as nn

        class Hooked(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)
                self.fc.weight.register_hook(lambda g: self.weight_backward(g))

            def forward(self, x):
                return self.fc(x)

            def weight_backward(self, grad):
                return grad.clamp(-1, 1)
        """,
    ],
    "GG102": [
        """
        import torch
        import torch.nn as nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.ones(3))

            def forward(self, x):
                return x * self.w

            def reset_grad(self):
                self.w.grad = torch.zeros_like(self.w)
        """,
        """
        import torch
        w = torch.ones(3, requires_grad=True)
        w.grad = torch.ones(3)
        """,
    ],
    "GG105": [
        """
        import torch
        import torch.nn as nn

        class RNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.GRU(4, 4)
                self.hidden = None

            def forward(self, x):
                out, h = self.rnn(x, self.hidden)
                self.hidden = h.detach()
                return out

            def backward(self, grad_output):
                return grad_output * self.hidden.sum()
        """,
        """
        import torch
        import torch.nn as nn

        class Cache(nn.Module):
            def forward(self, x, step: int):
                self.step = step
                self.batch = x.size(0)
                return x

            def backward(self, grad_output):
                return grad_output * self.step * self.batch
        """,
    ],
    "GG201": [
        """
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                self.bn = nn.BatchNorm1d(4)
                self.emb = nn.Embedding(10, 4, padding_idx=0)

            def forward(self, x):
                self.fc.weight.data += 0.0
                self.bn.running_mean.zero_()
                self.emb.weight.data[0] = 0
                with torch.no_grad():
                    self.fc.weight[:, 0] = 0
                    self.renorm()
                if self.fc.weight.grad is not None:
                    self.fc.weight.grad.zero_()
                return self.fc(x)

            def renorm(self):
                self.fc.weight.div_(self.fc.weight.norm())
        """,
        """
        import torch
        import torch.nn as nn

        class Frozen(nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = nn.Linear(4, 4)
                self.scale = nn.Parameter(torch.ones(4))
                for p in self.backbone.parameters():
                    p.requires_grad = False

            def forward(self, x):
                self.backbone.weight.mul_(1.0)
                return self.backbone(x) * self.scale
        """,
        """
        import torch
        import torch.nn as nn

        def not_a_method(model):
            model.weight += 1
        """,
    ],
    "GG203": [
        """
        import torch

        def make():
            x = torch.randn(3, requires_grad=True)
            return x

        def update(x):
            x += 1
        """,
        """
        import torch

        w = torch.randn(3, requires_grad=True).cuda()
        w += 1
        """,
        """
        import torch

        w = torch.randn(3, requires_grad=True)
        for _ in range(3):
            w.sum().backward()
            w.data -= 0.1 * w.grad
            w.grad.data.zero_()
        """,
        """
        import torch

        with torch.inference_mode():
            w = torch.zeros(3, requires_grad=True)
            w.add_(1)
        """,
    ],
}


@pytest.mark.parametrize(
    "rule,code", [(rule, code) for rule, codes in SILENT.items() for code in codes], ids=lambda v: v[:6]
)
def test_silent(rule, code):
    assert findings(code, rule) == []


FLAGGED = [
    (
        "GG101",
        """
        import torch

        class M(torch.nn.Module):
            def forward(self, x):
                return x * 2

            def linear_backward(self, grad_output):
                return grad_output * 2
        """,
        [7],
    ),
    (
        "GG201",
        """
        import torch
        import torch.nn as nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.ones(3))

            def forward(self, x):
                with torch.enable_grad():
                    self.w.mul_(2)
                return x * self.w
        """,
        [11],
    ),
    (
        "GG203",
        """
        import torch

        def outer():
            def inner():
                h = torch.zeros(4, requires_grad=True)
                h[1:] = 1.0
                return h
            return inner()
        """,
        [6],
    ),
    (
        "GG101",
        """
        import torch.nn as nn

        class Clamp(nn.Module):
            @staticmethod
            def forward(ctx, x):
                return x.clamp(min=0)

            @staticmethod
            def backward(ctx, grad_output):
                return grad_output
        """,
        [9],
    ),
    (
        # (dev12 funasr's CIF predictor) where `mask is None`, `alphas` is still relu's saved output:
        # reported when nothing later in the block stops that path
        "GG204",
        """
        import torch
        import torch.nn as nn

        class Predictor(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 1)

            def forward(self, hidden, target_length, mask=None):
                alphas = torch.relu(self.fc(hidden)).squeeze(-1)
                if mask is not None:
                    alphas = alphas * mask
                mask = mask.float() if mask is not None else None
                alphas *= (target_length / alphas.sum(-1))[:, None]
                return alphas
        """,
        [14],
    ),
    (
        # ... and when the attribute that stops it is inside a `try` (its handler may catch the error)
        "GG204",
        """
        import torch
        import torch.nn as nn

        class Predictor(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 1)

            def forward(self, hidden, target_length, mask=None):
                try:
                    alphas = torch.relu(self.fc(hidden)).squeeze(-1)
                    if mask is not None:
                        alphas = alphas * mask
                    mask = mask.float()
                except AttributeError:
                    pass
                alphas *= (target_length / alphas.sum(-1))[:, None]
                return alphas
        """,
        [17],
    ),
    (
        # calls that leave a module as it is (a module passed to an unknown call may have had its
        # parameters replaced: not reported after one, see GG203's last VALID example)
        "GG203",
        """
        import copy
        import io
        import logging
        import torch
        import torch.nn as nn

        model = nn.Linear(4, 4)
        print(model)
        logging.info(model)
        backup = copy.deepcopy(model)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        torch.save(model.state_dict(), io.BytesIO())
        model.weight.add_(1.0)
        """,
        [13],
    ),
    (
        # a list whose items' weights are registered again as copies (`.clone()`: another storage, so
        # the layers in the list never train): still reported (the torchrec VALID example shares them)
        "GG103",
        """
        import torch
        import torch.nn as nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = [nn.Linear(2, 2), nn.Linear(2, 2)]
                self.mirror = nn.ModuleDict()
                for i, layer in enumerate(self.layers):
                    self.mirror[str(i)] = nn.Module()
                    self.mirror[str(i)].register_parameter("weight", nn.Parameter(layer.weight.clone()))

            def forward(self, x):
                return self.layers[1](self.layers[0](x))
        """,
        [7],
    ),
    (
        # `.data` replaced by the relu of another tensor, not a projection of the parameter's own value
        "GG201",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.rand(3))
                self.v = nn.Parameter(torch.rand(3))

            def forward(self, x):
                self.w.data = F.relu(self.v.data)
                return x * self.w
        """,
        [12],
    ),
    (
        # a read that keeps the float values (`.float()` after the count is not a sink, nor the
        # product returned) leaves the input one a gradient may be asked for: still reported
        "GG202",
        """
        import torch
        import torch.nn as nn

        class M(nn.Module):
            def forward(self, x, mask):
                mask[mask < 0] = 0
                n = mask.sum(-1).to(torch.int32).item()
                return x[:n] * mask.sum(-1).float()
        """,
        [6],
    ),
]


@pytest.mark.parametrize("rule,code,lines", FLAGGED, ids=[f[0] for f in FLAGGED])
def test_flagged(rule, code, lines):
    assert [f.line for f in findings(code, rule)] == lines


def test_gg101_removal_is_unsafe_when_the_method_is_called():
    code = """
        import torch.nn as nn

        class M(nn.Module):
            def forward(self, x):
                return x

            def mm_backward(self, grad_output):
                return grad_output

            def debug(self, g):
                return self.mm_backward(g)
        """
    (finding,) = findings(code, "GG101")
    assert finding.fix is not None and finding.fix.applicability.value == "unsafe"


def test_gg101_removal_is_safe_when_nothing_calls_it():
    code = """
        import torch.nn as nn

        class M(nn.Module):
            def forward(self, x):
                return x

            def mm_backward(self, grad_output):
                return grad_output

        model = M()
        model(1).backward()
        """
    (finding,) = findings(code, "GG101")
    assert finding.fix.applicability.value == "safe"
    assert "never called by autograd" in finding.message
    assert "nn.Parameters already get their gradients" in finding.detail


def test_gg203_fix_is_safe_only_for_gradient_steps_and_reinitialisation():
    code = """
        import torch

        w = torch.randn(3, requires_grad=True)
        w -= 0.1 * w.grad
        w.zero_()
        w *= 2
        w.copy_(torch.ones(3))
        """
    got = [(f.line, f.fix.applicability.value) for f in findings(code, "GG203")]
    assert got == [(4, "safe"), (5, "safe"), (6, "unsafe"), (7, "unsafe")]


@pytest.mark.parametrize(
    "forward",
    [
        # mutated twice: no single out-of-place rewrite
        "self.w += x\n        self.w *= 2\n        return self.w",
        # the local name is taken
        "w = 3\n        self.w += x\n        return self.w * w",
        # another method could read the parameter afterwards
        "self.w += x\n        return self.helper()",
    ],
)
def test_gg201_offers_no_rewrite_when_it_could_change_meaning(forward):
    code = f"""
import torch
import torch.nn as nn

class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))

    def helper(self):
        return self.w

    def forward(self, x):
        {forward}
"""
    found = findings(code, "GG201")
    assert found and all(f.fix is None for f in found)


def test_gg203_follows_requires_grad_markings():
    code = """
        import torch

        x = torch.zeros(3)
        x.requires_grad = True
        x += 1
        y = torch.ones(3)
        y.requires_grad_()
        y.mul_(2)
        z = x * 2
        z.requires_grad_()
        z += 1
        """
    assert [f.line for f in findings(code, "GG203")] == [5, 8]


def test_gg203_old_variable_api_and_named_parameters():
    code = """
        import torch
        from torch.autograd import Variable

        def train(model, lr):
            w = Variable(torch.zeros(3), requires_grad=True)
            w += 1
            for name, p in model.named_parameters():
                p.add_(p.grad, alpha=-lr)
            v = Variable(torch.zeros(3))
            v += 1
        """
    found = findings(code, "GG203")
    assert [f.line for f in found] == [6, 8]
    assert "a parameter" in found[1].message
    assert found[1].fix.applicability.value == "safe"


def test_gg201_names_a_requires_grad_tensor_on_self_a_leaf_tensor():
    code = """
        import torch
        import torch.nn as nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.zeros(3, requires_grad=True)

            def forward(self, x):
                self.w.add_(x)
                return self.w
        """
    (finding,) = findings(code, "GG201")
    assert "leaf tensor `self.w`" in finding.message
