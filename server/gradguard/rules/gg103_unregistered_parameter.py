"""GG103: tensors and layers stored on a module where `nn.Module` cannot see them."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from gradguard.engine import holdings, torch_facts
from gradguard.engine.finding import Applicability, Finding
from gradguard.engine.fixes import nn_name, replace_node
from gradguard.engine.index import Unit, chain_root, self_name, walk
from gradguard.engine.interpreter import ATTRIBUTE_STORE
from gradguard.engine.values import DICT, LIST, MODULE, NONE, OPTIMIZER, PARAMETER, TUPLE, YES
from gradguard.engine.queries import node_text
from gradguard.engine.rule import Invalid, Rule, Valid, Message
from gradguard.engine.rule_helpers import rebound_before, self_attribute_reads
from gradguard.engine.semantic import is_param_free_layer

# `requires_grad`, a container display/comprehension, or a container being filled
_CANDIDATE_TEXT = re.compile(
    r"requires_grad|self\.\w+\s*(:[^=\n]*)?=\s*[\[\(\{]|\.(append|extend|insert)\(|=\s*(list|dict)\(\)|\]\s*=[^=]"
)
_KIND_MODULE = "module"
_KIND_PARAM = "param"
_EMPTY_LIST_CALLS = {"list"}
_EMPTY_DICT_CALLS = {"dict"}


class UnregisteredParameter(Rule):
    code = "GG103"
    needs_class = "module"  # starts from unit.module_classes() only
    name = "unregistered-parameter"
    summary = (
        "A tensor with `requires_grad=True`, or a Python list/dict of layers or parameters, stored on a "
        "module in `__init__`: `nn.Module` does not register it."
    )
    why = (
        "`nn.Module` registers only parameters, modules and buffers: a plain tensor or a Python list of "
        "layers is missing from `model.parameters()` and `state_dict()`, so the optimizer never updates it."
    )
    message = Message("`self.{attr}` is not registered with the module")
    explanation = """
    `nn.Module` registers what you assign to `self.x` only when it is an
    `nn.Parameter`, an `nn.Module`, or a buffer (`register_buffer`). Anything else is a
    plain Python attribute:

    * `self.w = torch.randn(3, requires_grad=True)` gets gradients in `backward()`, but
      it is missing from `model.parameters()`, so an optimizer built from them never
      updates it; it is missing from `state_dict()` (not saved, not loaded), and
      `model.to(device)` / `model.double()` do not convert it.
    * `self.layers = [nn.Linear(...), ...]` (a Python list, tuple or dict, including a
      comprehension) hides the layers: their parameters are not in `model.parameters()`
      and never train, are not saved in `state_dict()`, and `.to()`, `.train()` and
      `.eval()` do not reach them.

    Use `nn.Parameter(tensor)` for a learnable tensor (it requires grad by default),
    `nn.ModuleList`/`nn.ModuleDict` for containers of layers and
    `nn.ParameterList`/`nn.ParameterDict` for containers of parameters. Lists of
    numbers, shapes or names, lists of parameter-free layers, and lists of layers that
    are also passed to `nn.Sequential(*layers)` (or, one by one, to the constructor of a registered
    module that keeps them: `nn.Sequential(*[Wrapper(layer) for layer in layers])`) are fine and not
    reported, nor are lists whose
    items `__init__` registers one by one (`self.add_module(name, layer)`) or whose items'
    tensors it registers again as parameters of the module, sharing their storage
    (`register_parameter("weight", nn.Parameter(w))` for each `w` of an item). So are lists of
    a module class of the project (in this file or another one) that owns no parameter,
    buffer, dropout or normalization layer and never reads `self.training` (a block of
    pooling layers): registering them would carry nothing. When what such a class holds
    is not known (a base class that cannot be read, an argument stored on `self`), the
    list is reported. The fix
    changes the module's `state_dict()` keys, so checkpoints saved before it will have
    different keys.

    A list of parameters that the class itself hands to what trains it is not reported either: to
    an optimizer (`optim.Adam(self.weights + self.biases)`), to `torch.autograd.grad(loss,
    self.weights)` (meta-learning's functional weights, updated by hand), or returned from a
    `*parameters()` method. Such code never goes through `model.parameters()`, and an
    `nn.ParameterList` would refuse its `self.weights = [w - lr * g ...]`.

    A list the caller passes in (`def __init__(self, activations): self.acts = activations`)
    is judged by the calls of the class in the file: it is reported when one of them passes
    layers with parameters (`FeedForward(..., [nn.PReLU(), nn.Identity()])`) and `__init__`
    does nothing else with the argument than store it (an `isinstance` test and `acts = [acts]
    * n` aside). The fix, `nn.ModuleList(activations)`, is offered when every call in the file
    passes a list or tuple of modules and the class only iterates, indexes, measures or appends
    to the attribute (a list of functions such as `torch.tanh` would make `nn.ModuleList` raise).

    A plain tensor that does not require grad (`self.keys = torch.randn(4, 8)`) is not
    reported, even when it looks like a weight: constants, masks, and fixed random features
    (random Fourier features, random projections, echo-state reservoirs) are kept exactly
    so, and nothing in the code says which tensors were meant to learn. Wrapping one in
    `nn.Parameter` would make the optimizer train a tensor the author may have wanted fixed,
    so there is neither a finding nor a fix.

    **Fix safety.** Unsafe: wrapping the container in `nn.ModuleList`/`nn.ModuleDict`/
    `nn.ParameterList` (or the tensor in `nn.Parameter`) changes `model.parameters()` (an optimizer
    built afterwards now trains them) and the `state_dict()` keys, so checkpoints saved before the fix
    no longer load with `strict=True`. A list of layer groups (`[[linear, act], ...]`, or
    `self.hids.append([linear, act])`) becomes an `nn.ModuleList` of `nn.ModuleList`s, which iterates,
    unpacks and indexes as the lists did; other containers of containers get no fix (`nn.ModuleList`
    rejects the inner lists, and the right structure is the author's choice).
    """
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class PredictionBlock(nn.Module):
                def __init__(self, in_dim, out_dim, activation: nn.Module):
                    super().__init__()
                    self.layers = [nn.Linear(in_dim, out_dim), activation]
                    for i, layer in enumerate(self.layers):
                        self.add_module(str(i), layer)

                def forward(self, x):
                    for layer in self.layers:
                        x = layer(x)
                    return x
            """,
            note="a list whose items are registered one by one with add_module "
            "(transformers models/mask2former/modeling_mask2former.py)",
            run="assert len(list(PredictionBlock(3, 2, nn.ReLU()).parameters())) == 2",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class MLP(nn.Module):
                def __init__(self, sizes=(8, 16, 4)):
                    super().__init__()
                    self.sizes = [8, 16, 4]
                    self.names = ["in", "hidden", "out"]
                    layers = []
                    for a, b in zip(sizes, sizes[1:]):
                        layers.append(nn.Linear(a, b))
                        layers.append(nn.ReLU())
                    self.layers = layers
                    self.net = nn.Sequential(*layers)
                    self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
                    self.scale = nn.Parameter(torch.ones(1))
                    self.acts = [nn.ReLU(), nn.Dropout(0.1)]
                    self.register_buffer("mask", torch.ones(4))

                def forward(self, x):
                    return self.net(x) * self.scale
            """,
            note="numbers, names, a list also given to nn.Sequential, ModuleList, parameter-free layers",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Ensemble(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(4, 2)
                    self.b = nn.Linear(4, 2)
                    self.members = [self.a, self.b]
                    self.cache = torch.zeros(2)

                def forward(self, x):
                    return sum(m(x) for m in self.members)
            """,
            note="a list of layers that are already registered; a constant tensor",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Weighted(nn.Module):
                def __init__(self, weight):
                    super().__init__()
                    self.register_buffer("weight", torch.tensor(float(weight)))

                def forward(self, x):
                    return self.weight * x

            class MultiLoss(nn.Module):
                def __init__(self, losses):
                    super().__init__()
                    self.losses = nn.ModuleList(losses)

            class Trainer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.loss_modules = [Weighted(1.0), Weighted(0.5)]
                    self.losses = MultiLoss(self.loss_modules)
            """,
            # stable-audio-tools training/autoencoders.py and training/diffusion.py
            run="""
            t = Trainer().to(torch.float64)
            assert list(t.state_dict()) == ["losses.losses.0.weight", "losses.losses.1.weight"]
            assert t.loss_modules[0].weight.dtype == torch.float64
            """,
            note="a list also given to the constructor of a module stored on self, which registers it "
            "(stable-audio-tools training/autoencoders.py)",
        ),
        Valid(
            """
            import torch

            class Stats:
                def __init__(self):
                    self.history = [torch.zeros(3, requires_grad=True)]
            """,
            note="not an nn.Module",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class FeedForward(nn.Module):
                def __init__(self, dims, activations):
                    super().__init__()
                    self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
                    self.activations = activations

                def forward(self, x):
                    for layer, activation in zip(self.layers, self.activations):
                        x = activation(layer(x))
                    return x

            model = FeedForward([4, 8, 1], [nn.ReLU(), torch.tanh])
            """,
            note="the callers pass parameter-free layers and functions",
            run="assert len(list(model.parameters())) == 4",
        ),
        Valid(
            """
            import torch.nn as nn

            class IResNetLayer(nn.Module):
                def __init__(self, dim, hidden=8):
                    super().__init__()
                    self.layers = [nn.Linear(dim, hidden), nn.Linear(hidden, dim)]
                    elus = [nn.ELU() for _ in self.layers]
                    self.residual = nn.Sequential(*sum(zip(self.layers, elus), ())[:-1])

                def forward(self, x):
                    return x + self.residual(x)
            """,
            run="""
            layer = IResNetLayer(4)
            assert len(list(layer.parameters())) == 4 and layer.layers[0].weight is layer.residual[0].weight
            """,
            note="FrEIA modules/invertible_resnet.py: the list's layers, interleaved with activations by "
            "`sum(zip(...), ())`, are registered through the `nn.Sequential`",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class MovingAvgBlock(nn.Module):
                def __init__(self, kernel_size, stride):
                    super().__init__()
                    self.kernel_size = kernel_size
                    self.avg = nn.AvgPool1d(kernel_size=kernel_size, stride=stride, padding=0)

                def forward(self, x):
                    front = x[:, 0:1, :].repeat(1, (self.kernel_size - 1) // 2, 1)
                    end = x[:, -1:, :].repeat(1, (self.kernel_size - 1) // 2, 1)
                    x = torch.cat([front, x, end], dim=1)
                    return self.avg(x.permute(0, 2, 1)).permute(0, 2, 1)

            class SeriesDecompositionMultiBlock(nn.Module):
                def __init__(self, kernel_size):
                    super().__init__()
                    self.moving_avg = [MovingAvgBlock(kernel, stride=1) for kernel in kernel_size]
                    self.layer = torch.nn.Linear(1, len(kernel_size))

                def forward(self, x):
                    means = torch.cat([func(x).unsqueeze(-1) for func in self.moving_avg], dim=-1)
                    return x - torch.sum(means * torch.softmax(self.layer(x.unsqueeze(-1)), -1), dim=-1)
            """,
            run="""
            m = SeriesDecompositionMultiBlock([3, 5])
            fixed = nn.ModuleList(m.moving_avg)
            assert list(fixed.parameters()) == [] and list(fixed.state_dict()) == []
            x = torch.randn(2, 8, 4, dtype=torch.float64)
            m.to(torch.float64).eval()
            assert m(x).dtype == torch.float64 and torch.equal(m(x), m(x))
            """,
            note="pypots nn/modules/fedformer/layers.py (the block class is in another file of the package, "
            "autoformer/layers.py): blocks that own no parameter, buffer or mode-dependent layer lose nothing "
            "in a Python list (`.to()`, `state_dict()` and `.eval()` have nothing of theirs to reach)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class GAN(nn.Module):
                def __init__(self, data_shapes):
                    super().__init__()
                    self.data_input_list = [nn.Parameter(torch.empty(s)) for s in data_shapes]
                    self.data_inputs = ["data_input_%d" % i for i in range(len(self.data_input_list))]
                    self.data_input_layers = []
                    for shape in data_shapes:
                        self.data_input_layers.append(nn.Parameter(torch.empty(shape)))
                    self.discriminator = nn.Linear(3, 1)

                def forward(self, data):
                    self.data_input_layers = [data]
                    return self.discriminator(self.data_input_layers[0]).mean()
            """,
            run="""
            m = GAN([(4, 3)])
            placeholders = [*m.data_input_list, *m.data_input_layers]
            optimizer = torch.optim.SGD(m.parameters(), lr=0.1)
            m(torch.randn(4, 3)).backward()
            optimizer.step()
            assert all(p.grad is None for p in placeholders)  # never read: nothing left untrained
            assert m.data_input_layers[0].requires_grad is False and len(m.data_inputs) == 1
            """,
            note="deepchem models/torch_models/gan.py: lists of Parameters left from a TensorFlow port, "
            "only measured with `len()` or rebound in `forward` before any read: they feed no computation",
        ),
        Valid(
            """
            import torch.nn as nn

            class Wrapper(nn.Module):
                def __init__(self, module):
                    super().__init__()
                    self.module = module

            # megatron-core distributed/distributed_data_parallel.py: the wrapped module is stored by the base
            # class; the list only points at its parameters (to flag them during gradient reduction)
            class DataParallel(Wrapper):
                def __init__(self, module):
                    super().__init__(module=module)
                    self.params_with_grad = []
                    for name, param in self.module.named_parameters():
                        if param.requires_grad:
                            self.params_with_grad.append(param)

                def forward(self, x):
                    return self.module(x)
            """,
            run="""
            m = DataParallel(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)))
            registered = list(m.parameters())
            assert len(m.params_with_grad) == 4 and all(any(p is q for q in registered) for p in m.params_with_grad)
            assert len(m.state_dict()) == 4
            """,
            note="dev13 megatron-core: the parameters of `self.<attr>.named_parameters()` belong to a module held "
            "as an attribute of the module, registered by whoever stored it (a base class's `__init__`)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class FusedTables(nn.Module):
                def __init__(self, rows):
                    super().__init__()
                    self.rows = rows
                    self.flat = nn.Parameter(torch.randn(sum(rows) * 4))

                def split_embedding_weights(self):
                    return [w.view(-1, 4) for w in self.flat.detach().split([r * 4 for r in self.rows])]

                def forward(self, ids):
                    return self.flat.view(-1, 4)[ids]

            class FusedEmbeddingBags(nn.Module):
                def __init__(self, groups):
                    super().__init__()
                    # kept out of the module tree on purpose: their weights are exposed as embedding_bags
                    self._emb_modules = []
                    for rows in groups.values():
                        self._emb_modules.append(FusedTables(rows))
                    self.embedding_bags = nn.ModuleDict()
                    for (_key, rows), emb_module in zip(groups.items(), self._emb_modules):
                        for i, weight in enumerate(emb_module.split_embedding_weights()):
                            self.embedding_bags[f"{_key}_{i}"] = nn.Module()
                            self.embedding_bags[f"{_key}_{i}"].register_parameter("weight", nn.Parameter(weight))

                def forward(self, ids):
                    return torch.cat([m(ids) for m in self._emb_modules], dim=-1)
            """,
            run="""
            m = FusedEmbeddingBags({"a": [3, 2], "b": [5]})
            assert sorted(m.state_dict()) == ["embedding_bags.a_0.weight", "embedding_bags.a_1.weight",
                                              "embedding_bags.b_0.weight"]
            with torch.no_grad():
                m.embedding_bags["a_1"].weight.fill_(7.0)  # (what an optimizer step on them does)
            assert torch.equal(m._emb_modules[0].flat[12:], torch.full((8,), 7.0))  # the same storage
            """,
            note="torchrec modules/fused_embedding_modules.py: the list of fused kernels is kept out of "
            "the module tree on purpose, and each table's weight is registered again as a parameter of "
            "`self` (`register_parameter('weight', nn.Parameter(weight))`), sharing the kernel's storage",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Enhanced(nn.Module):
                def __init__(self, layer, activation):
                    super().__init__()
                    self.model = nn.Sequential(layer, activation)

                def forward(self, x):
                    return self.model(x)

            class ResidualFeedForward(nn.Module):
                def __init__(self, dim=4, n_layers=2):
                    super().__init__()
                    self.layers = []
                    for _ in range(n_layers):
                        self.layers.append(nn.Linear(dim, dim))
                    blocks = []
                    for layer in self.layers:
                        blocks.append(Enhanced(layer=layer, activation=nn.Tanh()))
                    self.inner_layers = nn.Sequential(*blocks)

                def forward(self, x):
                    return self.inner_layers(x)

                def weight_norms(self):
                    return [layer.weight.norm() for layer in self.layers]
            """,
            # from pina-mathlab 0.3.2.post2610 pina/_src/model/feed_forward.py (ResidualFeedForward)
            run="""
            m = ResidualFeedForward()
            registered = list(m.parameters())
            assert all(any(p is q for q in registered) for layer in m.layers for p in layer.parameters())
            assert m.to(torch.float64).layers[0].weight.dtype == torch.float64
            """,
            note="holdout7 pina-mathlab: the list's layers are given to a wrapper module that keeps them, and the "
            "wrappers to a registered `nn.Sequential`: every layer of the list is registered through it",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            from torch.nn import Parameter

            class MetaApprox(nn.Module):
                def __init__(self, sizes=(4, 3), lr=0.1):
                    super().__init__()
                    self.weights = []
                    self.biases = []
                    for a, b in zip(sizes, sizes[1:]):
                        self.weights.append(Parameter(torch.randn(a, b)))
                        self.biases.append(Parameter(torch.zeros(b)))
                    self.optimizer = torch.optim.Adam(self.weights + self.biases, lr=lr)

                def forward(self, x):
                    for w, b in zip(self.weights, self.biases):
                        x = x @ w + b
                    return x

            class Metattack(nn.Module):
                def __init__(self, sizes=(4, 3)):
                    super().__init__()
                    self.weights = []
                    for a, b in zip(sizes, sizes[1:]):
                        self.weights.append(Parameter(torch.randn(a, b)))

                def inner_train(self, x, lr=0.1):
                    grads = torch.autograd.grad((x @ self.weights[0]).pow(2).sum(), self.weights, create_graph=True)
                    self.weights = [w - lr * g for w, g in zip(self.weights, grads)]
            """,
            # from deeprobust 0.2.11 deeprobust/graph/global_attack/mettack.py (Metattack, MetaApprox)
            run="""
            m = MetaApprox()
            before = m.weights[0].detach().clone()
            m(torch.randn(5, 4)).pow(2).sum().backward()
            m.optimizer.step()
            assert list(m.parameters()) == [] and not torch.equal(before, m.weights[0])
            a = Metattack()
            before = a.weights[0].detach().clone()
            a.inner_train(torch.randn(5, 4))
            assert not torch.equal(before, a.weights[0].detach())
            """,
            note="holdout7 deeprobust: functional weights of meta-learning, kept in lists that the class itself "
            "hands to its optimizer or to `torch.autograd.grad` (then updates by hand): they train without "
            "`model.parameters()`, and an `nn.ParameterList` would refuse the code's `self.weights = [...]`",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class FastWeights(nn.Module):
                def __init__(self, dims=(4, 3)):
                    super().__init__()
                    self.fast = [nn.Parameter(torch.randn(b, a)) for a, b in zip(dims, dims[1:])]

                def fast_parameters(self):
                    return self.fast

                def forward(self, x):
                    for w in self.fast:
                        x = F.linear(x, w)
                    return x
            """,
            run="""
            m = FastWeights()
            optimizer = torch.optim.SGD(m.fast_parameters(), lr=0.1)
            before = m.fast[0].detach().clone()
            m(torch.randn(2, 4)).sum().backward()
            optimizer.step()
            assert not torch.equal(before, m.fast[0])
            """,
            note="a list of parameters the class returns from a `*parameters()` method: whoever trains it "
            "takes it from there, not from `model.parameters()`",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Affine(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.weight = torch.randn(dim, requires_grad=True)
                    self.bias = nn.Parameter(torch.zeros(dim))

                def forward(self, x):
                    return x * self.weight + self.bias
            """,
            lines=[7],
            fixed="""
            import torch
            import torch.nn as nn

            class Affine(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(dim))
                    self.bias = nn.Parameter(torch.zeros(dim))

                def forward(self, x):
                    return x * self.weight + self.bias
            """,
            check_fixed="""
            m = Affine(3)
            assert len(list(m.parameters())) == 2
            m(torch.randn(2, 3)).sum().backward()
            assert m.weight.grad is not None and "weight" in m.state_dict()
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Tower(nn.Module):
                def __init__(self, depth=3):
                    super().__init__()
                    self.layers = [nn.Linear(16, 16) for _ in range(depth)]
                    self.heads = {"cls": nn.Linear(16, 10), "box": nn.Linear(16, 4)}
                    self.out = nn.Linear(16, 1)

                def forward(self, x):
                    for layer in self.layers:
                        x = torch.relu(layer(x))
                    return self.out(x) + self.heads["cls"](x).sum(1, keepdim=True)
            """,
            lines=[7, 8],
            fixed="""
            import torch
            import torch.nn as nn

            class Tower(nn.Module):
                def __init__(self, depth=3):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(16, 16) for _ in range(depth)])
                    self.heads = nn.ModuleDict({"cls": nn.Linear(16, 10), "box": nn.Linear(16, 4)})
                    self.out = nn.Linear(16, 1)

                def forward(self, x):
                    for layer in self.layers:
                        x = torch.relu(layer(x))
                    return self.out(x) + self.heads["cls"](x).sum(1, keepdim=True)
            """,
            check_fixed="""
            m = Tower()
            assert len(list(m.parameters())) == 2 * 3 + 2 * 2 + 2
            m(torch.randn(2, 16)).sum().backward()
            assert all(layer.weight.grad is not None for layer in m.layers)
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Experts(nn.Module):
                def __init__(self, n=4):
                    super().__init__()
                    self.experts = []
                    for _ in range(n):
                        self.experts.append(nn.Linear(8, 8))
                    self.gates = []
                    for _ in range(n):
                        self.gates.append(nn.Parameter(torch.zeros(1)))

                def forward(self, x):
                    return sum(g * e(x) for g, e in zip(self.gates, self.experts))
            """,
            lines=[7, 10],
            fixed="""
            import torch
            import torch.nn as nn

            class Experts(nn.Module):
                def __init__(self, n=4):
                    super().__init__()
                    self.experts = nn.ModuleList()
                    for _ in range(n):
                        self.experts.append(nn.Linear(8, 8))
                    self.gates = nn.ParameterList()
                    for _ in range(n):
                        self.gates.append(nn.Parameter(torch.zeros(1)))

                def forward(self, x):
                    return sum(g * e(x) for g, e in zip(self.gates, self.experts))
            """,
            check_fixed="""
            m = Experts()
            assert len(list(m.parameters())) == 4 * 2 + 4
            """,
        ),
        Invalid(
            """
            import torch.nn as nn

            class Stack(nn.Module):
                def __init__(self):
                    super().__init__()
                    blocks = []
                    for i in range(3):
                        blocks.append(nn.Conv2d(4, 4, 3, padding=1))
                    self.blocks = blocks

                def forward(self, x):
                    for block in self.blocks:
                        x = block(x)
                    return x
            """,
            lines=[9],
            fixed="""
            import torch.nn as nn

            class Stack(nn.Module):
                def __init__(self):
                    super().__init__()
                    blocks = []
                    for i in range(3):
                        blocks.append(nn.Conv2d(4, 4, 3, padding=1))
                    self.blocks = nn.ModuleList(blocks)

                def forward(self, x):
                    for block in self.blocks:
                        x = block(x)
                    return x
            """,
            check_fixed="assert len(list(Stack().parameters())) == 6",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            from torch.autograd import Variable

            class Scale(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.alpha = Variable(torch.ones(1), requires_grad=True)
                    self.beta = torch.zeros(1)
                    self.beta.requires_grad = True

                def forward(self, x):
                    return x * self.alpha + self.beta
            """,
            lines=[8, 9],
            fixed="""
            import torch
            import torch.nn as nn
            from torch.autograd import Variable

            class Scale(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.alpha = nn.Parameter(torch.ones(1))
                    self.beta = nn.Parameter(torch.zeros(1))
                    self.beta.requires_grad = True

                def forward(self, x):
                    return x * self.alpha + self.beta
            """,
            check_fixed="assert len(list(Scale().parameters())) == 2",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class MultiTask(nn.Module):
                def __init__(self, tasks, dim=8):
                    super().__init__()
                    self.body = nn.Linear(dim, dim)
                    self.heads = {t: nn.Linear(dim, 1) for t in tasks}
                    self.aux = dict(depth=nn.Linear(dim, 1), normal=nn.Linear(dim, 3))

                def forward(self, x):
                    h = torch.relu(self.body(x))
                    out = {t: head(h) for t, head in self.heads.items()}
                    return out, self.aux["depth"](h), self.aux["normal"](h)
            """,
            lines=[8, 9],
            fixed="""
            import torch
            import torch.nn as nn

            class MultiTask(nn.Module):
                def __init__(self, tasks, dim=8):
                    super().__init__()
                    self.body = nn.Linear(dim, dim)
                    self.heads = nn.ModuleDict({t: nn.Linear(dim, 1) for t in tasks})
                    self.aux = nn.ModuleDict(dict(depth=nn.Linear(dim, 1), normal=nn.Linear(dim, 3)))

                def forward(self, x):
                    h = torch.relu(self.body(x))
                    out = {t: head(h) for t, head in self.heads.items()}
                    return out, self.aux["depth"](h), self.aux["normal"](h)
            """,
            run="""
            m = MultiTask(["seg", "cls"])
            params = {name for name, _ in m.named_parameters()}
            """,
            check_fixed="""
            assert {"heads.seg.weight", "heads.cls.weight", "aux.depth.weight", "aux.normal.bias"} <= params
            out, depth, normal = m(torch.randn(2, 8))
            (sum(o.sum() for o in out.values()) + depth.sum() + normal.sum()).backward()
            assert m.heads["seg"].weight.grad is not None and m.aux["normal"].weight.grad is not None
            """,
            note="a dict comprehension and a dict(...) call of layers: nn.ModuleDict",
        ),
        Invalid(
            """
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self, n_layers=2, n_hid=4):
                    super().__init__()
                    self.hids = []
                    for _ in range(n_layers):
                        self.hids.append([nn.Linear(n_hid, n_hid), nn.Tanh()])

                def forward(self, x):
                    for linear, act in self.hids:
                        x = act(linear(x))
                    return x
            """,
            lines=[6],
            fixed="""
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self, n_layers=2, n_hid=4):
                    super().__init__()
                    self.hids = nn.ModuleList()
                    for _ in range(n_layers):
                        self.hids.append(nn.ModuleList([nn.Linear(n_hid, n_hid), nn.Tanh()]))

                def forward(self, x):
                    for linear, act in self.hids:
                        x = act(linear(x))
                    return x
            """,
            check_fixed="""
            import torch
            net = Net()
            assert len(list(net.parameters())) == 4
            net(torch.randn(3, 4)).sum().backward()
            assert net.hids[0][0].weight.grad is not None
            """,
            note="a list of [layer, activation] pairs (pytorch/pytorch#715): a ModuleList of ModuleLists",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class FeedForward(nn.Module):
                def __init__(self, dims, activations):
                    super().__init__()
                    self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
                    self.activations = activations

                def forward(self, x):
                    for layer, activation in zip(self.layers, self.activations):
                        x = activation(layer(x))
                    return x

            slope = nn.PReLU()
            model = FeedForward([4, 8, 1], [slope, nn.Identity()])
            """,
            lines=[8],
            fixed="""
            import torch
            import torch.nn as nn

            class FeedForward(nn.Module):
                def __init__(self, dims, activations):
                    super().__init__()
                    self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
                    self.activations = nn.ModuleList(activations)

                def forward(self, x):
                    for layer, activation in zip(self.layers, self.activations):
                        x = activation(layer(x))
                    return x

            slope = nn.PReLU()
            model = FeedForward([4, 8, 1], [slope, nn.Identity()])
            """,
            run="assert any(p is slope.weight for p in model.parameters()), 'the PReLU slope is not a parameter'",
            raises="the PReLU slope is not a parameter",
            check_fixed="""
            model(torch.randn(2, 4)).sum().backward()
            assert slope.weight.grad is not None
            """,
            note="the layers come from the caller: judged by the calls in the file",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class SharedDropout(nn.Module):
                def __init__(self, p):
                    super().__init__()
                    self.p = p

                def forward(self, x):
                    return F.dropout(x, self.p, training=self.training)

            class Encoder(nn.Module):
                def __init__(self, n=2):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(n)])
                    self.dropouts = [SharedDropout(0.5) for _ in range(n)]

                def forward(self, x):
                    for layer, dropout in zip(self.layers, self.dropouts):
                        x = dropout(layer(x))
                    return x
            """,
            lines=[17],
            fixed="""
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class SharedDropout(nn.Module):
                def __init__(self, p):
                    super().__init__()
                    self.p = p

                def forward(self, x):
                    return F.dropout(x, self.p, training=self.training)

            class Encoder(nn.Module):
                def __init__(self, n=2):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(n)])
                    self.dropouts = nn.ModuleList([SharedDropout(0.5) for _ in range(n)])

                def forward(self, x):
                    for layer, dropout in zip(self.layers, self.dropouts):
                        x = dropout(layer(x))
                    return x
            """,
            run="""
            model = Encoder()
            model.eval()
            assert not model.dropouts[0].training, "the dropouts stay in training mode after model.eval()"
            """,
            raises="the dropouts stay in training mode after model.eval()",
            check_fixed="""
            x = torch.ones(3, 4)
            assert torch.equal(model(x), model(x))
            """,
            note="fairseq examples/speech_recognition/models/w2l_conv_glu_enc.py: a list of dropout layers owns "
            "no parameters, but `model.eval()` does not reach it, so dropout stays on at evaluation",
        ),
        # dev10 xformers benchmarks/benchmark_sp24.py: the leaf is stored again under a second name
        # (`self.out = self.input`); reported once, where it is made (the second store crashed the rule)
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Scale(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.weight = torch.ones(dim, requires_grad=True)
                    self.last = self.weight

                def forward(self, x):
                    return x * self.weight
            """,
            lines=[7],
            fixed="""
            import torch
            import torch.nn as nn

            class Scale(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.weight = nn.Parameter(torch.ones(dim))
                    self.last = self.weight

                def forward(self, x):
                    return x * self.weight
            """,
            check_fixed="""
            m = Scale(3)
            assert len(list(m.parameters())) == 1
            m(torch.randn(2, 3)).sum().backward()
            assert m.weight.grad is not None and "weight" in m.state_dict()
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Head(nn.Module):
                def __init__(self, layer):
                    super().__init__()
                    self.proj = nn.Linear(layer.out_features, 2)

                def forward(self, x):
                    return self.proj(x)

            class Model(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = [nn.Linear(4, 4), nn.Linear(4, 4)]
                    self.heads = nn.ModuleList([Head(layer) for layer in self.layers])

                def forward(self, x):
                    return [head(layer(x)) for layer, head in zip(self.layers, self.heads)]
            """,
            lines=[15],
            fixed="""
            import torch
            import torch.nn as nn

            class Head(nn.Module):
                def __init__(self, layer):
                    super().__init__()
                    self.proj = nn.Linear(layer.out_features, 2)

                def forward(self, x):
                    return self.proj(x)

            class Model(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
                    self.heads = nn.ModuleList([Head(layer) for layer in self.layers])

                def forward(self, x):
                    return [head(layer(x)) for layer, head in zip(self.layers, self.heads)]
            """,
            run="""
            m = Model()
            assert any(p is m.layers[0].weight for p in m.parameters()), "the list's layers are not registered"
            """,
            raises="the list's layers are not registered",
            check_fixed="""
            model = Model()
            assert len(list(model.parameters())) == 8
            sum(y.sum() for y in model(torch.randn(3, 4))).backward()
            assert model.layers[0].weight.grad is not None
            """,
            note="the layers are given to a wrapper module, but its `__init__` only reads `layer.out_features`: "
            "it keeps no reference, so nothing registers them",
        ),
        Invalid(
            """
            import copy

            import torch
            import torch.nn as nn

            class Reset(nn.Module):
                def __init__(self, n=2):
                    super().__init__()
                    self.weights = [nn.Parameter(torch.randn(3, 3)) for _ in range(n)]
                    self.initial = copy.deepcopy(self.weights)

                def forward(self, x):
                    for w in self.weights:
                        x = x @ w
                    return x
            """,
            lines=[9],
            fixed="""
            import copy

            import torch
            import torch.nn as nn

            class Reset(nn.Module):
                def __init__(self, n=2):
                    super().__init__()
                    self.weights = nn.ParameterList([nn.Parameter(torch.randn(3, 3)) for _ in range(n)])
                    self.initial = copy.deepcopy(self.weights)

                def forward(self, x):
                    for w in self.weights:
                        x = x @ w
                    return x
            """,
            run="""
            m = Reset()
            assert any(p is m.weights[0] for p in m.parameters()), "the weights are not parameters"
            """,
            raises="the weights are not parameters",
            check_fixed="""
            model = Reset()
            model(torch.randn(2, 3)).sum().backward()
            assert model.weights[0].grad is not None and model.initial[0].grad is None
            """,
            note="a list of parameters handed to a call that is not an optimizer (an unknown one): not "
            "known to train them, still reported",
        ),
    ]

    def check(self, unit: Unit) -> Iterator[Finding]:
        for cls in unit.module_classes():
            init = unit.methods(cls).get("__init__")
            if init is None:
                continue
            text = node_text(unit, init)
            if _CANDIDATE_TEXT.search(text) or _stores_a_parameter(init, text):
                yield from self._check_init(unit, init, cls)

    # -- one __init__ -----------------------------------------------------------------------------
    def _check_init(self, unit: Unit, init: ast.AST, cls: ast.ClassDef) -> Iterator[Finding]:
        """Every `self.x = value` of `__init__`, judged by what `self.x` holds when `__init__`
        ends (after appends, `requires_grad_()`, ...): a tensor that requires grad but is not a
        parameter, or a Python container holding layers with parameters or parameters that no
        registered module holds too."""
        me = self_name(init) or "self"  # type: ignore[arg-type]
        flow = unit.semantics.flow(init)
        end = flow.exit_state
        if end is None:
            return
        stores = [
            e
            for e in flow.events_of(ATTRIBUTE_STORE)
            if isinstance(e.target, ast.Attribute)
            and isinstance(e.target.value, ast.Name)
            and e.target.value.id == me
            and isinstance(e.node, (ast.Assign, ast.AnnAssign))
        ]
        registered = _registered_roots(end.env, flow, unit)
        reported: set[str] = set()
        for event in stores:
            attr = event.target.attr  # type: ignore[union-attr]
            stmt = event.node
            value_node = stmt.value  # type: ignore[union-attr]
            if attr in reported or value_node is None:
                continue
            final = end.env.get(f"self.{attr}", event.value)
            if _grad_leaf(final) and _grad_leaf_made_here(event.value, final):
                reported.add(attr)
                # `self.out = self.input` stores the same leaf again: reported where it is made
                if isinstance(value_node, ast.Call):
                    yield self._grad_tensor(unit, attr, value_node)
                continue
            kinds = _unregistered_kinds(final, registered, unit=unit)
            if not kinds and isinstance(value_node, ast.Name) and not final.is_only(LIST | TUPLE | DICT):
                # `self.acts = acts` of a list the callers pass in: judged by the file's calls
                found = _passed_in(unit, cls, init, me, attr, value_node)
                if found is not None:
                    reported.add(attr)
                    passed_kinds, fixable, line = found
                    yield self._container(
                        unit, attr, value_node, passed_kinds, wrap_name=True, passed=line, fixable=fixable
                    )
                continue
            if (
                kinds
                and final.is_only(LIST | TUPLE | DICT)
                and attr not in _registered_one_by_one(init, me)
                and not _items_never_used(unit, cls, attr)
                and not (kinds == {_KIND_PARAM} and _trained_by_hand(unit, cls, attr))
            ):
                reported.add(attr)
                empty = _is_empty_container(value_node)
                wrap_name = isinstance(value_node, ast.Name)
                nested = _nested(final)
                inner = _inner_module_lists(unit, init, me, attr, value_node, flow) if nested else None
                yield self._container(
                    unit,
                    attr,
                    value_node,
                    kinds,
                    empty=empty,
                    wrap_name=wrap_name,
                    nested=nested,
                    inner=inner,
                    custom=_custom_layers_only(unit, final, registered),
                )

    # -- findings ----------------------------------------------------------------------------------
    def _grad_tensor(self, unit: Unit, attr: str, value: ast.Call) -> Finding:
        message = (
            f"`self.{attr}` requires grad but is a plain tensor, not an `nn.Parameter`\nIt is missing from "
            "`.parameters()` (an optimizer never updates it) and `state_dict()`, and `.to()` does not move it."
        )
        nn = nn_name(unit)
        fix = None
        if nn:
            inner = _without_requires_grad(unit, value)
            fix = self.make_fix(
                "Wrap in `nn.Parameter(...)`", [replace_node(unit, value, f"{nn}.Parameter({inner})")]
            )
        return self.finding(unit, value, message, fix=fix)

    def _container(
        self,
        unit: Unit,
        attr: str,
        value: ast.expr,
        kinds: set[str],
        empty: bool = False,
        wrap_name: bool = False,
        nested: bool = False,
        inner: list[ast.List | ast.Tuple] | None = None,
        passed: int | None = None,
        fixable: bool = True,
        custom: bool = False,
    ) -> Finding:
        dict_like = isinstance(value, (ast.Dict, ast.DictComp)) or _call_name(value) in _EMPTY_DICT_CALLS
        what = (
            "layers"
            if kinds == {_KIND_MODULE}
            else "parameters"
            if kinds == {_KIND_PARAM}
            else "layers/parameters"
        )
        container = "dict" if dict_like else "list" if not isinstance(value, ast.Tuple) else "tuple"
        suggestion = ("Module" if kinds == {_KIND_MODULE} else "Parameter") + (
            "Dict" if dict_like else "List"
        )
        message = (
            f"`self.{attr}` is a plain Python {container} of {what}, which `nn.Module` does not register\nThey "
            f"are missing from `.parameters()` (never trained) and `state_dict()`; use `nn.{suggestion}`."
        )
        if custom and kinds == {_KIND_MODULE}:
            # layers of classes other than torch.nn's may own no parameters, but `.train()`/`.eval()` never
            # reach them (fairseq w2l_conv_glu_enc.py: a list of `FairseqDropout`s)
            message = (
                f"`self.{attr}` is a plain Python {container} of {what}, which `nn.Module` does not register\n"
                "`model.eval()` and `model.train()` do not reach them (they stay in training mode: any dropout in them stays on at evaluation), "
                f"nor do `.parameters()`, `state_dict()` and `.to()`; use `nn.{suggestion}`."
            )
        if passed is not None:
            message = (
                f"`self.{attr}` holds the caller's Python list of {what}, which `nn.Module` "
                f"does not register\nThe {what} passed on line {passed} are missing from "
                f"`.parameters()` (never trained) and `state_dict()`; use `nn.{suggestion}({unit.segment(value)})`."
            )
        fix = None
        nn = nn_name(unit) if fixable else None
        # a container of containers (`self.hids.append([linear, act])`): nn.ModuleList rejects the
        # inner lists, and the right structure (nn.Sequential per item?) is the author's choice
        if nn and len(kinds) == 1 and not nested:
            new = _container_text(unit, value, f"{nn}.{suggestion}", empty, wrap_name, dict_like)
            if new is not None:
                fix = self.make_fix(f"Use `nn.{suggestion}`", [replace_node(unit, value, new)])
        elif nn and kinds == {_KIND_MODULE} and inner:
            # a list of [layer, activation] groups: a ModuleList of ModuleLists keeps iteration,
            # unpacking (`for linear, act in self.hids`) and indexing (`self.hids[0][0]`) as they were
            new = _container_text(unit, value, f"{nn}.ModuleList", empty, wrap_name, False)
            if new is not None:
                edits = [replace_node(unit, value, new)]
                edits += [
                    replace_node(
                        unit, group, f"{nn}.ModuleList([{', '.join(map(unit.segment, group.elts))}])"
                    )
                    for group in inner
                ]
                fix = self.make_fix("Use `nn.ModuleList` (of `nn.ModuleList`s)", edits)
        return self.finding(unit, value, message, fix=fix)


