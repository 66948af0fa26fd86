"""GG405: `total += loss` keeps every iteration's autograd graph reachable."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Applicability, Finding
from gradguard.engine.fixes import replace_node
from gradguard.engine.index import Unit, callee_name, chain_root, dotted_name
from gradguard.engine.interpreter import BACKWARD, has_graph
from gradguard.engine.loops import enclosing_loop
from gradguard.engine.queries import certainly_tracked, flows
from gradguard.engine.rule import Invalid, Message, Rule, Valid

# calls that cut the graph (detach, item, tolist, ...) or only read a number for logging; `append`
# stores it in a list (for logging later)
_LOGGING = (
    torch_facts.graph_cutting_methods()
    | torch_facts.LOGGING_BUILTINS
    | torch_facts.LOGGING_METHODS
    | {"append"}
)

# the statements the rule reads (`total += x`, `total -= x`, `totals.append(x)`, `total = total + x`):
# a scope without any cannot hold a finding, and its flow need not be computed
_ACCUMULATES = re.compile(r"[+-]=|\.append\(|=\s*[\w.\[\]'\"]+\s*\+")


class LossAccumulatedWithGraph(Rule):
    code = "GG405"
    triggers = ("backward",)  # its own pre-check (which also needs "+=")
    name = "loss-accumulated-with-graph"
    summary = "A running total accumulates a loss tensor that is still attached to its autograd graph."
    why = (
        "A loss tensor still references its autograd graph: adding it to a running total keeps every "
        "iteration's graph alive, so memory use grows every step."
    )
    message = Message(
        "`{target} += {loss}` keeps every iteration's autograd graph alive\nIt adds the loss tensor itself, "
        "so `{target}` stays attached to the graph of every iteration and memory grows with each step; "
        "accumulate `{loss}.item()`."
    )
    explanation = """
    A loss returned by the model is a tensor with a `grad_fn`: it references the
    autograd graph that produced it. `total += loss` (with `total` starting as
    `0` or `0.0`) makes `total` a tensor whose own `grad_fn` points at that graph,
    and each iteration adds another link. Even after `loss.backward()` has freed the
    saved tensors, the chain of graph nodes is kept alive for as long as `total` is
    alive, so memory use grows every step (on the GPU too, if the loss lives there).

    For logging, accumulate a Python number: `total += loss.item()` (or
    `loss.detach()` to keep it on the device). If you really mean to backpropagate
    through the sum (gradient accumulation by summing losses), call
    `total.backward()`; such totals are not reported.

    The automatic fix (`loss.item()`) is marked safe when `total` is only printed or
    logged; otherwise it is offered as unsafe, because `total` becomes a float.

    **Fix safety.** `.item()` is safe when the total is only printed or logged; otherwise it is
    unsafe, because the total becomes a Python float (code reading it as a tensor breaks).
    `.detach()` in an appended list keeps tensors and is safe. For an item of a dict or list of totals
    (`totals[key] += losses[key]`), the same holds for every read of the container.
    """
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn


            def train(model, gate_layers, epochs):
                optimizer = torch.optim.Adam(gate_layers.parameters(), lr=0.01)
                x = torch.randn(6, 4)
                for _ in range(epochs):
                    gates, total_penalty = [], 0
                    for layer in gate_layers:
                        sampling_weights = torch.sigmoid(layer(x)).squeeze(-1)
                        gates.append(sampling_weights)
                        total_penalty += sampling_weights.sum()
                    out = model(x * torch.stack(gates, -1).mean(-1, keepdim=True))
                    loss = out.pow(2).mean() + 0.01 * total_penalty
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            """,
            note="the list is made again (by a tuple assignment) every epoch and feeds that epoch's loss "
            "(torch_geometric explain/algorithm/graphmask_explainer.py)",
            run="train(nn.Linear(4, 1), nn.ModuleList([nn.Linear(4, 1), nn.Linear(4, 1)]), 3)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            def chunked_loss(model, x, y, chunk, with_backward):
                losses = []
                for begin in range(0, len(x), chunk):
                    out = model(x[begin : begin + chunk])
                    loss_mb = nn.functional.mse_loss(out, y[begin : begin + chunk], reduction="sum") / len(x)
                    if with_backward:
                        loss_mb.backward()
                        loss_mb = loss_mb.detach()
                    losses.append(loss_mb)
                return torch.stack(losses).sum()
            """,
            note="detached after every backward; the graph is kept only when the caller backpropagates "
            "the returned sum (sentence-transformers losses/mega_batch_margin.py)",
            run="model = nn.Linear(3, 1)\n"
            "chunked_loss(model, torch.randn(8, 3), torch.randn(8, 1), 4, True)\n"
            "chunked_loss(model, torch.randn(8, 3), torch.randn(8, 1), 4, False).backward()",
        ),
        Valid(
            """
            import torch

            def train(model, optimizer, loader):
                total = 0.0
                for x, y in loader:
                    optimizer.zero_grad()
                    loss = torch.nn.functional.mse_loss(model(x), y)
                    loss.backward()
                    optimizer.step()
                    total += loss.item()
                return total / len(loader)
            """,
            note="accumulates a number",
        ),
        Valid(
            """
            import torch

            def train(model, optimizer, loader, k):
                total = 0
                for i, (x, y) in enumerate(loader):
                    loss = torch.nn.functional.mse_loss(model(x), y)
                    total += loss
                    if (i + 1) % k == 0:
                        total.backward()
                        optimizer.step()
                        optimizer.zero_grad()
                        total = 0
            """,
            note="the sum is backpropagated on purpose",
        ),
        Valid(
            """
            import torch

            def evaluate(model, loader):
                total = 0
                with torch.no_grad():
                    for x, y in loader:
                        loss = torch.nn.functional.mse_loss(model(x), y)
                        total += loss
                return total
            """,
            note="no graph under no_grad",
        ),
        Valid(
            """
            import torch


            def check_parity(ref_model, ref_optim, other_model, other_optim, inp, steps):
                for step in range(steps):
                    losses = []
                    for model, optim in ((ref_model, ref_optim), (other_model, other_optim)):
                        optim.zero_grad()
                        losses.append(model(inp).sum())
                        losses[-1].backward()
                        optim.step()
                    assert torch.allclose(losses[0], losses[1])
            """,
            run="""
            ref = torch.nn.Linear(4, 2)
            other = torch.nn.Linear(4, 2)
            other.load_state_dict(ref.state_dict())
            sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.1)
            check_parity(ref, sgd(ref), other, sgd(other), torch.randn(3, 4), 3)
            """,
            note="holdout5 torchao testing/training/fsdp2_utils.py: `losses = []` again every step, and the inner loop "
            "runs over a literal pair: two losses held at most, each backpropagated at once",
        ),
        Valid(
            """
            import torch


            def train_epoch(model, loss_fn, progress, loader):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                all_preds, all_targets = [], []
                for step, (x, y) in enumerate(progress(loader)):
                    logits = model(x)
                    loss = loss_fn(logits, y)
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                    all_preds.append(logits.argmax(dim=-1))
                    all_targets.append(y)
                return torch.cat(all_preds), torch.cat(all_targets)
            """,
            run="""
            loader = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(3)]
            preds, targets = train_epoch(torch.nn.Linear(4, 3), torch.nn.functional.cross_entropy, iter, loader)
            assert not preds.requires_grad and not targets.requires_grad
            """,
            note="dev14 textattack trainer.py: the labels handed out by a progress bar around the loader "
            "(`tqdm.tqdm(loader)`, an unknown call) reach the loss only as its target; they carry no graph",
        ),
        Valid(
            """
            # from cleanlab 2.9.0 cleanlab/experimental/coteaching.py (train)
            import torch


            def train(loader, model, optimizer, loss_fn, accuracy):
                train_correct = 0
                for images, labels in loader:
                    logits = model(images)
                    prec1, _ = accuracy(logits, labels, topk=(1, 2))
                    train_correct += prec1
                    loss = loss_fn(logits, labels)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                return train_correct
            """,
            run="""
            def accuracy(output, target, topk):
                pred = output.topk(max(topk), 1).indices.t()
                correct = pred.eq(target.view(1, -1))
                return [correct[:k].float().sum() * 100.0 / len(target) for k in topk]

            model = torch.nn.Linear(4, 3)
            loader = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(3)]
            sgd = torch.optim.SGD(model.parameters(), lr=0.1)
            total = train(loader, model, sgd, torch.nn.functional.cross_entropy, accuracy)
            assert not total.requires_grad
            """,
            note="dev15: the metric comes from a function the caller passes, which the backpropagated loss "
            "never goes through: whether it keeps the graph (a loss) or cuts it (topk, eq) is not known",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn


            class Trainer:
                def __init__(self, model, optimizer):
                    self.model = model
                    self.optimizer = optimizer

                def training_step(self, x, y):
                    loss = nn.functional.mse_loss(self.model(x), y)
                    loss.backward()
                    return loss.detach()

                def train(self, loader):
                    total = torch.tensor(0.0)
                    for x, y in loader:
                        total += self.training_step(x, y)
                        self.optimizer.step()
                        self.optimizer.zero_grad()
                    return total
            """,
            run="""
            model = nn.Linear(4, 1)
            trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1))
            total = trainer.train([(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(3)])
            assert total.grad_fn is None, "the total keeps every step's graph"
            """,
            note="the step returns its loss detached: the total is a plain tensor",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            running_loss = 0.0
            for step in range(20):
                x, y = torch.randn(16, 4), torch.randn(16, 1)
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                optimizer.step()
                running_loss += loss
            print(f"mean loss {running_loss / 20:.4f}")
            """,
            lines=[12],
            fixed="""
            import torch

            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            running_loss = 0.0
            for step in range(20):
                x, y = torch.randn(16, 4), torch.randn(16, 1)
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                optimizer.step()
                running_loss += loss.item()
            print(f"mean loss {running_loss / 20:.4f}")
            """,
            check_fixed="assert isinstance(running_loss, float)",
        ),
        Invalid(
            """
            import torch

            def train_epoch(model, optimizer, loader):
                epoch_loss = 0
                for x, y in loader:
                    optimizer.zero_grad()
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                    loss.backward()
                    optimizer.step()
                    epoch_loss += loss * x.size(0)
                return epoch_loss / len(loader.dataset)
            """,
            lines=[10],
            fixed="""
            import torch

            def train_epoch(model, optimizer, loader):
                epoch_loss = 0
                for x, y in loader:
                    optimizer.zero_grad()
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                    loss.backward()
                    optimizer.step()
                    epoch_loss += loss.item() * x.size(0)
                return epoch_loss / len(loader.dataset)
            """,
        ),
        Invalid(
            """
            import torch

            model = torch.nn.Linear(4, 2)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            totals = {"mse": 0.0, "l1": 0.0}
            for step in range(5):
                out = model(torch.randn(8, 4))
                losses = {"mse": out.pow(2).mean(), "l1": out.abs().mean()}
                optimizer.zero_grad()
                (losses["mse"] + losses["l1"]).backward()
                optimizer.step()
                for key in losses:
                    totals[key] += losses[key]
            print(totals)
            """,
            lines=[13],
            fixed="""
            import torch

            model = torch.nn.Linear(4, 2)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            totals = {"mse": 0.0, "l1": 0.0}
            for step in range(5):
                out = model(torch.randn(8, 4))
                losses = {"mse": out.pow(2).mean(), "l1": out.abs().mean()}
                optimizer.zero_grad()
                (losses["mse"] + losses["l1"]).backward()
                optimizer.step()
                for key in losses:
                    totals[key] += losses[key].item()
            print(totals)
            """,
            check_fixed="assert all(isinstance(v, float) for v in totals.values())",
            note="a dict of running totals (jokester-zzz/SSA-SC#2); the fix is safe: `totals` is only printed",
        ),
        Invalid(
            """
            import torch


            def train_epoch(model, progress, loader):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                all_preds, all_targets = [], []
                for step, (x, y) in enumerate(progress(loader)):
                    preds = model(x).squeeze(-1)
                    loss = torch.nn.functional.mse_loss(preds, y)
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                    all_preds.append(preds)
                    all_targets.append(y)
                return torch.cat(all_preds), torch.cat(all_targets)
            """,
            lines=[13],
            fixed="""
            import torch


            def train_epoch(model, progress, loader):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                all_preds, all_targets = [], []
                for step, (x, y) in enumerate(progress(loader)):
                    preds = model(x).squeeze(-1)
                    loss = torch.nn.functional.mse_loss(preds, y)
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                    all_preds.append(preds.detach())
                    all_targets.append(y)
                return torch.cat(all_preds), torch.cat(all_targets)
            """,
            run="""
            loader = [(torch.randn(8, 4), torch.randn(8)) for _ in range(3)]
            preds, targets = train_epoch(torch.nn.Linear(4, 1), iter, loader)
            preds.numpy(), targets.numpy()
            """,
            raises="Can't call numpy() on Tensor that requires grad",
            note="dev14 textattack trainer.py (regression): the predictions of a loop over a progress bar are kept "
            "with their graphs and the epoch's metric cannot read them; the labels beside them carry none",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn


            class Trainer:
                def __init__(self, model, optimizer):
                    self.model = model
                    self.optimizer = optimizer

                def training_step(self, x, y):
                    loss = nn.functional.mse_loss(self.model(x), y)
                    loss.backward()
                    return loss

                def train(self, loader):
                    total = torch.tensor(0.0)
                    for x, y in loader:
                        total += self.training_step(x, y)
                        self.optimizer.step()
                        self.optimizer.zero_grad()
                    return total
            """,
            lines=[18],
            fixed="""
            import torch
            import torch.nn as nn


            class Trainer:
                def __init__(self, model, optimizer):
                    self.model = model
                    self.optimizer = optimizer

                def training_step(self, x, y):
                    loss = nn.functional.mse_loss(self.model(x), y)
                    loss.backward()
                    return loss

                def train(self, loader):
                    total = torch.tensor(0.0)
                    for x, y in loader:
                        total += self.training_step(x, y).item()
                        self.optimizer.step()
                        self.optimizer.zero_grad()
                    return total
            """,
            raises="the total keeps every step's graph",
            run="""
            model = nn.Linear(4, 1)
            trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1))
            total = trainer.train([(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(3)])
            assert total.grad_fn is None, "the total keeps every step's graph"
            """,
            note="the loop calls no backward itself: a method backpropagates the loss and returns it "
            "(huggingface/transformers#6999)",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for func, flow in flows(unit, _ACCUMULATES):
            backwards = flow.events_of(BACKWARD)
            loops = {id(loop): loop for b in backwards if (loop := enclosing_loop(unit, b.node)) is not None}
            backpropagated = frozenset().union(*(b.value.names for b in backwards))
            roots = frozenset().union(*(b.value.sources for b in backwards))
            seen: set[ast.AST] = set()
            for loop in loops.values():
                for node in _statements(loop):
                    seen.add(node)
                    yield from self._accumulation(unit, flow, loop, node, backpropagated, roots, False)
            if func is None or backwards:
                continue
            for node in _loop_statements(unit, func):
                if node not in seen:
                    loop = enclosing_loop(unit, node)
                    yield from self._accumulation(unit, flow, loop, node, frozenset(), frozenset(), True)

    def _accumulation(
        self,
        unit: Unit,
        flow,
        loop,
        node: ast.stmt,
        backpropagated: frozenset,
        roots: frozenset,
        by_callee: bool,
    ) -> Iterator[Finding]:
        """A finding for `node` when it adds a value carrying a graph to a total kept across the loop's
        iterations. `by_callee` when the loop itself calls no `backward()`: then only a value
        a call of this loop returns after backpropagating it counts (`tr_loss += self.training_step(x)`)."""
        target: ast.expr
        added: ast.expr
        if isinstance(node, ast.AugAssign) and isinstance(node.op, (ast.Add, ast.Sub)):
            target, added = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and _self_sum(node):
            target, added = node.targets[0], _other_operand(node)
        elif isinstance(node, ast.Expr) and _is_append(node.value):
            target, added = node.value.func.value, node.value.args[0]  # type: ignore[attr-defined]
        else:
            return
        root = chain_root(target)
        if root is None or root in backpropagated or _reset_each_time(unit, loop, target, root):
            return
        value = flow.value_of(added)
        if not has_graph(value) or unit.in_no_grad(node):
            return
        if not _known_to_carry_a_graph(unit, flow, loop, node, added, value, roots, by_callee):
            return
        if isinstance(added, ast.Name) and _detached_after_every_backward(loop, added.id):
            # `if with_backward: loss.backward(); loss = loss.detach()`: the graph is kept only on
            # iterations that do not backpropagate (for the caller's loss)
            return
        yield self._finding(unit, flow, node, target, added, isinstance(added, ast.Call))

    def _finding(
        self, unit: Unit, flow, node: ast.stmt, target: ast.expr, added: ast.expr, call: bool
    ) -> Finding:
        total = dotted_name(target) or unit.segment(target)
        loss = added if call else _loss_name(added, flow)
        fix = None
        loss_text = unit.segment(loss) if loss is not None else ""
        if loss is not None:
            if isinstance(node, ast.Expr):
                fix = self.make_fix(
                    f"Append `{loss_text}.detach()`",
                    [replace_node(unit, loss, f"{loss_text}.detach()")],
                    None,
                )
            elif isinstance(node, (ast.AugAssign, ast.Assign)):
                applicability = None if _only_logged(unit, node, target) else Applicability.UNSAFE
                fix = self.make_fix(
                    f"Accumulate `{loss_text}.item()`",
                    [replace_node(unit, loss, f"{loss_text}.item()")],
                    applicability,
                )
        what = unit.segment(added) if loss is None else loss_text
        template = self.append_message if isinstance(node, ast.Expr) else self.message
        return self.finding(unit, node, template.format(target=total, loss=_short(what)), fix=fix)

    append_message = Message(
        "`{target}` collects `{loss}` with its autograd graph on every iteration\nEach iteration's graph stays "
        "in memory; append `{loss}.detach()` (or `.item()`) instead."
    )


