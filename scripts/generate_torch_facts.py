"""Generate `server/gradguard/engine/torch_facts_data.py` by running torch.

Run with the pinned torch (2.13.0):

    .venv/bin/python scripts/generate_torch_facts.py            # rewrite the data module
    .venv/bin/python scripts/generate_torch_facts.py -o FILE    # write elsewhere (the staleness test)
    .venv/bin/python scripts/generate_torch_facts.py --notes    # also list what was skipped and why

Every fact comes from running torch (and numpy for numpy dtypes): OpInfo sample inputs
(`torch.testing._internal.common_methods_invocations.op_db`), `dir(torch.Tensor)`, the public
namespaces `torch`, `torch.nn.functional`, `torch.special`, `torch.linalg`, `torch.fft`, layers
instantiated with small arguments, `torch.optim`, and real calls whose autograd graph is inspected
(`grad_fn._saved_*`). What is typed by hand below is only *how to call* things (candidate arguments)
and how torch's source files group layers; never the facts themselves.

The output is deterministic: fixed seeds, one thread, sorted keys, no addresses or timings.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import importlib
import inspect
import io
import json
import math
import sys
import time
import types
import typing
import unittest
import warnings
import zlib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "server" / "gradguard" / "engine" / "torch_facts_data.py"


def _install_expecttest_shim() -> None:
    """`torch.testing._internal.common_utils` imports `expecttest` (a test-only dependency that
    is not always installed) just to derive its TestCase from it; op_db needs nothing else."""
    try:
        import expecttest  # noqa: F401
    except ImportError:
        shim = types.ModuleType("expecttest")
        shim.TestCase = unittest.TestCase  # type: ignore[attr-defined]
        shim.ACCEPT = False  # type: ignore[attr-defined]
        sys.modules["expecttest"] = shim


_install_expecttest_shim()
warnings.simplefilter("ignore")

import numpy
import torch
import torch.nn.functional as F
from torch.testing._internal.common_methods_invocations import op_db

torch.set_num_threads(1)
# Uninitialized memory (torch.empty, new_empty, resize_) is filled with NaN / the largest integer
# instead of whatever the allocator returns, so facts read from values stay deterministic.
torch.use_deterministic_algorithms(True, warn_only=True)
torch.utils.deterministic.fill_uninitialized_memory = True

NOTES: list[str] = []


def note(text: str) -> None:
    NOTES.append(text)


def seed(name: str) -> None:
    """Reset the random generators (torch's default CPU generator directly: torch.manual_seed
    costs ~1 ms a call)."""
    value = zlib.crc32(name.encode())
    torch.default_generator.manual_seed(value)
    numpy.random.seed(value)


# -- values ------------------------------------------------------------------------------------------------

FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def is_grad_dtype(t: torch.Tensor) -> bool:
    return t.is_floating_point() or t.is_complex()


def tensors_in(value, path=()):
    """(path, tensor) for every tensor in a (nested) tuple/list structure."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            yield from tensors_in(item, path + (i,))


def return_kind(value) -> str:
    """What a call returned, as a word of the `returns` vocabulary."""
    if isinstance(value, torch.Tensor):
        return "tensor"
    if value is None:
        return "none"
    if isinstance(value, torch.Size):
        return "size"
    fields = return_fields(value)
    if fields:
        return "values_indices" if fields == ("values", "indices") else "namedtuple"
    if isinstance(value, tuple):
        return "tuple" if all(isinstance(v, torch.Tensor) for v in value) else "tuple_other"
    if isinstance(value, list):
        return "tensor_list" if value and all(isinstance(v, torch.Tensor) for v in value) else "list"
    for types_, word in _OTHER_RETURN_KINDS:
        if isinstance(value, types_):
            return word
    return "other"


# the words for the other results, in the order they are tried (a bool is an int)
_OTHER_RETURN_KINDS = (
    (bool, "bool"),
    (int, "int"),
    (float, "float"),
    (complex, "complex"),
    (str, "str"),
    (torch.dtype, "dtype"),
    (torch.device, "device"),
    (torch.layout, "layout"),
    (numpy.ndarray, "ndarray"),
    ((torch.TypedStorage, torch.UntypedStorage), "storage"),
)


def return_fields(value) -> tuple[str, ...]:
    """The field names of a named tuple result (`torch.return_types.max` -> values, indices)."""
    if not isinstance(value, tuple):
        return ()
    return tuple(getattr(type(value), "_fields", None) or getattr(type(value), "__match_args__", None) or ())


def storage_ptr(t: torch.Tensor) -> int:
    try:
        if t.numel() == 0:
            return 0
        return t.untyped_storage().data_ptr()
    except Exception:
        return 0


def shares_memory(out: torch.Tensor, inputs: list[torch.Tensor]) -> bool:
    ptr = storage_ptr(out)
    return bool(ptr) and any(storage_ptr(t) == ptr for t in inputs)


# -- probing one call ------------------------------------------------------------------------------------


class Sample:
    """One call `fn(input, *args, **kwargs)`; every tensor in it is a slot (position, path): position
    0 is `input` (the receiver of a method), i + 1 is `args[i]`, a string is a keyword."""

    __slots__ = ("args", "input", "kwargs")

    def __init__(self, input, args=(), kwargs=None) -> None:
        self.input = input
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})

    def parts(self):
        yield 0, self.input
        for i, a in enumerate(self.args):
            yield i + 1, a
        for k in sorted(self.kwargs):
            yield k, self.kwargs[k]

    def slots(self):
        return [(pos, path, t) for pos, part in self.parts() for path, t in tensors_in(part)]

    def has_empty(self) -> bool:
        return any(t.numel() == 0 for _, _, t in self.slots())

    def build(self, grad_positions, *, inplace: bool = False, convert=None):
        """Fresh tensors (same values): those at `grad_positions` (with a float/complex dtype)
        require grad. For an in-place call, `input` is a non-leaf copy (autograd refuses in-place
        writes into leaves that require grad). Returns (input, args, kwargs, leaves, slots)."""
        leaves: list[torch.Tensor] = []
        slots: list[tuple] = []

        def fresh(value, pos, path=()):
            if isinstance(value, torch.Tensor):
                t = value.detach().clone()
                if convert is not None:
                    t = convert(pos, t)
                if pos in grad_positions and is_grad_dtype(t):
                    t.requires_grad_(True)
                    leaves.append(t)
                    if inplace and pos == 0:
                        t = t.clone()
                slots.append((pos, path, t))
                return t
            if isinstance(value, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in value):
                return type(value)(fresh(v, pos, path + (i,)) for i, v in enumerate(value))
            return value

        inp = fresh(self.input, 0)
        args = tuple(fresh(a, i + 1) for i, a in enumerate(self.args))
        kwargs = {k: fresh(v, k) for k, v in self.kwargs.items()}
        return inp, args, kwargs, leaves, slots

    def grad_positions(self) -> list:
        seen = []
        for pos, _, t in self.slots():
            if is_grad_dtype(t) and pos not in seen:
                seen.append(pos)
        return seen


