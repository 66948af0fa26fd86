"""Every shape rule in gradguard.engine.symshape checked against torch itself.

Each case is a layer (constructor arguments + input shapes) or an op (receiver / arguments) whose sizes
may be symbols. The rule runs once with the symbols and once per environment with the symbols replaced
by ints; torch runs the same call on meta tensors (CPU tensors for data-dependent ops and for the error
messages, which differ on meta) and the shapes must agree:

- torch succeeds: the int result equals torch's shape exactly (no unknown dims unless the case says
  `partial`), the symbolic result instantiated with the environment agrees with it wherever it is known,
  and neither is an error;
- torch raises: the int result is a ShapeError whose message is a substring of torch's message and
  contains the substring the case claims (`sym_error` cases must be certain with symbols too).
"""

from __future__ import annotations

import functools
import itertools
import operator
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from gradguard.engine import symshape as ss
from gradguard.engine.symshape import Dim, Mask, Repeated, Shape, ShapeError, sym

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread is much faster than two fighting over a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


b, c, h, w, t, d, n, k = (sym(name) for name in ("b", "c", "h", "w", "t", "d", "n", "k"))
_VALUES = {
    "b": (2, 3),
    "c": (4, 6),
    "h": (9, 16),
    "w": (11, 8),
    "t": (5, 7),
    "d": (7, 10),
    "n": (3, 5),
    "k": (2, 3),
}


@dataclass(frozen=True)
class T:
    """A tensor argument: dims (ints or Dims) and a dtype."""

    dims: tuple
    dtype: str = "float32"

    def __init__(self, *dims: Any, dtype: str = "float32") -> None:
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "dtype", dtype)


@dataclass(frozen=True)
class M:
    """A boolean mask index."""

    tensor: T


@dataclass(frozen=True)
class Layer:
    """A layer used as a constructor argument (Sequential, TransformerEncoder)."""

    name: str
    args: tuple
    kwargs: dict


def sub_layer(name: str, *args: Any, **kwargs: Any) -> Layer:
    return Layer(name, args, kwargs)


@dataclass
class Case:
    kind: str  # "layer" | "op"
    name: str
    args: tuple
    kwargs: dict
    receiver: Any = None
    inputs: tuple = ()
    fwd: dict = field(default_factory=dict)
    error: str | None = None
    sym_error: bool = False
    partial: bool = False
    warn: str | None = None
    device: str = "meta"
    env_list: list[dict] | None = None

    # -- fluent builders ----------------------------------------------------------------------------
    def on(self, *inputs: Any, **fwd: Any) -> Case:
        self.inputs, self.fwd = inputs, fwd
        return self

    def raises(self, message: str, sym_error: bool = False) -> Case:
        self.error, self.sym_error, self.device = message, sym_error, "cpu"
        return self

    def part(self) -> Case:
        self.partial = True
        return self

    def cpu(self) -> Case:
        self.device = "cpu"
        return self

    def warns(self, message: str) -> Case:
        self.warn, self.device = message, "cpu"
        return self

    def envs(self, *envs: dict) -> Case:
        self.env_list = list(envs)
        return self

    def symbols(self) -> set[str]:
        found: set[str] = set()
        for v in _walk((self.args, self.kwargs, self.receiver, self.inputs, self.fwd)):
            if isinstance(v, Dim):
                found |= v.symbols()
        return found

    def environments(self) -> list[dict]:
        if self.env_list is not None:
            return self.env_list
        names = sorted(self.symbols())
        if not names:
            return [{}]
        return [{s: _VALUES.get(s, (3, 5))[i] for s in names} for i in range(2)]

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"


_SLOW_ON_META = {
    "RNN",
    "LSTM",
    "GRU",
}  # their meta kernels are Python decompositions: tiny CPU runs are faster


def L(name: str, *args: Any, **kwargs: Any) -> Case:
    return Case("layer", name, args, kwargs, device="cpu" if name in _SLOW_ON_META else "meta")


def O(op: str, receiver: Any, *args: Any, **kwargs: Any) -> Case:
    return Case("op", op, args, kwargs, receiver=receiver)


def F(op: str, *args: Any, **kwargs: Any) -> Case:
    return Case("op", op, args, kwargs)


def _walk(v: Any) -> Iterator[Any]:
    yield v
    if isinstance(v, (tuple, list)):
        for x in v:
            yield from _walk(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from _walk(x)
    elif isinstance(v, T):
        yield from _walk(v.dims)
    elif isinstance(v, M):
        yield from _walk(v.tensor)
    elif isinstance(v, Layer):
        yield from _walk((v.args, v.kwargs))
    elif isinstance(v, slice):
        yield from _walk((v.start, v.stop, v.step))


# -- converting case values -----------------------------------------------------------------------------
def to_sym(v: Any, env: dict | None) -> Any:
    """The value as symshape takes it (with symbols replaced by env's ints when env is given)."""
    if isinstance(v, Dim):
        return v.subs(env) if env is not None else v
    if isinstance(v, T):
        return Shape([to_sym(Dim.of(x), env) for x in v.dims])
    if isinstance(v, M):
        return Mask(to_sym(v.tensor, env))
    if isinstance(v, Layer):
        return ss.layer_spec(f"torch.nn.{v.name}", to_sym(v.args, env), to_sym(v.kwargs, env))
    if isinstance(v, tuple):
        return tuple(to_sym(x, env) for x in v)
    if isinstance(v, list):
        return [to_sym(x, env) for x in v]
    if isinstance(v, dict):
        return {key: to_sym(x, env) for key, x in v.items()}
    if isinstance(v, slice):
        return slice(to_sym(v.start, env), to_sym(v.stop, env), to_sym(v.step, env))
    return v


def _int(v: Any, env: dict) -> int:
    value = Dim.of(v).subs(env).value
    assert value is not None, v
    return value


def to_torch(v: Any, env: dict, device: str) -> Any:
    if isinstance(v, Dim):
        return _int(v, env)
    if isinstance(v, T):
        size = [_int(x, env) for x in v.dims]
        if v.dtype == "long":
            return torch.zeros(size, dtype=torch.long, device=device)
        if v.dtype == "bool":
            return torch.ones(size, dtype=torch.bool, device=device)
        if v.dtype == "complex":
            return torch.zeros(size, dtype=torch.complex64, device=device)
        if v.dtype == "prob":
            return torch.full(size, 0.5, device=device)
        return torch.empty(size, device=device) if device == "meta" else torch.randn(size, device=device)
    if isinstance(v, M):
        return to_torch(v.tensor, env, device)
    if isinstance(v, Layer):
        with torch.device(device):
            return getattr(nn, v.name)(*to_torch(v.args, env, device), **to_torch(v.kwargs, env, device))
    if isinstance(v, tuple):
        return tuple(to_torch(x, env, device) for x in v)
    if isinstance(v, list):
        return [to_torch(x, env, device) for x in v]
    if isinstance(v, dict):
        return {key: to_torch(x, env, device) for key, x in v.items()}
    if isinstance(v, slice):
        return slice(*(None if x is None else to_torch(x, env, device) for x in (v.start, v.stop, v.step)))
    return v


_ATTRIBUTES = {"T", "mT", "mH", "H"}
_SYMBOLS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "@": operator.matmul,
}


def run_torch(case: Case, env: dict, device: str) -> Any:
    if case.kind == "layer":
        with torch.device(device):
            module = getattr(nn, case.name)(
                *to_torch(case.args, env, device), **to_torch(case.kwargs, env, device)
            )
        return module(*to_torch(case.inputs, env, device), **to_torch(case.fwd, env, device))
    args = to_torch(case.args, env, device)
    kwargs = to_torch(case.kwargs, env, device)
    if case.receiver is not None:
        x = to_torch(case.receiver, env, device)
        if case.name in _SYMBOLS:
            return _SYMBOLS[case.name](x, *args)
        if case.name in _ATTRIBUTES:
            return getattr(x, case.name)
        if case.name == "__getitem__":
            return x[args[0]]
        if case.name == "__len__":
            return len(x)
        return getattr(x, case.name)(*args, **kwargs)
    fn = functools.reduce(getattr, case.name.split(".")[1:], torch)
    return fn(*args, **kwargs)


def run_rule(case: Case, env: dict | None) -> Any:
    if case.kind == "layer":
        spec = ss.layer_spec(f"torch.nn.{case.name}", to_sym(case.args, env), to_sym(case.kwargs, env))
        assert spec is not None, f"no spec for {case.name}"
        return spec.output(*to_sym(case.inputs, env), **to_sym(case.fwd, env))
    return ss.op_output(
        case.name, to_sym(case.receiver, env), to_sym(case.args, env), to_sym(case.kwargs, env)
    )


# -- comparing -------------------------------------------------------------------------------------------
def agrees(ours: Any, theirs: Any, *, allow_unknown: bool) -> bool:
    """Whether our result describes torch's: same structure, every known dim equal."""
    if isinstance(ours, Shape):
        return _shape_agrees(ours, theirs, allow_unknown=allow_unknown)
    if isinstance(ours, Repeated):
        return isinstance(theirs, (tuple, list)) and all(
            agrees(ours.item, x, allow_unknown=True) for x in theirs
        )
    if isinstance(ours, tuple):
        if isinstance(theirs, torch.Size):
            return len(ours) == len(theirs) and all(
                agrees(o, r, allow_unknown=allow_unknown) for o, r in zip(ours, theirs)
            )
        if not isinstance(theirs, (tuple, list)) or len(ours) != len(theirs):
            return False
        return all(agrees(o, r, allow_unknown=allow_unknown) for o, r in zip(ours, theirs))
    if ours is None:
        return theirs is None
    if isinstance(ours, Dim):
        if ours.value is None:
            return allow_unknown
        return isinstance(theirs, int) and ours.value == theirs
    if isinstance(ours, int):
        return theirs == ours
    return False


def _shape_agrees(ours: Shape, theirs: Any, *, allow_unknown: bool) -> bool:
    """`agrees` for a tensor: the same rank (or a known suffix of it), every known dim equal."""
    if not isinstance(theirs, torch.Tensor):
        return False
    real = list(theirs.shape)
    if ours.exact:
        if len(ours.dims) != len(real):
            return False
        pairs = zip(ours.dims, real)
    else:
        if not allow_unknown or len(ours.dims) > len(real):
            return False
        pairs = zip(ours.dims, real[len(real) - len(ours.dims) :])
    for mine, actual in pairs:
        if mine.value is None:
            if not allow_unknown:
                return False
        elif mine.value != actual:
            return False
    return True


def substitute(result: Any, env: dict) -> Any:
    if isinstance(result, Shape):
        return result.subs(env)
    if isinstance(result, Repeated):
        return Repeated(result.item.subs(env))
    if isinstance(result, tuple):
        return tuple(substitute(r, env) for r in result)
    if isinstance(result, Dim):
        return result.subs(env)
    return result


# =====================================================================================================
# Cases
# =====================================================================================================
# the spatial dims of a 1d/2d/3d input, and an nd-tuple of the first nd of three values
_SPATIAL = {1: (h,), 2: (h, w), 3: (h, w, d)}
_TUP = {1: lambda a, b_, c_: (a,), 2: lambda a, b_, c_: (a, b_), 3: lambda a, b_, c_: (a, b_, c_)}


def layer_cases() -> Iterator[Case]:
    yield from _linear_family_layer_cases()
    yield from _convolutions_layer_cases()
    yield from _pooling_layer_cases()
    yield from _normalisation_layer_cases()
    yield from _element_wise_layer_cases()
    yield from _embeddings_layer_cases()
    yield from _flatten_layer_cases()
    yield from _recurrent_layer_cases()
    yield from _attention_transformers_layer_cases()
    yield from _resampling_layer_cases()
    yield from _shuffle_and_padding_layer_cases()
    yield from _losses_layer_cases()
    yield from _containers_layer_cases()


def _linear_family_layer_cases() -> Iterator[Case]:
    """Linear family."""
    yield L("Linear", c, 5).on(T(b, c))
    yield L("Linear", c, 5).on(T(b, t, c))
    yield L("Linear", c, 5).on(T(c))
    yield L("Linear", 7, 5, False).on(T(b, 3, 4, 7))
    yield L("Linear", c, 2 * c, bias=False).on(T(b, c))
    yield L("Linear", 16 * 5 * 5, 120).on(T(b, 400))
    yield (
        L("Linear", 5, 3).on(T(4, 6)).raises("mat1 and mat2 shapes cannot be multiplied (4x6 and 5x3)", True)
    )
    yield (
        L("Linear", 5, 3)
        .on(T(2, 4, 6))
        .raises("mat1 and mat2 shapes cannot be multiplied (8x6 and 5x3)", True)
    )
    yield L("Linear", 5, 3).on(T(6)).raises("mat1 and mat2 shapes cannot be multiplied (1x6 and 5x3)", True)
    yield L("Linear", 5, 3).on(T()).raises("both arguments to linear need to be at least 1D", True)
    yield L("Linear", c, 3).on(T(b, 2 * c)).raises("mat1 and mat2 shapes cannot be multiplied", True)
    yield L("Linear", 256, 10).on(T(b, 16 * 5 * 5)).raises("mat1 and mat2 shapes cannot be multiplied", True)
    yield L("LazyLinear", 5).on(T(b, t, c))
    yield L("Bilinear", 3, c, 5).on(T(b, 3), T(b, c))
    yield L("Bilinear", 3, 4, 5).on(T(b, t, 3), T(b, t, 4))
    yield (
        L("Bilinear", 3, 4, 5)
        .on(T(2, 3), T(2, 5))
        .raises("bilinear(): input2 size does not match weight size")
    )
    yield (
        L("Bilinear", 3, 4, 5)
        .on(T(2, 4), T(2, 4))
        .raises("bilinear(): input1 size does not match weight size")
    )
    yield (
        L("Bilinear", 3, 4, 5).on(T(2, 3), T(3, 4)).raises("bilinear(): input batch dimensions do not match")
    )
    yield L("Bilinear", 3, 4, 5).on(T(2, 3), T(2, 2, 4)).raises("bilinear(): input dimensions do not match")


