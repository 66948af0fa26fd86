"""GG404: a second `backward()` through a graph the first one already freed."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import partial

from gradguard.engine import path_facts, torch_facts
from gradguard.engine.finding import Applicability, Finding, Severity, TextEdit
from gradguard.engine.fixes import (
    alone_on_its_lines,
    delete_statement,
    enclosing_block,
    insert_after_statement,
    insert_before_statement,
    owns_lines,
    trailing_comment,
)
from gradguard.engine.index import (
    ModuleContext,
    Unit,
    keyword,
    position,
    self_attribute,
    self_name,
    statement_start_line,
)
from gradguard.engine.interpreter import ATTRIBUTE_STORE, BACKWARD, Flow, has_graph
from gradguard.engine.loops import enclosing_loop
from gradguard.engine.queries import backward_events, trained_roots, unit_contains
from gradguard.engine.rule import Invalid, Message, Rule, Valid
from gradguard.engine.values import YES

_ERROR = "Trying to backward through the graph a second time"


class BackwardTwice(Rule):
    code = "GG404"
    triggers = ("backward", "self.")  # its own pre-check (a module's forward may store state on self)

    def may_fire(self, text: str, statement: ast.stmt, module: ModuleContext) -> bool:
        if "backward" in text:
            return True
        # `self.h = f(self.h)` in a module trained by a loop elsewhere in the file
        return (
            module.mentions_backward
            and isinstance(statement, ast.ClassDef)
            and module.is_module_class(statement.name)
        )

    name = "backward-twice"
    summary = (
        "A second `backward()` through (part of) a graph whose saved tensors the first `backward()` freed."
    )
    why = (
        "The first `backward()` frees the tensors the graph saved, so a second one through the same part of "
        'the graph raises "Trying to backward through the graph a second time".'
    )
    severity = Severity.ERROR
    message = Message(
        "`{second}` backpropagates again through `{shared}`, whose graph `{first}` already freed\n"
        f'PyTorch raises "{_ERROR}". Pass `retain_graph=True` to the first call, or call `backward()` '
        "once on the sum of the losses."
    )
    loop_message = Message(
        "`{shared}` is computed once, before the loop, but `{call}` backpropagates through it every time\n"
        f'The second iteration raises "{_ERROR}". Compute `{{shared}}` inside the loop.'
    )
    explanation = f"""
    To save memory, `backward()` frees the intermediate values the graph saved for the
    backward pass (the inputs of a matmul, the output of a sigmoid, ...) as soon as it
    has used them. A second `backward()` that reaches the same part of the graph finds
    them gone and PyTorch raises:

    > RuntimeError: {_ERROR} (or directly access saved tensors after they have
    > already been freed). [...] Specify retain_graph=True if you need to backward
    > through the graph a second time [...]

    This happens when two losses share an intermediate result (`out = model(x)` and
    two losses computed from `out`), and when a loop calls `backward()` every
    iteration on something computed once before the loop.

    Fixes: add the losses and call `backward()` once (`(loss1 + loss2).backward()`,
    which gives the same gradients), or pass `retain_graph=True` to every `backward()`
    but the last; in a loop, compute the value inside the loop, so each iteration
    builds (and frees) its own graph. Backward calls on graphs built by separate forward passes, or a
    first call with `retain_graph=True`, are fine and not reported.

    **Fix safety.** Unsafe. `retain_graph=True` keeps the saved tensors alive until the second
    `backward()` (more memory). Moving a computation into the loop runs it on every iteration (more
    time) and uses the parameters as updated by the previous step. Detaching a hidden state after it is
    computed (`h = h.detach()`, or `self.hidden = ...detach()` right after the forward pass stores it)
    truncates backpropagation through time: each `backward()` stops at the start of its own batch, so
    a loop that meant to backpropagate once through several forward passes gets shorter gradients.
    """
    fix_applicability = Applicability.UNSAFE

    VALID = [
        Valid(
            """
            import torch

            def train(model, model_specs, loader):
                vocab_size = model_specs["vocab_size"]
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for batch in loader:
                    optimizer.zero_grad()
                    loss = model(batch).view(-1, vocab_size).logsumexp(-1).mean()
                    loss.backward()
                    optimizer.step()

            def main(args, factory):
                model_specs = factory.model_specs(args)
                model = factory.model_config(args)["model"]
                train(model, model_specs, [torch.randn(2, 3, 4) for _ in range(3)])
            """,
            # fairscale benchmarks/pipe.py: `output.view(-1, vocab_size)` with `vocab_size` from `args`
            run="""
            class Factory:
                def model_specs(self, args):
                    return {"vocab_size": args}

                def model_config(self, args):
                    return {"model": torch.nn.Linear(4, args)}

            main(5, Factory())
            """,
            note="the sizes given to a view or reshape are no part of the graph, even when they come "
            "from the object the model was built from (fairscale benchmarks/pipe.py)",
        ),
        Valid(
            """
            import torch
            from accelerate import Accelerator

            def train(make_model, make_loader):
                accelerator = Accelerator()
                model = make_model()
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                loader, model, optimizer = accelerator.prepare(make_loader(), model, optimizer)
                ddp_model = torch.nn.parallel.DistributedDataParallel(model)
                for batch in loader:
                    optimizer.zero_grad()
                    loss = torch.nn.functional.mse_loss(ddp_model(batch["x"]), batch["y"])
                    accelerator.backward(loss)
                    optimizer.step()
            """,
            note="objects made before the loop (an Accelerator, a wrapped model, a data loader) are "
            "called or iterated, not backpropagated through (accelerate test_utils/scripts/test_script.py)",
        ),
        Valid(
            """
            import torch

            model = torch.nn.Linear(4, 2)
            out = model(torch.randn(8, 4))
            loss1 = out.pow(2).mean()
            loss2 = out.abs().mean()
            loss1.backward(retain_graph=True)
            loss2.backward()
            """,
            note="retain_graph on the first backward",
        ),
        Valid(
            """
            import torch

            def train(netD, netG, optD, optG, real, z, criterion):
                fake = netG(z)
                optD.zero_grad()
                lossD = criterion(netD(real), 1) + criterion(netD(fake.detach()), 0)
                lossD.backward()
                optD.step()
                optG.zero_grad()
                lossG = criterion(netD(fake), 1)
                lossG.backward()
                optG.step()
            """,
            note="GAN: the discriminator loss uses fake.detach()",
        ),
        Valid(
            """
            import torch

            def train(model, optimizer, x1, x2):
                loss1 = model(x1).sum()
                loss1.backward()
                loss2 = model(x2).sum()
                loss2.backward()
                optimizer.step()
            """,
            note="two forward passes, two graphs",
        ),
        Valid(
            """
            import torch

            def train(model, optimizer, loader):
                for x, y in loader:
                    out = model(x)
                    loss = (out - y).pow(2).mean()
                    loss.backward()
                    optimizer.step()
            """,
            note="one backward per forward",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Tagger(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.lstm = nn.LSTM(3, 4, batch_first=True)
                    self.head = nn.Linear(4, 1)
                    self.hidden = self.init_hidden()

                def init_hidden(self):
                    return (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))

                def forward(self, x):
                    out, self.hidden = self.lstm(x, self.hidden)
                    return self.head(out[:, -1])

            model = Tagger()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for step in range(2):
                model.hidden = model.init_hidden()
                loss = model(torch.randn(2, 5, 3)).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            note="the state on the module is reset before every batch",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Tagger(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.gru = nn.GRU(3, 4, batch_first=True)
                    self.head = nn.Linear(4, 1)
                    self.hidden = torch.zeros(1, 2, 4)

                def forward(self, x):
                    out, self.hidden = self.gru(x, self.hidden)
                    self.hidden = self.hidden.detach()
                    return self.head(out[:, -1])

            model = Tagger()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for step in range(2):
                loss = model(torch.randn(2, 5, 3)).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            note="the state kept on the module is detached right after forward stores it",
            run="assert model.hidden.grad_fn is None",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn

            class Tagger(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.lstm = nn.LSTM(3, 4, batch_first=True)
                    self.head = nn.Linear(4, 1)
                    self.hidden = self.init_hidden()

                def init_hidden(self):
                    return (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))

                def forward(self, x):
                    out, self.hidden = self.lstm(x, self.hidden)
                    return self.head(out[:, -1])

            def reset_state(model):
                model.hidden = model.init_hidden()

            def train(data, model, optimizer):
                for x in data:
                    reset_state(model)
                    loss = model(x).pow(2).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

            model = Tagger()
            train([torch.randn(2, 5, 3) for _ in range(2)], model, torch.optim.SGD(model.parameters(), lr=0.1))
            """,
            note="a training function's loop resets the state on the module (through a helper) before every batch",
        ),
        Valid(
            """
            import torch


            def train(make_models, make_losses, replay_buffer, steps):
                world_model, actor_model = make_models()
                world_model_loss, actor_loss = make_losses(world_model, actor_model)
                world_opt = torch.optim.Adam(world_model.parameters(), lr=1e-3)
                actor_opt = torch.optim.Adam(actor_model.parameters(), lr=1e-3)
                for step in range(steps):
                    batch = replay_buffer.sample()
                    model_loss_td, batch = world_model_loss(batch)
                    loss = model_loss_td["kl"] + model_loss_td["reco"]
                    world_opt.zero_grad()
                    loss.backward()
                    world_opt.step()
                    actor_loss_td, batch = actor_loss(batch.reshape(-1))
                    actor_opt.zero_grad()
                    actor_loss_td["loss_actor"].backward()
                    actor_opt.step()
            """,
            note="torchrl sota-implementations/dreamer/dreamer.py: the items of an unknown call's result do "
            "not share a graph as far as anyone knows (the world-model loss returns the batch with detached "
            "states)",
            run="""
            import types
            world, actor = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)

            def world_loss(batch):
                states = world(batch)
                return {"kl": states.pow(2).mean(), "reco": states.abs().mean()}, states.detach()

            def actor_loss(states):
                return {"loss_actor": actor(states.reshape(-1, 4)).mean()}, states

            buffer = types.SimpleNamespace(sample=lambda: torch.randn(3, 4))
            train(lambda: (world, actor), lambda w, a: (world_loss, actor_loss), buffer, 2)
            """,
        ),
        Valid(
            """
            import torch
            from accelerate import Accelerator
            from deepspeed.utils import groups
            from transformers import AutoModelForCausalLM

            accelerator = Accelerator()
            model = AutoModelForCausalLM.from_pretrained("tiny-model")
            ids = torch.arange(1, 129).view(-1, 32)
            dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids), batch_size=1)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
            model, optimizer, dl = accelerator.prepare(model, optimizer, dl)
            unwrapped_model = accelerator.unwrap_model(model)
            group = groups._get_sequence_parallel_group()
            for iter, batch in enumerate(dl):
                optimizer.zero_grad()
                outputs = model(input_ids=batch[0])
                loss = unwrapped_model.loss_function(
                    logits=outputs.logits, labels=batch[0], vocab_size=unwrapped_model.config.vocab_size
                )
                losses = torch.distributed.nn.functional.all_gather(loss, group=group)
                accelerator.backward(sum(losses))
                optimizer.step()
            """,
            note="accelerate test_utils/scripts/external_deps/test_ds_alst_ulysses_sp.py: the model is called "
            "and the data loader iterated in the loop, the process group only passed along; none of them is "
            "a graph built before the loop",
        ),
        Valid(
            """
            import torch


            def train(make_private, epochs):
                netD, optimizerD, dataloader = make_private()
                for epoch in range(epochs):
                    data_bar = iter(dataloader)
                    for i, data in enumerate(data_bar):
                        optimizerD.zero_grad()
                        netD(data[0]).pow(2).mean().backward()
                        optimizerD.step()
            """,
            note="opacus examples/dcgan.py: a loader from an unknown call (`privacy_engine.make_private(...)`), "
            "wrapped again every epoch (a progress bar) and enumerated: each batch is a new object",
            run="""
            netD = torch.nn.Linear(4, 1)
            loader = [(torch.randn(2, 4),), (torch.randn(2, 4),)]
            train(lambda: (netD, torch.optim.SGD(netD.parameters(), lr=0.1), loader), 2)
            """,
        ),
        Valid(
            """
            import torch


            class Generator(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.main = torch.nn.Linear(3, 4)

                def forward(self, input):
                    output = self.main(input)
                    return output


            netG = Generator()
            netD = torch.nn.Linear(4, 1)
            for step in range(2):
                output = netD(torch.randn(2, 4))
                fake = netG(torch.randn(2, 3))
                errD = output.mean() + netD(fake.detach()).mean()
                errD.backward()
                errG = netD(fake).mean()
                errG.backward()
            """,
            note="opacus examples/dcgan.py: the generator's own local `output` is not the loop's `output`, whose "
            "graph the discriminator's step freed; `errG` goes through a new `netD(fake)`",
            run="assert fake.grad_fn is not None",
        ),
        Valid(
            """
            import torch

            def implicit_grads(physics, x, z):
                y = physics(x)
                y.requires_grad_(True)
                res = (physics(z) - y).pow(2).sum()
                res.backward()
                loss = (physics(z) * y).sum()
                loss.backward()
                return y.grad
            """,
            run="""
            class Blur(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.register_buffer("kernel", torch.ones(1, 1, 3) / 3)

                def forward(self, x):
                    return torch.nn.functional.conv1d(x, self.kernel, padding=1)

            grad = implicit_grads(Blur(), torch.randn(2, 1, 8), torch.randn(2, 1, 8, requires_grad=True))
            assert grad is not None
            """,
            note="deepinv tests/test_optim.py: `requires_grad_(True)` on the output of an unknown callable "
            "would be a no-op on a tensor with a graph; the code means a measurement without one, a new leaf",
        ),
        Valid(
            """
            import torch
            import torch.nn.functional as F

            def check_differentiable(physics: torch.nn.Module, x, x_hat, factory=None):
                if factory is not None:
                    physics = factory(physics)
                y = physics.A(x)
                loss = F.mse_loss(physics.A(x_hat), y)
                loss.backward()
                loss = F.mse_loss(physics.A(2 * x_hat), y)
                loss.backward()
                return x_hat.grad
            """,
            run="""
            class Blur(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.register_buffer("kernel", torch.ones(1, 1, 3) / 3)

                def A(self, x):
                    return F.conv1d(x, self.kernel, padding=1)

            grad = check_differentiable(Blur(), torch.randn(2, 1, 8), torch.randn(2, 1, 8, requires_grad=True))
            assert grad is not None
            """,
            note="deepinv tests/test_physics.py: the shared `y` enters both losses only as the target of "
            "`F.mse_loss`; a target of unknown grad status (here a measurement of an operator without "
            "parameters) is data, with no graph to free",
        ),
        Valid(
            """
            import torch

            def backward_each(physics: torch.nn.Module, factory=None):
                if factory is not None:
                    physics = factory(physics)
                x = torch.randn(2, 1, 8, requires_grad=True)
                ys = physics.A(x)
                for i in range(len(ys) - 1, -1, -1):
                    ys[i].sum().backward()
                return x.grad
            """,
            run="""
            class Stacked(torch.nn.Module):
                def A(self, x):
                    return [x.exp(), x.sigmoid(), x * x]

            assert backward_each(Stacked()).shape == (2, 1, 8)
            """,
            note="deepinv tests/test_distributed.py: each iteration backpropagates a different element "
            "`ys[i]` of a list of outputs (not one tensor), each from a graph of its own",
        ),
        Valid(
            """
            import argparse

            import torch
            import torch.nn.functional as F

            class Encoder(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = torch.nn.Linear(3, 3)

                def forward(self, x):
                    return self.fc(x)

            def main(argv, net, loader, scaler=None):
                parser = argparse.ArgumentParser()
                parser.add_argument("-T", default=4, type=int)
                args = parser.parse_args(argv)
                encoder = Encoder()
                optimizer = torch.optim.SGD([*net.parameters(), *encoder.parameters()], lr=0.1)
                for epoch in range(2):
                    for img, label in loader:
                        optimizer.zero_grad()
                        if scaler is not None:
                            out_fr = 0.0
                            for t in range(args.T):
                                encoded_img = encoder(img)
                                out_fr += net(encoded_img)
                            loss = F.mse_loss(out_fr / args.T, label)
                            scaler.scale(loss).backward()
                            scaler.step(optimizer)
                            scaler.update()
                        else:
                            out_fr = 0.0
                            for t in range(args.T):
                                encoded_img = encoder(img)
                                out_fr += net(encoded_img)
                            loss = F.mse_loss(out_fr / args.T, label)
                            loss.backward()
                            optimizer.step()
            """,
            run="""
            net = torch.nn.Linear(3, 2)
            loader = [(torch.rand(4, 3), torch.randn(4, 2)) for _ in range(2)]
            main(["-T", "3"], net, loader)
            main(["-T", "3"], net, loader, torch.amp.GradScaler("cpu"))
            """,
            note="dev10 spikingjelly examples/lif_fc_mnist.py: the options `parser.parse_args()` returns "
            "(`args.T`) hold no graph, so a `backward()` does not make the next iteration's loss stale",
        ),
        Valid(
            """
            import torch


            def attack(model, x, y, steps, delta=0.1, step_size=0.01):
                adv = x.clone().detach()
                adv = adv + torch.empty_like(adv).uniform_(-delta, delta)
                adv = torch.clamp(adv, 0, 1)
                adv.requires_grad = True
                for _ in range(steps):
                    loss = (model(adv) - model(y)).pow(2).sum()
                    loss.backward()
                    adv.data = adv - adv.grad.detach().sign() * step_size
                    adv.grad.zero_()
                return adv.detach()
            """,
            run="""
            adv = attack(torch.nn.Linear(4, 3), torch.rand(2, 4), torch.rand(2, 4), 3)
            assert adv.shape == (2, 4)
            """,
            note="holdout5 adversarial-robustness-toolbox feature_adversaries_pytorch.py: `adv.requires_grad = True` "
            "succeeds only on a leaf, so `adv` has no graph behind it; each iteration's `model(adv)` is a new "
            "forward pass",
        ),
        Valid(
            """
            import torch


            def fit(model, devices: int, loader, accumulate):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for step, batch in enumerate(loader):
                    loss = model(batch).pow(2).mean()
                    (loss / accumulate(devices)).backward()
                    if step % accumulate(devices) == 0:
                        optimizer.step()
                        optimizer.zero_grad()


            def main(parse_devices, make_model, loader):
                devices = parse_devices("auto")
                fit(make_model(devices), devices, loader, lambda n: 4 // n)
            """,
            run="""
            main(lambda spec: 2, lambda devices: torch.nn.Linear(4, devices), [torch.randn(3, 4) for _ in range(4)])
            """,
            note="holdout5 litgpt pretrain.py: `devices: int` is given an unknown call's result (`parse_devices`) "
            "that also built the model; an int carries no graph, and each iteration's loss is a new forward pass",
        ),
        Valid(
            """
            import torch
            import torch.nn as nn


            # pyod models/mo_gaal.py (MO_GAAL.fit): `locals()` used as a registry of per-generator objects; each
            # batch stores new noise and new generator outputs in it before the losses read them
            def fit(data, k=2, epochs=2):
                names = locals()
                disc = nn.Sequential(nn.Linear(3, 1), nn.Sigmoid())
                opt_d = torch.optim.SGD(disc.parameters(), lr=0.01)
                criterion = nn.BCELoss()
                for i in range(k):
                    names["gen" + str(i)] = nn.Linear(3, 3)
                    names["opt" + str(i)] = torch.optim.SGD(names["gen" + str(i)].parameters(), lr=0.01)
                for epoch in range(epochs):
                    for batch in data.split(4):
                        for i in range(k):
                            names["noise" + str(i)] = torch.rand(4, 3)
                            names["fake" + str(i)] = names["gen" + str(i)](names["noise" + str(i)])
                        fakes = torch.cat([names["fake" + str(i)] for i in range(k)])
                        opt_d.zero_grad()
                        d_loss = criterion(disc(torch.cat([batch, fakes])), torch.rand(len(batch) + 4 * k, 1))
                        d_loss.backward()
                        opt_d.step()
                        for i in range(k):
                            names["opt" + str(i)].zero_grad()
                            fake = names["gen" + str(i)](names["noise" + str(i)])
                            g_loss = criterion(disc(fake), torch.ones(4, 1))
                            g_loss.backward()
                            names["opt" + str(i)].step()
                return disc
            """,
            run="fit(torch.randn(8, 3))",
            note="dev13 pyod: the dict `locals()` returns is a mapping of its own, not a value computed once "
            "with a graph; what the loop reads from it was stored in it this iteration",
        ),
        Valid(
            """
            import torch


            def test_autograd_repetition(crypten, x):
                x.requires_grad = True
                encr_input = crypten.cryptensor(x, requires_grad=True)
                for _ in range(7):
                    encr_output = encr_input.exp().sum()
                    encr_output.backward()
                return encr_input
            """,
            run="""
            class CrypTensor:  # a stand-in for CrypTen's: an object with an autograd of its own
                def __init__(self, data, requires_grad=False, grad_fn=None):
                    self.data, self.requires_grad, self.grad, self.grad_fn = data, requires_grad, None, grad_fn

                def _accumulate(self, g):
                    if self.grad_fn is None:
                        self.grad = g if self.grad is None else self.grad + g
                    else:
                        self.grad_fn(g)

                def exp(self):
                    out = self.data.detach().exp()
                    return CrypTensor(out, True, lambda g: self._accumulate(g * out))

                def sum(self):
                    return CrypTensor(self.data.sum(), True, lambda g: self._accumulate(g.expand_as(self.data)))

                def backward(self):
                    grad_fn, self.grad_fn = self.grad_fn, None  # frees this node, as CrypTen's ctx.reset()
                    grad_fn(torch.ones_like(self.data))

            class crypten:
                cryptensor = CrypTensor

            x = torch.randn(12, 5)
            encr_input = test_autograd_repetition(crypten, x)
            assert torch.allclose(encr_input.grad, 7 * x.detach().exp())
            """,
            note="holdout6 crypten test/test_autograd.py: a call into another library with `requires_grad=True` "
            "makes a new leaf of that library's own autograd (`crypten.cryptensor`), with no torch graph behind it "
            "for `backward()` to free; each iteration builds its graph anew",
        ),
        Valid(
            """
            import torch
            import torch.distributed as dist
            import torch.nn as nn
            import torch.nn.functional as F
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.tensor.parallel import parallelize_module

            try:
                from _distributed_test_utils import get_local_batch
            except ImportError:

                def get_local_batch(replica_index, size=8):
                    return torch.randn(2, 4, size)[replica_index], torch.randn(4, size)


            def setup_distributed():
                dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
                return init_device_mesh("cpu", (1,), mesh_dim_names=("dp",))


            def parity(mesh, size=8):
                (dp_rank,) = mesh.get_coordinate()
                for _ in range(2):
                    ref_model, dist_model = nn.Linear(size, size), nn.Linear(size, size)
                    dist_model = parallelize_module(dist_model, mesh["dp"], {})
                    dist_optim = torch.optim.SGD(dist_model.parameters(), lr=1e-2)
                    for _ in range(2):
                        local_input, local_target = get_local_batch(replica_index=dp_rank)
                        dist_optim.zero_grad(set_to_none=True)
                        ref_loss = F.mse_loss(ref_model(local_input), local_target)
                        dist_loss = F.mse_loss(dist_model(local_input), local_target)
                        ref_loss.backward()
                        dist_loss.backward()

            if __name__ == "__main__":
                parity(setup_distributed())
            """,
            run="""
            parity(setup_distributed())  # one process, an in-memory store: nothing leaves the machine
            dist.destroy_process_group()
            """,
            note="holdout5 torchao test/prototype/blockwise_fp8_training/test_fsdp2_tp.py: the rank a "
            "`DeviceMesh` gives (`init_device_mesh`, torch.distributed set-up: never a tensor) selects each "
            "batch; the two losses are two forward passes of one batch that carries no graph",
        ),
        Valid(
            """
            import torch


            def train(model, loader, args):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                scaler = torch.amp.GradScaler("cpu", enabled=args["fp16"])
                for epoch in range(2):
                    for batch in loader:
                        if args["fp16"]:
                            with torch.autocast("cpu", dtype=torch.bfloat16):
                                outputs = model(batch)
                        else:
                            outputs = model(batch)
                            loss = outputs.pow(2).mean()
                        if args["gradient_accumulation_steps"] > 1:
                            loss = loss / args["gradient_accumulation_steps"]
                        if args["fp16"]:
                            scaler.scale(loss).backward()
                        else:
                            loss.backward()
                        torch.nn.utils.clip_grad_norm_(model.parameters(), args["max_grad_norm"])
                        optimizer.step()
                        optimizer.zero_grad()
            """,
            # from simpletransformers 0.70.8 simpletransformers/experimental/classification/classification_model.py
            run="""
            model, loader = torch.nn.Linear(4, 2), [torch.randn(3, 4) for _ in range(3)]
            train(model, loader, {"fp16": False, "gradient_accumulation_steps": 2, "max_grad_norm": 1.0})
            try:  # the fp16 arm never binds `loss`: a NameError, never a second backward
                train(model, loader, {"fp16": True, "gradient_accumulation_steps": 2, "max_grad_norm": 1.0})
            except UnboundLocalError:
                pass
            """,
            note="holdout7 simpletransformers: the two `backward()` calls are the two arms of one `if` whose "
            "test nothing in the loops changes, so every iteration takes the same arm: one backward per loss. "
            "The `else` that binds `loss` is under the same test as the `else` that backpropagates it",
        ),
        Valid(
            """
            import torch
            import torch.nn.functional as F


            def cw_grad(adv, origin, label, model):
                loss = F.cross_entropy(model(adv), label) + F.mse_loss(adv, origin)
                loss.backward()
                grad = adv.grad.clone()
                adv.grad.zero_()
                return grad


            def identity_transform(x):
                return x.detach().clone()


            def bpda_attack(image, label, model, iterations=3, transform_func=identity_transform):
                adv = image.detach().clone().requires_grad_()
                for _ in range(iterations):
                    adv_def = transform_func(adv)
                    adv_def.requires_grad_()
                    loss = F.mse_loss(adv_def, torch.zeros_like(adv_def))
                    loss.backward()
                    grad = cw_grad(adv_def, image, label, model)
                    adv = (adv.detach() - 0.01 * grad.sign()).requires_grad_()
                return adv.detach()
            """,
            # from deeprobust 0.2.11 deeprobust/image/attack/BPDA.py
            run="""
            adv = bpda_attack(torch.rand(2, 4), torch.tensor([0, 2]), torch.nn.Linear(4, 3))
            assert adv.shape == (2, 4)
            """,
            note="holdout7 deeprobust: `requires_grad_()` on what an unknown callable returned would be a "
            "no-op on a tensor with a graph, so the code means a new leaf (here `x.detach().clone()`); the "
            "helper builds a new graph from it, through nothing the first `backward()` freed",
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            model = torch.nn.Linear(4, 2)
            out = model(torch.randn(8, 4))
            loss1 = out.pow(2).mean()
            loss2 = out.abs().mean()
            loss1.backward()
            loss2.backward()
            """,
            lines=[8],
            fixed="""
            import torch

            model = torch.nn.Linear(4, 2)
            out = model(torch.randn(8, 4))
            loss1 = out.pow(2).mean()
            loss2 = out.abs().mean()
            loss1.backward(retain_graph=True)
            loss2.backward()
            """,
            raises=_ERROR,
            check_fixed="assert model.weight.grad is not None",
        ),
        Invalid(
            """
            import torch

            def train(model, x, y, steps):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                out = model(x)
                for step in range(steps):
                    optimizer.zero_grad()
                    loss = torch.nn.functional.mse_loss(out, y)
                    loss.backward()
                    optimizer.step()
            """,
            lines=[9],
            fixed="""
            import torch

            def train(model, x, y, steps):
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for step in range(steps):
                    out = model(x)
                    optimizer.zero_grad()
                    loss = torch.nn.functional.mse_loss(out, y)
                    loss.backward()
                    optimizer.step()
            """,
            raises=_ERROR,
            run="""
            torch.manual_seed(0)
            model, x, y = torch.nn.Linear(3, 1), torch.randn(5, 3), torch.randn(5, 1)
            before = torch.nn.functional.mse_loss(model(x), y).item()
            train(model, x, y, 3)
            """,
            check_fixed="assert torch.nn.functional.mse_loss(model(x), y).item() < before",
            note="the fix moves the computation into the loop (a new graph every iteration)",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            rnn = nn.RNN(3, 4, batch_first=True)
            head = nn.Linear(4, 1)
            optimizer = torch.optim.SGD([*rnn.parameters(), *head.parameters()], lr=0.1)
            h = None
            for step in range(3):
                x, y = torch.randn(2, 5, 3), torch.randn(2, 1)
                out, h = rnn(x, h)
                loss = ((head(out[:, -1]) - y) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            lines=[10],
            fixed="""
            import torch
            import torch.nn as nn

            rnn = nn.RNN(3, 4, batch_first=True)
            head = nn.Linear(4, 1)
            optimizer = torch.optim.SGD([*rnn.parameters(), *head.parameters()], lr=0.1)
            h = None
            for step in range(3):
                x, y = torch.randn(2, 5, 3), torch.randn(2, 1)
                out, h = rnn(x, h)
                h = h.detach()
                loss = ((head(out[:, -1]) - y) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            raises=_ERROR,
            check_fixed="assert h.grad_fn is None and rnn.weight_hh_l0.grad is not None",
            note="a hidden state carried from one batch to the next without `.detach()`; the fix "
            "detaches it after the step that computes it (truncated backpropagation through time)",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Tagger(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.lstm = nn.LSTM(3, 4, batch_first=True)
                    self.head = nn.Linear(4, 1)
                    self.hidden = (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))

                def forward(self, x):
                    out, self.hidden = self.lstm(x, self.hidden)
                    return self.head(out[:, -1])

            model = Tagger()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for step in range(2):
                loss = model(torch.randn(2, 5, 3)).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            lines=[12],
            fixed="""
            import torch
            import torch.nn as nn

            class Tagger(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.lstm = nn.LSTM(3, 4, batch_first=True)
                    self.head = nn.Linear(4, 1)
                    self.hidden = (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))

                def forward(self, x):
                    out, self.hidden = self.lstm(x, self.hidden)
                    self.hidden = tuple(state.detach() for state in self.hidden)
                    return self.head(out[:, -1])

            model = Tagger()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for step in range(2):
                loss = model(torch.randn(2, 5, 3)).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
            raises=_ERROR,
            check_fixed="assert all(h.grad_fn is None for h in model.hidden) and model.lstm.weight_hh_l0.grad is not None",
            note="the hidden state kept on the module across batches (sgadgil6/cnslab_fmri#4); the fix "
            "detaches the stored `(h, c)` pair",
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Tagger(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.lstm = nn.LSTM(3, 4, batch_first=True)
                    self.head = nn.Linear(4, 1)
                    self.hidden = (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))

                def forward(self, x):
                    out, self.hidden = self.lstm(x, self.hidden)
                    return self.head(out[:, -1])

            def train(data, model, criterion, optimizer):
                for x, y in data:
                    loss = criterion(model(x), y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

            model = Tagger()
            data = [(torch.randn(2, 5, 3), torch.randn(2, 1)) for _ in range(2)]
            train(data, model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1))
            """,
            lines=[12],
            fixed="""
            import torch
            import torch.nn as nn

            class Tagger(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.lstm = nn.LSTM(3, 4, batch_first=True)
                    self.head = nn.Linear(4, 1)
                    self.hidden = (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))

                def forward(self, x):
                    out, self.hidden = self.lstm(x, self.hidden)
                    self.hidden = tuple(state.detach() for state in self.hidden)
                    return self.head(out[:, -1])

            def train(data, model, criterion, optimizer):
                for x, y in data:
                    loss = criterion(model(x), y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

            model = Tagger()
            data = [(torch.randn(2, 5, 3), torch.randn(2, 1)) for _ in range(2)]
            train(data, model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1))
            """,
            raises=_ERROR,
            check_fixed="assert all(h.grad_fn is None for h in model.hidden) and model.lstm.weight_hh_l0.grad is not None",
            note="the same state carried by the loop of a training function (pytorch/pytorch#2769)",
        ),
        Invalid(
            """
            import torch

            x, g = torch.randn(3, 4, requires_grad=True), torch.ones(4)
            y = x.exp()
            for i in range(3):
                y[i].backward(g)
            """,
            lines=[6],
            fixed="""
            import torch

            x, g = torch.randn(3, 4, requires_grad=True), torch.ones(4)
            for i in range(3):
                y = x.exp()
                y[i].backward(g)
            """,
            raises=_ERROR,
            check_fixed="assert x.grad is not None",
            note="the rows of one tensor share its graph: backpropagating a row each iteration goes through "
            "`exp`'s freed saved output again",
        ),
        Invalid(
            """
            import torch


            def train(make_leaf, data, steps):
                w = make_leaf(data, requires_grad=True)
                y = w.exp()
                for _ in range(steps):
                    y.sum().backward()
                return w
            """,
            lines=[8],
            fixed="""
            import torch


            def train(make_leaf, data, steps):
                w = make_leaf(data, requires_grad=True)
                for _ in range(steps):
                    y = w.exp()
                    y.sum().backward()
                return w
            """,
            raises=_ERROR,
            run="""
            w = train(lambda d, requires_grad: d.clone().requires_grad_(requires_grad), torch.randn(4), 3)
            """,
            check_fixed="assert torch.allclose(w.grad, 3 * w.detach().exp())",
            note="a leaf made by a helper called with `requires_grad=True` has no graph behind it, but the `exp` "
            "computed from it once before the loop does",
        ),
    ]

    attribute_message = Message(
        "`self.{attr}` keeps this forward pass's graph, and the next forward feeds it back in\nThe next "
        f'`backward()` goes through the freed graph and raises "{_ERROR}". Store `.detach()`ed state (or reset '
        "it before each batch)."
    )

    def check(self, unit: Unit) -> Iterator[Finding]:
        for cls, attr, event in _carried_attributes(unit):
            if _loops_keep_attribute(unit, cls, attr):
                detach = _attribute_detach(unit, cls, event, attr)
                fix = None
                if detach is not None:
                    statement, code = detach
                    fix = self.make_fix(
                        f"Detach `self.{attr}` after it is stored",
                        [insert_after_statement(unit, statement, code)],
                    )
                yield self.finding(unit, event.node, self.attribute_message.format(attr=attr), fix=fix)
        semantics = unit.semantics
        for func, flow, event in backward_events(unit):
            value = event.value
            info = event.data
            if not value.stale or not value.saves:
                continue
            call = event.node
            loop = enclosing_loop(unit, call)
            # the freed part certainly requires grad: a frozen feature extractor's output does
            # not, and backpropagating through heads on top of it every iteration is fine; and
            # the name holding it is no object known by its use (a model, a data loader)
            trained = trained_roots(flow)
            objects = _objects(func, loop, flow)
            body = getattr(func, "body", None) or list(unit.nodes)
            stale_names = tuple(
                name
                for name, held in zip(info.stale_names, info.stale_values, strict=True)
                if name not in objects
                and (
                    held.grad == YES
                    or any(semantics.source_kinds.get(s) != "opaque" or s in trained for s in held.sources)
                )
                and not (held.grad != YES and _loss_target_only(func, call, name))
                and not (not held.is_tensor and _element_per_iteration(loop, call, name))
                and _bound_in_a_run_with(func, body, name, call)
            )
            if not stale_names:
                continue
            # an earlier call in another arm of an `if` (a `match`, a `try`) that picks the same arm
            # every time never runs in the same run as this one
            earlier = [
                b for b in value.stale if b is not call and path_facts.one_run_runs_both(body, b, call)
            ]
            if not earlier and call not in value.stale:
                continue
            if earlier:
                first = min(earlier, key=position)
                shared = stale_names[0] if stale_names else "the same forward pass"
                yield self._pair_finding(unit, first, call, shared)
                continue
            # freed by this same call on the previous iteration of a loop
            if loop is None:
                continue
            name = stale_names[0]
            if _rebound_before(func, body, name, call):
                continue
            if name in _assigned_in(loop):
                # where the previous iteration's value is fed back in: the place to detach it
                message = self.carried_message.format(shared=name, call=_short(unit, call))
                carrier = _carrying_statement(unit, flow, loop, name)
                fix = None
                if carrier is not None:
                    fix = self.make_fix(
                        f"Detach `{name}` after it is computed", partial(_detach_after, unit, carrier, name)
                    )
                yield self.finding(unit, _first_load(loop, name) or call, message, fix=fix)
            else:
                message = self.loop_message.format(shared=name, call=_short(unit, call))
                moved = _computation_before(unit, loop, name)
                fix = None
                if moved is not None:
                    fix = self.make_fix(
                        f"Compute `{name}` inside the loop",
                        lambda lp=loop, st=moved: _move_into_loop(unit, lp, st),
                    )
                yield self.finding(unit, call, message, fix=fix)

    carried_message = Message(
        "`{shared}` is carried to the next iteration with its graph, and `{call}` backpropagates through it\n"
        f'The second iteration goes through the previous iteration\'s graph again and raises "{_ERROR}". '
        "Detach it once it is computed (`{shared} = {shared}.detach()`), so that each iteration "
        "backpropagates through its own steps only."
    )

    def _pair_finding(self, unit: Unit, first: ast.Call, second: ast.Call, shared: str) -> Finding:
        message = self.message.format(second=_short(unit, second), first=_short(unit, first), shared=shared)
        edit = _retain_graph_edit(unit, first) if unit_contains(unit, first) else None
        fix = self.make_fix("Pass `retain_graph=True` to the first `backward()`", [edit]) if edit else None
        return self.finding(unit, second, message, fix=fix)


