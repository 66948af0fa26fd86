"""GG507 claims a broadcast fails only on sizes it knows; sizes learned by assuming that an earlier
op on a tensor of unknown shape succeeded are no proof (that op may be where torch raises)."""

import textwrap

import pytest
from gradguard.engine import symshape as ss
from gradguard.engine.analyzer import Analyzer

torch = pytest.importorskip("torch")

# dev7 coqui-tts 0.28.0 (TTS/tts/layers/tortoise/diffusion_decoder.py, `timestep_independent` and the
# file's `__main__` test): `self.norm` is a layer the analysis does not know (another file's class),
# so `h`'s shape after the product is not known; with this input torch raises at the product
CODE = """
import torch
import torch.nn as nn
from somewhere import normalization


class Decoder(nn.Module):
    def __init__(self, channels=512):
        super().__init__()
        self.norm = normalization(channels)
        self.unconditioned = nn.Parameter(torch.randn(1, channels, 1))

    def forward(self, h, cond):
        scale, shift = torch.chunk(cond, 2, dim=1)
        h = self.norm(h) * (1 + scale.unsqueeze(-1)) + shift.unsqueeze(-1)
        mask = torch.rand((h.shape[0], 1, 1)) < 0.5
        return torch.where(mask, self.unconditioned.repeat(h.shape[0], 1, 1), h)


model = Decoder()
out = model(torch.randn(2, 512, 100), torch.randn(2, 100, 400))
"""


def test_torch_raises_at_the_product_and_gg507_claims_nothing_at_where():
    code = textwrap.dedent(CODE).lstrip("\n")
    runnable = code.replace(
        "from somewhere import normalization\n", "normalization = lambda c: nn.GroupNorm(32, c)\n"
    )
    with pytest.raises(
        RuntimeError, match=r"size of tensor a \(512\) must match the size of tensor b \(400\)"
    ):
        exec(runnable, {})
    findings = [f for f in Analyzer().check(code).findings if f.code == "GG507"]
    where_line = code.splitlines().index(
        "        return torch.where(mask, self.unconditioned.repeat(h.shape[0], 1, 1), h)"
    )
    assert all(f.line != where_line + 1 for f in findings), [f.message for f in findings]


def test_a_broadcast_with_a_shape_not_known_at_all_is_not_known():
    out = ss.broadcast(ss.Shape.unknown(), ss.Shape((2, 50, 400, 1)))
    assert isinstance(out, ss.Shape) and out.is_unknown
    # the two shapes the message named before do broadcast
    ok = ss.broadcast(ss.Shape(("b", 1, 1)), ss.Shape(("b", 512, 1)))
    assert isinstance(ok, ss.Shape)
    assert torch.broadcast_shapes((3, 1, 1), (3, 512, 1)) == (3, 512, 1)


def test_known_sizes_still_prove_a_mismatch():
    out = ss.broadcast(ss.Shape(("b", 512, 1)), ss.Shape((2, 50, 400, 1)))
    assert isinstance(out, ss.ShapeError)
    with pytest.raises(RuntimeError, match="must match"):
        torch.zeros(2, 512, 1) + torch.zeros(2, 50, 400, 1)