def saved_tensors(outputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Every tensor the autograd graph behind `outputs` saved for backward (all nodes up to the
    leaves: ops implemented by several autograd nodes count as one)."""
    found: list[torch.Tensor] = []
    seen: set[int] = set()
    todo = [o.grad_fn for o in outputs if o.grad_fn is not None]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        names = [a for a in dir(node) if a.startswith("_saved_")]
        for name in names:
            try:
                value = getattr(node, name)
            except Exception:
                continue
            found.extend(t for _, t in tensors_in(value))
        if not names and hasattr(node, "saved_tensors"):  # a Python autograd.Function
            with contextlib.suppress(Exception):
                found.extend(t for t in node.saved_tensors if isinstance(t, torch.Tensor))
        todo.extend(f for f, _ in node.next_functions)
    return found


def saved_targets(slots, outputs) -> tuple[set, set]:
    """Which inputs (positions) and outputs (indices) share a version counter with a tensor that
    backward saved: an in-place write into them makes backward raise "one of the variables needed
    for gradient computation has been modified by an inplace operation"."""
    saved = saved_tensors(outputs)
    if not saved:
        return set(), set()
    before = [s._version for s in saved]
    hit_inputs, hit_outputs = set(), set()
    targets = [("in", pos, t) for pos, _, t in slots] + [("out", i, t) for i, t in enumerate(outputs)]
    for kind, key, t in targets:
        torch.autograd.graph.increment_version(t)
        after = [s._version for s in saved]
        if after != before:
            (hit_inputs if kind == "in" else hit_outputs).add(key)
        before = after
    return hit_inputs, hit_outputs


GRAD_ERRORS = ("not implemented", "does not require grad", "is not differentiable", "derivative for")


class Outcome:
    """What one sample showed."""

    __slots__ = (
        "cut",
        "fields",
        "grad",
        "hits",
        "in_dtype",
        "n_outputs",
        "out_dtype",
        "positions",
        "raises_requires_grad",
        "returns",
        "overwrites",
        "returns_self",
        "same_values",
        "slot_positions",
        "view",
        "writes_self",
    )

    def __init__(self) -> None:
        self.returns = None
        self.fields = ()
        self.in_dtype = None
        self.out_dtype = None
        self.view = None
        self.grad = None
        self.hits = []  # (positions requiring grad, saved input positions, saved output indices)
        self.positions = ()  # the differentiable positions of this sample
        self.slot_positions = frozenset()  # the positions holding a tensor
        self.n_outputs = 0
        self.writes_self = None
        self.returns_self = None
        self.same_values = None
        self.overwrites = None
        self.cut = None
        self.raises_requires_grad = False


def _first_tensor(slots):
    for pos, _, t in slots:
        if pos == 0:
            return t
    return slots[0][2] if slots else None


def carries_data(value, source: torch.Tensor) -> bool:
    """`value` holds the same numbers as `source` (a copy or a conversion to Python/numpy)."""
    data = source.detach()
    try:
        if isinstance(value, torch.Tensor):
            return (
                value.shape == data.shape and value.dtype == data.dtype and torch.equal(value.detach(), data)
            )
        if isinstance(value, float):
            return data.numel() == 1 and value == data.item()
        if isinstance(value, list):
            return value == data.tolist()
        if isinstance(value, numpy.ndarray):
            return numpy.array_equal(value, data.numpy())
    except Exception:
        return False
    return False


REQUIRES_GRAD_ERRORS = ("requires grad", "require grad")


def probe(fn, sample: Sample, *, inplace: bool = False, saves: bool = True, _detached: bool = False):
    """Run `sample` through `fn` with every differentiable input requiring grad (and, for the
    saved-tensor analysis, with each one alone requiring grad). None if the call fails. A call
    that refuses tensors that require grad (numpy()) is retried without grad."""
    result = Outcome()
    positions = [] if _detached else sample.grad_positions()
    result.positions = tuple(positions)
    configs = [tuple(positions)]
    if saves and len(positions) > 1:
        configs += [(p,) for p in positions]
    for n, config in enumerate(configs):
        seed("probe")
        inp, args, kwargs, leaves, slots = sample.build(set(config), inplace=inplace)
        first = _first_tensor(slots)
        version = first._version if first is not None else None
        first_requires_grad = first is not None and first.requires_grad
        try:
            out = fn(inp, *args, **kwargs)
            if out is NotImplemented:
                raise TypeError("NotImplemented")
        except Exception as error:
            text = str(error)
            if n == 0 and leaves and any(e in text for e in REQUIRES_GRAD_ERRORS) and "leaf" not in text:
                retry = probe(fn, sample, inplace=inplace, saves=False, _detached=True)
                if retry is None:
                    return None
                retry.raises_requires_grad = True
                return retry
            if n == 0:
                return None
            continue
        outputs = [t for _, t in tensors_in(out)]
        if n == 0:
            result.slot_positions = frozenset(pos for pos, _, _ in slots)
            result.n_outputs = len(outputs)
            result.returns = return_kind(out)
            result.fields = return_fields(out)
            result.in_dtype = first.dtype if first is not None else None
            result.out_dtype = outputs[0].dtype if outputs else None
            if first is not None:
                result.writes_self = first._version != version
                result.returns_self = out is first
                inputs = [t for _, _, t in slots]
                result.view = any(shares_memory(o, inputs) for o in outputs) if outputs else None
                result.cut = cuts(out, first, outputs, first_requires_grad, _detached)
                result.same_values = same_values(out, first, version)
                if (
                    isinstance(out, (bool, int, float, complex))
                    and first.numel() == 1
                    and result.cut is not None
                ):
                    result.cut = scalar_tracks_data(fn, sample, inplace, out)
                if result.writes_self and saves:
                    result.overwrites = overwrites(fn, sample, inplace, out)
            if leaves:
                result.grad = gradient_kind(outputs, leaves)
        if saves and leaves and any(o.requires_grad for o in outputs):
            hit_in, hit_out = saved_targets(slots, outputs)
            result.hits.append((frozenset(config), hit_in, hit_out))
    return result


def _rerun(fn, sample: Sample, inplace: bool, convert):
    seed("rerun")
    inp, args, kwargs, _, _ = sample.build(set(), inplace=inplace, convert=convert)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return fn(inp, *args, **kwargs)
    except Exception:
        return None


def scalar_tracks_data(fn, sample: Sample, inplace: bool, out) -> bool:
    """A Python number from a one-element tensor (item, float(x), int(x), bool(x)): is it the
    tensor's value converted (and does it change with it), rather than metadata (dim, numel)?"""
    zero = _rerun(fn, sample, inplace, lambda pos, t: torch.zeros_like(t) if pos == 0 else t)
    value = sample.input.detach().item() if isinstance(sample.input, torch.Tensor) else None
    if value is None or zero is None:
        return False
    kind = type(out)
    return out == kind(value) and zero == kind(0) and out != zero


def overwrites(fn, sample: Sample, inplace: bool, out) -> bool | None:
    """An in-place call whose result does not depend on the receiver's old values (zero_, fill_,
    uniform_, copy_): called again on receivers with other values (other numbers, zeros, and each
    same-shaped tensor or number argument of the call, so that `eq_(y)` on `y` differs), it gives
    the same result every time, with the call's other tensor arguments as given and zeroed."""
    receiver = sample.input
    if not isinstance(out, torch.Tensor) or not isinstance(receiver, torch.Tensor):
        return None

    def changed(t):
        return ~t if t.dtype == torch.bool else t * 2 + 1

    others = [changed, torch.zeros_like]
    for _, part in list(sample.parts())[1:]:
        if isinstance(part, torch.Tensor) and part.shape == receiver.shape and part.dtype == receiver.dtype:
            others.append(lambda t, part=part: part.detach().clone())
        elif isinstance(part, (int, float)) and not isinstance(part, bool):
            others.append(lambda t, part=part: torch.full_like(t, part))
    # A second round with every other tensor argument zeroed: with random arguments some ops
    # ignore the receiver by accident (logical_or_ with a nonzero `other`, index_copy_ whose index
    # covers every row), with zeros they do not.
    for args_zeroed in (False, True):

        def rest(pos, t, args_zeroed=args_zeroed):
            return torch.zeros_like(t) if args_zeroed and pos != 0 else t

        first = _rerun(fn, sample, inplace, rest)
        if not isinstance(first, torch.Tensor):
            return None
        for make in others:
            other = _rerun(
                fn,
                sample,
                inplace,
                lambda pos, t, make=make, rest=rest: make(t) if pos == 0 else rest(pos, t),
            )
            if not isinstance(other, torch.Tensor) or not torch.equal(first.detach(), other.detach()):
                return False
    return True


def same_values(out, first: torch.Tensor, version: int) -> bool | None:
    """The result is a tensor holding the receiver's values (clone, detach, to, contiguous, float
    of a float tensor): same shape, equal once converted to the receiver's dtype. None for results
    that are not one tensor, and for calls that wrote into the receiver."""
    if not isinstance(out, torch.Tensor) or first._version != version:
        return None
    if out.shape != first.shape:
        return False
    try:
        return bool(torch.equal(out.detach().to(first.dtype), first.detach()))
    except Exception:
        return False


def cuts(out, first: torch.Tensor, outputs: list, first_requires_grad: bool, detached: bool) -> bool | None:
    """Did the call give the receiver's values without autograd history? (detach, item, tolist,
    numpy; detach_ detaches the receiver itself.) None when the receiver did not require grad."""
    if out is first:
        return (not first.requires_grad) if first_requires_grad else None  # detach_
    if not first_requires_grad and not detached:
        return None
    if any(o.requires_grad for o in outputs):
        return False
    return carries_data(out, first)


def gradient_kind(outputs: list[torch.Tensor], leaves: list[torch.Tensor]) -> str:
    """ "none": no output requires grad; "error": backward raises (derivative not implemented);
    "zero": every gradient is zero; "yes": some gradient is not."""
    live = [o for o in outputs if o.requires_grad]
    if not live:
        return "none"
    seed("grad")
    grads_out = [torch.randn_like(o) for o in live]
    try:
        grads = torch.autograd.grad(live, leaves, grads_out, allow_unused=True, retain_graph=True)
    except Exception as error:
        text = str(error)
        return "error" if any(e in text for e in GRAD_ERRORS) else "failed"
    if all(g is None or not bool(g.detach().ne(0).any()) for g in grads):
        return "zero"
    return "yes"


# -- summarising the samples of one callable ---------------------------------------------------------------

ALWAYS = "*"  # saved whenever the op records a graph
DEPENDS = "?"  # saved for some arguments (overloads) and not for others


def live_positions(outcome: Outcome) -> frozenset:
    """The positions whose requires_grad alone makes the call record a graph (an argument the op
    ignores, such as F.softmax's `_stacklevel` given a tensor, does not count)."""
    everything = frozenset(outcome.positions)
    if len(everything) == 1:
        return everything if any(config == everything for config, _, _ in outcome.hits) else frozenset()
    return frozenset(
        p for config, _, _ in outcome.hits if len(config) == 1 and config != everything for p in config
    )


def _sample_triggers(outcome: Outcome, key, inputs: bool) -> set | None:
    """The live positions whose requires_grad makes input/output `key` saved in this sample."""
    if not outcome.positions or not outcome.hits:
        return None
    everything = frozenset(outcome.positions)
    found = set()
    saved_with_all = False
    for config, hit_in, hit_out in outcome.hits:
        hit = key in (hit_in if inputs else hit_out)
        if config == everything:
            saved_with_all = hit
            if len(everything) == 1 and hit:
                found |= config
        elif hit:
            found |= config
    if saved_with_all and not found:
        return {DEPENDS}  # only when several inputs require grad together
    return found


def summarise_saves(outcomes: list[Outcome], inputs: bool) -> tuple:
    keys = set()
    for o in outcomes:
        for _, hit_in, hit_out in o.hits:
            keys |= hit_in if inputs else hit_out
    summary = []
    for key in sorted(keys, key=sort_key):
        per_sample = []
        for o in outcomes:
            present = key in o.slot_positions if inputs else isinstance(key, int) and key < o.n_outputs
            if not present:
                continue
            found = _sample_triggers(o, key, inputs)
            live = live_positions(o)
            if found is not None and live:
                per_sample.append((live, found))
        if not per_sample:
            continue
        if any(DEPENDS in found for _, found in per_sample):
            summary.append((key, DEPENDS))
            continue
        if all(found == set(d) for d, found in per_sample):
            summary.append((key, ALWAYS))
            continue
        union = set().union(*(found for _, found in per_sample))
        if all(found == union & d for d, found in per_sample):
            summary.append((key, tuple(sorted(union, key=sort_key))))
        else:
            summary.append((key, DEPENDS))
    return tuple(summary)


def sort_key(value):
    return (isinstance(value, str), value if isinstance(value, str) else f"{value:04d}")


def three_way(values) -> str | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    if all(values):
        return "always"
    if any(values):
        return "maybe"
    return "never"


def agree(values):
    """The one value every sample gave, "depends" when they differ, None when none did."""
    values = {v for v in values if v is not None and v != "failed"}
    if "yes" in values:
        values.discard("zero")  # a gradient that is zero for some inputs (relu of negatives)
    if not values:
        return None
    return values.pop() if len(values) == 1 else "depends"


# -- OpInfo samples ----------------------------------------------------------------------------------------

SAMPLES_PER_OPINFO = 4
OVERWRITE_SAMPLES = 16
PROBE_DTYPES = (torch.float32, torch.float64, torch.int64, torch.bool)


def opinfo_samples(info, dtype, limit: int = SAMPLES_PER_OPINFO) -> list[Sample]:
    seed(f"{info.name}.{info.variant_test_name}.{dtype}")
    found = []
    try:
        # sample_inputs_func directly: OpInfo.sample_inputs wraps it in a tracker that walks the
        # Python stack (inspect.stack) for every call, which cost ~80% of the generator's time.
        for s in info.sample_inputs_func(info, "cpu", dtype, False):
            sample = Sample(s.input, s.args, s.kwargs)
            if sample.has_empty() or not sample.slots():
                continue
            found.append(sample)
            if len(found) >= limit:
                break
    except Exception as error:
        note(
            f"op_db {info.name!r}/{info.variant_test_name!r}: sample inputs for {dtype} failed: {error!r:.80}"
        )
    return found


def main_dtype(info):
    try:
        supported = info.supported_dtypes("cpu")
    except Exception:
        return None
    for dtype in (torch.float32, torch.float64, torch.complex64, torch.int64, torch.bool):
        if dtype in supported:
            return dtype
    return next(iter(sorted(supported, key=str)), None)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


ARGUMENT = "argument"  # a pair from a call that passed a dtype


def dtype_pair(sample: Sample, outcome: Outcome) -> tuple:
    """(input dtype, output dtype) of one call; a call that passes a dtype says nothing about the
    op's own rule, and becomes (ARGUMENT, True) when the output has the dtype passed."""
    given = [v for _, part in sample.parts() for v in (part if isinstance(part, (tuple, list)) else (part,))]
    given = [v for v in given if isinstance(v, torch.dtype)]
    if given:
        return (ARGUMENT, outcome.out_dtype in given)
    return (outcome.in_dtype, outcome.out_dtype)


def classify_dtype(pairs: list[tuple], mixed: str | None) -> str | None:
    """The output dtype rule from (input dtype, output dtype) pairs and the mixed-dtype probe."""
    argument = [ok for i, ok in pairs if i == ARGUMENT]
    pairs = [(i, o) for i, o in pairs if i is not None and o is not None and i != ARGUMENT]
    if not pairs and argument and all(argument):
        return ARGUMENT
    if not pairs:
        return None
    outs = {o for _, o in pairs}
    default = torch.get_default_dtype()
    if outs == {torch.bool} and any(i != torch.bool for i, _ in pairs):
        return "bool"
    if outs == {torch.int64} and any(i.is_floating_point for i, _ in pairs):
        return "int64"
    if all(o == i for i, o in pairs):
        base = "same"
    elif all(o == i if i.is_floating_point or i.is_complex else o == default for i, o in pairs):
        base = "int_to_float"
    elif len(outs) == 1 and len({i for i, _ in pairs}) > 1:
        return dtype_name(outs.pop())
    else:
        return None
    if mixed == "promote":
        return "promote" if base == "same" else "promote_int_to_float"
    if mixed == "strict":
        return "strict"
    return base


def mixed_dtype(fn, samples: list[Sample], inplace: bool) -> str | None:
    """Call with input 0 float32 and the other float32 tensors made float64: "promote" if the
    result is float64, "first" if float32, "strict" if torch refuses mixed dtypes."""
    for sample in samples:
        others = [pos for pos, _, t in sample.slots() if pos != 0 and t.dtype == torch.float32]
        if not others or _first_tensor(sample.slots()) is None:
            continue
        if _first_tensor(sample.slots()).dtype != torch.float32:
            continue

        def convert(pos, t):
            return t.double() if pos != 0 and t.dtype == torch.float32 else t

        inp, args, kwargs, _, _ = sample.build(set(), inplace=inplace, convert=convert)
        try:
            out = fn(inp, *args, **kwargs)
        except Exception as error:
            text = str(error).lower()
            if "dtype" in text or "type" in text or "double" in text:
                return "strict"
            continue
        outputs = [t for _, t in tensors_in(out)]
        if not outputs:
            return None
        if outputs[0].dtype == torch.float64:
            return "promote"
        if outputs[0].dtype == torch.float32:
            return "first"
        return None
    return None


# -- what exists -------------------------------------------------------------------------------------------

NAMESPACES = {
    "torch": torch,
    "torch.nn.functional": F,
    "torch.special": torch.special,
    "torch.linalg": torch.linalg,
    "torch.fft": torch.fft,
}
# Python syntax -> the `operator` function it calls (Python's language, not torch's).
BINARY_OPERATORS = {
    "Add": "add",
    "Sub": "sub",
    "Mult": "mul",
    "MatMult": "matmul",
    "Div": "truediv",
    "FloorDiv": "floordiv",
    "Mod": "mod",
    "Pow": "pow",
    "LShift": "lshift",
    "RShift": "rshift",
    "BitOr": "or",
    "BitXor": "xor",
    "BitAnd": "and",
}
# Python builtins that call a Tensor method: float(x) -> x.__float__(), len(x) -> x.__len__().
CONVERSIONS = ("__float__", "__int__", "__bool__", "__complex__", "__index__", "__len__")
UNARY_OPERATORS = {"USub": "neg", "UAdd": "pos", "Invert": "invert"}
COMPARE_OPERATORS = {"Eq": "eq", "NotEq": "ne", "Lt": "lt", "LtE": "le", "Gt": "gt", "GtE": "ge"}


def public_tensor_names() -> tuple[list[str], list[str]]:
    """(methods, attributes) of torch.Tensor: public names, split by whether the class attribute
    is callable (methods) or a descriptor (attributes such as `.shape`, `.data`)."""
    methods, attributes = [], []
    for name in dir(torch.Tensor):
        if name.startswith("_"):
            continue
        static = inspect.getattr_static(torch.Tensor, name)
        if isinstance(static, (property, types.GetSetDescriptorType, types.MemberDescriptorType)):
            attributes.append(name)
        elif callable(getattr(torch.Tensor, name)):
            methods.append(name)
        else:
            attributes.append(name)
    return sorted(methods), sorted(attributes)


def operator_dunders() -> list[str]:
    names = []
    for word in [*BINARY_OPERATORS.values(), *UNARY_OPERATORS.values(), *COMPARE_OPERATORS.values()]:
        for form in (f"__{word}__", f"__i{word}__", f"__r{word}__"):
            if hasattr(torch.Tensor, form) and form not in names:
                names.append(form)
    conversions = [n for n in CONVERSIONS if hasattr(torch.Tensor, n)]
    return sorted([*names, "__getitem__", "__setitem__", *conversions])


def public_functions() -> dict[str, object]:
    """qualname -> callable for the public functions of the tensor namespaces (classes, modules
    and dtypes excluded)."""
    found = {}
    for prefix, module in NAMESPACES.items():
        for name in dir(module):
            if name.startswith("_"):
                continue
            value = getattr(module, name, None)
            if value is None or inspect.isclass(value) or inspect.ismodule(value) or not callable(value):
                continue
            if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)):
                continue
            if not (getattr(value, "__module__", None) or "torch").startswith("torch"):
                continue  # typing.Optional, imported into torch.nn.functional
            found[f"{prefix}.{name}"] = value
    return found