def _items_never_used(unit: Unit, cls: ast.ClassDef, attr: str) -> bool:
    """The class never uses what `self.<attr>` holds: every read of it takes its `len()`, fills it
    (`append`/`extend`/`insert`), or comes after a statement of the same method that rebinds it
    (`self.layers = [x]` at the top of `forward`). Its parameters or layers feed no computation, so
    not registering them loses nothing (deepchem's GAN: placeholder lists left from a TensorFlow port).
    An attribute the class never reads at all is not such a case: it is there for code elsewhere."""
    reads = self_attribute_reads(unit, cls, attr)
    if not reads:
        return False  # never read in the class: other code (another file, a trainer) may use it
    for node, method in reads:
        parent = unit.parent(node)
        if (
            isinstance(parent, ast.Call)
            and isinstance(parent.func, ast.Name)
            and parent.func.id == "len"
            and parent.args == [node]
            and not parent.keywords
        ):
            continue
        if isinstance(parent, ast.Attribute) and parent.attr in ("append", "extend", "insert"):
            call = unit.parent(parent)
            if isinstance(call, ast.Call) and call.func is parent:
                continue
        if rebound_before(node, method, self_name(method) or "self", attr, unit):
            continue
        return False
    return True


def _trained_by_hand(unit: Unit, cls: ast.ClassDef, attr: str) -> bool:
    """The class hands the list of parameters itself to what trains it: an optimizer
    (`optim.Adam(self.weights + self.biases)`), `torch.autograd.grad(loss, self.weights)` (an update
    written by hand: meta-learning's functional weights), or returns it from a `*parameters()`
    method. `model.parameters()` does not matter to such code (deeprobust graph/global_attack/mettack.py)."""
    for method in unit.methods(cls).values():
        me = self_name(method)
        for node in walk(method):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == attr
                and isinstance(node.value, ast.Name)
                and node.value.id == me
                and isinstance(node.ctx, ast.Load)
                and _handed_to_training(unit, method, node)
            ):
                return True
    return False


