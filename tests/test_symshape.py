"""The dimension algebra and the API of gradguard.engine.symshape (no torch: see test_symshape_meta.py)."""

from __future__ import annotations

from gradguard.engine.symshape import (
    UNKNOWN,
    Dim,
    Mask,
    Repeated,
    Shape,
    ShapeError,
    _common_factor,
    broadcast,
    dim,
    layer_names,
    layer_spec,
    op_names,
    op_output,
    same,
    same_shape,
    shape,
    sym,
)
from hypothesis import given, settings
from hypothesis import strategies as st

b, c, h, w, t = (sym(x) for x in "bchwt")
NAMES = ("a", "b", "c")


def test_engine_never_imports_torch() -> None:
    import gradguard.engine.symshape as module

    with open(module.__file__, encoding="utf-8") as handle:
        source = handle.read()
    assert "import torch" not in source


def test_canonical_forms() -> None:
    assert h * w == w * h
    assert str(2 * c // 2) == "c"
    assert (h + 2 * 1 - 3) // 1 + 1 == h
    assert dim("(h + 2*1 - 3)//1 + 1") == h
    assert ((h - 2) // 2 - 2) // 2 == dim("(h-6)//4")
    assert (h // 2) // 2 == h // 4
    assert dim("config.n_embd * 4") == 4 * sym("config.n_embd")
    assert (3 * c).exact_div(c) == 3
    assert (b * t * c).exact_div(b * t) == c
    assert (b * 400).exact_div(256) is None


def test_rendering() -> None:
    assert str(shape(b, 64, h // 2, w // 2)) == "[b, 64, h/2, w/2]"
    assert str(Shape.suffix(64)) == "[..., 64]"
    assert str(Shape.unknown()) == "[...]"
    assert str(shape(b, UNKNOWN)) == "[b, ?]"
    assert str(dim("(h-6)//4")) == "(h-6)/4"
    assert dim("(h-6)//4").py() == "(h-6)//4"
    assert str(h // 2 + 1) == "h/2+1"
    assert str(16 * (h // 4)) == "16*(h/4)"
    assert str(c // sym("n_head")) == "c/n_head"


def test_three_valued_equality() -> None:
    assert same(h, h) is True
    assert same(h, w) is None  # two symbols: never "different"
    assert same(h, h + 1) is False
    assert same(400 * b, 256 * b) is False  # a common factor is taken to be nonzero
    assert same(sym("n") + sym("k"), sym("n")) is None  # k may be 0
    assert same(UNKNOWN, 3) is None
    assert same_shape(shape(b, 3), shape(b, 4)) is False
    assert same_shape(shape(b, 3), shape(b, 3)) is True
    assert same_shape(shape(b, 3), shape(t, 3)) is None
    assert same_shape(shape(b, 3), shape(b, 3, 1)) is False


def test_structural_eq_is_not_runtime_equality() -> None:
    assert UNKNOWN == UNKNOWN  # noqa: PLR0124 - structural equality is the point
    assert same(UNKNOWN, UNKNOWN) is None
    assert Dim.of(3) == 3 and hash(Dim.of(3)) == hash(3)


def test_broadcast_with_symbols() -> None:
    assert broadcast(shape(b, 1, 5), shape(7, 1)) == shape(b, 7, 5)
    assert broadcast(shape(b, c), shape(b, t)) == shape(b, UNKNOWN)
    assert broadcast(shape(t, 5), shape(3, 5)) == shape(3, 5)  # t is 3 or 1 if this runs
    error = broadcast(shape(2, 3), shape(4))
    assert isinstance(error, ShapeError) and error.code == "GG507"
    assert broadcast(Shape.suffix(3), shape(4, 1)) == Shape((4, 3), exact=False)


def test_layer_spec_api() -> None:
    spec = layer_spec("torch.nn.Conv2d", (3, 16), {"kernel_size": 3, "padding": 1})
    assert spec is not None and spec.name == "Conv2d"
    assert spec.output(shape(b, 3, h, w)) == shape(b, 16, h, w)
    assert spec.output(Shape.suffix(3, h, w)) == Shape((16, h, w), exact=False)
    assert spec.parameter_count() == 16 * 3 * 9 + 16
    assert str(spec) == "Conv2d(in_channels=3, out_channels=16, kernel_size=3, padding=1)"
    assert layer_spec("torch.nn.modules.linear.Linear", (4, 5)).output(Shape.unknown()) == Shape.suffix(5)
    assert layer_spec("mylib.Linear", (4, 5)) is None
    assert layer_spec("torch.nn.Linear", (4,)) is None  # does not bind
    assert layer_spec("torch.nn.Linear", (4, 5), {"bais": True}) is None
    assert layer_spec("torch.nn.Conv2d", (3, 8, 3), {"groups": 2}).error.message == (
        "in_channels must be divisible by groups"
    )
    assert len(layer_names()) >= 100 and len(op_names()) >= 400


def test_unknown_arguments_give_unknown_not_errors() -> None:
    spec = layer_spec("torch.nn.Conv2d", (3, 16, UNKNOWN))
    assert spec is not None
    out = spec.output(shape(b, 3, h, w))
    assert out is None or isinstance(out, Shape)
    assert layer_spec("torch.nn.Linear", (UNKNOWN, 10)).output(shape(b, 7)) == shape(b, 10)
    assert op_output("view", shape(b, c), (UNKNOWN, -1)) in (None, shape(UNKNOWN, UNKNOWN))
    assert op_output("no_such_op", shape(b)) is None


def test_sequential_with_unknown_module() -> None:
    seq = layer_spec("torch.nn.Sequential", (layer_spec("torch.nn.Linear", (c, 8)), None))
    assert seq.output(shape(b, c)) == Shape.unknown()
    assert seq.parameter_count() is None


def test_results_of_multi_output_ops() -> None:
    assert op_output("max", shape(b, c), (1,)) == (shape(b), shape(b))
    lstm = layer_spec("torch.nn.LSTM", (c, 8), {"batch_first": True})
    out, (h_n, c_n) = lstm.output(shape(b, t, c))
    assert (out, h_n, c_n) == (shape(b, t, 8), shape(1, b, 8), shape(1, b, 8))
    assert op_output("chunk", shape(b, c), (2, 1)) == Repeated(shape(b, UNKNOWN))
    assert op_output("__getitem__", shape(3, 4), (Mask(shape(3, 4)),)) == shape(UNKNOWN)
    assert op_output("size", shape(b, c), (-1,)) == c
    assert op_output("size", shape(b, c)) == (b, c)
    assert op_output("shape", Shape.suffix(c)) is None


def test_symbolic_slice_bounds_are_assumed_in_range() -> None:
    assert op_output(
        "__getitem__", shape(1, 1, 8, 8), ((slice(None), slice(None), slice(None, t), slice(None, t)),)
    ) == (shape(1, 1, t, t))
    assert op_output("__getitem__", Shape.suffix(t, c), ((Ellipsis, slice(None, 3)),)) == Shape(
        (t, 3), exact=False
    )


# -- property: the canonical form evaluates like Python ints ------------------------------------------
def exprs() -> st.SearchStrategy:
    leaves = st.one_of(st.integers(-6, 9), st.sampled_from(NAMES))
    return st.recursive(
        leaves,
        lambda inner: st.tuples(
            st.sampled_from(["+", "-", "*", "//k", "//s"]),
            inner,
            inner,
            st.integers(1, 5),
            st.sampled_from(NAMES),
        ),
        max_leaves=8,
    )


def build(e: object) -> Dim:
    if isinstance(e, int):
        return Dim.of(e)
    if isinstance(e, str):
        return sym(e)
    op, left, right, k, s = e  # type: ignore[misc]
    a, bb = build(left), build(right)
    if op == "+":
        return a + bb
    if op == "-":
        return a - bb
    if op == "*":
        return a * bb
    if op == "//k":
        return a // k
    return a // sym(s)


def evaluate(e: object, env: dict) -> int:
    if isinstance(e, int):
        return e
    if isinstance(e, str):
        return env[e]
    op, left, right, k, s = e  # type: ignore[misc]
    a, bb = evaluate(left, env), evaluate(right, env)
    if op == "+":
        return a + bb
    if op == "-":
        return a - bb
    if op == "*":
        return a * bb
    if op == "//k":
        return a // k
    return a // env[s]


envs = st.fixed_dictionaries({name: st.integers(1, 40) for name in NAMES})


@settings(max_examples=300, deadline=None)
@given(exprs(), envs)
def test_canonical_form_is_sound(e: object, env: dict) -> None:
    d = build(e)
    assert d.subs(env).value == evaluate(e, env)
    assert dim(d.py()).subs(env).value == evaluate(e, env)  # the rendering parses back to the same value


@settings(max_examples=300, deadline=None)
@given(exprs(), exprs(), envs)
def test_same_is_sound(e1: object, e2: object, env: dict) -> None:
    a, bb = build(e1), build(e2)
    answer = same(a, bb)
    va, vb = evaluate(e1, env), evaluate(e2, env)
    if answer is True:
        assert va == vb
    elif answer is False and va == vb:
        # certain only because a factor common to both sides was taken to be nonzero: here it is 0
        common = _common_factor(a, bb)
        assert common is not None and common.subs(env).value == 0


def test_module_docstring_example() -> None:
    b = sym("b")
    conv = layer_spec("torch.nn.Conv2d", (1, 6, 5))
    x = conv.output(shape(b, 1, 28, 28))
    assert x == shape(b, 6, 24, 24)
    x = op_output("torch.nn.functional.max_pool2d", None, (x, 2))
    assert x == shape(b, 6, 12, 12)
    x = op_output("torch.flatten", None, (x, 1))
    assert x == shape(b, 864)
    err = layer_spec("torch.nn.Linear", (400, 120)).output(x)
    assert isinstance(err, ShapeError)
    assert err.message == "mat1 and mat2 shapes cannot be multiplied (bx864 and 400x120)"
    assert (err.code, err.argument, err.expected) == ("GG501", "in_features", 864)
    assert op_output("split", shape(b, 16, 96), (32, 2)) == (shape(b, 16, 32),) * 3