def overridable() -> set[int]:
    """ids of the callables torch lists as tensor functions (`torch.overrides`)."""
    ids = {id(f) for f in torch.overrides.get_testing_overrides()}
    return ids


def opinfo_index() -> dict[int, list[tuple]]:
    """id(callable) -> [(OpInfo, variant, canonical name)] for every variant and alias in op_db."""
    index: dict[int, list[tuple]] = defaultdict(list)
    for info in op_db:
        canonical = info.name.removeprefix("nn.functional.")
        for variant, fn in (
            ("op", info.op),
            ("method", info.method_variant),
            ("inplace", info.inplace_variant),
        ):
            if fn is not None:
                index[id(fn)].append((info, variant, canonical))
        for alias in info.aliases:
            for variant, fn in (
                ("op", alias.op),
                ("method", alias.method_variant),
                ("inplace", alias.inplace_variant),
            ):
                if fn is not None:
                    index[id(fn)].append((info, variant, canonical))
    return index


def opinfos_by_base() -> dict[str, list]:
    """Base name ("relu" for "nn.functional.relu") -> OpInfos, to borrow samples for callables
    op_db does not list (torch.relu, Tensor.relu, Tensor.relu_)."""
    found: dict[str, list] = defaultdict(list)
    for info in op_db:
        found[info.name].append(info)
        for prefix in ("nn.functional.", "special.", "linalg.", "fft."):
            if info.name.startswith(prefix):
                found[info.name.removeprefix(prefix)].append(info)
        for alias in info.aliases:
            found[alias.name.removeprefix("torch.")].append(info)
    return found


# -- the facts of one callable -----------------------------------------------------------------------------

# Arguments tried, in order, for a callable op_db has no samples for ("T" is a tensor like the receiver).
CANDIDATE_ARGS = (
    (),
    ("T",),
    (0.5,),
    (0,),
    (1,),
    (6,),
    (torch.float64,),
    (2, 3),
    (0, 1),
    ("T", "T"),
    (1, "T"),
)
# Methods never called by the generic probe (need a device we do not have, or touch the process).
NOT_CALLED = {"cuda", "xpu", "mtia", "ipu", "pin_memory", "share_memory_", "module_load", "backward"}


def noncontiguous(sample: Sample) -> Sample | None:
    """The same call with the receiver laid out transposed in memory (same shape and values)."""
    t = sample.input
    if not isinstance(t, torch.Tensor) or t.dim() < 2 or t.shape[-1] < 2 or t.shape[-2] < 2:
        return None
    if not t.is_contiguous():
        return None
    return Sample(t.mT.contiguous().mT, sample.args, sample.kwargs)


def generic_samples(fn, inplace: bool) -> list[Sample]:
    """Every candidate argument list the call accepts, on a (2, 3) float tensor (or, if none works,
    on a one-element one): the simplest call for what op_db lacks, and, next to op_db's samples,
    the call shapes it may not have (`pow(x, 0.5)` with a Python exponent saves no result)."""
    for shape in ((2, 3), (1,)):
        seed("generic")
        base = torch.randn(shape) if shape != (1,) else torch.tensor([2.5])
        found = []
        for candidate in CANDIDATE_ARGS:
            args = tuple(torch.randn(shape) if a == "T" else a for a in candidate)
            sample = Sample(base, args)
            inp, a, kw, _, _ = sample.build(set(), inplace=inplace)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    if fn(inp, *a, **kw) is NotImplemented:
                        continue
            except Exception:
                continue
            found.append(sample)
        if found:
            return found
    return []


class Facts:
    """The summary of one callable (a record of the generated data)."""

    def __init__(self, canonical: str) -> None:
        self.canonical = canonical
        self.outcomes: list[Outcome] = []
        self.pairs: list[tuple] = []
        self.mixed = None
        self.source = ""
        self.requires_grad_keyword = False

    def record(self, inplace: str | None, out_of_place: str | None) -> tuple:
        outs = self.outcomes
        returns = tuple(sorted({o.returns for o in outs if o.returns}))
        fields = tuple(sorted({f for o in outs for f in o.fields}))
        return (
            self.canonical,
            inplace,
            out_of_place,
            _bool3(o.writes_self for o in outs),
            agree(o.grad for o in outs),
            summarise_saves(outs, True),
            summarise_saves(outs, False),
            classify_dtype(self.pairs, self.mixed),
            returns,
            fields,
            three_way(o.view for o in outs),
            three_way(o.same_values for o in outs),
            _bool3(o.overwrites for o in outs),
            _bool3(o.cut for o in outs),
            any(o.raises_requires_grad for o in outs),
            sum(1 for o in outs if o.returns or o.raises_requires_grad),
            self.source,
        )


def _bool3(values) -> bool | None:
    word = three_way(values)
    return {"always": True, "never": False}.get(word) if word else None


def study(fn, canonical: str, infos, *, inplace: bool, generic: bool, label: str) -> Facts | None:
    """Call `fn` with the samples of `infos` (or generic ones) and summarise what it did."""
    facts = Facts(canonical)
    for info in infos:
        _study_opinfo(fn, facts, info, inplace)
    extras = generic_samples(fn, inplace) if generic else []
    if facts.outcomes:
        for sample in extras:
            outcome = _run(fn, sample, inplace, saves=True)
            if outcome is not None:
                facts.outcomes.append(outcome)
                facts.pairs.append(dtype_pair(sample, outcome))
        facts.source = "op_db"
        return facts
    _study_generic(fn, facts, extras, inplace)
    if facts.outcomes:
        facts.source = "generic"
        return facts
    note(f"{label}: no call succeeded (no op_db sample, no generic argument list)")
    return None


def _study_opinfo(fn, facts: Facts, info, inplace: bool) -> None:
    """Add to `facts` what `fn` did with the op_db samples of `info` (its main dtype, then the others)."""
    dtype = main_dtype(info)
    if dtype is None:
        return
    samples = opinfo_samples(info, dtype)
    ran = []
    for sample in samples:
        outcome = _run(fn, sample, inplace, saves=True)
        if outcome is None:
            continue
        ran.append(sample)
        facts.outcomes.append(outcome)
        facts.pairs.append(dtype_pair(sample, outcome))
        other = noncontiguous(sample)
        if other is not None:
            extra = _run(fn, other, inplace, saves=False)
            if extra is not None:
                facts.outcomes.append(extra)
    if not ran:
        return
    facts.mixed = facts.mixed or mixed_dtype(fn, ran, inplace)
    facts.requires_grad_keyword = facts.requires_grad_keyword or accepts_requires_grad(fn, ran[0], inplace)
    if inplace and any(o.overwrites for o in facts.outcomes):
        # the first samples are often one-element tensors an index covers whole: look further
        for sample in opinfo_samples(info, dtype, limit=OVERWRITE_SAMPLES)[len(samples) :]:
            out = _rerun(fn, sample, inplace, None)
            if isinstance(out, torch.Tensor):
                outcome = Outcome()
                outcome.overwrites = overwrites(fn, sample, inplace, out)
                facts.outcomes.append(outcome)
    supported = info.supported_dtypes("cpu")
    for other_dtype in PROBE_DTYPES:
        if other_dtype == dtype or other_dtype not in supported:
            continue
        for sample in opinfo_samples(info, other_dtype, limit=1):
            outcome = _run(fn, sample, inplace, saves=False)
            if outcome is not None:
                facts.outcomes.append(outcome)
                facts.pairs.append(dtype_pair(sample, outcome))


def _study_generic(fn, facts: Facts, extras: list, inplace: bool) -> None:
    """Add to `facts` what `fn` did with the generic samples (no op_db sample ran)."""
    for index, sample in enumerate(extras):
        outcome = _run(fn, sample, inplace, saves=True)
        if outcome is None:
            continue
        facts.outcomes.append(outcome)
        facts.pairs.append(dtype_pair(sample, outcome))
        if index:
            continue
        other = noncontiguous(sample)
        extra = _run(fn, other, inplace, saves=False) if other is not None else None
        if extra is not None:
            facts.outcomes.append(extra)
        facts.mixed = mixed_dtype(fn, [sample], inplace)
        facts.requires_grad_keyword = accepts_requires_grad(fn, sample, inplace)
        for dtype in (torch.float64, torch.int64, torch.bool):
            converted = _run(fn, Sample(sample.input.to(dtype), sample.args), inplace, saves=False)
            if converted is not None:
                facts.outcomes.append(converted)
                facts.pairs.append(dtype_pair(sample, converted))