def _known_to_carry_a_graph(
    unit: Unit, flow, loop, node, added, value, roots: frozenset, by_callee: bool
) -> bool:
    """The evidence that the added value carries a graph: in a loop that backpropagates, it is
    tracked and no unknown function made it; in one that does not (`by_callee`), a call of the loop
    returned it after a `backward()` through it."""
    if by_callee:
        return _backpropagated_by_a_call(flow, loop, added)
    return certainly_tracked(
        unit, value, _beyond_the_data(unit, flow, node, roots)
    ) and not _made_by_an_unknown_function(unit, flow, node, value, roots)


def _loop_statements(unit: Unit, func: ast.AST) -> Iterator[ast.stmt]:
    """The statements of `func`'s own loops (not of functions nested in it)."""
    for stmt in _statements(func):
        if enclosing_loop(unit, stmt) is not None:
            yield stmt


def _backpropagated_by_a_call(flow, loop: ast.AST, added: ast.expr) -> bool:
    """`added` is a tensor that a call made in this loop returned after a `backward()` through it
    (the call's result is stale: its graph was backpropagated, so it certainly has one), directly
    (`total += self.step(x)`) or through a name the loop binds to that call (`loss = step(x)`)."""
    if isinstance(added, ast.Name):
        calls = [
            stmt.value
            for stmt in _statements(loop)
            if isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == added.id
        ]
        if len(calls) != 1:
            return False
        added = calls[0]
    if not isinstance(added, ast.Call):
        return False
    value = flow.value_of(added)
    return bool(value.stale) and value.is_tensor