def _convolutions_layer_cases() -> Iterator[Case]:
    """Convolutions."""
    for nd in (1, 2, 3):
        yield from _conv_nd_layer_cases(nd)
        yield from _conv_transpose_nd_layer_cases(nd)


def _conv_nd_layer_cases(nd: int) -> Iterator[Case]:
    """Conv{nd}d."""
    conv = f"Conv{nd}d"
    sp = _SPATIAL[nd]
    configs = [
        dict(kernel_size=3),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=_TUP[nd](3, 1, 2), stride=_TUP[nd](2, 1, 3), padding=_TUP[nd](0, 1, 2)),
        dict(kernel_size=4, stride=2, padding=1, dilation=2),
        dict(kernel_size=3, padding="same", dilation=2),
        dict(kernel_size=4, padding="same"),
        dict(kernel_size=5, padding="valid", stride=3),
        dict(kernel_size=1, bias=False),
        dict(kernel_size=3, groups=2),
        dict(kernel_size=3, padding=2, padding_mode="reflect"),
        dict(kernel_size=3, padding=1, padding_mode="circular", stride=2),
        dict(kernel_size=2, stride=2, padding_mode="replicate", padding=1),
    ]
    for cfg in configs:
        yield L(conv, 4, 6, **cfg).on(T(b, 4, *sp))
    yield L(conv, 4, 6, 3, 2, 1).on(T(4, *sp))  # unbatched, positional stride/padding
    yield L(conv, c, 8, 3).on(T(b, c, *sp))  # symbolic channels
    yield (
        L(conv, 3, 8, 3)
        .on(T(2, 4, *([7] * nd)))
        .raises("to have 3 channels, but got 4 channels instead", True)
    )
    yield L(conv, 3, 8, 3).on(T(4, *([7] * nd))).raises("expected input[1, 4,", True)
    yield (
        L(conv, 3, 8, 3)
        .on(T(2, 3, *([2] * nd)))
        .raises("Kernel size can't be greater than actual input size")
    )
    yield (
        L(conv, 3, 8, 3).on(T(*([5] * (nd + 3)))).raises(f"input to conv{nd}d, but got input of size", True)
    )
    yield (
        L(conv, 3, 8, 3, groups=2).raises("in_channels must be divisible by groups").on(T(2, 3, *([7] * nd)))
    )
    yield (
        L(conv, 4, 7, 3, groups=2).raises("out_channels must be divisible by groups").on(T(2, 4, *([7] * nd)))
    )
    yield (
        L(conv, 3, 8, 3, stride=2, padding="same")
        .raises("padding='same' is not supported for strided")
        .on(T(2, 3, *([7] * nd)))
    )
    yield (L(conv, 3, 8, 3, padding="full").raises("Invalid padding string 'full'").on(T(2, 3, *([7] * nd))))


def _conv_transpose_nd_layer_cases(nd: int) -> Iterator[Case]:
    """ConvTranspose{nd}d."""
    sp = _SPATIAL[nd]
    tconv = f"ConvTranspose{nd}d"
    tconfigs = [
        dict(kernel_size=4, stride=2, padding=1),
        dict(kernel_size=3, stride=2, padding=1, output_padding=1),
        dict(
            kernel_size=_TUP[nd](3, 5, 2),
            stride=_TUP[nd](2, 1, 3),
            padding=_TUP[nd](0, 2, 1),
            dilation=_TUP[nd](1, 2, 1),
        ),
        dict(kernel_size=3, groups=2, bias=False),
        dict(kernel_size=5, stride=3, output_padding=2),
        dict(kernel_size=1),
    ]
    for cfg in tconfigs:
        yield L(tconv, 4, 6, **cfg).on(T(b, 4, *sp))
    yield L(tconv, 4, 6, 3, 2).on(T(4, *sp))
    yield L(tconv, 4, 6, 3, stride=2).on(T(b, 4, *sp), output_size=[2 * x + 1 for x in sp])
    yield L(tconv, 4, 6, 3, stride=2).on(T(b, 4, *sp), output_size=[b, 6, *[2 * x + 2 for x in sp]])
    yield L(tconv, 3, 8, 3).on(T(2, 4, *([7] * nd))).raises("Given transposed=1, weight of size", True)
    yield L(tconv, 3, 8, 3).on(T(4, *([7] * nd))).raises("expected input[1, 4,", True)
    yield (
        L(tconv, 3, 8, 3, output_padding=1)
        .on(T(2, 3, *([7] * nd)))
        .raises("output padding must be smaller than either stride or dilation", True)
    )
    yield (
        L(tconv, 3, 8, 3, stride=2)
        .on(T(2, 3, *([7] * nd)), output_size=[18] * nd)
        .raises("requested an output size of")
    )
    yield (
        L(tconv, 3, 8, 3)
        .on(T(*([7] * (nd + 3))))
        .raises(f"input to conv_transpose{nd}d, but got input", True)
    )


def _pooling_layer_cases() -> Iterator[Case]:
    """Pooling."""
    for nd in (1, 2, 3):
        sp = _SPATIAL[nd]
        for cfg in (
            dict(kernel_size=2),
            dict(kernel_size=3, stride=2),
            dict(kernel_size=3, stride=2, padding=1),
            dict(kernel_size=2, stride=2, ceil_mode=True),
            dict(kernel_size=3, stride=3, ceil_mode=True),
            dict(kernel_size=3, stride=1, padding=1, dilation=2),
            dict(kernel_size=_TUP[nd](2, 3, 2), stride=_TUP[nd](1, 2, 2)),
            dict(kernel_size=2, return_indices=True),
        ):
            yield L(f"MaxPool{nd}d", **cfg).on(T(b, c, *sp))
        yield (
            L(f"MaxPool{nd}d", 3, 2, 1, ceil_mode=True).on(T(b, c, *sp)).part()
        )  # symbolic ceil with padding
        yield L(f"MaxPool{nd}d", 3, 2, 1, ceil_mode=True).on(T(2, 3, *([9] * nd)))
        yield L(f"MaxPool{nd}d", 3, 2, 1, ceil_mode=True).on(T(2, 3, *([10] * nd)))
        yield L(f"MaxPool{nd}d", 2).on(T(c, *sp))  # unbatched
        yield L(f"MaxPool{nd}d", 3, padding=2).on(T(1, 1, *([5] * nd))).raises("should be at most half", True)
        yield (
            L(f"MaxPool{nd}d", 3)
            .on(T(1, 2, *([2] * nd)))
            .raises("Invalid computed output size: 0" if nd == 1 else "Output size is too small", True)
        )
        yield (
            L(f"MaxPool{nd}d", 3)
            .on(T(*([5] * nd)))
            .raises("Expected 2D or 3D (batch mode) tensor" if nd == 1 else "tensor expected for input", True)
        )
        avg = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        for cfg in (
            dict(kernel_size=2),
            dict(kernel_size=3, stride=2, padding=1),
            dict(kernel_size=3, stride=3, ceil_mode=True),
            dict(avg, count_include_pad=False),
        ):
            yield L(f"AvgPool{nd}d", **cfg).on(T(b, c, *sp))
        # the last window may start in the right padding: unknown with symbols, exact with ints
        yield L(f"AvgPool{nd}d", 2, 3, 1, ceil_mode=True).on(T(b, c, *sp)).part()
        yield L(f"AvgPool{nd}d", 2, 3, 1, ceil_mode=True).on(T(2, 3, *([7] * nd)))
        yield L(f"AvgPool{nd}d", **avg).on(T(2, 3, *([9] * nd)))
        if nd > 1:
            yield L(f"AvgPool{nd}d", 2, divisor_override=3).on(T(b, c, *sp))
        yield L(f"AvgPool{nd}d", 3, padding=2).on(T(1, 1, *([5] * nd))).raises("should be at most half", True)
        yield (
            L(f"AvgPool{nd}d", 3)
            .on(T(1, 2, *([2] * nd)))
            .raises("smaller than kernel size" if nd == 3 else "Output size is too small", True)
        )
        for out in (1, 3, _TUP[nd](2, None, 1), _TUP[nd](None, 4, None)) if nd > 1 else (1, 3, (2,)):
            yield L(f"AdaptiveAvgPool{nd}d", out).on(T(b, c, *sp))
            yield L(f"AdaptiveMaxPool{nd}d", out).on(T(b, c, *sp))
        yield L(f"AdaptiveMaxPool{nd}d", 2, return_indices=True).on(T(c, *sp))
        for kind in ("Avg", "Max"):
            yield L(f"Adaptive{kind}Pool{nd}d", 2).on(T(*([5] * (nd + 3)))).raises("Expected", True)
            yield L(f"Adaptive{kind}Pool{nd}d", 2).on(T(5)).raises("Expected", True)
        if nd == 2:
            yield (
                L("AdaptiveMaxPool2d", 3)
                .on(T(5))
                .raises("adaptive_max_pool2d(): Expected 3D or 4D tensor, but got: [5]", True)
            )
            yield (
                L("AdaptiveAvgPool2d", 3)
                .on(T(5))
                .raises("adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got [5]", True)
            )


def _normalisation_layer_cases() -> Iterator[Case]:
    """Normalisation."""
    yield L("BatchNorm1d", c).on(T(b, c))
    yield L("BatchNorm1d", c).on(T(b, c, t))
    yield L("BatchNorm2d", c).on(T(b, c, h, w))
    yield L("BatchNorm3d", c, affine=False).on(T(b, c, h, w, d))
    yield (
        L("BatchNorm2d", 3, track_running_stats=False)
        .on(T(2, 4, 5, 5))
        .raises("weight should contain 4 elements not 3", True)
    )
    yield L("BatchNorm2d", 3).on(T(2, 4, 5, 5)).raises("running_mean should contain 4 elements not 3", True)
    yield L("BatchNorm2d", 3, affine=False, track_running_stats=False).on(T(2, 4, 5, 5))
    yield L("BatchNorm1d", 3).on(T(2, 4)).raises("running_mean should contain 4 elements not 3", True)
    yield L("BatchNorm2d", c).on(T(b, c, h)).raises("expected 4D input (got 3D input)", True)
    yield L("BatchNorm1d", c).on(T(b, c, h, w)).raises("expected 2D or 3D input (got 4D input)", True)
    yield L("BatchNorm3d", c).on(T(b, c, h, w)).raises("expected 5D input (got 4D input)", True)
    yield L("BatchNorm2d", c, bias=False).on(T(b, c, h, w))
    yield L("LayerNorm", c).on(T(b, t, c))
    yield L("LayerNorm", (h, w)).on(T(b, c, h, w))
    yield L("LayerNorm", [c], elementwise_affine=False).on(T(c))
    yield L("LayerNorm", c, bias=False).on(T(b, c))
    yield (
        L("LayerNorm", 10)
        .on(T(3, 5))
        .raises(
            "Given normalized_shape=[10], expected input with shape [*, 10], but got input of size[3, 5]",
            True,
        )
    )
    yield L("LayerNorm", (5, 10)).on(T(3, 5, 11)).raises("Given normalized_shape=[5, 10]", True)
    yield L("LayerNorm", (5, 10)).on(T(10)).raises("Given normalized_shape=[5, 10]", True)
    yield L("RMSNorm", c).on(T(b, t, c))
    yield L("RMSNorm", [h, w]).on(T(b, h, w))
    yield L("GroupNorm", 2, c).on(T(b, c, h, w))
    yield L("GroupNorm", 3, 6, affine=False).on(T(b, 6, t))
    yield (
        L("GroupNorm", 2, 6)
        .on(T(3, 4, 5))
        .raises("Expected weight to be a vector of size equal to the number of channels", True)
    )
    yield (
        L("GroupNorm", 2, 6, affine=False)
        .on(T(3, 5, 5))
        .raises("Expected number of channels in input to be divisible by num_groups", True)
    )
    yield (
        L("GroupNorm", 2, 6)
        .on(T(3, 5, 5))
        .raises("Expected number of channels in input to be divisible by num_groups", True)
    )
    yield L("GroupNorm", 2, 5).raises("num_channels (5) must be divisible by num_groups (2)").on(T(3, 5, 5))
    yield (
        L("GroupNorm", 2, 6)
        .on(T(6))
        .raises("Expected at least 2 dimensions for input tensor but received 1", True)
    )
    for nd in (1, 2, 3):
        yield L(f"InstanceNorm{nd}d", c).on(T(b, c, *_SPATIAL[nd]))
        yield L(f"InstanceNorm{nd}d", c, affine=True).on(T(c, *_SPATIAL[nd]))
        yield (
            L(f"InstanceNorm{nd}d", 3, affine=True)
            .on(T(2, 4, *([5] * nd)))
            .raises("expected input's size at dim=1 to match num_features (3), but got: 4.", True)
        )
        yield (
            L(f"InstanceNorm{nd}d", 3, affine=True)
            .on(T(4, *([5] * nd)))
            .raises("expected input's size at dim=0 to match num_features (3), but got: 4.", True)
        )
        yield (
            L(f"InstanceNorm{nd}d", 3)
            .on(T(*([5] * nd)))
            .raises(f"expected {nd + 1}D or {nd + 2}D input (got {nd}D input)", True)
        )
    yield L("LocalResponseNorm", 2).on(T(b, c, h, w))


