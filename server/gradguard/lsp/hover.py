"""Short notes on what common autograd calls mean for gradient flow (hover text).

Every statement here is checked against torch 2.13 by tests/lsp/test_hover_notes.py.
"""

from __future__ import annotations

import re

NOTES: dict[str, str] = {
    "detach": (
        "**`tensor.detach()`** returns a tensor that shares storage with `tensor` but is cut "
        "from the autograd graph: it has `requires_grad=False` and no `grad_fn`, so no gradient "
        "flows back through it to whatever produced `tensor`. Use it for targets, logging and "
        "values you deliberately treat as constants (e.g. a GAN's `fake.detach()` for the "
        "discriminator step)."
    ),
    "no_grad": (
        "**`torch.no_grad()`** (as a context manager or decorator) stops autograd from recording: "
        "results computed inside have `requires_grad=False` even when their inputs require grad, "
        "so no gradient can flow through them. Right for evaluation and for in-place parameter "
        "updates; wrong around the forward pass you train on."
    ),
    "requires_grad": (
        "**`requires_grad`**: when `True`, autograd records the operations on the tensor so "
        "`backward()` can compute gradients for it. Tensors you create opt in with "
        "`requires_grad=True` (an `nn.Parameter` does by default); results of operations on such "
        "tensors require grad automatically (outside `no_grad`). The flag can only be changed on "
        "leaf tensors."
    ),
    "backward": (
        "**`loss.backward()`** computes the gradient of `loss` (a scalar, or pass `gradient=`) "
        "with respect to every leaf tensor that requires grad and *adds* it to their `.grad`. It "
        "frees the graph afterwards unless `retain_graph=True`. Gradients keep accumulating across "
        "calls until you zero them. (A `backward` method on an `nn.Module` is never called by "
        "autograd.)"
    ),
    "zero_grad": (
        "**`optimizer.zero_grad()`** / **`model.zero_grad()`** resets the parameters' `.grad` "
        "(to `None` by default, `set_to_none=True`) so that the next `backward()` does not add "
        "to the previous step's gradients. Call it once per optimisation step, before "
        "`backward()`; skipping it on purpose accumulates gradients over several batches."
    ),
    "step": (
        "**`optimizer.step()`** updates the parameters from their current `.grad`; parameters "
        "whose `.grad` is `None` are skipped. It does not compute gradients: call `backward()` "
        "first. (A learning-rate scheduler's `scheduler.step()` only changes the learning rate.)"
    ),
    "apply": (
        "**`MyFunction.apply(*inputs)`** runs a custom `torch.autograd.Function`: its `forward` "
        "runs without recording the operations inside, and the outputs are connected to the "
        "graph so that autograd calls your `backward` staticmethod. Call `.apply`, not `forward`. "
        "(`module.apply(fn)` on an `nn.Module` is different: it calls `fn` on every submodule, "
        "e.g. for weight initialisation.)"
    ),
    "save_for_backward": (
        "**`ctx.save_for_backward(*tensors)`** in a custom Function's `forward` keeps tensors "
        "for `backward`, which reads them back as `ctx.saved_tensors`. Autograd checks that they "
        'were not modified in place in between; if they were, backward raises "one of the '
        'variables needed for gradient computation has been modified by an inplace operation". '
        "Keep non-tensor values as attributes of `ctx`."
    ),
}

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def word_at(line: str, column: int) -> tuple[str, int, int] | None:
    """The identifier under a 0-based code-point column: (word, start, end)."""
    for match in _WORD.finditer(line):
        if match.start() <= column <= match.end():
            return match.group(), match.start(), match.end()
    return None


def note_for(line: str, column: int) -> tuple[str, int, int] | None:
    """The note for the autograd word under the cursor, when it is used as one: a method
    call (`x.detach()`), `requires_grad` as attribute or keyword, a `no_grad()` call."""
    found = word_at(line, column)
    if found is None:
        return None
    word, start, end = found
    note = NOTES.get(word)
    if note is None:
        return None
    before = line[:start].rstrip()
    after = line[end:].lstrip()
    is_attribute = before.endswith(".")
    is_call = after.startswith("(")
    if before.endswith(("def", "class")):
        return None
    if word == "requires_grad":
        # `x.requires_grad`, `requires_grad=True`
        if is_attribute or (after.startswith("=") and not after.startswith("==")):
            return note, start, end
        return None
    if word == "no_grad":
        return (note, start, end) if is_call else None
    # methods: `loss.backward()`, `opt.step()`, `Fn.apply(x)`... (not `self.step = 0`)
    if is_attribute and is_call:
        return note, start, end
    return None
