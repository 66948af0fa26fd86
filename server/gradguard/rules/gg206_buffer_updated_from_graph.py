"""GG206: a registered buffer updated from values that require grad (it keeps their graph)."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Applicability, Finding, Severity
from gradguard.engine.fixes import alone_on_its_lines, torch_name, wrap_statements
from gradguard.engine.index import ModuleContext, Unit, callee_name
from gradguard.engine.inplace import BUFFER, from_input, writes
from gradguard.engine.interpreter import ATTRIBUTE_STORE
from gradguard.engine.queries import describe, in_forward, scope_text, scopes
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.values import BUFFER as BUFFER_KIND
from gradguard.engine.values import MAYBE, NONE, PARAMETER, TENSOR, YES, Value


class BufferUpdatedFromGraph(Rule):
    code = "GG206"
    name = "buffer-updated-from-graph"
    needs_class = "module"
    triggers = ("running", "register_buffer", "buffer", "BatchNorm", "Norm")
    summary = "A registered buffer updated from values that require grad: the buffer keeps their graph."
    message = Message(
        "Buffer `{name}` is updated from values that require grad\nIt keeps their autograd graph"
    )
    why = (
        "The update is recorded in the autograd graph, so the buffer holds every step's graph: memory grows, "
        "`copy.deepcopy(model)` fails, and a later backward through it raises."
    )
    explanation = """
    Buffers (`register_buffer`, the running statistics of a norm layer) hold state that
    is not trained. Updating one from values that require grad —
    `self.running_mean.mul_(m).add_(batch_mean * (1 - m))` or
    `self.running_mean = m * self.running_mean + (1 - m) * batch_mean` with `batch_mean`
    computed from the activations — records the update in the autograd graph: the buffer
    becomes a non-leaf tensor that holds on to every step's graph (checked with torch 2.13):

    * memory grows with every training step (each update is chained to the previous one);
    * `copy.deepcopy(model)` raises "Only Tensors created explicitly by the user (graph
      leaves) support the deepcopy protocol";
    * a later `backward()` that reaches the buffer (the buffer used in the next step's
      forward) raises "Trying to backward through the graph a second time".

    Update buffers outside the graph: under `with torch.no_grad():`, or from
    `.detach()`ed statistics. That is what `nn.BatchNorm*` does internally.

    The fix wraps the update in `with torch.no_grad():`. It is unsafe only in that it
    also stops gradients through the update itself, which a buffer should not carry
    anyway.

    **Fix safety.** Unsafe: under `torch.no_grad()` (or from detached values) the buffer no longer
    carries a graph, which is the point, but code that relied on gradients through the buffer (rare,
    and usually the bug) changes.
    """
    severity = Severity.WARNING
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class RunningNorm(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.fc = nn.Linear(dim, dim)
                    self.register_buffer("running_mean", torch.zeros(dim))
                    self.register_buffer("steps", torch.zeros((), dtype=torch.long))

                def forward(self, x):
                    h = self.fc(x)
                    if self.training:
                        with torch.no_grad():
                            self.running_mean.mul_(0.9).add_(0.1 * h.mean(0))
                        self.steps += 1
                    return h - self.running_mean
            """,
            note="updated under no_grad; an integer counter",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Queue(nn.Module):
                def __init__(self, dim, size):
                    super().__init__()
                    self.proj = nn.Linear(dim, dim)
                    self.register_buffer("queue", torch.randn(size, dim))
                    self.register_buffer("center", torch.zeros(dim))

                def forward(self, x):
                    keys = self.proj(x)
                    self.queue = torch.cat([keys.detach(), self.queue[: -x.shape[0]]])
                    self.center.lerp_(keys.mean(0).detach(), 0.1)
                    return keys @ self.queue.T
            """,
            note="updated from detached values (a MoCo-style queue, a DINO-style center)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Masked(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.register_buffer("mask", torch.tril(torch.ones(n, n)))

                def forward(self, scores):
                    self.mask = self.mask.to(scores.device)
                    return scores.masked_fill(self.mask == 0, float("-inf"))
            """,
            note="a buffer moved or rebuilt from itself",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Rotary(nn.Module):
                def __init__(self, dim, base, factors):
                    super().__init__()
                    self.dim = dim
                    self.base = base
                    self.factors = factors
                    self.register_buffer("inv_freq", torch.ones(dim // 2), persistent=False)

                def forward(self, hidden_states):
                    scale = torch.tensor(self.factors, dtype=torch.float32, device=hidden_states.device)
                    exponent = torch.arange(0, self.dim, 2, device=hidden_states.device).float() / self.dim
                    self.inv_freq = 1.0 / (scale * self.base**exponent)
                    return hidden_states * self.inv_freq
            """,
            note="rebuilt from factories and config attributes, no input or parameter "
            "(diffusers models/transformers/transformer_omnigen.py)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class TopK(nn.Module):
                def __init__(self, n, k):
                    super().__init__()
                    self.k = k
                    self.register_buffer("last_nonzero", torch.zeros(n, dtype=torch.long))

                def forward(self, x):
                    top = torch.topk(x, k=self.k, dim=-1)
                    if self.training:
                        hits = torch.zeros_like(self.last_nonzero)
                        hits.scatter_add_(0, top.indices.reshape(-1), (top.values > 1e-5).long().reshape(-1))
                        self.last_nonzero *= 1 - hits.clamp(max=1)
                        self.last_nonzero += 1
                    return top.values
            """,
            note="a counter updated from a comparison's result "
            "(sentence-transformers sparse_encoder/modules/sparse_auto_encoder.py)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Codebook(nn.Module):
                def __init__(self, n=16, dim=4):
                    super().__init__()
                    self.embed = nn.Parameter(torch.randn(n, dim))
                    self.register_buffer("usage", torch.zeros(n))
                    self.register_buffer("last_codes", torch.zeros(8, dtype=torch.long))

                def forward(self, x, codes):
                    self.usage.index_add_(0, codes, torch.ones(codes.shape[0]))
                    self.last_codes.copy_(codes)
                    return self.embed[codes] + x
            """,
            run="""
            book = Codebook()
            book(torch.randn(8, 4, requires_grad=True), torch.randint(0, 16, (8,))).sum().backward()
            assert not book.usage.requires_grad and not book.last_codes.requires_grad
            """,
            note="code usage counted from the code indices (integers: they index the codebook), as "
            "vector-quantize-pytorch's `batched_bincount` does with `scatter_add_`",
        ),
        Valid(
            """
            import copy
            import torch
            import torch.nn as nn

            class Head(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Linear(4, 4)

                def forward(self, x):
                    embed = self.net(x)
                    return embed * 2, embed

            class Dino(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.student = Head()
                    self.register_buffer("last_centers", torch.zeros(4))

                def forward(self, x):
                    student, _ = self.student(x)
                    with torch.no_grad():
                        teacher = copy.deepcopy(self.student)
                        teacher_one, _ = teacher(x)
                        teacher_two, _ = teacher(x.flip(0))
                    self.last_centers.copy_(torch.cat((teacher_one, teacher_two)).mean(dim=0))
                    return (student - teacher_one).pow(2).mean()
            """,
            run="""
            model = Dino()
            for _ in range(2):
                model(torch.randn(8, 4)).backward()
            copy.deepcopy(model)
            assert model.last_centers.grad_fn is None
            """,
            note="the centers computed from a teacher's outputs (a tuple, unpacked) under no_grad "
            "(vit-pytorch dino.py, es_vit.py)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            # an observation normaliser with no parameters (pfrl nn/empirical_normalization.py,
            # botorch models/transforms/outcome.py): what it is fed is data, as often as not
            class EmpiricalNormalization(nn.Module):
                def __init__(self, shape):
                    super().__init__()
                    self.register_buffer("_mean", torch.zeros(shape))
                    self.register_buffer("_count", torch.tensor(0))

                def forward(self, x, update=True):
                    if update and self.training:
                        batch = x.shape[0]
                        rate = batch / (self._count + batch)
                        self._mean += rate * (x.mean(0) - self._mean)
                        self._count += batch
                    return x - self._mean
            """,
            note="a parameter-free normaliser the file never builds into a network: its input may be raw data",
            run="""
            import copy
            norm = EmpiricalNormalization(3)
            for _ in range(3):
                norm(torch.randn(8, 3))
            assert norm._mean.grad_fn is None
            copy.deepcopy(norm)
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            # a physics operator whose parameters the caller may replace on any call: the buffer takes
            # the caller's value, never its own previous one (deepinv physics/pet.py `update_parameters`)
            class Attenuated(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.noise = nn.Softplus()
                    self.register_buffer("attenuation", torch.ones(n))
                    self.register_buffer("background", torch.zeros(n))

                def update_parameters(self, attenuation=None, background=None):
                    if attenuation is not None:
                        self.attenuation = torch.exp(-attenuation)
                    if background is not None:
                        self.background = background.to(self.attenuation.device)

                def forward(self, x, attenuation=None, background=None):
                    self.update_parameters(attenuation=attenuation, background=background)
                    return self.noise(x * self.attenuation + self.background)
            """,
            run="""
            physics = Attenuated(3)
            mu = nn.Parameter(torch.rand(3))  # an attenuation map being learned: its gradient is wanted
            for _ in range(3):
                physics(torch.randn(3), attenuation=mu, background=torch.rand(3)).sum().backward()
            assert mu.grad is not None
            # no chain across calls: the buffer's graph is exp(-mu), not the previous buffer's
            (step,) = physics.attenuation.grad_fn.next_functions
            assert step[0].next_functions[0][0].variable is mu
            """,
            note="a buffer replaced by what an argument gives it, not computed from its previous value",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            # a population of spiking neurons: buffers only, fed spikes times fixed synapse weights
            # (bindsnet network/nodes.py); `shape` may be any iterable, which is no parameter
            class LIFNodes(nn.Module):
                def __init__(self, n=None, shape=None, decay=0.9):
                    super().__init__()
                    if shape is None:
                        self.shape = [n]
                    else:
                        self.shape = shape
                    self.decay = decay
                    self.register_buffer("v", torch.zeros(*self.shape))

                def forward(self, x):
                    self.v.mul_(self.decay)
                    self.v.add_(x)
                    spikes = self.v >= 1.0
                    self.v.masked_fill_(spikes, 0.0)
                    return spikes
            """,
            run="""
            import copy
            w = nn.Parameter(torch.rand(4, 4), requires_grad=False)  # synapse weights, not trained by autograd
            layer = LIFNodes(shape=(4,))
            spikes = torch.rand(4) > 0.5
            for _ in range(3):
                spikes = layer(spikes.float() @ w)
            assert not layer.v.requires_grad
            copy.deepcopy(layer)
            """,
            note="a parameter-free module whose attribute holds an unknown constructor argument (not None)",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import copy
            import torch
            import torch.nn as nn

            # the first batch sets the statistic, later ones blend into it (speechbrain
            # nnet/quaternion_networks/q_normalization.py, QBatchNorm)
            class Norm(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.gamma = nn.Parameter(torch.ones(dim))
                    self.register_buffer("running_mean", torch.zeros(dim))
                    self.register_buffer("tracked", torch.tensor(0))

                def forward(self, x):
                    mu = x.mean(0)
                    self.tracked += 1
                    if self.tracked == 1:
                        self.running_mean = mu
                    else:
                        self.running_mean = 0.9 * self.running_mean + 0.1 * mu
                    return self.gamma * (x - mu)
            """,
            lines=[20],
            fixed="""
            import copy
            import torch
            import torch.nn as nn

            # the first batch sets the statistic, later ones blend into it (speechbrain
            # nnet/quaternion_networks/q_normalization.py, QBatchNorm)
            class Norm(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.gamma = nn.Parameter(torch.ones(dim))
                    self.register_buffer("running_mean", torch.zeros(dim))
                    self.register_buffer("tracked", torch.tensor(0))

                def forward(self, x):
                    mu = x.mean(0)
                    self.tracked += 1
                    if self.tracked == 1:
                        self.running_mean = mu
                    else:
                        with torch.no_grad():
                            self.running_mean = 0.9 * self.running_mean + 0.1 * mu
                    return self.gamma * (x - mu)
            """,
            raises="support the deepcopy protocol",
            run="""
            model = nn.Sequential(nn.Linear(4, 4), Norm(4))
            for _ in range(3):
                model(torch.randn(8, 4)).sum().backward()
            copy.deepcopy(model)
            """,
            check_fixed="assert model[1].running_mean.grad_fn is None",
            note="the store that blends a running statistic into itself is reported (the first batch's plain store is not)",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            # a subclass of a torch norm layer is a layer of a network (torch_geometric nn/norm/instance_norm.py)
            class InstanceNorm(nn.InstanceNorm1d):
                def __init__(self, channels):
                    super().__init__(channels)
                    self.register_buffer("running_mean", torch.zeros(channels))

                def forward(self, x):
                    mean = x.mean(0)
                    if self.running_mean is not None:
                        self.running_mean = 0.9 * self.running_mean + 0.1 * mean
                    return x - mean
            """,
            lines=[13],
            fixed="""
            import torch
            import torch.nn as nn

            # a subclass of a torch norm layer is a layer of a network (torch_geometric nn/norm/instance_norm.py)
            class InstanceNorm(nn.InstanceNorm1d):
                def __init__(self, channels):
                    super().__init__(channels)
                    self.register_buffer("running_mean", torch.zeros(channels))

                def forward(self, x):
                    mean = x.mean(0)
                    if self.running_mean is not None:
                        with torch.no_grad():
                            self.running_mean = 0.9 * self.running_mean + 0.1 * mean
                    return x - mean
            """,
            note="the arguments of a torch layer subclass's forward are activations",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class RunningNorm(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.fc = nn.Linear(dim, dim)
                    self.register_buffer("running_mean", torch.zeros(dim))

                def forward(self, x):
                    h = self.fc(x)
                    self.running_mean.mul_(0.9).add_(0.1 * h.mean(0))
                    return h - self.running_mean
            """,
            lines=[12],
            fixed="""
            import torch
            import torch.nn as nn

            class RunningNorm(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.fc = nn.Linear(dim, dim)
                    self.register_buffer("running_mean", torch.zeros(dim))

                def forward(self, x):
                    h = self.fc(x)
                    with torch.no_grad():
                        self.running_mean.mul_(0.9).add_(0.1 * h.mean(0))
                    return h - self.running_mean
            """,
            raises="Trying to backward through the graph a second time",
            run="""
            m = RunningNorm(4)
            for _ in range(2):
                m(torch.randn(8, 4)).sum().backward()
            """,
            check_fixed="import copy; copy.deepcopy(m); assert m.running_mean.grad_fn is None",
        ),
        Invalid(
            """
            import copy
            import torch
            import torch.nn as nn

            class Norm(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.register_buffer("running_mean", torch.zeros(dim))

                def forward(self, x):
                    if self.training:
                        mean = x.mean(0)
                        self.running_mean = 0.9 * self.running_mean + 0.1 * mean
                    else:
                        mean = self.running_mean
                    return x - mean

            model = nn.Sequential(nn.Linear(4, 4), Norm(4))
            """,
            lines=[13],
            fixed="""
            import copy
            import torch
            import torch.nn as nn

            class Norm(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.register_buffer("running_mean", torch.zeros(dim))

                def forward(self, x):
                    if self.training:
                        mean = x.mean(0)
                        with torch.no_grad():
                            self.running_mean = 0.9 * self.running_mean + 0.1 * mean
                    else:
                        mean = self.running_mean
                    return x - mean

            model = nn.Sequential(nn.Linear(4, 4), Norm(4))
            """,
            raises="support the deepcopy protocol",
            run="""
            for _ in range(2):
                model(torch.randn(8, 4)).sum().backward()
            copy.deepcopy(model)
            """,
            check_fixed="assert model[1].running_mean.grad_fn is None",
            note="the hand-written batch norm of pytorch/pytorch#20275",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            # a streaming cache of the last frames (pytorch-tcn pad.py `pad_inference`)
            class StreamPad(nn.Module):
                def __init__(self, channels, pad):
                    super().__init__()
                    self.pad = pad
                    self.conv = nn.Conv1d(channels, channels, pad + 1)
                    self.register_buffer("buffer", torch.zeros(1, channels, pad))

                def forward(self, x):
                    in_buffer = self.buffer
                    x = torch.cat((in_buffer, x), -1)
                    self.buffer = x[..., -self.pad :]
                    return self.conv(x)

            model = nn.Sequential(nn.Conv1d(2, 2, 1), StreamPad(2, 2))
            """,
            lines=[15],
            fixed="""
            import torch
            import torch.nn as nn

            # a streaming cache of the last frames (pytorch-tcn pad.py `pad_inference`)
            class StreamPad(nn.Module):
                def __init__(self, channels, pad):
                    super().__init__()
                    self.pad = pad
                    self.conv = nn.Conv1d(channels, channels, pad + 1)
                    self.register_buffer("buffer", torch.zeros(1, channels, pad))

                def forward(self, x):
                    in_buffer = self.buffer
                    x = torch.cat((in_buffer, x), -1)
                    with torch.no_grad():
                        self.buffer = x[..., -self.pad :]
                    return self.conv(x)

            model = nn.Sequential(nn.Conv1d(2, 2, 1), StreamPad(2, 2))
            """,
            raises="Trying to backward through the graph a second time",
            run="""
            for _ in range(2):
                model(torch.randn(1, 2, 4)).sum().backward()
            """,
            check_fixed="assert model[1].buffer.grad_fn is None",
            note="each chunk's cache is cut from the previous one: the graph chains from chunk to chunk",
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        return "self." in text

    def check(self, unit: Unit) -> Iterator[Finding]:
        for write in writes(unit, lambda func: in_forward(unit, func)):
            if write.kind == BUFFER and write.in_forward and write.written is not None:
                source = _input_only(write.func, write.event.args)
                if source is not None and not _trainable_layer(unit, write.func):
                    continue
                yield self._report(
                    unit, write.node, write.event.statement, describe(unit, write.written), write.func, source
                )
        for func in scopes(unit):
            # (a store into `self.<attr>` names `self`: other scopes need no analysis here)
            if not in_forward(unit, func) or "self" not in scope_text(unit, func):
                continue
            flow = unit.semantics.flow(func)
            for event in flow.events_of(ATTRIBUTE_STORE):
                before: Value | None = event.data  # type: ignore[assignment]
                target = event.target
                if (
                    event.nograd is None
                    and isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                    and before is not None
                    and before.known
                    and before.kinds & BUFFER_KIND
                    and (
                        event.value.grad == YES
                        or (
                            event.value.grad == MAYBE
                            and event.value.is_tensor
                            and from_input(unit, func, event.value)
                        )
                    )
                    and not _from_itself(event.value, before)
                ):
                    source = _input_only(func, (event.value,))
                    if source is not None and (
                        not _trainable_layer(unit, func) or not _reads_itself(target, event.value, event.node)
                    ):
                        continue
                    yield self._report(
                        unit, event.node, event.statement, describe(unit, target), func, source
                    )

    # the values are known only to be computed from an argument (an activation, or raw data: the
    # rule cannot tell which), not to require grad
    _FROM_INPUT = Message(
        "Buffer `{name}` is updated from values computed from `{source}`, an argument of `{method}`\n"
        "If `{source}` requires grad (an activation of a model being trained), the buffer keeps its autograd graph"
    )

    def _report(
        self,
        unit: Unit,
        node: ast.AST,
        statement: ast.stmt | None,
        name: str,
        func: ast.AST | None,
        source: str | None,
    ) -> Finding:
        if source is not None:
            first = self._FROM_INPUT.format(name=name, source=source, method=getattr(func, "name", "forward"))
        else:
            first = self.message.format(name=name)
        message = (
            first
            + ": memory grows every step, `copy.deepcopy` of the model fails, and a later backward through it "
            'raises "Trying to backward through the graph a second time"; update it under `torch.no_grad()` or '
            "from `.detach()`ed values."
        )
        fix = None
        torch = torch_name(unit)
        if (
            torch is not None
            and isinstance(statement, (ast.Expr, ast.Assign, ast.AugAssign))
            and alone_on_its_lines(unit, statement)
        ):
            header = f"with {torch}.no_grad():"
            fix = self.make_fix(
                f"Wrap in `{header}`", lambda s=statement: [wrap_statements(unit, s, s, header)]
            )
        return self.finding(unit, node, message, fix=fix)


def _from_itself(value, before) -> bool:
    """`self.mask = self.mask.to(device)`: the buffer rebuilt from itself, nothing else."""
    return bool(before.roots) and value.roots == before.roots


def _reads_itself(target: ast.Attribute, value: Value, store: ast.AST | None = None) -> bool:
    """`self.mean = 0.9 * self.mean + 0.1 * x.mean(0)`: the new value is computed from the buffer's
    previous one, so each update is chained to the last (a running statistic, a streaming cache).
    A buffer replaced by what an argument gives it alone (a setter: `self.attenuation =
    attenuation.to(device)`) holds that argument's graph, no older one: it is the caller's value,
    whose gradient the caller may well want (deepinv physics/pet.py `update_parameters`)."""
    if f"self.{target.attr}" in value.names:
        return True
    # (read in the stored expression itself: `self.mean = (1 - m) * self.mean + m * mu` after a branch
    # that set `self.mean = mu` on the first batch, where the value read is no longer the buffer alone)
    expression = getattr(store, "value", None)
    return expression is not None and any(
        isinstance(n, ast.Attribute)
        and n.attr == target.attr
        and isinstance(n.value, ast.Name)
        and n.value.id == "self"
        for n in ast.walk(expression)
    )


def _input_only(func: ast.AST | None, values) -> str | None:
    """The argument of `func` the buffer's new values are computed from, when that is all that is
    known (none of them certainly requires grad): `x` in `self.mean += x.mean(0)`. None otherwise."""
    if any(v.grad == YES for v in values):
        return None
    args = getattr(func, "args", None)
    if args is None:
        return None
    names = set().union(*(v.names for v in values if v.grad == MAYBE))
    inputs = [a.arg for a in (*args.posonlyargs, *args.args[1:], *args.kwonlyargs)]
    return next((a for a in inputs if a in names), None)


def _trainable_layer(unit: Unit, func: ast.AST | None) -> bool:
    """Whether the class of `func` owns parameters or submodules: a layer of a network, whose
    arguments are the activations of the layers before it. A module with neither (an observation
    or target normaliser: pfrl's EmpiricalNormalization, botorch's Standardize) is as often fed
    raw data, which requires no grad: an update from its arguments alone is not reported."""
    cls = unit.enclosing_class(func) if func is not None else None
    info = unit.semantics.class_info(cls.name) if cls is not None else None
    if info is None:
        return False
    if any(_a_parameter(v) or v.is_module for v in info.attrs.values()):
        return True
    return _a_torch_layer_subclass(unit, cls) or _built_as_a_layer(unit, cls)


def _a_parameter(value: Value) -> bool:
    """A parameter, or a tensor or None that may be one (`nn.Parameter(...) if bias else None`). An
    unknown value that is only known not to be None (`self.shape = shape` after `if shape is None:`,
    bindsnet network/nodes.py) may be anything: it is no sign that the class owns parameters."""
    return bool(value.kinds & PARAMETER) and value.is_only(TENSOR | PARAMETER | BUFFER_KIND | NONE)


def _a_torch_layer_subclass(unit: Unit, cls: ast.ClassDef) -> bool:
    """`class InstanceNorm(_InstanceNorm)`: a subclass of a torch layer (any `torch.nn` class but
    `Module` and the containers) is a layer of a network."""
    for base in cls.bases:
        qual = unit.module.qualname(base) or ""
        if qual.startswith("torch.nn.") and qual.rsplit(".", 1)[-1] not in ("Module", *_CONTAINERS):
            return True
    return False


_CONTAINERS = torch_facts.containers()


def _built_as_a_layer(unit: Unit, cls: ast.ClassDef) -> bool:
    """Whether the file builds the class as a layer of a network: inside `nn.Sequential(...)` (or a
    ModuleList/ModuleDict), or in the `__init__` of another `nn.Module` class."""
    for stmt in unit.semantics.rests_on_text_naming(cls.name):
        if stmt is not cls and _builds_in_a_network(unit, stmt, cls.name, in_init=False):
            return True
    return False


def _builds_in_a_network(unit: Unit, node: ast.AST, name: str, in_init: bool) -> bool:
    """Does `node` hold a call `name(...)` inside a container call or a module's `__init__`?"""
    if isinstance(node, ast.ClassDef):
        if not unit.module.is_module_class(node.name):
            return False
        return any(
            isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
            and s.name == "__init__"
            and _builds_in_a_network(unit, s, name, in_init=True)
            for s in node.body
        )
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.Call):
            pass
        elif (in_init and isinstance(child.func, ast.Name) and child.func.id == name) or (
            callee_name(child.func) in _CONTAINERS
            and any(
                isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
                for n in ast.walk(child)
            )
        ):
            return True
        if _builds_in_a_network(unit, child, name, in_init):
            return True
    return False