def accepts_requires_grad(fn, sample: Sample, inplace: bool) -> bool:
    """The call also takes `requires_grad=True` and returns a tensor that requires grad."""
    inp, args, kwargs, _, _ = sample.build(set(), inplace=inplace)
    if "requires_grad" in kwargs:
        return False
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            out = fn(inp, *args, requires_grad=True, **kwargs)
    except Exception:
        return False
    return isinstance(out, torch.Tensor) and out.requires_grad


def _run(fn, sample, inplace, saves):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return probe(fn, sample, inplace=inplace, saves=saves)
    except Exception as error:  # a probe must never stop the generator
        note(f"probe of {getattr(fn, '__name__', fn)!r} raised {error!r:.80}")
        return None


# -- every op ----------------------------------------------------------------------------------------------

OPS_FORMAT = (
    "space-separated field=value items; an absent field has its default:",
    "canonical (default: the key's last dotted part), inplace and out_of_place (Tensor method names, default none),",
    "writes_self and cuts_graph (1, or ? when it depends; default 0 when samples > 0, else unknown),",
    "overwrites and raises_if_requires_grad (1 or absent), grad, dtype, view and same_values (a word; absent:",
    "unknown),",
    "returns and fields (words joined by +), saves_inputs and saves_outputs (position:triggers joined by ;,",
    "triggers being * (always), ? (depends on the arguments) or the positions joined by + whose requires_grad",
    "makes it saved), samples (calls probed, default 0), source (generic when not from op_db samples).",
)

RECORD_FIELDS = (
    "canonical",
    "inplace",
    "out_of_place",
    "writes_self",
    "grad",
    "saves_inputs",
    "saves_outputs",
    "dtype",
    "returns",
    "fields",
    "view",
    "same_values",
    "overwrites",
    "cuts_graph",
    "raises_if_requires_grad",
    "samples",
    "source",
)


def is_inplace_name(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    if last == "__setitem__":
        return True
    if last.startswith("__"):
        return last.startswith("__i") and last[3:-2] in {*BINARY_OPERATORS.values(), "and", "or"}
    return last.endswith("_") and not last.startswith("_")


def collect_ops() -> dict:
    methods, attributes = public_tensor_names()
    dunders = operator_dunders()
    functions = public_functions()
    index = opinfo_index()
    by_base = opinfos_by_base()
    tensor_functions = overridable()
    operator_links = _operator_links()
    method_set = set(methods)

    def sources(fn, name: str):
        return _sources(fn, name, index, operator_links, by_base)

    requires_grad_keyword = set()
    method_records = _method_records([*methods, *dunders], method_set, sources, requires_grad_keyword)
    function_records = _function_records(
        functions, tensor_functions, sources, method_records, requires_grad_keyword
    )
    link_dunders(method_records)
    inplace_keyword = set()
    for qualname, fn in functions.items():
        signature = _signature_of(fn)
        if signature is not None and "inplace" in signature.parameters:
            inplace_keyword.add(qualname)
    return {
        "requires_grad_keyword": requires_grad_keyword,
        "inplace_keyword": inplace_keyword,
        "methods": methods,
        "attributes": attributes,
        "dunders": dunders,
        "method_records": method_records,
        "function_records": function_records,
    }


def _operator_links() -> dict:
    """op_db entries by the dunder of their operator variants (`operator.add` -> `__add__`)."""
    operator_links = {}
    for info in op_db:
        for fn in (info.operator_variant, info.inplace_operator_variant):
            if fn is not None:
                operator_links[f"__{fn.__name__.strip('_')}__"] = info
    return operator_links


def _pair(name: str, method_set: set) -> tuple[str | None, str | None]:
    """A Tensor method's in-place and out-of-place counterparts (one of them None)."""
    if name.startswith("__"):
        word = name[2:-2]
        if is_inplace_name(name):
            return None, f"__{word[1:]}__" if hasattr(torch.Tensor, f"__{word[1:]}__") else None
        return (f"__i{word}__" if hasattr(torch.Tensor, f"__i{word}__") else None), None
    if is_inplace_name(name):
        return None, name[:-1] if name[:-1] in method_set else None
    return (name + "_" if name + "_" in method_set else None), None


def _sources(fn, name: str, index: dict, operator_links: dict, by_base: dict):
    """The op_db entries that sample `fn` (by identity, operator or base name) and its canonical name."""
    entries = index.get(id(fn), [])
    infos = []
    for info, _, _ in entries:
        if not any(info is seen for seen in infos):
            infos.append(info)
    canonical = entries[0][2] if entries else None
    if not infos and name in operator_links:
        info = operator_links[name]
        infos, canonical = [info], info.name.removeprefix("nn.functional.")
    if not infos:
        last = name.rsplit(".", 1)[-1]
        base = last[:-1] if is_inplace_name(last) and not last.startswith("__") else last
        infos = by_base.get(base, [])
        if infos:
            canonical = infos[0].name.removeprefix("nn.functional.")
    if canonical is not None and is_inplace_name(name):
        canonical = canonical + "_" if not canonical.endswith("_") else canonical
    return infos, canonical


def _method_records(names: list, method_set: set, sources, requires_grad_keyword: set) -> dict:
    """The record of every Tensor method and dunder (adds those taking requires_grad= to the set)."""
    method_records = {}
    for name in names:
        fn = getattr(torch.Tensor, name)
        inplace, out_of_place = _pair(name, method_set)
        infos, canonical = sources(fn, name)
        facts = None
        if name not in NOT_CALLED:
            facts = study(
                fn,
                canonical or name,
                infos,
                inplace=is_inplace_name(name),
                generic=True,
                label=f"Tensor.{name}",
            )
        if facts is None:
            facts = Facts(canonical or name)
        method_records[name] = facts.record(inplace, out_of_place)
        if facts.requires_grad_keyword:
            requires_grad_keyword.add(name)
    return method_records


def _function_records(
    functions: dict, tensor_functions: set, sources, method_records: dict, requires_grad_keyword: set
) -> dict:
    """The record of every public function, with whether it was probed (adds those taking requires_grad=)."""
    function_records = {}
    for qualname, fn in sorted(functions.items()):
        infos, canonical = sources(fn, qualname)
        last = qualname.rsplit(".", 1)[1]
        generic = id(fn) in tensor_functions
        facts = None
        if infos or generic:
            facts = study(
                fn, canonical or last, infos, inplace=is_inplace_name(last), generic=generic, label=qualname
            )
        canonical = facts.canonical if facts else (canonical or last)
        method = canonical if canonical in method_records else None
        inplace, out_of_place = method_records[method][1:3] if method else (None, None)
        record = (facts or Facts(canonical)).record(inplace, out_of_place)
        function_records[qualname] = (record, facts is not None)
        if facts is not None and facts.requires_grad_keyword:
            requires_grad_keyword.add(qualname)
    return function_records


def link_dunders(method_records: dict) -> None:
    """Give operator methods op_db does not link (`__truediv__`) the name of the method they call:
    the grad_fn name (DivBackward0 -> div), kept only when that method returns the same values."""
    for name, record in list(method_records.items()):
        if not name.startswith("__") or record[0] != name or name in ("__getitem__", "__setitem__"):
            continue
        seed("link")
        x, y = torch.randn(2, 3, requires_grad=True), torch.rand(2, 3) + 0.5
        inplace = is_inplace_name(name)
        try:
            target = x.clone() if inplace else x
            out = getattr(torch.Tensor, name)(target, y)
            fn_name = type(out.grad_fn).__name__ if out is not NotImplemented and out.grad_fn else ""
        except Exception:
            continue
        base = fn_name.split("Backward")[0].lower() if "Backward" in fn_name else ""
        method = {"div": "div", "floordivide": "floor_divide"}.get(base, base)
        if not method or not hasattr(torch.Tensor, method):
            continue
        try:
            with torch.no_grad():
                expected = getattr(torch.Tensor, method)(x.detach(), y)
                got = getattr(torch.Tensor, name)(x.detach().clone(), y)
        except Exception:
            continue
        if isinstance(expected, torch.Tensor) and torch.equal(expected, got):
            canonical = method + "_" if inplace else method
            method_records[name] = (canonical, *record[1:])


# -- tensor attributes -------------------------------------------------------------------------------------


def collect_attributes(names: list[str]) -> dict:
    """attribute -> (kinds it returns, result is a view, result cuts the graph, settable), read on
    a non-leaf float tensor that requires grad, on a leaf after backward and on a complex tensor."""
    found = {}
    for name in names:
        seed("attribute")
        leaf = torch.randn(2, 3, requires_grad=True)
        y = leaf * 2
        (y * 1).sum().backward(retain_graph=True)
        complex_one = torch.randn(2, 3, dtype=torch.complex64, requires_grad=True) * 2
        kinds, views, cuts = set(), [], []
        for base in (y, leaf, complex_one):
            try:
                value = getattr(base, name)
            except Exception:
                continue
            kinds.add("node" if name == "grad_fn" and value is not None else return_kind(value))
            if isinstance(value, torch.Tensor):
                views.append(shares_memory(value, [base]))
                if base.requires_grad and base.grad_fn is not None:
                    cuts.append((not value.requires_grad) and carries_data(value, base))
        if not kinds:
            note(f"Tensor.{name}: attribute could not be read")
        fresh = torch.randn(2, 3)
        try:
            setattr(fresh, name, getattr(fresh, name))
            settable = True
        except Exception:
            settable = False
        found[name] = (tuple(sorted(kinds)), three_way(views), _bool3(cuts), settable)
    return found


# -- factories ---------------------------------------------------------------------------------------------

# How to call a factory, by the kind of arguments it takes (v: a float, int or bool value;
# t: a float tensor). The first kind a factory accepts with a float value decides its family.
FACTORY_FAMILIES = (
    ("data", lambda v, t: ([v, v],)),
    ("ndarray", lambda v, t: (numpy.array([v, v]),)),
    ("like_value", lambda v, t: (t, v)),
    ("like", lambda v, t: (t,)),
    ("size_value", lambda v, t: ((2,), v)),
    ("value", lambda v, t: (v,)),
    ("bounds", lambda v, t: (0, 3, (2,))),
    ("interval", lambda v, t: (v, v * 2, 3)),
    ("size", lambda v, t: ((2,),)),
    ("strided", lambda v, t: ((2,), (1,))),
    ("rows_cols", lambda v, t: (2, 2)),
    ("mean_std_size", lambda v, t: (0.0, 1.0, (2,))),
)
FACTORY_VALUES = {"float": 1.5, "int": 2, "bool": True}


def factory_candidates() -> dict[str, object]:
    ignored = {id(f) for f in torch.overrides.get_ignored_functions()}
    found = {}
    for name in dir(torch):
        if name.startswith("_"):
            continue
        value = getattr(torch, name)
        like = name.endswith("_like") and callable(value)
        ignored_function = id(value) in ignored and callable(value) and not inspect.isclass(value)
        legacy_type = name.endswith("Tensor") and inspect.isclass(value)
        if like or ignored_function or legacy_type:
            found[f"torch.{name}"] = value
    return found


def _call_quiet(fn, args, kwargs=None):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **(kwargs or {}))


