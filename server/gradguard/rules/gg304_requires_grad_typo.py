"""GG304: `require_grad`, `requires_grads`, `requiresGrad`, ... instead of `requires_grad`."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Applicability, Finding, TextEdit
from gradguard.engine.index import ModuleContext, Unit
from gradguard.engine.queries import unit_text
from gradguard.engine.rule import Invalid, Message, Rule, Valid

TYPOS = frozenset(
    {
        "require_grad",
        "require_grads",
        "requires_grads",
        "requiresGrad",
        "requireGrad",
        "required_grad",
        "required_grads",
        "requires_gradient",
        "require_gradient",
        "requires_grade",
        "reqires_grad",
        "requries_grad",
        "requires_gard",
    }
)
_TYPO_TEXT = re.compile("|".join(sorted(TYPOS)))
# methods of tensors that take `requires_grad=` (new_zeros, new_full, ...)
_TENSOR_METHODS = torch_facts.tensor_creating_methods()


class RequiresGradTypo(Rule):
    code = "GG304"
    triggers = ("req",)  # every typo starts with it; `may_fire` then runs its own pre-check
    name = "requires-grad-typo"
    summary = "Misspelled `requires_grad` (`require_grad`, `requires_grads`, `requiresGrad`, ...)."
    why = (
        "A misspelled `requires_grad` either silently creates a new attribute (the real flag does not change)"
        " or raises a `TypeError` or `AttributeError`."
    )
    message = Message("`{typo}` is not `requires_grad`")
    explanation = """
    The attribute and keyword are spelled `requires_grad`. A misspelling fails in
    different ways:

    * Assigning it (`p.require_grad = False`) silently creates a new Python attribute
      on the tensor. `p.requires_grad` is unchanged: a layer you meant to freeze keeps
      training (or one you meant to train stays frozen).
    * Reading it (`if p.requiresGrad:`) raises
      *"AttributeError: 'Tensor' object has no attribute 'requiresGrad'"*.
    * As a keyword of a torch function it raises a `TypeError`, e.g.
      *"zeros() got an unexpected keyword argument 'requires_grads'"* or
      *"randn() received an invalid combination of arguments"*.

    The fix renames it to `requires_grad`.

    **Fix safety.** Safe: the misspelt attribute did nothing; the renamed one freezes or unfreezes
    the tensor as the line meant.
    """
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(4, 2)
            for p in model.parameters():
                p.requires_grad = False
            w = torch.zeros(3, requires_grad=True)
            model.weight.requires_grad_(True)
            """,
        ),
        Valid(
            """
            import torch

            class Config:
                def __init__(self, require_grad=False):
                    self.require_grad = require_grad

            def build(require_grad=True):
                return Config(require_grad=require_grad)
            """,
            note="a project's own names that happen to look like the typo",
        ),
        Valid(
            """
            import torch

            class Wrapped(torch.Tensor):
                @staticmethod
                def __new__(cls, data):
                    return torch.Tensor._make_subclass(cls, data, require_grad=data.requires_grad)

            t = torch.zeros(2, requires_grad=True)
            if t.requires_grad and t.grad is None:
                t.requires_grad_(False)
            """,
            note="torch's private `_make_subclass` really spells it `require_grad`",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn as nn

            model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
            for p in model[0].parameters():
                p.require_grad = False  # freeze the first layer
            """,
            lines=[5],
            fixed="""
            import torch.nn as nn

            model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
            for p in model[0].parameters():
                p.requires_grad = False  # freeze the first layer
            """,
            check_fixed="assert not model[0].weight.requires_grad and model[2].weight.requires_grad",
        ),
        Invalid(
            """
            import torch

            w = torch.zeros(3, requires_grads=True)
            b = torch.randn(1, require_grad=True)
            """,
            lines=[3, 4],
            fixed="""
            import torch

            w = torch.zeros(3, requires_grad=True)
            b = torch.randn(1, requires_grad=True)
            """,
            raises="unexpected keyword argument 'requires_grads'",
            check_fixed="assert w.requires_grad and b.requires_grad",
        ),
        Invalid(
            """
            import torch

            def trainable(tensors):
                return [t for t in tensors if t.requiresGrad]
            """,
            lines=[4],
            fixed="""
            import torch

            def trainable(tensors):
                return [t for t in tensors if t.requires_grad]
            """,
            raises="'Tensor' object has no attribute 'requiresGrad'",
            run="trainable([torch.zeros(1, requires_grad=True)])",
            check_fixed="assert len(trainable([torch.zeros(1, requires_grad=True), torch.zeros(1)])) == 1",
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        return _TYPO_TEXT.search(text) is not None

    def check(self, unit: Unit) -> Iterator[Finding]:
        if not _TYPO_TEXT.search(unit_text(unit)):
            return
        module = unit.module
        for node in unit.nodes_of(ast.Attribute):
            assert isinstance(node, ast.Attribute)
            if node.attr not in TYPOS:
                continue
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue  # an attribute of the project's own object
            if module.qualname(node) is not None and isinstance(base, ast.Name) and base.id in module.aliases:
                continue  # `torch.xyz`-style module attribute, not a tensor
            _, _, end_line, end_col = unit.node_range(node)
            start_col = end_col - len(node.attr)
            edit = TextEdit(end_line, start_col, end_line, end_col, "requires_grad")
            yield self._report(unit, node, node.attr, edit)
        for call in unit.calls():
            if not call.keywords or not _takes_requires_grad(call, module):
                continue
            for kw in call.keywords:
                if kw.arg in TYPOS:
                    yield self._report(unit, kw, kw.arg, _keyword_edit(unit, kw))

    def _report(self, unit: Unit, node: ast.AST, typo: str, edit: TextEdit | None) -> Finding:
        fix = self.make_fix("Rename to `requires_grad`", [edit]) if edit is not None else None
        return self.finding(unit, node, f"`{typo}` is a misspelling of `requires_grad`", fix=fix)


def _takes_requires_grad(call: ast.Call, module) -> bool:
    name = module.call_name(call)
    if name is not None:
        # private APIs have their own spelling (`Tensor._make_subclass(cls, data, require_grad=...)`)
        return name.startswith("torch.") and "._" not in name
    func = call.func
    return isinstance(func, ast.Attribute) and func.attr in _TENSOR_METHODS


def _keyword_edit(unit: Unit, kw: ast.keyword) -> TextEdit | None:
    line, col, _, _ = unit.node_range(kw)
    text = unit.source.line_text(line)
    start = col - 1
    if text[start : start + len(kw.arg or "")] != kw.arg:
        return None
    return TextEdit(line, col, line, col + len(kw.arg or ""), "requires_grad")
