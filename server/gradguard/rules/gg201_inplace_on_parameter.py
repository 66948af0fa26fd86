"""GG201: `self.weight += x` (or `.add_()`, `self.weight[i] = ...`) on a parameter in `forward`."""

from __future__ import annotations

import ast
import builtins
import keyword
from typing import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Applicability, Finding, Severity, TextEdit
from gradguard.engine.fixes import functional_relu, parse_expression, render, replace_node, torch_name
from gradguard.engine.index import (
    FunctionNode,
    Unit,
    chain_root,
    self_attribute,
    self_name,
)
from gradguard.engine.inplace import LEAF, LEAF_ERROR, describe_inplace, writes
from gradguard.engine.interpreter import ATTRIBUTE_STORE
from gradguard.engine.queries import describe, in_forward, scope_text, scopes, switches_requires_grad_off
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.rule_helpers import AUGMENTED_OPERATORS, self_attribute_reads
from gradguard.engine.values import NO, PARAMETER

_OUT_OF_PLACE = torch_facts.INPLACE_WITH_TWIN
_OPERATORS = AUGMENTED_OPERATORS
_ATOMIC = (ast.Name, ast.Attribute, ast.Call, ast.Constant, ast.Subscript, ast.List, ast.Dict)
_LEAF_ERROR = LEAF_ERROR


