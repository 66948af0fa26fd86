"""`gradguard.engine.torch_facts`: generated torch facts, checked against torch itself.

* the committed data is what the generator gives with the installed torch (staleness);
* the facts the rules rely on most are pinned with real torch calls;
* the query module never imports torch (the language server imports it at start).
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import typing
import warnings
from pathlib import Path

import pytest
from gradguard.engine import torch_facts as tf
from gradguard.engine import torch_facts_data as data

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "scripts" / "generate_torch_facts.py"
DATA = ROOT / "server" / "gradguard" / "engine" / "torch_facts_data.py"
INPLACE_ERROR = "modified by an inplace operation"


# -- the data itself (no torch) ----------------------------------------------------------------------


def test_every_op_record_decodes_to_known_words():
    grads = {None, "yes", "zero", "none", "error", "depends"}
    views = {None, "always", "maybe", "never"}
    for name in sorted(data.OPS):
        facts = tf.function(name) if "." in name else tf.op(name)
        assert facts is not None, name
        assert facts.grad in grads, (name, facts.grad)
        assert facts.view in views, (name, facts.view)
        for position, triggers in facts.saves_inputs + facts.saves_outputs:
            assert isinstance(position, (int, str)), name
            assert triggers in (tf.ALWAYS, tf.DEPENDS) or isinstance(triggers, tuple), name
        if facts.inplace:
            assert tf.is_tensor_method(facts.inplace) or facts.inplace in data.OPERATOR_METHODS.split(), name
        if facts.out_of_place:
            assert tf.op(facts.out_of_place) is not None, name


def test_function_table_points_at_records():
    for prefix in tf.function_namespaces():
        for name in tf.functions(prefix):
            facts = tf.function(f"{prefix}.{name}")
            assert facts is not None and tf.is_function(f"{prefix}.{name}")
            if facts.known:
                assert facts.canonical, name
    assert tf.function("torch.nn.functional.Optional") is None  # typing.Optional, not torch's


def test_layers_decode():
    for name in tf.layers():
        facts = tf.layer(name)
        assert facts.name == f"torch.nn.{name}" and facts.file
        assert tf.layer(f"torch.nn.modules.{facts.file}.{name}") is facts
        if facts.parameters is not None:
            assert facts.parameter_count >= len(facts.parameters)
    assert tf.layer("torch.nn.modules.conv.Linear") is None  # Linear is defined in linear.py


def test_facts_are_frozen_and_slotted():
    facts = tf.op("sigmoid")
    assert not hasattr(facts, "__dict__")
    with pytest.raises(AttributeError):
        facts.grad = "none"  # type: ignore[misc]
    assert tf.op("sigmoid") is facts  # cached


def test_unknown_names():
    assert tf.op("not_a_tensor_method") is None
    assert tf.function("torch.not_a_function") is None
    assert tf.function("os.path.join") is None
    assert tf.layer("torch.nn.NotALayer") is None
    assert tf.canonical_dtype("torch.not_a_dtype") is None
    assert tf.factory("torch.sigmoid") is None


def test_aliases_resolve_to_one_op():
    assert tf.function("torch.special.expit").canonical == "sigmoid"
    assert tf.function("torch.nn.functional.sigmoid").canonical == "sigmoid"
    assert tf.op("clip").canonical == "clamp"
    assert tf.op("swapaxes").canonical == "transpose"
    assert tf.function("torch.Tensor.add") is tf.op("add")
    assert tf.canonical_class("torch.nn.modules.linear.Linear") == "torch.nn.Linear"
    assert tf.canonical_class("torch.nn.modules.Conv2d") == "torch.nn.Conv2d"
    assert tf.canonical_class("torch.optim.adam.Adam") == "torch.optim.Adam"
    assert tf.canonical_class("torch.autograd.grad_mode.no_grad") == "torch.no_grad"
    assert tf.canonical_class("mypackage.Linear") == "mypackage.Linear"
    assert tf.grad_mode("torch.autograd.no_grad").name == "torch.no_grad"


# -- the server-side module imports no torch -----------------------------------------------------------


def test_query_module_imports_only_the_standard_library():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from gradguard.engine import torch_facts as tf\n"
        "tf.op('sigmoid'); tf.function('torch.nn.functional.gelu'); tf.layer('Linear')\n"
        "tf.graph_cutting_methods(); tf.promote('float32', 'float64'); tf.factory('torch.tensor')\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names)))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "server"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "['gradguard']", out.stdout + out.stderr


# -- pinned with torch ---------------------------------------------------------------------------------

torch_only = pytest.mark.torch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@torch_only
def test_data_is_fresh(tmp_path):
    """Regenerate with the installed torch and compare with the committed module."""
    pytest.importorskip("torch")
    pytest.importorskip("numpy")
    fresh = tmp_path / "torch_facts_data.py"
    run = subprocess.run(
        [sys.executable, str(GENERATOR), "-o", str(fresh)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    committed, regenerated = DATA.read_text(encoding="utf-8"), fresh.read_text(encoding="utf-8")
    if committed != regenerated:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(True), regenerated.splitlines(True), "committed", "regenerated", n=0
                )
            )[:40]
        )
        pytest.fail(f"torch_facts_data.py is stale: run scripts/generate_torch_facts.py\n{diff}")


def _same(y):
    return y, y


def _backward_raises(torch, make):
    """Build a graph with `make(x)` -> (output, tensor to write into), write into it in place,
    then run backward: the error text, or None."""
    torch.manual_seed(0)
    x = torch.randn(3, 4, requires_grad=True)
    out, target = make(x)
    with torch.no_grad():
        target.mul_(1.5)
    try:
        out.sum().backward()
    except RuntimeError as error:
        return str(error)
    return None


OUTPUT_SAVING = [
    "torch.sigmoid",
    "torch.tanh",
    "torch.exp",
    "torch.exp2",
    "torch.expm1",
    "torch.sqrt",
    "torch.rsqrt",
    "torch.reciprocal",
    "torch.relu",
    "torch.nn.functional.relu",
]
INPUT_SAVING = [
    "torch.nn.functional.gelu",
    "torch.nn.functional.silu",
    "torch.nn.functional.elu",
    "torch.nn.functional.leaky_relu",
    "torch.sin",
    "torch.log",
    "torch.abs",
]


def _call(torch, qualname, x):
    module, _, name = qualname.rpartition(".")
    fn = getattr(torch.nn.functional if module == "torch.nn.functional" else torch, name)
    return fn(x.abs() + 0.5)  # positive inputs keep sqrt/log/rsqrt finite


@torch_only
@pytest.mark.parametrize("qualname", OUTPUT_SAVING)
def test_output_saving_ops(torch, qualname):
    assert tf.function(qualname).saves_result is True
    error = _backward_raises(torch, lambda x: _same(_call(torch, qualname, x)))
    assert error is not None and INPLACE_ERROR in error


@torch_only
@pytest.mark.parametrize("qualname", INPUT_SAVING)
def test_input_saving_ops_do_not_save_their_output(torch, qualname):
    facts = tf.function(qualname)
    assert facts.saves_result is False
    assert facts.saves_input(0) is True
    assert _backward_raises(torch, lambda x: _same(_call(torch, qualname, x))) is None

    def into_input(x):
        h = x * 1
        return _call(torch, qualname, h), h

    # ... but writing into their input does break backward
    error = _backward_raises(torch, into_input)
    assert error is not None and INPLACE_ERROR in error


@torch_only
def test_softmax_saves_its_output(torch):
    assert tf.function("torch.softmax").saves_result is True
    assert tf.function("torch.nn.functional.softmax").saves_result is True

    def weighted(x):
        y = torch.softmax(x, -1)
        return y * torch.randn(3, 4), y

    error = _backward_raises(torch, weighted)
    assert error is not None and INPLACE_ERROR in error


@torch_only
def test_pow_saves_its_output_only_for_a_tensor_exponent(torch):
    assert tf.op("pow").saves_result is None and tf.op("__pow__").saves_result is None
    assert _backward_raises(torch, lambda x: _same(x**2)) is None
    error = _backward_raises(torch, lambda x: _same(x.abs().pow(torch.rand(3, 4, requires_grad=True))))
    assert error is not None and INPLACE_ERROR in error


@torch_only
def test_mul_saves_an_input_only_when_the_other_requires_grad(torch):
    mul = tf.op("mul")
    assert mul.saves_input(0, requires_grad={0, 1}) is True
    assert mul.saves_input(0, requires_grad={1}) is True
    assert mul.saves_input(0, requires_grad={0}) is False
    assert mul.saves_input(0) is None  # unknown without knowing who requires grad
    assert tf.operator("Mult")[0] == "__mul__" and tf.op("__mul__").saves_inputs == mul.saves_inputs

    def graph(w_requires_grad):
        x = torch.randn(3, requires_grad=True) * 1  # a non-leaf, so it can be written in place
        w = torch.randn(3, requires_grad=w_requires_grad)
        out = x * w
        with torch.no_grad():
            x.add_(1)
        try:
            out.sum().backward()
        except RuntimeError as error:
            return str(error)
        return None

    assert INPLACE_ERROR in (graph(True) or "")
    assert graph(False) is None


@torch_only
def test_argmax_has_no_gradient(torch):
    facts = tf.op("argmax")
    assert facts.grad == "none" and facts.differentiable is False and facts.integer_output is True
    x = torch.randn(4, 3, requires_grad=True)
    assert not x.argmax(1).requires_grad
    assert "argmax" in tf.integer_output_methods() and "eq" in tf.integer_output_methods()
    assert "sigmoid" not in tf.integer_output_methods()


@torch_only
@pytest.mark.parametrize("name", ["round", "floor", "ceil", "sign", "trunc"])
def test_piecewise_constant_ops_have_zero_gradient(torch, name):
    facts = tf.op(name)
    assert facts.zero_grad is True and facts.differentiable is True
    assert name in tf.zero_grad_methods()
    x = torch.randn(5, requires_grad=True)
    getattr(x * 3, name)().sum().backward()
    assert torch.count_nonzero(x.grad) == 0


@torch_only
def test_reshape_may_return_a_view(torch):
    assert tf.op("reshape").view == "maybe"
    assert tf.op("view").view == "always"
    assert tf.op("clone").view == "never"
    x = torch.randn(3, 4)
    assert x.reshape(12)._base is x
    assert x.t().reshape(12)._base is None


@torch_only
def test_graph_cuts(torch):
    cutting = tf.graph_cutting_methods()
    assert {"detach", "detach_", "item", "tolist", "numpy"} <= cutting
    assert "requires_grad_" not in cutting and tf.cuts_graph("requires_grad_") is False
    assert tf.cuts_graph("data") is True and tf.tensor_attribute("data").cuts_graph is True
    assert tf.op("numpy").raises_if_requires_grad
    y = torch.randn(1, requires_grad=True) * 2
    assert not y.detach().requires_grad and not y.data.requires_grad
    assert isinstance(y.item(), float) and isinstance(y.tolist(), list)
    with pytest.raises(RuntimeError, match="requires grad"):
        y.numpy()
    assert y.requires_grad_() is y and y.grad_fn is not None
    # float(x), int(x), bool(x) call the conversion methods: numbers without history
    assert all(tf.cuts_graph(n) for n in ("__float__", "__int__", "__bool__"))
    assert not tf.cuts_graph("dim") and not tf.cuts_graph("numel")
    with warnings.catch_warnings():  # torch warns once per process about the conversion
        warnings.simplefilter("ignore")
        assert isinstance(float(y), float) and isinstance(int(y), int)


@torch_only
def test_overwriting_and_writing_methods(torch):
    overwriting = tf.overwriting_methods()
    assert {"zero_", "fill_", "uniform_", "normal_", "copy_", "bernoulli_"} <= overwriting
    assert not {"add_", "mul_", "clamp_", "index_fill_", "masked_fill_", "ceil_"} & overwriting
    assert {"add_", "copy_", "__setitem__", "__iadd__"} <= tf.writing_methods()
    assert not {"requires_grad_", "detach_", "add"} & tf.writing_methods()
    a, b = torch.randn(3), torch.randn(3)
    torch.manual_seed(0)
    a.uniform_()
    torch.manual_seed(0)
    b.uniform_()
    assert torch.equal(a, b)
    x = torch.randn(3)
    version = x._version
    x.requires_grad_()
    assert x._version == version


@torch_only
def test_values_and_indices(torch):
    assert tf.op("topk").returns_values_indices is True
    assert tf.op("sort").returns_values_indices is True
    assert tf.op("max").returns_values_indices is None  # x.max() vs x.max(dim)
    assert tf.op("topk").saves_output(1) is True  # indices
    _, indices = torch.randn(3, 4).max(1)
    assert indices.dtype == torch.int64 and isinstance(torch.randn(3).max(), torch.Tensor)


@torch_only
def test_factories(torch):
    tensor, as_tensor = tf.factory("torch.tensor"), tf.factory("torch.as_tensor")
    assert (tensor.dtype_for("float"), tensor.dtype_for("int"), tensor.dtype_for("bool")) == (
        "float32",
        "int64",
        "bool",
    )
    assert torch.tensor([1.5]).dtype == torch.float32 and torch.tensor([2]).dtype == torch.int64
    assert tensor.copies is True and tensor.requires_grad and tensor.keeps_graph is False
    assert as_tensor.copies is False and as_tensor.keeps_graph is True and as_tensor.keeps_list_graph is False
    t = torch.randn(3, requires_grad=True) * 2
    assert torch.as_tensor(t) is t
    assert tf.factory("torch.from_numpy").dtype_for("float") == "float64"
    assert tf.factory("torch.zeros_like").like and not tf.factory("torch.zeros").like
    assert tf.factory("torch.zeros_like").dtype_for("float") == "like"
    assert torch.zeros_like(torch.ones(2, dtype=torch.int64)).dtype == torch.int64
    assert tf.factory("torch.randint").dtype_for("float") == "int64"
    assert tf.accepts_requires_grad("new_zeros") and tf.accepts_requires_grad("torch.zeros")
    assert torch.randn(2).new_zeros(2, requires_grad=True).requires_grad


@torch_only
def test_dtypes(torch):
    assert tf.canonical_dtype("torch.float") == "float32"
    assert tf.canonical_dtype("torch.long") == "int64"
    assert tf.canonical_dtype("numpy.float64") == "float64"
    assert tf.canonical_dtype("np.float32") == "float32"
    assert tf.canonical_dtype("float") == "float64"  # dtype=float
    assert tf.is_floating("torch.half") and not tf.is_floating("torch.int")
    for a, b in [("float32", "float64"), ("int64", "float16"), ("bool", "uint8"), ("int8", "uint8")]:
        real = (torch.ones(2, dtype=getattr(torch, a)) + torch.ones(2, dtype=getattr(torch, b))).dtype
        assert tf.promote(a, b) == str(real).removeprefix("torch.")
    assert (
        tf.promote_scalar("torch.long", "float") == "float32" == str((torch.ones(2).long() * 1.5).dtype)[6:]
    )
    assert tf.op("mm").dtype == "strict" and tf.function("torch.nn.functional.linear").dtype == "strict"
    with pytest.raises(RuntimeError):
        torch.mm(torch.ones(2, 2), torch.ones(2, 2, dtype=torch.float64))


@torch_only
def test_layers(torch):
    import inspect

    linear = tf.layer("torch.nn.Linear")
    assert linear.kind == "linear" and linear.parameters == ("weight", "bias") and linear.owns_parameters
    assert linear.constructor[:2] == ("in_features", "out_features")
    assert tuple(inspect.signature(torch.nn.Linear).parameters)[:2] == linear.constructor[:2]
    assert tf.layer("LSTM").constructor[:2] == ("input_size", "hidden_size")
    assert tf.layer("ReLU").parameter_free_always and tf.layer("ReLU").kind == "activation"
    norm = tf.layer("LayerNorm")
    assert norm.owns_parameters and norm.parameter_free_sometimes and not norm.parameter_free_always
    assert not list(torch.nn.LayerNorm(4, elementwise_affine=False).parameters())
    batch_norm = tf.layer("BatchNorm2d")
    assert batch_norm.buffers == ("running_mean", "running_var", "num_batches_tracked")
    assert tf.layer("CrossEntropyLoss").kind == "loss" and tf.layer("MultiheadAttention").kind == "attention"
    assert tf.layer("AdaptiveLogSoftmaxWithLoss").owns_parameters  # a "...Loss" with parameters
    assert list(torch.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [4]).parameters())
    assert tf.is_module_class("torch.jit.ScriptModule") and tf.is_module_class("torch.nn.Sequential")
    assert "Parameter" in tf.nn_non_modules() and not tf.is_module_class("torch.nn.Parameter")


@torch_only
def test_optimizers_and_grad_modes(torch):
    assert tf.is_optimizer("torch.optim.Adam") and tf.is_optimizer("torch.optim.sgd.SGD")
    assert tf.optimizer_parameters("torch.optim.SGD")[:2] == ("params", "lr")
    assert tf.is_lr_scheduler("torch.optim.lr_scheduler.StepLR") and not tf.is_optimizer(
        "torch.optim.Optimizer"
    )
    assert tf.is_third_party_optimizer("bitsandbytes.optim.Adam8bit")
    for name, inside in [
        ("torch.no_grad", False),
        ("torch.enable_grad", True),
        ("torch.inference_mode", False),
    ]:
        facts = tf.grad_mode(name)
        assert facts.enabled() is inside and facts.decorator
        with getattr(torch, name.rpartition(".")[2])():
            assert torch.is_grad_enabled() is inside
    setter = tf.grad_mode("torch.autograd.set_grad_enabled")
    assert setter.enabled() is None and setter.enabled(False) is False and setter.sets_on_call
    assert tf.grad_mode("torch.inference_mode").enabled(False) is True
    assert tf.module_method_returns_self("train") and tf.module_method_returns_self("cuda")
    assert tf.module_method_returns_self("parameters") is False
    assert {"save_for_backward", "needs_input_grad", "saved_tensors"} <= tf.ctx_attributes()


@torch_only
def test_tensor_only_methods_are_not_numpy_or_module_methods(torch):
    import numpy

    only = tf.tensor_only_methods()
    assert "unsqueeze" in only and "masked_fill" in only
    assert "reshape" not in only and "float" not in only and "split" not in only  # ndarray, Module, str
    assert not only & set(dir(numpy.ndarray)) and not only & set(dir(torch.nn.Module))
    assert only <= tf.tensor_methods() and tf.tensor_methods() == {
        n for n in dir(torch.Tensor) if not n.startswith("_") and callable(getattr(torch.Tensor, n))
    } - set(data.TENSOR_ATTRIBUTES)


# -- the vocabularies the rules share ------------------------------------------------------------------


@torch_only
def test_inplace_twins_take_the_same_arguments(torch):
    for name in sorted(tf.INPLACE_WITH_TWIN):
        twin = tf.out_of_place(name)
        assert twin == name[:-1], name
        assert hasattr(torch.Tensor, name) and hasattr(torch.Tensor, twin), name
    assert "where_" not in tf.INPLACE_WITH_TWIN and not hasattr(torch.Tensor, "where_")
    x, y = torch.rand(2, 3) + 1, torch.rand(2, 3) + 1
    for name, args in {"renorm_": (2, 0, 1.0), "fmod_": (y,), "remainder_": (y,), "add_": (y,)}.items():
        expected = getattr(x, name[:-1])(*args)
        assert torch.equal(getattr(x.clone(), name)(*args), expected), name


@torch_only
def test_casts_keep_the_values_and_the_history(torch):
    assert "detach" not in tf.CASTS and "cuda" in tf.CASTS  # cuda: a device move (no CUDA here)
    x = torch.randn(3, 2, requires_grad=True) * 1
    arguments = {"to": (torch.float32,), "type": (torch.float64,), "type_as": (x,)}
    for name in sorted(tf.CASTS - {"cuda"}):
        facts = tf.op(name)
        assert facts.same_values in ("always", "maybe") and facts.cuts_graph is False, name
        out = getattr(x, name)(*arguments.get(name, ()))
        assert out.requires_grad and out.grad_fn is not None, name
        assert torch.allclose(out.double(), x.double(), atol=1e-2), name
    for name in tf.SHAPED_AS:
        out = getattr(x, name)(torch.empty(6))
        assert out.shape == (6,) and torch.equal(out, x.reshape(6)), name


@torch_only
def test_projections_are_methods_and_functions(torch):
    x = torch.randn(4, 3, requires_grad=True)
    for name in sorted(tf.PROJECTIONS):
        assert hasattr(torch.Tensor, name) and hasattr(torch, name), name
        assert tf.op(name).grad == "yes", name
    assert torch.renorm(x, 2, 0, 1.0).norm(dim=1).max() <= 1.0 + 1e-6


@torch_only
def test_values_indices_methods(torch):
    found = tf.values_indices_methods()
    assert {"max", "min", "topk", "sort", "kthvalue", "mode", "median", "cummax", "cummin"} <= found
    assert "nanmedian" in found and "argmax" not in found and "aminmax" not in found
    x = torch.randn(4, 5)
    arguments = {"topk": (2, 1), "kthvalue": (2, 1)}
    for name in sorted(found):
        out = getattr(x, name)(*arguments.get(name, (1,)))
        assert out.indices.dtype == torch.int64 and out.values.dtype == x.dtype, name


@torch_only
def test_tensor_creating_methods(torch):
    found = tf.tensor_creating_methods()
    assert {"new_tensor", "new_zeros", "new_ones", "new_empty", "new_full"} <= found
    assert "requires_grad_" not in found
    x = torch.randn(2)
    arguments = {"new_tensor": ([1.0],), "new_full": ((2,), 1.0), "new_empty_strided": ((2,), (1,))}
    for name in sorted(found):
        assert getattr(x, name)(*arguments.get(name, ((2,),)), requires_grad=True).requires_grad, name


@torch_only
def test_recurrent_states(torch):
    assert (tf.recurrent_state("LSTM"), tf.recurrent_state("torch.nn.GRU"), tf.recurrent_state("RNN")) == (
        "tuple",
        "tensor",
        "tensor",
    )
    assert tf.recurrent_state("LSTMCell") is None and tf.recurrent_state("Linear") is None
    x = torch.randn(3, 2, 4)
    _, state = torch.nn.LSTM(4, 4)(x)
    assert isinstance(state, tuple) and len(state) == 2
    _, state = torch.nn.GRU(4, 4)(x)
    assert isinstance(state, torch.Tensor)


@torch_only
def test_functional_twins(torch):
    import torch.nn.functional as F

    assert tf.functional_twin("torch.nn.LeakyReLU") == "leaky_relu"
    assert tf.functional_twin("torch.nn.Dropout") is None  # eval mode: identity, F.dropout is not
    x = torch.randn(5, 6) * 4
    for qualname, name in sorted(data.FUNCTIONAL_TWINS.items()):
        layer = getattr(torch.nn, qualname.rsplit(".", 1)[1])()
        assert torch.equal(layer(x.clone()), getattr(F, name)(x.clone())), qualname


@torch_only
def test_variable_names_and_containers(torch):
    import importlib

    for name in tf.VARIABLE_NAMES:
        module, _, last = name.rpartition(".")
        assert getattr(importlib.import_module(module), last) is torch.autograd.Variable
    assert {"Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"} <= tf.containers()
    assert "Linear" not in tf.containers()
    for name in tf.containers():
        assert issubclass(getattr(torch.nn, name), torch.nn.Module), name
    assert tf.REWRAPS_A_TENSOR <= tf.TENSOR_CONSTRUCTORS
    t = torch.randn(2, requires_grad=True)
    assert torch.as_tensor(t) is t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not torch.tensor(t).requires_grad  # copied without its history


@torch_only
def test_metadata_reads_do_not_depend_on_the_values(torch):
    x, y = torch.zeros(2, 3), torch.ones(2, 3)
    for name in sorted(tf.METADATA_METHODS):
        assert getattr(x, name)() == getattr(y, name)(), name
    for name in sorted(tf.METADATA_ATTRIBUTES):
        assert tf.tensor_attribute(name).returns != ("tensor",) and getattr(x, name) == getattr(y, name), name
    assert tf.like_factories() >= {"torch.zeros_like", "torch.ones_like", "torch.randn_like"}
    for name in sorted(tf.like_factories()):
        fn = getattr(torch, name.rsplit(".", 1)[1])
        args = (1.0,) if name == "torch.full_like" else ()
        assert fn(x, *args).shape == x.shape and not fn(x.requires_grad_(), *args).requires_grad, name
        x = x.detach()


@torch_only
def test_tensor_input_methods_are_tensor_methods_that_builtins_lack(torch):
    builtin_values = (1, 1.5, True, "s", b"s", [1], (1,), {1: 1}, None)
    for name in sorted(tf.TENSOR_INPUT_METHODS):
        assert tf.is_tensor_method(name) and hasattr(torch.Tensor, name), name
        assert not any(hasattr(value, name) for value in builtin_values), name


_TUPLE_KINDS = {"tuple", "values_indices", "namedtuple", "tensor_list"}


@torch_only
def test_tuple_returning_calls_return_tuples(torch):
    x = torch.randn(4, 4)
    assert isinstance(torch.autograd.grad((x.requires_grad_() * 2).sum(), x), tuple)
    for name in sorted(tf.TUPLE_RETURNING - {"grad"}):
        records = [tf.op(name)] + [tf.function(f"{prefix}.{name}") for prefix in tf.function_namespaces()]
        assert any(f is not None and _TUPLE_KINDS & set(f.returns) for f in records), name
    assert tf.op("where").returns == ("tensor",) and "where" not in tf.TUPLE_RETURNING


@torch_only
def test_dtype_casts_and_flattening_methods(torch):
    assert tf.DTYPE_CASTS <= tf.CASTS
    x = torch.randn(2, 3, 4)
    for name in sorted(tf.DTYPE_CASTS - {"to", "type"}):
        assert getattr(x, name)().dtype == getattr(torch, tf.op(name).dtype), name
    assert x.to(torch.float64).dtype == x.type(torch.float64).dtype == torch.float64
    for name in sorted(tf.FLATTENING_METHODS):
        out = x.flatten(1) if name == "flatten" else getattr(x, name)(2, -1)
        assert out.shape == (2, 12), name


@torch_only
def test_counting_parameters_are_layer_constructor_parameters(torch):
    constructor_parameters = set()
    for name in tf.layers():
        constructor_parameters |= set(tf.layer(name).constructor)
    assert set(tf.COUNTING_PARAMETERS) <= constructor_parameters


@torch_only
def test_losses_by_target(torch):
    import torch.nn.functional as F

    assert tf.class_index_losses() == {"CrossEntropyLoss", "cross_entropy", "NLLLoss", "nll_loss"}
    x, t = torch.rand(4, 3), torch.rand(4, 1)
    for name in sorted(tf.SAME_SHAPE_LOSSES):
        fn = getattr(torch.nn, name)() if name[0].isupper() else getattr(F, name)
        with pytest.raises(ValueError, match="size"):
            fn(x, t)
        assert fn(x, torch.rand(4, 3)).shape == ()


@torch_only
def test_float64_input_errors_and_distributed_setup(torch):
    import torch.distributed as dist

    assert (
        tf.float64_input_error("Linear") == "mat1 and mat2 must have the same dtype, but got Double and Float"
    )
    assert tf.float64_input_error("LSTM").startswith("RNN input dtype (torch.float64) does not match")
    assert tf.float64_input_error("Sequential") is None
    for name, kind in tf.DISTRIBUTED_SETUP.items():
        returns = typing.get_type_hints(getattr(dist, name)).get("return")
        assert (returns is int) == (kind == "int"), name