def _element_wise_layer_cases() -> Iterator[Case]:
    """Element-wise."""
    for name in [
        "Dropout",
        "Dropout1d",
        "Dropout2d",
        "Dropout3d",
        "AlphaDropout",
        "FeatureAlphaDropout",
        "ReLU",
        "ReLU6",
        "SELU",
        "SiLU",
        "Mish",
        "Hardswish",
        "Hardsigmoid",
        "LeakyReLU",
        "ELU",
        "CELU",
        "GELU",
        "Sigmoid",
        "Tanh",
        "Softsign",
        "Tanhshrink",
        "LogSigmoid",
        "Hardtanh",
        "Softplus",
        "Softshrink",
        "Hardshrink",
        "RReLU",
        "Identity",
    ]:
        shape_ = (b, c, h) if name != "Dropout3d" else (b, c, h, w, d)
        yield L(name).on(T(*shape_))
    yield L("Threshold", 0.1, 20.0).on(T(b, c))
    yield L("Identity", 54, unused_argument1=0.1).on(T(b, c))
    yield L("Softmax", dim=1).on(T(b, c, h))
    yield L("LogSoftmax", -1).on(T(b, c))
    yield L("Softmin", 0).on(T(b, c))
    yield (
        L("Softmax", dim=3)
        .on(T(2, 3, 4))
        .raises("Dimension out of range (expected to be in range of [-3, 2], but got 3)", True)
    )
    yield L("Softmax2d").on(T(b, c, h, w))
    yield L("PReLU").on(T(b, c, h))
    yield L("PReLU", c).on(T(b, c, h))
    yield L("PReLU", 3).on(T(2, 4, 5)).raises("Found parameter numbers = 3 and channel size = 4.", True)
    yield L("GLU").on(T(b, 2 * c))
    yield L("GLU", 1).on(T(b, 6, h))
    yield (
        L("GLU", 1)
        .on(T(1, 5, 3, 3))
        .raises("Halving dimension must be even, but dimension 1 is size 5", True)
    )
    yield L("GLU").on(T(4, 5)).raises("Halving dimension must be even", True)
    yield L("ChannelShuffle", 2).on(T(b, 4, h, w)).cpu()


def _embeddings_layer_cases() -> Iterator[Case]:
    """Embeddings."""
    yield L("Embedding", 10, c).on(T(b, t, dtype="long"))
    yield L("Embedding", 10, c, padding_idx=0).on(T(t, dtype="long"))
    yield (
        L("Embedding", 10, 3, padding_idx=10)
        .raises("Padding_idx must be within num_embeddings")
        .on(T(2, dtype="long"))
    )
    yield L("EmbeddingBag", 10, c).on(T(b, t, dtype="long"))
    yield L("EmbeddingBag", 10, c, mode="sum").on(T(6, dtype="long"), T(3, dtype="long")).cpu()
    yield L("EmbeddingBag", 10, c, include_last_offset=True).on(T(6, dtype="long"), T(3, dtype="long")).cpu()
    yield (
        L("EmbeddingBag", 10, 3)
        .on(T(6, dtype="long"))
        .raises("offsets has to be a 1D Tensor but got None", True)
    )
    yield (
        L("EmbeddingBag", 10, 3)
        .on(T(2, 6, dtype="long"), T(2, dtype="long"))
        .raises("if input is 2D, then offsets has to be None", True)
    )
    yield (
        L("EmbeddingBag", 10, 3)
        .on(T(2, 3, 6, dtype="long"))
        .raises("input has to be 1D or 2D Tensor, but got Tensor of dimension 3", True)
    )


def _flatten_layer_cases() -> Iterator[Case]:
    """Flatten."""
    yield L("Flatten").on(T(b, c, h, w))
    yield L("Flatten", 0, -1).on(T(b, c, h))
    yield L("Flatten", 2, 3).on(T(b, c, h, w, d))
    yield L("Flatten").on(T(b, c))
    yield L("Flatten", -3, -2).on(T(b, c, h, w))
    yield (
        L("Flatten")
        .on(T(7))
        .raises("Dimension out of range (expected to be in range of [-1, 0], but got 1)", True)
    )
    yield (
        L("Flatten", 2, 1)
        .on(T(2, 3, 4))
        .raises("flatten() has invalid args: start_dim cannot come after end_dim", True)
    )
    yield L("Unflatten", 1, (c, h)).on(T(b, c * h))
    yield L("Unflatten", -1, (2, -1)).on(T(b, 2 * c))
    yield (
        L("Unflatten", 1, (2, 3))
        .on(T(1, 7))
        .raises("unflatten: Provided sizes [2, 3] don't multiply up to the size of dim 1 (7)", True)
    )
    yield (
        L("Unflatten", 1, (4, -1))
        .on(T(1, 6))
        .raises("unflatten: Provided sizes [4, -1] don't multiply up", True)
    )


def _recurrent_layer_cases() -> Iterator[Case]:
    """Recurrent."""
    for name in ("RNN", "LSTM", "GRU"):
        for layers, bidir, bfirst in itertools.product((1, 2), (False, True), (False, True)):
            kw = dict(num_layers=layers, bidirectional=bidir, batch_first=bfirst)
            x = T(b, t, c) if bfirst else T(t, b, c)
            yield L(name, c, 5, **kw).on(x)
            yield L(name, c, 5, **kw).on(T(t, c))
        hx = T(4, b, 5)
        yield L(name, c, 5, 2, bidirectional=True).on(T(t, b, c), (hx, hx) if name == "LSTM" else hx)
        yield (
            L(name, 10, 20)
            .on(T(5, 3, 11))
            .raises("input.size(-1) must be equal to input_size. Expected 10, got 11", True)
        )
        yield (
            L(name, 10, 20).on(T(5, 3, 2, 10)).raises(f"{name}: Expected input to be 2D or 3D, got 4D", True)
        )
        bad = T(1, 3, 20)
        yield (
            L(name, 10, 20, 2)
            .on(T(5, 3, 10), (bad, bad) if name == "LSTM" else bad)
            .raises("size (2, 3, 20), got [1, 3, 20]", True)
        )
        bad2 = T(1, 3, 20)
        yield (
            L(name, 10, 20)
            .on(T(5, 10), (bad2, bad2) if name == "LSTM" else bad2)
            .raises(
                "For unbatched 2-D input, hx" if name != "LSTM" else "For unbatched 2-D input, hx and cx",
                True,
            )
        )
    yield L("RNN", c, 5, 2, "relu").on(T(t, b, c))
    yield L("RNN", c, 5, nonlinearity="relu", bias=False).on(T(t, b, c))
    yield L("LSTM", c, 6, proj_size=3).on(T(t, b, c))
    yield L("LSTM", c, 6, 2, True, True, 0.0, True, 3).on(T(b, t, c))
    yield L("LSTM", c, 6, num_layers=3, proj_size=2, batch_first=True).on(T(t, c))
    yield (
        L("LSTM", 10, 20, proj_size=20).raises("proj_size has to be smaller than hidden_size").on(T(5, 3, 10))
    )
    yield (
        L("LSTM", 10, 20, 2)
        .on(T(5, 3, 10), (T(2, 3, 20), T(2, 3, 21)))
        .raises("Expected hidden[1] size (2, 3, 20), got [2, 3, 21]", True)
    )
    yield (
        L("GRU", 10, 20)
        .on(T(5, 3, 10), T(1, 20))
        .raises("For batched 3-D input, hx should also be 3-D but got 2-D tensor", True)
    )
    for name in ("RNNCell", "LSTMCell", "GRUCell"):
        yield L(name, c, 5).on(T(b, c))
        yield L(name, c, 5).on(T(c))
        hx = T(b, 5)
        yield L(name, c, 5, bias=False).on(T(b, c), (hx, hx) if name == "LSTMCell" else hx)
        yield (
            L(name, 10, 20).on(T(3, 11)).raises("input has inconsistent input_size: got 11 expected 10", True)
        )
        yield (
            L(name, 10, 20)
            .on(T(3, 2, 10))
            .raises(f"{name}: Expected input to be 1D or 2D, got 3D instead", True)
        )
        bad = T(3, 21)
        yield (
            L(name, 10, 20)
            .on(T(3, 10), (bad, T(3, 20)) if name == "LSTMCell" else bad)
            .raises("hidden0 has inconsistent hidden_size: got 21, expected 20", True)
        )
        bad = T(4, 20)
        yield (
            L(name, 10, 20)
            .on(T(3, 10), (bad, bad) if name == "LSTMCell" else bad)
            .raises("Input batch size 3 doesn't match hidden0 batch size 4", True)
        )
    yield L("RNNCell", c, 5, True, "relu").on(T(b, c))


def _attention_transformers_layer_cases() -> Iterator[Case]:
    """Attention / transformers."""
    e = 4 * n
    for bfirst in (False, True):
        q = T(b, t, e) if bfirst else T(t, b, e)
        kv = T(b, k, e) if bfirst else T(k, b, e)
        yield L("MultiheadAttention", e, 4, batch_first=bfirst).on(q, kv, kv)
        yield L("MultiheadAttention", e, 4, batch_first=bfirst).on(q, q, q, need_weights=False)
        yield L("MultiheadAttention", e, 4, batch_first=bfirst).on(q, kv, kv, average_attn_weights=False)
        yield L("MultiheadAttention", e, 2, batch_first=bfirst, add_bias_kv=True, add_zero_attn=True).on(
            q, kv, kv
        )
        kv2 = T(b, k, 3) if bfirst else T(k, b, 3)
        kv3 = T(b, k, 5) if bfirst else T(k, b, 5)
        yield L("MultiheadAttention", e, 4, kdim=3, vdim=5, batch_first=bfirst).on(q, kv2, kv3)
        yield L("MultiheadAttention", e, 4, batch_first=bfirst).on(T(t, e), T(k, e), T(k, e))
        yield L("MultiheadAttention", e, 4, batch_first=bfirst).on(
            T(t, e), T(k, e), T(k, e), average_attn_weights=False
        )
    yield (
        L("MultiheadAttention", 16, 4)
        .on(T(5, 3, 8), T(5, 3, 8), T(5, 3, 8))
        .raises("was expecting embedding dimension of 16, but got 8", True)
    )
    yield (
        L("MultiheadAttention", 16, 4)
        .on(T(5, 3, 16), T(6, 3, 16), T(7, 3, 16))
        .raises("key shape torch.Size([6, 3, 16]) does not match value shape torch.Size([7, 3, 16])", True)
    )
    yield (
        L("MultiheadAttention", 16, 4)
        .on(T(5, 3, 2, 16), T(5, 3, 2, 16), T(5, 3, 2, 16))
        .raises("query should be unbatched 2D or batched 3D tensor but received 4-D query tensor", True)
    )
    yield (
        L("MultiheadAttention", 16, 5)
        .raises("embed_dim must be divisible by num_heads")
        .on(T(5, 3, 16), T(5, 3, 16), T(5, 3, 16))
    )
    for bfirst, norm_first in itertools.product((False, True), (False, True)):
        kw = dict(dim_feedforward=32, dropout=0.0, batch_first=bfirst, norm_first=norm_first)
        src = T(b, t, 16) if bfirst else T(t, b, 16)
        mem = T(b, k, 16) if bfirst else T(k, b, 16)
        yield L("TransformerEncoderLayer", 16, 4, **kw).on(src)
        yield L("TransformerDecoderLayer", 16, 4, **kw).on(src, mem)
        yield L(
            "TransformerEncoder",
            sub_layer("TransformerEncoderLayer", 16, 4, **kw),
            2,
            enable_nested_tensor=False,
        ).on(src)
        yield L("TransformerDecoder", sub_layer("TransformerDecoderLayer", 16, 4, **kw), 2).on(src, mem)
        yield L("Transformer", 16, 4, 1, 1, 32, 0.0, batch_first=bfirst).on(mem, src)
    yield L("TransformerEncoderLayer", 16, 4, 32).on(T(t, 16))
    yield (
        L("TransformerEncoderLayer", 16, 4)
        .on(T(5, 3, 8))
        .raises("was expecting embedding dimension of 16, but got 8", True)
    )
    yield (
        L("TransformerEncoderLayer", 16, 4)
        .on(T(5, 3, 2, 16))
        .raises("query should be unbatched 2D or batched 3D tensor", True)
    )
    yield (
        L("TransformerDecoderLayer", 16, 4)
        .on(T(5, 3, 8), T(5, 3, 16))
        .raises("was expecting embedding dimension of 16, but got 8", True)
    )
    yield (
        L("Transformer", 16, 4, 1, 1, 32)
        .on(T(5, 3, 16), T(6, 2, 16))
        .raises("the batch number of src and tgt must be equal", True)
    )
    yield (
        L("Transformer", 16, 4, 1, 1, 32)
        .on(T(5, 3, 16), T(6, 3, 8))
        .raises("the feature number of src and tgt must be equal to d_model", True)
    )