def collect_factories() -> dict:
    """qualname -> (family, dtype for float / int / bool values, accepts requires_grad=,
    shares a tensor argument, shares a numpy argument, keeps the graph of a tensor argument,
    keeps the graph of a list of tensors, is a `_like` form)."""
    found = {}
    for qualname, fn in sorted(factory_candidates().items()):
        seed(qualname)
        t = torch.randn(2, 3)
        family = None
        for word, make in FACTORY_FAMILIES:
            if word.startswith("like") and not qualname.endswith("_like"):
                continue
            try:
                out = _call_quiet(fn, make(1.5, t))
            except Exception:
                continue
            if isinstance(out, torch.Tensor) and not (word == "like" and out is t):
                family = word
                break
        if family is None:
            continue
        make = dict(FACTORY_FAMILIES)[family]
        takes_value = family in ("data", "ndarray", "like_value", "size_value", "value", "interval")
        dtypes = []
        for label, value in FACTORY_VALUES.items():
            if not takes_value and label != "float":
                dtypes.append(dtypes[0] if dtypes else None)
                continue
            dtypes.append(_factory_dtype(fn, make, value, t))
        if family.startswith("like") and _follows_tensor_dtype(fn, make):
            dtypes = ["like"] * 3
        requires_grad = _accepts_requires_grad(fn, make(1.5, t))
        shares_tensor = shares_ndarray = keeps_graph = keeps_list_graph = None
        if family in ("data", "ndarray"):
            source = torch.randn(3)
            with contextlib.suppress(Exception):
                shares_tensor = shares_memory(_call_quiet(fn, (source,)), [source])
            array = numpy.random.randn(3).astype(numpy.float32)
            with contextlib.suppress(Exception):
                out = _call_quiet(fn, (array,))
                shares_ndarray = bool(storage_ptr(out)) and storage_ptr(out) == array.ctypes.data
            tracked = torch.randn(3, requires_grad=True) * 2
            with contextlib.suppress(Exception):
                keeps_graph = bool(_call_quiet(fn, (tracked,)).requires_grad)
            a, b = (torch.randn((), requires_grad=True) * 2 for _ in range(2))
            with contextlib.suppress(Exception):
                keeps_list_graph = bool(_call_quiet(fn, ([a, b],)).requires_grad)
        found[qualname] = (
            family,
            *dtypes,
            requires_grad,
            shares_tensor,
            shares_ndarray,
            keeps_graph,
            keeps_list_graph,
            family.startswith("like"),
        )
    return found


def _factory_dtype(fn, make, value, t) -> str | None:
    """The result's dtype name, or "default" when it follows torch.get_default_dtype()."""
    results = []
    for default in (torch.float32, torch.float64):
        torch.set_default_dtype(default)
        try:
            out = _call_quiet(fn, make(value, t.to(default) if default != torch.float32 else t))
            results.append(out.dtype if isinstance(out, torch.Tensor) else None)
        except Exception:
            results.append(None)
        finally:
            torch.set_default_dtype(torch.float32)
    if results[0] is None:
        return None
    if results == [torch.float32, torch.float64]:
        return "default"
    return dtype_name(results[0])


def _follows_tensor_dtype(fn, make) -> bool:
    """A `_like` factory gives the dtype of its tensor argument (for a float and an int tensor)."""
    for dtype in (torch.float64, torch.int64):
        try:
            out = _call_quiet(fn, make(2, torch.ones(2, 3, dtype=dtype)))
        except Exception:
            return False
        if not isinstance(out, torch.Tensor) or out.dtype != dtype:
            return False
    return True


def _accepts_requires_grad(fn, args) -> bool:
    try:
        out = _call_quiet(fn, args, {"requires_grad": True})
        return isinstance(out, torch.Tensor) and out.requires_grad
    except TypeError:
        return False
    except RuntimeError as error:
        return "floating point" in str(error) or "complex" in str(error)
    except Exception:
        return False


# -- dtypes ------------------------------------------------------------------------------------------------

MAIN_DTYPES = (
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex64,
    torch.complex128,
)
SCALARS = {"bool": True, "int": 2, "float": 1.5, "complex": 1j}


def collect_dtypes() -> dict:
    names = {}
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype):
            names[f"torch.{name}"] = dtype_name(value)
    canonical = {}
    for value in {getattr(torch, n.removeprefix("torch.")) for n in names}:
        try:
            signed = value.is_signed
        except RuntimeError:  # quantized dtypes
            signed = None
        canonical[dtype_name(value)] = (value.is_floating_point, value.is_complex, signed, value.itemsize)
    numpy_names = {}
    for name in dir(numpy):
        value = getattr(numpy, name, None)
        if not (inspect.isclass(value) and issubclass(value, numpy.generic)):
            continue
        try:
            converted = torch.from_numpy(numpy.zeros(1, dtype=value)).dtype
        except Exception:
            continue
        numpy_names[f"numpy.{name}"] = dtype_name(converted)
    python = {}
    for name in ("bool", "int", "float", "complex"):
        python[name] = dtype_name(torch.empty(0, dtype=getattr(builtins, name)).dtype)
    promote = {}
    for a in MAIN_DTYPES:
        for b in MAIN_DTYPES:
            try:
                out = torch.ones(2, dtype=a) + torch.ones(2, dtype=b)
            except Exception:
                continue
            promote[(dtype_name(a), dtype_name(b))] = dtype_name(out.dtype)
    scalar = {}
    for a in MAIN_DTYPES:
        for kind, value in SCALARS.items():
            try:
                out = torch.ones(2, dtype=a) + value
            except Exception:
                continue
            scalar[(dtype_name(a), kind)] = dtype_name(out.dtype)
    return {
        "names": names,
        "canonical": canonical,
        "numpy": numpy_names,
        "python": python,
        "promote": promote,
        "scalar": scalar,
        "default": dtype_name(torch.get_default_dtype()),
    }


# -- layers ------------------------------------------------------------------------------------------------

# torch.nn.modules.<file> -> kind (how torch's own sources group the layers)
LAYER_FILES = {
    "activation": "activation",
    "adaptive": "other",
    "batchnorm": "normalization",
    "channelshuffle": "other",
    "container": "container",
    "conv": "conv",
    "distance": "other",
    "dropout": "dropout",
    "flatten": "other",
    "fold": "other",
    "instancenorm": "normalization",
    "linear": "linear",
    "linear_cross_entropy": "loss",
    "loss": "loss",
    "normalization": "normalization",
    "padding": "padding",
    "pixelshuffle": "other",
    "pooling": "pooling",
    "rnn": "recurrent",
    "sparse": "embedding",
    "transformer": "transformer",
    "upsampling": "other",
}
CTOR_VALUES = (4, (2, 2), [2, 3])


def layer_classes() -> dict[str, type]:
    found = {}
    for name in dir(torch.nn):
        value = getattr(torch.nn, name)
        if inspect.isclass(value) and issubclass(value, torch.nn.Module) and not name.startswith("_"):
            found[name] = value
    return found


def constructor(cls) -> inspect.Signature | None:
    """The constructor's signature; for `__init__(self, *args, **kwargs)` with typed overloads
    (nn.LSTM, nn.GRU, nn.RNN), the first overload."""
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return None
    kinds = {p.kind for p in signature.parameters.values() if p.name != "self"}
    if kinds == {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}:
        try:
            overloads = typing.get_overloads(cls.__init__)
        except AttributeError:
            overloads = []
        for overload in overloads:
            other = inspect.signature(overload)
            if any(p.kind == p.POSITIONAL_OR_KEYWORD and p.name != "self" for p in other.parameters.values()):
                return other
    return signature


def _signature_names(signature: inspect.Signature | None) -> tuple[str, ...]:
    if signature is None:
        return ()
    names = []
    for p in signature.parameters.values():
        if p.name == "self":
            continue
        prefix = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}.get(p.kind, "")
        names.append(prefix + p.name)
    return tuple(names)


def _signature_of(fn) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def instantiate(cls, depth: int = 0, **overrides):
    """An instance built with small arguments for the required constructor parameters (and, if
    that is not enough, for one optional parameter that defaults to None)."""
    signature = constructor(cls)
    params = [
        p
        for p in (signature.parameters.values() if signature else ())
        if p.name != "self"
        and p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in overrides
    ]
    optional = [
        p.name
        for p in (signature.parameters.values() if signature else ())
        if p.default is None and not p.name.startswith("_") and p.name not in ("device", "dtype")
    ]
    choices = []
    for p in params:
        options = list(CTOR_VALUES)
        annotation = p.annotation
        if isinstance(annotation, str):
            annotation = getattr(torch.nn, annotation.split(".")[-1].strip("'\""), None)
        if inspect.isclass(annotation) and issubclass(annotation, torch.nn.Module) and depth < 2:
            sub = instantiate(annotation, depth + 1)
            if sub is not None:
                options = [sub]
        choices.append(options)

    def combos(i):
        if i == len(choices):
            yield []
            return
        for value in choices[i]:
            for rest in combos(i + 1):
                yield [value, *rest]

    extras = [{}] + [{name: value} for name in optional for value in (4, 0.5)]
    for extra in extras:
        for values in combos(0):
            kwargs = dict(zip([p.name for p in params], values))
            kwargs.update(overrides)
            kwargs.update(extra)
            try:
                seed(cls.__name__)
                # on the meta device: parameters get names and shapes but no memory (a default
                # nn.Transformer alone would take 180 MB, once per flipped constructor flag)
                with contextlib.redirect_stdout(io.StringIO()), torch.device("meta"):
                    return cls(**kwargs)
            except Exception:
                continue
    return None


def collect_layers() -> dict:
    """class name -> (kind, parameters, parameter tensor count, buffers, parameter-free in some
    configuration, parameter-free in every configuration, constructor parameters, forward parameters)."""
    found = {}
    loss_base = torch.nn.modules.loss._Loss
    for name, cls in sorted(layer_classes().items()):
        file = cls.__module__.rsplit(".", 1)[-1]
        kind = LAYER_FILES.get(file, "other")
        if issubclass(cls, loss_base):
            kind = "loss"
        forward = _signature_names(_signature_of(cls.forward))
        if {"query", "key", "value"} <= set(forward):
            kind = "attention"
        ctor = _signature_names(constructor(cls))
        instance = instantiate(cls)
        if instance is None:
            note(f"torch.nn.{name}: could not be instantiated with small arguments")
            found[name] = (kind, None, None, None, None, None, ctor, forward, file, ())
            continue
        params = [n for n, _ in instance.named_parameters()]
        direct = [n for n, _ in instance.named_parameters(recurse=False)]
        buffers = [n for n, _ in instance.named_buffers()]
        counts = [len(params)]
        switches = []
        defaults = constructor(cls).parameters if constructor(cls) else {}
        for pname, p in defaults.items():
            if isinstance(p.default, bool):
                flipped = instantiate(cls, **{pname: not p.default})
                if flipped is not None:
                    counts.append(len(list(flipped.parameters())))
                    if (counts[-1] == 0) != (counts[0] == 0):
                        switches.append(pname)
        if kind == "linear" and max(counts) == 0:
            kind = "other"  # Identity
        found[name] = (
            kind,
            tuple(params if len(params) <= 16 else direct),
            len(params),
            tuple(buffers),
            min(counts) == 0,
            max(counts) == 0,
            ctor,
            forward,
            file,
            tuple(switches),
        )
    return found


# -- vocabularies the rules use (recurrent state, functional twins of layers, Variable) -------------------


def collect_recurrent_states() -> dict:
    """Recurrent layers called on a sequence return `(output, state)`: the state's kind, "tuple" (LSTM's
    `(h, c)`) or "tensor" (GRU's and RNN's `h`), from a real call on a (seq, batch, feature) input whose
    returned state is accepted back as the next call's state. Cells take one step (a 2-D input) and raise
    on a sequence, so they are not recorded."""
    found = {}
    for name, cls in sorted(layer_classes().items()):
        if LAYER_FILES.get(cls.__module__.rsplit(".", 1)[-1]) != "recurrent":
            continue
        try:
            seed(name)
            with contextlib.redirect_stdout(io.StringIO()):
                layer = cls(4, 4)
                x = torch.randn(3, 2, 4)
                out = layer(x)
                if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], torch.Tensor)):
                    continue
                layer(x, out[1])
        except Exception as error:
            note(f"torch.nn.{name}: no (output, state) call: {type(error).__name__}")
            continue
        state = out[1]
        if isinstance(state, torch.Tensor):
            found[name] = "tensor"
        elif isinstance(state, tuple) and all(isinstance(t, torch.Tensor) for t in state):
            found[name] = "tuple"
    return found


