"""GG305: `torch.tensor(...)` built from tensors that autograd tracks."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Applicability, Finding
from gradguard.engine.fixes import replace_node, torch_name
from gradguard.engine.index import Unit, is_true, keyword
from gradguard.engine.interpreter import DTYPES, REWRAP_CALL
from gradguard.engine.queries import describe, flows
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.values import (
    BOOL,
    BUFFER,
    FLOAT,
    INT,
    LIST,
    NONE,
    PARAMETER,
    TENSOR,
    TUPLE,
    YES,
    element_of,
)

_SINGLE = torch_facts.REWRAPS_A_TENSOR  # torch.as_tensor(t) / torch.Tensor(t) return t itself (graph kept)
_LOGGING_CALLS = torch_facts.LOGGING_BUILTINS
_LOGGING_METHODS = torch_facts.LOGGING_METHODS
_CUT_METHODS = torch_facts.graph_cutting_methods()
_REWRAP_TEXT = "ensor("
_ATOMS = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)


class TensorRewrap(Rule):
    code = "GG305"
    triggers = ("tensor(", "Tensor(")  # its own pre-check
    name = "tensor-rewrap"
    summary = "`torch.tensor(...)` copies tensors that autograd tracks into a new tensor without history."
    why = (
        "`torch.tensor(...)` copies its data into a new leaf tensor without history, so no gradient flows "
        "back through the copy to the tensors it was made from."
    )
    message = Message("`{call}` copies tracked tensors into a new tensor that does not require grad")
    explanation = """
    `torch.tensor(data)` always copies `data` into a brand-new leaf tensor with
    `requires_grad=False`. When `data` is a tensor (or a list of tensors) computed from
    the model, the copy has no `grad_fn`: gradients do not flow back through it. PyTorch
    only warns (*"To copy construct from a tensor, it is recommended to use
    sourceTensor.detach().clone()..."*, or *"Converting a tensor with requires_grad=True to
    a scalar may lead to unexpected behavior"* for a list), and a loss built from the copy
    makes `.backward()` raise *"element 0 of tensors does not require grad and does not
    have a grad_fn"* — or, when other terms are tracked, silently drops this one.
    `torch.as_tensor([...])` and `torch.Tensor([...])` copy a list the same way.

    Keep the graph: `torch.stack(list_of_tensors)` (or `torch.cat`) instead of
    `torch.tensor(list_of_tensors)`, and `t.clone()` (or just `t`) instead of
    `torch.tensor(t)`. If you do want a constant copy, say so with
    `t.detach().clone()`. Lists of Python numbers, shapes and `.item()` values are fine
    and not reported.

    **Fix safety.** Unsafe: `torch.stack([...])` / `.clone()` keep the graph, so gradients now
    flow into the copied values (that is the fix) and the result keeps the tensors' dtype and device
    instead of `torch.tensor`'s defaults. Offered only where the argument is certainly a tensor, or a
    list whose items are tensors or numbers (a `requires_grad=True` argument is dropped: the stacked
    tensors already require grad).
    """
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import torch

            weights = torch.tensor([0.1, 0.2, 0.7])
            shape = torch.tensor(weights.shape)
            idx = torch.as_tensor([0, 2])

            def summarize(model, batches):
                losses = []
                for x, y in batches:
                    losses.append(torch.nn.functional.mse_loss(model(x), y).item())
                return torch.tensor(losses).mean()
            """,
            note="lists of Python numbers and .item() values",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            net = nn.Linear(4, 1)
            outs = [net(torch.randn(2, 4)).sum() for _ in range(3)]
            print(torch.tensor(outs).mean().item())
            with torch.no_grad():
                snapshot = torch.tensor([o for o in outs])
            stacked = torch.stack(outs)
            same = torch.as_tensor(stacked)
            """,
            note="logging, no_grad, stack, as_tensor of one tensor",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Sampler(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.scores = nn.Linear(8, 4)

                def forward(self, x, ids):
                    logits = self.scores(x)
                    picks = torch.tensor([logits.argmax(1)[0], logits.argmax(1)[-1]], dtype=torch.long)
                    ids_tensor = torch.tensor(ids)
                    size = torch.tensor(x.shape[-1])
                    return logits.index_select(1, picks), ids_tensor, size
            """,
            note="integer indices, plain inputs and shapes",
        ),
        Valid(
            """
            import torch

            import torch.nn as nn
            from timm.models import unwrap_model

            class Distill(nn.Module):
                def __init__(self, student_model: nn.Module):
                    super().__init__()
                    self.student = student_model
                    student = unwrap_model(student_model)
                    mean = torch.tensor(student.pretrained_cfg["mean"]).view(1, -1, 1, 1)
                    std = torch.tensor(student.pretrained_cfg["std"]).view(1, -1, 1, 1)
                    self.register_buffer("mean", mean, persistent=False)
                    self.register_buffer("std", std, persistent=False)
            """,
            note="a str-keyed item of a model's attribute (a config list of numbers), not known to be a "
            "tensor (timm task/distillation.py)",
        ),
        Valid(
            """
            import logging

            import torch


            def compare(model_a, model_b):
                flat_a = torch.cat([p.flatten() for p in model_a.parameters()])
                flat_b = torch.cat([p.flatten() for p in model_b.parameters()])
                diff = torch.tensor([(a - b).norm() for (a, b) in zip(flat_a, flat_b)])
                logging.info(f"Max difference between the parameters = {max(diff)}")
                assert torch.allclose(flat_a, flat_b, atol=1e-3), "parameters differ"
            """,
            note="a copy only logged and asserted on: nothing backpropagates through it (opacus "
            "tests/grad_sample_module_fast_gradient_clipping_test.py)",
            run="""
            model = torch.nn.Linear(3, 2)
            compare(model, model)
            """,
        ),
        Valid(
            """
            import functools

            import torch
            import torch.nn as nn

            to_numpy = functools.partial(torch.Tensor.numpy, force=True)  # detaches, moves to the CPU


            # a keypoint head that logs an error metric next to its loss (mmpose
            # regression_heads/temporal_regression_head.py): the metric is computed in numpy
            class RegressionHead(nn.Module):
                def __init__(self, dim, keypoints):
                    super().__init__()
                    self.fc = nn.Linear(dim, keypoints * 2)
                    self.keypoints = keypoints

                def loss(self, feats, labels):
                    pred = self.fc(feats).reshape(-1, self.keypoints, 2)
                    losses = {"loss_kpt": nn.functional.l1_loss(pred, labels)}
                    err = (to_numpy(pred) - to_numpy(labels)).mean()
                    losses["mean_error"] = torch.tensor(err, device=labels.device)
                    return losses
            """,
            note="a value computed from what a helper named for converting to numpy (`to_numpy`: "
            "`.detach().cpu().numpy()`) returns: a numpy array, which autograd never tracked",
            run="""
            import numpy as np
            head = RegressionHead(8, 5)
            losses = head.loss(torch.randn(4, 8), torch.rand(4, 5, 2))
            assert isinstance(to_numpy(losses["loss_kpt"]), np.ndarray)
            assert not losses["mean_error"].requires_grad
            losses["loss_kpt"].backward()
            assert head.fc.weight.grad is not None
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn


            def save_shapes(model: nn.Module, make_grouper):
                for name, p in list(model.named_parameters(recurse=False)):
                    grouper = make_grouper(p)
                    model.register_buffer(f"{name}_orig_shape", torch.tensor(grouper.orig_shape))
            """,
            note="a `*_shape` attribute of an object whose class is not seen holds a `torch.Size`, integers "
            "with no graph (torchao prototype/pat/utils.py: `grouper.orig_shape = p.shape`)",
            run="""
            class Grouper:
                def __init__(self, p):
                    self.orig_shape = p.shape

            layer = nn.Linear(4, 6)
            save_shapes(layer, Grouper)
            assert layer.weight_orig_shape.dtype == torch.int64
            assert torch.Size(layer.weight_orig_shape.tolist()) == layer.weight.shape
            """,
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class MultiHead(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.heads = nn.ModuleList([nn.Linear(4, 1) for _ in range(3)])

                def forward(self, x):
                    scores = [head(x).sum() for head in self.heads]
                    return torch.tensor(scores)
            """,
            lines=[11],
            fixed="""
            import torch
            import torch.nn as nn

            class MultiHead(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.heads = nn.ModuleList([nn.Linear(4, 1) for _ in range(3)])

                def forward(self, x):
                    scores = [head(x).sum() for head in self.heads]
                    return torch.stack(scores)
            """,
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            run="m = MultiHead(); m(torch.randn(2, 4)).sum().backward()",
            check_fixed="assert all(h.weight.grad is not None for h in m.heads)",
        ),
        Invalid(
            """
            import torch

            w = torch.randn(3, requires_grad=True)
            x = torch.randn(3)
            y = torch.tensor(w * x)
            loss = y.sum()
            loss.backward()
            """,
            lines=[5],
            fixed="""
            import torch

            w = torch.randn(3, requires_grad=True)
            x = torch.randn(3)
            y = (w * x).clone()
            loss = y.sum()
            loss.backward()
            """,
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            check_fixed="assert w.grad is not None",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(5, 1)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            losses = []
            for _ in range(4):
                x, y = torch.randn(8, 5), torch.randn(8, 1)
                losses.append(nn.functional.mse_loss(model(x), y))
            total = torch.tensor([losses[0], losses[1]]).sum() + torch.tensor(losses).mean()
            total.backward()
            opt.step()
            """,
            lines=[10, 10],
            fixed="""
            import torch
            import torch.nn as nn

            model = nn.Linear(5, 1)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            losses = []
            for _ in range(4):
                x, y = torch.randn(8, 5), torch.randn(8, 1)
                losses.append(nn.functional.mse_loss(model(x), y))
            total = torch.stack([losses[0], losses[1]]).sum() + torch.stack(losses).mean()
            total.backward()
            opt.step()
            """,
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            check_fixed="assert model.weight.grad is not None",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            net = nn.Linear(4, 4)
            crit = nn.L1Loss()
            x, t = torch.randn(2, 4), torch.randn(2, 4)
            outs = [net(x), net(x) + x]
            loss = torch.tensor([crit(o, t) for o in outs], requires_grad=True).sum()
            loss.backward()
            assert net.weight.grad is not None, "no gradient reaches the network"
            """,
            lines=[8],
            fixed="""
            import torch
            import torch.nn as nn

            net = nn.Linear(4, 4)
            crit = nn.L1Loss()
            x, t = torch.randn(2, 4), torch.randn(2, 4)
            outs = [net(x), net(x) + x]
            loss = torch.stack([crit(o, t) for o in outs]).sum()
            loss.backward()
            assert net.weight.grad is not None, "no gradient reaches the network"
            """,
            raises="no gradient reaches the network",
            note="`requires_grad=True` makes a new leaf: the loss runs but the network learns nothing "
            "(MC-E/Deep-Generalized-Unfolding-Networks-for-Image-Restoration#6)",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        semantics = unit.semantics
        for func, flow in flows(unit, _REWRAP_TEXT):
            for event in flow.events_of(REWRAP_CALL):
                call = event.node
                if event.nograd is not None or len(call.args) != 1 or _only_logged(unit, call):
                    continue
                if _copy_only_inspected(unit, call):
                    continue  # `diff = torch.tensor([...])` only logged or asserted on: nothing to lose
                if _integer_dtype(unit, call):
                    continue  # indices: an integer tensor cannot carry a gradient anyway
                data = event.value
                arg = call.args[0]
                listy = data.is_only(LIST | TUPLE) or isinstance(arg, (ast.List, ast.Tuple, ast.ListComp))
                qual = unit.module.call_name(call)
                if not listy and qual not in _SINGLE:
                    continue  # torch.as_tensor(t) / torch.Tensor(t) return t itself (graph kept)
                if listy and data.items:
                    live = any(_live(semantics, item) for item in data.items)
                else:
                    live = _live(semantics, element_of(data) if listy else data)
                if not live:
                    continue
                fix = self._fix(unit, flow, call, arg, data, listy)
                what = "tracked tensors" if listy else f"`{describe(unit, arg)}`, which autograd tracks,"
                message = (
                    f"`{describe(unit, call)}` copies {what} into an untracked tensor\nThe new tensor "
                    "does not require grad: no gradient flows back through it."
                )
                yield self.finding(unit, call, message, fix=fix)

    def _fix(self, unit: Unit, flow, call: ast.Call, arg: ast.expr, data, listy: bool):
        torch = torch_name(unit)
        # `requires_grad=True` is what the stacked tensors already give; any other keyword stops the fix
        if not torch or any(k.arg != "requires_grad" or not is_true(k.value) for k in call.keywords):
            return None
        if listy:
            if not isinstance(arg, (ast.List, ast.Tuple)):
                item = element_of(data)
                # None items (a loss attribute not yet set) fail in torch.stack as in torch.tensor
                if not (item.is_only(TENSOR | PARAMETER | BUFFER | NONE) and item.may_be(TENSOR | PARAMETER)):
                    return None
                return self.make_fix(
                    "Use `torch.stack(...)`, which keeps the graph",
                    [replace_node(unit, call, f"{torch}.stack({unit.segment(arg)})")],
                )
            parts = []
            for element in arg.elts:
                value = flow.value_of(element)
                if value.is_tensor:
                    parts.append(unit.segment(element))
                elif value.is_only(INT | FLOAT | BOOL):
                    parts.append(f"{torch}.tensor({unit.segment(element)})")
                else:
                    return None  # neither a tensor nor a number: leave it to a human
            opening, closing = ("[", "]") if isinstance(arg, ast.List) else ("(", ")")
            new = f"{torch}.stack({opening}{', '.join(parts)}{',' if closing == ')' and len(parts) == 1 else ''}{closing})"
            return self.make_fix(
                "Use `torch.stack(...)`, which keeps the graph", [replace_node(unit, call, new)]
            )
        if not data.is_tensor:
            return None
        text = unit.segment(arg)
        if not isinstance(arg, _ATOMS):
            text = f"({text})"
        return self.make_fix(
            "Use `.clone()`, which keeps the graph", [replace_node(unit, call, f"{text}.clone()")]
        )


def _live(semantics, value) -> bool:
    """Demonstrably tracked: it requires grad, or reaches a parameter, module or leaf (not only
    an unknown call)."""
    if not value.kinds & (TENSOR | PARAMETER | BUFFER):
        return False
    if value.grad == YES:
        return True
    if not value.is_only(TENSOR | PARAMETER | BUFFER | NONE):
        # an attribute or a str-keyed item of a model or an unknown object
        # (`model.pretrained_cfg["mean"]`) may be a list of numbers: not known to be a tensor
        return False
    return any(semantics.source_kinds.get(s) != "opaque" for s in value.sources)


def _integer_dtype(unit: Unit, call: ast.Call) -> bool:
    dtype = keyword(call, "dtype")
    qual = unit.module.qualname(dtype) if dtype is not None else None
    return qual is not None and DTYPES.get(qual, "float32") in (
        "int64",
        "int32",
        "int16",
        "int8",
        "uint8",
        "bool",
    )


def _only_logged(unit: Unit, call: ast.Call) -> bool:
    """`torch.tensor(losses).mean().item()`, `print(torch.tensor(xs))`: a value for logging."""
    node: ast.AST = call
    for parent in unit.ancestors(call):
        if isinstance(parent, ast.stmt):
            return False
        if isinstance(parent, ast.Attribute) and parent.attr in _CUT_METHODS:
            return True
        if isinstance(parent, ast.Call) and node in parent.args and _logging_call(parent):
            return True
        node = parent
    return False


def _logging_call(call: ast.Call) -> bool:
    if isinstance(call.func, ast.Name):
        return call.func.id in _LOGGING_CALLS
    return isinstance(call.func, ast.Attribute) and call.func.attr in _LOGGING_METHODS


def _copy_only_inspected(unit: Unit, call: ast.AST) -> bool:
    """`diff = torch.tensor([...])` in a function whose every read of `diff` only inspects it: in
    an `assert`, an f-string, a comparison, a logging call or under `.item()` / `.detach()`.
    Nothing backpropagates through such a copy (it reaches no loss, `return` or model call), so
    the history it lacks loses nothing."""
    statement = unit.parent(call)
    if not (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
    ):
        return False
    func = unit.enclosing_function(call)
    if func is None:
        return False  # a script's name may be read by the file's functions too
    name = statement.targets[0].id
    for node in ast.walk(func):
        if isinstance(node, (ast.Global, ast.Nonlocal)) and name in node.names:
            return False
        read = isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load)
        if read and not _inspected(unit, node):  # type: ignore[arg-type]
            return False
    return True


def _inspected(unit: Unit, read: ast.Name) -> bool:
    """The value read here ends in a check or a message, never in a tensor op's result."""
    node: ast.AST = read
    for parent in unit.ancestors(read):
        if isinstance(parent, (ast.Assert, ast.JoinedStr, ast.Compare)):
            return True
        if isinstance(parent, ast.Attribute) and parent.attr in _CUT_METHODS:
            return True
        if isinstance(parent, ast.Call) and node in parent.args and _logging_call(parent):
            return True
        if isinstance(parent, ast.stmt):
            return False
        node = parent
    return False