def _resampling_layer_cases() -> Iterator[Case]:
    """Resampling: Upsample."""
    for nd in (1, 2, 3):
        sp = _SPATIAL[nd]
        yield L("Upsample", scale_factor=2).on(T(b, c, *sp))
        yield L("Upsample", scale_factor=1.5).on(T(b, c, *sp))
        yield L("Upsample", scale_factor=0.5, mode="nearest-exact").on(T(b, c, *sp))
        yield L("Upsample", size=5).on(T(b, c, *sp))
        yield L("Upsample", size=_TUP[nd](5, 6, 7)).on(T(b, c, *sp))
        yield L("Upsample", scale_factor=_TUP[nd](2.0, 3.0, 0.5)).on(T(b, c, *sp))
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[nd]
        yield L("Upsample", scale_factor=2, mode=mode, align_corners=True).on(T(b, c, *sp))
        yield L("Upsample", scale_factor=1 / 3, mode=mode).on(T(b, c, *sp)).part()
        yield L("Upsample", scale_factor=1 / 3, mode=mode).on(T(2, 3, *([10] * nd)))
    yield L("Upsample", scale_factor=2, mode="bicubic").on(T(b, c, h, w))
    yield L("Upsample", scale_factor=2, mode="area").on(T(b, c, h, w))
    yield (
        L("Upsample", scale_factor=2, mode="linear")
        .on(T(1, 3, 5, 5))
        .raises("Got 4D input, but linear mode needs 3D input", True)
    )
    yield (
        L("Upsample", scale_factor=2, mode="bilinear")
        .on(T(1, 3, 5))
        .raises("Got 3D input, but bilinear mode needs 4D input", True)
    )
    yield (
        L("Upsample", size=3, scale_factor=2)
        .on(T(1, 3, 5))
        .raises("only one of size or scale_factor should be defined", True)
    )
    yield L("Upsample").on(T(1, 3, 5)).raises("either size or scale_factor should be defined", True)
    yield (
        L("Upsample", scale_factor=2)
        .on(T(3, 5))
        .raises("Input Error: Only 3D, 4D and 5D input Tensors supported (got 2D)", True)
    )
    yield (
        L("Upsample", size=(3, 4))
        .on(T(1, 3, 5))
        .raises("Input and output must have the same number of spatial dimensions", True)
    )


def _shuffle_and_padding_layer_cases() -> Iterator[Case]:
    """Resampling: the fixed-mode upsamplers, pixel shuffles, padding layers, cosine similarity."""
    yield L("UpsamplingNearest2d", scale_factor=2).on(T(b, c, h, w))
    yield L("UpsamplingBilinear2d", size=(7, 9)).on(T(b, c, h, w))
    yield L("PixelShuffle", 2).on(T(b, 4 * c, h, w))
    yield L("PixelShuffle", 3).on(T(c * 9, h, w))
    yield L("PixelUnshuffle", 2).on(T(b, c, 2 * h, 2 * w))
    yield (
        L("PixelShuffle", 2)
        .on(T(1, 5, 3, 3))
        .raises(
            "pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of upscale_factor, but input.size(-3)=5 is not divisible by 4",
            True,
        )
    )
    yield (
        L("PixelShuffle", 2)
        .on(T(4, 4))
        .raises(
            "pixel_shuffle expects input to have at least 3 dimensions, but got input with 2 dimension(s)",
            True,
        )
    )
    yield (
        L("PixelUnshuffle", 2)
        .on(T(1, 4, 5, 4))
        .raises(
            "pixel_unshuffle expects height to be divisible by downscale_factor, but input.size(-2)=5 is not divisible by 2",
            True,
        )
    )
    for nd in (1, 2, 3):
        sp = _SPATIAL[nd]
        pads = tuple(range(1, 2 * nd + 1))
        yield L(f"ZeroPad{nd}d", 2).on(T(b, c, *sp))
        yield L(f"ZeroPad{nd}d", pads).on(T(b, c, *sp))
        yield L(f"ConstantPad{nd}d", pads, 0.5).on(T(c, *sp))
        yield L(f"ReflectionPad{nd}d", 1).on(T(b, c, *sp))
        yield L(f"ReplicationPad{nd}d", pads).on(T(b, c, *sp))
        yield L(f"CircularPad{nd}d", 1).on(T(b, c, *sp))
    yield L("ZeroPad2d", -1).on(T(b, c, h, w))
    yield L("CosineSimilarity").on(T(b, c), T(b, c))
    yield L("CosineSimilarity", dim=-1).on(T(b, t, c), T(1, c))


def _losses_layer_cases() -> Iterator[Case]:
    """Losses."""
    yield L("CrossEntropyLoss").on(T(b, c), T(b, dtype="long"))
    yield L("CrossEntropyLoss", reduction="none").on(T(b, c), T(b, dtype="long"))
    yield L("CrossEntropyLoss", reduction="none").on(T(b, c, t), T(b, t, dtype="long"))
    yield L("CrossEntropyLoss", reduction="sum").on(T(b, c, h, w), T(b, h, w, dtype="long"))
    yield L("CrossEntropyLoss", reduction="none").on(T(b, c), T(b, c, dtype="prob"))
    yield L("CrossEntropyLoss", label_smoothing=0.1).on(T(c), T(dtype="long"))
    yield (
        L("CrossEntropyLoss")
        .on(T(4, 5), T(8, dtype="long"))
        .raises("Expected input batch_size (4) to match target batch_size (8).", True)
    )
    yield (
        L("CrossEntropyLoss")
        .on(T(4, 5), T(4, 1, dtype="long"))
        .raises("0D or 1D target tensor expected, multi-target not supported", True)
    )
    yield (
        L("CrossEntropyLoss")
        .on(T(4, 5, 6), T(4, 7, dtype="long"))
        .raises("Expected target size [4, 6], got [4, 7]", True)
    )
    yield (
        L("CrossEntropyLoss")
        .on(T(4, 5, 6), T(4, dtype="long"))
        .raises("Expected target size [4, 6], got [4]", True)
    )
    yield L("NLLLoss").on(T(b, c), T(b, dtype="long"))
    yield L("NLLLoss", reduction="none").on(T(b, c, t), T(b, t, dtype="long"))
    yield (
        L("NLLLoss")
        .on(T(4, 5), T(4, 5, dtype="long"))
        .raises("0D or 1D target tensor expected, multi-target not supported", True)
    )
    for name in ("MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss"):
        yield L(name).on(T(b, c), T(b, c))
        yield L(name, reduction="none").on(T(b, c), T(b, c))
        yield (
            L(name)
            .on(T(4, 1), T(4))
            .warns(
                "Using a target size (torch.Size([4])) that is different to the input size (torch.Size([4, 1]))"
            )
        )
        yield (
            L(name)
            .on(T(4, 3), T(5))
            .raises(
                "The size of tensor a (3) must match the size of tensor b (5) at non-singleton dimension 1",
                True,
            )
        )
    yield L("MSELoss", reduce=False).on(T(b, c), T(b, c))
    yield L("MSELoss", size_average=False).on(T(b, c), T(b, c))
    yield L("BCELoss").on(T(b, 1, dtype="prob"), T(b, 1, dtype="prob"))
    yield L("BCEWithLogitsLoss", reduction="none").on(T(b, c), T(b, c))
    yield (
        L("BCELoss")
        .on(T(4, 1, dtype="prob"), T(4, dtype="prob"))
        .raises(
            "Using a target size (torch.Size([4])) that is different to the input size (torch.Size([4, 1])) is deprecated",
            True,
        )
    )
    yield (
        L("BCEWithLogitsLoss")
        .on(T(4, 1), T(4))
        .raises("Target size (torch.Size([4])) must be the same as input size (torch.Size([4, 1]))", True)
    )


def _containers_layer_cases() -> Iterator[Case]:
    """Containers."""
    yield L(
        "Sequential",
        sub_layer("Conv2d", 3, 8, 3, padding=1),
        sub_layer("ReLU"),
        sub_layer("MaxPool2d", 2),
        sub_layer("Conv2d", 8, 16, 5),
        sub_layer("Flatten"),
        sub_layer("LazyLinear", 10),
    ).on(T(b, 3, 2 * h, 2 * w))
    yield L("Sequential", sub_layer("Linear", c, 8), sub_layer("Tanh"), sub_layer("Linear", 8, 2)).on(T(b, c))
    yield (
        L("Sequential", sub_layer("Linear", 4, 8), sub_layer("Linear", 9, 2))
        .on(T(3, 4))
        .raises("mat1 and mat2 shapes cannot be multiplied (3x8 and 9x2)", True)
    )


