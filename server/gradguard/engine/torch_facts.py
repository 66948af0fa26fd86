"""TEMPORARY stand-in for the generated torch facts module (being built on another branch).

Only the queries the interpreter needs, with a handful of entries; replaced wholesale by the
generated module and its query API.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpFacts:
    name: str
    inplace: str | None = None
    out_of_place: str | None = None
    saves_result: bool = False
    saves_inputs: tuple[str, ...] = ()
    saved_when: tuple[tuple[str, tuple[str, ...]], ...] = ()
    differentiable: bool = True
    zero_grad: bool = False
    output_dtype: str = "same"
    returns: str = "tensor"
    view: str = "never"
    arguments: tuple[str, ...] = ("self",)


_SAVES_RESULT = {"sigmoid", "tanh", "exp", "exp2", "expm1", "relu", "softmax", "log_softmax", "sqrt", "rsqrt"}
_SAVES_BOTH = {
    "mul": ("self", "other"),
    "div": ("self", "other"),
    "matmul": ("self", "other"),
    "mm": ("self", "mat2"),
}
_NONDIFF = {
    "argmax",
    "argmin",
    "eq",
    "ne",
    "gt",
    "lt",
    "ge",
    "le",
    "long",
    "int",
    "bool",
    "nonzero",
    "argsort",
}
_ZERO = {"round", "floor", "ceil", "sign", "trunc"}
_VIEWS = {
    "view",
    "transpose",
    "permute",
    "t",
    "narrow",
    "select",
    "unsqueeze",
    "squeeze",
    "expand",
    "chunk",
    "split",
}
_MAYBE_VIEWS = {"reshape", "flatten", "contiguous"}
_PLAIN = {
    "add",
    "sub",
    "neg",
    "sum",
    "mean",
    "clone",
    "abs",
    "log",
    "pow",
    "clamp",
    "masked_fill",
    "float",
    "double",
}


def _make(name: str) -> OpFacts | None:
    base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
    if base in _SAVES_RESULT:
        facts = OpFacts(base, inplace=base + "_", saves_result=True)
    elif base in _SAVES_BOTH:
        a, b = _SAVES_BOTH[base]
        facts = OpFacts(
            base, inplace=base + "_", saves_inputs=(a, b), saved_when=((a, (b,)), (b, (a,))), arguments=(a, b)
        )
    elif base in _NONDIFF:
        facts = OpFacts(base, differentiable=False, output_dtype="bool")
    elif base in _ZERO:
        facts = OpFacts(base, inplace=base + "_", zero_grad=True)
    elif base in _VIEWS:
        facts = OpFacts(base, view="always", returns="tuple" if base in ("chunk", "split") else "tensor")
    elif base in _MAYBE_VIEWS:
        facts = OpFacts(base, view="maybe")
    elif base in _PLAIN:
        facts = OpFacts(base, inplace=base + "_")
    else:
        return None
    if base != name:
        return OpFacts(name, out_of_place=base, saves_result=False, differentiable=facts.differentiable)
    return facts


def op(name: str) -> OpFacts | None:
    return _make(name)


def function(qualname: str) -> OpFacts | None:
    for prefix in ("torch.nn.functional.", "torch.special.", "torch."):
        if qualname.startswith(prefix):
            return _make(qualname[len(prefix) :])
    return None