class InplaceOnParameter(Rule):
    code = "GG201"
    needs_class = "module"  # starts from unit.module_classes() only
    name = "inplace-on-parameter"
    summary = "In-place change of an `nn.Parameter` in `forward`: PyTorch raises the leaf in-place error."
    why = (
        "Parameters are leaf tensors that require grad: changing one in place while gradients are enabled "
        'raises "a leaf Variable that requires grad is being used in an in-place operation".'
    )
    message = Message(
        "In-place {what} on {kind} `{target}` in `{method}` makes PyTorch raise\nIt raises "
        '"{error}" whenever this runs with gradients enabled{hint}.'
    )
    explanation = """
    A module's parameters are *leaf* tensors that require grad: autograd accumulates
    their gradients, so it cannot let them be overwritten in the middle of a recorded
    computation. Any in-place change of a parameter while gradients are enabled
    (`self.weight += x`, `self.weight.add_(x)`, `self.weight.clamp_(0, 1)`,
    `self.weight[0] = 1`) raises at once:

        RuntimeError: a leaf Variable that requires grad is being used in an in-place operation.

    (for an indexed write: *"a view of a leaf Variable that requires grad is being used
    in an in-place operation."*)

    In `forward` you almost always meant a new tensor built from the parameter:

    ```python
    def forward(self, x):
        weight = self.weight + x      # not: self.weight += x
        return weight
    ```

    Gradients then flow into `self.weight` through `weight`. The automatic fix does
    exactly this when the change is a plain statement of `forward` and nothing else
    in the class changes that parameter in place. An `inplace=True` activation layer called
    on a parameter (`self.act(self.weight)` with `self.act = nn.ReLU(inplace=True)`) gets the
    out-of-place function for that call (`torch.relu(self.weight)`); the layer itself is left
    as it is for the activations it may also be used on.

    If you meant to change the parameter's value (a constraint, a projection, an
    EMA copy), do it outside the recorded computation, e.g. after
    `optimizer.step()`, under `with torch.no_grad():`.

    Not reported: changes under `torch.no_grad()` / `@torch.no_grad()`, writes through
    `.data`, buffers (`register_buffer`), parameters created with
    `requires_grad=False` or frozen in the class, `nn.init.*_` calls, and
    `nn.ReLU(inplace=True)` applied to activations (it changes them, not parameters).

    **Fix safety.** Safe: the out-of-place form computes the same values into a new tensor and
    leaves the parameter unchanged, which is what autograd needs; nothing else reads the result
    differently.
    """
    severity = Severity.ERROR
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class Adapter(nn.Module):
                def __init__(self, dim, rank):
                    super().__init__()
                    self.lora_A = nn.ModuleDict({"default": nn.Linear(dim, rank, bias=False)})
                    self.lora_B = nn.ModuleDict({"default": nn.Linear(rank, dim, bias=False)})

                def delta_weight(self, adapter):
                    dtype = self.lora_B[adapter].weight.dtype
                    cast_to_fp32 = dtype in (torch.float16, torch.bfloat16)
                    weight_A = self.lora_A[adapter].weight
                    weight_B = self.lora_B[adapter].weight
                    if cast_to_fp32:
                        weight_A = weight_A.float()
                        weight_B = weight_B.float()
                    delta = weight_B @ weight_A
                    if cast_to_fp32:
                        delta = delta.to(dtype=dtype)
                        self.lora_A[adapter].weight.data = weight_A.to(dtype)
                        self.lora_B[adapter].weight.data = weight_B.to(dtype)
                    return delta

                def forward(self, x):
                    return x + x @ self.delta_weight("default").T
            """,
            note="a parameter's own value cast to float32 and written back (peft tuners/lora/layer.py)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Prototypes(nn.Module):
                def __init__(self, n, dim, max_norm=1.0):
                    super().__init__()
                    self.proto = nn.Parameter(torch.randn(n, dim))
                    self.low = nn.Parameter(torch.rand(n))
                    self.max_norm = max_norm

                def forward(self, x):
                    # max-norm and range constraints: the update is kept, projected back
                    self.proto.data = torch.renorm(self.proto.data, p=2, dim=0, maxnorm=self.max_norm)
                    low = torch.clamp(self.low, min=0.0, max=0.5)
                    self.low.data = low
                    return x @ self.proto.T + low

            model = Prototypes(3, 4)
            opt = torch.optim.SGD(model.parameters(), lr=0.5)
            for _ in range(2):
                loss = model(torch.randn(2, 4)).pow(2).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            """,
            note="a parameter projected back into its constraint in forward, its update kept "
            "(braindecode models/sstdpn.py renorm, modules/filter.py clamp; speechbrain max-norm layers)",
            run="model(torch.randn(1, 4)); assert model.proto.norm(dim=1).max() <= 1.0 + 1e-5",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            # data-dependent initialisation on the first batch (normflows flows/normalization.py, ActNorm)
            class ActNorm(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.s = nn.Parameter(torch.zeros(1, n))
                    self.t = nn.Parameter(torch.zeros(1, n))
                    self.register_buffer("init_done", torch.tensor(0.0))

                def forward(self, z):
                    if not self.init_done > 0.0:
                        self.s.data = -torch.log(z.std(dim=0, keepdim=True) + 1e-6).data
                        self.t.data = (-z.mean(dim=0, keepdim=True) * torch.exp(self.s)).data
                        self.init_done = torch.tensor(1.0)
                    return z * torch.exp(self.s) + self.t
            """,
            note="a one-time initialisation: the branch writing `.data` sets the flag its test reads",
            run="""
            model = ActNorm(4)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for step in range(3):
                z = torch.randn(16, 4)
                before = model.s.detach().clone()
                model(z).pow(2).mean().backward()
                optimizer.step()
                optimizer.zero_grad()
                if step > 0:  # after the first batch, forward keeps what the optimizer wrote
                    assert not torch.equal(model.s.detach(), before)
                    updated = model.s.detach().clone()
                    model(torch.randn(16, 4))
                    assert torch.equal(model.s.detach(), updated)
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class RunningNorm(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.weight = nn.Parameter(torch.ones(n))
                    self.register_buffer("running_mean", torch.zeros(n))
                    self.act = nn.ReLU(inplace=True)

                def forward(self, x):
                    if self.training:
                        self.running_mean.mul_(0.9).add_(0.1 * x.mean(0).detach())
                    return self.act(self.weight * (x - self.running_mean))
            """,
            note="buffer updates and an in-place ReLU",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            from torch.nn import Parameter

            class SpectralNorm2d(nn.Module):
                def __init__(self, module, power_iterations=1):
                    super().__init__()
                    self.module = module
                    self.power_iterations = power_iterations
                    w = module.weight
                    height = w.data.shape[0]
                    width = w.view(height, -1).data.shape[1]
                    self.u = Parameter(w.data.new(height).normal_(0, 1), requires_grad=False)
                    self.v = Parameter(w.data.new(width).normal_(0, 1), requires_grad=False)
                    self.w_bar = Parameter(w.data)
                    del self.module._parameters["weight"]

                def _l2normalize(self, x, eps=1e-12):
                    return x / (torch.norm(x) + eps)

                def forward(self, x):
                    height = self.w_bar.data.shape[0]
                    for _ in range(self.power_iterations):
                        self.v.data = self._l2normalize(torch.mv(torch.t(self.w_bar.view(height, -1)), self.u))
                        self.u.data = self._l2normalize(torch.mv(self.w_bar.view(height, -1), self.v))
                    sigma = self.u.dot(self.w_bar.view(height, -1).mv(self.v))
                    self.module.weight = self.w_bar / sigma.expand_as(self.w_bar)
                    return self.module(x)
            """,
            run="""
            layer = SpectralNorm2d(nn.Conv2d(3, 4, 1))
            opt = torch.optim.Adam(layer.parameters(), lr=0.1, weight_decay=0.1)
            layer(torch.rand(2, 3, 5, 5)).sum().backward()
            u = layer.u.detach().clone()
            opt.step()  # the power-iteration vectors get no gradient: the optimizer leaves them alone
            assert layer.u.grad is None and torch.equal(layer.u.detach(), u)
            """,
            note="dev9 torchgan layers/spectralnorm.py: the power-iteration vectors are parameters made with "
            "`requires_grad=False`, which no optimizer updates; replacing their `.data` in forward loses nothing",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Constrained(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.weight = nn.Parameter(torch.empty(n, n))
                    self.reset_parameters()

                def reset_parameters(self):
                    nn.init.kaiming_uniform_(self.weight)
                    with torch.no_grad():
                        self.weight.mul_(0.5)

                @torch.no_grad()
                def project(self):
                    self.weight.clamp_(-1, 1)

                def forward(self, x):
                    self.weight.data.clamp_(-1, 1)
                    with torch.no_grad():
                        self.weight.div_(self.weight.norm())
                    self.project()
                    return x @ self.weight
            """,
            note="init, no_grad, @no_grad helpers and .data writes",
        ),
        Valid(
            """
            import torch
            from torch import nn

            class Shifted(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.shift = nn.Parameter(torch.zeros(4), requires_grad=False)
                    self.scale = nn.Parameter(torch.ones(4))

                def forward(self, x):
                    self.shift += 0.01
                    scale = self.scale * 2
                    scale += 1
                    return x * scale + self.shift
            """,
            note="a parameter that does not require grad; in-place on a derived tensor",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class SGDLike:
                def __init__(self, params, lr):
                    self.params = list(params)
                    self.lr = lr

                @torch.no_grad()
                def step(self):
                    for p in self.params:
                        p.add_(p.grad, alpha=-self.lr)

            class EMA(nn.Module):
                def __init__(self, model):
                    super().__init__()
                    self.model = model
                    self.shadow = nn.Linear(4, 4)

                def forward(self, x):
                    with torch.no_grad():
                        for s, p in zip(self.shadow.parameters(), self.model.parameters()):
                            s.mul_(0.99).add_(p, alpha=0.01)
                    return self.model(x)
            """,
            note="optimizer-like code and an EMA update under no_grad",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class LoRA(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.base = nn.Linear(3, 3)
                    self.lora = nn.Linear(3, 3, bias=False)
                    self._cached = None

                def forward(self, x):
                    if torch.is_grad_enabled():
                        self._cached = None
                        return self.base(x) + self.lora(x)
                    if self._cached is None:
                        self._cached = self.base.weight + self.lora.weight
                    original = self.base.weight.data
                    self.base.weight.data = self._cached
                    try:
                        return self.base(x)
                    finally:
                        self.base.weight.data = original
            """,
            run="""
            model = LoRA()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model(torch.randn(4, 3)).sum().backward()
            optimizer.step()
            trained = model.base.weight.detach().clone()
            with torch.no_grad():
                model(torch.randn(4, 3))
            assert torch.equal(model.base.weight, trained)
            """,
            note="the weight swapped only on the path where gradients are off (after "
            "`if torch.is_grad_enabled(): return ...`), and restored (mace-torch modules/lora.py)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class GAN(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.noise_input = nn.Parameter(torch.empty(4, 2))
                    self.generator = nn.Linear(2, 3)

                def forward(self, noise_input):
                    self.noise_input.data = noise_input
                    return self.generator(noise_input).mean()
            """,
            run="""
            m = GAN()
            optimizer = torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=0.1)
            noise = torch.randn(4, 2)
            m(noise).backward()
            optimizer.step()
            assert m.noise_input.grad is None and torch.equal(m.noise_input, noise)  # no update to overwrite
            """,
            note="deepchem models/torch_models/gan.py: a Parameter no computation of the module reads "
            "(forward uses the local) never has a gradient, so no optimizer updates it",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class LassoLinear(nn.Module):
                def __init__(self, insize, outsize):
                    super().__init__()
                    self.u_param = nn.Parameter(torch.rand(insize, outsize))
                    self.v_param = nn.Parameter(torch.rand(insize, outsize))

                def forward(self, x):
                    self.v_param.data = F.relu(self.v_param.data)
                    self.u_param.data = F.relu(self.u_param.data)
                    return x @ (self.u_param - self.v_param)
            """,
            run="""
            m = LassoLinear(3, 2)
            opt = torch.optim.SGD(m.parameters(), lr=1.0)
            m(torch.ones(4, 3)).sum().backward()  # u.grad = 4, v.grad = -4
            opt.step()
            updated = m.u_param.detach().clone()
            m(torch.randn(1, 3))
            assert torch.equal(m.u_param, updated.clamp(min=0))  # the update is kept, projected onto >= 0
            assert (updated < 0).all() and (m.v_param >= 4).all()  # (the step pushed u below 0, v up)
            """,
            note="neuromancer slim/linear.py: the parameters projected onto >= 0 in forward with `F.relu` "
            "(`clamp(min=0)`), the optimizer's update kept",
        ),
        Valid(
            """
            # from nni 3.0 nni/compression/base/wrapper.py (ModuleWrapper.forward)
            import torch
            import torch.nn as nn


            class Wrapper(nn.Module):
                def __init__(self, module):
                    super().__init__()
                    self.module = module

                def forward(self, x):
                    outputs = self.module(x.round())
                    bias_correction = torch.sum(self.module(x) - outputs, dim=0)
                    if not hasattr(self, "bias_correction"):
                        setattr(self, "bias_correction", bias_correction)
                    else:
                        self.bias_correction += bias_correction
                    return outputs
            """,
            run="""
            w = Wrapper(nn.Linear(4, 3))
            for _ in range(3):
                w(torch.randn(2, 4)).sum().backward()
            assert "bias_correction" not in dict(w.named_parameters())
            """,
            note='dev15: an attribute the class stores itself with `setattr(self, "name", ...)` holds what it '
            "stores (here a plain tensor), not a parameter because its name starts with `bias_`",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class MyModule(nn.Module):
                def __init__(self, size):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(size))

                def forward(self, x):
                    self.weight += x
                    return self.weight
            """,
            lines=[10],
            fixed="""
            import torch
            import torch.nn as nn

            class MyModule(nn.Module):
                def __init__(self, size):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(size))

                def forward(self, x):
                    weight = self.weight + x
                    return weight
            """,
            raises=_LEAF_ERROR,
            run="m = MyModule(5)\nm(torch.randn(5)).sum().backward()",
            check_fixed="assert m.weight.grad is not None and torch.equal(m.weight.grad, torch.ones(5))",
        ),
        Invalid(
            """
            import torch
            from torch.nn import Module, Parameter

            class Gate(Module):
                def __init__(self, n):
                    super().__init__()
                    self.alpha = Parameter(torch.zeros(n))
                    self.beta = Parameter(torch.ones(n))

                def forward(self, x):
                    self.alpha.clamp_(0, 1)  # keep the gate in [0, 1]
                    y = self.alpha * x
                    return y + self.beta * (1 - self.alpha)
            """,
            lines=[11],
            fixed="""
            import torch
            from torch.nn import Module, Parameter

            class Gate(Module):
                def __init__(self, n):
                    super().__init__()
                    self.alpha = Parameter(torch.zeros(n))
                    self.beta = Parameter(torch.ones(n))

                def forward(self, x):
                    alpha = self.alpha.clamp(0, 1)  # keep the gate in [0, 1]
                    y = alpha * x
                    return y + self.beta * (1 - alpha)
            """,
            raises=_LEAF_ERROR,
            run="g = Gate(3)\ng(torch.randn(2, 3)).sum().backward()",
            check_fixed="assert g.alpha.grad is not None and g.beta.grad is not None",
            note="another import style; a method call",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class MaskedLinear(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 4)

                def forward(self, x):
                    self.drop_first_input()
                    return self.fc(x)

                def drop_first_input(self):
                    self.fc.weight[:, 0] = 0.0
            """,
            lines=[14],
            raises="a view of a leaf Variable that requires grad is being used in an in-place operation",
            run="MaskedLinear()(torch.randn(2, 8)).sum().backward()",
            note="a layer's weight, in a helper forward calls; no automatic fix",
        ),
        Invalid(
            """
            import torch

            class Scaler(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.scale = torch.nn.Parameter(torch.ones(1))

                def forward(self, x):
                    for _ in range(2):
                        self.scale *= 2
                    return x * self.scale
            """,
            lines=[10],
            raises=_LEAF_ERROR,
            run="Scaler()(torch.randn(3)).sum().backward()",
            note="inside a loop: no automatic fix",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Fuse(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.w = nn.Parameter(torch.ones(2))
                    self.w_relu = nn.ReLU(inplace=True)

                def forward(self, a, b):
                    weight = self.w_relu(self.w)
                    weight = weight / (weight.sum() + 1e-4)
                    return weight[0] * a + weight[1] * b
            """,
            lines=[11],
            fixed="""
            import torch
            import torch.nn as nn

            class Fuse(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.w = nn.Parameter(torch.ones(2))
                    self.w_relu = nn.ReLU(inplace=True)

                def forward(self, a, b):
                    weight = torch.relu(self.w)
                    weight = weight / (weight.sum() + 1e-4)
                    return weight[0] * a + weight[1] * b
            """,
            raises=_LEAF_ERROR,
            run="m = Fuse(); m(torch.randn(3), torch.randn(3)).sum().backward()",
            check_fixed="assert m.w.grad is not None",
            note="an in-place ReLU layer on the fusion weights (BiFPN)",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        classes = unit.module_classes()
        if not classes or switches_requires_grad_off(unit) or _detaches_parameters(unit):
            return  # (`p.requires_grad = False` somewhere: we cannot tell which parameters)
        in_forward_writes = writes(unit, lambda func: in_forward(unit, func))
        sites = [
            w
            for w in in_forward_writes
            if w.kind == LEAF and w.in_forward and chain_root(w.written) == "self"
        ]
        if sites:
            yield from self._inplace(unit, sites)
        for func in scopes(unit):
            # (`x.data = ...` names `data`: other scopes need no analysis here)
            if not in_forward(unit, func) or "data" not in scope_text(unit, func):
                continue
            flow = unit.semantics.flow(func)
            for event in flow.events_of(ATTRIBUTE_STORE):
                base = event.args[0] if event.args else None
                if (
                    event.op == "data"
                    and event.nograd is None
                    and base is not None
                    and base.kinds & PARAMETER
                    and base.grad != NO  # (`requires_grad=False`: no optimizer updates it)
                    and chain_root(event.target.value) == "self"  # type: ignore[union-attr]
                    and _enabled(unit, func)
                    and not _cast_of_itself(
                        flow,
                        event.node.value,  # type: ignore[union-attr,attr-defined]
                        ast.unparse(event.target.value),  # type: ignore[union-attr]
                    )
                    and not _initialised_once(unit, event.node)
                    and not _only_stored_through_data(unit, event.target.value)  # type: ignore[union-attr]
                ):
                    target = describe(unit, event.target.value)  # type: ignore[union-attr]
                    message = self._DATA.format(target=target, method=getattr(func, "name", "forward"))
                    yield self.finding(unit, event.node, message)

    _DATA = Message(
        "`{target}.data` is replaced in `{method}`, overwriting the optimizer's updates\nThe update of "
        "`{target}` is lost on every forward pass unless something copies it back, and autograd never sees "
        "the assignment."
    )

    def _inplace(self, unit: Unit, sites: list) -> Iterator[Finding]:
        counts: dict[str, int] = {}
        for write in sites:
            target = describe(unit, write.written)
            counts[target] = counts.get(target, 0) + 1
        for write in sites:
            func = write.func
            if not _enabled(unit, func):
                continue
            target = describe(unit, write.written)
            node = write.node
            what, error = describe_inplace(write)
            fix = None
            hint = "; update it under `torch.no_grad()` outside `forward`, or compute a new tensor"
            if (
                counts[target] == 1
                and getattr(func, "name", None) == "forward"
                and write.event.op != "inplace=True"
            ):
                edit = _out_of_place(unit, func, node, target)
                if edit is not None:
                    local, build = edit
                    hint = f"; compute `{local} = ...` out of place instead"
                    fix = self.make_fix(f"Compute `{local}` out of place", build)
            if write.event.op == "inplace=True":
                what = "change by an `inplace=True` layer"
                hint = "; use an out-of-place activation (`inplace=False`) on it"
                fix = self._functional(unit, node)
            kind = "parameter" if write.value.kinds & PARAMETER else "leaf tensor"
            message = self.message.format(
                what=what,
                kind=kind,
                target=target,
                method=getattr(func, "name", "forward"),
                error=error,
                hint=hint,
            )
            yield self.finding(unit, node, message, fix=fix)

    def _functional(self, unit: Unit, call: ast.AST):
        """`self.act(self.weight)` with `self.act = nn.ReLU(inplace=True)` -> `torch.relu(self.weight)`:
        the out-of-place function for this call only (the layer stays in place for activations)."""
        if not (
            isinstance(call, ast.Call)
            and len(call.args) == 1
            and not call.keywords
            and not isinstance(call.args[0], ast.Starred)
        ):
            return None
        layer = self_attribute(call.func)
        cls = unit.enclosing_class(call)
        if layer is None or cls is None:
            return None
        built = [
            node.value
            for node in ast.walk(cls)
            if isinstance(node, ast.Assign)
            and any(self_attribute(t) == layer for t in node.targets)
            and isinstance(node.value, ast.Call)
        ]
        if len(built) != 1 or built[0].args:
            return None
        name = torch_facts.functional_twin(unit.module.qualname(built[0].func) or "")
        if name is None or any(k.arg != "inplace" for k in built[0].keywords):
            return None
        if name == "relu":
            func = functional_relu(unit)
        else:
            functional = next((a for a, q in unit.module.aliases.items() if q == "torch.nn.functional"), None)
            torch = torch_name(unit)
            if functional is None:
                if torch is None:
                    return None
                functional = f"{torch}.nn.functional"
            func = f"{functional}.{name}"
        text = f"{func}({unit.segment(call.args[0])})"
        return self.make_fix(f"Use `{func}` (out of place) here", [replace_node(unit, call, text)])


def _enabled(unit: Unit, func: ast.AST | None) -> bool:
    """Reachable from `forward` with gradients enabled (not only through calls made under
    `torch.no_grad()`, nor decorated with it)."""
    if func is None:
        return False
    cls = unit.enclosing_class(func)
    return cls is not None and func in _grad_enabled_methods(unit, cls)


def _grad_enabled_methods(unit: Unit, cls: ast.ClassDef) -> set[FunctionNode]:
    """`forward` and the methods it calls as `self.m(...)` with gradients enabled: the
    engine's (cached) reachable set, minus methods reached only through calls under
    `torch.no_grad()` or decorated with it."""
    reachable = unit.methods_reachable_from(cls, "forward")
    if not reachable:
        return set()
    calls = method_call_index(unit)
    seen: set[FunctionNode] = set()
    todo = [reachable[0]]
    while todo:
        func = todo.pop()
        if func in seen or unit.decorator_disables_grad(func):
            continue
        seen.add(func)
        for callee in reachable:
            if callee in seen:
                continue
            for call in calls.get(callee.name, ()):
                receiver = call.func.value  # type: ignore[attr-defined]
                if (
                    isinstance(receiver, ast.Name)
                    and receiver.id == (self_name(func) or "self")
                    and unit.enclosing_function(call) is func
                    and not unit.in_no_grad(call)
                ):
                    todo.append(callee)
                    break
    return seen


_PRECEDENCE = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2, ast.FloorDiv: 2, ast.Mod: 2, ast.MatMult: 2}


def _binds_tighter(value: ast.expr, op: ast.operator) -> bool:
    """Can `value` follow `target <op>` without parentheses (`w + 0.1 * g`)?"""
    if not isinstance(value, ast.BinOp):
        return False
    inner, outer = _PRECEDENCE.get(type(value.op)), _PRECEDENCE.get(type(op))
    return inner is not None and outer is not None and inner > outer


def method_call_index(unit: Unit) -> dict[str, list[ast.Call]]:
    """`<anything>.name(...)` calls of the unit by method name (built once per unit,
    shared by GG201 and GG203): the unit's own index."""
    return unit.calls_by_method()


def _out_of_place(unit: Unit, func: FunctionNode, node: ast.AST, target: str):
    """`self.w += x` -> `w = self.w + x` (and later reads of `self.w` in forward -> `w`)."""
    statement = unit.parent(node) if isinstance(node, ast.Call) else node
    if unit.parent(statement) is not func:
        return None  # inside a loop or a branch: the rewrite would change what runs
    if isinstance(node, ast.Call):
        if not isinstance(statement, ast.Expr) or node.func.attr not in _OUT_OF_PLACE:  # type: ignore[attr-defined]
            return None
        # `self.w.add_(x)` -> `self.w.add(x)`
        func_text = unit.segment(node.func)[:-1]
        args_start = unit.node_range(node.func)[2:]
        end = unit.node_range(node)[2:]
        args = unit.source.text_between(*args_start, *end)
        value = f"{func_text}{args}"
    elif isinstance(node, ast.AugAssign) and type(node.op) in _OPERATORS:
        right = node.value
        right_text = unit.segment(right)
        if not isinstance(right, _ATOMIC) and not _binds_tighter(right, node.op):
            right_text = f"({right_text})"
        value = f"{target} {_OPERATORS[type(node.op)]} {right_text}"
    else:
        return None
    local = target.split(".", 1)[1].replace(".", "_")
    if not local.isidentifier() or keyword.iskeyword(local) or hasattr(builtins, local):
        return None
    used = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)} | {
        a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)
    }
    if local in used:
        return None
    later_reads = []
    # by position, not line: `self.w += x; return self.w` reads it later on the same line
    end = (statement.end_lineno or statement.lineno, statement.end_col_offset or 0)
    methods = set(unit.methods(unit.parent(func)).keys())  # type: ignore[arg-type]
    me = self_name(func) or "self"
    for sub in ast.walk(func):
        if (getattr(sub, "lineno", 0), getattr(sub, "col_offset", 0)) < end:
            continue
        if isinstance(sub, ast.Attribute) and unit.segment(sub) == target:
            if not isinstance(sub.ctx, ast.Load):
                return None  # re-assigned later: leave it to a human
            later_reads.append(sub)
        elif isinstance(sub, ast.Call) and self_attribute(sub.func, me) in methods:
            return None  # another method may read the parameter after the change

    def build() -> list[TextEdit]:
        import libcst as cst

        line = render(cst.Assign(targets=[cst.AssignTarget(cst.Name(local))], value=parse_expression(value)))
        return [replace_node(unit, statement, line)] + [replace_node(unit, r, local) for r in later_reads]

    return local, build


_CASTS = torch_facts.CASTS | {"detach"}


# a constraint on the parameter's own value (max-norm, a valid range, `relu` = `clamp(min=0)`): the
# update is kept, projected
_PROJECTIONS = torch_facts.PROJECTIONS


def _cast_of_itself(flow, node: ast.AST, target: str, depth: int = 0) -> bool:
    """`w = p.float(); ...; p.data = w.to(dtype)`: the parameter's own value through dtype and
    device casts, or projected back into its constraint (`p.data = torch.renorm(p.data, 2, 0,
    max_norm)`, `torch.clamp(p, lo, hi)`), written back: the optimizer's update is kept."""
    if depth > 4:
        return False
    while isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _CASTS | _PROJECTIONS:
            if (
                func.attr in _PROJECTIONS
                and isinstance(func.value, ast.Name)
                and func.value.id in ("torch", "F")
            ):
                if not node.args:
                    return False
                node = node.args[0]  # torch.clamp(p, ...), torch.renorm(p, ...)
            else:
                node = func.value  # p.clamp(...), p.float()
            continue
        break
    if isinstance(node, ast.Attribute) and node.attr == "data":
        node = node.value
    if isinstance(node, ast.Name):
        values = flow.assigned_values(node)
        return values is not None and all(_cast_of_itself(flow, v, target, depth + 1) for v in values)
    return ast.unparse(node) == target


def _detaches_parameters(unit: Unit) -> bool:
    """`for p in m.parameters(): p.detach_()` somewhere: those leaf parameters no longer require grad
    (which ones `self.<name>` is, the analysis cannot tell)."""
    for call in unit.method_calls("detach_"):
        receiver = call.func.value  # type: ignore[attr-defined]
        if not isinstance(receiver, ast.Name):
            continue
        for node in unit.ancestors(call):
            if (
                isinstance(node, ast.For)
                and isinstance(node.target, ast.Name)
                and node.target.id == receiver.id
                and isinstance(node.iter, ast.Call)
                and isinstance(node.iter.func, ast.Attribute)
                and node.iter.func.attr in ("parameters", "named_parameters")
            ):
                return True
    return False


def _only_stored_through_data(unit: Unit, target: ast.expr) -> bool:
    """`self.p.data = x` where no computation of the module reads `self.p`: every read of it in the
    class stores its `.data`, and the class never iterates its own parameters. Autograd never sees
    `self.p`, so it never has a gradient and no optimizer ever updates it: there is no update to
    overwrite (deepchem's GAN keeps the last noise batch in `self.noise_input`)."""
    if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)):
        return False
    cls = next((a for a in unit.ancestors(target) if isinstance(a, ast.ClassDef)), None)
    if cls is None:
        return False
    reads = self_attribute_reads(unit, cls, target.attr)
    if reads is None:
        return False
    for read, _method in reads:
        parent = unit.parent(read)
        if not (
            isinstance(parent, ast.Attribute) and parent.attr == "data" and isinstance(parent.ctx, ast.Store)
        ):
            return False
    selves = {self_name(m) for m in cls.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for node in ast.walk(cls):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in _OWN_PARAMETERS
            and (not isinstance(node.value, ast.Name) or node.value.id in selves)
        ):
            return False  # `self.parameters()`, `super().parameters()`
    return True