def _bound_in_a_run_with(func: ast.AST | None, body: list[ast.stmt], name: str, call: ast.AST) -> bool:
    """Can a run that reaches `call` have given `name` a value (other than from itself: `loss = loss /
    k`)? Not when every such binding of the scope lies where no run that reaches `call` goes (`loss =
    out[0]` only under `else` of the `if args["fp16"]` whose other arm backpropagates it): there the
    name is unbound, and nothing is backpropagated twice."""
    bindings = _fresh_bindings(func, name)
    return bindings is None or any(path_facts.one_run_runs_both(body, b, call) for b in bindings)


def _rebound_before(func: ast.AST | None, body: list[ast.stmt], name: str, call: ast.AST) -> bool:
    """Is `name` given a new value (not from itself) before `call` on every iteration that runs `call`
    (`loss = out[0]` under the `else` of an `if args["fp16"]` whose `else` later calls `loss.backward()`)?
    Then what the previous iteration backpropagated never reaches `call`."""
    bindings = _fresh_bindings(func, name) or []
    return any(isinstance(b, ast.Assign) and path_facts.runs_before_each(body, b, call) for b in bindings)


def _fresh_bindings(func: ast.AST | None, name: str) -> list[ast.AST] | None:
    """The places a function binds `name` other than from itself (`loss = loss / k`): the assignment
    statements, and the name nodes of any other binding (`for`, `with ... as`); None when the name may
    hold a value from outside (a parameter, a global, a name the function never binds)."""
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    if name in {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}:
        return None
    assigned: set[int] = set()
    bindings: list[ast.AST] = []
    for node in ast.walk(func):
        if isinstance(node, (ast.Global, ast.Nonlocal)) and name in node.names:
            return None
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            stored = {id(n) for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and n.id == name}
            assigned |= stored
            if (
                stored
                and node.value is not None
                and not isinstance(node, ast.AugAssign)
                and not _mentions(node.value, name)
            ):
                bindings.append(node)
        elif isinstance(node, ast.Name) and node.id == name and not isinstance(node.ctx, ast.Load):
            bindings.append(node)
    bindings = [b for b in bindings if id(b) not in assigned]
    return bindings if bindings or assigned else None


