"""GG203: in-place change of a tensor created with `requires_grad=True`."""

from __future__ import annotations

import ast
from typing import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Applicability, Finding, Severity
from gradguard.engine.fixes import alone_on_its_lines, next_statement, torch_name, wrap_statements
from gradguard.engine.index import ModuleContext, Unit, chain_root
from gradguard.engine.inplace import LEAF, describe_inplace, writes
from gradguard.engine.queries import describe, switches_requires_grad_off
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.rule_helpers import AUGMENTED_OPERATORS as _OPERATORS
from gradguard.engine.values import PARAMETER

_OUT_OF_PLACE = torch_facts.INPLACE_WITH_TWIN
# Re-initialisations (zero_, fill_, uniform_, ...): wrapping them in no_grad is exactly what anyone means.
_REINIT = torch_facts.overwriting_methods()
_LEAF_ERROR = "a leaf Variable that requires grad is being used in an in-place operation"


class InplaceOnLeaf(Rule):
    code = "GG203"

    # a leaf that requires grad comes from one of _LEAF_WORDS, or, into a function, from its callers
    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        return _mentions_leaf_words(text) or _may_receive_leaves(statement, module)

    name = "inplace-on-leaf"
    summary = "In-place change of a `requires_grad=True` tensor: PyTorch raises the leaf in-place error."
    why = (
        "A tensor created with `requires_grad=True` is a leaf: changing it in place while gradients are "
        'enabled raises "a leaf Variable that requires grad is being used in an in-place operation".'
    )
    message = Message(
        "In-place {what} on `{name}`, {origin} (line {line})\nPyTorch raises "
        '"{error}"; to update the leaf, do it under `with torch.no_grad():`; '
        "if the change should be differentiated, write {alternative}."
    )
    explanation = """
    A tensor you create with `requires_grad=True` (or mark with `.requires_grad_()`)
    is a *leaf*: autograd accumulates its gradient in `.grad`. While gradients are
    enabled, changing it in place (`x += 1`, `x *= 0.1`, `x.add_(...)`, `x.zero_()`,
    `x[0] = 1`) raises immediately:

        RuntimeError: a leaf Variable that requires grad is being used in an in-place operation.

    (for a write through basic indexing: *"a view of a leaf Variable that requires grad
    is being used in an in-place operation."*)

    What to write depends on what the change is for:

    * **Updating the leaf itself** (a hand-written SGD step, re-initialising,
      rescaling data): the update must not be recorded, so do it under
      `torch.no_grad()`:

      ```python
      with torch.no_grad():
          w -= lr * w.grad
      w.grad.zero_()
      ```

      `w` stays a leaf, and the next `loss.backward()` fills `w.grad` again.
    * **Computing something new from it** (the change should be differentiated):
      write it out of place, `h = h + layer(x)`. The result is a new, non-leaf tensor,
      and gradients flow back to the original `h`.

    The automatic fix wraps the statement in `with torch.no_grad():`. That is
    marked safe for gradient steps (the statement reads `w.grad`) and
    re-initialisations (`zero_`, `fill_`, `uniform_`, `normal_`, ...); otherwise it is
    unsafe, because if you meant the change to be differentiated, the no_grad
    version silently drops that gradient path: review it and write the out-of-place
    form instead when that is what you meant.

    Not reported: changes under `torch.no_grad()` / `@torch.no_grad()`, writes
    through `.data` or `.grad`, tensors rebound to a computed (non-leaf) value before
    the change, `nn.init.*_` calls (they run under no_grad), and a module's parameters
    after the module was passed to a call that may change it in place (a function the
    analysis cannot see into, such as torchao's `quantize_`, or a torch transform such
    as `torch.nn.utils.prune`): it may have replaced them.

    **Fix safety.** Safe when the statement is an update of the leaf itself (`w -= lr * w.grad`):
    under `torch.no_grad()` it does exactly what was meant, and the leaf keeps `requires_grad`.
    Unsafe otherwise (an in-place change whose gradient you may have wanted recorded): check that
    the change should not be differentiated.
    """
    severity = Severity.ERROR
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            from copy import deepcopy

            import torch
            import torch.nn as nn


            class EMAHandler:
                def __init__(self, model: nn.Module, momentum: float = 0.1):
                    self.model = model
                    self.momentum = momentum
                    self.ema_model = deepcopy(model)
                    for param in self.ema_model.parameters():
                        param.detach_()

                def update(self):
                    for ema_p, model_p in zip(self.ema_model.parameters(), self.model.parameters()):
                        ema_p.mul_(1.0 - self.momentum).add_(model_p.data, alpha=self.momentum)
            """,
            note="pytorch-ignite handlers/ema_handler.py: `detach_()` on each parameter of the EMA copy "
            "turns its `requires_grad` off, so the EMA update may run in place",
            run="""
            net = nn.Linear(2, 1)
            ema = EMAHandler(net)
            assert not any(p.requires_grad for p in ema.ema_model.parameters())
            assert all(p.requires_grad for p in net.parameters())
            ema.update()
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            from torch import Tensor


            class Metric(nn.Module):
                def add_state(self, name, default):
                    setattr(self, name, default.clone())


            class MeanMetric(Metric):
                def __init__(self):
                    super().__init__()
                    self.add_state("mean_value", torch.tensor(0.0))
                    self.add_state("weight", torch.tensor(0.0))

                def update(self, value: Tensor, weight: Tensor) -> None:
                    self.mean_value += (value * weight).sum()
                    self.weight += weight.sum()

                def compute(self) -> Tensor:
                    return self.mean_value / self.weight
            """,
            note="torchmetrics aggregation.py: a state registered by name (`add_state`) called `weight` is "
            "what the registering method makes it, not a layer's parameter",
            run="""
            m = MeanMetric()
            m.update(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))
            assert m.compute().item() == 2.0
            """,
        ),
        Valid(
            """
            import torch

            w = torch.randn(3, requires_grad=True)
            x, y = torch.randn(16, 3), torch.randn(16)
            for step in range(100):
                loss = ((x @ w - y) ** 2).mean()
                loss.backward()
                with torch.no_grad():
                    w -= 0.1 * w.grad
                w.grad.zero_()
            """,
            note="the canonical manual SGD loop",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            @torch.no_grad()
            def sgd_step(params, lr):
                for p in params:
                    p.add_(p.grad, alpha=-lr)

            def make_weight(n):
                w = torch.empty(n, n, requires_grad=True)
                nn.init.xavier_uniform_(w)
                w.data.mul_(0.5)
                return w
            """,
            note="optimizer-like code under @no_grad, nn.init and .data",
        ),
        Valid(
            """
            import torch

            def accumulate(xs):
                total = torch.zeros(3, requires_grad=True)
                total = total * 1.0
                for x in xs:
                    total += x
                return total
            """,
            note="rebound to a non-leaf before the in-place change",
        ),
        Valid(
            """
            import torch

            def embed(tokens):
                table = torch.randn(100, 8)
                table[0] = 0.0
                out = table[tokens]
                out.requires_grad_()
                return out
            """,
            note="tensors that do not require grad",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(3, 1)
            teacher = nn.Linear(3, 1)
            for p in teacher.parameters():
                p.requires_grad = False
            loss = model(torch.randn(4, 3)).sum()
            loss.backward()
            for p in model.parameters():
                p.data -= 0.1 * p.grad
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.clamp_(-1, 1)
            for p in teacher.parameters():
                p.mul_(0.5)
            """,
            note="parameter updates through .data / under no_grad; a frozen model",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn


            class WeightAverage:
                def __init__(self, model: nn.Module, running: nn.Module):
                    self.params = [p for p in model.parameters() if p.requires_grad]
                    self.running = running
                    self.ema = [p.detach().clone() for p in self.params]

                def _update_weights(self, beta):
                    for theta, ema, run_param in zip(self.params, self.ema, self.running.parameters()):
                        ema.mul_(1 - beta).add_(theta.detach(), alpha=beta)
                        run_param.copy_(ema)

                @torch.no_grad()
                def on_step_end(self, step):
                    if step % 2 == 0:
                        self._update_weights(0.9)
            """,
            run="""
            net, running = nn.Linear(2, 1), nn.Linear(2, 1)
            average = WeightAverage(net, running)
            average.on_step_end(0)
            assert torch.equal(running.weight, net.weight) and running.weight.requires_grad
            """,
            note="a private helper called only from a method decorated `@torch.no_grad()` "
            "(trl trainer/callbacks.py, BEMACallback)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(4, 4)
            for p in model.parameters():
                bits = p.view(torch.int32)
                bits.bitwise_xor_(1)
            """,
            note="a dtype view (`p.view(torch.int32)`) neither requires grad nor is a leaf that does: torch "
            "allows the write (bit flips in the weights); the `x.view(dtype)` class of "
            "bench/reviews/2026-12-01-known.md",
            run="model(torch.randn(2, 4)).sum().backward()",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Factor(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.core = nn.Parameter(torch.randn(n, n))

                def to_tensor(self):
                    return self.core

            class SpectralConv(nn.Module):
                def __init__(self, n=3):
                    super().__init__()
                    self.weight = nn.ModuleList([Factor(n) for _ in range(2)])

            conv, conv_dense = SpectralConv(), SpectralConv()
            for i, w in enumerate(conv.weight):
                conv_dense.weight[i] = Factor(w.to_tensor().shape[0])
            """,
            note="neuraloperator layers/tests/test_legacy_spectral_convolution.py (one-file form of "
            "tests/project/cases/module_list_weight): `weight` is a ModuleList of modules; an item "
            "assignment replaces a submodule",
            run="assert isinstance(conv_dense.weight[0], Factor)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Toy(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.linear = nn.Linear(4, 4, bias=False)

                def forward(self, x):
                    return self.linear(x)

            def load(state_dict, prepare_for_loading):
                model = Toy().eval()
                prepare_for_loading(model)
                model.linear.weight.copy_(state_dict["linear.weight"])
                return model
            """,
            note="torchao test/prototype/test_awq.py: a module passed to a call that may change it in place "
            "(`quantize_(model, AWQConfig(...))` swaps each Linear weight for a `requires_grad=False` "
            "Parameter) holds unknown attributes from there on",
            run="""
            def frozen_weights(model):
                for layer in model.modules():
                    if isinstance(layer, nn.Linear):
                        layer.weight = nn.Parameter(layer.weight.detach().clone(), requires_grad=False)

            saved = Toy().state_dict()
            loaded = load(saved, frozen_weights)
            assert torch.equal(loaded.linear.weight, saved["linear.weight"])
            """,
        ),
        Valid(
            """
            # from mmrazor 1.0.0 mmrazor/models/fake_quants/lsq.py (LearnableFakeQuantize)
            import torch
            import torch.nn as nn


            class FakeQuant(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.scale = nn.Parameter(torch.tensor([1.0]))

                def _load_from_state_dict(self, state_dict, prefix, *args):
                    val = state_dict[prefix + "scale"]
                    self.scale.data = self.scale.data.resize_(val.shape)
                    if torch.jit.is_scripting():
                        self.scale.copy_(val)
                    super()._load_from_state_dict(state_dict, prefix, *args)
            """,
            run="""
            q = FakeQuant()
            q.load_state_dict({"scale": torch.tensor([2.0, 3.0])})
            assert q.scale.tolist() == [2.0, 3.0] and q.scale.requires_grad
            """,
            note="dev15: `torch.jit.is_scripting()` is False whenever Python runs the code, so the branch "
            "never runs in eager code",
        ),
        Valid(
            """
            import torch

            def sgd(params, lr):
                for param in params:
                    param -= lr * param.grad
                    param.grad.zero_()

            w = torch.randn(3, requires_grad=True)
            x, y = torch.randn(16, 3), torch.randn(16)
            for step in range(20):
                loss = ((x @ w - y) ** 2).mean()
                loss.backward()
                with torch.no_grad():
                    sgd([w], 0.1)
            """,
            note="d2l's `sgd` helper called only inside `with torch.no_grad():`: the leaves it changes are "
            "changed with gradients off",
            run="assert w.is_leaf and w.requires_grad",
        ),
    ]

    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(3, 1)
            x, y = torch.randn(32, 3), torch.randn(32, 1)
            for epoch in range(20):
                loss = nn.functional.mse_loss(model(x), y)
                model.zero_grad()
                loss.backward()
                for p in model.parameters():
                    p -= 0.1 * p.grad
            """,
            lines=[11],
            fixed="""
            import torch
            import torch.nn as nn

            model = nn.Linear(3, 1)
            x, y = torch.randn(32, 3), torch.randn(32, 1)
            for epoch in range(20):
                loss = nn.functional.mse_loss(model(x), y)
                model.zero_grad()
                loss.backward()
                for p in model.parameters():
                    with torch.no_grad():
                        p -= 0.1 * p.grad
            """,
            raises=_LEAF_ERROR,
            check_fixed=(
                "assert model.weight.is_leaf and model.weight.grad is not None\n"
                "assert float(nn.functional.mse_loss(model(x), y)) < float(loss.detach())"
            ),
            note="a hand-written SGD step over model.parameters()",
        ),
        Invalid(
            """
            import torch

            w = torch.randn(3, requires_grad=True)
            x, y = torch.randn(16, 3), torch.randn(16)
            for step in range(100):
                loss = ((x @ w - y) ** 2).mean()
                loss.backward()
                w -= 0.1 * w.grad
                w.grad.zero_()
            """,
            lines=[8],
            fixed="""
            import torch

            w = torch.randn(3, requires_grad=True)
            x, y = torch.randn(16, 3), torch.randn(16)
            for step in range(100):
                loss = ((x @ w - y) ** 2).mean()
                loss.backward()
                with torch.no_grad():
                    w -= 0.1 * w.grad
                w.grad.zero_()
            """,
            raises=_LEAF_ERROR,
            check_fixed="assert w.requires_grad and w.grad_fn is None and float(loss.detach()) < 1e3",
            note="a manual SGD step (safe fix)",
        ),
        Invalid(
            """
            import torch

            def sgd(params, lr):
                for param in params:
                    param -= lr * param.grad
                    param.grad.zero_()

            w = torch.randn(3, requires_grad=True)
            b = torch.zeros(1, requires_grad=True)
            x, y = torch.randn(16, 3), torch.randn(16)
            for step in range(100):
                loss = ((x @ w + b - y) ** 2).mean()
                loss.backward()
                sgd([w, b], 0.1)
            """,
            lines=[5],
            fixed="""
            import torch

            def sgd(params, lr):
                for param in params:
                    with torch.no_grad():
                        param -= lr * param.grad
                    param.grad.zero_()

            w = torch.randn(3, requires_grad=True)
            b = torch.zeros(1, requires_grad=True)
            x, y = torch.randn(16, 3), torch.randn(16)
            for step in range(100):
                loss = ((x @ w + b - y) ** 2).mean()
                loss.backward()
                sgd([w, b], 0.1)
            """,
            raises=_LEAF_ERROR,
            check_fixed="assert w.is_leaf and b.is_leaf and float(loss.detach()) < 1e3",
            note="d2l's `sgd` helper without its `torch.no_grad()`: the leaves its caller passes in a list "
            "(tests/real_bugs/d2l_sgd_helper_without_no_grad.py)",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.optim as optim

            X = torch.randn(100, 10, requires_grad=True)
            y = torch.randint(0, 2, (100,))
            model = nn.Linear(10, 2)
            criterion = nn.CrossEntropyLoss()
            optimizer = optim.SGD(model.parameters(), lr=0.01)

            for epoch in range(10):
                output = model(X)
                loss = criterion(output, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                X *= 0.1
            """,
            lines=[17],
            fixed="""
            import torch
            import torch.nn as nn
            import torch.optim as optim

            X = torch.randn(100, 10, requires_grad=True)
            y = torch.randint(0, 2, (100,))
            model = nn.Linear(10, 2)
            criterion = nn.CrossEntropyLoss()
            optimizer = optim.SGD(model.parameters(), lr=0.01)

            for epoch in range(10):
                output = model(X)
                loss = criterion(output, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    X *= 0.1
            """,
            raises=_LEAF_ERROR,
            check_fixed="assert X.grad is not None and model.weight.grad is not None",
            note="seed 002's example 3 (unsafe fix: it could have meant X = X * 0.1)",
        ),
        Invalid(
            """
            import torch

            def init_embeddings(n, dim):
                emb = torch.randn(n, dim).requires_grad_()
                emb[0] = 0.0  # padding row
                emb.clamp_(-1.0, 1.0)
                return emb
            """,
            lines=[5, 6],
            fixed="""
            import torch

            def init_embeddings(n, dim):
                emb = torch.randn(n, dim).requires_grad_()
                with torch.no_grad():
                    emb[0] = 0.0  # padding row
                    emb.clamp_(-1.0, 1.0)
                return emb
            """,
            raises="a view of a leaf Variable that requires grad is being used in an in-place operation",
            run="e = init_embeddings(10, 4)\ne[[1, 2]].sum().backward()",
            check_fixed="assert e.is_leaf and e.grad is not None and float(e[0].detach().abs().sum()) == 0.0",
        ),
        Invalid(
            """
            import torch as th

            w = th.randn(10, requires_grad=True)
            w[w > 1.0] = 1.0
            w.zero_()
            """,
            lines=[4, 5],
            fixed="""
            import torch as th

            w = th.randn(10, requires_grad=True)
            with th.no_grad():
                w[w > 1.0] = 1.0
            with th.no_grad():
                w.zero_()
            """,
            raises=_LEAF_ERROR,
            check_fixed="assert w.is_leaf and w.requires_grad and float(w.detach().abs().sum()) == 0.0",
        ),
        Invalid(
            """
            from copy import deepcopy

            import torch
            import torch.nn as nn


            class EMA:
                def __init__(self, model: nn.Module):
                    self.model = model
                    self.ema_model = deepcopy(model)
                    for param in self.ema_model.parameters():
                        param.detach_()

                def copy_to_model(self):
                    for ema_p, model_p in zip(self.ema_model.parameters(), self.model.parameters()):
                        model_p.copy_(ema_p)
            """,
            lines=[16],
            fixed="""
            from copy import deepcopy

            import torch
            import torch.nn as nn


            class EMA:
                def __init__(self, model: nn.Module):
                    self.model = model
                    self.ema_model = deepcopy(model)
                    for param in self.ema_model.parameters():
                        param.detach_()

                def copy_to_model(self):
                    for ema_p, model_p in zip(self.ema_model.parameters(), self.model.parameters()):
                        with torch.no_grad():
                            model_p.copy_(ema_p)
            """,
            raises=_LEAF_ERROR,
            run="net = nn.Linear(2, 1)\nema = EMA(net)\nema.copy_to_model()",
            check_fixed="assert net.weight.requires_grad and torch.equal(net.weight, ema.ema_model.weight)",
            note="only the copy is frozen: the model's own parameters still require grad",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        if not _may_create_leaves(unit):
            return
        flagged = []
        for write in writes(unit):
            if write.kind != LEAF or write.in_forward and chain_root(write.written) == "self":
                continue  # a module's own parameters in forward are GG201's
            if write.func is not None and unit.semantics.file_calls_only_without_grad(write.func):
                continue  # (what its callers pass is changed with gradients off)
            if write.value.kinds & PARAMETER and switches_requires_grad_off(unit):
                continue  # (`p.requires_grad = False` somewhere: we cannot tell which parameters)
            written = write.written
            if written is None:
                continue
            if write.value.kinds & PARAMETER and _holds_non_tensors(unit, write):
                continue
            node = write.node
            name = written.id if isinstance(written, ast.Name) else describe(unit, written)
            origin, line = _origin(write.value)
            what, error = describe_inplace(write)
            message = self.message.format(
                what=what,
                name=name,
                origin=origin,
                line=line,
                error=error,
                alternative=_out_of_place_hint(node, name),
            )
            flagged.append((node, message, _wrappable(unit, node, name)))
        torch = torch_name(unit)
        # consecutive flagged statements go under one `with torch.no_grad():`
        runs = {id(w[0]): w[1] for _, _, w in flagged if w is not None}
        for node, message, wrappable in flagged:
            fix = None
            if wrappable is not None and torch is not None:
                statement, applicability = wrappable
                last = statement
                while True:
                    following = next_statement(unit, last)
                    if following is None or runs.get(id(following)) is not applicability:
                        break
                    last = following
                header = f"with {torch}.no_grad():"
                fix = self.make_fix(
                    f"Wrap in `{header}`",
                    lambda first=statement, last=last, header=header: [
                        wrap_statements(unit, first, last, header)
                    ],
                    applicability,
                )
            yield self.finding(unit, node, message, fix=fix)


def _holds_non_tensors(unit: Unit, write) -> bool:
    """`conv.weight[i] = ...` where `weight` of a module whose class is not seen (only its name says
    "parameter") holds objects no tensor is, as the function's other uses show: a method no tensor has
    called on an item (`other.weight[i].to_tensor()`, `for w in other.weight: w.to_tensor()`) of the
    same attribute of a module (`conv` and `conv_dense`, of related classes defined elsewhere). Then
    `weight` is a container of modules."""
    written = write.written
    func = write.func
    if func is None or not isinstance(written, ast.Attribute) or not isinstance(written.value, ast.Name):
        return False
    flow = write.flow
    base = flow.values.get(written.value)
    if not _unseen_module(unit, base):
        return False
    attr = written.attr
    for node in ast.walk(func):
        if not (isinstance(node, ast.Attribute) and node.attr == attr and isinstance(node.value, ast.Name)):
            continue
        other = flow.values.get(node.value)
        if not _unseen_module(unit, other):
            continue
        parent = unit.parent(node)
        if (
            isinstance(parent, ast.Call)
            and isinstance(parent.func, ast.Name)
            and parent.func.id == "enumerate"
        ):
            parent = unit.parent(parent)
        items: list[str] = []
        if isinstance(parent, ast.Subscript) and parent.value is node:
            method = unit.parent(parent)
            if isinstance(method, ast.Attribute) and _non_tensor_call(unit, method):
                return True
        elif isinstance(parent, ast.For):
            target = parent.target.elts[-1] if isinstance(parent.target, ast.Tuple) else parent.target
            if isinstance(target, ast.Name):
                items.append(target.id)
            for inner in (n for stmt in parent.body for n in ast.walk(stmt)):
                if (
                    isinstance(inner, ast.Attribute)
                    and isinstance(inner.value, ast.Name)
                    and inner.value.id in items
                    and _non_tensor_call(unit, inner)
                ):
                    return True
    return False


def _unseen_module(unit: Unit, value) -> bool:
    """A module of a class whose definition the file does not hold (nor torch's)."""
    cls: str = (value.cls or "") if value is not None and value.is_module else ""
    return bool(cls) and cls not in unit.semantics.top and not cls.startswith("torch.")


def _non_tensor_call(unit: Unit, method: ast.Attribute) -> bool:
    """`x.method(...)`, a call of a method no tensor has."""
    call = unit.parent(method)
    return (
        isinstance(call, ast.Call) and call.func is method and not torch_facts.is_tensor_method(method.attr)
    )


def _origin(value) -> tuple[str, int | str]:
    """How the tensor became a leaf that requires grad, and on which line."""
    lines = sorted(getattr(n, "lineno", 0) for n in value.sources)
    line = lines[0] if lines else "?"
    if value.kinds & PARAMETER:
        return "a parameter (a leaf that requires grad)", line
    return "a leaf tensor that requires grad", line


def _out_of_place_hint(node: ast.AST, name: str) -> str:
    if isinstance(node, ast.AugAssign) and type(node.op) in _OPERATORS:
        return f"`{name} = {name} {_OPERATORS[type(node.op)]} ...`"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _OUT_OF_PLACE
    ):
        return f"`{name} = {name}.{node.func.attr[:-1]}(...)`"
    if isinstance(node, ast.Assign):
        return f"a new tensor (`torch.where(...)`, `{name}.index_put(...)`)"
    return "it out of place"


def _wrappable(unit: Unit, node: ast.AST, name: str) -> tuple[ast.stmt, Applicability] | None:
    """The statement to put under no_grad (when the change is the whole statement, alone
    on its lines) and how safe that is."""
    statement = unit.parent(node) if isinstance(node, ast.Call) else node
    if not isinstance(statement, (ast.Expr, ast.Assign, ast.AugAssign)):
        return None
    if isinstance(statement, ast.Expr) and statement.value is not node:
        return None
    if not alone_on_its_lines(unit, statement):
        return None
    safe = _is_update_of_leaf(statement, node, name)
    return statement, Applicability.SAFE if safe else Applicability.UNSAFE


def _is_update_of_leaf(statement: ast.stmt, node: ast.AST, name: str) -> bool:
    """A gradient step (reads `name.grad`) or a re-initialisation: no_grad is what is meant."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _REINIT:
        return all(isinstance(a, ast.Constant) for a in node.args)
    for sub in ast.walk(statement):
        if (
            isinstance(sub, ast.Attribute)
            and sub.attr == "grad"
            and isinstance(sub.value, ast.Name)
            and sub.value.id == name
        ):
            return True
    return False


_LEAF_WORDS = ("requires_grad", "Parameter", "parameters", "weight", "bias", "Variable")


def _may_create_leaves(unit: Unit) -> bool:
    """A cheap textual pre-check: no leaf can be made without one of these words, nor passed to a
    function but from a file that makes one at its top level."""
    first = unit.nodes[0]
    last = unit.nodes[-1]
    text = unit.source.text_between(first.lineno, 1, (last.end_lineno or last.lineno) + 1, 1)
    return _mentions_leaf_words(text) or _may_receive_leaves(first, unit.module)


def _mentions_leaf_words(text: str) -> bool:
    return any(word in text for word in _LEAF_WORDS)


def _may_receive_leaves(statement: ast.stmt, module: ModuleContext) -> bool:
    """A top-level function with parameters, in a file whose top level makes a leaf that requires
    grad (`w = torch.zeros(2, requires_grad=True)`): its callers may pass it (`sgd([w, b], lr)`)."""
    if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) or not module.grad_leaves:
        return False
    spec = statement.args
    return bool(spec.posonlyargs or spec.args or spec.kwonlyargs or spec.vararg)