def _handed_to_training(unit: Unit, method, read: ast.expr) -> bool:
    node, parent = read, unit.parent(read)
    # `self.weights + self.biases`, `[*self.weights, w]`, `list(self.weights)`: the same parameters
    while isinstance(parent, (ast.BinOp, ast.Starred, ast.List, ast.Tuple)) or (
        isinstance(parent, ast.Call) and unit.module.call_name(parent) in ("list", "tuple", "itertools.chain")
    ):
        node, parent = parent, unit.parent(parent)
    if isinstance(parent, ast.Return):
        return method.name.endswith("parameters")
    if not isinstance(parent, ast.Call):
        return False
    given = {k.arg: k.value for k in parent.keywords}
    if unit.module.call_name(parent) == "torch.autograd.grad":
        return node is given.get("inputs", parent.args[1] if len(parent.args) > 1 else None)
    made = unit.semantics.flow(method).value_of(parent)
    if made.is_only(OPTIMIZER):  # (an unknown call's value may be anything: known only)
        return node is given.get("params", parent.args[0] if parent.args else None)
    return False


def _inner_module_lists(
    unit: Unit, init: ast.AST, me: str, attr: str, value: ast.expr, flow
) -> list[ast.List | ast.Tuple] | None:
    """The inner groups of a list of layer groups, when each is a list or tuple display of modules:
    the items of `self.x = [[a, b], ...]` / `[[a, b] for ...]`, or of every `self.x.append([a, b])`
    of `__init__` after `self.x = []` (which must be the only other use of `self.x` there); None
    when some group is anything else."""
    if isinstance(value, ast.List) and value.elts:
        groups = list(value.elts)
    elif isinstance(value, ast.ListComp):
        groups = [value.elt]
    elif _is_empty_container(value) and not isinstance(value, ast.Dict) and _call_name(value) != "dict":
        groups = []
        for node in ast.walk(init):
            if not (
                isinstance(node, ast.Attribute)
                and node.attr == attr
                and isinstance(node.value, ast.Name)
                and node.value.id == me
            ):
                continue
            parent = unit.parent(node)
            if isinstance(node.ctx, ast.Store):
                assigned = parent.value if isinstance(parent, (ast.Assign, ast.AnnAssign)) else None
                if assigned is not None and unit.segment(assigned) == unit.segment(value):
                    continue  # the `self.x = []` itself
                return None
            call = unit.parent(parent) if isinstance(parent, ast.Attribute) else None
            if not (
                isinstance(parent, ast.Attribute)
                and parent.attr == "append"
                and isinstance(call, ast.Call)
                and call.func is parent
                and len(call.args) == 1
                and not call.keywords
            ):
                return None
            groups.append(call.args[0])
    else:
        return None
    checked: list[ast.List | ast.Tuple] = []
    for group in groups:
        if not isinstance(group, (ast.List, ast.Tuple)) or not group.elts or group.lineno != group.end_lineno:
            return None
        if not all(flow.value_of(e).is_module or _nn_class_by_name(unit, e) for e in group.elts):
            return None
        checked.append(group)
    return checked or None


