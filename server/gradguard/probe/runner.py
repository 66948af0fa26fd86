"""The probe's child process: load the user's file, build each target, run it with torch.

Run as a *script* by the interpreter that has torch (`python runner.py PLAN EVENTS_FD
NONCE_FD MEMORY_MB TIMEOUT`, started by isolate.py), so it must not import gradguard: only
the standard library and torch. It reads the plan (JSON, written by
`gradguard.probe.targets`) and writes one JSON object per line to the events pipe; its
stdout/stderr belong to the user's code (captured, size-capped and shown by the parent only
as a tail).

Each event line is `JSON<TAB>MAC`: the JSON carries a sequence number and the MAC is an
HMAC-SHA256 of it under a nonce the parent sends through a pipe that is read and closed
before the user's code runs (it is not in argv, the environment or the plan). Bytes the
user's code writes into the pipe do not verify and are dropped, and the parent stops
reading at "done". This makes results hard to forge by accident or by a careless script,
not impossible: code running in this process can patch the emitter itself. The probe is
not a security sandbox.

Event lines:
    {"event": "stage", "target": "Net", "stage": "construct"}   progress, for crash reports
    {"event": "result", "target": "Net", ...}                   one per target
    {"event": "load-error", ...}                                the file itself failed to run
    {"event": "done"}
"""

from __future__ import annotations

import ast
import faulthandler
import hashlib
import hmac
import json
import os
import resource
import signal
import sys
import time
import traceback
import types
import warnings
from collections.abc import Callable
from typing import Any, NoReturn

USER_MODULE = "__gradguard_probe_target__"
BATCH = 4

_user_path = ""
_memory_limit = 0  # bytes of address space the child may use (0: no limit)
_real_exit = os._exit
_owner = os.getpid()  # the runner itself; a fork of it (the user's code forked) is not


def emit(obj: dict) -> None:  # replaced in main() by _emitter(...)
    raise RuntimeError("the events channel is not open")


def _emitter(fd: int, key: bytes):
    """emit(obj): one signed line on the events pipe (see the module docstring)."""
    sequence = [0]
    write = os.write
    getpid = os.getpid
    owner = getpid()
    new_mac = hmac.new
    sha256 = hashlib.sha256

    def emit(obj: dict) -> None:
        if getpid() != owner:
            return  # a forked copy of the runner (the user's code forked) reports nothing
        sequence[0] += 1
        body = json.dumps({**obj, "seq": sequence[0]}, default=str)
        mac = new_mac(key, body.encode("utf-8"), sha256).hexdigest()
        # the leading newline ends whatever unterminated bytes someone else wrote before
        data = ("\n" + body + "\t" + mac + "\n").encode("utf-8")
        while data:
            written = write(fd, data)
            data = data[written:]

    return emit


class ProbeExit(BaseException):
    """Raised instead of letting the user's code end the process."""

    def __init__(self, how: str, code: object) -> None:
        super().__init__(f"{how}({code!r}) was called")
        self.how = how
        self.code = code


def _fake_os_exit(status: int = 0) -> NoReturn:
    if os.getpid() != _owner:
        _real_exit(status)  # a child the user's code forked: it may end as it likes
    raise ProbeExit("os._exit", status)


# -- limits --------------------------------------------------------------------------------------
def set_limits(memory_mb: int, timeout: float) -> None:
    global _memory_limit
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            _memory_limit = limit
        except (ValueError, OSError):
            pass
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    if timeout > 0:
        # Backstop in case the parent dies without killing us (the alarm is set after import).
        cpu = int(timeout * 2) + 10
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        except (ValueError, OSError):
            pass