_OWN_PARAMETERS = frozenset(
    {"parameters", "named_parameters", "state_dict", "_parameters", "modules", "children"}
)


def _initialised_once(unit: Unit, node: ast.AST) -> bool:
    """`if not self.initialized: self.s.data = ...; self.initialized = True`: a data-dependent
    initialisation (Glow's ActNorm) runs on the first batch only, since the branch that writes
    `.data` also sets the state its own test reads; the optimizer's later updates are kept."""
    for ancestor in unit.ancestors(node):
        if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            return False
        if not isinstance(ancestor, ast.If) or not _inside(unit, node, ancestor.body):
            continue
        tested = {ast.unparse(n) for n in ast.walk(ancestor.test) if isinstance(n, ast.Attribute)}
        if tested and any(_sets(stmt, tested) for stmt in ancestor.body):
            return True
    return False


def _inside(unit: Unit, node: ast.AST, body: list[ast.stmt]) -> bool:
    return any(a in body for a in unit.ancestors(node)) or node in body


def _sets(stmt: ast.stmt, tested: set[str]) -> bool:
    """Does `stmt` (walked) assign or fill in place one of the `tested` attributes?"""
    for n in ast.walk(stmt):
        targets: list[ast.expr] = []
        if isinstance(n, ast.Assign):
            targets = n.targets
        elif isinstance(n, (ast.AugAssign, ast.AnnAssign)):
            targets = [n.target]
        elif (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in torch_facts.writing_methods()
        ):
            targets = [n.func.value]
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr == "data":
                target = target.value
            if ast.unparse(target) in tested:
                return True
    return False