def _loss_target_only(func: ast.AST | None, call: ast.AST, name: str) -> bool:
    """`loss.backward()` where every `loss = ...` of the function that reads `name` reads it only as
    the target of a loss function (`F.mse_loss(pred, y)`, `criterion(out, target=y)`): a target is
    data, and one of unknown grad status is taken to hold no graph."""
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
        return False
    receiver = call.func.value
    if func is None or not isinstance(receiver, ast.Name) or call.args:
        return False
    reading = [
        stmt.value
        for stmt in ast.walk(func)
        if isinstance(stmt, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == receiver.id for t in stmt.targets)
        and _mentions(stmt.value, name)
    ]
    if not reading:
        return False
    for expr in reading:
        targets = set()
        for node in ast.walk(expr):
            if isinstance(node, ast.Call) and _is_loss_call(node):
                given = node.args[1] if len(node.args) > 1 else keyword(node, "target")
                if isinstance(given, ast.Name):
                    targets.add(id(given))
        if any(isinstance(n, ast.Name) and n.id == name and id(n) not in targets for n in ast.walk(expr)):
            return False
    return True


def _is_loss_call(call: ast.Call) -> bool:
    callee = call.func
    last = (
        callee.attr
        if isinstance(callee, ast.Attribute)
        else callee.id
        if isinstance(callee, ast.Name)
        else ""
    )
    return any(word in last.lower() for word in torch_facts.LOSS_WORDS)