def _beyond_the_data(unit: Unit, flow, node: ast.AST, roots: frozenset) -> frozenset:
    """The unknown sources that a backpropagated loss reaching them shows to carry a graph, at
    `node`: without those of the data the enclosing `for` loops hand out, when the loss also reaches
    something else. `for x, y in tqdm(loader)` gives `x` and `y` the progress bar's call as their
    source; `loss_fn(model(x), y)` reaches it because the labels are its target, not because the
    labels carry a graph (the model explains the loss's graph). A loss that reaches nothing but the
    data (`for out in outputs_of(x)`) still counts it."""
    data = _loop_data(flow, unit, node)
    rest = roots - data
    return rest if rest and data & roots else roots


def _loop_data(flow, unit: Unit, node: ast.AST) -> frozenset:
    """The sources of what the `for` loops around `node` hand out (within its function)."""
    data: frozenset = frozenset()
    for anc in unit.ancestors(node):
        if isinstance(anc, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            break
        if isinstance(anc, (ast.For, ast.AsyncFor)):
            iterables = [anc.iter]
            while iterables:
                iterable = iterables.pop()
                data |= flow.value_of(iterable).sources
                if (
                    isinstance(iterable, ast.Call)
                    and isinstance(iterable.func, ast.Name)
                    and iterable.func.id in ("enumerate", "zip", "reversed", "iter")
                ):
                    iterables.extend(iterable.args)
    return data


def _made_by_an_unknown_function(unit: Unit, flow, node: ast.AST, value, roots: frozenset) -> bool:
    """An unknown function made the value (`prec, _ = accuracy(logits, y)`, with `accuracy` a callable
    the caller passes) and the backpropagated loss never went through it: whether it keeps the graph
    (a loss) or cuts it (a metric: `topk`, `argmax`, `eq`) is not known."""
    kinds = unit.semantics.source_kinds
    data = _loop_data(flow, unit, node)
    return any(kinds.get(s) == "opaque" and s not in roots and s not in data for s in value.sources)


def _detached_after_every_backward(loop: ast.AST, name: str) -> bool:
    """Every block of the loop that calls `backward()` then rebinds `name` to `name.detach()` (or
    `.item()`) after that call."""
    found = False
    for node in ast.walk(loop):
        for body in (getattr(node, "body", None), getattr(node, "orelse", None)):
            if not isinstance(body, list) or (node is loop and body is getattr(loop, "orelse", None)):
                continue
            calls = [i for i, stmt in enumerate(body) if _calls_backward(stmt)]
            if not calls:
                continue
            found = True
            if not any(_detaches(stmt, name) for stmt in body[calls[-1] + 1 :]):
                return False
    return found


def _calls_backward(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Attribute)
        and stmt.value.func.attr == "backward"
    )