def _nn_class_by_name(unit: Unit, node: ast.expr) -> bool:
    """`getattr(nn, options["act"])()`: a layer of `torch.nn` chosen by name, built."""
    nn = nn_name(unit)
    return (
        nn is not None
        and isinstance(node, ast.Call)
        and isinstance(node.func, ast.Call)
        and isinstance(node.func.func, ast.Name)
        and node.func.func.id == "getattr"
        and len(node.func.args) == 2
        and unit.segment(node.func.args[0]) == nn
    )


def _custom_layers_only(unit: Unit, value, registered: frozenset, depth: int = 0) -> bool:
    """Every unregistered layer the container holds is an instance of a class of the project or a
    library (not `torch.nn`), which may own no parameters at all (a dropout wrapper)."""
    if depth > 4 or not value.known:
        return False
    parts = [p for p in [value.elem, *(value.items or ())] if p is not None]
    found = False
    for part in parts:
        if part.is_only(LIST | TUPLE | DICT):
            if not _custom_layers_only(unit, part, registered, depth + 1):
                return False
            found = True
        elif part.is_module:
            if not part.sources or part.sources <= registered:
                continue
            cls = part.cls or ""
            if not cls or cls.startswith("torch."):
                return False
            found = True
        elif part.kinds & ~NONE:
            return False
    return found