def _element_per_iteration(loop: ast.AST | None, call: ast.AST, name: str) -> bool:
    """`for i in range(len(ys)): ys[i].sum().backward()`: the backpropagated value reads `name` only
    as its element at the loop's index, a different element each iteration; for a list of outputs
    (not one tensor) they may be separate graphs."""
    if not isinstance(loop, ast.For) or not isinstance(loop.target, ast.Name):
        return False
    index = loop.target.id
    receiver = (
        call.func.value if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) else None
    )
    if receiver is None or not _mentions(receiver, name):
        return False
    subscripts = {
        id(node.value)
        for node in ast.walk(receiver)
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and isinstance(node.slice, ast.Name)
        and node.slice.id == index
    }
    return all(id(n) in subscripts for n in ast.walk(receiver) if isinstance(n, ast.Name) and n.id == name)


def _computation_before(unit: Unit, loop: ast.AST, name: str) -> ast.stmt | None:
    """The statement `name = expr` just before the loop, in the loop's own block, that the loop
    backpropagates through on every iteration; None unless moving it into the loop changes
    nothing else: nothing between it and the loop and nothing after the loop uses `name`, and
    `expr` does not read `name`."""
    block = enclosing_block(unit, loop)  # type: ignore[arg-type]
    if block is None or not getattr(loop, "body", None):
        return None
    index = block.index(loop)
    for statement in reversed(block[:index]):
        if _mentions(statement, name):
            break
    else:
        return None
    if not (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
        and statement.targets[0].id == name
        and not _mentions(statement.value, name)
        and alone_on_its_lines(unit, statement)
        and owns_lines(unit, statement)
    ):
        return None
    if any(_mentions(after, name) for after in block[index + 1 :]):
        return None
    first = loop.body[0]  # type: ignore[attr-defined]
    if not owns_lines(unit, first):
        return None
    return statement