def op_cases() -> Iterator[Case]:
    x4 = T(b, c, h, w)
    # -- view / reshape / flatten ---------------------------------------------------------------------
    yield O("view", x4, b, -1)
    yield O("view", x4, -1)
    yield O("view", x4, b * c, h * w)
    yield O("view", x4, (b, c, -1))
    yield O("reshape", x4, -1, w)
    yield O("view", T(b, t, 3 * c), b, t, 3, c)
    yield (
        O("view", T(b, t, c), b, t, n, -1)
        .envs({"b": 2, "t": 5, "c": 12, "n": 3}, {"b": 3, "t": 2, "c": 8, "n": 4})
        .part()
    )
    yield F("torch.reshape", x4, (b, -1))
    yield O("view", T(2, 3, 4), 5, -1).raises("shape '[5, -1]' is invalid for input of size 24", True)
    yield O("view", T(2, 3, 4), 5, 6).raises("shape '[5, 6]' is invalid for input of size 24", True)
    yield O("reshape", T(2, 3), -1, -1).raises("only one dimension can be inferred", True)
    yield O("view", T(4), -2, 2).raises("invalid shape dimension -2 at index 0 of shape [-2, 2]", True)
    yield O("view", T(b, 16, 5, 5), b, 256).raises("is invalid for input of size", True)
    yield O("view", T(b, c), b, c + 1).raises("is invalid for input of size", True)
    yield O("view_as", T(b, c, h), T(c, b * h))
    yield O("reshape_as", T(b, c, h), T(b, c * h))
    yield O("flatten", x4)
    yield O("flatten", x4, 1)
    yield O("flatten", x4, 1, 2)
    yield O("flatten", x4, -2)
    yield O("flatten", T())
    yield F("torch.flatten", x4, 1)
    yield F("torch.flatten", x4, start_dim=2, end_dim=-1)
    yield O("flatten", T(2, 3, 4), 2, 1).raises(
        "flatten() has invalid args: start_dim cannot come after end_dim", True
    )
    yield O("flatten", T(2, 3), 2).raises(
        "Dimension out of range (expected to be in range of [-2, 1], but got 2)", True
    )
    yield O("unflatten", T(b, c * h), 1, (c, h))
    yield O("unflatten", T(b, 12), -1, (3, -1))
    # -- permutes ---------------------------------------------------------------------------------------
    yield O("permute", x4, 0, 2, 3, 1)
    yield O("permute", x4, (0, -1, 1, 2))
    yield F("torch.permute", x4, (3, 2, 1, 0))
    yield O("permute", T(2, 3), 0, 0).raises("permute(): duplicate dims are not allowed.", True)
    yield O("permute", T(2, 3, 4), 0, 1).raises(
        "number of dimensions in the tensor input does not match the length of the desired ordering", True
    )
    yield O("transpose", x4, 1, 2)
    yield O("transpose", x4, -1, -2)
    yield O("transpose", x4, 0, 0)
    yield O("swapaxes", x4, 0, 3)
    yield F("torch.transpose", T(b, t), 0, 1)
    yield O("transpose", T(2, 3), 0, 2).raises(
        "Dimension out of range (expected to be in range of [-2, 1], but got 2)", True
    )
    yield O("t", T(b, c))
    yield O("t", T(c))
    yield O("t", T(3, 1, 2)).raises("t() expects a tensor with <= 2 dimensions, but self is 3D", True)
    yield O("T", T(b, c))
    yield O("T", T(b, c, h))
    yield O("mT", T(b, c, h))
    yield O("mT", T(3)).raises(
        "tensor.mT is only supported on matrices or batches of matrices. Got 1-D tensor.", True
    )
    yield O("movedim", x4, 1, -1)
    yield O("movedim", x4, (0, 1), (2, 3))
    yield O("squeeze", T(3, 1, 4, 1))
    yield O("squeeze", T(b, 1, t), 1)
    yield O("squeeze", T(b, 1, t), -1)
    yield O("squeeze", T(3, 1, 1), (0, 1))
    yield F("torch.squeeze", T(1, b, c), 0)
    yield O("unsqueeze", T(b, c), 0)
    yield O("unsqueeze", T(b, c), -1)
    yield O("unsqueeze", T(b, c), 2)
    yield O("unsqueeze", T(b, c), 3).raises(
        "Dimension out of range (expected to be in range of [-3, 2], but got 3)", True
    )
    # -- expand / repeat --------------------------------------------------------------------------------
    yield O("expand", T(c, 1), c, 4)
    yield O("expand", T(c, 1), 2, c, w)
    yield O("expand", T(c, 1), -1, 5)
    yield O("expand", T(1, c), (b, c))
    yield O("expand_as", T(1, c), T(b, c))
    yield O("expand", T(2, 3), 4, 3, 2).raises(
        "The expanded size of the tensor (2) must match the existing size (3) at non-singleton dimension 2.  Target sizes: [4, 3, 2].  Tensor sizes: [2, 3]",
        True,
    )
    yield O("repeat", T(b, c), 2, 3)
    yield O("repeat", T(b, c), 2, 1, 3)
    yield O("repeat", T(3, 1), 2).raises(
        "Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor", True
    )
    yield O("tile", T(3, 1, 2), 2)
    yield O("repeat_interleave", T(b, c), 2)
    yield O("repeat_interleave", T(b, c), 3, dim=1)
    # -- cat / stack / split ------------------------------------------------------------------------------
    yield F("torch.cat", [T(b, c), T(b, 3)], 1)
    yield F("torch.cat", [T(b, c), T(b, c), T(b, c)], dim=-1)
    yield F("torch.cat", (T(b, c, h), T(t, c, h)))
    yield F("torch.cat", [T(3, 2), T(0)], 1)
    yield F("torch.concat", [T(b, c), T(2, c)])
    yield F("torch.cat", [T(2, 3), T(3, 4)], 1).raises(
        "Sizes of tensors must match except in dimension 1. Expected size 2 but got size 3 for tensor number 1 in the list.",
        True,
    )
    yield F("torch.cat", [T(b, 3), T(b, 4)], 0).raises(
        "Sizes of tensors must match except in dimension 0", True
    )
    yield F("torch.cat", [T(2, 3), T(3)], 0).raises(
        "Tensors must have same number of dimensions: got 2 and 1", True
    )
    yield F("torch.cat", [], 1).raises("expected a non-empty list of Tensors", True)
    yield F("torch.cat", [T(3), T(3)], 1).raises(
        "Dimension out of range (expected to be in range of [-1, 0], but got 1)", True
    )
    yield F("torch.stack", [T(b, c), T(b, c)])
    yield F("torch.stack", [T(b, c), T(b, c), T(b, c)], 2)
    yield F("torch.stack", [T(b, c)], dim=-1)
    yield F("torch.stack", [T(2, 3), T(3, 2)], 0).raises(
        "stack expects each tensor to be equal size, but got [2, 3] at entry 0 and [3, 2] at entry 1", True
    )
    yield F("torch.stack", [T(3), T(3)], 2).raises(
        "Dimension out of range (expected to be in range of [-2, 1], but got 2)", True
    )
    for size, chunks in ((6, 2), (6, 4), (5, 4), (7, 3), (1, 3), (0, 3)):
        yield O("chunk", T(b, size), chunks, 1)
    yield O("chunk", T(b, 3 * c), 3, -1)
    yield O("chunk", T(b, c), 2, -1).part()
    yield F("torch.chunk", T(4 * c, b), 4)
    for size, step in ((6, 2), (7, 3), (5, 5), (5, 8)):
        yield O("split", T(size, b), step)
    yield O("split", T(b, t, 3 * c), c, 2)
    yield O("split", T(b, 10), [3, 3, 4], 1)
    yield O("split", T(b, c + 2), [c, 2], dim=-1)
    yield O("split", T(10), [3, 3]).raises(
        "split_with_sizes expects split_sizes to sum exactly to 10 (input tensor's size at dimension 0), but got split_sizes=[3, 3]",
        True,
    )
    yield O("unbind", T(3, b, c))
    yield O("unbind", T(b, c, 2), -1)
    yield O("narrow", T(b, 6), 1, 2, 3)
    yield O("narrow", T(4, 6), 1, 2, 5).raises("start (2) + length (5) exceeds dimension size (6).", True)
    yield O("select", T(b, 6, c), 1, 2)
    yield O("select", T(4, 6), 1, 7).raises(
        "select(): index 7 out of range for tensor of size [4, 6] at dimension 1", True
    )
    yield O("index_select", T(b, 6, c), 1, T(4, dtype="long"))
    yield O("gather", T(b, 6), 1, T(b, 2, dtype="long"))
    yield F("torch.gather", T(b, 6, c), -1, T(b, 6, 1, dtype="long"))
    # -- matrix products ------------------------------------------------------------------------------
    combos = [
        ((c,), (c,)),
        ((n, c), (c,)),
        ((c,), (c, n)),
        ((b, c), (c, n)),
        ((b, t, c), (c, n)),
        ((n, c), (b, c, t)),
        ((b, t, c), (b, c, n)),
        ((2, 1, t, c), (b, c, n)),
        ((b, t, c), (c,)),
        ((c,), (b, c, n)),
        ((b, 1, t, c), (1, h, c, n)),
    ]
    for left, right in combos:
        yield O("matmul", T(*left), T(*right))
        yield F("torch.matmul", T(*left), T(*right))
        yield O("__matmul__", T(*left), T(*right))
    yield O("@", T(b, t, c), T(c, 2))
    errors = [
        (
            (4,),
            (5,),
            "inconsistent tensor size, expected tensor [4] and src [5] to have the same number of elements, but got 4 and 5 elements respectively",
        ),
        ((4, 3), (5,), "size mismatch, got input (4), mat (4x3), vec (5)"),
        ((4,), (5, 3), "mat1 and mat2 shapes cannot be multiplied (1x4 and 5x3)"),
        ((4, 6), (5, 3), "mat1 and mat2 shapes cannot be multiplied (4x6 and 5x3)"),
        ((2, 4, 6), (5, 3), "mat1 and mat2 shapes cannot be multiplied (8x6 and 5x3)"),
        ((2, 4, 3), (5,), "size mismatch, got input (8), mat (8x3), vec (5)"),
        (
            (4, 6),
            (2, 5, 3),
            "Expected size for first two dimensions of batch2 tensor to be: [2, 6] but got: [2, 5].",
        ),
        (
            (4,),
            (2, 5, 3),
            "Expected size for first two dimensions of batch2 tensor to be: [2, 4] but got: [2, 5].",
        ),
        (
            (2, 4, 6),
            (2, 5, 3),
            "Expected size for first two dimensions of batch2 tensor to be: [2, 6] but got: [2, 5].",
        ),
        (
            (2, 4, 6),
            (3, 6, 3),
            "The size of tensor a (2) must match the size of tensor b (3) at non-singleton dimension 0",
        ),
        (
            (3, 1, 4, 6),
            (2, 5, 3),
            "Expected size for first two dimensions of batch2 tensor to be: [6, 6] but got: [6, 5].",
        ),
        (
            (3, 2, 4, 6),
            (2, 1, 6, 3),
            "The size of tensor a (3) must match the size of tensor b (2) at non-singleton dimension 0",
        ),
        ((), (5,), "both arguments to matmul need to be at least 1D, but they are 0D and 1D"),
    ]
    for left, right, message in errors:
        yield O("matmul", T(*left), T(*right)).raises(message, True)
    yield O("matmul", T(b, t, c), T(c + 1, n)).raises("mat1 and mat2 shapes cannot be multiplied", True)
    yield O("mm", T(b, c), T(c, n))
    yield F("torch.mm", T(4, 3), T(3)).raises("mat2 must be a matrix", True)
    yield O("mm", T(2, 4, 3), T(3, 5)).raises("self must be a matrix", True)
    yield O("mm", T(4, 6), T(5, 3)).raises("mat1 and mat2 shapes cannot be multiplied (4x6 and 5x3)", True)
    yield O("bmm", T(b, t, c), T(b, c, n))
    yield F("torch.bmm", T(2, 4, 6), T(3, 6, 3)).raises(
        "Expected size for first two dimensions of batch2 tensor to be: [2, 6] but got: [3, 6].", True
    )
    yield O("bmm", T(4, 3), T(3, 4)).raises("batch1 must be a 3D tensor", True)
    yield O("bmm", T(2, 4, 3), T(3, 4)).raises("batch2 must be a 3D tensor", True)
    yield O("mv", T(n, c), T(c))
    yield O("mv", T(2, 4), T(5)).raises("size mismatch, got input (2), mat (2x4), vec (5)", True)
    yield O("mv", T(2, 4, 3), T(5)).raises("vector + matrix @ vector expected, got 1, 3, 1", True)
    yield O("dot", T(c), T(c))
    yield F("torch.dot", T(4, 3), T(3, 4)).raises("1D tensors expected, but got 2D and 2D tensors", True)
    yield O("outer", T(c), T(n))
    yield F("torch.baddbmm", T(b, t, n), T(b, t, c), T(b, c, n))
    yield F("torch.addmm", T(n), T(b, c), T(c, n))
    yield F("torch.einsum", "ij,jk->ik", T(n, c), T(c, t))
    yield F("torch.einsum", "bij,bjk->bik", T(b, n, c), T(b, c, t))
    yield F("torch.einsum", "ij,kj", T(1, 3), T(4, 1))
    yield F("torch.einsum", "i j , j k -> i k", T(n, c), T(c, t))
    yield F("torch.einsum", "...ij,...jk->...ik", T(h, n, c), T(c, t))
    yield F("torch.einsum", "bhqd,bhkd->bhqk", T(b, 4, t, c), T(b, 4, k, c))
    yield F("torch.einsum", "bi,bi->b", T(b, c), T(b, c))
    yield F("torch.einsum", "ii->i", T(c, c))
    yield F("torch.einsum", "ij->", T(c, n))
    yield F("torch.einsum", "ij", T(c, n))
    yield F("torch.einsum", "ba", T(c, n))
    yield F("torch.einsum", "ij,jk->ik", [T(n, c), T(c, t)])
    yield F("torch.einsum", "ij,jk->ik", T(2, 3), T(4, 5)).raises(
        "einsum(): subscript j has size 4 for operand 1 which does not broadcast with previously seen size 3",
        True,
    )
    yield F("torch.einsum", "ij,jk", T(2, 3, 4), T(3, 5)).raises(
        "einsum(): the number of subscripts in the equation (2) does not match the number of dimensions (3) for operand 0 and no ellipsis was given",
        True,
    )
    yield F("torch.einsum", "ij,jk", T(2, 3)).raises(
        "einsum(): fewer operands were provided than specified in the equation", True
    )
    yield F("torch.nn.functional.linear", T(b, t, c), T(n, c))
    yield F("torch.nn.functional.linear", T(b, c), T(n, c), T(n))
    yield F("torch.nn.functional.linear", T(b, c), T(c))
    yield F("torch.nn.functional.linear", T(4, 6), T(3, 5)).raises(
        "mat1 and mat2 shapes cannot be multiplied (4x6 and 5x3)", True
    )
    yield F("torch.nn.functional.scaled_dot_product_attention", T(b, 4, t, c), T(b, 4, k, c), T(b, 4, k, n))
    yield F(
        "torch.nn.functional.scaled_dot_product_attention",
        T(b, t, c),
        T(b, k, c),
        T(b, k, c),
        is_causal=False,
    )
    yield F(
        "torch.nn.functional.scaled_dot_product_attention", T(2, 3, 5, 8), T(2, 3, 6, 7), T(2, 3, 6, 4)
    ).raises("Expected size for first two dimensions of batch2 tensor to be: [6, 8] but got: [6, 7].", True)
    yield F(
        "torch.nn.functional.scaled_dot_product_attention", T(2, 3, 5, 8), T(2, 3, 6, 8), T(2, 3, 7, 4)
    ).raises("Expected size for first two dimensions of batch2 tensor to be: [6, 6] but got: [6, 7].", True)
    # -- broadcasting -----------------------------------------------------------------------------------
    for op in (
        "add",
        "sub",
        "mul",
        "div",
        "eq",
        "lt",
        "maximum",
        "pow",
        "__add__",
        "__radd__",
        "__mul__",
        "__truediv__",
        "__rsub__",
        "__ge__",
    ):
        yield O(op, T(b, 1, w), T(h, 1))
    yield O("__add__", T(b, c), 2.0)
    yield O("__mul__", T(b, c), T())
    yield O("+", T(1, c), T(b, 1))
    yield F("torch.add", T(b, c), T(c), alpha=2)
    yield F("torch.mul", 3.0, T(b, c))
    yield O("add", T(2, 3), T(4)).raises(
        "The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1", True
    )
    yield O("__mul__", T(5, 2, 3), T(4, 1, 3)).raises(
        "The size of tensor a (5) must match the size of tensor b (4) at non-singleton dimension 0", True
    )
    yield O("__sub__", T(b, 3), T(b, 4)).raises(
        "The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1", True
    )
    yield O("add_", T(b, c), T(c))
    yield O("mul_", T(b, c), 2)
    yield O("__iadd__", T(b, c), T(1, c))
    yield O("add_", T(3), T(2, 3)).raises(
        "output with shape [3] doesn't match the broadcast shape [2, 3]", True
    )
    yield F("torch.where", T(b, 1, dtype="bool"), T(1, c), 0.0)
    yield F("torch.where", T(b, c, dtype="bool"), T(b, c), T(b, c))
    yield O("masked_fill", T(b, c), T(b, c, dtype="bool"), 0.0)
    yield O("masked_fill", T(b, t, t), T(t, t, dtype="bool"), float("-inf"))
    yield F("torch.addcmul", T(b, c), T(c), T(b, 1))
    yield O("lerp", T(b, c), T(b, c), 0.5)
    # -- reductions -------------------------------------------------------------------------------------
    x3 = T(b, c, h)
    for op in (
        "sum",
        "mean",
        "prod",
        "amax",
        "amin",
        "logsumexp",
        "all",
        "any",
        "nansum",
        "std",
        "var",
        "norm",
        "count_nonzero",
    ):
        if op not in ("logsumexp", "prod"):
            yield O(op, x3)
        yield O(op, x3, 1)
        yield O(op, x3, dim=-1)
        if op not in ("prod", "count_nonzero"):
            yield O(op, x3, (0, 2)) if op != "norm" else O(op, x3, dim=(0, 2))
            yield (
                O(op, x3, (1, 2), keepdim=True)
                if op not in ("norm", "std", "var")
                else O(op, x3, dim=(1, 2), keepdim=True)
            )
    yield O("sum", x3, dim=None, keepdim=True)
    yield O("std", x3, True)
    yield O("std", x3, 1, True, True)
    yield O("var", x3, dim=1, correction=0, keepdim=True)
    yield O("norm", x3, 2, 1)
    yield F("torch.sum", x3, 1)
    yield F("torch.mean", x3, (1, 2), True)
    yield O("sum", T(2, 3), (0, 0)).raises("dim 0 appears multiple times in the list of dims", True)
    yield O("sum", T(2, 3), 2).raises(
        "Dimension out of range (expected to be in range of [-2, 1], but got 2)", True
    )
    for op in ("max", "min", "median"):
        yield O(op, x3)
        yield O(op, x3, 1)
        yield O(op, x3, -1, True)
        yield O(op, x3, dim=0, keepdim=True)
    yield O("max", T(b, c), T(1, c))
    yield F("torch.max", x3, 1)
    yield O("max", T(3, 4), 2).raises(
        "Dimension out of range (expected to be in range of [-2, 1], but got 2)", True
    )
    for op in ("argmax", "argmin"):
        yield O(op, x3)
        yield O(op, x3, 1)
        yield O(op, x3, dim=-1, keepdim=True)
    yield O("argmax", x3, keepdim=True)
    yield O("mode", x3)
    yield O("mode", x3, 0, True)
    yield O("kthvalue", x3, 2, 1)
    yield O("topk", x3, 2)
    yield O("topk", x3, 2, dim=0)
    yield O("topk", T(4, 6), 7).raises("selected index k out of range", True)
    yield O("sort", x3)
    yield O("sort", x3, 1, True)
    yield O("argsort", x3, dim=0)
    yield O("cumsum", x3, 1)
    yield O("cummax", x3, -1)
    yield F("torch.std_mean", x3, 1)
    for op in ("softmax", "log_softmax"):
        yield O(op, x3, -1)
        yield O(op, x3, dim=1)
        yield F(f"torch.nn.functional.{op}", x3, dim=-1)
        yield F(f"torch.{op}", x3, 0)
    yield F("torch.nn.functional.softmax", T(3, 4), 2).raises(
        "Dimension out of range (expected to be in range of [-2, 1], but got 2)", True
    )
    yield F("torch.nn.functional.normalize", x3, dim=-1)
    # -- same shape -------------------------------------------------------------------------------------
    for op in (
        "contiguous",
        "clone",
        "detach",
        "float",
        "long",
        "relu",
        "sigmoid",
        "exp",
        "abs",
        "clamp",
        "triu",
        "flip",
    ):
        args = {"clamp": (0.0,), "flip": ((0,),)}.get(op, ())
        yield O(op, x3, *args)
    for fn in (
        "torch.relu",
        "torch.sigmoid",
        "torch.tanh",
        "torch.nn.functional.relu",
        "torch.nn.functional.gelu",
        "torch.nn.functional.dropout",
        "torch.nn.functional.silu",
        "torch.zeros_like",
        "torch.ones_like",
        "torch.randn_like",
    ):
        yield F(fn, x3)
    yield F("torch.nn.functional.leaky_relu", x3, 0.2)
    yield F("torch.nn.functional.glu", T(b, 2 * c))
    yield F("torch.nn.functional.glu", T(b, 6, h), 1)
    yield F("torch.nn.functional.layer_norm", T(b, t, c), (c,))
    yield F("torch.nn.functional.layer_norm", T(3, 5), (10,)).raises(
        "Given normalized_shape=[10], expected input with shape [*, 10], but got input of size[3, 5]", True
    )
    yield F("torch.nn.functional.group_norm", T(b, 6, t), 3)
    # -- indexing -------------------------------------------------------------------------------------
    for index in (
        0,
        -1,
        (slice(None), 0),
        (Ellipsis, 0),
        (slice(None), None),
        None,
        (None, Ellipsis, None),
        slice(1, None),
        slice(None, -1),
        (slice(None), slice(None, None, 2)),
        (slice(None), slice(1, None, 3), Ellipsis),
        (Ellipsis, slice(None, 2)),
        (0, 0, 0, 0),
        (slice(None), slice(None), slice(None, t)),
        (Ellipsis, slice(-2, None)),
    ):
        yield O("__getitem__", T(b, c, 16, w), index)
    yield O("__getitem__", T(8, 8), (slice(None, t), slice(None, t))).envs({"t": 5}, {"t": 8})
    yield O("__getitem__", T(1, 1, 8, 8), (slice(None), slice(None), slice(None, t), slice(None, t))).envs(
        {"t": 3}
    )
    yield O("__getitem__", T(9), slice(1, 5, 2))
    yield O("__getitem__", T(9), slice(7, 20))
    yield O("__getitem__", T(9), slice(-20, 3))
    yield O("__getitem__", T(b, c, h), T(4, dtype="long")).cpu()
    yield O("__getitem__", T(b, c, h), (slice(None), T(2, 3, dtype="long"))).cpu()
    yield O("__getitem__", T(3, 4, 5), (0, slice(None), T(2, dtype="long"))).cpu()
    yield O("__getitem__", T(3, 4, 5), (slice(None), T(2, dtype="long"), T(3, 1, dtype="long"))).cpu()
    yield O("__getitem__", T(3, 4, 5), (T(2, dtype="long"), slice(None), T(2, dtype="long"))).cpu()
    yield O("__getitem__", T(3, 4, 5), (T(2, dtype="long"), 0)).cpu()
    yield O("__getitem__", T(3, 4, 5), (slice(None), 0, T(2, dtype="long"))).cpu()
    yield O("__getitem__", T(3, 4, 5), (Ellipsis, [0, 1])).cpu()
    yield O("__getitem__", T(3, 4, 5), (None, slice(None), T(2, dtype="long"))).cpu()
    yield O("__getitem__", T(3, 4, 5), M(T(3, 4, dtype="bool"))).cpu().part()
    yield O("__getitem__", T(3, 4, 5), (slice(None), M(T(4, dtype="bool")))).cpu().part()
    yield O("__getitem__", T(3, 4), 5).raises("index 5 is out of bounds for dimension 0 with size 3", True)
    yield O("__getitem__", T(3, 4), (slice(None), -5)).raises(
        "index -5 is out of bounds for dimension 1 with size 4", True
    )
    yield O("__getitem__", T(3, 4), (1, 2, 3)).raises("too many indices for tensor of dimension 2", True)
    yield O("__getitem__", T(3, 4, 5), M(T(3, 5, dtype="bool"))).raises(
        "The shape of the mask [3, 5] at index 1 does not match the shape of the indexed tensor [3, 4, 5] at index 1",
        True,
    )
    # -- metadata -------------------------------------------------------------------------------------
    yield O("size", x4)
    yield O("size", x4, 1)
    yield O("size", x4, -1)
    yield O("dim", x4)
    yield O("numel", x4)
    yield O("__len__", x4)
    yield O("size", T(3, 4), 5).raises(
        "Dimension out of range (expected to be in range of [-2, 1], but got 5)", True
    )
    # -- factories ------------------------------------------------------------------------------------
    yield F("torch.zeros", b, c)
    yield F("torch.zeros", (b, c))
    yield F("torch.ones", [b, c, 2])
    yield F("torch.randn", b, c, requires_grad=True)
    yield F("torch.empty", 0)
    yield F("torch.full", (b, c), 1.5)
    yield F("torch.randint", 0, 10, (b, c))
    yield F("torch.randint", 10, (b,))
    yield F("torch.arange", 5)
    yield F("torch.arange", n)
    yield F("torch.arange", 1, 10, 3)
    yield F("torch.arange", 0.0, 1.0, 0.25)
    yield F("torch.arange", 2, n + 2)
    yield F("torch.linspace", 0, 1, n)
    yield F("torch.eye", n)
    yield F("torch.eye", n, c)
    yield F("torch.randperm", n)
    yield O("new_zeros", x4, (b, 2))
    yield O("new_ones", x4, b, 2)
    yield O("new_full", x4, (c,), 3.0)
    # -- functional layers ----------------------------------------------------------------------------
    yield F("torch.nn.functional.conv2d", T(b, 4, h, w), T(6, 4, 3, 3))
    yield F("torch.nn.functional.conv2d", T(b, 4, h, w), T(6, 2, 3, 3), None, 2, 1, 1, 2)
    yield F("torch.nn.functional.conv2d", T(b, 4, h, w), T(6, 4, 3, 3), padding="same")
    yield F("torch.nn.functional.conv1d", T(b, 4, t), T(6, 4, 5), stride=2)
    yield F("torch.nn.functional.conv3d", T(b, 4, h, w, d), T(6, 4, 3, 3, 3), padding=1)
    yield F("torch.nn.functional.conv_transpose2d", T(b, 4, h, w), T(4, 6, 4, 4), stride=2, padding=1)
    yield F("torch.nn.functional.conv2d", T(2, 4, 7, 9), T(8, 3, 3, 3)).raises(
        "Given groups=1, weight of size [8, 3, 3, 3], expected input[2, 4, 7, 9] to have 3 channels, but got 4 channels instead",
        True,
    )
    yield F("torch.nn.functional.max_pool2d", T(b, c, h, w), 2)
    yield F("torch.nn.functional.max_pool2d", T(b, c, h, w), 3, 2, 1, ceil_mode=True).part()
    yield F("torch.nn.functional.max_pool2d", T(2, c, 9, 10), 3, 2, 1, 1, True)
    yield F("torch.nn.functional.max_pool1d", T(b, c, t), 2, return_indices=True)
    yield F("torch.nn.functional.avg_pool2d", T(b, c, h, w), (2, 3))
    yield F("torch.nn.functional.avg_pool1d", T(b, c, t), 3, 2, 1)
    yield F("torch.nn.functional.adaptive_avg_pool2d", T(b, c, h, w), (1, 1))
    yield F("torch.nn.functional.adaptive_avg_pool2d", T(b, c, h, w), 1)
    yield F("torch.nn.functional.adaptive_max_pool1d", T(b, c, t), 3, True)
    yield F("torch.nn.functional.interpolate", T(b, c, h, w), scale_factor=2)
    yield F(
        "torch.nn.functional.interpolate", T(b, c, h, w), size=(5, 7), mode="bilinear", align_corners=False
    )
    yield F("torch.nn.functional.interpolate", T(b, c, t), scale_factor=0.5, mode="linear")
    yield F("torch.nn.functional.interpolate", T(b, c, h, w), (5, 7))
    yield F("torch.nn.functional.pad", T(b, c, h, w), (1, 1))
    yield F("torch.nn.functional.pad", T(b, c, h, w), (1, 2, 3, 4))
    yield F("torch.nn.functional.pad", T(b, c, h, w), [0, 0, 0, 0, 0, 0, 1, 1])
    yield F("torch.nn.functional.pad", T(b, c, h, w), (1, 1, 1, 1), mode="reflect")
    yield F("torch.nn.functional.pad", T(b, c, t), (1, 1), mode="circular")
    yield F("torch.nn.functional.pad", T(2, 3, 4, 5), (1, 1), mode="reflect").raises(
        "Padding size 2 is not supported for 4D input tensor.", True
    )
    yield (
        L("ReflectionPad2d", 2)
        .on(T(3, 4))
        .raises("Padding size 4 is not supported for 2D input tensor.", True)
    )
    yield F("torch.nn.functional.pad", T(b, c, h, w), (2, 2, 2, 2), "replicate")
    yield F("torch.nn.functional.pad", T(b, c, t), (-1, -2))
    yield F("torch.nn.functional.pad", T(b, c, t), (1, 1), value=0.5)
    yield F("torch.nn.functional.pad", T(3, 4), (1,)).raises("Padding length must be divisible by 2", True)
    yield F("torch.nn.functional.pad", T(3, 4), (1, 1, 1, 1, 1, 1)).raises(
        "Padding length should be less than or equal to two times the input dimension but got padding length 6 and input of dimension 2",
        True,
    )
    yield F("torch.nn.functional.affine_grid", T(b, 2, 3), (b, c, h, w), align_corners=False)
    yield F("torch.nn.functional.affine_grid", T(b, 3, 4), [b, c, d, h, w], align_corners=False)
    yield F("torch.nn.functional.affine_grid", T(4, 3, 3), (4, 1, 28, 28), align_corners=False).raises(
        "Expected a batch of 2D affine matrices of shape Nx2x3 for size",
        True,
    )
    yield F("torch.nn.functional.grid_sample", T(b, c, h, w), T(b, 5, 7, 2), align_corners=False)
    yield F("torch.nn.functional.grid_sample", T(b, c, d, h, w), T(b, 2, 5, 7, 3), align_corners=False)
    yield F("torch.view_as_complex", T(b, t, 4, 2))
    yield F("torch.view_as_real", T(b, t, 4, dtype="complex"))
    yield F("torch.polar", T(t, c), T(t, c))
    yield F("torch.polar", T(t, 1), T(c))
    yield F("torch.view_as_complex", T(3, 4)).raises("Tensor must have a last dimension of size 2", True)
    yield F("torch.nn.functional.embedding", T(b, t, dtype="long"), T(10, c))
    yield F("torch.nn.functional.one_hot", T(b, t, dtype="long"), 5).cpu()
    yield F("torch.nn.functional.pixel_shuffle", T(b, 4 * c, h, w), 2)
    yield F("torch.nn.functional.pixel_unshuffle", T(b, c, 2 * h, 2 * w), 2)
    yield F("torch.nn.functional.cosine_similarity", T(b, c), T(1, c))
    yield F("torch.nn.functional.cosine_similarity", T(b, t, c), T(b, t, c), dim=-1)
    yield F("torch.nn.functional.cross_entropy", T(b, c), T(b, dtype="long"))
    yield F("torch.nn.functional.cross_entropy", T(b, c, t), T(b, t, dtype="long"), reduction="none")
    yield F("torch.nn.functional.cross_entropy", T(4, 5), T(8, dtype="long")).raises(
        "Expected input batch_size (4) to match target batch_size (8).", True
    )
    yield F("torch.nn.functional.nll_loss", T(b, c), T(b, dtype="long"))
    yield F("torch.nn.functional.mse_loss", T(b, c), T(b, c))
    yield F("torch.nn.functional.mse_loss", T(4, 1), T(4)).warns(
        "Using a target size (torch.Size([4])) that is different to the input size (torch.Size([4, 1]))"
    )
    yield F("torch.nn.functional.l1_loss", T(b, c), T(b, c), reduction="none")
    yield F("torch.nn.functional.binary_cross_entropy_with_logits", T(b, c), T(b, c))
    yield F("torch.nn.functional.binary_cross_entropy_with_logits", T(4, 1), T(4)).raises(
        "Target size (torch.Size([4])) must be the same as input size (torch.Size([4, 1]))", True
    )