def _nested(value) -> bool:
    """The container holds (or may hold) other Python containers."""
    parts = [p for p in [value.elem, *(value.items or ())] if p is not None]
    return any(p.kinds & (LIST | TUPLE | DICT) for p in parts)


def _grad_leaf(value) -> bool:
    """A tensor that requires grad and is a leaf, but not an `nn.Parameter`."""
    return value.is_tensor and value.grad == YES and value.leaf == YES and not value.kinds & PARAMETER


def _grad_leaf_made_here(stored, final) -> bool:
    """The attribute became a grad leaf in `__init__` (created so, or marked later), not a
    parameter of another module stored by reference."""
    return not stored.kinds & PARAMETER


def _unregistered_kinds(value, registered: frozenset, depth: int = 0, unit: Unit | None = None) -> set[str]:
    """Kinds of what a Python container holds (through nested containers) that needs
    registering: layers with parameters, parameters and grad leaves no registered module holds."""
    if depth > 4 or not value.known or not value.is_only(LIST | TUPLE | DICT):
        return set()
    parts = [p for p in [value.elem, *(value.items or ())] if p is not None]
    kinds: set[str] = set()
    for part in parts:
        if part.is_only(LIST | TUPLE | DICT):
            kinds |= _unregistered_kinds(part, registered, depth + 1, unit)
        elif part.is_module:
            if is_param_free_layer(part.cls) or not part.sources or part.sources <= registered:
                continue
            if unit is not None and _holds_nothing(unit, part.cls):
                continue
            kinds.add(_KIND_MODULE)
        elif part.is_tensor and part.grad == YES and part.leaf == YES:
            if part.sources and part.sources <= registered:
                continue
            kinds.add(_KIND_PARAM)
    return kinds