# -- frames ---------------------------------------------------------------------------------------
def _frame_position(frame) -> tuple[int, int | None, int | None, int | None]:
    line = frame.f_lineno
    try:
        positions = list(frame.f_code.co_positions())
        pos = positions[frame.f_lasti // 2]
        if pos[0] is not None:
            return pos[0], pos[1], pos[2], pos[3]
    except Exception:
        pass
    return line, line, None, None


def user_frames_of_traceback(tb) -> list[dict]:
    frames = []
    for summary in traceback.extract_tb(tb):
        if summary.filename == _user_path:
            frames.append(
                {
                    "line": summary.lineno,
                    "end_line": getattr(summary, "end_lineno", None),
                    "col": getattr(summary, "colno", None),
                    "end_col": getattr(summary, "end_colno", None),
                    "function": summary.name,
                }
            )
    return frames


def current_user_frame() -> dict | None:
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == _user_path:
            line, end_line, col, end_col = _frame_position(frame)
            return {
                "line": line,
                "end_line": end_line,
                "col": col,
                "end_col": end_col,
                "function": frame.f_code.co_name,
            }
        frame = frame.f_back
    return None


def describe_exception(exc: BaseException) -> dict:
    if isinstance(exc, ProbeExit):
        text = str(exc)
        kind = exc.how
    elif isinstance(exc, SystemExit):
        text = f"sys.exit({exc.code!r}) was called"
        kind = "SystemExit"
    else:
        text = str(exc).strip() or type(exc).__name__
        kind = type(exc).__name__
    # the first paragraph is what people need; torch appends long hints
    if len(text) > 2000:
        text = text[:2000] + " ..."
    return {"type": kind, "message": text, "frames": user_frames_of_traceback(exc.__traceback__)}


# -- loading the user's file -------------------------------------------------------------------
def _is_main_guard(stmt: ast.stmt) -> bool:
    test = getattr(stmt, "test", None)
    return (
        isinstance(stmt, ast.If)
        and isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
    )


def _calls_local_function(stmt: ast.stmt, local_functions: set[str]) -> bool:
    for node in ast.walk(stmt):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in local_functions:
            return True
    return False


def _package_of(path: str) -> tuple[str, str]:
    """("pkg.sub", directory containing pkg) when the file is inside a package."""
    directory = os.path.dirname(os.path.abspath(path))
    parts = []
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        parts.append(os.path.basename(directory))
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return ".".join(reversed(parts)), directory


def load_user_module(source: str, path: str) -> types.ModuleType:
    """Run the file's definitions (imports, classes, functions, plain assignments) but
    not its script part: no `if __name__ == "__main__":` block, no top-level calls or
    loops (a training script must not start training inside the probe)."""
    tree = ast.parse(source, filename=path)
    import linecache

    # tracebacks and anomaly reports show the text that runs (the editor's, maybe unsaved)
    linecache.cache[path] = (len(source), None, source.splitlines(True), path)
    # calls of the file's own functions and classes at the top level are the script part
    # (`model = Net(); train(model)`), not definitions
    local_functions = {
        s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    module = types.ModuleType(USER_MODULE)
    module.__file__ = path
    package, root = _package_of(path)
    if package:
        # `from .layers import Block` in a package's module works as it does for the user
        module.__package__ = package
        if root not in sys.path:
            sys.path.insert(0, root)
    sys.modules[USER_MODULE] = module
    namespace = module.__dict__
    for stmt in tree.body:
        if isinstance(
            stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        ):
            required = True
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            if _calls_local_function(stmt, local_functions):
                continue
            required = False
        elif isinstance(stmt, ast.Try) or (isinstance(stmt, ast.If) and not _is_main_guard(stmt)):
            required = False
        else:
            continue  # expressions, loops, with-blocks, the main guard: the script part
        code = compile(ast.Module(body=[stmt], type_ignores=[]), path, "exec")
        if required:
            exec(code, namespace)
        else:
            try:
                exec(code, namespace)
            except Exception:
                pass  # a failing constant or script line is not what we probe
    return module


# -- inputs ----------------------------------------------------------------------------------------
class CannotBuild(Exception):
    """The probe does not know how to build the target or its input."""


_MISMATCH_WORDS = (
    "shape",
    "size",
    "dimension",
    "dim ",
    "mat1",
    "mat2",
    "channels",
    "expected input",
    "must match",
    "dtype",
    "view",
    "reshape",
    "index out of range",
    "out of bounds",
    "positional argument",
    "unpack",
    "indices",
    "subscriptable",
    "tensor",
    "not iterable",
)


def looks_like_input_mismatch(exc: BaseException) -> bool:
    """Errors a wrong guess of the input's shape (or arity) causes, as opposed to bugs
    that would happen with any input (out of memory, attribute errors, exits)."""
    if isinstance(exc, (TypeError, IndexError, AttributeError, KeyError, AssertionError)):
        return True  # the input is not what forward expects (a dict, a batch object, another rank)
    if not isinstance(exc, (RuntimeError, ValueError)):
        return False  # NameError, ZeroDivisionError, ...: a bug whatever the input
    text = str(exc).lower()
    if "allocate" in text or "memory" in text:
        return False
    return any(word in text for word in _MISMATCH_WORDS)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def at_line(exc: BaseException) -> str:
    frames = user_frames_of_traceback(exc.__traceback__)
    return f" (line {frames[-1]['line']})" if frames else ""


def eval_args(args_src: str, namespace: dict) -> tuple[tuple, dict]:
    return eval(f"(lambda *a, **k: (a, k))({args_src})", namespace)


def build_spec(spec: dict, namespace: dict, torch, dtype):
    kind = spec["kind"]
    if kind == "shape":
        return torch.randn(*spec["shape"], dtype=dtype)
    if kind == "long":
        return torch.randint(0, int(spec.get("high", 10)), tuple(spec["shape"]))
    if kind == "expr":
        return eval(spec["expr"], namespace)
    if kind == "value":
        return spec["value"]
    raise CannotBuild(f"unknown input spec {spec!r}")


def first_layer_inputs(model, attr: str | None, torch) -> tuple[list[dict], str]:
    """The input the model's first layer takes (`self.<attr>`, else its first child), and where
    that was read."""
    nn = torch.nn
    first = _first_layer(model, attr, nn)
    if first is None:
        return parameter_inputs(model)
    return _layer_inputs(*first, nn)


def _first_layer(model, attr: str | None, nn) -> tuple[object, str] | None:
    """(layer, where): the innermost first layer of `self.<attr>` or the first child (None: no child)."""
    layer = None
    where = ""
    if attr:
        layer = getattr(model, attr, None)
        where = f"self.{attr}"
    if not isinstance(layer, nn.Module):
        children = list(model.named_children())
        if not children:
            return None
        where = f"self.{children[0][0]}"
        layer = children[0][1]
    known = (
        nn.Linear,
        nn.Bilinear,
        nn.Embedding,
        nn.EmbeddingBag,
        nn.Conv1d,
        nn.Conv2d,
        nn.Conv3d,
        nn.RNN,
        nn.LSTM,
        nn.GRU,
        nn.BatchNorm1d,
        nn.BatchNorm2d,
        nn.LayerNorm,
        nn.TransformerEncoderLayer,
        nn.MultiheadAttention,
    )
    for _ in range(20):
        if isinstance(layer, known):
            break
        if isinstance(layer, (nn.Sequential, nn.ModuleList)) and len(layer) > 0:
            layer, where = layer[0], f"{where}[0]"
        elif isinstance(layer, nn.TransformerEncoder) and len(layer.layers) > 0:
            layer, where = layer.layers[0], f"{where}.layers[0]"
        elif next(layer.children(), None) is not None:
            child_name, layer = next(layer.named_children())  # a block of the user's: its first layer
            where = f"{where}.{child_name}"
        else:
            break
    return layer, where


def _layer_inputs(layer, where: str, nn) -> tuple[list[dict], str]:
    name = type(layer).__name__

    def shape(*dims):
        return [{"kind": "shape", "shape": list(dims)}]

    if isinstance(layer, nn.Linear) and not isinstance(layer, nn.LazyLinear):
        return shape(BATCH, layer.in_features), f"{where} = {name}(in_features={layer.in_features})"
    if isinstance(layer, nn.Bilinear):
        return (
            shape(BATCH, layer.in1_features) + shape(BATCH, layer.in2_features),
            f"{where} = Bilinear({layer.in1_features}, {layer.in2_features})",
        )
    if isinstance(layer, (nn.Embedding, nn.EmbeddingBag)):
        spec = [{"kind": "long", "shape": [BATCH, 8], "high": layer.num_embeddings}]
        return spec, f"{where} = {name}(num_embeddings={layer.num_embeddings}): integer indices"
    conv_sizes = {nn.Conv1d: (32,), nn.Conv2d: (32, 32), nn.Conv3d: (16, 16, 16)}
    for conv, sizes in conv_sizes.items():
        if isinstance(layer, conv):
            return shape(
                BATCH, layer.in_channels, *sizes
            ), f"{where} = {name}(in_channels={layer.in_channels})"
    if isinstance(layer, (nn.RNN, nn.LSTM, nn.GRU)):
        dims = (BATCH, 8, layer.input_size) if layer.batch_first else (8, BATCH, layer.input_size)
        return shape(*dims), f"{where} = {name}(input_size={layer.input_size})"
    if isinstance(layer, nn.BatchNorm1d):
        return shape(BATCH, layer.num_features), f"{where} = BatchNorm1d({layer.num_features})"
    if isinstance(layer, nn.BatchNorm2d):
        return shape(BATCH, layer.num_features, 8, 8), f"{where} = BatchNorm2d({layer.num_features})"
    if isinstance(layer, nn.LayerNorm):
        return shape(BATCH, *layer.normalized_shape), f"{where} = LayerNorm({tuple(layer.normalized_shape)})"
    if isinstance(layer, (nn.TransformerEncoderLayer, nn.MultiheadAttention)):
        attention = layer if isinstance(layer, nn.MultiheadAttention) else layer.self_attn
        d = attention.embed_dim
        dims = (BATCH, 8, d) if attention.batch_first else (8, BATCH, d)
        return shape(*dims), f"{where} = {name}(embed_dim={d}, batch_first={attention.batch_first})"
    raise CannotBuild(f"its first layer ({where}, a {name}) does not tell the input shape")


def parameter_inputs(model) -> tuple[list[dict], str]:
    """A module without layers: its first parameter's last dimension (`F.linear(x,
    self.weight)` takes `weight.shape[1]` features; a per-feature scale takes `n`)."""
    for pname, param in model.named_parameters():
        if param.dim() == 2:
            return [
                {"kind": "shape", "shape": [BATCH, int(param.shape[1])]}
            ], f"self.{pname} of shape {tuple(param.shape)}"
        if param.dim() == 1 and param.numel() > 1:
            return [
                {"kind": "shape", "shape": [BATCH, int(param.shape[0])]}
            ], f"self.{pname} of shape {tuple(param.shape)}"
    raise CannotBuild("it has no layers or parameters to infer the input from")


def spec_text(specs: list[dict]) -> str:
    parts = []
    for spec in specs:
        if spec["kind"] == "shape":
            parts.append(str(tuple(spec["shape"])))
        elif spec["kind"] == "long":
            dims = ", ".join(str(d) for d in spec["shape"])
            parts.append(f"long({dims}, high={spec.get('high', 10)})")
        elif spec["kind"] == "expr":
            parts.append(spec["expr"])
        else:
            parts.append(repr(spec.get("value")))
    return parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"


# -- gradient flow tracing -------------------------------------------------------------------------
_STOP_PRIORITY = {"detach": 0, "detach_": 0, "data": 0, "item": 1, "tolist": 1, "numpy": 1, "no_grad": 0}


def make_flow_mode(torch, params: dict[int, str]):
    from torch.overrides import TorchFunctionMode
    from torch.utils._pytree import tree_leaves

    class FlowMode(TorchFunctionMode):
        """Follows which parameters each tensor depends on, and records where a
        dependence is cut (an op whose inputs depend on parameters but whose outputs
        do not require grad)."""

        def __init__(self) -> None:
            super().__init__()
            self.deps: dict[int, frozenset] = {}
            self.keep: list = []
            self.used: set[str] = set()
            self.stops: list[dict] = []

        def _deps_of(self, value) -> frozenset:
            found: set[str] = set()
            for leaf in tree_leaves(value):
                if isinstance(leaf, torch.Tensor):
                    name = params.get(id(leaf))
                    if name is not None:
                        found.add(name)
                    found |= self.deps.get(id(leaf), frozenset())
            return frozenset(found)

        def __torch_function__(self, func, types_, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            try:
                inputs = self._deps_of((args, kwargs))
                if inputs:
                    self.used |= inputs
                    outs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
                    flowing = [t for t in outs if t.requires_grad]
                    for t in flowing:
                        self.deps[id(t)] = self.deps.get(id(t), frozenset()) | inputs
                        self.keep.append(t)
                    if not flowing:
                        name = getattr(func, "__name__", str(func))
                        if name == "__get__":
                            name = getattr(getattr(func, "__self__", None), "__name__", "attribute")
                        if not torch.is_grad_enabled():
                            name = "no_grad"
                        frame = current_user_frame()
                        if frame is not None:
                            self.stops.append({"op": name, "params": sorted(inputs), **frame})
            except Exception:
                pass
            return out

    return FlowMode()


# -- modules -----------------------------------------------------------------------------------------
def output_tensors(value, torch) -> list:
    from torch.utils._pytree import tree_leaves

    found = []
    seen = set()

    def visit(obj, depth=0):
        if depth > 6 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.append(obj)
        elif isinstance(obj, (list, tuple, dict)):
            for leaf in tree_leaves(obj):
                if isinstance(leaf, torch.Tensor):
                    found.append(leaf)
                elif leaf is not obj:
                    visit(leaf, depth + 1)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            for item in vars(obj).values():
                visit(item, depth + 1)

    visit(value)
    return found


def reduce_to_loss(out, torch, seed: int):
    """A scalar from every floating output, weighted by fixed random numbers so that
    outputs whose plain sum is constant (softmax, normalisation) still carry gradient."""
    generator = torch.Generator().manual_seed(1000 + seed)
    total = None
    any_tensor = False
    for tensor in output_tensors(out, torch):
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        any_tensor = True
        if not tensor.requires_grad:
            continue
        value = tensor.real if tensor.is_complex() else tensor
        weights = torch.randn(value.shape, generator=generator, dtype=value.dtype).to(value.device)
        term = (value * weights).sum()
        total = term if total is None else total + term
    return total, any_tensor


def param_owners(model, name: str) -> list[list]:
    owners = []
    obj = model
    parts = name.split(".")
    for part in parts:
        cls = type(obj)
        owners.append([cls.__name__, cls.__module__ == USER_MODULE, part])
        nxt = getattr(obj, "_modules", {}).get(part)
        if nxt is None:
            break
        obj = nxt
    return owners


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return "can't allocate memory" in text or "cannot allocate memory" in text or "out of memory" in text


class MetaUnavailable(Exception):
    """The target cannot run on the meta device (not a fault of the model)."""


_META_LIMIT_WORDS = (
    "meta",
    "device",
    "data-dependent",
    "data dependent",
    "unbacked",
    "symbolic",
    "guard",
    "no data",
    "fake impl",
    "not implemented",
    "numpy",
)
_SHAPE_WORDS = (
    "shape",
    "size",
    "dimension",
    "mat1",
    "mat2",
    "reduction dim",
    "channels",
    "expected input",
    "must match",
    "dim ",
    "invalid gradient",
)


def meta_limitation(exc: BaseException) -> bool:
    """What the meta device cannot do (`.item()`, numpy, ops without a meta kernel,
    data-dependent shapes, tensors made on another device): not the model's fault."""
    if isinstance(exc, (NotImplementedError, ProbeExit, SystemExit)):
        return True
    text = str(exc).lower()
    return any(word in text for word in _META_LIMIT_WORDS)


def meta_shape_error(exc: BaseException) -> bool:
    """True only for an error the meta device found in the model itself: a shape error
    raised by a meta kernel, located in the user's file. Anything else is not a finding
    of the meta pass: the CPU pass decides."""
    if not isinstance(exc, (RuntimeError, ValueError, IndexError)) or meta_limitation(exc):
        return False
    text = str(exc).lower()
    if "modified by an inplace operation" in text:
        return False  # the CPU pass re-runs it under detect_anomaly to find the forward op
    return any(word in text for word in _SHAPE_WORDS) and bool(user_frames_of_traceback(exc.__traceback__))


def _address_space_in_use() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 600 * 2**20  # about what importing torch takes


_SYMBOLIC = "torch.fx.experimental.symbolic_shapes"
_DYNAMO = "torch._dynamo"
_SYMPY = "sympy"


class LightMetaImports:
    """Keep the meta pass from importing sympy and torch._dynamo (about 1.2 s of CPU).

    On the meta device many ops run PyTorch's Python meta kernels and decompositions.
    They import `torch.fx.experimental.symbolic_shapes` (and with it sympy) only to
    handle symbolic sizes, and wrap themselves in `torch._disable_dynamo`, which imports
    torch._dynamo on first call only to say "do not compile this". The meta pass has no
    symbolic sizes and compiles nothing, so while it runs (and only if the user's code
    has not imported them itself) stand-ins answer instead:
    * sympy: only its `Basic` class, for the `isinstance(x, sympy.Basic)` of type
      promotion: before sympy is imported no sympy object exists, so that is False for
      every value either way; any other name loads the real sympy;
    * symbolic_shapes: the helpers those kernels use, for plain ints and bools exactly
      as PyTorch defines them; anything else (a SymInt, another name) loads the real module;
    * torch._dynamo: `disable(fn, recursive, wrapping=False)` returns fn itself (outside
      torch.compile the real one only calls fn); anything else loads the real module.
    On exit both are removed and the functions that cached the stand-in's `disable` forget
    it, so later code (the CPU pass, or torch.compile in the user's code) gets the real ones.
    """

    def __init__(self, torch) -> None:
        self.torch = torch
        self.stubs: dict[str, types.ModuleType] = {}
        self.disabled: list = []

    def __enter__(self):
        if _SYMPY not in sys.modules:
            self.stubs[_SYMPY] = sys.modules[_SYMPY] = self._sympy_stub()
        if _SYMBOLIC not in sys.modules:
            self.stubs[_SYMBOLIC] = sys.modules[_SYMBOLIC] = self._symbolic_stub()
        if _DYNAMO not in sys.modules and "_dynamo" not in vars(self.torch):
            stub = self._dynamo_stub()
            self.stubs[_DYNAMO] = sys.modules[_DYNAMO] = stub
            self.torch._dynamo = stub
        return self

    def __exit__(self, *exc_info) -> None:
        self._drop(_SYMPY)
        self._drop(_SYMBOLIC)
        self._drop(_DYNAMO)
        for fn in self.disabled:
            if getattr(fn, "__dict__", {}).get("__dynamo_disable") is fn:
                del fn.__dict__["__dynamo_disable"]
        self.disabled.clear()

    def _drop(self, name: str) -> None:
        stub = self.stubs.pop(name, None)
        if stub is None:
            return
        if sys.modules.get(name) is stub:
            del sys.modules[name]
        if name == _DYNAMO and vars(self.torch).get("_dynamo") is stub:
            delattr(self.torch, "_dynamo")

    def _real(self, name: str):
        import importlib

        stub = self.stubs.get(name)
        self._drop(name)
        real = importlib.import_module(name)
        if stub is not None:
            # code that already holds the stand-in (`import sympy` earlier in a function)
            # sees the real module's names from now on
            stub.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})
        return real

    def _sympy_stub(self) -> types.ModuleType:
        stub = types.ModuleType(_SYMPY)
        # nothing is an instance: no sympy object exists yet
        vars(stub)["Basic"] = type("Basic", (), {})

        def __getattr__(name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            return getattr(self._real(_SYMPY), name)

        vars(stub)["__getattr__"] = __getattr__
        return stub

    def _symbolic_stub(self) -> types.ModuleType:
        stub = types.ModuleType(_SYMBOLIC)

        def plain(value) -> bool:
            if type(value) in (bool, int):
                return True
            return isinstance(value, (list, tuple)) and all(plain(v) for v in value)

        def fast(name: str, fn, bools_only: bool = False):
            def helper(*args, **kwargs):
                if (
                    not kwargs
                    and args
                    and all(plain(a) for a in args)
                    and (not bools_only or all(type(a) is bool for a in args))
                ):
                    return fn(*args)
                return getattr(self._real(_SYMBOLIC), name)(*args, **kwargs)

            helper.__name__ = name
            return helper

        torch = self.torch

        def free_unbacked_symbols(x):
            if isinstance(x, torch.Tensor) and all(
                plain(v) for v in (tuple(x.shape), tuple(x.stride()), x.storage_offset())
            ):
                return set()  # concrete sizes and strides: no symbols at all
            return self._real(_SYMBOLIC).free_unbacked_symbols(x)

        vars(stub)["free_unbacked_symbols"] = free_unbacked_symbols

        def sym_eq(x, y):
            if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
                return len(x) == len(y) and all(sym_eq(a, b) for a, b in zip(x, y, strict=True))
            return x == y

        for name, fn, bools_only in (
            ("expect_true", lambda a: a, True),
            ("guard_or_false", lambda a: a, True),
            ("guard_or_true", lambda a: a, True),
            ("statically_known_true", lambda a: a, True),
            ("guard_bool", lambda a: a, True),
            ("guard_size_oblivious", lambda a: a, True),
            ("sym_and", lambda x, *others: all((x, *others)), True),
            ("sym_or", lambda x, *others: any((x, *others)), True),
            ("sym_eq", sym_eq, False),
            ("is_nested_int", lambda a: False, False),
            ("has_guarding_hint", lambda a: True, False),
            ("guarding_hint_or_throw", lambda a: a, False),
        ):
            setattr(stub, name, fast(name, fn, bools_only))

        def __getattr__(name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            return getattr(self._real(_SYMBOLIC), name)

        vars(stub)["__getattr__"] = __getattr__
        return stub

    def _dynamo_stub(self) -> types.ModuleType:
        stub = types.ModuleType(_DYNAMO)

        def disable(fn=None, recursive=True, *args, wrapping=True, **kwargs):
            if callable(fn) and recursive in (True, False) and not args and not kwargs and wrapping is False:
                self.disabled.append(fn)  # torch._disable_dynamo caches this on fn: forgotten on exit
                return fn
            return self._real(_DYNAMO).disable(fn, recursive, *args, wrapping=wrapping, **kwargs)

        def __getattr__(name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            return getattr(self._real(_DYNAMO), name)

        vars(stub).update(disable=disable, __getattr__=__getattr__)
        return stub


def _meta_inputs(specs: list[dict], namespace: dict, torch) -> list:
    from torch.utils._pytree import tree_map

    def to_meta(value):
        return value.to("meta") if isinstance(value, torch.Tensor) else value

    inputs = []
    for spec in specs:
        if spec["kind"] == "shape":
            inputs.append(torch.empty(*spec["shape"], dtype=torch.float32, device="meta"))
        elif spec["kind"] == "long":
            inputs.append(torch.empty(*spec["shape"], dtype=torch.long, device="meta"))
        else:
            # a written expression (`torch.randn(4, 20)`): built as the CPU pass builds it, then moved
            inputs.append(tree_map(to_meta, build_spec(spec, namespace, torch, torch.float32)))
    return inputs


class ShapeTracer:
    """While the meta forward runs: the shape of every tensor a line of the user's file binds to a
    local name, as [line, name, dims or None (several shapes), dtype] rows for the editor's inlay
    hints. `sys.settrace` on the user's frames only; the previous tracer is restored on exit."""

    MAX_ROWS = 5000

    def __init__(self, torch, path: str) -> None:
        self.torch = torch
        self.path = path
        self.seen: dict[tuple[int, str], list] = {}
        self.frames: dict[int, tuple[int, dict[str, int]]] = {}
        self.previous: Callable[..., Any] | None = None  # the trace function it replaced

    def __enter__(self) -> ShapeTracer:
        self.previous = sys.gettrace()
        if self.path:
            sys.settrace(self._global)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self.previous)
        self.frames.clear()

    def _global(self, frame, event, arg):
        if frame.f_code.co_filename != self.path:
            return None
        return self._local

    def _local(self, frame, event, arg):
        if event not in ("line", "return"):
            return self._local
        key = id(frame)
        current = frame.f_locals
        before = self.frames.get(key)
        if before is not None:
            line, ids = before
            tensor = self.torch.Tensor
            for name, value in current.items():
                if (
                    isinstance(value, tensor)
                    and ids.get(name) != id(value)
                    and len(self.seen) < self.MAX_ROWS
                ):
                    shape = [int(d) for d in value.shape]
                    shapes = self.seen.setdefault((line, name), [])
                    entry = (shape, str(value.dtype).replace("torch.", ""))
                    if entry not in shapes:
                        shapes.append(entry)
        if event == "line":
            self.frames[key] = (frame.f_lineno, {n: id(v) for n, v in current.items()})
        else:
            self.frames.pop(key, None)
        return self._local

    def table(self) -> list[list]:
        rows = []
        for (line, name), shapes in sorted(self.seen.items()):
            dims = shapes[0][0] if len({tuple(s) for s, _ in shapes}) == 1 else None
            dtypes = {d for _, d in shapes}
            rows.append([line, name, dims, dtypes.pop() if len(dtypes) == 1 else None])
        return rows


def meta_pass(construct, target: dict, namespace: dict, torch, info: dict, set_stage) -> dict:
    with LightMetaImports(torch):
        return _meta_pass(construct, target, namespace, torch, info, set_stage)


def _meta_pass(construct, target: dict, namespace: dict, torch, info: dict, set_stage) -> dict:
    """Construct the target on the meta device and run forward and backward there: no
    memory, no arithmetic, only shapes. Returns what the real pass needs to know:
        {"param_bytes": n, "specs": [...], "inferred": bool, "why": str, "backward": bool}
    Raises MetaUnavailable when the model cannot run on meta (the caller then runs the
    CPU pass as if this pass had not happened); lets a shape error found on meta
    propagate (tagged `_gradguard_meta_stage`); raises CannotBuild when the model is too
    big for the memory limit or no inferred input fits."""
    set_stage("construct (meta)")
    model, result = _meta_construct(construct, target, torch, info)
    set_stage("input (meta)")
    specs, inferred, why = _meta_input_guess(model, target, torch)
    out, specs = _meta_forward(model, specs, inferred, why, target, namespace, torch, info, set_stage)
    result.update({"specs": specs, "inferred": inferred, "why": why})
    set_stage("backward (meta)")
    result["backward"] = _meta_backward(out, torch)
    return result


def _meta_construct(construct, target: dict, torch, info: dict) -> tuple:
    """The model built on the meta device and the bytes its tensors take (MetaUnavailable when it
    cannot be built there, CannotBuild when it is too big for the memory limit)."""
    try:
        with torch.device("meta"):
            model = construct()
    except (Exception, ProbeExit, SystemExit) as exc:
        raise MetaUnavailable(f"construct: {type(exc).__name__}") from None
    if not isinstance(model, torch.nn.Module):
        raise MetaUnavailable("not a module")
    tensors = list(model.parameters()) + list(model.buffers())
    if any(not t.is_meta for t in tensors):
        raise MetaUnavailable("tensors made outside the meta device")
    size = sum(t.numel() * t.element_size() for t in tensors)
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    result = {"param_bytes": size, "grad_bytes": grads, "backward": False}
    # backward needs the gradients and, while it accumulates them, temporaries of the same size
    if _memory_limit and size + 2 * grads > _memory_limit - _address_space_in_use():
        info["param_bytes"] = size
        name = target["name"]
        raise CannotBuild(
            f"`{info.get('ctor', name)}` needs {size / 2**30:.1f} GB for its parameters and buffers (measured "
            f"on the meta device) and about {2 * grads / 2**30:.1f} GB more in backward (their gradients and "
            f"temporaries of the same size), more than the probe's memory limit ({_memory_limit // 2**20} MB) "
            f"allows; probe a smaller configuration with a `# gradguard: probe {name}(...)` comment or raise "
            f"--memory-mb"
        )
    model.train()
    return model, result


def _meta_input_guess(model, target: dict, torch) -> tuple[list[dict], bool, str]:
    """(specs, inferred, why): the target's input, else one inferred from the model's first layer."""
    specs = target.get("inputs")
    if specs is not None:
        return specs, False, ""
    if target.get("input_need"):
        raise MetaUnavailable("input")  # the CPU pass says what it needs
    try:
        specs, why = first_layer_inputs(model, target.get("first_layer"), torch)
    except CannotBuild:
        raise MetaUnavailable("input") from None
    return specs, True, why


def _sequence_guess(specs: list[dict]) -> list[dict] | None:
    """A Linear-first model often takes sequences: (batch, features) -> (batch, time, features)."""
    if len(specs) == 1 and specs[0]["kind"] == "shape" and len(specs[0]["shape"]) == 2:
        return [{"kind": "shape", "shape": [BATCH, 8, specs[0]["shape"][1]]}]
    return None


def _meta_forward(model, specs, inferred: bool, why: str, target, namespace, torch, info, set_stage) -> tuple:
    """(output, the specs that fit): forward on meta with the input, or with each inferred guess in
    turn until one fits."""
    candidates = [specs]
    sequence = _sequence_guess(specs) if inferred else None
    if sequence is not None:
        candidates.append(sequence)
    first_error = None
    for attempt in candidates:
        try:
            inputs = _meta_inputs(attempt, namespace, torch)
        except Exception:
            raise MetaUnavailable("input") from None
        info["input"] = spec_text(attempt)
        info["input_origin"] = f"inferred from {why}" if inferred else target.get("input_origin", "")
        set_stage("forward (meta)")
        tracer = ShapeTracer(torch, _user_path)
        try:
            with torch.device("meta"), tracer:
                out = model(*inputs)
        except (Exception, ProbeExit, SystemExit) as exc:
            if (
                inferred
                and not meta_limitation(exc)
                and (looks_like_input_mismatch(exc) or meta_shape_error(exc))
            ):
                first_error = first_error or exc
                continue  # the guess was wrong, not the model: try the next guess
            if meta_shape_error(exc):
                _tag_meta_stage(exc, "forward")
                raise
            raise MetaUnavailable(f"forward: {type(exc).__name__}") from None
        info["shapes"] = tracer.table()
        return out, attempt
    assert first_error is not None  # every guess failed
    info["input"] = spec_text(specs)
    raise CannotBuild(
        f"the input it inferred ({spec_text(specs)}, inferred from {why}) does not fit "
        f"`{target['name']}.forward`{at_line(first_error)} (checked on the meta device): "
        f"{type(first_error).__name__}: {first_line(first_error)}; if the model is right, write the input "
        f"shape in a comment above the class, e.g. "
        f"`# gradguard: probe {info.get('ctor', target['name'] + '()')} input=(4, ...)`"
    )


def _tag_meta_stage(exc: BaseException, stage: str) -> None:
    """Mark a shape error found on the meta device with the stage it came from (probe_module reads it)."""
    vars(exc)["_gradguard_meta_stage"] = stage


def _meta_backward(out, torch) -> bool:
    """Backward on meta from the sum of the float outputs that require grad: whether it ran."""
    loss = None
    for tensor in output_tensors(out, torch):
        if tensor.is_floating_point() and tensor.requires_grad:
            loss = tensor.sum() if loss is None else loss + tensor.sum()
    if loss is None:
        return False
    try:
        with torch.device("meta"):
            loss.backward()
    except (Exception, ProbeExit, SystemExit) as exc:
        if meta_shape_error(exc):
            _tag_meta_stage(exc, "backward")
            raise
        raise MetaUnavailable(f"backward: {type(exc).__name__}") from None
    return True


def probe_module(target: dict, namespace: dict, torch, info: dict) -> dict:
    name = target["name"]
    cls = namespace.get(name)
    if cls is None:
        raise CannotBuild(f"`{name}` is not defined at the top level of the file when it runs")

    def set_stage(value: str) -> None:
        emit({"event": "stage", "target": name, "stage": value})

    candidate, args, kwargs = _choose_constructor(target, namespace)
    info.update({"ctor": candidate["text"], "ctor_origin": candidate["origin"]})

    def construct():
        return cls(*args, **kwargs)

    # -- first pass on the meta device: shapes only, no memory
    try:
        meta = meta_pass(construct, target, namespace, torch, info, set_stage)
        info["meta"] = "forward and backward" if meta["backward"] else "forward"
    except MetaUnavailable as exc:
        meta = None
        info["meta"] = f"unavailable ({exc})"
    except (Exception, ProbeExit, SystemExit) as exc:
        stage_name = getattr(exc, "_gradguard_meta_stage", None)
        if stage_name is None:
            raise
        described = describe_exception(exc)
        described.update({"stage": stage_name, "device": "meta"})
        return {**info, "status": "error", "error": described}

    # -- real pass, on CPU
    set_stage("construct")
    model = _construct_on_cpu(construct, meta, candidate["text"], name, torch, info)
    set_stage("input")
    specs, inferred = _module_inputs(model, target, meta, torch, info)
    info["input"] = spec_text(specs)
    run = _ModuleRun(model, specs, inferred, namespace, torch, info, name, candidate["text"], set_stage)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    _out, loss, any_float = run.first_step()
    set_stage("backward")
    if loss is not None:
        try:
            loss.backward()
        except RuntimeError as exc:
            described = describe_exception(exc)
            if "modified by an inplace operation" in str(exc):
                described["anomaly"] = anomaly_frame(model, run.make_inputs, torch, seed=0)
            described["stage"] = "backward"
            return {**info, "status": "error", "error": described}
    info["output_requires_grad"] = loss is not None
    info["output_has_float"] = any_float
    report = _gradient_report(run, params, info)
    return {**info, "status": "ok", "params": report, "checked": len(params)}


def _choose_constructor(target: dict, namespace: dict) -> tuple[dict, tuple, dict]:
    """(candidate, args, kwargs) of the first constructor call whose arguments evaluate."""
    ctor_error = None
    for candidate in target.get("ctors", []):
        try:
            args, kwargs = eval_args(candidate["args"], namespace)
        except Exception as exc:  # arguments that only exist at run time in the script
            ctor_error = f"`{candidate['text']}` ({candidate['origin']}): {type(exc).__name__}: {exc}"
            continue
        return candidate, args, kwargs
    need = target.get("ctor_need") or "its constructor arguments"
    hint = f"; tried {ctor_error}" if ctor_error else ""
    raise CannotBuild(f"cannot construct `{target['name']}`: the probe needs {need}{hint}")


def _construct_on_cpu(construct, meta: dict | None, ctor: str, name: str, torch, info: dict):
    torch.manual_seed(0)
    try:
        model = construct()
    except Exception as exc:
        if is_out_of_memory(exc) and meta is not None:
            info["param_bytes"] = meta["param_bytes"]
            raise CannotBuild(
                f"`{ctor}` needs {meta['param_bytes'] / 2**30:.1f} GB for its parameters and buffers "
                f"(measured on the meta device), more than the probe's memory limit allows; probe a smaller "
                f"configuration with a `# gradguard: probe {name}(...)` comment or raise --memory-mb"
            ) from None
        raise
    if not isinstance(model, torch.nn.Module):
        raise CannotBuild(f"`{ctor}` did not return an nn.Module")
    model.train()
    return model


def _module_inputs(model, target: dict, meta: dict | None, torch, info: dict) -> tuple[list[dict], bool]:
    """(specs, inferred): the target's input, the meta pass's inferred one, or one inferred here."""
    specs = target.get("inputs")
    inferred = False
    if specs is None and meta is not None and meta["inferred"]:
        # the meta pass already found which guess fits (and which does not)
        specs = meta["specs"]
        inferred = True
        info["input_origin"] = f"inferred from {meta['why']}"
    elif specs is None and target.get("input_need"):
        raise CannotBuild(target["input_need"])
    if specs is None:
        try:
            specs, why = first_layer_inputs(model, target.get("first_layer"), torch)
        except CannotBuild as exc:
            raise CannotBuild(f"cannot tell what input `{target['name']}.forward` takes: {exc}") from None
        inferred = True
        info["input_origin"] = f"inferred from {why}"
    elif not inferred:
        info["input_origin"] = target.get("input_origin", "")
    return specs, inferred


class _ModuleRun:
    """Forward passes of one module on CPU with inputs built from `specs` (seeded)."""

    def __init__(
        self, model, specs, inferred, namespace, torch, info: dict, name: str, ctor: str, set_stage
    ) -> None:
        self.model, self.specs, self.inferred = model, specs, inferred
        self.namespace, self.torch, self.info, self.set_stage = namespace, torch, info, set_stage
        self.name, self.ctor = name, ctor

    def make_inputs(self, seed: int) -> list:
        torch = self.torch
        torch.manual_seed(seed)
        try:
            return [build_spec(spec, self.namespace, torch, torch.float32) for spec in self.specs]
        except Exception as exc:
            raise CannotBuild(
                f"cannot build the input {spec_text(self.specs)}: {type(exc).__name__}: {exc}"
            ) from None

    def run_once(self, seed: int):
        inputs = self.make_inputs(seed)
        self.set_stage("forward")
        try:
            out = self.model(*inputs)
        except Exception as exc:
            if self.inferred and looks_like_input_mismatch(exc):
                info = self.info
                raise CannotBuild(
                    f"the input it inferred ({info['input']}, {info['input_origin']}) does not fit "
                    f"`{self.name}.forward`{at_line(exc)}: {type(exc).__name__}: {first_line(exc)}; if the "
                    f"model is right, write the input shape in a comment above the class, e.g. "
                    f"`# gradguard: probe {self.ctor} input=(4, ...)`"
                ) from None
            raise
        loss, any_float = reduce_to_loss(out, self.torch, seed)
        return out, loss, any_float

    def first_step(self):
        """The first forward; when an inferred (batch, features) input does not fit, once more
        with a sequence (batch, time, features)."""
        try:
            return self.run_once(0)
        except CannotBuild:
            sequence = _sequence_guess(self.specs) if self.inferred else None
            if sequence is None:
                raise
            first_error = sys.exc_info()[1]
            self.specs = sequence
            self.info["input"] = spec_text(sequence)
            try:
                step = self.run_once(0)
            except CannotBuild:
                raise first_error from None
            self.model.zero_grad(set_to_none=True)
            return step


def _gradient_report(run: _ModuleRun, params: list, info: dict) -> list[dict]:
    """The parameters backward left without a gradient or with an all-zero one (confirmed on two
    more inputs), with where the graph stopped for the ones without."""
    model = run.model
    missing = {n for n, p in params if p.grad is None}
    zero = {n for n, p in params if p.grad is not None and not bool(p.grad.ne(0).any())}
    runs = 1
    if zero:
        # all-zero gradients can be an accident of one input (dead ReLUs): confirm twice
        for seed in (1, 2):
            model.zero_grad(set_to_none=True)
            try:
                _, loss2, _ = run.run_once(seed)
                if loss2 is not None:
                    loss2.backward()
            except Exception:  # a second step failing is not what this check is about
                break
            runs += 1
            zero = {n for n in zero if (g := dict(params)[n].grad) is not None and not bool(g.ne(0).any())}
    info["zero_runs"] = runs
    flow = _trace_flow(run, params) if missing else None
    report = []
    for n in sorted(missing | zero, key=lambda n: [p for p, _ in params].index(n)):
        entry = {"name": n, "grad": "none" if n in missing else "zero", "owners": param_owners(model, n)}
        if flow is not None and n in missing:
            entry["used"] = n in flow.used
            stops = [s for s in flow.stops if n in s["params"]]
            stops.sort(key=lambda s: _STOP_PRIORITY.get(s["op"], 5))
            if stops:
                entry["stop"] = {k: v for k, v in stops[0].items() if k != "params"}
        report.append(entry)
    return report


def _trace_flow(run: _ModuleRun, params: list):
    """A forward under the flow mode that records where each parameter's graph stops (None when it fails)."""
    run.set_stage("trace")
    run.model.zero_grad(set_to_none=True)
    mode = make_flow_mode(run.torch, {id(p): n for n, p in params})
    try:
        inputs = run.make_inputs(0)
        with mode:
            run.model(*inputs)
        return mode
    except Exception:
        return None


def anomaly_frame(model, make_inputs, torch, seed: int) -> dict | None:
    """Re-run forward and backward under detect_anomaly: PyTorch then prints where the
    forward op whose saved tensor was modified was called."""
    model.zero_grad(set_to_none=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autograd.detect_anomaly(check_nan=False):
                out = model(*make_inputs(seed))
                loss, _ = reduce_to_loss(out, torch, seed)
                if loss is not None:
                    loss.backward()
        except Exception:
            pass
    return anomaly_from_warnings(caught)


def anomaly_from_warnings(caught) -> dict | None:
    import re

    for warning in caught:
        text = str(warning.message)
        if "Traceback of forward call" not in text:
            continue
        node = re.search(r"Error detected in (\w+)", text)
        frames = re.findall(r'File "(.*?)", line (\d+), in (\S+)\n(.*)', text)
        user = [f for f in frames if f[0] == _user_path]
        if user:
            _path, line, func, code = user[-1]
            return {
                "line": int(line),
                "function": func,
                "code": code.strip(),
                "node": node.group(1) if node else "",
            }
    return None


# -- autograd Functions -------------------------------------------------------------------------------
def probe_function(target: dict, namespace: dict, torch, info: dict) -> dict:
    name = target["name"]
    cls = namespace.get(name)
    if cls is None:
        raise CannotBuild(f"`{name}` is not defined at the top level of the file when it runs")
    emit({"event": "stage", "target": name, "stage": "inputs"})
    inputs, inferred = _function_inputs(target, namespace, torch, info)

    emit({"event": "stage", "target": name, "stage": "forward"})
    try:
        out = cls.apply(*inputs)
    except Exception as exc:
        if inferred and looks_like_input_mismatch(exc):
            raise CannotBuild(
                f"the default inputs ({info['input']}) do not fit `{name}.forward`{at_line(exc)}: "
                f"{type(exc).__name__}: {first_line(exc)}; write the inputs in a comment above the class, e.g. "
                f"`# gradguard: probe input=[(3, 4), (4, 5)]`"
            ) from None
        raise
    outs = [t for t in output_tensors(out, torch) if t.is_floating_point() and t.requires_grad]
    if not outs:
        return {**info, "status": "ok", "note": "no output requires grad"}
    low_precision = sorted({str(t.dtype) for t in outs if t.dtype != torch.float64})

    emit({"event": "stage", "target": name, "stage": "backward"})
    loss, _ = reduce_to_loss(out, torch, 0)
    diff_inputs = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
    try:
        torch.autograd.grad(loss, diff_inputs, allow_unused=True)
    except RuntimeError as exc:
        return _backward_failure(exc, name, inferred, info)

    if low_precision:  # finite differences in float32 are too coarse to judge
        return {
            **info,
            "status": "ok",
            "note": f"forward returns {', '.join(low_precision)} for float64 inputs: gradcheck needs float64",
        }
    emit({"event": "stage", "target": name, "stage": "gradcheck"})
    return _gradcheck(cls, inputs, torch, info)


def _function_inputs(target: dict, namespace: dict, torch, info: dict) -> tuple[list, bool]:
    """(the inputs of `apply`, float64 tensors requiring grad; whether they are the default guess)."""
    specs = target.get("inputs")
    if specs is None:
        raise CannotBuild(
            target.get("input_need") or f"cannot tell what inputs `{target['name']}.forward` takes"
        )
    inferred = target.get("input_origin") == "default"
    torch.manual_seed(0)
    try:
        raw = [build_spec(spec, namespace, torch, torch.float64) for spec in specs]
    except Exception as exc:
        raise CannotBuild(
            f"cannot build the inputs {spec_text(specs)}: {type(exc).__name__}: {exc}"
        ) from None
    inputs = []
    for value in raw:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            value = value.detach().to(torch.float64).requires_grad_(True)
        inputs.append(value)
    info.update({"input": spec_text(specs), "input_origin": target.get("input_origin", "")})
    return inputs, inferred


def _backward_failure(exc: RuntimeError, name: str, inferred: bool, info: dict) -> dict:
    """The result for a backward that raised: a wrong gradient count or shape, else the error
    (CannotBuild when the default inputs, not the Function, are what is wrong)."""
    import re

    text = str(exc)
    count = re.search(r"incorrect number of gradients \(expected (\d+), got (\d+)\)", text)
    if count:
        return {
            **info,
            "status": "grad-count",
            "expected": int(count.group(1)),
            "got": int(count.group(2)),
            "message": text.splitlines()[0],
        }
    shape = re.search(r"invalid gradient at index (\d+)", text)
    if shape and inferred:
        # with guessed inputs a "wrong" shape may be our guess (a scale meant to be a scalar)
        raise CannotBuild(
            f"with the default inputs ({info['input']}) backward returns a gradient of another shape for "
            f"input {shape.group(1)} ({text.splitlines()[0]}); if that input is not meant to have that shape, "
            f"write the inputs in a comment above the class, e.g. `# gradguard: probe input=[(3, 3), (1,)]`"
        ) from None
    if shape:
        return {
            **info,
            "status": "grad-shape",
            "index": int(shape.group(1)),
            "message": text.splitlines()[0],
        }
    if inferred and looks_like_input_mismatch(exc):
        raise CannotBuild(
            f"the default inputs ({info['input']}) do not fit `{name}.backward`{at_line(exc)}: "
            f"{type(exc).__name__}: {first_line(exc)}; write the inputs in a comment above the class, e.g. "
            f"`# gradguard: probe input=[(3, 4), (4, 5)]`"
        ) from None
    described = describe_exception(exc)
    described["stage"] = "backward"
    return {**info, "status": "error", "error": described}


def _gradcheck(cls, inputs: list, torch, info: dict) -> dict:
    """gradcheck of `cls.apply`; on a mismatch, the worst Jacobian errors, unless forward is flat
    (a straight-through estimator) or the identity (backward rescales on purpose)."""
    from torch.autograd.gradcheck import GradcheckError

    try:
        ok = torch.autograd.gradcheck(
            cls.apply, tuple(inputs), eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True
        )
    except GradcheckError as exc:
        ok = False
        message = str(exc).splitlines()[0] if str(exc) else "gradcheck failed"
    if ok:
        return {**info, "status": "ok"}
    worst = jacobian_errors(cls.apply, inputs, torch)
    if worst is None:
        return {**info, "status": "mismatch", "message": message}
    if worst.get("piecewise_constant"):
        # forward is flat almost everywhere (round/sign/quantize): the custom backward is a
        # deliberate surrogate (straight-through estimator); gradcheck does not apply
        return {**info, "status": "ok", "note": "straight-through estimator: forward is piecewise constant"}
    if worst.get("identity_forward"):
        return {
            **info,
            "status": "ok",
            "note": "forward is the identity, backward rescales the gradient on purpose",
        }
    return {**info, "status": "mismatch", "message": message, **worst}


def jacobian_errors(fn, inputs, torch, eps: float = 1e-6) -> dict | None:
    """Largest |analytical - numerical| per differentiable input."""
    from torch.utils._pytree import tree_leaves

    def flat_out(args):
        with torch.no_grad():
            out = fn(*args)
        return torch.cat(
            [
                t.reshape(-1).to(torch.float64)
                for t in tree_leaves(out)
                if isinstance(t, torch.Tensor) and t.is_floating_point()
            ]
        )

    index_of = [i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor) and x.requires_grad]
    out = fn(*inputs)
    outs = [
        t
        for t in tree_leaves(out)
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad
    ]
    if not outs:
        return None
    flat = torch.cat([t.reshape(-1) for t in outs])
    diff_inputs = [inputs[i] for i in index_of]
    analytical = [torch.zeros(flat.numel(), x.numel(), dtype=torch.float64) for x in diff_inputs]
    for k in range(flat.numel()):
        grads = torch.autograd.grad(flat[k], diff_inputs, retain_graph=True, allow_unused=True)
        for j, g in enumerate(grads):
            if g is not None:
                analytical[j][k] = g.reshape(-1).to(torch.float64)
    results = []
    all_flat = True
    for j, i in enumerate(index_of):
        x = inputs[i]
        numerical = torch.zeros_like(analytical[j])
        base = x.detach().clone()
        for e in range(x.numel()):
            plus = base.clone().reshape(-1)
            plus[e] += eps
            minus = base.clone().reshape(-1)
            minus[e] -= eps
            args_p = list(inputs)
            args_m = list(inputs)
            args_p[i] = plus.reshape(x.shape)
            args_m[i] = minus.reshape(x.shape)
            numerical[:, e] = (flat_out(args_p) - flat_out(args_m)) / (2 * eps)
        if bool(numerical.abs().max() > 0):
            all_flat = False
        error = (analytical[j] - numerical).abs()
        identity = numerical.shape[0] == numerical.shape[1] and bool(
            torch.allclose(numerical, torch.eye(numerical.shape[0], dtype=numerical.dtype), atol=1e-4)
        )
        results.append((float(error.max()), i, identity))
    if all_flat and any(err > 0 for err, _, _ in results):
        return {"piecewise_constant": True}
    wrong = [r for r in results if r[0] > 1e-5 + 1e-3]
    if wrong and all(identity for _, _, identity in wrong):
        # forward passes the input through unchanged, backward changes the gradient: a
        # gradient reversal/scaling layer, deliberately not the derivative
        return {"identity_forward": True}
    err, index, _ = max(results)
    return {"input_index": index, "max_abs_error": err}


# -- main ---------------------------------------------------------------------------------------------------
def run_target(target: dict, namespace: dict, torch) -> dict:
    start = time.perf_counter()
    info: dict = {}  # what was built so far (constructor, input): shown with errors too
    try:
        if target["kind"] == "module":
            result = probe_module(target, namespace, torch, info)
        else:
            result = probe_function(target, namespace, torch, info)
    except CannotBuild as exc:
        result = {**info, "status": "cannot-build", "message": str(exc)}
    except (Exception, ProbeExit, SystemExit) as exc:
        result = {**info, "status": "error", "error": describe_exception(exc)}
    result.update(
        {
            "event": "result",
            "target": target["name"],
            "kind": target["kind"],
            "seconds": round(time.perf_counter() - start, 3),
        }
    )
    return result


def main(argv: list[str]) -> int:
    global emit, _user_path
    plan_path, events_fd, nonce_fd = argv[0], int(argv[1]), int(argv[2])
    memory_mb, timeout = int(argv[3]), float(argv[4])
    key = os.read(nonce_fd, 256).strip()
    os.close(nonce_fd)
    os.set_inheritable(events_fd, False)  # the user's subprocesses do not get the pipe
    emit = _emitter(events_fd, key)
    del key
    with open(plan_path, encoding="utf-8") as handle:
        plan = json.load(handle)
    # our directory must not shadow the user's imports; the user's file's directory should work
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    _user_path = plan["path"]
    sys.path.insert(0, os.path.dirname(os.path.abspath(_user_path)))
    stack_file = open(plan["stack_file"], "w")  # noqa: SIM115 - kept open for faulthandler
    faulthandler.register(signal.SIGUSR1, file=stack_file, all_threads=False)
    set_limits(memory_mb, timeout)
    os._exit = _fake_os_exit  # the user's code cannot end the probe silently
    emit({"event": "stage", "target": "", "stage": "import torch"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import torch
        except ImportError as exc:
            emit({"event": "no-torch", "python": sys.executable, "message": f"{type(exc).__name__}: {exc}"})
            emit({"event": "done"})
            return 0
    torch.set_num_threads(1)
    if timeout > 0:
        signal.alarm(int(timeout) + 15)  # backstop if the parent dies without killing us
    emit({"event": "stage", "target": "", "stage": "load"})
    try:
        module = load_user_module(plan["source"], _user_path)
    except (Exception, ProbeExit, SystemExit) as exc:
        emit({"event": "load-error", "error": describe_exception(exc)})
        emit({"event": "done"})
        return 0
    for target in plan["targets"]:
        emit({"event": "stage", "target": target["name"], "stage": "start"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            emit(run_target(target, module.__dict__, torch))
    emit({"event": "done"})
    return 0


if __name__ == "__main__":
    code = 1
    try:
        code = main(sys.argv[1:])
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            _real_exit(code)  # skip interpreter teardown (and the user's atexit handlers)