CASES = list(layer_cases()) + list(op_cases())


@pytest.fixture(autouse=True)
def _strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ss, "_STRICT", True)


def _torch_outcome(case: Case, env: dict, device: str) -> tuple[Any, BaseException | None, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return run_torch(case, env, device), None, [str(x.message) for x in caught]
        except Exception as exc:  # noqa: BLE001 - the exception is what we compare
            return None, exc, [str(x.message) for x in caught]


def _grouped(cases: list[Case]) -> dict[str, list[Case]]:
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.id, []).append(case)
    return groups


def _check_all(cases: list[Case], check: Any) -> None:
    """Run every case of a group; report all that fail (one pytest item per layer/op keeps this fast)."""
    failures = []
    for i, case in enumerate(cases, start=1):
        try:
            check(case)
        except AssertionError as exc:
            failures.append(f"#{i} {case}\n    {exc}")
    assert not failures, "\n".join(failures)


GROUPS = _grouped(CASES)


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_rule_matches_torch(name: str) -> None:
    _check_all(GROUPS[name], check_case)


def check_case(case: Case) -> None:
    symbolic = run_rule(case, None)
    if case.error is None and case.warn is None:
        assert not isinstance(symbolic, ShapeError), f"false error with symbols: {symbolic}"
    if case.sym_error:
        assert isinstance(symbolic, ShapeError), f"error not certain with symbols: {symbolic}"
    for env in case.environments():
        concrete = run_rule(case, env)
        theirs, exc, caught = _torch_outcome(case, env, case.device)
        if case.error is not None:
            assert exc is not None, f"torch did not raise for {env}; got {theirs}"
            message = str(exc)
            assert case.error in message, f"torch said: {message}"
            assert isinstance(concrete, ShapeError), f"rule gave {concrete} where torch raised {message}"
            if concrete.exact_message:
                assert concrete.message in message, f"ours: {concrete.message!r}\ntorch: {message!r}"
            assert concrete.exception == type(exc).__name__
            if isinstance(symbolic, ShapeError):
                assert symbolic.exception == type(exc).__name__
            continue
        assert exc is None, f"torch raised {type(exc).__name__}: {exc} for {env}"
        if case.warn is not None:
            assert any(case.warn in m for m in caught), caught
            assert isinstance(concrete, ShapeError) and concrete.warning, concrete
            assert any(concrete.message in m for m in caught), (concrete.message, caught)
            assert agrees(concrete.shape, theirs, allow_unknown=False)
            continue
        assert not isinstance(concrete, ShapeError), f"false error: {concrete}"
        assert concrete is not None or case.partial, "rule gave no answer"
        if concrete is not None:
            assert agrees(concrete, theirs, allow_unknown=case.partial), (
                f"ours {concrete}, torch {_shapes(theirs)}"
            )
        if symbolic is not None:
            assert agrees(substitute(symbolic, env), theirs, allow_unknown=True), (
                f"symbolic {symbolic} -> {substitute(symbolic, env)}, torch {_shapes(theirs)}"
            )
            if not case.partial:
                assert agrees(substitute(symbolic, env), theirs, allow_unknown=False), (
                    f"symbolic result not fully known: {symbolic}"
                )