def _holds_nothing(unit: Unit, cls: str | None) -> bool:
    """An instance of the module class `cls` (of this file, another file of the project, or an
    installed package read as source) owns no parameter, buffer or mode-dependent layer, and
    reads no `.training`: registering it carries nothing. Unknown is not nothing."""
    if not cls or cls.startswith("torch."):
        return False
    verdict, uses = unit.module.class_holdings(cls)
    unit.semantics.consulted.update(uses)  # (the answer rests on those classes' text)
    return verdict == holdings.NONE


def _registered_one_by_one(init: ast.AST, me: str) -> set[str]:
    """The list attributes whose items `__init__` registers in a loop over them:
    `for i, layer in enumerate(self.layers): self.add_module(str(i), layer)`, or whose items'
    tensors it registers again as parameters of `self`, sharing their storage (torchrec
    fused_embedding_modules.py: `for cfg, weight in zip(tables, emb.split_embedding_weights()):
    self.bags[cfg.name].register_parameter("weight", nn.Parameter(weight))` for each `emb` of the list)."""
    found: set[str] = set()
    for loop in ast.walk(init):
        if not isinstance(loop, ast.For):
            continue
        for attr, element in _self_list_elements(loop, me):
            if _registers(loop, element.id, me):
                found.add(attr)
    return found