# Layers whose float32 weights meet a float64 input, and how to call them: constructor arguments and
# the input's shape (GG504 names the error each raises).
FLOAT64_INPUT_CALLS = {
    "Linear": ((3, 4), (2, 3)),
    "Conv1d": ((3, 4, 1), (1, 3, 5)),
    "Conv2d": ((3, 4, 1), (1, 3, 5, 5)),
    "Conv3d": ((3, 4, 1), (1, 3, 2, 2, 2)),
    "LSTM": ((3, 4), (2, 1, 3)),
    "GRU": ((3, 4), (2, 1, 3)),
    "RNN": ((3, 4), (2, 1, 3)),
}


def collect_float64_input_errors() -> dict:
    """The error a default (float32) layer raises when called on a float64 input."""
    found = {}
    for name, (arguments, shape) in sorted(FLOAT64_INPUT_CALLS.items()):
        seed(name)
        layer = getattr(torch.nn, name)(*arguments)
        try:
            layer(torch.randn(*shape, dtype=torch.float64))
        except Exception as error:
            found[name] = str(error).splitlines()[0]
        else:
            note(f"torch.nn.{name}: takes a float64 input")
    return found


def collect_functional_twins() -> dict:
    """torch.nn layers built with no argument but `inplace` (defaults for the rest) whose call gives the
    same values as `torch.nn.functional.<name>(x)` with its defaults, in training and in eval mode, and
    twice the same (no randomness: Dropout and RReLU are left out) -> that function's name."""
    found = {}
    for name, cls in sorted(layer_classes().items()):
        ctor = constructor(cls)
        if ctor is None or "inplace" not in ctor.parameters:
            continue
        candidates = sorted(
            c for c in dir(F) if c.replace("_", "") == name.lower() and callable(getattr(F, c, None))
        )
        if not candidates:
            continue
        try:
            layer = cls(inplace=False)
        except Exception:
            continue
        seed(name)
        x = torch.randn(6, 7) * 4
        for candidate in candidates:
            fn = getattr(F, candidate)
            try:
                same = True
                for training in (True, False):
                    layer.train(training)
                    first, second = layer(x.clone()), layer(x.clone())
                    same = same and torch.equal(first, second) and torch.equal(first, fn(x.clone()))
            except Exception:
                continue
            if same:
                found[f"torch.nn.{name}"] = candidate
                break
    return found


def collect_variable_names() -> tuple[str, ...]:
    """The names of the legacy `Variable` class (calling it returns its tensor argument itself)."""
    found = []
    for module in ("torch", "torch.autograd", "torch.autograd.variable"):
        if getattr(importlib.import_module(module), "Variable", None) is torch.autograd.Variable:
            found.append(f"{module}.Variable")
    return tuple(found)


# -- optimizers, schedulers, grad modes, modules, autograd ------------------------------------------------


def _public_classes(module) -> dict[str, type]:
    return {n: v for n in dir(module) if not n.startswith("_") and inspect.isclass(v := getattr(module, n))}


def collect_optim() -> dict:
    optimizers = {}
    for name, cls in _public_classes(torch.optim).items():
        if issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer:
            optimizers[f"torch.optim.{name}"] = (
                cls.__module__.rsplit(".", 1)[1],
                _signature_names(constructor(cls)),
            )
    schedulers = {}
    import torch.optim.lr_scheduler as sched
    import torch.optim.swa_utils as swa

    for prefix, module in (("torch.optim.lr_scheduler", sched), ("torch.optim.swa_utils", swa)):
        for name, cls in _public_classes(module).items():
            params = _signature_names(constructor(cls))
            if (
                params[:1] == ("optimizer",)
                and hasattr(cls, "step")
                and not issubclass(cls, torch.optim.Optimizer)
            ):
                if cls.__name__ in ("LRScheduler", "_LRScheduler"):
                    continue
                schedulers[f"{prefix}.{name}"] = params
    methods = tuple(sorted(n for n in dir(torch.optim.Optimizer) if not n.startswith("_")))
    return {"optimizers": optimizers, "schedulers": schedulers, "optimizer_methods": methods}


GRAD_MODE_MODULES = ("torch", "torch.autograd", "torch.autograd.grad_mode")


def collect_grad_modes() -> dict:
    """qualname -> (canonical, grad enabled inside `with X():` (None: needs its argument), the
    mode parameter, grad enabled with mode=True, with mode=False, works as a decorator)."""
    targets = {}
    grad_mode = torch.autograd.grad_mode
    for name, cls in _public_classes(grad_mode).items():
        if cls.__module__ == grad_mode.__name__ and hasattr(cls, "__enter__"):
            targets[id(cls)] = (f"torch.autograd.grad_mode.{name}", cls)
    names = {}
    for module_name in GRAD_MODE_MODULES:
        module = importlib.import_module(module_name)
        for name in dir(module):
            value = getattr(module, name, None)
            if id(value) in targets:
                names[f"{module_name}.{name}"] = targets[id(value)][0]
    short = {}
    for qual, canonical in names.items():
        if canonical not in short or len(qual) < len(short[canonical]):
            short[canonical] = qual
    found = {}
    for _, (canonical, cls) in sorted(targets.items(), key=lambda item: item[1][0]):
        params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
        mode = next((p.name for p in params if p.name == "mode"), None)
        required = mode is not None and params[0].default is inspect.Parameter.empty

        def inside(*args, cls=cls):
            torch.set_grad_enabled(True)
            try:
                with cls(*args):
                    return torch.is_grad_enabled()
            except Exception:
                return None

        plain = None if required else inside()
        on = inside(True) if mode else None
        off = inside(False) if mode else None
        args = (False,) if required else ()
        expected = off if required else plain
        try:
            decorated = cls(*args)(lambda: torch.is_grad_enabled())
            torch.set_grad_enabled(True)
            decorator = decorated() == expected
        except Exception:
            decorator = False
        torch.set_grad_enabled(True)
        sets_on_call = False
        if mode is not None:
            cls(False)
            sets_on_call = torch.is_grad_enabled() is False
            torch.set_grad_enabled(True)
        found[short[canonical]] = (plain, mode, on, off, decorator, sets_on_call)
    aliases = {q: short[c] for q, c in names.items() if q != short[c]}
    return {"modes": found, "aliases": aliases}


# nn.Module methods the generator does not call: they need a device, compile, or touch the process.
MODULE_METHODS_NOT_CALLED = {"compile", "cuda", "xpu", "ipu", "mtia", "share_memory", "to_empty"}


def collect_module_methods() -> dict:
    """nn.Module public methods -> returns the module itself (called with no arguments on a
    Linear; for device moves we cannot run, the docstring's "Returns: Module: self")."""
    found = {}
    for name in sorted(dir(torch.nn.Module)):
        if name.startswith("_") or not callable(getattr(torch.nn.Module, name)):
            continue
        module = torch.nn.Linear(2, 2)
        try:
            if name in MODULE_METHODS_NOT_CALLED:
                raise RuntimeError("not called")
            with contextlib.redirect_stdout(io.StringIO()):
                returns_self = getattr(module, name)() is module
        except Exception:
            doc = inspect.getdoc(getattr(torch.nn.Module, name)) or ""
            returns_self = "Module: self" in doc
        found[name] = returns_self
    return found