def _mentions(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node))


def _move_into_loop(unit: Unit, loop: ast.AST, statement: ast.stmt) -> list[TextEdit]:
    start, end = statement_start_line(statement), statement.end_lineno or statement.lineno
    indent = unit.source.indentation(start)
    lines = [unit.source.line_text(n).rstrip("\r\n") for n in range(start, end + 1)]
    _, _, end_line, end_col = unit.node_range(statement)
    lines[-1] = lines[-1][: end_col - 1] if end_line == end else lines[-1]
    code = "\n".join(row[len(indent) :] if row.startswith(indent) else row for row in lines)
    first = loop.body[0]  # type: ignore[attr-defined]
    return [
        delete_statement(unit, statement),
        insert_before_statement(unit, first, code, trailing_comment(unit, statement)),
    ]


def _detach_after(unit: Unit, statement: ast.stmt, name: str) -> list[TextEdit]:
    return [insert_after_statement(unit, statement, f"{name} = {name}.detach()")]


def _carrying_statement(unit: Unit, flow, loop: ast.AST, name: str) -> ast.stmt | None:
    """The statement of the loop's body that computes the carried tensor `name` (`out, h = rnn(x,
    h)`), when detaching it right after is all the fix needs: the last assignment of `name` in the
    body, binding a value known to be one tensor (an LSTM's `(h, c)` pair is not), with no read of
    `name` after it in the body (the loss would lose the gradient through it)."""
    body = getattr(loop, "body", [])
    for index in range(len(body) - 1, -1, -1):
        stmt = body[index]
        if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
            continue
        target = stmt.targets[0]
        elements = target.elts if isinstance(target, ast.Tuple) else [target]
        bound = next((e for e in elements if isinstance(e, ast.Name) and e.id == name), None)
        if bound is None:
            if _mentions(stmt, name):
                return None
            continue
        if any(_mentions(later, name) for later in body[index + 1 :]) or not owns_lines(unit, stmt):
            return None
        value = flow.values.get(bound)
        return stmt if value is not None and value.is_tensor else None
    return None