def _self_list_elements(loop: ast.For, me: str) -> list[tuple[str, ast.Name]]:
    """(attribute, loop name) for each `self.<attribute>` the loop iterates: `for x in self.a`,
    `for i, x in enumerate(self.a)`, `for (k, v), x in zip(d.items(), self.a)`."""
    iterable, target = loop.iter, loop.target
    if (
        isinstance(iterable, ast.Call)
        and isinstance(iterable.func, ast.Name)
        and iterable.func.id == "enumerate"
        and iterable.args
        and isinstance(target, ast.Tuple)
        and len(target.elts) == 2
    ):
        iterable, target = iterable.args[0], target.elts[1]
    pairs: list[tuple[ast.expr, ast.expr]] = [(iterable, target)]
    if (
        isinstance(iterable, ast.Call)
        and isinstance(iterable.func, ast.Name)
        and iterable.func.id == "zip"
        and not iterable.keywords
        and isinstance(target, ast.Tuple)
        and len(target.elts) == len(iterable.args)
    ):
        pairs = list(zip(iterable.args, target.elts, strict=True))
    elif isinstance(target, ast.Tuple) and target.elts:
        pairs = [(iterable, target.elts[-1])]  # `for name, layer in self.named`
    return [
        (source.attr, name)
        for source, name in pairs
        if isinstance(source, ast.Attribute)
        and isinstance(source.value, ast.Name)
        and source.value.id == me
        and isinstance(name, ast.Name)
    ]


def _registers(loop: ast.For, element: str, me: str) -> bool:
    """The loop registers `element` as a module of `self` (`add_module(name, element)`), or a tensor
    read from it as a parameter of `self` holding the same storage: `register_parameter(name,
    nn.Parameter(w))` where `w` is bound by an inner loop over an expression of `element` (`for w in
    element.split_weights()`) or read from it (`w = element.weight`)."""
    derived = {element}
    for node in ast.walk(loop):
        if isinstance(node, ast.For) and node is not loop and _names(node.iter) & derived:
            derived |= _names(node.target)
        elif isinstance(node, ast.Assign) and chain_root(node.value) in derived:
            for target in node.targets:  # (`w = element.weight`, not `w = element.weight.clone()`)
                derived |= _names(target)
    for node in ast.walk(loop):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and len(node.args) == 2
            and chain_root(node.func.value) == me  # the module itself or something it holds
        ):
            continue
        value = node.args[1]
        if node.func.attr in ("add_module", "register_module"):
            if isinstance(value, ast.Name) and value.id == element:
                return True
        elif node.func.attr == "register_parameter" and _parameter_of(value, derived):
            return True
    return False


def _parameter_of(value: ast.expr, names: set[str]) -> bool:
    """`nn.Parameter(w)` with `w` one of `names`: it shares `w`'s storage, so the optimizer's steps
    reach the item's tensor."""
    if not (isinstance(value, ast.Call) and len(value.args) == 1 and not value.keywords):
        return False
    func = value.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    arg = value.args[0]
    return called == "Parameter" and isinstance(arg, ast.Name) and arg.id in names


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _registered_roots(env: dict, flow, unit: Unit) -> frozenset:
    """Roots of everything a registered module attribute, `add_module`/`register_*` or
    `setattr` holds (a list also handed to `nn.Sequential` is registered that way), and of the
    modules given to the constructor of a registered module that keeps them (`Wrapper(layer)`)."""
    roots = set(_directly_registered_roots(env, flow))
    wrapped = _wrapped_roots(unit, flow)
    grown = True
    while grown:  # a wrapper of a wrapper of a registered module: registered too
        grown = False
        for made, kept in wrapped.items():
            if made in roots and not kept <= roots:
                roots |= kept
                grown = True
    return frozenset(roots)


def _wrapped_roots(unit: Unit, flow) -> dict:
    """For each module built in the scope by a call given other modules (`EnhancedLinear(layer=layer)`,
    `nn.Sequential(*blocks)`): the call's roots -> the roots of the modules it was given, when the
    class keeps them (torch.nn's containers and wrappers do; a class of this file only when its
    `__init__` does more with the argument than read its attributes; a class not read here may)."""
    wrapped: dict = {}
    for call in walk(flow.func):
        if not isinstance(call, ast.Call):
            continue
        made = flow.value_of(call)
        if not (made.known and made.is_module and made.sources) or not _keeps_arguments(unit, call):
            continue
        kept: set = set()
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            arg = arg.value if isinstance(arg, ast.Starred) else arg
            _collect_roots(flow.value_of(arg), kept)
            for iterable in _iterables_binding(unit, arg):
                _collect_roots(flow.value_of(iterable), kept)
        kept -= made.sources
        for root in made.sources:
            wrapped.setdefault(root, set()).update(kept)
    return wrapped


def _iterables_binding(unit: Unit, name: ast.expr) -> list[ast.expr]:
    """The iterables of the comprehensions and `for` loops around `name` whose target binds it
    (`Wrapper(layer) for layer in self.layers`): the name stands for every element of each."""
    if not isinstance(name, ast.Name):
        return []
    found = []
    for node in unit.ancestors(name):
        loops = (
            node.generators
            if isinstance(node, _COMPREHENSIONS)
            else [node]
            if isinstance(node, ast.For)
            else []
        )
        found += [loop.iter for loop in loops if name.id in _names(loop.target)]
    return found


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


def _keeps_arguments(unit: Unit, call: ast.Call) -> bool:
    """A module class's constructor may store the modules it is given. Only a class of this file
    whose `__init__` uses an argument solely as `arg.attribute` (`nn.Linear(layer.out_features, 2)`)
    is known not to keep it."""
    cls = unit.module.class_node(call.func.id) if isinstance(call.func, ast.Name) else None
    if cls is None:
        return True
    init = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
    if init is None:
        return True
    unit.semantics.consulted.add(cls.name)  # (the answer rests on that class's text)
    given = [
        *init.args.posonlyargs,
        *init.args.args,
        *init.args.kwonlyargs,
        init.args.vararg,
        init.args.kwarg,
    ]
    names = {a.arg for a in given[1:] if a is not None}
    read_attributes_of = {id(n.value) for n in walk(init) if isinstance(n, ast.Attribute)}
    return any(
        isinstance(n, ast.Name) and n.id in names and id(n) not in read_attributes_of for n in walk(init)
    )


