"""GG301: a value cut from the graph is what the loss (or forward's output) is made of."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from gradguard.engine import torch_facts
from gradguard.engine.finding import Applicability, Finding
from gradguard.engine.fixes import replace_node
from gradguard.engine.index import ModuleContext, Unit, keyword, self_name
from gradguard.engine.queries import (
    backward_events,
    calls_backward,
    dead_terms,
    describe,
    scope_text,
    unit_contains,
)
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.values import DATA, DETACH, ITEM, MAYBE, NUMPY_CUT, REWRAP, live_grad

_CUT_TEXT = re.compile(r"detach|\.data\b|\.item\(|\.tolist\(|\.numpy\(|tensor\(|float\(|from_numpy")


class DetachedLoss(Rule):
    code = "GG301"
    name = "detached-loss"
    summary = "The loss (or `forward`'s output) is computed only from values cut from the graph."
    why = (
        "A value from `.detach()`, `.item()`, `.data` and the like is not tracked by autograd, so a loss "
        "computed only from it sends no gradient to the model."
    )
    message = Message("`{cut}` cuts the graph, and `{loss}` reaches the model only through it")
    explanation = """
    `.detach()`, `.data`, `.item()`, `.tolist()`, `.numpy()`, `float(...)`, and copying a
    tensor into a new one with `torch.tensor(...)` all give a value that autograd does
    not track: nothing computed from it leads back to the parameters.

    When the loss you call `.backward()` on depends on the model only through such a
    value, no gradient reaches the model. If nothing else in the loss requires grad,
    PyTorch says so:
    *"element 0 of tensors does not require grad and does not have a grad_fn"* (and a
    Python number from `.item()`/`float()` has no `.backward()` at all). Re-wrapping
    with `torch.tensor(loss.item(), requires_grad=True)` silences that error but makes a
    new leaf: backward stops there and the parameters still get no gradient.
    Returning a cut value from `forward` has the same effect for every caller.

    Use the tensor itself in the loss and call `.item()` only for logging. Cutting is
    right, and not reported, where the cut value is a *target* or a *constant* next to a
    tracked prediction: a DQN target, a GAN discriminator step on `fake.detach()`, a
    teacher's output in distillation, a straight-through estimator
    `x + (q - x).detach()`, or a data-dependent initialization pass (a branch of `forward`
    chosen by its own flag argument that sets the parameters through `.data` from the
    output it returns, as weight normalization's `init=True`).

    **Fix safety.** Unsafe: the fix removes the cut (`.detach()`, `.data`, `.item()`, `.numpy()`,
    with the `.cpu()` of the same chain), so the term sends gradient into the model again; where
    the value was meant as a constant (a target, a teacher's output), that changes what trains, and
    a Python number or NumPy value becomes a tensor. Offered only where the cut value is used once,
    by the loss that is reported.
    """
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import math

            import torch
            import torch.nn as nn


            class FixedEmbedding(nn.Module):
                def __init__(self, c_in, d_model):
                    super().__init__()
                    w = torch.zeros(c_in, d_model)
                    position = torch.arange(0, c_in).float().unsqueeze(1)
                    div = (torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model)).exp()
                    w[:, 0::2] = torch.sin(position * div)
                    w[:, 1::2] = torch.cos(position * div)
                    self.emb = nn.Embedding(c_in, d_model)
                    self.emb.weight = nn.Parameter(w, requires_grad=False)

                def forward(self, x):
                    return self.emb(x).detach()
            """,
            note="neuralforecast common/_modules.py `FixedEmbedding`: the layer's only parameter is replaced "
            "by one created with `requires_grad=False`, so nothing trainable is behind the cut",
            run="""
            m = FixedEmbedding(24, 8)
            out = m(torch.tensor([[1, 5, 23]]))
            assert out.shape == (1, 3, 8) and not out.requires_grad
            assert not any(p.requires_grad for p in m.parameters())
            """,
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            def dqn_step(q_net, target_net, optimizer, s, a, r, s2, done, gamma=0.99):
                q = q_net(s).gather(1, a.unsqueeze(1)).squeeze(1)
                next_q = target_net(s2).max(1)[0].detach()
                target = r + gamma * next_q * (1 - done)
                loss = F.smooth_l1_loss(q, target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                return loss.item()
            """,
            note="DQN target is detached; the prediction q is tracked",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            def gan_step(G, D, opt_d, opt_g, real, z):
                bce = nn.BCEWithLogitsLoss()
                fake = G(z)
                d_loss = bce(D(real), torch.ones(real.size(0), 1)) + bce(D(fake.detach()), torch.zeros(real.size(0), 1))
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
                g_loss = bce(D(fake), torch.ones(real.size(0), 1))
                opt_g.zero_grad()
                g_loss.backward()
                opt_g.step()
            """,
            note="GAN: the discriminator step trains D on fake.detach()",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Quantizer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.proj = nn.Linear(16, 16)

                def forward(self, x):
                    h = self.proj(x)
                    q = torch.round(h * 4) / 4
                    return h + (q - h).detach()
            """,
            note="straight-through estimator",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(10, 2)
            criterion = nn.CrossEntropyLoss()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            running = 0.0
            for step in range(10):
                x, y = torch.randn(8, 10), torch.randint(0, 2, (8,))
                out = model(x)
                loss = criterion(out, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                running += loss.item()
                loss = loss.detach()
                acc = (out.detach().argmax(1) == y).float().mean().item()
            """,
            note=".item()/.detach() only for logging, after backward",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            def distill(student, teacher, x, optimizer, T=2.0):
                with torch.no_grad():
                    soft = F.softmax(teacher(x) / T, dim=1)
                logits = student(x)
                loss = F.kl_div(F.log_softmax(logits / T, dim=1), soft.detach(), reduction="batchmean")
                loss.backward()
                optimizer.step()
            """,
            note="distillation: the teacher's output is a target",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Encoder(nn.Module):
                def __init__(self, freeze=False):
                    super().__init__()
                    self.body = nn.Linear(8, 8)
                    self.freeze = freeze

                def forward(self, x):
                    feats = self.body(x)
                    if self.freeze:
                        feats = feats.detach()
                    return feats, feats.detach()
            """,
            note="conditional detach; a detached copy next to the tracked output",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            q = nn.Linear(4, 2)
            optimizer = torch.optim.SGD(q.parameters(), lr=0.1)
            s, s2, r = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8)
            target = r + 0.99 * q(s2).max(1)[0].detach()
            loss = F.mse_loss(q(s).max(1)[0], target) + 0.01 * q.weight.pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            """,
            note="a semi-gradient TD target from the same network: the detached value is the target",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class LatentQuantize(nn.Module):
                def __init__(self, dim, optimizer=None):
                    super().__init__()
                    self.project_out = nn.Linear(dim, dim)
                    self.codebook_optimizer = optimizer

                def quantization_loss(self, z, zhat):
                    return F.mse_loss(zhat.detach(), z)

                def commitment_loss(self, z, zhat):
                    return F.mse_loss(z.detach(), zhat)

                def forward(self, z):
                    out = self.project_out(torch.round(z))
                    if self.codebook_optimizer is not None:
                        loss = self.commitment_loss(z, out) + self.quantization_loss(z, out)
                        loss.backward()
                        self.codebook_optimizer.step()
                    loss = self.commitment_loss(z, out) + 0.25 * self.quantization_loss(z, out)
                    return out, loss
            """,
            run="""
            encoder = nn.Linear(4, 4)
            out, loss = LatentQuantize(4)(encoder(torch.randn(2, 4)))
            loss.backward()
            assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0
            """,
            note="vector-quantize-pytorch latent_quantization.py: `F.mse_loss(zhat.detach(), z)` still has a "
            "gradient through `z`, a `forward` input (the encoder's output) whose grad status is unknown",
        ),
        Valid(
            """
            import torch
            import torch.nn.functional as F

            def commitment_step(quantizer, z, optimizer):
                q = quantizer(z).detach()
                loss = F.mse_loss(q, z)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            run="""
            encoder, quantizer = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
            commitment_step(quantizer, encoder(torch.randn(5, 4)), torch.optim.SGD(encoder.parameters(), lr=0.1))
            assert encoder.weight.grad is not None and quantizer.weight.grad is None
            """,
            note="an argument with no caller in the file (`z`) has unknown grad status: here it is the encoder's "
            "output, and the loss trains the encoder towards the detached quantized value",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class SoftActorCritic:
                def __init__(self, buffer):
                    self.critic = nn.Linear(4, 1)
                    self.critic_target = nn.Linear(4, 1)
                    self.log_ent_coef = torch.zeros(1, requires_grad=True)
                    self.replay_buffer = buffer
                    self.optimizer = torch.optim.Adam(self.critic.parameters())

                def train(self, steps, gamma=0.99):
                    for _ in range(steps):
                        batch = self.replay_buffer.sample(8)
                        ent_coef = torch.exp(self.log_ent_coef.detach())
                        with torch.no_grad():
                            next_q = self.critic_target(batch.next_obs) - ent_coef * 0.1
                            target_q = batch.rewards + (1 - batch.dones) * gamma * next_q
                        critic_loss = 0.5 * F.mse_loss(self.critic(batch.obs), target_q)
                        self.optimizer.zero_grad()
                        critic_loss.backward()
                        self.optimizer.step()
            """,
            run="""
            from types import SimpleNamespace

            class Buffer:
                def sample(self, n):
                    return SimpleNamespace(obs=torch.randn(n, 4), next_obs=torch.randn(n, 4),
                                           rewards=torch.randn(n, 1), dones=torch.zeros(n, 1))

            sac = SoftActorCritic(Buffer())
            sac.train(2)
            assert sac.critic.weight.grad is not None and sac.critic_target.weight.grad is None
            """,
            note="stable-baselines3 sac/sac.py: the critic target is computed under `no_grad` on purpose; the "
            "discounted next-Q term is added to the rewards (data), not to a term with a gradient, so it is "
            "no constant term of the loss",
        ),
        Valid(
            """
            import copy

            import torch
            import torch.nn as nn

            class ImageScore(nn.Module):
                def __init__(self, encoder):
                    super().__init__()
                    self.feature_extractor = copy.deepcopy(encoder).eval()
                    for param in self.feature_extractor.parameters():
                        param.requires_grad = False
                    self.logit_scale = self.feature_extractor.logit_scale.exp()
                    self.register_buffer("anchors", torch.randn(2, 3))

                def forward(self, x):
                    with torch.no_grad():
                        features = self.feature_extractor(x)
                    features = features / features.norm(dim=-1, keepdim=True)
                    logits = self.logit_scale * features @ self.anchors.t()
                    return logits.softmax(dim=-1)[..., 0].detach()
            """,
            run="""
            class Encoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.proj = nn.Linear(4, 3)
                    self.logit_scale = nn.Parameter(torch.tensor(2.0))

                def forward(self, x):
                    return self.proj(x)

            metric = ImageScore(Encoder())
            assert not [p for p in metric.parameters() if p.requires_grad]
            assert not metric.logit_scale.requires_grad
            assert metric(torch.rand(5, 4)).shape == (5,)
            """,
            note="piq clip_iqa.py: a metric over a feature extractor whose parameters are all frozen; nothing "
            "behind the `.detach()` requires grad, so it cuts nothing",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Generator(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv1d(4, 1, 3, padding=1)

                def forward(self, mel):
                    return torch.tanh(self.conv(mel))

            class Vocoder(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.model = Generator()

                def forward(self, mel):
                    model = self.model.eval()
                    return model(mel.transpose(-1, -2)).detach().squeeze(1)

            class CodeVocoder(nn.Module):
                def __init__(self, state_dict=None):
                    super().__init__()
                    self.model = Generator()
                    if state_dict is not None:
                        self.model.load_state_dict(state_dict)
                    self.model.eval()

                def forward(self, mel):
                    return self.model(mel.transpose(-1, -2)).detach().squeeze()
            """,
            run="""
            mel = torch.randn(2, 10, 4)
            wav, codes = Vocoder()(mel), CodeVocoder()(mel)
            assert wav.shape == codes.shape == (2, 10) and not wav.requires_grad
            """,
            note="fairseq models/text_to_speech/vocoder.py `HiFiGANVocoder`/`CodeHiFiGANVocoder`: the class puts "
            "the model whose output it detaches in eval mode (in `forward` or `__init__`): a pretrained "
            "vocoder used for inference, not trained through this output",
        ),
        Valid(
            """
            import math

            import torch
            import torch.nn as nn
            import torch.onnx.operators

            class SinusoidalPositionalEmbedding(nn.Module):
                def __init__(self, dim, padding_idx=0, init_size=16):
                    super().__init__()
                    self.dim = dim
                    self.padding_idx = padding_idx
                    self.weights = SinusoidalPositionalEmbedding.get_embedding(init_size, dim)

                @staticmethod
                def get_embedding(num_embeddings, dim):
                    scale = torch.exp(torch.arange(dim // 2, dtype=torch.float) * -(math.log(10000) / (dim // 2 - 1)))
                    emb = torch.arange(num_embeddings, dtype=torch.float).unsqueeze(1) * scale.unsqueeze(0)
                    return torch.cat([torch.sin(emb), torch.cos(emb)], dim=1).view(num_embeddings, -1)

                def forward(self, tokens):
                    shape = torch.onnx.operators.shape_as_tensor(tokens)
                    bsz, seq_len = shape[0], shape[1]
                    if self.padding_idx + 1 + seq_len > self.weights.size(0):
                        self.weights = SinusoidalPositionalEmbedding.get_embedding(self.padding_idx + 1 + seq_len, self.dim)
                    positions = torch.cumsum(tokens.ne(self.padding_idx).int(), dim=1) + self.padding_idx
                    return self.weights.index_select(0, positions.view(-1)).view(bsz, seq_len, -1).detach()
            """,
            run="""
            out = SinusoidalPositionalEmbedding(8)(torch.tensor([[3, 4, 5], [6, 7, 0]]))
            assert out.shape == (2, 3, 8) and not out.requires_grad
            """,
            note="fairseq modules/sinusoidal_positional_embedding.py: a constant table; the sizes given to "
            "`.view(bsz, seq_len, -1)` (a shape read as tensors) carry no gradient into it",
        ),
        Valid(
            """
            import numpy as np
            import torch

            def thomson(n, rng=None):
                rng = np.random if rng is None else rng
                X = torch.tensor(rng.randn(n, 3).astype(np.float32), requires_grad=True)
                optim = torch.optim.Adam([X], lr=0.1)
                for _ in range(3):
                    optim.zero_grad()
                    U = (1.0 / torch.pdist(X)).sum()
                    U.backward()
                    optim.step()
                return X
            """,
            run="""
            X = thomson(5, np.random.RandomState(0))
            assert X.grad is not None and X.is_leaf
            """,
            note="escnn group/groups/_numerical_thomson.py: `torch.tensor(data, requires_grad=True)` of an unknown "
            "object's result (a random generator's array) is a new leaf, and it is the tensor being trained",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class ZeroPointSearch(nn.Module):
                def __init__(self, init_op: nn.Module, iters: int = 5):
                    super().__init__()
                    self.init_op = init_op
                    self.iters = iters
                    self.candidate = None
                    self.local_loss_mode = False

                def parameter_search(self, init, x):
                    best, best_loss, candidate = init, torch.tensor(float("inf")), init
                    for _ in range(self.iters):
                        loss = (x - candidate).abs().mean()
                        best = torch.where(loss < best_loss, candidate, best)
                        best_loss = torch.min(loss, best_loss)
                        candidate = (x - loss).mean(dim=-1, keepdim=True)
                    return best

                def optimize(self, x):
                    init = self.init_op(x).detach()
                    best = self.parameter_search(init, x)
                    self.candidate = best.detach()
                    return best

                def forward(self, x):
                    if not self.local_loss_mode:
                        with torch.no_grad():
                            return self.optimize(x)
                    if self.candidate is None:
                        self.candidate = self.init_op(x).detach()
                    return self.candidate
            """,
            note="dev6 brevitas core/stats/stats_op.py (`HalfQuadraticOptimizerZeroPoint`): `forward` calls the "
            "search under `torch.no_grad()`, so its result has no history whatever the search detaches; "
            "removing the `.detach()` would change nothing",
            run="""
            search = ZeroPointSearch(nn.Linear(4, 1))
            x = torch.randn(3, 4)
            assert not search(x).requires_grad
            search.optimize = lambda x: search.parameter_search(search.init_op(x), x)
            assert not search(x).requires_grad
            """,
        ),
        Valid(
            """
            import functools

            import torch
            import torch.nn as nn

            class WeightedRigidAlign(nn.Module):
                def forward(self, pred_coords, true_coords, weights):
                    weights = weights.unsqueeze(-1)
                    pred_centroid = (pred_coords * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True)
                    true_centroid = (true_coords * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True)
                    true_centered = true_coords - true_centroid
                    pred_centered = pred_coords - pred_centroid
                    cov = torch.einsum("bni,bnj->bij", weights * true_centered, pred_centered)
                    U, S, V = torch.svd(cov)
                    diag = torch.eye(3).repeat(cov.shape[0], 1, 1)
                    diag[:, -1, -1] = torch.det(V @ U.transpose(-2, -1))
                    rot = functools.reduce(torch.matmul, (V, diag, U.transpose(-2, -1)))
                    aligned = torch.einsum("bij,bnj->bni", rot, true_centered) + pred_centroid
                    aligned.detach_()
                    return aligned
            """,
            note="dev7 alphafold3-pytorch alphafold3.py (`WeightedRigidAlign`, AlphaFold 3 Algorithm 28): a module "
            "with no parameters aligns the ground truth onto the prediction and stops its gradient; the callers use "
            "it as the target next to the tracked prediction",
            run="""
            align = WeightedRigidAlign()
            pred = torch.randn(2, 5, 3, requires_grad=True)
            target = align(pred, torch.randn(2, 5, 3), torch.ones(2, 5))
            loss = ((pred - target) ** 2).mean()
            loss.backward()
            assert not target.requires_grad and pred.grad is not None
            assert not list(align.parameters())
            """,
        ),
        Valid(
            """
            import torch

            def compute_returns(next_value, rewards, masks, gamma=0.99):
                R = next_value
                returns = []
                for step in reversed(range(len(rewards))):
                    R = rewards[step] + gamma * R * masks[step]
                    returns.insert(0, R)
                return returns

            def a2c_update(model, optimizer, states, next_state, rewards, masks):
                log_probs, values = [], []
                for state in states:
                    dist, value = model(state)
                    log_probs.append(dist.log_prob(dist.sample()))
                    values.append(value)
                _, next_value = model(next_state)
                returns = compute_returns(next_value, rewards, masks)
                log_probs = torch.cat(log_probs)
                returns = torch.cat(returns).detach()
                values = torch.cat(values)
                advantage = returns - values
                actor_loss = -(log_probs * advantage.detach()).mean()
                critic_loss = advantage.pow(2).mean()
                loss = actor_loss + 0.5 * critic_loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                return values
            """,
            run="""
            class ActorCritic(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.actor = torch.nn.Linear(4, 2)
                    self.critic = torch.nn.Linear(4, 1)

                def forward(self, x):
                    dist = torch.distributions.Categorical(logits=self.actor(x))
                    return dist, self.critic(x)

            model = ActorCritic()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            states = [torch.randn(3, 4) for _ in range(5)]
            rewards = [torch.rand(3, 1) for _ in range(5)]
            masks = [torch.ones(3, 1) for _ in range(5)]
            values = a2c_update(model, optimizer, states, torch.randn(3, 4), rewards, masks)
            # the detached returns shape the critic's gradient: shifting them changes it
            returns = torch.cat(compute_returns(model(torch.randn(3, 4))[1], rewards, masks)).detach()
            grads = [torch.autograd.grad((r - values).pow(2).mean(), values)[0] for r in (returns, returns + 1)]
            assert not torch.allclose(grads[0], grads[1])
            """,
            note="dev10 spikingjelly examples/a2c.py: the detached returns are the critic's target; in "
            "`advantage.pow(2)` the gradient depends on them (a constant added under a nonlinear op is no "
            "dead term)",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            # OpenNMT-py modules/weight_norm.py (WeightNormLinear): `init=True` is weight normalization's
            # data-dependent initialization; it sets g and b from the batch and returns the normalized output
            class WeightNormLinear(nn.Linear):
                def __init__(self, in_features, out_features, init_scale=1.0):
                    super().__init__(in_features, out_features)
                    self.V = self.weight
                    self.g = nn.Parameter(torch.ones(out_features))
                    self.b = self.bias
                    self.init_scale = init_scale

                def forward(self, x, init=False):
                    if init is True:
                        self.V.data.copy_(torch.randn(self.V.data.size()) * 0.05)
                        v_norm = self.V.data / self.V.data.norm(2, 1, keepdim=True)
                        x_init = F.linear(x, v_norm).data
                        m_init, v_init = x_init.mean(0), x_init.var(0)
                        scale_init = self.init_scale / torch.sqrt(v_init + 1e-10)
                        self.g.data.copy_(scale_init)
                        self.b.data.copy_(-m_init * scale_init)
                        return scale_init.view(1, -1) * (x_init - m_init.view(1, -1))
                    scalar = self.g / torch.norm(self.V, 2, 1)
                    return scalar.view(1, -1) * F.linear(x, self.V) + self.b.view(1, -1)
            """,
            run="""
            layer = WeightNormLinear(5, 4)
            x = torch.randn(64, 5)
            first = layer(x, init=True)
            assert not first.requires_grad
            assert torch.allclose(first.mean(0), torch.zeros(4), atol=1e-5)
            assert torch.allclose(layer(x), first, atol=1e-4)
            layer(x).sum().backward()
            assert layer.V.grad is not None and layer.g.grad is not None and layer.b.grad is not None
            """,
            note="dev12 OpenNMT-py: the branch chosen by forward's own flag argument sets the parameters through "
            "`.data` from the output it computes and returns that output: an initialization pass, cut on purpose",
        ),
        Valid(
            """
            # from cogdl 0.6 cogdl/models/emb/hin2vec.py (Hin2vec.forward)
            import torch
            import torch.nn as nn


            class Embedder(nn.Module):
                def __init__(self, dim, epochs):
                    super().__init__()
                    self.dim = dim
                    self.epochs = epochs

                def forward(self, n):
                    self.model = nn.Embedding(n, self.dim)
                    opt = torch.optim.Adam(self.model.parameters(), lr=0.1)
                    for _ in range(self.epochs):
                        opt.zero_grad()
                        loss = self.model(torch.arange(n)).pow(2).sum()
                        loss.backward()
                        opt.step()
                    return self.model.weight.cpu().detach().numpy()
            """,
            run="""
            emb = Embedder(4, 3)(5)
            assert emb.shape == (5, 4)
            """,
            note="dev15: a `forward` that fits its own model (backward and step inside) and returns the embedding "
            "as a numpy array: the parameters get their gradients there; `.numpy()` needs the `.detach()`",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            model = nn.Linear(10, 1)
            criterion = nn.MSELoss()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
            X = torch.randn(100, 10)
            y = torch.randn(100, 1)
            for epoch in range(3):
                output = model(X)
                intermediate = output.detach()
                loss = criterion(intermediate, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            lines=[11],
            fixed="""
            import torch
            import torch.nn as nn

            model = nn.Linear(10, 1)
            criterion = nn.MSELoss()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
            X = torch.randn(100, 10)
            y = torch.randn(100, 1)
            for epoch in range(3):
                output = model(X)
                intermediate = output
                loss = criterion(intermediate, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            def train_step(model, optimizer, x, y):
                pred = model(x).data
                loss = F.mse_loss(pred, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            m = nn.Linear(3, 1)
            train_step(m, torch.optim.SGD(m.parameters(), lr=0.1), torch.randn(4, 3), torch.randn(4, 1))
            """,
            lines=[6],
            fixed="""
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            def train_step(model, optimizer, x, y):
                pred = model(x)
                loss = F.mse_loss(pred, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            m = nn.Linear(3, 1)
            train_step(m, torch.optim.SGD(m.parameters(), lr=0.1), torch.randn(4, 3), torch.randn(4, 1))
            """,
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            note="the target `y` is a data tensor (the call shows it): only the cut prediction could carry "
            "gradient",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Scorer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 1)

                def forward(self, x):
                    score = torch.sigmoid(self.fc(x))
                    return score.detach()
            """,
            lines=[11],
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            run="Scorer()(torch.randn(4, 8)).sum().backward()",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            net = nn.Linear(4, 1)
            x, y = torch.randn(16, 4), torch.randn(16, 1)
            mse = nn.MSELoss()(net(x), y).item()
            loss = torch.tensor(mse, requires_grad=True)
            loss.backward()
            """,
            lines=[6],
            note="re-wrapping makes backward run, but it stops at the new leaf",
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F

            class Trainer:
                def __init__(self, model, optimizer):
                    self.model = model
                    self.optimizer = optimizer
                    self.criterion = F.cross_entropy

                def train_step(self, x, y):
                    logits = self.model(x)
                    probs = logits.detach()
                    loss = self.criterion(probs, y)
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()

                def eval_step(self, x, y):
                    with torch.no_grad():
                        logits = self.model(x)
                    return (logits.argmax(1) == y).float().mean().item()
            """,
            lines=[12],
            fixed="""
            import torch
            import torch.nn.functional as F

            class Trainer:
                def __init__(self, model, optimizer):
                    self.model = model
                    self.optimizer = optimizer
                    self.criterion = F.cross_entropy

                def train_step(self, x, y):
                    logits = self.model(x)
                    probs = logits
                    loss = self.criterion(probs, y)
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()

                def eval_step(self, x, y):
                    with torch.no_grad():
                        logits = self.model(x)
                    return (logits.argmax(1) == y).float().mean().item()
            """,
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            run="""
            m = torch.nn.Linear(4, 3)
            Trainer(m, torch.optim.SGD(m.parameters(), lr=0.1)).train_step(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]))
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            netg = nn.Linear(4, 4)
            netd = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())
            optimizer_g = torch.optim.Adam(netg.parameters(), lr=1e-3)
            x, gt = torch.randn(8, 4), torch.randn(8, 4)
            fake = netg(x)
            pred_fake = netd(fake).detach()
            err_adv = F.binary_cross_entropy(pred_fake, torch.ones(8, 1))
            err_con = F.l1_loss(fake, gt)
            err_g = err_adv + 50 * err_con
            optimizer_g.zero_grad()
            err_g.backward()
            optimizer_g.step()
            """,
            lines=[10],
            fixed="""
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            netg = nn.Linear(4, 4)
            netd = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())
            optimizer_g = torch.optim.Adam(netg.parameters(), lr=1e-3)
            x, gt = torch.randn(8, 4), torch.randn(8, 4)
            fake = netg(x)
            pred_fake = netd(fake)
            err_adv = F.binary_cross_entropy(pred_fake, torch.ones(8, 1))
            err_con = F.l1_loss(fake, gt)
            err_g = err_adv + 50 * err_con
            optimizer_g.zero_grad()
            err_g.backward()
            optimizer_g.step()
            """,
            raises="the adversarial term does not reach the generator",
            run='assert err_adv.requires_grad, "the adversarial term does not reach the generator"',
            note="a GAN generator step with the discriminator's prediction detached: the adversarial term is a "
            "constant, only the L1 term trains the generator",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Counter(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.head = nn.Linear(3, 1)

                def forward(self, x):
                    count = self.head(x)
                    return count + (torch.round(count) - count).detach()

            model = Counter()
            x, counts = torch.randn(4, 3), torch.rand(4, 1)
            loss = (model(x).detach() - counts).abs().mean()
            loss.backward()
            """,
            lines=[15],
            raises="element 0 of tensors does not require grad and does not have a grad_fn",
            fixed="""
            import torch
            import torch.nn as nn

            class Counter(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.head = nn.Linear(3, 1)

                def forward(self, x):
                    count = self.head(x)
                    return count + (torch.round(count) - count).detach()

            model = Counter()
            x, counts = torch.randn(4, 3), torch.rand(4, 1)
            loss = (model(x) - counts).abs().mean()
            loss.backward()
            """,
            check_fixed="assert model.head.weight.grad is not None",
            note="only the loss's `.detach()` is the cause: the straight-through estimator in `forward` passes "
            "the gradient through `count`",
        ),
    ]

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        # `check` reports a backpropagated loss (`backward_calls` needs `.backward(`) or a cut
        # value returned by an nn.Module's forward (its text matches _CUT_TEXT)
        if ".backward(" in text:
            return True
        return (
            isinstance(statement, ast.ClassDef)
            and module.is_module_class(statement.name)
            and _CUT_TEXT.search(text) is not None
        )

    def check(self, unit: Unit) -> Iterator[Finding]:
        for func, flow, event in backward_events(unit):
            value = event.value
            if value.sources or live_grad(value) == MAYBE:
                # some of the loss still reaches the model, or may: an operand of unknown grad
                # status (a `forward` input, an argument no caller shows, an unknown call's result)
                continue
            loss = _loss_text(unit, event)
            for cut in value.cuts:
                if cut.kind not in _CUT_KINDS or not cut.blocked or cut.bypassed or _reported_as_rewrap(cut):
                    continue
                message = (
                    f"`{describe(unit, cut.node)}` is cut from the autograd graph: no gradient reaches the "
                    f"parameters\n`{loss}` (backpropagated on line {event.node.lineno}) depends on the model "
                    "only through it."
                )
                yield self.finding(unit, cut.node, message, fix=self._fix(unit, cut))
        seen = set()
        for term, backward in _constant_terms(unit):
            loss = _loss_text(unit, backward)
            for cut in sorted(
                term.value.cuts,
                key=lambda c: (getattr(c.node, "lineno", 0), getattr(c.node, "col_offset", 0)),
            ):
                if cut.kind not in _CUT_KINDS or not cut.blocked or cut.node in seen:
                    continue
                seen.add(cut.node)
                # the script's findings are kept by absolute position (and the analysis it used
                # by position too): it may point into a function it called
                inside = unit_contains(unit, cut.node) or _is_script(unit)
                term_text = describe(unit, term.target) if term.target is not None else "a term"
                message = (
                    f"`{term_text}` is a constant: it adds nothing to the gradient of `{loss}`\nIt was cut "
                    f"from the autograd graph by `{describe(unit, cut.node)}` (line {cut.node.lineno}), and "
                    f"`{loss}` is backpropagated on line {backward.node.lineno}."
                )
                fix = self._fix(unit, cut) if inside else None
                yield self.finding(unit, cut.node if inside else term.node, message, fix=fix)
                break  # one finding per constant term: its first cut
        for func, flow in _cutting_forwards(unit):
            frozen = unit.semantics.frozen
            evaluated = _put_in_eval(unit, func)
            for ret, value in flow.returns:
                if (
                    value.sources
                    or live_grad(value) == MAYBE
                    or _initialization_pass(unit, func, flow, ret, value)
                ):
                    continue
                returned = getattr(ret, "value", None)
                for cut in value.cuts:
                    if (
                        cut.kind not in _CUT_KINDS
                        or not cut.blocked
                        or cut.blocked <= frozen  # only modules whose parameters were all frozen
                        or evaluated is None
                        or cut.blocked <= frozen | evaluated
                        or cut.bypassed
                        or _reported_as_rewrap(cut)
                        or not _blocks_own_state(unit, func, cut)
                    ):
                        continue
                    message = (
                        f"`forward` returns `{describe(unit, cut.node)}`, which is cut from the autograd graph\n"
                        "No gradient reaches this module's parameters through its output."
                    )
                    if returned is not None and not any(n is cut.node for n in ast.walk(returned)):
                        message = (
                            f"`forward` returns `{describe(unit, returned)}`, made from "
                            f"`{describe(unit, cut.node)}` (line {cut.node.lineno}), which is cut from the "
                            "autograd graph\nNo gradient reaches this module's parameters through its output."
                        )
                    yield self.finding(unit, cut.node, message)

    def _fix(self, unit: Unit, cut):
        """Drop the cutting chain (`x.cpu().detach().numpy()` -> `x`) where its value is used once."""
        if cut.kind == REWRAP or not unit_contains(unit, cut.node):
            return None
        outer = cut.node
        while True:
            parent = unit.parent(outer)
            if isinstance(parent, ast.Attribute) and parent.attr == "data":
                outer = parent
            elif (
                isinstance(parent, ast.Attribute)
                and parent.attr in _CHAIN_METHODS
                and isinstance(unit.parent(parent), ast.Call)
                and not unit.parent(parent).args  # type: ignore[union-attr]
                and not unit.parent(parent).keywords  # type: ignore[union-attr]
            ):
                outer = unit.parent(parent)  # type: ignore[assignment]
            else:
                break
        base = outer
        while True:
            if isinstance(base, ast.Attribute) and base.attr == "data":
                base = base.value
            elif (
                isinstance(base, ast.Call)
                and isinstance(base.func, ast.Attribute)
                and base.func.attr in _CHAIN_METHODS
                and not base.args
                and not base.keywords
            ):
                base = base.func.value
            else:
                break
        if base is outer or not _used_once(unit, outer):
            return None
        text = unit.segment(base)
        if isinstance(unit.parent(outer), (ast.Attribute, ast.Subscript, ast.BinOp, ast.UnaryOp)) and not (
            isinstance(base, (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant))
        ):
            text = f"({text})"
        return self.make_fix(
            f"Use `{describe(unit, base)}` itself, which keeps the graph", [replace_node(unit, outer, text)]
        )


_CUT_KINDS = frozenset({DETACH, DATA, ITEM, NUMPY_CUT, REWRAP})
# cuts of the graph (detach, item, numpy, ...) and the device move often written between them
_CHAIN_METHODS = torch_facts.graph_cutting_methods() | {"cpu"}


# ops whose gradient depends on their input's value: a constant added to that input changes it
_NONLINEAR = torch_facts.NONLINEAR
# uses that send no gradient (or only read): not a path from the sum to the loss's gradient
_NO_GRADIENT_USES = torch_facts.graph_cutting_methods() | torch_facts.METADATA_METHODS


def _constant_terms(unit: Unit) -> list:
    """(term, backward) of the dead terms that add nothing to the gradient: not the target of a
    nonlinear op (`(returns - values).pow(2)`: the constant shapes the gradient there)."""
    return [(term, backward) for _, _, term, backward in dead_terms(unit)
            if not _shifts_a_nonlinear_input(unit, term.node)]  # fmt: skip


def _shifts_a_nonlinear_input(unit: Unit, node: ast.AST, depth: int = 0) -> bool:
    """Does the sum `node` (`returns - values`, `x += c.detach()`) reach a nonlinear op
    (`.pow(2)`, `**`, `F.mse_loss`, ...) of this unit, directly or through the name it is stored
    in? Then its constant term is a target: the gradient of `(c - v) ** 2` depends on `c`."""
    if depth > 3:
        return False
    if isinstance(node, ast.AugAssign):
        return isinstance(node.target, ast.Name) and _name_shifts(unit, node, node.target.id, depth)
    child, parent = node, unit.parent(node)
    while parent is not None:
        if isinstance(parent, ast.BinOp):
            if isinstance(parent.op, ast.Pow) and parent.left is child:
                return True
        elif isinstance(parent, ast.Attribute):
            call = unit.parent(parent)
            if not (isinstance(call, ast.Call) and call.func is parent):
                return False  # `.data`, `.shape`: no gradient through it
            if parent.attr in _NONLINEAR:
                return True
            if parent.attr in _NO_GRADIENT_USES:
                return False
            parent = call
        elif isinstance(parent, ast.Call):
            name = (unit.module.call_name(parent) or "").rsplit(".", 1)[-1]
            if child is not parent.func and name in _NONLINEAR:
                return True
        elif isinstance(parent, (ast.Assign, ast.AnnAssign)):
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            return (
                len(targets) == 1
                and isinstance(targets[0], ast.Name)
                and _name_shifts(unit, parent, targets[0].id, depth)
            )
        elif not isinstance(
            parent, (ast.UnaryOp, ast.keyword, ast.Starred, ast.Tuple, ast.List, ast.Subscript)
        ):
            return False
        child, parent = parent, unit.parent(parent)
    return False


def _name_shifts(unit: Unit, store: ast.stmt, name: str, depth: int) -> bool:
    """Is `name`, as stored by `store`, read after it by a nonlinear op (in the same function)?"""
    scope = unit.enclosing_function(store)
    nodes = ast.walk(scope) if scope is not None else (n for top in unit.nodes for n in ast.walk(top))
    line = store.end_lineno or store.lineno
    return any(
        isinstance(n, ast.Name)
        and n.id == name
        and isinstance(n.ctx, ast.Load)
        and n.lineno > line
        and _shifts_a_nonlinear_input(unit, n, depth + 1)
        for n in nodes
    )


def _used_once(unit: Unit, expr: ast.expr) -> bool:
    """The cut value feeds one computation: it is not assigned, or assigned to a name read once
    (in the same function) after it; and no NumPy function takes it."""
    parent = unit.parent(expr)
    if _converts(unit, parent):
        return False
    if not isinstance(parent, ast.Assign):
        return isinstance(parent, (ast.BinOp, ast.UnaryOp, ast.AugAssign, ast.Call, ast.Return))
    if len(parent.targets) != 1 or not isinstance(parent.targets[0], ast.Name):
        return False
    name = parent.targets[0].id
    scope = unit.enclosing_function(parent)
    nodes = list(ast.walk(scope)) if scope is not None else [n for top in unit.nodes for n in ast.walk(top)]
    reads = [n for n in nodes if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load)]
    stores = [n for n in nodes if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store)]
    return len(reads) == 1 and len(stores) == 1 and not _converts(unit, unit.parent(reads[0]))


def _converts(unit: Unit, node: ast.AST | None) -> bool:
    """A call that would turn the tensor back into a number or a new leaf: a NumPy function,
    `torch.tensor(...)`, `float(...)`."""
    if not isinstance(node, ast.Call):
        return False
    name = unit.module.call_name(node) or ""
    return name.startswith("numpy") or name in _CONVERTERS


_CONVERTERS = torch_facts.TENSOR_CONSTRUCTORS | {"float", "int", "list"}


def _loss_text(unit: Unit, event) -> str:
    call = event.node
    if event.op == "delegated" and call.args:
        return describe(unit, call.args[0])
    return describe(unit, call.func.value)


def _reported_as_rewrap(cut) -> bool:
    """`torch.tensor(tracked)` is GG305's finding (with a fix); do not report it twice."""
    return (
        cut.kind == REWRAP and isinstance(cut.node, ast.Call) and keyword(cut.node, "requires_grad") is None
    )


def forward_functions(unit: Unit) -> list:
    found = []
    for cls in unit.module_classes():
        method = unit.methods(cls).get("forward")
        if method is not None and not unit.decorator_disables_grad(method):
            found.append(method)
    return found


def _cutting_forwards(unit: Unit) -> Iterator[tuple]:
    """(`forward`, its flow) for the `forward`s whose text cuts the graph somewhere, and that do not
    train a model themselves."""
    for func in forward_functions(unit):
        if not _CUT_TEXT.search(scope_text(unit, func)):
            continue
        flow = unit.semantics.flow(func)
        # a `forward` that calls `backward()` itself (an embedding method fitting its model in a training
        # loop) returns the result of that training, not a step of the caller's graph
        if not calls_backward(flow):
            yield func, flow


def _blocks_own_state(unit: Unit, forward: ast.AST, cut) -> bool:
    """The cut blocks a root that may be the module's own state (a layer, a parameter, a module
    given to `__init__`, the result of a `self.<name>(...)` call), not only `forward`'s inputs or
    the results of functions called on them (`einops.einsum(a, b)`): a module whose output is cut
    from nothing it owns leaves the gradient of its inputs to the caller (alphafold3-pytorch
    `WeightedRigidAlign`, a parameter-free alignment whose aligned ground truth is a loss target)."""
    args = forward.args  # type: ignore[attr-defined]
    inputs = {*args.posonlyargs, *args.args, *args.kwonlyargs}
    me = self_name(forward) or "self"  # type: ignore[arg-type]
    kinds = unit.semantics.source_kinds
    for root in cut.blocked:
        if root in inputs:
            continue
        if (
            isinstance(root, ast.Call)
            and kinds.get(root) == "opaque"
            and unit.enclosing_function(root) is forward
            and not _on_self(root.func, me)
        ):
            continue
        return True
    return False


def _initialization_pass(unit: Unit, forward: ast.AST, flow, ret: ast.AST, value) -> bool:
    """`ret` is reached only through a branch of `forward` chosen by one of its own flag arguments
    (`def forward(self, x, init=False)`, `if init:`), and that branch sets parameters of the module
    through `.data` from values made of the same cuts as the returned output
    (`self.g.data.copy_(scale_init)`): a data-dependent initialization pass, run once to set the
    parameters, whose output is cut on purpose (OpenNMT-py modules/weight_norm.py, Salimans & Kingma's
    weight-norm init)."""
    args = forward.args  # type: ignore[attr-defined]
    positional = [*args.posonlyargs, *args.args]
    flags = {a.arg for a in positional[len(positional) - len(args.defaults) :]} if args.defaults else set()
    flags |= {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None}
    cuts = {id(c.node) for c in value.cuts}
    if not flags or not cuts:
        return False
    me = self_name(forward)  # type: ignore[arg-type]
    node: ast.AST | None = ret
    while node is not None and node is not forward:
        branch = unit.parent(node)
        if (
            isinstance(branch, ast.If)
            and node in branch.body
            and any(isinstance(n, ast.Name) and n.id in flags for n in ast.walk(branch.test))
            and any(_sets_parameter(flow, stmt, me, cuts) for stmt in branch.body)
        ):
            return True
        node = branch
    return False


def _sets_parameter(flow, stmt: ast.stmt, me: str | None, cuts: set) -> bool:
    """`stmt` is `self.<p>.data.copy_(v)` for a parameter `p`, with `v` made from one of `cuts`."""
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return False
    call = stmt.value
    func = call.func
    if not (
        isinstance(func, ast.Attribute)
        and func.attr == "copy_"
        and len(call.args) == 1
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "data"
    ):
        return False
    written = func.value.value
    return (
        isinstance(written, ast.Attribute)
        and isinstance(written.value, ast.Name)
        and written.value.id == me
        and flow.value_of(written).is_parameter
        and any(id(c.node) in cuts for c in flow.value_of(call.args[0]).cuts)
    )


def _on_self(node: ast.AST, me: str) -> bool:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return isinstance(node, ast.Name) and node.id == me


def _put_in_eval(unit: Unit, forward: ast.AST) -> frozenset | None:
    """The roots of the submodules the class of `forward` puts in eval mode (`self.vocoder.eval()` in
    any of its methods, `model = self.model.eval()`): frozen, inference-only models (a pretrained
    vocoder, a teacher) whose output is detached on purpose. None when `forward` calls `self.eval()`:
    the whole module is inference-only (fairseq models/text_to_speech/vocoder.py)."""
    cls = unit.parent(forward)
    me = forward.args.args[0].arg if getattr(forward, "args", None) and forward.args.args else "self"  # type: ignore[attr-defined]
    if not isinstance(cls, ast.ClassDef):
        return frozenset()
    roots: set = set()
    for method in unit.methods(cls).values():
        flow = None
        for node in ast.walk(method):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "eval"
                and not node.args
                and not node.keywords
            ):
                continue
            receiver = node.func.value
            if isinstance(receiver, ast.Name) and receiver.id == me:
                if method is forward:
                    return None
                continue
            if (
                isinstance(receiver, ast.Attribute)
                and isinstance(receiver.value, ast.Name)
                and receiver.value.id == me
            ):
                flow = flow or unit.semantics.flow(method)
                value = flow.value_of(receiver)
                if value.is_module:
                    roots.update(value.sources)
                    roots.update(flow.value_of(node).sources)
    return frozenset(roots)


def _is_script(unit: Unit) -> bool:
    return not isinstance(unit.nodes[0], (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