def collect_ctx_attributes() -> tuple[str, ...]:
    """Public attributes of the `ctx` an autograd.Function's forward receives."""
    seen = []

    class Probe(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            seen.extend(n for n in dir(ctx) if not n.startswith("_"))
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    Probe.apply(torch.randn(2, requires_grad=True))
    return tuple(sorted(set(seen)))


ALIAS_MODULES = (
    "torch",
    "torch.nn",
    "torch.nn.parameter",
    "torch.autograd",
    "torch.autograd.function",
    "torch.autograd.variable",
    "torch.optim",
    "torch.optim.lr_scheduler",
    "torch.optim.swa_utils",
    "torch.jit",
)


def collect_class_names() -> dict:
    """Every public class of the torch namespaces the rules resolve names in, under each name it
    is reachable by: alias -> shortest name (torch.nn.modules.linear.Linear -> torch.nn.Linear)."""
    modules = [importlib.import_module(m) for m in ALIAS_MODULES]
    import pkgutil

    modules += [
        importlib.import_module(f"torch.nn.modules.{m.name}")
        for m in pkgutil.iter_modules(torch.nn.modules.__path__)
    ]
    modules += [
        importlib.import_module(f"torch.optim.{m.name}")
        for m in pkgutil.iter_modules(torch.optim.__path__)
        if not m.name.startswith("_")
    ]
    modules.append(torch.nn.modules)
    by_object: dict[int, list[str]] = defaultdict(list)
    objects = {}
    packages = {"torch", "torch.nn", "torch.nn.modules", "torch.autograd", "torch.optim", "torch.jit"}
    for module in modules:
        for name, cls in _public_classes(module).items():
            if not cls.__module__.startswith(
                ("torch.nn", "torch.optim", "torch.autograd", "torch.jit", "torch._tensor")
            ):
                continue
            if module.__name__ not in packages and cls.__module__ != module.__name__:
                continue  # a name the submodule imported, not one it defines
            by_object[id(cls)].append(f"{module.__name__}.{name}")
            objects[id(cls)] = cls
    aliases = {}
    for names in by_object.values():
        names = sorted(set(names), key=lambda n: (n.count("."), len(n), n))
        for alias in names[1:]:
            aliases[alias] = names[0]
    module_bases = sorted(
        {
            n
            for key, names in by_object.items()
            for n in names
            if issubclass(objects[key], torch.nn.Module) and not n.startswith("torch.nn.")
        }
    )
    function_bases = sorted(
        min(names, key=lambda n: (n.count("."), n))
        for key, names in by_object.items()
        if issubclass(objects[key], torch.autograd.Function)
    )
    nn_non_modules = sorted(
        n.rsplit(".", 1)[1]
        for key, names in by_object.items()
        for n in names
        if n.startswith("torch.nn.") and n.count(".") == 2 and not issubclass(objects[key], torch.nn.Module)
    )
    return {
        "aliases": aliases,
        "module_classes_outside_nn": tuple(module_bases),
        "function_classes": tuple(function_bases),
        "nn_non_modules": tuple(sorted(set(nn_non_modules))),
    }


def tensor_only_methods(methods: list[str]) -> tuple[str, ...]:
    """Tensor methods that numpy arrays, numpy scalars, nn.Module, and Python's str, bytes, int,
    float, list, tuple, dict and set do not have: calling one means the receiver is a tensor."""
    others = set()
    for kind in (
        numpy.ndarray,
        numpy.generic,
        torch.nn.Module,
        str,
        bytes,
        int,
        float,
        list,
        tuple,
        dict,
        set,
    ):
        others |= set(dir(kind))
    return tuple(sorted(m for m in methods if m not in others))


# -- integer arguments -------------------------------------------------------------------------------------

INDEX_ARGUMENT_NAMES = ("index", "indices")  # schema argument names of an integer index tensor
# How to call the ops that op_db has no samples for (arguments only; the facts come from the calls).
INTEGER_EXTRA_SAMPLES = {
    "embedding": lambda: Sample(torch.randn(5, 3), (torch.tensor([0, 1]),)),
    "embedding_bag": lambda: Sample(torch.randn(5, 3), (torch.tensor([0, 1]), torch.tensor([0]))),
    "embedding_renorm_": lambda: Sample(torch.randn(5, 3), (torch.tensor([0, 1]), 1.0, 2.0)),
    "sparse_coo_tensor": lambda: Sample(torch.tensor([[0, 1]]), (torch.randn(2), (3,))),
}
# Python-level functions and layers whose argument may hold class indices or ids: (qualname, parameter,
# how to call it). Whether the argument must be integer is found by calling them.
INTEGER_CANDIDATES = (
    ("torch.bincount", "input", lambda: Sample(torch.tensor([0, 2, 2]))),
    ("torch.nn.functional.one_hot", "input", lambda: Sample(torch.tensor([0, 2]), (3,))),
    ("torch.nn.functional.embedding", "input", lambda: Sample(torch.tensor([0, 2]), (torch.randn(5, 3),))),
    (
        "torch.nn.functional.embedding_bag",
        "input",
        lambda: Sample(torch.tensor([[0, 2]]), (torch.randn(5, 3),)),
    ),
    (
        "torch.nn.functional.cross_entropy",
        "target",
        lambda: Sample(torch.randn(2, 3), (torch.tensor([0, 2]),)),
    ),
    ("torch.nn.functional.nll_loss", "target", lambda: Sample(torch.randn(2, 3), (torch.tensor([0, 2]),))),
)
INTEGER_LAYER_CANDIDATES = {
    "Embedding": (lambda: torch.nn.Embedding(5, 3), lambda: (torch.tensor([0, 1]),)),
    "EmbeddingBag": (lambda: torch.nn.EmbeddingBag(5, 3), lambda: (torch.tensor([[0, 1]]),)),
    "CrossEntropyLoss": (torch.nn.CrossEntropyLoss, lambda: (torch.randn(2, 3), torch.tensor([0, 2]))),
    "NLLLoss": (torch.nn.NLLLoss, lambda: (torch.randn(2, 3), torch.tensor([0, 2]))),
}


def _integer_call(call, args: list, kwargs: dict, slot) -> str | None:
    """Call with the integer tensor at `slot` (a position or keyword) as is, and again as float64:
    "integer" when the first works and the second raises, "class_index_shape" when a float tensor
    raises but a float tensor of the shape of the first argument works (class probabilities), None
    otherwise."""

    def run(value) -> bool:
        a, k = list(args), dict(kwargs)
        if isinstance(slot, str):
            k[slot] = value
        else:
            a[slot] = value
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                call(*[x.clone() if isinstance(x, torch.Tensor) else x for x in a], **k)
        except (RuntimeError, IndexError, TypeError, ValueError):
            return False
        return True

    original = kwargs[slot] if isinstance(slot, str) else args[slot]
    if not isinstance(original, torch.Tensor) or original.is_floating_point() or original.dtype == torch.bool:
        return None
    if not run(original) or run(original.double()):
        return None
    first = args[0] if args else None
    if isinstance(first, torch.Tensor) and first.shape != original.shape and run(torch.rand_like(first)):
        return "class_index_shape"
    return "integer"


def _samples_of(name: str) -> list[Sample]:
    samples = [s for info in op_db if info.name == name for s in opinfo_samples(info, torch.float32, 8)]
    if name in INTEGER_EXTRA_SAMPLES:
        samples.append(INTEGER_EXTRA_SAMPLES[name]())
    return samples


def _verified(call, samples: list[Sample], position: int) -> str | None:
    """The verdict of the first sample whose argument at `position` (the receiver or first argument
    being 0) is an integer tensor."""
    for sample in samples:
        args = [sample.input, *sample.args]
        if position < len(args):
            verdict = _integer_call(call, args, sample.kwargs, position)
            if verdict is not None:
                return verdict
    return None


def _schema_index_arguments() -> dict[str, set]:
    """aten op name -> {(position, name, has self)} of its positional Tensor arguments named index/indices."""
    schemas: dict[str, set] = defaultdict(set)
    for schema in torch._C._jit_get_all_schemas():
        name = schema.name.removeprefix("aten::")
        if name == schema.name or name.startswith("_") or name.endswith("_backward"):
            continue
        for i, argument in enumerate(schema.arguments):
            if (
                argument.name in INDEX_ARGUMENT_NAMES
                and str(argument.type) == "Tensor"
                and not argument.kwarg_only
            ):
                schemas[name].add((i, argument.name, schema.arguments[0].name == "self"))
    return schemas


def _schema_integer_facts(methods: dict, functions: dict) -> None:
    for name, found in sorted(_schema_index_arguments().items()):
        if len(found) != 1:
            note(f"integer argument of {name}: overloads disagree {sorted(found)}")
            continue
        ((position, keyword, has_self),) = found
        samples = _samples_of(name if name in INTEGER_EXTRA_SAMPLES else name.rstrip("_"))
        candidates = []
        if inspect.isbuiltin(getattr(torch, name, None)):
            candidates.append((f"torch.{name}", getattr(torch, name), functions, position))
        if has_self and hasattr(torch.Tensor, name):
            candidates.append((name, getattr(torch.Tensor, name), methods, position - 1))
        for key, call, table, python_position in candidates:
            verdict = _verified(call, samples, position)
            if verdict == "integer":
                table[key] = f"{python_position} {keyword}"
            else:
                note(f"integer argument of {key}: not confirmed by a call ({verdict})")


def _python_integer_facts(functions: dict) -> list[str]:
    """Python-level candidates into `functions`; returns the Tensor methods whose receiver must be integer."""
    receivers = []
    for qualname, parameter, make in INTEGER_CANDIDATES:
        prefix, last = qualname.rsplit(".", 1)
        function = getattr(importlib.import_module(prefix), last)
        signature = _signature_of(function)
        if signature is not None:
            names = list(signature.parameters)
        else:  # a builtin: the schema's `self` is `input` in Python
            schema = getattr(torch.ops.aten, last).default._schema
            names = ["input" if a.name == "self" else a.name for a in schema.arguments]
        if parameter not in names:
            note(f"integer argument of {qualname}: no parameter {parameter!r}")
            continue
        position = names.index(parameter)
        verdict = _verified(function, [make()], position)
        if verdict is None:
            note(f"integer argument of {qualname}: not confirmed by a call")
            continue
        functions[qualname] = f"{position} {parameter}" + ("" if verdict == "integer" else f" {verdict}")
        method = getattr(torch.Tensor, last, None)
        receiver = position == 0 and prefix == "torch" and method is not None
        if receiver and _integer_call(method, [torch.tensor([0, 2])], {}, 0) == "integer":
            receivers.append(last)
    return receivers


def _layer_integer_facts() -> dict:
    layers = {}
    for name, (make, call_args) in INTEGER_LAYER_CANDIDATES.items():
        layer = make()
        parameters = list(inspect.signature(layer.forward).parameters)
        args = list(call_args())
        for position, parameter in enumerate(parameters[: len(args)]):
            verdict = _integer_call(layer, args, {}, position)
            if verdict is not None:
                suffix = "" if verdict == "integer" else f" {verdict}"
                layers[f"torch.nn.{name}"] = f"{position} {parameter}{suffix}"
    return layers


def collect_integer_arguments() -> dict:
    """Tensor methods, torch functions and layers with an argument that must hold integers: from the
    operator schemas (a Tensor argument named index/indices), Python signatures, and real calls with
    an integer tensor there (works) and a float tensor (raises)."""
    methods: dict[str, str] = {}
    functions: dict[str, str] = {}
    _schema_integer_facts(methods, functions)
    receivers = _python_integer_facts(functions)
    return {
        "methods": methods,
        "functions": functions,
        "receivers": tuple(sorted(receivers)),
        "layers": _layer_integer_facts(),
    }


# -- output ------------------------------------------------------------------------------------------------


def literal(value) -> str:
    """A deterministic Python literal (sorted dict keys and sets)."""
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in sorted(value.items(), key=_item_key))
            + "}"
        )
    if isinstance(value, (set, frozenset)):
        value = tuple(sorted(value, key=sort_key))
    if isinstance(value, (tuple, list)):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(value)
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    raise TypeError(f"not a plain literal: {value!r}")


def _item_key(item):
    key = item[0]
    return tuple(sort_key(k) for k in key) if isinstance(key, tuple) else sort_key(key)


def block(name: str, value, comment: str) -> str:
    lines = [f"# {line}" if line else "#" for line in inspect.cleandoc(comment).splitlines()]
    if isinstance(value, dict):
        lines.append(f"{name} = {{")
        lines += [f"    {literal(k)}: {literal(v)}," for k, v in sorted(value.items(), key=_item_key)]
        lines.append("}")
    elif isinstance(value, (tuple, list, set, frozenset)):
        items = [
            literal(v)
            for v in (sorted(value, key=sort_key) if isinstance(value, (set, frozenset)) else value)
        ]
        lines.append(f"{name} = (")
        row = "   "
        for item in items:
            if len(row) + len(item) + 2 > 110:
                lines.append(row)
                row = "   "
            row += f" {item},"
        if row.strip():
            lines.append(row)
        lines.append(")")
    else:
        lines.append(f"{name} = {literal(value)}")
    return "\n".join(lines) + "\n"


def words_block(name: str, items, comment: str) -> str:
    """Names as one string (implicitly concatenated over lines), split by the reader: a tuple of
    600 string literals costs ~1 ms to compile, a few long strings almost nothing."""
    lines = [f"# {line}" if line else "#" for line in inspect.cleandoc(comment).splitlines()]
    lines.append(f"{name} = (")
    row = ""
    for item in items:
        assert " " not in item and '"' not in item, item
        if row and len(row) + len(item) + 8 > 110:
            lines.append(f'    "{row}"')
            row = ""
        row += f"{item} "
    lines.append(f'    "{row.rstrip()}"')
    lines.append(")")
    return "\n".join(lines) + "\n"


def encode_functions(names: dict[str, str]) -> list[str]:
    """`name` (facts under the method of the same name), `name=` (no facts), `name=*` (its own
    record, under its qualname) or `name=key` (facts under another method: expit=sigmoid)."""
    items = []
    for name, key in sorted(names.items()):
        items.append(name if key == name else f"{name}={key}")
    return items


def encode_layer(record: tuple) -> str:
    kind, params, count, buffers, sometimes, always, ctor, forward, file, switches = record
    items = [f"kind={kind}", f"file={file}"]
    if params is None:
        items.append("built=0")
    else:
        if params:
            items.append(f"parameters={','.join(params)}")
        if count != len(params):
            items.append(f"parameter_count={count}")
        if buffers:
            items.append(f"buffers={','.join(buffers)}")
        if always:
            items.append("parameter_free=always")
        elif sometimes:
            items.append("parameter_free=sometimes")
    for word, names in (("constructor", ctor), ("forward", forward), ("switches", switches)):
        if names:
            items.append(f"{word}={','.join(names)}")
    for item in items:
        assert " " not in item, item
    return " ".join(items)


HEADER = '''"""Torch facts, generated by `scripts/generate_torch_facts.py` from torch {torch} and numpy {numpy}.

Do not edit: rerun the generator (`.venv/bin/python scripts/generate_torch_facts.py`) with the pinned torch;
`tests/test_torch_facts.py` fails when this file is stale. Read it through `gradguard.engine.torch_facts`.
"""

# fmt: off
'''


def encode_op(key: str, record: tuple) -> str:
    """One OPS record as a compact `field=value ...` string (see OPS_FORMAT): one string literal per
    op keeps the data module fast to compile (nested tuples for 900 ops took ~70 ms)."""
    r = dict(zip(RECORD_FIELDS, record))
    items = []
    if r["canonical"] != key.rsplit(".", 1)[-1]:
        items.append(f"canonical={r['canonical']}")
    items += [f"{f}={r[f]}" for f in ("inplace", "out_of_place") if r[f]]
    probed = r["samples"] > 0
    for f in ("writes_self", "cuts_graph"):
        if probed and r[f] is not False:
            items.append(f"{f}={'?' if r[f] is None else 1}")
    if r["overwrites"]:
        items.append("overwrites=1")
    if r["raises_if_requires_grad"]:
        items.append("raises_if_requires_grad=1")
    items += [f"{f}={r[f]}" for f in ("grad", "dtype", "view", "same_values") if r[f]]
    items += [f"{f}={'+'.join(r[f])}" for f in ("returns", "fields") if r[f]]
    for f in ("saves_inputs", "saves_outputs"):
        if r[f]:
            entries = []
            for position, triggers in r[f]:
                word = triggers if isinstance(triggers, str) else "+".join(str(t) for t in triggers)
                entries.append(f"{position}:{word}")
            items.append(f"{f}={';'.join(entries)}")
    if probed:
        items.append(f"samples={r['samples']}")
        if r["source"] != "op_db":
            items.append(f"source={r['source']}")
    for item in items:
        assert " " not in item and item.count("=") == 1, item
    return " ".join(items)