def _directly_registered_roots(env: dict, flow) -> set:
    roots: set = set()
    for key, value in env.items():
        if key.startswith("self.") and key.count(".") == 1 and value.known and value.kinds & MODULE:
            _collect_roots(value, roots)
    for event in flow.events_of(ATTRIBUTE_STORE):
        if event.data in _REGISTER_METHODS or event.data == "setattr":
            _collect_roots(event.value, roots)
        elif (
            isinstance(event.node, ast.Assign)
            and isinstance(event.node.value, ast.Call)
            and isinstance(event.target, ast.Attribute)
            and event.value.known
            and event.value.is_module
        ):
            # `self.losses = MultiLoss(self.loss_modules)`: a module stored on self is built from
            # the list, and registers its layers (stable-audio-tools training/autoencoders.py)
            call = event.node.value
            for arg in [*call.args, *(k.value for k in call.keywords)]:
                arg = arg.value if isinstance(arg, ast.Starred) else arg
                _collect_roots(flow.value_of(arg), roots)
    me = self_name(flow.func) if isinstance(flow.func, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    for node in walk(flow.func) if me is not None else ():
        callee = node.func if isinstance(node, ast.Call) else None
        if (
            isinstance(callee, ast.Attribute)
            and callee.attr in ("parameters", "named_parameters")
            and isinstance(callee.value, ast.Attribute)
            and isinstance(callee.value.value, ast.Name)
            and callee.value.value.id == me
        ):
            # `self.module.named_parameters()`: the parameters of a module the object holds as an
            # attribute, which `nn.Module` registers whoever stored it (a base class's `__init__`:
            # megatron-core distributed/distributed_data_parallel.py)
            _collect_roots(flow.value_of(node), roots)
    return roots


def _collect_roots(value, roots: set, depth: int = 0) -> None:
    roots.update(value.sources)
    if depth < 4:
        for part in [value.elem, *(value.items or ())]:
            if part is not None:
                _collect_roots(part, roots, depth + 1)


def _container_text(
    unit: Unit, value: ast.expr, ctor: str, empty: bool, wrap_name: bool, dict_like: bool
) -> str | None:
    if empty:
        return f"{ctor}()"
    if wrap_name:
        return f"{ctor}({unit.segment(value)})"
    if dict_like:
        # ModuleDict keys must be strings without dots: a key written as another constant cannot
        # be one; a computed key (`{t: ... for t in tasks}`) raises at construction if it is not
        if isinstance(value, ast.Dict) and not all(
            k is not None
            and (not isinstance(k, ast.Constant) or (isinstance(k.value, str) and "." not in k.value))
            for k in value.keys
        ):
            return None
        if isinstance(value, ast.DictComp) and isinstance(value.key, ast.Constant):
            return None
        if isinstance(value, ast.Call) and any(isinstance(a, ast.Starred) for a in value.args):
            return None
        return f"{ctor}({unit.segment(value)})"
    if isinstance(value, (ast.List, ast.ListComp)):
        return f"{ctor}({unit.segment(value)})"
    if isinstance(value, ast.GeneratorExp):
        return f"{ctor}([{unit.segment(value)[1:-1]}])" if unit.segment(value).startswith("(") else None
    if isinstance(value, ast.Tuple) and value.lineno == value.end_lineno:
        return f"{ctor}([{', '.join(unit.segment(e) for e in value.elts)}])"
    return None


def _without_requires_grad(unit: Unit, call: ast.Call) -> str:
    """`torch.randn(3, requires_grad=True)` -> "torch.randn(3)";
    `torch.zeros(3).requires_grad_()` -> "torch.zeros(3)"; `Variable(t, requires_grad=True)` -> "t".
    Keeps the text otherwise."""
    func = call.func
    if (
        unit.module.call_name(call) in torch_facts.VARIABLE_NAMES
        and len(call.args) == 1
        and len(call.keywords) == 1
    ):
        return unit.segment(call.args[0])
    if isinstance(func, ast.Attribute) and func.attr == "requires_grad_":
        return unit.segment(func.value)
    kw = next((k for k in call.keywords if k.arg == "requires_grad"), None)
    if kw is None or call.lineno != call.end_lineno:
        return unit.segment(call)
    parts = [unit.segment(a) for a in call.args] + [unit.segment(k) for k in call.keywords if k is not kw]
    return f"{unit.segment(func)}({', '.join(parts)})"


def _is_empty_container(value: ast.AST) -> bool:
    if isinstance(value, (ast.List, ast.Dict)):
        return not (value.elts if isinstance(value, ast.List) else value.keys)
    return (
        isinstance(value, ast.Call)
        and not value.args
        and not value.keywords
        and _call_name(value) in (_EMPTY_LIST_CALLS | _EMPTY_DICT_CALLS)
    )


def _call_name(value: ast.AST) -> str | None:
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return value.func.id
    return None


_REGISTER_METHODS = ("add_module", "register_module", "register_parameter", "register_buffer")


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


# -- containers the callers pass in ----------------------------------------------------------------
_ITERATING_CALLS = frozenset({"zip", "enumerate", "len", "reversed", "list", "iter"})


def _init_parameters(init: ast.AST) -> list[str]:
    spec = init.args  # type: ignore[attr-defined]
    return [a.arg for a in [*spec.posonlyargs, *spec.args][1:]]


def _stores_a_parameter(init: ast.AST, text: str) -> bool:
    """Cheap: does `__init__` store one of its parameters on self (`self.acts = acts`)?"""
    return any(
        re.search(rf"self\.\w+\s*=\s*{re.escape(name)}\s*(#|$)", text, re.M)
        for name in _init_parameters(init)
    )


def _passed_in(
    unit: Unit, cls: ast.ClassDef, init: ast.AST, me: str, attr: str, name: ast.Name
) -> tuple[set[str], bool, int] | None:
    """`self.<attr> = <parameter>` where the file's calls of the class pass a Python list or tuple
    of layers with parameters (or of parameters) for it that nothing registers: (what needs
    registering, whether `nn.ModuleList(<parameter>)` / `nn.ParameterList(...)` is a fix for every
    call of the file, the line of the first such call). None when no call is known to pass one, or
    when `__init__` uses the parameter otherwise (registers it, iterates it, ...)."""
    params = _init_parameters(init)
    if name.id not in params or not _only_stored(init, name, unit.cache("gg103.init_uses", dict)):
        return None
    position = params.index(name.id)
    seen: list[tuple[set[str], bool, int]] = []
    unit.semantics.rests_on_mentions(cls.name)  # (a call added or removed elsewhere changes this)
    for call in _calls_by_name(unit, cls.name):
        unit.semantics.rests_on(unit.enclosing_function(call))
        arg = next((k.value for k in call.keywords if k.arg == name.id), None)
        if arg is None and not any(isinstance(a, ast.Starred) for a in call.args[: position + 1]):
            arg = call.args[position] if position < len(call.args) else None
        if arg is None:
            if any(k.arg is None for k in call.keywords) or any(
                isinstance(a, ast.Starred) for a in call.args
            ):
                seen.append((set(), False, call.lineno))  # what it passes is not known
            continue
        caller = unit.semantics.flow(unit.enclosing_function(call))
        value = caller.value_of(arg)
        registered: frozenset = frozenset()
        if caller.exit_state is not None:
            registered = _registered_roots(caller.exit_state.env, caller, unit)
        kinds = _unregistered_kinds(value, registered, unit=unit) if value.is_only(LIST | TUPLE) else set()
        parts = [p for p in [value.elem, *(value.items or ())] if p is not None]
        all_modules = value.known and value.is_only(LIST | TUPLE) and all(p.is_module for p in parts)
        seen.append((kinds, all_modules and not _nested(value), call.lineno))
    reported = [s for s in seen if s[0]]
    if not reported:
        return None
    kinds = set().union(*(s[0] for s in reported))
    fixable = kinds == {_KIND_MODULE} and all(s[1] for s in seen) and _used_as_a_sequence(unit, cls, me, attr)
    return kinds, fixable, reported[0][2]


def _calls_by_name(unit: Unit, name: str) -> list[ast.Call]:
    """The file's `name(...)` calls, in `ast.walk` order (once per file and name): a walk of the
    top-level statements whose text names it only (the same breadth-first order as a walk of the
    whole file)."""
    cache = unit.semantics.__dict__.setdefault("_gg103_calls", {})
    found = cache.get(name)
    if found is None:
        statements = unit.semantics.statements_naming(name)
        found = cache[name] = [
            node
            for node in walk(ast.Module(body=statements, type_ignores=[]))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
        ]
    return found


def _only_stored(init: ast.AST, name: ast.Name, cache: dict) -> bool:
    """Every other load of the parameter in `__init__` is an `isinstance` test or rebinds it
    (`acts = [acts] * n`): nothing else registers, iterates or copies what it holds."""
    uses = cache.get(init)
    if uses is None:
        uses = cache[init] = _load_uses(init)
    loads, harmless, rebinding = uses
    allowed = rebinding.get(name.id, set())
    return all(
        id(node) in harmless or id(node) in allowed for node in loads.get(name.id, ()) if node is not name
    )


def _load_uses(init: ast.AST) -> tuple[dict[str, list[ast.Name]], set[int], dict[str, set[int]]]:
    """One walk of `__init__`: the loads of each name; the nodes passed directly to `isinstance`;
    per name, the nodes of the values assigned to it alone (`acts = [acts] * n`)."""
    loads: dict[str, list[ast.Name]] = {}
    harmless: set[int] = set()
    rebinding: dict[str, set[int]] = {}
    for node in walk(init):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            loads.setdefault(node.id, []).append(node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
            harmless.update(id(a) for a in node.args)
        elif (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ):
            rebinding.setdefault(node.targets[0].id, set()).update(id(n) for n in walk(node.value))
    return loads, harmless, rebinding


def _used_as_a_sequence(unit: Unit, cls: ast.ClassDef, me: str, attr: str) -> bool:
    """The class only iterates, indexes, measures or appends to `self.<attr>` outside the store:
    what an `nn.ModuleList` does as the list did."""
    for node in ast.walk(cls):
        if not (
            isinstance(node, ast.Attribute)
            and node.attr == attr
            and isinstance(node.value, ast.Name)
            and node.value.id == me
            and isinstance(node.ctx, ast.Load)
        ):
            continue
        parent = unit.parent(node)
        if isinstance(parent, (ast.For, ast.comprehension)) and parent.iter is node:
            continue
        if isinstance(parent, ast.Subscript) and parent.value is node:
            continue
        if (
            isinstance(parent, ast.Call)
            and node in parent.args
            and getattr(parent.func, "id", None) in _ITERATING_CALLS
        ):
            continue
        if isinstance(parent, ast.Attribute) and parent.attr in ("append", "extend", "insert"):
            continue
        return False
    return True