def _shapes(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return list(v.shape)
    if isinstance(v, (tuple, list)):
        return type(v)(_shapes(x) for x in v)
    return v


# -- parameter counts -----------------------------------------------------------------------------------
COUNTED = [case for case in CASES if case.kind == "layer" and case.error is None]


COUNTED_GROUPS = _grouped(COUNTED)


@pytest.mark.parametrize("name", sorted(COUNTED_GROUPS))
def test_parameter_count_matches_torch(name: str) -> None:
    _check_all(COUNTED_GROUPS[name], check_count)


def check_count(case: Case) -> None:
    if case.name.startswith("Lazy") or any(
        isinstance(a, Layer) and a.name.startswith("Lazy") for a in case.args
    ):
        return  # lazy modules have no parameters before their first call
    spec = ss.layer_spec(f"torch.nn.{case.name}", to_sym(case.args, None), to_sym(case.kwargs, None))
    assert spec is not None
    count = spec.parameter_count()
    if count is None:
        assert case.name in ("Transformer",), f"{case.name}: no parameter count"
        return
    for env in case.environments():
        with torch.device("meta"):
            module = getattr(nn, case.name)(
                *to_torch(case.args, env, "meta"), **to_torch(case.kwargs, env, "meta")
            )
        assert count.subs(env).value == sum(p.numel() for p in module.parameters()), case.name


# -- the API's fix hints and certainty -----------------------------------------------------------------
def test_linear_error_names_the_argument_and_its_fix() -> None:
    spec = ss.layer_spec("torch.nn.Linear", (256, 120))
    x = Shape((b, 16 * 5 * 5))
    error = spec.output(x)
    assert isinstance(error, ShapeError)
    assert (error.code, error.argument, error.expected) == ("GG501", "in_features", Dim.of(400))
    fixed = ss.layer_spec("torch.nn.Linear", (error.expected.value, 120)).output(x)
    assert fixed == Shape((b, 120))
    with torch.device("meta"):
        assert nn.Linear(400, 120)(torch.empty(4, 400)).shape == (4, 120)


def test_conv_channel_error_names_in_channels() -> None:
    error = ss.layer_spec("torch.nn.Conv2d", (3, 8, 3)).output(Shape((b, 1, h, w)))
    assert isinstance(error, ShapeError)
    assert (error.argument, error.expected) == ("in_channels", Dim.of(1))


def test_two_symbols_are_never_certainly_different() -> None:
    assert ss.same(h, w) is None
    assert ss.layer_spec("torch.nn.Linear", (n, 5)).output(Shape((b, c))) == Shape((b, 5))
    assert ss.broadcast(Shape((b, c)), Shape((b, t))) == Shape((b, UNKNOWN_DIM))
    assert ss.op_output("view", Shape((b, c)), (b, t)) == Shape((b, t))
    # a sum may equal its part when the other term is 0: no error either
    assert ss.same(n + k, n) is None


UNKNOWN_DIM = ss.UNKNOWN


def test_case_count() -> None:
    layers = {c.name for c in CASES if c.kind == "layer"}
    ops = {c.name for c in CASES if c.kind == "op"}
    assert len(CASES) >= 600, len(CASES)
    assert len(layers) >= 90 and len(ops) >= 150, (len(layers), len(ops))


# -- differential fuzzing: random small concrete cases ------------------------------------------------
def _random_cases_1(
    rnd: Any, kind: int, a: tuple[int, ...], shp: Any, dim_of: Any, cases: list[Case]
) -> None:
    """One random case of kinds 0 to 7, appended to `cases`."""
    if kind == 0:
        b_ = shp() if rnd.random() < 0.5 else a[rnd.randint(0, len(a)) :]
        cases.append(O(rnd.choice(("add", "mul", "__sub__", "maximum", "eq")), T(*a), T(*b_)))
    elif kind == 1:
        b_ = shp(1, 4)
        if a and b_ and rnd.random() < 0.6:
            b_ = b_[:-2] + (a[-1],) + b_[-1:] if len(b_) >= 2 else (a[-1],)
        cases.append(O("matmul", T(*a), T(*b_)))
    elif kind == 2:
        numel = 1
        for v in a:
            numel *= v
        sizes = [rnd.choice((1, 2, 3, 4, 6, numel or 1)) for _ in range(rnd.randint(1, 3))]
        if rnd.random() < 0.6:
            sizes[rnd.randrange(len(sizes))] = -1
        cases.append(O(rnd.choice(("view", "reshape")), T(*a), *sizes))
    elif kind == 3:
        d = dim_of(a)
        others = [list(a) for _ in range(rnd.randint(1, 3))]
        for o in others:
            if o and rnd.random() < 0.3:
                o[rnd.randrange(len(o))] = rnd.choice((1, 2, 3))
        name = rnd.choice(("torch.cat", "torch.stack"))
        cases.append(F(name, [T(*a)] + [T(*o) for o in others], d))
    elif kind == 4:
        cases.append(O("transpose", T(*a), dim_of(a), dim_of(a)))
    elif kind == 5:
        perm = list(range(len(a)))
        rnd.shuffle(perm)
        if perm and rnd.random() < 0.2:
            perm[0] = perm[-1]
        cases.append(O("permute", T(*a), *perm))
    elif kind == 6:
        cases.append(O(rnd.choice(("squeeze", "unsqueeze")), T(*a), dim_of(a, 1)))
    elif kind == 7:
        cases.append(O("flatten", T(*a), dim_of(a), dim_of(a)))


def _random_cases_2(
    rnd: Any, kind: int, a: tuple[int, ...], shp: Any, dim_of: Any, cases: list[Case]
) -> None:
    """One random case of kinds 8 to 14, appended to `cases`."""
    if kind == 8:
        op = rnd.choice(("sum", "mean", "amax", "max", "argmax", "logsumexp", "std"))
        cases.append(O(op, T(*a), dim_of(a), keepdim=rnd.random() < 0.5))
    elif kind == 9:
        idx = []
        for v in a[: rnd.randint(0, len(a))]:
            idx.append(rnd.choice((0, -1, v, slice(None), slice(1, None), slice(None, None, 2), None)))
        if rnd.random() < 0.2:
            idx.insert(rnd.randint(0, len(idx)), Ellipsis)
        cases.append(O("__getitem__", T(*a), tuple(idx)))
    elif kind == 10:
        target = [rnd.choice((-1, 1, 2, 3, 4)) for _ in range(len(a) + rnd.randint(0, 1))]
        cases.append(O("expand", T(*a), *target))
    elif kind == 11:
        if a:
            cases.append(O(rnd.choice(("chunk", "split")), T(*a), rnd.randint(1, 4), dim_of(a)))
    elif kind == 12:
        x = shp(2, 2) if rnd.random() < 0.7 else shp()
        in_f = x[-1] if x and rnd.random() < 0.7 else rnd.randint(1, 5)
        cases.append(L("Linear", in_f, rnd.randint(1, 4)).on(T(*x)))
    elif kind == 13:
        n = rnd.choice((1, 2))
        c_in = rnd.randint(1, 3)
        x = (rnd.randint(1, 2), c_in if rnd.random() < 0.8 else c_in + 1) + tuple(
            rnd.randint(1, 9) for _ in range(n)
        )
        cases.append(
            L(
                f"Conv{n}d",
                c_in,
                rnd.randint(1, 3),
                rnd.randint(1, 4),
                stride=rnd.randint(1, 3),
                padding=rnd.randint(0, 2),
                dilation=rnd.randint(1, 2),
            ).on(T(*x))
        )
    elif kind == 14:
        n = rnd.choice((1, 2))
        x = (1, 2) + tuple(rnd.randint(1, 9) for _ in range(n))
        k = rnd.randint(1, 4)
        name = rnd.choice(("MaxPool", "AvgPool"))
        cases.append(
            L(f"{name}{n}d", k, rnd.randint(1, 3), rnd.randint(0, 2), ceil_mode=rnd.random() < 0.5).on(T(*x))
        )


def _random_cases_3(
    rnd: Any, kind: int, a: tuple[int, ...], shp: Any, dim_of: Any, cases: list[Case]
) -> None:
    """One random case of kinds 15 to 22 (15, in the last branch: a recurrent layer), appended to `cases`."""
    if kind == 16:
        n = rnd.choice((1, 2))
        c_in = rnd.randint(1, 3)
        x = (rnd.randint(1, 2), c_in if rnd.random() < 0.8 else c_in + 1) + tuple(
            rnd.randint(1, 5) for _ in range(n)
        )
        stride = rnd.randint(1, 3)
        cases.append(
            L(
                f"ConvTranspose{n}d",
                c_in,
                rnd.randint(1, 3),
                rnd.randint(1, 4),
                stride=stride,
                padding=rnd.randint(0, 1),
                output_padding=rnd.randint(0, stride),
                dilation=rnd.randint(1, 2),
            ).on(T(*x))
        )
    elif kind == 17:
        tail = a[len(a) - rnd.randint(0, len(a)) :] if a else ()
        ns = tail if rnd.random() < 0.7 else tuple(v + 1 for v in tail) or (3,)
        cases.append(L(rnd.choice(("LayerNorm", "RMSNorm")), list(ns) or [2]).on(T(*a)))
    elif kind == 18:
        x = (rnd.randint(1, 2), rnd.randint(1, 3)) + tuple(
            rnd.randint(1, 6) for _ in range(rnd.randint(0, 3))
        )
        if rnd.random() < 0.5:
            kw = {"scale_factor": rnd.choice((2, 0.5, 1.5, 3.0))}
        else:
            kw = {"size": rnd.randint(1, 6)}
        kw["mode"] = rnd.choice(("nearest", "linear", "bilinear", "area"))
        cases.append(F("torch.nn.functional.interpolate", T(*x), **kw))
    elif kind == 19:
        pad = tuple(rnd.randint(-1, 2) for _ in range(rnd.choice((1, 2, 4, 6))))
        mode = rnd.choice(("constant", "constant", "reflect", "replicate", "circular"))
        cases.append(F("torch.nn.functional.pad", T(*a), pad, mode=mode))
    elif kind == 20:
        letters = "ijkl"
        sa = "".join(rnd.sample(letters, rnd.randint(1, 3)))
        sb = "".join(rnd.sample(letters, rnd.randint(1, 3)))
        size = {ch: rnd.choice((1, 2, 3)) for ch in letters}
        ta = tuple(size[ch] if rnd.random() < 0.85 else size[ch] + 1 for ch in sa)
        tb = tuple(size[ch] for ch in sb)
        eq = f"{sa},{sb}" + (f"->{''.join(sorted(set(sa) ^ set(sb)))}" if rnd.random() < 0.5 else "")
        cases.append(F("torch.einsum", eq, T(*ta), T(*tb)))
    elif kind == 21:
        if a:
            d = rnd.randrange(len(a))
            sizes = [rnd.choice((1, 2, -1, a[d])) for _ in range(rnd.randint(1, 2))]
            cases.append(O("unflatten", T(*a), d, tuple(sizes)))
    elif kind == 22:
        numel_dims = a[: rnd.randint(1, len(a))] if a else (2,)
        tensor_index = T(rnd.randint(1, 3), dtype="long")
        idx = [slice(None)] * rnd.randint(0, max(len(a) - 1, 0)) + [tensor_index]
        if rnd.random() < 0.5:
            idx.append(M(T(*numel_dims[:1], dtype="bool")) if a[len(idx) :] else 0)
        cases.append(O("__getitem__", T(*a), tuple(idx)).part())  # a mask's count is data: "if it runs"
    else:
        batch, seq, feat = rnd.randint(1, 3), rnd.randint(1, 4), rnd.randint(1, 4)
        bf = rnd.random() < 0.5
        x = (batch, seq, feat) if bf else (seq, batch, feat)
        cases.append(
            L(
                rnd.choice(("LSTM", "GRU")),
                feat if rnd.random() < 0.8 else feat + 1,
                3,
                rnd.randint(1, 2),
                batch_first=bf,
                bidirectional=rnd.random() < 0.5,
            ).on(T(*x))
        )


def _random_cases(seed: int, count: int) -> list[Case]:
    import random

    rnd = random.Random(seed)

    def shp(lo: int = 0, hi: int = 4) -> tuple[int, ...]:
        return tuple(rnd.choice((1, 1, 2, 3, 4, 5)) for _ in range(rnd.randint(lo, hi)))

    def dim_of(s: tuple, extra: int = 0) -> int:
        n = max(len(s) + extra, 1)
        return rnd.randint(-n - 1, n)  # sometimes out of range

    cases: list[Case] = []
    for _ in range(count):
        kind = rnd.randrange(23)
        a = shp()
        if kind < 8:
            _random_cases_1(rnd, kind, a, shp, dim_of, cases)
        elif kind < 15:
            _random_cases_2(rnd, kind, a, shp, dim_of, cases)
        else:
            _random_cases_3(rnd, kind, a, shp, dim_of, cases)
    for case in cases:
        case.device = "cpu"
    return cases


FUZZ = _random_cases(seed=20261201, count=1500)


def test_random_cases_agree_with_torch() -> None:
    """On random small cases, everything the rules claim (a shape, or an error with torch's message) is
    what torch does; answers of "unknown" are allowed."""
    claimed = 0
    for case in FUZZ:
        ours = run_rule(case, {})
        theirs, exc, _ = _torch_outcome(case, {}, "cpu")
        if ours is None:
            continue
        claimed += 1
        if isinstance(ours, ShapeError):
            assert exc is not None, f"{case}: rule says {ours}, torch gives {_shapes(theirs)}"
            assert not ours.exact_message or ours.message in str(exc), (
                f"{case}\nours:  {ours.message}\ntorch: {exc}"
            )
            assert ours.exception == type(exc).__name__, (ours, exc)
        elif exc is not None:
            # a shape is what the op gives *if it runs*; only data (a mask's count) may make it fail
            assert case.partial, f"{case}: rule says {ours}, torch raised {exc!r}"
        else:
            assert agrees(ours, theirs, allow_unknown=True), f"{case}: ours {ours}, torch {_shapes(theirs)}"
    assert claimed > 0.8 * len(FUZZ), claimed


# -- the constructor signatures are torch's -----------------------------------------------------------
def _torch_params(fn: Any) -> list[tuple[str, Any, str]] | None:
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    out = []
    for p in list(sig.parameters.values()):
        if p.name == "self":
            continue
        default = p.default if p.default is not inspect.Parameter.empty else ss._REQ
        out.append((p.name, default, p.kind.name))
    return out


@pytest.mark.parametrize("name", ss.layer_names())
def test_layer_signature_is_torchs(name: str) -> None:
    theirs = _torch_params(getattr(nn, name).__init__)
    if theirs is None or any(kind == "VAR_POSITIONAL" for _, _, kind in theirs):
        pytest.skip(f"{name}.__init__ takes *args: no signature to compare")
    ours = ss._LAYERS[name].sig
    positional = [(n, d) for n, d, kind in theirs if kind == "POSITIONAL_OR_KEYWORD"]
    kwonly = {n: d for n, d, kind in theirs if kind == "KEYWORD_ONLY"}
    assert [n for n, _ in ours.params] == [n for n, _ in positional]
    assert set(ours.kwonly) == set(kwonly)
    for (n, mine), (_, real) in zip(ours.params, positional):
        if callable(real):
            continue  # activation=F.relu: written as its name here
        assert mine == real or (mine is ss._REQ and real is ss._REQ), (n, mine, real)


def test_rnn_signatures_follow_torch() -> None:
    # nn.RNN takes nonlinearity as its 4th positional argument; LSTM takes proj_size as its 8th
    rnn = ss.layer_spec("torch.nn.RNN", (4, 8, 2, "relu", False))
    assert rnn.params["nonlinearity"] == "relu" and rnn.params["bias"] is False
    lstm = ss.layer_spec("torch.nn.LSTM", (4, 8, 2, True, True, 0.0, True, 3))
    assert lstm.params["proj_size"] == 3 and lstm.params["batch_first"] is True
    assert ss.layer_spec("torch.nn.GRU", (4, 8), {"nonlinearity": "relu"}) is None  # a TypeError in torch
    with pytest.raises(TypeError):
        nn.GRU(4, 8, nonlinearity="relu")


def test_every_op_name_exists_in_torch() -> None:
    missing = []
    for name in ss.op_names():
        if "." in name:
            try:
                functools.reduce(getattr, name.split(".")[1:], torch)
            except AttributeError:
                missing.append(name)
        elif not hasattr(torch.Tensor, name):
            missing.append(name)
    assert not missing, missing


def test_every_layer_name_exists_in_torch() -> None:
    assert [n for n in ss.layer_names() if not hasattr(nn, n)] == []


# -- every alias of the element-wise and reduction families -------------------------------------------
_ALIAS_ARGS: dict[str, tuple[tuple, dict]] = {
    "clamp": ((0.0,), {}),
    "clip": ((0.0,), {}),
    "clamp_": ((0.0,), {}),
    "clip_": ((0.0,), {}),
    "clamp_min": ((0.0,), {}),
    "clamp_max": ((0.0,), {}),
    "torch.clamp": ((0.0,), {}),
    "torch.clip": ((0.0,), {}),
    "fill_": ((1.0,), {}),
    "roll": ((1,), {}),
    "torch.roll": ((1,), {}),
    "flip": (((0,),), {}),
    "torch.flip": (((0,),), {}),
    "geometric_": ((0.5,), {}),
    "type_as": ((T(1),), {}),
    "to": ((torch.float64,), {}),
    "torch.full_like": ((2.0,), {}),
    "torch.dropout": ((0.5, True), {}),
    "torch.randint_like": ((5,), {}),
    "F.threshold": ((0.1, 0.0), {}),
    "torch.nn.functional.threshold": ((0.1, 0.0), {}),
    "torch.nn.functional.local_response_norm": ((2,), {}),
    "torch.nn.functional.batch_norm": ((None, None), {"training": True}),
    "torch.nn.functional.instance_norm": ((), {}),
}
_ALIAS_SKIP = {
    "cuda": "needs a GPU",
    "pin_memory": "needs an accelerator",
    "retain_grad": "needs requires_grad",
    "bernoulli": "needs probabilities",
    "torch.bernoulli": "needs probabilities",
    "bitwise_not": "integer dtypes only",
    "cpu": "a meta tensor has no data to copy",
}


def _alias_cases() -> list[Case]:
    cases = []
    names = (ss._SAME_METHODS + " " + ss._SAME_FUNCS).replace("F.", "torch.nn.functional.").split()
    for name in names:
        if name in _ALIAS_SKIP:
            continue
        args, kwargs = _ALIAS_ARGS.get(name, ((), {}))
        x = T(b, c, h, dtype="prob") if name.endswith(("bernoulli_",)) else T(b, c, h)
        cases.append(F(name, x, *args, **kwargs) if "." in name else O(name, x, *args, **kwargs))
    for name in ss._BINARY.split():
        if (
            name.startswith("__")
            and any(k in name for k in ("and", "or", "xor"))
            or name.startswith("bitwise")
        ):
            continue  # integer dtypes only
        cases.append(O(name, T(b, 1, h), T(c, 1)))
        if not name.startswith("_"):
            cases.append(F(f"torch.{name}", T(b, 1, h), T(c, 1)))
    for name in ss._REDUCE.split():
        cases.append(O(name, T(b, c, h), 1, keepdim=True))
        cases.append(F(f"torch.{name}", T(b, c, h), -1))
    return cases


ALIASES = _alias_cases()


def test_every_alias_matches_torch() -> None:
    _check_all(ALIASES, check_case)
    assert len({c.name for c in ALIASES}) > 250
