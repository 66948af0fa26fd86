"""GG204: in-place write into the output of an op that saved that output for backward."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Applicability, Finding, Severity
from gradguard.engine.fixes import insert_before_statement, replace_node
from gradguard.engine.index import ModuleContext, Unit, self_name
from gradguard.engine.inplace import MULTI_VIEW, SAVED, local_tensor, saved_op_text, writes
from gradguard.engine.queries import calls_backward, describe
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.rule_helpers import AUGMENTED_OPERATORS
from gradguard.engine.values import ANY, CONTAINER, NO, TENSOR

# in-place method -> out-of-place method with the same arguments
_OUT_OF_PLACE = {name: torch_facts.out_of_place(name) for name in torch_facts.INPLACE_WITH_TWIN}
_AUG_OPS = AUGMENTED_OPERATORS
_ATOMS = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)
# an in-place method call, an augmented assignment, or an item assignment
_INPLACE_TEXT = re.compile(r"[a-z]_\s*\(|[-+*/@%]=|\]\s*=[^=]")


class InplaceOnSavedOutput(Rule):
    code = "GG204"
    name = "inplace-on-saved-output"
    summary = (
        "In-place op on the output of `sigmoid`/`tanh`/`exp`/`softmax`/`relu`/..., which backward needs."
    )
    why = (
        "An op that saved a tensor for backward (the output of `sigmoid`, `tanh`, `exp`, `softmax`, ...) "
        'needs it unchanged: modifying it in place makes backward raise "one of the variables needed for '
        'gradient computation has been modified by an inplace operation".'
    )
    severity = Severity.ERROR
    message = Message("In-place write into `{name}`, the output of `{op}` that backward needs")
    explanation = """
    Some ops compute their gradient from their own *output*, so autograd saves the
    output tensor: `sigmoid`, `tanh`, `exp`, `exp2`, `expm1`, `relu`, `softmax`,
    `log_softmax`, `sqrt`, `rsqrt`, `reciprocal` (checked with torch 2.13). Writing into
    that tensor in place — `y.mul_(2)`, `y += 1`, `y[:, 0] = 0`, `y.clamp_(...)` — bumps
    its version counter, and backward refuses to use the modified value:
    *"one of the variables needed for gradient computation has been modified by an
    inplace operation: [...], which is output 0 of Sigmoid, is at version 1; expected
    version 0 instead."*

    Use the out-of-place form (`y = y.mul(2)`, `y = y + 1`, `torch.where(...)`,
    `y.masked_fill(...)`), or `.clone()` the output before writing into it. Ops that save
    their input rather than their output (`gelu`, `silu`, `elu`, `leaky_relu`, `sin`,
    `log`, ...) do not have this problem. Code that never calls backward is not reported;
    neither are writes under `torch.no_grad()` (they still bump the version counter and
    break a later backward through that output, but no-grad writes are usually deliberate
    updates of tensors outside the graph). Masked assignments `y[y < t] = v` inside `forward`
    are reported by GG202. In `forward`, such an output is taken to require grad unless its
    input is a tensor cut from the graph (`.detach()`) scaled by a module attribute of
    unknown type, which is taken as a number (a temperature given to the constructor).

    **Fix safety.** Unsafe: the out-of-place form (or, for an index write `b[i] = v`, writing into
    `b = b.clone()`) binds a new tensor, so other names (and the caller) that held the old one no
    longer see the change, and it costs one more allocation (a copy per iteration in a loop).
    """
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            # forward takes a list of tensors (the previous columns' outputs) and replaces its items:
            # no tensor is written in place (avalanche models/pnn.py, MLPAdapter)
            class Adapter(nn.Module):
                def __init__(self, in_features, out_features, num_prev):
                    super().__init__()
                    self.V = nn.Linear(in_features * num_prev, out_features)
                    self.alphas = nn.Parameter(torch.randn(num_prev))

                def forward(self, x):
                    for i, el in enumerate(x):
                        x[i] = self.alphas[i] * el
                    x = torch.cat(x, dim=1)
                    return self.V(x)
            """,
            note="a forward argument joined whole by torch.cat is a list of tensors: `x[i] = ...` replaces an item",
            run="""
            adapter = Adapter(4, 3, 2)
            adapter([torch.randn(5, 4), torch.randn(5, 4)]).sum().backward()
            assert adapter.alphas.grad is not None
            """,
        ),
        Valid(
            """
            import types
            from typing import Dict

            import torch
            import torch.nn as nn

            keys = types.SimpleNamespace(ATOM="atom_types", ATTRS="node_attrs", Type=Dict[str, torch.Tensor])

            class Embed(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.embed = nn.Embedding(5, 3)

                def forward(self, data: keys.Type) -> keys.Type:
                    atom_types = data[keys.ATOM].view(-1)
                    data[keys.ATTRS] = self.embed(atom_types)
                    return data
            """,
            # nequip nn/embedding/node.py: `data: AtomicDataDict.Type` (`Dict[str, torch.Tensor]`)
            run="""
            model = Embed()
            out = model({keys.ATOM: torch.tensor([[0], [3], [1]])})
            out[keys.ATTRS].sum().backward()
            assert model.embed.weight.grad.sum() == 9
            """,
            note="a `forward` argument annotated with another module's type alias is a dict of tensors: "
            "storing an item is no write into a tensor (nequip nn/embedding/node.py)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            ATOM_TYPES = "atom_types"
            NODE_ATTRS = "node_attrs"

            class Embed(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.embed = nn.Embedding(5, 3)

                def forward(self, data):
                    atom_types = data[ATOM_TYPES].view(-1)
                    data[NODE_ATTRS] = self.embed(atom_types)
                    return data
            """,
            # nequip nn/embedding/node.py indexes its data dict with string constants (`ATOM_TYPE_KEY`)
            run="""
            model = Embed()
            out = model({ATOM_TYPES: torch.tensor([[0], [3], [1]])})
            out[NODE_ATTRS].sum().backward()
            assert model.embed.weight.grad.sum() == 9
            """,
            note="an argument indexed by a name holding a string is a mapping, not a tensor (nequip)",
        ),
        Valid(
            """
            import torch
            import torch.nn.functional as F


            class SSIMLoss(torch.nn.Module):
                def gaussian_filter(self, kernel_size, sigma):
                    coords = torch.arange(kernel_size, dtype=torch.float32)
                    coords -= (kernel_size - 1) / 2.0
                    g = coords**2
                    g = (-(g.unsqueeze(0) + g.unsqueeze(1)) / (2 * sigma**2)).exp()
                    g /= g.sum()
                    return g.unsqueeze(0)

                def ssim(self, x, y, kernel_size=11, kernel_sigma=1.5):
                    kernel = self.gaussian_filter(kernel_size, kernel_sigma).repeat(x.size(1), 1, 1, 1)
                    return (F.conv2d(x, kernel, groups=x.size(1)) * F.conv2d(y, kernel, groups=y.size(1))).mean()

                def forward(self, x, y):
                    return 1 - self.ssim(x, y)
            """,
            note="a kernel from `arange` and numbers: the helper is called only as `self.gaussian_filter(...)`, "
            "with the caller's `kernel_size=11, kernel_sigma=1.5` (speechbrain lobes/models/FastSpeech2.py)",
            run="x = torch.rand(1, 2, 16, 16, requires_grad=True)\n"
            "SSIMLoss()(x, torch.rand(1, 2, 16, 16)).backward()\n"
            "assert x.grad is not None",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class ConvBlock(nn.Module):
                def __init__(self, cin, cout):
                    super().__init__()
                    self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
                    self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
                    self.norm1 = nn.BatchNorm2d(cout)
                    self.norm2 = nn.BatchNorm2d(cout)

                def forward(self, x):
                    x = F.relu_(self.norm1(self.conv1(x)))
                    x = F.relu_(self.norm2(self.conv2(x)))
                    return x
            """,
            note="F.relu_(t) writes into t (a norm's output, which BatchNorm does not save), not into F "
            "(speechbrain lobes/models/Cnn14.py)",
            run="ConvBlock(1, 2)(torch.randn(2, 1, 5, 5)).sum().backward()",
        ),
        Valid(
            """
            from typing import List

            import torch
            import torch.nn as nn
            from torch import Tensor

            class Dense(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.linear = nn.Linear(dim, dim)

                def forward(self, features: dict[str, Tensor]):
                    features["out"] = torch.tanh(self.linear(features["in"]))
                    return features

            class Norms(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.norms = nn.ModuleList([nn.LayerNorm(dim), nn.LayerNorm(dim)])

                def forward(self, features: List[torch.Tensor]):
                    features = features[:2]
                    for i, norm in enumerate(self.norms):
                        features[i] = norm(features[i])
                    return features[0] + features[1]
            """,
            note="an item stored into an argument annotated as a dict or list of tensors "
            "(sentence-transformers base/modules/dense.py, "
            "segmentation_models_pytorch decoders/upernet/decoder.py)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class Block(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 8)

                def forward(self, x):
                    h = F.gelu(self.fc(x))
                    h.mul_(0.5)
                    g = torch.sigmoid(self.fc(x)).clone()
                    g.add_(1)
                    s = torch.tanh(self.fc(x))
                    s = s * 2
                    s += 1
                    return h + g + s
            """,
            note="gelu saves its input; clone before writing; out-of-place rebinding",
        ),
        Valid(
            """
            import torch

            def predict(model, x):
                probs = torch.softmax(model(x), dim=-1)
                probs.mul_(100)
                return probs

            def update(model, x):
                with torch.no_grad():
                    y = torch.sigmoid(model(x))
                    y.add_(1)
                return y
            """,
            note="no backward in the function; under no_grad",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)
                    self.register_buffer("table", torch.linspace(-1, 1, 4))

                def forward(self, x):
                    h = self.fc(x)
                    gate = torch.sigmoid(h)
                    h.mul_(2)
                    lut = torch.exp(self.table)
                    lut += 1
                    out = torch.relu(h * gate)
                    out = out + lut
                    return out
            """,
            note="writes into the input of sigmoid (not its saved output) and into exp of a buffer",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Head(nn.Module):
                def __init__(self, depth):
                    super().__init__()
                    self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(depth))

                def forward(self, x):
                    for layer in self.layers:
                        x = layer(x)
                    return x

            class Detector(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.class_embed = nn.Linear(4, 3)
                    self.bbox_embed = Head(2)

                def forward(self, hidden, reference):
                    logits = self.class_embed(hidden)
                    delta = self.bbox_embed(hidden)
                    delta[..., :2] += reference
                    return logits, delta
            """,
            note="transformers deformable_detr: a loop over a model's layers runs at least once, so the "
            "head's output is not its (saved) input",
            run="""
            d = Detector()
            logits, delta = d(torch.randn(2, 4), torch.randn(2, 2))
            (logits.sum() + delta.sum()).backward()
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Structure(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.norm_s = nn.LayerNorm(4)

                def forward(self, outputs):
                    s = self.norm_s(outputs["single"])
                    outputs["pair"] = outputs["pair"] * 2
                    return s + outputs["pair"]
            """,
            note="transformers esmfold: an argument indexed by strings is a mapping; storing an item "
            "writes into no tensor",
            run="""
            x = torch.randn(2, 4, requires_grad=True)
            Structure()({"single": x, "pair": torch.randn(2, 4)}).sum().backward()
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Layer(nn.Module):
                def __init__(self, gated):
                    super().__init__()
                    self.gated = gated
                    self.gate = nn.Linear(4, 4)

                def forward(self, hidden):
                    hidden = hidden + 1
                    if self.gated:
                        residual = hidden
                        hidden = self.gate(hidden)
                        hidden = residual + hidden
                    hidden *= 0.5
                    return hidden
            """,
            note="transformers gemma4: the linear saved `hidden` on one path; on the other, where the "
            "name still holds that tensor, nothing saved it",
            run="""
            x = torch.randn(2, 4, requires_grad=True)
            Layer(True)(x).sum().backward()
            Layer(False)(x).sum().backward()
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Embeddings(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.position = nn.Embedding(8, 4)
                    self.norm = nn.LayerNorm(4)

                def forward(self, embeds, positions):
                    embeds += self.position(positions)
                    return self.norm(embeds)

            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.embeddings = Embeddings()
                    self.blocks = nn.ModuleList([nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 4))])

                def forward(self, embeds, positions):
                    hidden = self.embeddings(embeds, positions)
                    for block in self.blocks:
                        hidden = block(hidden)
                    hidden += 1
                    return hidden
            """,
            note="transformers git, granite_speech: a callee writes into its argument before its own "
            "layer saves it; `x = block(x)` in a loop makes a new tensor each pass",
            run="""
            e = torch.randn(2, 4, requires_grad=True)
            Encoder()(e * 1, torch.tensor([1, 2])).sum().backward()
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Projection(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.norm = nn.LayerNorm(4)
                    self.proj = nn.Linear(4, 4)

                def forward(self, x):
                    normed = self.norm(x)
                    return self.proj(normed), normed

            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.projection = Projection()

                def forward(self, x, mask):
                    hidden, features = self.projection(x)
                    hidden[mask] = 0
                    return hidden, features
            """,
            note="transformers speecht5: the items of a returned tuple are different tensors",
            run="""
            hidden, features = Encoder()(torch.randn(3, 4, requires_grad=True), torch.tensor([True, False, True]))
            (hidden.sum() + features.sum()).backward()
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class CoarseMatching(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.temperature = 0.1

                def forward(self, feat0, feat1):
                    sim = torch.einsum("nlc,nsc->nls", feat0, feat1) / self.temperature
                    conf = F.softmax(sim, 2)
                    if sim.requires_grad:
                        col = torch.exp(sim - sim.amax(dim=1, keepdim=True))
                        conf = col / col.sum(dim=1, keepdim=True) * conf
                    else:
                        col = sim.sub_(sim.amax(dim=1, keepdim=True)).exp_()
                        conf.mul_(col.div_(col.sum(dim=1, keepdim=True)))
                    conf.masked_fill_(conf < 1e-4, 0.0)
                    return conf
            """,
            note="kornia feature/loftr/utils/coarse_matching.py: where `sim.requires_grad` is False, the "
            "softmax computed from `sim` before the test recorded no graph",
            run="""
            a, b = torch.randn(1, 3, 4, requires_grad=True), torch.randn(1, 5, 4)
            CoarseMatching()(a, b).sum().backward()
            CoarseMatching()(a.detach(), b)
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Pooling(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    t = self.fc(x).relu()
                    t = t.log1p() if self.training else t.log1p_()
                    return t

            class VAE(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.mu = nn.Linear(4, 4)
                    self.logvar = nn.Linear(4, 4)

                def forward(self, x):
                    mu, logvar = self.mu(x), self.logvar(x)
                    std = torch.exp(0.5 * logvar)
                    if self.training:
                        std = torch.randn_like(std).mul_(std)
                    return std.add_(mu)
            """,
            note="sentence-transformers sparse_encoder/modules/splade_pooling.py, monai networks/nets/"
            "varautoencoder.py: an in-place write only where the module is not training is an "
            "inference-time shortcut",
            run="""
            x = torch.randn(2, 4)
            Pooling().train()(x).sum().backward()
            VAE().train()(x).sum().backward()
            with torch.no_grad():
                Pooling().eval()(x), VAE().eval()(x)
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class BlockIndexer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.q = nn.Linear(4, 4)

                def forward(self, h, local_idx):
                    scores = torch.matmul(self.q(h), h.transpose(-1, -2))
                    block_scores = scores.amax(dim=-1)
                    block_scores.scatter_(-1, local_idx, float("inf"))
                    topk_scores, topk_indices = block_scores.topk(2, dim=-1)
                    return topk_indices.masked_fill(topk_scores == float("-inf"), -1)
            """,
            note="transformers minimax_m3_vl/modeling_minimax_m3_vl.py: only `topk` indices leave the "
            "function, so no backward reaches what `amax` saved",
            run="""
            idx = BlockIndexer()(torch.randn(2, 3, 4, requires_grad=True), torch.zeros(2, 1, dtype=torch.long))
            assert idx.dtype == torch.long and not idx.requires_grad
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class TriangleUpdate(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.norm = nn.LayerNorm(4)
                    self.gate = nn.Linear(4, 4)

                def _inference_forward(self, z):
                    g = self.gate(self.norm(z))
                    z *= g.sigmoid()
                    return z

                def forward(self, z, inplace_safe=False):
                    if inplace_safe:
                        return self._inference_forward(z)
                    return z * self.gate(self.norm(z)).sigmoid()
            """,
            note="transformers esm/modeling_esmfold.py: a method named as inference-only writes in place "
            "on purpose",
            run="""
            z = torch.randn(2, 4, requires_grad=True)
            TriangleUpdate()(z).sum().backward()
            with torch.no_grad():
                TriangleUpdate()(torch.randn(2, 4), inplace_safe=True)
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class TypedConv(nn.Module):
                def __init__(self, dim=8):
                    super().__init__()
                    self.lin = nn.Linear(dim, dim)

                def forward(self, x, edge_index, sizes, offsets):
                    parts = edge_index.clone().split(sizes, dim=1)
                    for part, offset in zip(parts, offsets):
                        part[0] -= offset
                    h = self.lin(x)
                    return h.index_add(0, edge_index[1], h.index_select(0, edge_index[0]))
            """,
            run="""
            edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
            TypedConv()(torch.randn(4, 8), edge_index, [2, 2], [0, 1]).sum().backward()
            """,
            note="`edge_index` is used as an index, so it holds integers: the split views written in place never "
            "require grad (torch_geometric nn/to_hetero_module.py, with the index use of its `HeteroConv`)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class DuelingHead(nn.Module):
                def __init__(self, n_actions=4):
                    super().__init__()
                    self.a_stream = nn.Linear(8, n_actions)
                    self.v_stream = nn.Linear(8, 1)

                def forward(self, h):
                    ya = self.a_stream(h)
                    mean = ya.sum(dim=1, keepdim=True) / ya.shape[1]
                    ya, mean = torch.broadcast_tensors(ya, mean)
                    ya -= mean
                    first, rest = ya.tensor_split(2, dim=1)
                    first += 1
                    ya, ys = torch.broadcast_tensors(ya, self.v_stream(h))
                    return ya + ys
            """,
            run="""
            head = DuelingHead()
            head(torch.randn(5, 8)).sum().backward()
            assert head.a_stream.weight.grad is not None
            """,
            note="`broadcast_tensors` returns a tensor already of the broadcast shape as it is, and `tensor_split` "
            "returns plain slices: neither is a view of a multi-output node, so writing into them is allowed "
            "(pfrl q_functions/dueling_dqn.py)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class RelPosBias(nn.Module):
                def __init__(self, num_offsets, heads=2):
                    super().__init__()
                    self.num_offsets = num_offsets
                    self.mlp = nn.Linear(2, heads)

                def forward(self, x):
                    n = x.shape[1]
                    offsets = torch.arange(n) % 2 + self.num_offsets
                    coords = torch.stack((torch.arange(n), offsets), dim=-1)
                    rel = coords[:, None] - coords[None, :]
                    rel_pos, rel_offset = rel.unbind(dim=-1)
                    rel_pos += n - 1
                    rel_offset += self.num_offsets - 1
                    bias = self.mlp(torch.stack((rel_pos, rel_offset), dim=-1).float())
                    return x.unsqueeze(-1) + bias.mean(1)
            """,
            run="""
            m = RelPosBias(3)
            m(torch.randn(2, 5, requires_grad=True)).sum().backward()
            assert m.mlp.weight.grad is not None
            """,
            note="audiolm-pytorch audiolm_pytorch.py `FineTransformer`: `unbind` views of relative positions "
            "built from `arange` and an attribute of unknown kind (an integer count), written in place in "
            "`forward`; nothing there comes from an input or a parameter, so the views cannot require grad",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class GuidedLoss(nn.Module):
                def __init__(self, pad=0, alpha=0.5):
                    super().__init__()
                    self.pad = pad
                    self.alpha = alpha

                def forward(self, lprobs, lprobs_teacher, target):
                    loss = F.nll_loss(lprobs, target, ignore_index=self.pad)
                    probs_teacher = lprobs_teacher.exp().masked_fill_(target.unsqueeze(-1).eq(self.pad), 0)
                    probs_teacher = probs_teacher.detach()
                    guide = -(probs_teacher * lprobs).sum(-1).mean()
                    return self.alpha * guide + (1 - self.alpha) * loss
            """,
            run="""
            logits = torch.randn(4, 5, requires_grad=True)
            teacher = torch.randn(4, 5, requires_grad=True)
            GuidedLoss()(logits.log_softmax(-1), teacher.log_softmax(-1), torch.tensor([0, 1, 2, 3])).backward()
            assert logits.grad is not None and teacher.grad is None
            """,
            note="fairseq examples/speech_text_joint_to_text/criterions/text_guide_cross_entropy_acc.py: the "
            "`exp` output written in place is read afterwards only through `.detach()`, so no backward goes "
            "through `exp`",
        ),
        Valid(
            """
            import torch
            from torch import nn
            from torch.nn import functional as F

            class StarNodes(nn.Module):
                def __init__(self, hidden_size: int, iters: int):
                    super().__init__()
                    self.iters = iters
                    self.norm = nn.ModuleList([nn.LayerNorm(hidden_size) for _ in range(iters)])

                def forward(self, data: torch.FloatTensor, mask: torch.BoolTensor):
                    def norm_func(f, x):
                        return f(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

                    nodes = data
                    for i in range(self.iters):
                        nodes = F.leaky_relu(norm_func(self.norm[i], nodes))
                        nodes = nodes.masked_fill_(mask, 0)
                    return nodes
            """,
            run="""
            model = StarNodes(8, 3)
            data = torch.randn(2, 8, 5, 1, requires_grad=True)
            mask = torch.zeros(2, 1, 5, 1, dtype=torch.bool)
            mask[0, :, 3:] = True
            model(data, mask).sum().backward()
            assert data.grad is not None and model.norm[0].weight.grad is not None
            """,
            note="dev10 fastnlp modules/torch/encoder/star_transformer.py: the layer norm saved the previous "
            "pass's `nodes`; the `leaky_relu` output written in place is the new tensor this pass made (same "
            "statement, so same allocation site), which nothing saved",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class CifPredictor(nn.Module):
                def __init__(self, idim: int = 8):
                    super().__init__()
                    self.cif_output = nn.Linear(idim, 1)

                def forward(self, hidden, target_length=None, mask=None):
                    alphas = torch.sigmoid(self.cif_output(hidden))
                    alphas = torch.nn.functional.relu(alphas * 1.0 - 0.0)
                    if mask is not None:
                        mask = mask.transpose(-1, -2).float()
                        alphas = alphas * mask
                    alphas = alphas.squeeze(-1)
                    mask = mask.squeeze(-1)
                    token_num = alphas.sum(-1)
                    if target_length is not None:
                        alphas *= (target_length / token_num)[:, None]
                    return alphas, token_num
            """,
            run="""
            model = CifPredictor()
            hidden, mask = torch.randn(2, 5, 8), torch.ones(2, 1, 5)
            alphas, token_num = model(hidden, torch.tensor([3.0, 2.0]), mask)
            (alphas.sum() + token_num.sum()).backward()
            assert model.cif_output.weight.grad is not None
            try:
                model(hidden, torch.tensor([3.0, 2.0]))
                raise AssertionError("mask=None ran")
            except AttributeError as e:
                assert "squeeze" in str(e)
            """,
            note="dev12 funasr models/paraformer/cif_predictor.py (and its copies): `alphas` is still relu's "
            "saved output only where `mask is None`, and there `mask.squeeze(-1)` raises before the write",
        ),
        Valid(
            """
            import torch


            def rescale(const, bound):
                const[const < bound] *= 10


            w = torch.randn(4, requires_grad=True)
            x = torch.randn(3, 4)
            const = torch.ones(3)
            for step in range(3):
                loss = torch.sum(const * (x @ w).pow(2))
                loss.backward()
            rescale(const, 1e3)
            """,
            run="""
            assert w.grad is not None and (const == 10).all()
            """,
            note="the write comes after the loop's last `backward()` freed every graph that saved `const`; no backward "
            "reads it again (the class behind holdout5 torchattacks attacks/eaden.py's `adjust_constant`)",
        ),
        Valid(
            """
            import torch
            import torch.nn.functional as F


            # from gptqmodel 7.7.0 gptqmodel/quantization/paroquant/optimization.py (the warm-up of a captured step)
            def backward_scalar(loss, seed=None):
                if seed is None:
                    loss.backward()
                    return
                torch.autograd.backward(loss, seed)


            def warm_up(model, optimizer, inputs, targets):
                static_input = torch.empty(4, 3)
                static_target = torch.empty(4, 1)
                for _ in range(3):
                    static_input.copy_(inputs)
                    static_target.copy_(targets)
                    optimizer.zero_grad()
                    loss = F.smooth_l1_loss(model(static_input), static_target)
                    backward_scalar(loss)
                    optimizer.step()
                final = F.smooth_l1_loss(model(static_input), static_target)
                final.backward()
                return final


            model = torch.nn.Linear(3, 1)
            warm_up(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.randn(4, 3), torch.randn(4, 1))
            """,
            run="assert model.weight.grad is not None",
            note="a helper that backpropagates its argument on every path frees the loop's graph before the next "
            "iteration's `copy_`, as a written `loss.backward()` does",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            # OpenNMT-py utils/loss.py (LossCompute._compute_lm_loss): the LM prior's scores are detached,
            # divided by a float temperature given to the constructor, and edited before the KL term
            class PriorLoss(nn.Module):
                def __init__(self, generator, lm_prior, tau=None, unk=0, eos=3):
                    super().__init__()
                    self.generator = generator
                    self.lm_prior = lm_prior
                    self.tau = tau
                    self.unk = unk
                    self.eos = eos

                def forward(self, output):
                    scores = F.log_softmax(self.generator(output) / self.tau, dim=-1)
                    lm_scores = self.lm_prior(output).detach().clone() / self.tau
                    lm_scores = F.log_softmax(lm_scores.to(torch.float32), dim=-1)
                    lm_scores[:, self.unk] = -50
                    lm_scores[:, self.eos] -= 20
                    lm_loss = F.kl_div(scores, lm_scores, reduction="none", log_target=True).sum(-1)
                    return lm_loss.sum() * self.tau**2
            """,
            run="""
            loss = PriorLoss(nn.Linear(6, 10), nn.Linear(6, 10), tau=2.0)
            loss(torch.randn(5, 6)).backward()
            assert loss.generator.weight.grad is not None and loss.lm_prior.weight.grad is None
            """,
            note="dev12 OpenNMT-py: a tensor cut from the graph scaled by a module attribute of unknown type "
            "(taken as a number) requires no grad, so `log_softmax` saved nothing",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            # yolov5 models/yolo.py (Detect.forward): one feature map per level, each through its own conv;
            # the caller passes a list, and `x[i] = ...` replaces the list's item, no tensor is written
            class Head(nn.Module):
                def __init__(self, ch=(4, 8), no=6):
                    super().__init__()
                    self.no = no
                    self.m = nn.ModuleList(nn.Conv2d(c, 2 * no, 1) for c in ch)

                def forward(self, x):
                    for i in range(len(self.m)):
                        x[i] = self.m[i](x[i])
                        bs, _, ny, nx = x[i].shape
                        x[i] = x[i].view(bs, 2, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
                    return x
            """,
            run="""
            head = Head()
            out = head([torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)])
            sum(o.sum() for o in out).backward()
            assert all(p.grad is not None for p in head.parameters())
            """,
            note="dev13 yolov5: an argument whose item at `i` goes to the module list's layer at `i` "
            "(`self.m[i](x[i])`) is a list of inputs, one per layer, not one tensor",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            # hummingbird-ml operator_converters/_linear_implementations.py: the second test on
            # `self.loss` runs only on the path of the first test's `clip` arm, never on `sigmoid`'s
            class LinearModel(nn.Module):
                def __init__(self, loss):
                    super().__init__()
                    self.loss = loss

                def forward(self, output):
                    if self.loss == "modified_huber":
                        output = torch.clip(output, -1, 1)
                        output += 1
                        output /= 2
                    else:
                        output = torch.sigmoid(output)
                    if self.loss == "modified_huber":
                        prob_sum = torch.sum(output, dim=1, keepdim=False)
                        output[prob_sum == 0, :] = 1
                        prob_sum[prob_sum == 0] = output.shape[1]
                        output /= prob_sum.view((output.shape[0], -1))
                    return output
            """,
            run="""
            x = torch.full((3, 4), -2.0, requires_grad=True)
            LinearModel("modified_huber")(x).sum().backward()
            LinearModel("log")(x).sum().backward()
            """,
            note="holdout6 hummingbird-ml: two `if`s on the same condition, nothing it reads changed in between: "
            "the later one sees the value of the matching arm (`clip`, which saves its input), not the join",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Gate(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    g = torch.sigmoid(self.fc(x))
                    g.mul_(2)
                    return x * g
            """,
            lines=[11],
            fixed="""
            import torch
            import torch.nn as nn

            class Gate(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    g = torch.sigmoid(self.fc(x))
                    g = g.mul(2)
                    return x * g
            """,
            raises="modified by an inplace operation",
            run="m = Gate(); m(torch.randn(3, 4)).sum().backward()",
            check_fixed="assert m.fc.weight.grad is not None",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(6, 3)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            x, y = torch.randn(5, 6), torch.randint(0, 3, (5,))
            probs = torch.softmax(model(x), dim=1)
            probs += 1e-8
            loss = -probs.log().gather(1, y.unsqueeze(1)).mean()
            loss.backward()
            opt.step()
            """,
            lines=[8],
            fixed="""
            import torch
            import torch.nn as nn

            model = nn.Linear(6, 3)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            x, y = torch.randn(5, 6), torch.randint(0, 3, (5,))
            probs = torch.softmax(model(x), dim=1)
            probs = probs + 1e-8
            loss = -probs.log().gather(1, y.unsqueeze(1)).mean()
            loss.backward()
            opt.step()
            """,
            raises="modified by an inplace operation",
            check_fixed="assert model.weight.grad is not None",
        ),
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F

            class Features(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 8, 3)

                def forward(self, x):
                    a = F.relu(self.conv(x))
                    a[:, 0] = 0
                    return a
            """,
            lines=[11],
            fixed="""
            import torch.nn as nn
            import torch.nn.functional as F

            class Features(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 8, 3)

                def forward(self, x):
                    a = F.relu(self.conv(x))
                    a = a.clone()
                    a[:, 0] = 0
                    return a
            """,
            raises="modified by an inplace operation",
            run="""
            import torch
            m = Features()
            out = m(torch.randn(1, 3, 8, 8))
            out.sum().backward()
            """,
            check_fixed="assert (out[:, 0] == 0).all() and m.conv.weight.grad[1:].abs().sum() > 0",
            note="an index write into a saved output: the fix writes into a copy",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Scale(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)
                    self.gain = nn.Parameter(torch.ones(4))

                def forward(self, x):
                    h = self.fc(x)
                    y = h * self.gain
                    h += 1
                    return y + h
            """,
            lines=[13],
            fixed="""
            import torch
            import torch.nn as nn

            class Scale(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)
                    self.gain = nn.Parameter(torch.ones(4))

                def forward(self, x):
                    h = self.fc(x)
                    y = h * self.gain
                    h = h + 1
                    return y + h
            """,
            raises="modified by an inplace operation",
            run="m = Scale(); m(torch.randn(3, 4)).sum().backward()",
            check_fixed="assert m.gain.grad is not None",
            note="a saved input: `h * self.gain` saves `h` to compute the gain's gradient",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Policy(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Linear(3, 4)

                def sample(self, states):
                    means, log_stds = self.net(states).chunk(2, dim=-1)
                    log_stds.clamp_(-20, 2)
                    return means + torch.randn_like(means) * log_stds.exp()
            """,
            lines=[11],
            fixed="""
            import torch
            import torch.nn as nn

            class Policy(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Linear(3, 4)

                def sample(self, states):
                    means, log_stds = self.net(states).chunk(2, dim=-1)
                    log_stds = log_stds.clamp(-20, 2)
                    return means + torch.randn_like(means) * log_stds.exp()
            """,
            raises="is a view and is being modified inplace",
            run="p = Policy(); p.sample(torch.randn(5, 3)).sum().backward()",
            check_fixed="assert p.net.weight.grad is not None",
            note="one of several views (chunk, split, unbind): PyTorch raises at the write itself",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            def _apply_window(p, last):
                p[:, last + 3 :] = 0
                return p

            class LocationAttention(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.loc_conv = nn.Conv1d(1, 4, 3, padding=1, bias=False)

                def forward(self, enc, last):
                    att_prev = enc.new_zeros(enc.shape[:2])
                    att_prev[:, 0] = 1.0
                    att_conv = self.loc_conv(att_prev.unsqueeze(1)).sum(1)
                    att_prev = _apply_window(att_prev, last)
                    return torch.softmax(att_conv, dim=1) * att_prev
            """,
            lines=[17],
            raises="modified by an inplace operation",
            run="LocationAttention()(torch.rand(1, 10, 8), 2).sum().backward()",
            note="dev9 espnet rnn/attentions.py (`GDCAttLoc`): a helper writes into its argument, which the "
            "convolution saved as its input (for the weight's gradient); the message names the argument",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class LinearModel(nn.Module):
                def __init__(self, loss):
                    super().__init__()
                    self.loss = loss

                def forward(self, output):
                    if self.loss == "modified_huber":
                        output = torch.clip(output, -1, 1)
                    else:
                        output = torch.sigmoid(output)
                    if self.loss != "modified_huber":
                        output /= torch.sum(output, dim=1, keepdim=True)
                    return output
            """,
            lines=[15],
            fixed="""
            import torch
            import torch.nn as nn

            class LinearModel(nn.Module):
                def __init__(self, loss):
                    super().__init__()
                    self.loss = loss

                def forward(self, output):
                    if self.loss == "modified_huber":
                        output = torch.clip(output, -1, 1)
                    else:
                        output = torch.sigmoid(output)
                    if self.loss != "modified_huber":
                        output = output / torch.sum(output, dim=1, keepdim=True)
                    return output
            """,
            raises="modified by an inplace operation",
            run="""
            x = torch.randn(3, 4, requires_grad=True)
            LinearModel("log")(x).sum().backward()
            """,
            check_fixed="assert x.grad is not None",
            note="the later test on the same condition runs on the `sigmoid` arm's path: the write is into "
            "sigmoid's saved output (hummingbird-ml's multiclass branch)",
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        # reported only in a method reachable from an nn.Module's forward or in a scope that
        # calls `.backward(`; an in-place write must be in the text
        if ".backward(" not in text and not (
            isinstance(statement, ast.ClassDef) and module.is_module_class(statement.name)
        ):
            return False
        return _INPLACE_TEXT.search(text) is not None

    def check(self, unit: Unit) -> Iterator[Finding]:
        for write in writes(unit):
            if write.kind == MULTI_VIEW:
                yield self._multi_view(unit, write)
                continue
            if write.kind != SAVED:
                continue
            if not write.in_forward and not calls_backward(write.flow):
                continue  # code that never calls backward is not reported
            if write.in_forward and _inference_project(unit) and not calls_backward(write.flow):
                continue  # nor modules of a project that never trains and runs them under no_grad
            if write.masked is not None:
                continue  # GG202 reports `y[y < t] = v`
            if _inference_only(write.func) or _dead_graph(write.flow) or _read_only_detached(unit, write):
                continue
            # in forward, activations are taken to require grad: an output-saving op there saved
            # its output; a saved *input* needs certainty (another input certainly requires grad)
            records = [
                r
                for r in write.event.saved
                if r.certain or (write.in_forward and r.role == "output" and not _scaled_constant(write, r))
            ]
            if not records:
                continue
            # (the first op in the source: `saved` is gathered from sets, and a message must not depend on
            # their iteration order, which changes with the hash seed)
            first = min(
                records, key=lambda r: (getattr(r.node, "lineno", 0), getattr(r.node, "col_offset", 0))
            )
            yield self._report(unit, write, first)

    def _multi_view(self, unit: Unit, write) -> Finding:
        written = write.written
        name = describe(unit, written) if written is not None else "the tensor"
        (site,) = tuple(write.value.sites)[:1] or (None,)
        op = describe(unit, site.func) if isinstance(site, ast.Call) else "chunk"
        message = (
            f"In-place write into `{name}`, one of the views `{op}(...)` returned\nPyTorch raises "
            '"... is a view and is being modified inplace. This view is the output of a function that returns '
            'multiple views"; rebind it out of place instead.'
        )
        return self.finding(unit, write.node, message, fix=self._fix(unit, write))

    def _fix(self, unit: Unit, write):
        stmt = write.event.statement
        node = write.node
        if isinstance(stmt, ast.Expr) and stmt.value is node and isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.attr in _OUT_OF_PLACE
            ):
                args = unit.segment(node)[len(unit.segment(func)) :]
                target = func.value.id
                new = f"{target} = {target}.{_OUT_OF_PLACE[func.attr]}{args}"
                return self.make_fix(
                    f"Use `{target}.{_OUT_OF_PLACE[func.attr]}(...)`", [replace_node(unit, stmt, new)]
                )
        return None

    def _report(self, unit: Unit, write, saved) -> Finding:
        written = write.written
        name = describe(unit, written) if written is not None else "the tensor"
        by = ""
        argument = _written_argument(write)
        if argument is not None:  # a helper's write: name the caller's argument, and the helper in the detail
            name = describe(unit, argument)
            by = f"`{describe(unit, write.target.func)}(...)` writes into it. "
        op = saved_op_text(unit, saved)
        stmt = write.event.statement
        if saved.role == "output":
            message = (
                f"In-place write into `{name}`, the output of `{op}` saved for backward\n{by}"
                'Backward raises "one of the variables needed for gradient computation has been modified by an '
                'inplace operation".'
            )
        else:
            message = (
                f"In-place write into `{name}` after `{op}` saved it for backward\n{by}Backward raises "
                '"one of the variables needed for gradient computation has been modified by an inplace '
                'operation".'
            )
        node: ast.AST = write.node
        fix = None
        if (
            isinstance(stmt, ast.AugAssign)
            and stmt is node
            and isinstance(stmt.target, ast.Name)
            and type(stmt.op) in _AUG_OPS
        ):
            value = unit.segment(stmt.value)
            if not isinstance(stmt.value, _ATOMS) and not isinstance(stmt.value, ast.UnaryOp):
                value = f"({value})"
            target = stmt.target.id
            new = f"{target} = {target} {_AUG_OPS[type(stmt.op)]} {value}"
            fix = self.make_fix("Use the out-of-place operator", [replace_node(unit, stmt, new)])
        elif isinstance(stmt, ast.Expr) and stmt.value is node and isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.attr in _OUT_OF_PLACE
            ):
                args = unit.segment(node)[len(unit.segment(func)) :]
                target = func.value.id
                new = f"{target} = {target}.{_OUT_OF_PLACE[func.attr]}{args}"
                fix = self.make_fix(
                    f"Use `{target}.{_OUT_OF_PLACE[func.attr]}(...)`", [replace_node(unit, stmt, new)]
                )
        elif (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Subscript)
            and isinstance(stmt.targets[0].value, ast.Name)
        ):
            # `b[1] = 2`: write into a copy, so the tensor autograd saved stays as it was
            target = stmt.targets[0].value.id
            fix = self.make_fix(
                f"Write into a copy (`{target} = {target}.clone()` first)",
                lambda: [insert_before_statement(unit, stmt, f"{target} = {target}.clone()")],
            )
        return self.finding(unit, node, message, fix=fix)


def _inference_project(unit: Unit) -> bool:
    """The project never computes a gradient and runs its modules from a `forward` under
    `torch.no_grad()` (hummingbird's `Executor`: `ProjectIndex.inference_only`)."""
    resolver = unit.module.resolver
    return resolver is not None and resolver.inference_only


def _inference_only(func: ast.AST | None) -> bool:
    """A method the code names as inference-only (`_inference_forward`, `inference`): its in-place
    writes are deliberate memory savings (transformers esm/modeling_esmfold.py)."""
    return "inference" in getattr(func, "name", "").lower()


def _read_only_detached(unit: Unit, write) -> bool:
    """The written tensor is read afterwards only as `t.detach()`: no backward goes through the op
    that saved it (fairseq text_guide_cross_entropy_acc.py: `p = lp.exp().masked_fill_(pad, 0)`, then
    `p = p.detach()`). The tensor is held by one local name: the one the write's result is assigned to
    (`p = f(x).op_(...)`), or the name written into (`p.op_(...)`) when nothing else holds it."""
    func = write.func
    stmt = write.event.statement
    written = write.written
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    if (
        isinstance(stmt, ast.Assign)
        and stmt.value is write.node
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
        and not isinstance(written, ast.Name)
    ):
        name, defs = stmt.targets[0].id, frozenset((stmt,))
    elif isinstance(stmt, ast.Expr) and isinstance(written, ast.Name) and local_tensor(write):
        name, defs = written.id, write.flow.reaching(written)
    else:
        return False
    if not defs:
        return False
    inside = set(ast.walk(stmt))
    nested = {
        n
        for scope in ast.walk(func)
        if scope is not func and isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for n in ast.walk(scope)
    }
    for node in ast.walk(func):
        if node in nested and isinstance(node, ast.Name) and node.id == name:
            return False  # (read by a closure: not followed)
        if not (isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load)):
            continue
        if node in inside or not write.flow.reaching(node) & defs:
            continue
        parent = unit.parent(node)
        if not (
            isinstance(parent, ast.Attribute)
            and parent.attr == "detach"
            and isinstance(unit.parent(parent), ast.Call)
            and unit.parent(parent).func is parent  # type: ignore[union-attr]
        ):
            return False
    return True


# methods that give the same tensor's values (grad status unchanged)
_SAME_VALUES = torch_facts.CASTS


def _scaled_constant(write, saved) -> bool:
    """The op that saved its output was given a tensor cut from the graph (`.detach()`, `torch.as_tensor`
    of another library's output) scaled by attributes of the module of unknown type (a temperature given
    to the constructor): the value "may require grad" only through such an attribute, which is taken as
    a number; the output is then not presumed an activation (OpenNMT-py utils/loss.py: the LM prior's
    `F.log_softmax(lm_scores.detach().clone() / self.lm_prior_tau)`). A learned scale made in `__init__`
    (`nn.Parameter`) is known, and keeps the output's save."""
    call = saved.node
    flow = write.flow
    func = write.func
    if (
        not isinstance(call, ast.Call)
        or call not in flow.values
        or not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
    ):
        return False
    me = self_name(func)
    callee = call.func
    if call.args and not (isinstance(callee, ast.Attribute) and flow.value_of(callee.value).is_tensor):
        operand = call.args[0]  # `F.log_softmax(t, ...)`
    elif isinstance(callee, ast.Attribute) and not call.args:
        operand = callee.value  # `t.sigmoid()`
    else:
        return False
    return me is not None and _cut_scaled(flow, operand, me, 0)


def _cut_scaled(flow, node: ast.AST, me: str, depth: int) -> bool:
    """A tensor that requires no grad, possibly multiplied or divided by `self.<attr>` of unknown type."""
    if depth > 8:
        return False
    value = flow.value_of(node)
    if value.grad == NO:
        return bool(value.kinds & TENSOR)
    if isinstance(node, ast.Name):
        values = flow.assigned_values(node)
        return values is not None and all(_cut_scaled(flow, v, me, depth + 1) for v in values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
        cut = [side for side in (node.left, node.right) if _cut_scaled(flow, side, me, depth + 1)]
        rest = [side for side in (node.left, node.right) if not any(side is c for c in cut)]
        return bool(cut) and all(
            isinstance(side, ast.Attribute)
            and isinstance(side.value, ast.Name)
            and side.value.id == me
            and flow.value_of(side).kinds == ANY
            for side in rest
        )
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _SAME_VALUES:
        return _cut_scaled(flow, node.func.value, me, depth + 1)
    return False


def _without_graph(value, depth: int = 0) -> bool:
    """Certainly nothing that requires grad: a known non-container that requires no grad, or a
    tuple/list/dict whose every element is such."""
    if not value.known or depth > 3:
        return False
    if value.kinds & CONTAINER:
        parts = list(value.items or ()) or ([value.elem] if value.elem is not None else [])
        return bool(parts) and all(_without_graph(part, depth + 1) for part in parts)
    return value.grad == NO


def _dead_graph(flow) -> bool:
    """Nothing differentiable leaves the function: every `return` gives a value that requires no
    grad (`topk` indices, a comparison), and no tracked value is stored on an attribute, into a
    container, passed to a call whose result is dropped, or yielded. No backward can then reach
    what an op saved here (transformers minimax_m3_vl: block scores written in place before only
    their `topk` indices are returned)."""
    func = flow.func
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) or not flow.returns:
        return False
    if not all(_without_graph(value) for _, value in flow.returns):
        return False
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Yield, ast.YieldFrom, ast.Global, ast.Nonlocal)):
            return False
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            stored = flow.value_of(node.value)
            for target in targets:
                escapes = isinstance(target, ast.Attribute) or (
                    isinstance(target, ast.Subscript) and not flow.value_of(target.value).is_tensor
                )
                if escapes and not _without_graph(stored):
                    return False
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            call = node.value
            receiver = flow.value_of(call.func.value) if isinstance(call.func, ast.Attribute) else None
            if receiver is None or not receiver.is_tensor:
                arguments = [*call.args, *(k.value for k in call.keywords)]
                if not all(_without_graph(flow.value_of(a)) for a in arguments):
                    return False
        stack.extend(ast.iter_child_nodes(node))
    return True


def _written_argument(write) -> ast.expr | None:
    """For a call that writes into a tensor of the caller's (`_apply_filter(att_prev, ...)` writing
    `p[:, :i] = 0`), the one argument expression that passed that tensor, else None."""
    call = write.target
    if (
        write.event.op != "call"
        or not isinstance(call, ast.Call)
        or not isinstance(write.event.data, frozenset)
    ):
        return None
    found = [
        a
        for a in (*call.args, *(k.value for k in call.keywords))
        if not write.event.data.isdisjoint(write.flow.value_of(a).roots)
    ]
    return found[0] if len(found) == 1 and not isinstance(found[0], ast.Starred) else None