def _rows(table: dict) -> dict:
    rows: dict[str, list[str]] = defaultdict(list)
    for (a, b), result in sorted(table.items()):
        rows[a].append(f"{b}={result}")
    return {a: " ".join(items) for a, items in rows.items()}


def _derivable_alias(alias: str, canonical: str, layers: dict, optimizers: dict) -> bool:
    prefix, last = alias.rsplit(".", 1)
    if canonical == f"torch.nn.{last}" and last in layers:
        return prefix in ("torch.nn.modules", f"torch.nn.modules.{layers[last][8]}")
    if canonical in optimizers:
        return prefix == f"torch.optim.{optimizers[canonical][0]}"
    return False


def _empty(name: str, record: tuple) -> bool:
    return (
        record[0] == name
        and record[1] is None
        and record[2] is None
        and not record[RECORD_FIELDS.index("samples")]
    )


def collect() -> str:
    ops_data = collect_ops()
    methods = ops_data["methods"]
    method_records = ops_data["method_records"]
    ops = {name: record for name, record in method_records.items() if not _empty(name, record)}
    functions: dict[str, dict[str, str]] = {prefix: {} for prefix in NAMESPACES}
    for qualname, (record, probed) in ops_data["function_records"].items():
        prefix, last = qualname.rsplit(".", 1)
        canonical = record[0]
        if not probed:
            functions[prefix][last] = ""
        elif method_records.get(canonical) == record:
            functions[prefix][last] = canonical
        else:
            ops[qualname] = record
            functions[prefix][last] = "*"
    ops = {key: encode_op(key, record) for key, record in ops.items()}
    attributes = collect_attributes(ops_data["attributes"])
    factories = collect_factories()
    dtypes = collect_dtypes()
    layers = collect_layers()
    optim = collect_optim()
    grad_modes = collect_grad_modes()
    module_methods = collect_module_methods()
    classes = collect_class_names()
    integers = collect_integer_arguments()
    operators = {}
    for table in (BINARY_OPERATORS, UNARY_OPERATORS, COMPARE_OPERATORS):
        for syntax, word in table.items():
            forms = tuple(
                f if hasattr(torch.Tensor, f) else None
                for f in (f"__{word}__", f"__i{word}__", f"__r{word}__")
            )
            operators[syntax] = forms if forms[0] else None
    operators = {k: v for k, v in operators.items() if v}
    operators["Subscript"] = ("__getitem__", "__setitem__", None)
    inplace_keyword = set(ops_data["inplace_keyword"])
    inplace_keyword |= {f"torch.nn.{name}" for name, record in layers.items() if "inplace" in record[6]}
    requires_grad_keyword = set(ops_data["requires_grad_keyword"])
    requires_grad_keyword |= {q for q, record in factories.items() if record[4]}

    parts = [
        HEADER.format(torch=torch.__version__, numpy=numpy.__version__),
        block("TORCH_VERSION", torch.__version__, "The torch these facts come from."),
        block("OPS_FORMAT", OPS_FORMAT, "How an OPS value is written."),
        block(
            "OPS",
            ops,
            """
            Tensor method name (or function qualname when the function behaves differently from the
            method of the same op) -> facts, from real calls with op_db's OpInfo samples (or generic
            arguments, source=generic).
            """,
        ),
        words_block("TENSOR_METHODS", methods, "Every public method of torch.Tensor (dir(torch.Tensor))."),
        words_block(
            "TENSOR_ONLY_METHODS",
            tensor_only_methods(methods),
            "Tensor methods that numpy arrays/scalars, nn.Module and Python's builtin types lack.",
        ),
        words_block(
            "OPERATOR_METHODS", ops_data["dunders"], "Tensor operator methods (`x * y` calls `__mul__`)."
        ),
        block(
            "OPERATORS",
            operators,
            "Python syntax (ast node class name) -> (operator method, in-place form, reflected form).",
        ),
        *(
            words_block(
                f"FUNCTIONS_{prefix.upper().replace('.', '_')}",
                encode_functions(functions[prefix]),
                f"""
                The public functions of {prefix}: `name` (facts under the Tensor method of that name),
                `name=` (no call probed), `name=*` (facts under its own qualname in OPS) or `name=key`.
                """,
            )
            for prefix in NAMESPACES
        ),
        block("INPLACE_KEYWORD", inplace_keyword, "Functions and layers with an `inplace` parameter."),
        block(
            "REQUIRES_GRAD_KEYWORD",
            requires_grad_keyword,
            "Methods, functions and factories whose call accepts `requires_grad=True`.",
        ),
        block(
            "TENSOR_ATTRIBUTE_FIELDS",
            ("returns", "view", "cuts_graph", "settable"),
            "The fields of a TENSOR_ATTRIBUTES record.",
        ),
        block("TENSOR_ATTRIBUTES", attributes, "Public non-method attributes of torch.Tensor."),
        block(
            "FACTORY_FIELDS",
            (
                "family",
                "dtype_float",
                "dtype_int",
                "dtype_bool",
                "requires_grad",
                "shares_tensor",
                "shares_ndarray",
                "keeps_graph",
                "keeps_list_graph",
                "like",
            ),
            """
            The fields of a FACTORIES record (dtype `default` follows torch.get_default_dtype(), `like`
            is the dtype of the tensor argument).
            """,
        ),
        block("FACTORIES", factories, "Functions and legacy tensor types of `torch` that create tensors."),
        block("DEFAULT_DTYPE", dtypes["default"], "torch.get_default_dtype() unless changed."),
        block(
            "DTYPE_FIELDS",
            ("is_floating_point", "is_complex", "is_signed", "itemsize"),
            "The fields of a DTYPES record.",
        ),
        block("DTYPES", dtypes["canonical"], "Canonical dtype name -> record."),
        block("DTYPE_NAMES", dtypes["names"], "Every torch.<name> that is a dtype -> its canonical name."),
        block("NUMPY_DTYPES", dtypes["numpy"], "numpy scalar types -> the dtype torch.from_numpy gives."),
        block("PYTHON_DTYPES", dtypes["python"], "Python types used as a dtype (dtype=float) -> dtype."),
        block(
            "PROMOTE",
            _rows(dtypes["promote"]),
            "dtype a -> `b=result ...`: the dtype of `a + b` for two tensors with dimensions.",
        ),
        block(
            "PROMOTE_SCALAR",
            _rows(dtypes["scalar"]),
            "tensor dtype -> `kind=result ...`: the dtype of `tensor + scalar` for a Python bool/int/float/complex.",
        ),
        block(
            "LAYERS",
            {name: encode_layer(record) for name, record in layers.items()},
            """
            torch.nn.<class> -> `field=value ...` from an instance built with small arguments: kind, file
            (the torch.nn.modules submodule defining it), parameters and buffers of the default instance
            (names joined by commas; parameter_count when the names are not all listed), parameter_free
            (always / sometimes, from one instance per flipped boolean constructor flag; absent: never),
            constructor and forward parameter names, switches (the boolean constructor parameters whose
            flip adds or removes every parameter: BatchNorm's affine), built=0 when no instance was built.
            """,
        ),
        block(
            "OPTIMIZERS",
            optim["optimizers"],
            "torch.optim optimizers -> (the torch.optim submodule defining it, constructor parameters).",
        ),
        block("LR_SCHEDULERS", optim["schedulers"], "LR schedulers -> constructor parameters."),
        block("OPTIMIZER_METHODS", optim["optimizer_methods"], "Public methods of torch.optim.Optimizer."),
        block(
            "GRAD_MODE_FIELDS",
            (
                "enabled_inside",
                "mode_parameter",
                "enabled_mode_true",
                "enabled_mode_false",
                "decorator",
                "sets_on_call",
            ),
            """
            The fields of a GRAD_MODES record: torch.is_grad_enabled() inside `with X():` (None: X needs
            its mode argument), the mode parameter, inside X(True) / X(False), usable as a decorator, and
            whether calling X(False) without `with` already switches grad mode.
            """,
        ),
        block("GRAD_MODES", grad_modes["modes"], "Grad-mode context managers (shortest name) -> record."),
        block("GRAD_MODE_ALIASES", grad_modes["aliases"], "Other names of the grad-mode context managers."),
        block("MODULE_METHODS", module_methods, "Public nn.Module methods -> returns the module itself."),
        block("CTX_ATTRIBUTES", collect_ctx_attributes(), "Attributes of the ctx of an autograd.Function."),
        block(
            "CLASS_ALIASES",
            {
                a: c
                for a, c in classes["aliases"].items()
                if not _derivable_alias(a, c, layers, optim["optimizers"])
            },
            """
            Other names of torch classes -> their shortest name (torch.nn.modules.<file>.X and
            torch.optim.<file>.X of LAYERS and OPTIMIZERS are left out: their file field gives them).
            """,
        ),
        block(
            "MODULE_CLASSES_OUTSIDE_NN",
            classes["module_classes_outside_nn"],
            "nn.Module subclasses reachable by names outside torch.nn (e.g. torch.jit.ScriptModule).",
        ),
        block("FUNCTION_CLASSES", classes["function_classes"], "torch.autograd.Function and its subclasses."),
        block("NN_NON_MODULES", classes["nn_non_modules"], "Classes of torch.nn that are not nn.Module."),
        block(
            "INTEGER_METHOD_ARGUMENTS",
            integers["methods"],
            """
            Tensor methods with an argument that must hold integers -> `position keyword` (position after
            the receiver): a Tensor argument named index/indices in the op's schema, confirmed by a call
            (an integer tensor works, a float one raises).
            """,
        ),
        block(
            "INTEGER_FUNCTION_ARGUMENTS",
            integers["functions"],
            """
            Functions with an argument that must hold integers -> `position keyword [condition]`, from the
            schemas and signatures, confirmed by a call; condition class_index_shape: a float tensor of the
            first argument's shape (class probabilities) is accepted too.
            """,
        ),
        block(
            "INTEGER_RECEIVER_METHODS",
            integers["receivers"],
            "Tensor methods whose receiver must hold integers (`idx.bincount()`), confirmed by a call.",
        ),
        block(
            "INTEGER_LAYER_ARGUMENTS",
            integers["layers"],
            "torch.nn layers whose forward argument must hold integers -> `position parameter [condition]`.",
        ),
        block(
            "RECURRENT_STATES",
            collect_recurrent_states(),
            "Recurrent layers returning `(output, state)` on a sequence -> the state: tuple (h, c) or tensor.",
        ),
        block(
            "FUNCTIONAL_TWINS",
            collect_functional_twins(),
            """
            Layers whose default instance (only `inplace` given) computes `torch.nn.functional.<name>(x)`
            with its defaults, in training and eval mode -> that name.
            """,
        ),
        block("VARIABLE_NAMES", collect_variable_names(), "Names of torch.autograd.Variable."),
        block(
            "FLOAT64_INPUT_ERRORS",
            collect_float64_input_errors(),
            "torch.nn layers (float32 weights) -> the error their call on a float64 input raises.",
        ),
    ]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--notes", action="store_true", help="list what was skipped and why")
    options = parser.parse_args(argv)
    started = time.perf_counter()
    text = collect()
    options.output.write_text(text, encoding="utf-8")
    elapsed = time.perf_counter() - started
    print(f"wrote {options.output} ({len(text.encode()) // 1024} KiB) in {elapsed:.1f} s", file=sys.stderr)
    if options.notes:
        print("\n".join(NOTES), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