def _objects(func: ast.AST | None, loop: ast.AST | None, flow) -> set[str]:
    """Names that hold no graph of their own as far as their use shows: those the scope calls
    (`outputs = model(**batch)`: a tensor is not callable) or calls a method of that no tensor
    has (`model.loss_function(...)`), and the loop's iterable (`for batch in enumerate(dl)`)
    unless it is known to be a tensor: each iteration takes a new item."""
    scope = getattr(func, "body", None) if func is not None else ([loop] if loop is not None else [])
    names: set[str] = set()
    for stmt in scope or []:
        for node in ast.walk(stmt):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func
            if isinstance(callee, ast.Name):
                names.add(callee.id)
            elif (
                isinstance(callee, ast.Attribute)
                and isinstance(callee.value, ast.Name)
                and not torch_facts.is_tensor_method(callee.attr)
            ):
                names.add(callee.value.id)
    iterable = getattr(loop, "iter", None)
    while (
        isinstance(iterable, ast.Call)
        and isinstance(iterable.func, ast.Name)
        and iterable.func.id in ("enumerate", "zip", "iter")
        and iterable.args
    ):
        iterable = iterable.args[0]
    if isinstance(iterable, ast.Name):
        value = flow.values.get(iterable)
        if value is None or not value.is_tensor:
            names.add(iterable.id)
    return names


