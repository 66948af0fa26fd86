"""GG202: `x[x < 0] = 0` on a tensor that autograd tracks."""

from __future__ import annotations

import ast
from typing import Iterator

from gradguard.engine.finding import Applicability, Finding, Severity
from gradguard.engine.fixes import masked_write_rewrite, replace_node
from gradguard.engine.index import ModuleContext, Unit
from gradguard.engine.inplace import OTHER, SAVED, callers_tensor, local_tensor, masked_writes, saved_op_text
from gradguard.engine.queries import calls_backward
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.values import INT, NO


class MaskedAssignment(Rule):
    code = "GG202"
    name = "masked-assignment"
    summary = "Masked in-place assignment (`x[x < 0] = 0`) on a tensor that autograd tracks."
    why = (
        "Writing in place into a tensor that autograd saved for backward, or into a leaf that requires grad, "
        "makes PyTorch raise; `torch.relu`, `clamp`, `masked_fill` or `torch.where` compute the same values "
        "out of place."
    )
    severity = Severity.ERROR
    message = Message(
        "In-place masked assignment to `{name}`; use an out-of-place `{suggestion}`"
    )  # docs only
    _SAVED = Message(
        "In-place masked assignment to `{name}`, the output of `{op}` saved for backward\n"
        'Backward raises "one of the variables needed for gradient computation has been modified by an '
        'inplace operation"; use an out-of-place `{suggestion}`.'
    )
    _SAVED_INPUT = Message(
        "In-place masked assignment to `{name}` after `{op}` saved it for backward\nBackward raises "
        '"one of the variables needed for gradient computation has been modified by an inplace operation"; '
        "use an out-of-place `{suggestion}`."
    )
    _INPUT = Message(
        "In-place masked assignment to `{name}`, an input of `forward`\nIt changes the caller's tensor, and "
        'raises "a leaf Variable that requires grad is being used in an in-place operation" when the input '
        "is a leaf that requires grad; use an out-of-place `{suggestion}`."
    )
    explanation = """
    `x[mask] = value` writes into `x` in place. The write itself is differentiable
    (masked entries get zero gradient), but in-place writes break autograd in two
    common cases, and PyTorch raises:

    * `x` is a leaf that requires grad (a parameter, or a tensor made with
      `requires_grad=True`): *"a leaf Variable that requires grad is being used in an
      in-place operation."*
    * `x` was saved for backward by the op that produced it (the output of `sigmoid`,
      `tanh`, `exp`, `softmax`, ...): backward raises *"one of the variables needed for
      gradient computation has been modified by an inplace operation"*.

    In `forward`, the write also changes the caller's tensor when `x` is the input.
    The out-of-place forms compute the same values and keep the graph intact:
    `torch.relu(x)` for `x[x < 0] = 0`, `x.clamp(min=t)` / `x.clamp(max=t)` for
    clipping at a threshold, and `x.masked_fill(mask, value)` or
    `torch.where(mask, value, x)` otherwise.

    Writing into a tensor you just allocated (`out = torch.zeros(...)` then
    `out[mask] = 1`) is fine and is not reported.

    **Fix safety.** Safe when the tensor was created in the same function and no other name
    holds it: rebinding the name to the out-of-place result changes nothing else. Unsafe when the
    tensor is an argument or may be held elsewhere: the caller's tensor is no longer modified.
    """
    fix_applicability = Applicability.SAFE

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def forward(self, x):
                    out = torch.zeros(x.shape[0], 4)
                    out[x[:, 0] > 0] = 1.0
                    t = x.clone()
                    t[t < 0] = 0
                    return out + torch.relu(x)
            """,
            note="writes into freshly allocated tensors",
        ),
        Valid(
            """
            import torch
            import numpy as np

            def preprocess(a):
                a[a < 0] = 0
                return a
            """,
            note="not in a module's forward, not a grad-tracked tensor",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def forward(self, x):
                    with torch.no_grad():
                        x[x < 0] = 0
                    return x
            """,
            note="under no_grad",
        ),
    ]
    VALID = VALID + [
        Valid(
            """
            import torch
            import torch.nn as nn

            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.proj = nn.Linear(8, 8)

                def forward(self, hidden_states, attention_mask):
                    expand_mask = attention_mask.unsqueeze(-1).repeat(1, 1, hidden_states.shape[2])
                    hidden_states[~expand_mask] = 0  # padded positions output 0
                    h = self.proj(hidden_states)
                    h[h < 0] = 0
                    return h
            """,
            note="a prepared mask on forward's input, and an intermediate no op saved: legal and differentiable",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 4)

                def forward(self, x, labels):
                    logits = self.fc(x)
                    labels[labels < 0] = 0
                    return F.cross_entropy(logits, labels)
            """,
            run="""
            labels = torch.tensor([1, -100, 3, 0])
            Classifier()(torch.randn(4, 8), labels).backward()
            assert labels.tolist() == [1, 0, 3, 0] and not labels.requires_grad
            """,
            note="`labels` is the class target of `F.cross_entropy`, so it holds integers and never requires grad "
            "(the `labels == -100` pattern of transformers' roc_bert modeling_roc_bert.py)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class SpinEmbedding(nn.Module):
                def __init__(self, size=8):
                    super().__init__()
                    self.lin_emb = nn.Linear(1, size)

                def forward(self, x):
                    x[x == 0] = -100  # null spin token
                    return self.lin_emb(x.unsqueeze(-1).float())
            """,
            run="""
            spin = torch.tensor([0, 2, 1])
            SpinEmbedding()(spin).sum().backward()
            assert spin.tolist() == [-100, 2, 1] and not spin.requires_grad
            """,
            note="dev7 fairchem-core uma/nn/embedding.py (`ChgSpinEmbedding`): an integer code replaced by another "
            "is the work of a tensor of discrete codes (a spin per system), which cannot require grad",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class ASRModel(nn.Module):
                def __init__(self, vocab_size=6, ignore_id: int = -1, eos=5):
                    super().__init__()
                    self.ignore_id = ignore_id
                    self.eos = eos
                    self.embed = nn.Embedding(vocab_size, 8)
                    self.out = nn.Linear(8, vocab_size)

                def encode(self, text_prev, code):
                    text_prev[text_prev == -1] = self.eos
                    code[code < 0] = 0
                    return self.embed(text_prev).mean(1) + self.embed(code).mean(1)

                def forward(self, text_prev, code, text):
                    text[text == -1] = self.ignore_id
                    logits = self.out(self.encode(text_prev, code))
                    return F.cross_entropy(logits, text[:, 0], ignore_index=self.ignore_id)
            """,
            run="""
            text = torch.tensor([[2, 3, -1], [1, -1, -1]])
            prev, code = torch.tensor([[1, -1], [4, 2]]), torch.tensor([[-1, 3], [0, 2]])
            ASRModel()(prev, code, text).backward()
            assert text.tolist() == [[2, 3, -1], [1, -1, -1]] and prev.tolist() == [[1, 5], [4, 2]]
            assert code.tolist() == [[0, 3], [0, 2]] and not text.requires_grad
            """,
            note="dev9 espnet espnet2/asr/espnet_model.py and s2t/espnet_ctc_model.py: a padding code replaced by "
            "an int held in a name (`self.ignore_id`), and tensors passed to an `nn.Embedding` after the write "
            "(the same tensor objects, so they held integer ids at the write too: no write changes a dtype); "
            "integer tensors cannot require grad",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class TinyLM(nn.Module):
                def __init__(self, vocab=10, dim=8):
                    super().__init__()
                    self.embed_tokens = nn.Embedding(vocab, dim)
                    self.head = nn.Linear(dim, vocab)

                def get_input_embeddings(self):
                    return self.embed_tokens

            class SpeechLLM(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.llm = TinyLM()
                    self.adaptor = nn.Linear(4, 8)

                def forward(self, speech, input_ids):
                    input_ids[input_ids < 0] = 0
                    inputs_embeds = self.llm.get_input_embeddings()(input_ids)
                    inputs_embeds = torch.cat([self.adaptor(speech), inputs_embeds], dim=1)
                    return self.llm.head(inputs_embeds)
            """,
            run="""
            ids = torch.tensor([[1, 2, 3], [4, -1, -1]])
            SpeechLLM()(torch.randn(2, 2, 4), ids).sum().backward()
            assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and not ids.requires_grad
            """,
            note="dev12 funasr models/llm_asr/model.py, fun_asr_nano/model.py: what transformers' "
            "`get_input_embeddings()` (the vocabulary's embedding) is called on are token ids, integers, "
            "which cannot require grad",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class SpeechInserter(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.adaptor = nn.Linear(4, 8)

                def forward(self, speech, inputs_embeds, fbank_beg, token_len):
                    encoder_out = self.adaptor(speech)
                    fbank_beg[fbank_beg < 0] = 0
                    for b in range(inputs_embeds.shape[0]):
                        beg = fbank_beg[b, 0].item()
                        if beg > 0:
                            n = token_len[b]
                            inputs_embeds[b, beg : beg + n, :] = encoder_out[b, :n, :]
                    return inputs_embeds
            """,
            run="""
            beg = torch.tensor([[1], [-1]], dtype=torch.int32)
            model = SpeechInserter()
            model(torch.randn(2, 3, 4), torch.zeros(2, 5, 8), beg, torch.tensor([2, 2])).sum().backward()
            assert beg.tolist() == [[1], [0]] and model.adaptor.weight.grad is not None
            try:
                torch.zeros(5)[1.0:3.0]
                raise AssertionError("a float slice bound was accepted")
            except TypeError as e:
                assert "slice indices must be integers" in str(e)
            """,
            note="dev12 funasr models/llm_asr/model.py, fun_asr_nano/model.py: an element of `fbank_beg` "
            "(`.item()`) starts a slice, which takes ints only, so the tensor holds integers",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class SpeechSplicer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.adaptor = nn.Linear(4, 8)

                def forward(self, speech, inputs_embeds, fbank_mask):
                    encoder_out = self.adaptor(speech)
                    fbank_mask[fbank_mask < 0] = 0  # collator padding (-1.0) out of the count
                    fake_lens = fbank_mask.sum(-1).to(torch.int32)
                    out = inputs_embeds.clone()
                    for b in range(out.shape[0]):
                        n = fake_lens[b].item()
                        out[b, :n] = encoder_out[b, :n]
                    return out
            """,
            run="""
            mask = torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, -1.0]])
            model = SpeechSplicer()
            model(torch.randn(2, 3, 4), torch.zeros(2, 3, 8), mask).sum().backward()
            assert mask.tolist() == [[1, 1, 0], [1, 0, 0]] and model.adaptor.weight.grad is not None
            assert not mask.sum(-1).to(torch.int32).requires_grad
            """,
            note="dev12 funasr 1.4.16 models/llm_asr/model.py (`fbank_mask`): a float input of `forward` whose "
            "every read ends in an integer cast, `.item()` or a size feeds counts only: no gradient could reach "
            "it, so it is the batch's data, not an activation passed in as a leaf that requires grad",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class ClippedSigmoid(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    y = torch.sigmoid(self.fc(x))
                    y[y < 0.5] = 0  # keep confident activations only
                    return y
            """,
            lines=[11],
            fixed="""
            import torch
            import torch.nn as nn

            class ClippedSigmoid(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    y = torch.sigmoid(self.fc(x))
                    y = y.masked_fill(y < 0.5, 0)  # keep confident activations only
                    return y
            """,
            raises="modified by an inplace operation",
            run="ClippedSigmoid()(torch.randn(8, 4)).sum().backward()",
            check_fixed="m = ClippedSigmoid(); m(torch.randn(8, 4)).sum().backward(); assert m.fc.weight.grad is not None",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Rectifier(nn.Module):
                def forward(self, x):
                    x[x < 0] = 0
                    return x * 2
            """,
            lines=[6],
            fixed="""
            import torch
            import torch.nn as nn

            class Rectifier(nn.Module):
                def forward(self, x):
                    x = torch.relu(x)
                    return x * 2
            """,
            raises="a leaf Variable that requires grad is being used in an in-place operation",
            run="Rectifier()(torch.randn(5, requires_grad=True)).sum().backward()",
            check_fixed="x = torch.randn(5, requires_grad=True); Rectifier()(x).sum().backward(); assert x.grad is not None",
        ),
        Invalid(
            """
            import torch
            from torch import nn

            class ReLU6(nn.Module):
                def forward(self, x):
                    y = torch.relu(x)
                    y[y > 6.0] = 6.0
                    return y
            """,
            lines=[7],
            fixed="""
            import torch
            from torch import nn

            class ReLU6(nn.Module):
                def forward(self, x):
                    y = torch.relu(x)
                    y = y.clamp(max=6.0)
                    return y
            """,
            raises="which is output 0 of Relu, is at version 1",
            run="ReLU6()(torch.randn(16, requires_grad=True) * 10).sum().backward()",
            check_fixed=(
                "x = torch.randn(16, requires_grad=True); (y := ReLU6()(x * 10)).sum().backward()\n"
                "assert x.grad is not None and float(y.max()) <= 6.0"
            ),
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        if ".backward(" not in text and not (
            isinstance(statement, ast.ClassDef) and module.is_module_class(statement.name)
        ):
            return False
        return "] =" in text or "]=" in text

    def check(self, unit: Unit) -> Iterator[Finding]:
        for write in masked_writes(unit):
            if write.masked is None:
                continue
            chosen = self._template(unit, write)
            if chosen is None:
                continue
            template, known = chosen
            target, name = write.masked
            statement = write.event.statement
            value = statement.value  # type: ignore[union-attr]
            value_is_tensor = write.event.args[0].is_tensor if write.event.args else False
            build, suggestion = masked_write_rewrite(unit, name, target.slice, value, value_is_tensor)
            applicability = Applicability.SAFE if local_tensor(write) else Applicability.UNSAFE
            fix = self.make_fix(
                f"Replace with `{suggestion}`",
                lambda n=statement, b=build: [replace_node(unit, n, b())],
                applicability,
            )
            message = template.format(name=name, suggestion=suggestion, **known)
            yield self.finding(unit, statement, message, fix=fix)

    def _template(self, unit: Unit, write) -> tuple[Message, dict[str, str]] | None:
        """The message variant when the write breaks autograd (or may), with the parameters known
        here (`op`), else None.

        Reported: a write into a tensor an op saved for backward (always raises at backward),
        and `x[x < t] = v` on `forward`'s own input (raises when the input requires grad, and
        changes the caller's tensor). A masked write into another tensor is legal and
        differentiable (GG205 suggests the out-of-place form)."""
        if write.kind == SAVED:
            if not write.in_forward and not calls_backward(write.flow):
                return None
            records = [r for r in write.event.saved if r.certain or (write.in_forward and r.role == "output")]
            if not records:
                return None
            op = saved_op_text(unit, records[0])
            return (self._SAVED if records[0].role == "output" else self._SAVED_INPUT), {"op": op}
        if (
            write.kind == OTHER
            and write.in_forward
            and write.event.nograd is None
            and write.value.grad != NO  # (an integer tensor, an index or class target, never requires grad)
            and callers_tensor(write)
            and not write.value.roots <= write.flow.integer_roots  # (the same tensor used as ids later)
        ):
            target, _ = write.masked
            if (
                isinstance(target.slice, ast.Compare)
                and not _code_remap(target.slice, write)
                and not _no_gradient_uses(write)
            ):
                return self._INPUT, {}
        return None


def _code_remap(mask: ast.Compare, write) -> bool:
    """`x[x == 0] = -100`, `text[text == -1] = self.ignore_id`: an integer code replaced by another
    integer (a null token, an ignore index), the work of a tensor of discrete codes (spins, charges,
    token ids), which never requires grad (fairchem-core uma/nn/embedding.py, espnet's models)."""
    if len(mask.ops) != 1 or not isinstance(mask.ops[0], (ast.Eq, ast.NotEq)):
        return False
    if not any(_int_constant(side) for side in (mask.left, mask.comparators[0])):
        return False
    value = write.event.args[0] if write.event.args else None
    return value is not None and value.kinds == INT  # (a literal, or a name known to hold an int)


def _int_constant(node: ast.expr | None) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int


# Ends of a chain of reads after which no gradient flows: a cast to an integer dtype, a Python number
# or list, a size (torch 2.13: their results never require grad).
_INTEGER_DTYPES = frozenset({"int64", "int32", "int16", "int8", "uint8", "long", "int", "short", "bool"})
_NUMBER_METHODS = frozenset(
    {"item", "tolist", "numel", "size", "dim", "long", "int", "short", "bool", "byte"}
)
_NUMBER_ATTRIBUTES = frozenset({"shape", "dtype", "device", "ndim"})


def _no_gradient_uses(write) -> bool:
    """Every read of the written input in the function, besides the write itself, ends where no
    gradient flows (`fbank_mask.sum(-1).to(torch.int32)`, `n = mask.sum().item()`): the tensor
    feeds counts and sizes only, so a gradient for it would always be None -- data (a padding mask
    of the batch, dev12 funasr llm_asr/model.py), not an activation whose input may be a leaf that
    requires grad. The name must not be rebound (a read would then be of another value)."""
    func, written = write.func, write.written
    if func is None or not isinstance(written, ast.Name):
        return False
    statement = write.event.statement
    parents = {child: node for node in ast.walk(func) for child in ast.iter_child_nodes(node)}
    own = {id(node) for node in ast.walk(statement)}
    reads = 0
    for node in ast.walk(func):
        if not isinstance(node, ast.Name) or node.id != written.id or id(node) in own:
            continue
        if not isinstance(node.ctx, ast.Load):
            return False  # rebound (or deleted)
        if not _ends_without_gradient(node, parents):
            return False
        reads += 1
    return reads > 0


def _ends_without_gradient(node: ast.expr, parents: dict) -> bool:
    """`node` is the receiver of a chain of method calls, attributes and subscripts whose last
    link gives a number, a size or an integer tensor."""
    while True:
        parent = parents.get(node)
        if isinstance(parent, ast.Subscript) and parent.value is node:
            node = parent
        elif isinstance(parent, ast.Attribute) and parent.value is node:
            if parent.attr in _NUMBER_ATTRIBUTES:
                return True
            call = parents.get(parent)
            if not (isinstance(call, ast.Call) and call.func is parent):
                return False
            if parent.attr in _NUMBER_METHODS or _integer_cast(parent.attr, call):
                return True
            node = call
        else:
            return False


def _integer_cast(method: str, call: ast.Call) -> bool:
    """`.to(torch.int32)`, `.type(torch.long)`, `.to(dtype=torch.int64)`."""
    if method not in ("to", "type"):
        return False
    dtypes = [*call.args, *(k.value for k in call.keywords if k.arg == "dtype")]
    return any(isinstance(d, ast.Attribute) and d.attr in _INTEGER_DTYPES for d in dtypes)