def _detaches(stmt: ast.stmt, name: str) -> bool:
    return (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
        and stmt.targets[0].id == name
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Attribute)
        and stmt.value.func.attr in ("detach", "item")
        and isinstance(stmt.value.func.value, ast.Name)
        and stmt.value.func.value.id == name
    )


def _statements(loop: ast.AST) -> Iterator[ast.stmt]:
    """The statements of a loop body, nested blocks included, not nested functions/classes."""
    stack = list(reversed(getattr(loop, "body", [])))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.ExceptHandler):
            stack.extend(reversed(node.body))
            continue
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("handlers", "finalbody", "orelse", "body"):
            block = getattr(node, field, None)
            if isinstance(block, list):
                stack.extend(reversed(block))


def _self_sum(node: ast.Assign) -> bool:
    """`total = total + loss` / `total = loss + total`."""
    value = node.value
    if not isinstance(value, ast.BinOp) or not isinstance(value.op, ast.Add):
        return False
    text = _shape(node.targets[0])
    return _shape(value.left) == text or _shape(value.right) == text


def _shape(node: ast.AST) -> object:
    """A comparable form of a target/operand expression (`total`, `self.total`, `d[k]`),
    without `ast.dump` (its recursive closure leaves cyclic garbage behind)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return (_shape(node.value), node.attr)
    if isinstance(node, ast.Subscript):
        return (_shape(node.value), "[]", _shape(node.slice))
    if isinstance(node, ast.Constant):
        return repr(node.value)
    return id(node)  # anything else matches only itself


def _other_operand(node: ast.Assign) -> ast.expr:
    value = node.value
    assert isinstance(value, ast.BinOp)
    return value.right if _shape(value.left) == _shape(node.targets[0]) else value.left


def _is_append(expr: ast.expr) -> bool:
    return (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "append"
        and len(expr.args) == 1
        and not expr.keywords
    )


def _loss_name(added: ast.expr, flow) -> ast.Name | ast.Subscript | None:
    """The name (or the item of a dict or list, `losses[key]`) carrying the graph in `loss` /
    `loss * n` / `n * loss` / `loss / n`."""
    if isinstance(added, ast.Name):
        return added if has_graph(flow.value_of(added)) else None
    if (
        isinstance(added, ast.Subscript)
        and isinstance(added.value, ast.Name)
        and isinstance(added.slice, (ast.Name, ast.Constant))
    ):
        return added if has_graph(flow.value_of(added)) else None
    if isinstance(added, ast.BinOp) and isinstance(added.op, (ast.Mult, ast.Div, ast.Add, ast.Sub)):
        return _loss_name(added.left, flow) or _loss_name(added.right, flow)
    return None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."


def _reset_each_time(unit: Unit, loop: ast.AST, target: ast.AST, root: str) -> bool:
    """Is the target re-bound inside the loop, or inside an enclosing loop when the loops in between
    run over a literal tuple or list (a fixed few items)? torchao's `losses = []` at the top of each
    step, then `for model, optim in ((ref, ref_optim), (fsdp, fsdp_optim)): losses.append(...)`,
    holds two losses at most."""
    current: ast.AST | None = loop
    while current is not None:
        if _reset_in_loop(current, target, root):
            return True
        if not (isinstance(current, ast.For) and isinstance(current.iter, (ast.Tuple, ast.List))):
            return False
        current = enclosing_loop(unit, current)
    return False


def _reset_in_loop(loop: ast.AST, target: ast.AST, root: str) -> bool:
    """Is the target (or the container holding it) re-bound by a plain assignment inside the
    loop (so nothing accumulates across iterations)?"""
    wanted = {dotted_name(target), root} - {None}
    for node in ast.walk(loop):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            if isinstance(node, ast.Assign) and _self_sum(node):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(dotted_name(t) in wanted for t in _unpacked(targets)):
                return True
    return False


def _unpacked(targets: list[ast.expr]) -> Iterator[ast.expr]:
    """The single targets of assignment targets, through unpacking (`gates, penalty = [], 0`)."""
    stack = list(targets)
    while stack:
        target = stack.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            stack.extend(target.elts)
        elif isinstance(target, ast.Starred):
            stack.append(target.value)
        else:
            yield target


def _only_logged(unit: Unit, node: ast.AugAssign | ast.Assign, target: ast.expr) -> bool:
    """Is every other read of the target inside a print/logging call or an f-string? For an item
    of a container (`totals[key]`), every read of the container outside this statement."""
    scope = unit.enclosing_function(node)
    if isinstance(target, ast.Subscript):
        root = chain_root(target)
        inside = {id(n) for n in ast.walk(node)}
        reads = [r for r in _reads(unit, root) if id(r) not in inside] if root is not None else []
        return all(
            unit.enclosing_function(sub) is not scope or _in_logging_context(unit, sub) for sub in reads
        )
    for sub in _reads(unit, dotted_name(target) or unit.segment(target)):
        if unit.enclosing_function(sub) is scope and not _in_logging_context(unit, sub):
            return False
    return True


def _reads(unit: Unit, target: str) -> list[ast.AST]:
    """Loads of a name or dotted attribute chain in the unit (index cached on the unit)."""
    return unit.cache("gg405.reads", lambda: _index_reads(unit)).get(target, [])


def _index_reads(unit: Unit) -> dict[str, list[ast.AST]]:
    index: dict[str, list[ast.AST]] = {}
    for kind in (ast.Name, ast.Attribute):
        for sub in unit.nodes_of(kind):
            if isinstance(sub.ctx, ast.Load):  # type: ignore[attr-defined]
                dotted = dotted_name(sub)
                if dotted is not None:
                    index.setdefault(dotted, []).append(sub)
    return index


def _in_logging_context(unit: Unit, node: ast.AST) -> bool:
    current = node
    for parent in unit.ancestors(node):
        if isinstance(parent, (ast.FormattedValue, ast.JoinedStr)):
            return True
        if isinstance(parent, ast.Call):
            if current is parent.func:
                return False  # total.item(), total.backward(): needs a tensor
            func = parent.func
            name = callee_name(func) or ""
            if name in _LOGGING:
                return True
            return False
        if isinstance(parent, ast.Attribute):
            return False  # total.item / total.cpu ... uses the tensor
        if isinstance(parent, (ast.BinOp, ast.UnaryOp, ast.keyword, ast.Tuple, ast.List)):
            current = parent
            continue
        return False
    return False