def _first_load(loop: ast.AST, name: str) -> ast.Name | None:
    """The first read of `name` in the loop body, in source order."""
    loads = [
        node
        for stmt in getattr(loop, "body", [])
        for node in ast.walk(stmt)
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load)
    ]
    return min(loads, key=lambda n: (n.lineno, n.col_offset), default=None)


def _assigned_in(loop: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(loop):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _short(unit: Unit, call: ast.Call) -> str:
    text = unit.segment(call)
    return text if len(text) <= 50 and "\n" not in text else "backward()"


def _retain_graph_edit(unit: Unit, call: ast.Call) -> TextEdit | None:
    existing = keyword(call, "retain_graph")
    if existing is not None:
        line, col, end_line, end_col = unit.node_range(existing)
        return TextEdit(line, col, end_line, end_col, "True")
    if len(call.args) >= 2:
        return None
    _, _, end_line, end_col = unit.node_range(call)
    if unit.source.line_text(end_line)[end_col - 2 : end_col - 1] != ")":
        return None
    separator = ", " if (call.args or call.keywords) else ""
    return TextEdit(end_line, end_col - 1, end_line, end_col - 1, f"{separator}retain_graph=True")


def _attribute_detach(unit: Unit, cls: ast.ClassDef, event, attr: str) -> tuple[ast.stmt, str] | None:
    """(the statement that stores `self.<attr>` in forward, the line that detaches it after), when
    that line is all the fix needs: the statement is a plain assignment directly in the method's body,
    alone on its lines, and nothing after it in the method reads `self.<attr>`; the stored state is
    one tensor or the `(h, c)` pair of an `nn.LSTM` (`out, self.hidden = self.lstm(x, self.hidden)`)."""
    statement = event.node
    if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
        return None
    func = unit.parent(statement)
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) or not owns_lines(unit, statement):
        return None
    if not alone_on_its_lines(unit, statement):
        return None
    me = self_name(func) or "self"
    after = func.body[func.body.index(statement) + 1 :]
    if any(
        isinstance(n, ast.Attribute) and n.attr == attr and isinstance(n.value, ast.Name) and n.value.id == me
        for later in after
        for n in ast.walk(later)
    ):
        return None
    target = statement.targets[0]
    stored = f"{me}.{attr}"
    if isinstance(target, ast.Attribute):
        kind = "tensor" if event.value.is_tensor else None
    elif (
        isinstance(target, ast.Tuple) and len(target.elts) == 2 and isinstance(target.elts[1], ast.Attribute)
    ):
        kind = None
        call = statement.value
        layer_name = self_attribute(call.func, me) if isinstance(call, ast.Call) else None
        layer = unit.semantics.self_attribute(cls.name, layer_name) if layer_name else None
        if layer is not None and layer.is_module:
            state = torch_facts.recurrent_state((layer.cls or "").rsplit(".", 1)[-1])
            kind = {"tuple": "pair", "tensor": "tensor"}.get(state or "")
    else:
        kind = None
    if kind == "tensor":
        return statement, f"{stored} = {stored}.detach()"
    if kind == "pair":
        return statement, f"{stored} = tuple(state.detach() for state in {stored})"
    return None


def _carried_attributes(unit: Unit) -> list[tuple[ast.ClassDef, str, object]]:
    """(class, attribute, store event) for `self.h = f(self.h)` in a module's forward where the
    new value carries this forward pass's graph: the next forward feeds it back in."""
    semantics = unit.semantics
    found: list[tuple[ast.ClassDef, str, object]] = []
    for cls in unit.module_classes():
        for func in unit.methods_reachable_from(cls, "forward"):
            me = self_name(func) or "self"
            stores = [
                (event.target.attr, event)
                for event in semantics.flow(func).events_of(ATTRIBUTE_STORE)
                if isinstance(event.target, ast.Attribute)
                and isinstance(event.target.value, ast.Name)
                and event.target.value.id == me
            ]
            for attr, event in stores:
                value = event.value
                if (
                    event.nograd is None
                    and f"self.{attr}" in value.names
                    and has_graph(value)
                    and value.saves
                    and not _detached_later(func, attr, event, stores)
                ):
                    found.append((cls, attr, event))
    return found


def _detached_later(func: ast.AST, attr: str, event, stores: list) -> bool:
    """A later statement of the method's own body stores the same attribute again without a graph
    (`out, self.h = self.rnn(x, self.h)` then `self.h = self.h.detach()`)."""
    body = getattr(func, "body", [])
    if event.node not in body:
        return False
    after = body[body.index(event.node) + 1 :]
    return any(
        other.node in after and other_attr == attr and not has_graph(other.value)
        for other_attr, other in stores
    )


def _loops_keep_attribute(unit: Unit, cls: ast.ClassDef, attr: str) -> bool:
    """Is the module trained in a loop (of the script, or of a function or method of the file) that
    never resets `<model>.<attr>` (nor calls a method of the class, or a function of the file, that
    stores it) between iterations?"""
    semantics = unit.semantics
    semantics.consulted.add("")
    resetting = {
        name
        for name, method in unit.methods(cls).items()
        if name != "forward" and _stores_attribute(method, attr)
    }
    for scope, flow in _training_scopes(unit, cls):
        for event in flow.events_of(BACKWARD):
            loop = _script_loop(semantics, event.node) if scope is None else _loop_in(scope, event.node)
            if loop is not None and _calls_without_reset(semantics, flow, loop, cls, attr, resetting):
                return True
    return False


def _training_scopes(unit: Unit, cls: ast.ClassDef) -> Iterator[tuple[ast.AST | None, Flow]]:
    """The script, then the functions and methods (outside `cls`) of the top-level statements that
    name `backward`: where a loop may train the module."""
    semantics = unit.semantics
    yield None, semantics.flow(None)
    for stmt in semantics.rests_on_text_naming("backward"):
        if stmt is cls:
            continue
        for func in ast.walk(stmt):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield func, semantics.flow(func)


def _calls_without_reset(
    semantics, flow, loop: ast.AST, cls: ast.ClassDef, attr: str, resetting: set[str]
) -> bool:
    """Does the loop call the module (a value known to be an instance of `cls`) and never store
    `<x>.<attr>`, call a method that stores it, or call a function of the file that stores it?"""
    calls_model = False
    for node in ast.walk(loop):
        if isinstance(node, ast.Attribute) and node.attr == attr and isinstance(node.ctx, ast.Store):
            return False
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr in resetting:
            return False
        if isinstance(node.func, ast.Name):
            helper = semantics.top.get(node.func.id)
            if helper is not None:
                semantics.rests_on(helper)
            if isinstance(helper, (ast.FunctionDef, ast.AsyncFunctionDef)) and _stores_attribute(
                helper, attr
            ):
                return False
        callee = flow.value_of(node.func)
        if callee.is_module and callee.cls == cls.name:
            calls_model = True
    return calls_model


def _stores_attribute(func: ast.AST, attr: str) -> bool:
    return any(
        isinstance(n, ast.Attribute) and n.attr == attr and isinstance(n.ctx, ast.Store)
        for n in ast.walk(func)
    )


def _loop_in(func: ast.AST, node: ast.AST) -> ast.AST | None:
    """The innermost loop of `func` itself (not of a function nested in it) around a node."""
    best = None
    line = getattr(node, "lineno", 0)
    todo = list(getattr(func, "body", []))
    while todo:
        stmt = todo.pop()
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if not stmt.lineno <= line <= (stmt.end_lineno or stmt.lineno):
            continue
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            best = stmt
        todo.extend(child for child in ast.iter_child_nodes(stmt) if isinstance(child, ast.stmt))
    return best


def _script_loop(semantics, node: ast.AST) -> ast.AST | None:
    """The innermost loop of the script statements around a node."""
    best = None
    for stmt in semantics.script:
        for loop in ast.walk(stmt):
            if isinstance(loop, (ast.For, ast.AsyncFor, ast.While)) and loop.lineno <= node.lineno <= (
                loop.end_lineno or loop.lineno
            ):
                if best is None or loop.lineno >= best.lineno:
                    best = loop
    return best
