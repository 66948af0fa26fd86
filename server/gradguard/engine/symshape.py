"""Symbolic tensor shapes and the shape rules of torch layers and ops (pure Python: no torch, no ast walking).

This module knows what shape each `torch.nn` layer and each tensor op returns for a given input shape,
with dimensions that may be symbols from the code. An abstract interpreter (the value analysis) calls it;
nothing here reads source code.

Dimensions -- `Dim`
    An int, a named symbol (`b`, `config.n_embd`, `in_dim`), a sum / product / floor-quotient of those,
    or `UNKNOWN`. Kept in a canonical form, so `h*w` and `w*h` are the same object, `2*c//2` is `c` and
    `(h + 2*1 - 3)//1 + 1` is `h`. Build them with `dim(x)` (ints, `Dim`s, `None` -> UNKNOWN, and strings
    that are parsed: `dim("h//2 + 1")`, `dim("config.n_embd")`) or `sym("name")`; combine with + - * //.
    `==` is STRUCTURAL (same canonical form; `Dim(3) == 3`; UNKNOWN == UNKNOWN). To ask whether two dims
    are equal at run time use `same(a, b)`: True (certainly equal), False (certainly different) or None
    (cannot tell: two different symbols are None, never False; anything UNKNOWN is None).
    `d.value` is the int or None; `d.subs({"h": 32})` instantiates symbols; `str(d)` renders for people
    (`h/2` for a floor quotient, `?` for unknown), `d.py()` renders as Python (`h//2`).

Shapes -- `Shape`
    `Shape(dims)` is a tensor of known rank; `Shape(dims, exact=False)` is "some unknown leading dims,
    then these" (`[..., 64]`: what `self.fc(x)` gives when the leading dims of x are unknown);
    `Shape.unknown()` is unknown rank (`[...]`). `shape(b, 3, "h", "w")` builds one. `s.rank` (None if not
    exact), `s.at(i)` (a Dim; negative indices work on suffix shapes), `s.numel`, `s.subs(env)`, `str(s)`
    -> `[b, 64, h/2, w/2]`. `same_shape(a, b)` is three-valued like `same`.

Results
    Every rule returns one of:
      Shape                        a tensor
      tuple                        several results (`chunk`, `max(dim)` -> (values, indices), LSTM ->
                                   (out, (h, c))); an item None there is a Python None (MHA weights when
                                   need_weights=False)
      Repeated(shape)              a tuple/list of tensors of unknown length, each of this shape
      Dim / int / tuple of Dim     a non-tensor value (`x.size(1)`, `x.dim()`, `x.size()`)
      ShapeError                   torch raises: `message` is what torch says (rendered with our dims:
                                   with int dims it is the exact text, checked by tests), `exception` its
                                   class name, `code` the gradguard rule it belongs to (GG501 layer input
                                   mismatch, GG502 matmul, GG506 view/reshape, GG507 broadcast, GG508
                                   cat/stack, GG509 loss target; None for others), `argument` the argument
                                   to change and `expected` the value that makes it work (Linear: argument
                                   "in_features", expected 400 -> a fix "set `in_features` to 400").
                                   `warning=True` means torch does NOT raise but warns and returns `shape`
                                   (MSELoss with broadcasting target). `exact_message=False` means torch's
                                   wording depends on what a static analysis cannot see (strides,
                                   requires_grad: matmul of a batch with a matrix): the error is certain,
                                   `message` then describes it in our words.
      None                         not modelled: treat the result as unknown
    Errors are only returned when certain: a rule never reports an error that depends on the value of a
    symbol. A Shape result means "this is the shape if the op runs". Assumptions: a symbol that is a factor
    of a whole size is nonzero (`same(400*b, 256*b)` is False); slice bounds that are symbols lie inside the
    dimension (`x[:, :T]` is T long); a symbolic size is larger than a reflection/replicate pad; tensors
    are contiguous where torch's choice of kernel (and so its message) depends on it.

Layers -- `layer_spec(qualname, args=(), kwargs=None) -> LayerSpec | None`
    qualname is the resolved class (`"torch.nn.Conv2d"`, `"torch.nn.modules.conv.Conv2d"`); args/kwargs
    are the constructor's arguments as Python values: ints, bools, floats, strings, tuples/lists of
    those, `Dim`s for symbolic ints, UNKNOWN for any value that is not known, and LayerSpec (or None for
    an unknown module) for containers (`Sequential`, `TransformerEncoder`). They are bound with the real
    signature (positional or keyword). None if the class is not modelled or the arguments do not bind.
    `spec.output(*inputs, **forward_kwargs)`: inputs are Shapes (None for an unknown tensor; a tuple of
    Shapes for an LSTM's `(h0, c0)`), forward_kwargs the non-tensor forward arguments
    (`need_weights=False`, `output_size=(..)`). `spec.error` is a ShapeError the constructor raises
    (`in_channels must be divisible by groups`), `spec.parameter_count()` the number of parameters
    (Dim) or None, `spec.name` the class name, `spec.params` the bound arguments, `str(spec)` a summary.
    `layer_names()` lists the modelled classes.

Ops -- `op_output(op, receiver=None, args=(), kwargs=None) -> result`
    `op` is a Tensor method or attribute name with `receiver` its tensor's Shape (`"view"`, `"size"`,
    `"T"`, `"__getitem__"`, `"__add__"`), or a resolved function name with receiver None
    (`"torch.cat"`, `"torch.nn.functional.conv2d"`). Operators go through their dunder names or the
    symbol (`"+"`, `"@"`). Tensor arguments are Shapes, sizes are ints/Dims/tuples of them, `x.size()`
    is a tuple of Dims; `__getitem__` takes the Python index (an item or a tuple of items: int/Dim,
    `slice` with int/Dim/None bounds, None, Ellipsis, a Shape for an integer index tensor, `Mask(shape)`
    for a boolean mask, a list of ints). `x.shape[i]` is `op_output("size", x, (i,))`. `op_names()` lists
    the modelled names. dtype does not enter: the rules are the same for every dtype;
    `ce_target_kind(input, target)` says whether cross_entropy reads a target as class indices (it must
    be int64) or probabilities (float), for a dtype check done elsewhere.

Example (what an interpreter of `forward` does, one statement at a time):

    b = sym("b")
    conv = layer_spec("torch.nn.Conv2d", (1, 6, 5))                 # self.conv1 = nn.Conv2d(1, 6, 5)
    x = conv.output(shape(b, 1, 28, 28))                            # [b, 6, 24, 24]
    x = op_output("torch.nn.functional.max_pool2d", None, (x, 2))   # [b, 6, 12, 12]
    x = op_output("torch.flatten", None, (x, 1))                    # [b, 864]
    err = layer_spec("torch.nn.Linear", (400, 120)).output(x)
    # ShapeError: "mat1 and mat2 shapes cannot be multiplied (bx864 and 400x120)",
    #             code GG501, argument "in_features", expected 864
    q, k, v = op_output("split", shape(b, 16, 96), (32, 2))         # three [b, 16, 32]
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

__all__ = [
    "UNKNOWN",
    "Dim",
    "LayerSpec",
    "Mask",
    "Repeated",
    "Shape",
    "ShapeError",
    "broadcast",
    "ce_target_kind",
    "dim",
    "format_shape",
    "layer_names",
    "layer_spec",
    "op_names",
    "op_output",
    "same",
    "same_shape",
    "shape",
    "sym",
]


# =====================================================================================================
# Dimensions
# =====================================================================================================
# A Dim is an integer polynomial over atoms; an atom is a symbol name (str) or a floor quotient
# `_Floor(num, den)`. The polynomial is a tuple of (monomial, coefficient), sorted, no zero
# coefficients; a monomial is a sorted tuple of (atom, power). None is the unknown dimension.


class _Floor:
    __slots__ = ("den", "key", "num")

    def __init__(self, num: Dim, den: Dim) -> None:
        self.num = num
        self.den = den
        self.key = "(" + num.py() + ")//(" + den.py() + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Floor) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


def _akey(atom: str | _Floor) -> str:
    return atom if isinstance(atom, str) else atom.key


def _mkey(mono: tuple) -> tuple:
    return tuple((_akey(a), p) for a, p in mono)


def _freeze(terms: dict) -> tuple:
    return tuple(sorted(((m, c) for m, c in terms.items() if c), key=lambda mc: _mkey(mc[0])))


def _mono_mul(m1: tuple, m2: tuple) -> tuple:
    powers: dict = dict(m1)
    for atom, p in m2:
        powers[atom] = powers.get(atom, 0) + p
    return tuple(sorted(powers.items(), key=lambda ap: _akey(ap[0])))


def _degree(mono: tuple) -> int:
    return sum(p for _, p in mono)


class Dim:
    """A tensor dimension: int, symbol, +,-,*,// of those, or unknown. See the module docstring."""

    __slots__ = ("_p",)

    def __init__(self, poly: tuple | None) -> None:
        self._p = poly

    # -- construction -------------------------------------------------------------------------------
    @staticmethod
    def const(n: int) -> Dim:
        return Dim((((), n),) if n else ())

    @staticmethod
    def symbol(name: str) -> Dim:
        return Dim(((((name, 1),), 1),))

    @staticmethod
    def _atom(atom: _Floor) -> Dim:
        return Dim(((((atom, 1),), 1),))

    @staticmethod
    def of(x: Any) -> Dim:
        """ints, Dims, None/UNKNOWN (-> UNKNOWN) and strings (parsed: "h//2 + 1", "config.n_embd")."""
        if isinstance(x, Dim):
            return x
        if isinstance(x, bool):
            return UNKNOWN
        if isinstance(x, int):
            return Dim.const(x)
        if isinstance(x, str):
            return _parse_dim(x)
        return UNKNOWN

    # -- inspection -----------------------------------------------------------------------------------
    @property
    def is_unknown(self) -> bool:
        return self._p is None

    @property
    def value(self) -> int | None:
        p = self._p
        if p is None:
            return None
        if not p:
            return 0
        if len(p) == 1 and not p[0][0]:
            return p[0][1]
        return None

    @property
    def is_int(self) -> bool:
        return self.value is not None

    def symbols(self) -> set[str]:
        found: set[str] = set()
        for mono, _ in self._p or ():
            for atom, _ in mono:
                if isinstance(atom, str):
                    found.add(atom)
                else:
                    found |= atom.num.symbols() | atom.den.symbols()
        return found

    def subs(self, env: Mapping[str, Any]) -> Dim:
        """Replace symbols by ints or Dims (those not in env stay)."""
        if self._p is None:
            return self
        total = Dim.const(0)
        for mono, coef in self._p:
            term = Dim.const(coef)
            for atom, p in mono:
                if isinstance(atom, str):
                    base = Dim.of(env[atom]) if atom in env else Dim.symbol(atom)
                else:
                    base = atom.num.subs(env) // atom.den.subs(env)
                for _ in range(p):
                    term = term * base
            total = total + term
        return total

    # -- arithmetic ---------------------------------------------------------------------------------
    def __add__(self, other: Any) -> Dim:
        o = Dim.of(other)
        if self._p is None or o._p is None:
            return UNKNOWN
        terms = dict(self._p)
        for m, c in o._p:
            terms[m] = terms.get(m, 0) + c
        return Dim(_freeze(terms))

    __radd__ = __add__

    def __neg__(self) -> Dim:
        if self._p is None:
            return UNKNOWN
        return Dim(tuple((m, -c) for m, c in self._p))

    def __sub__(self, other: Any) -> Dim:
        return self + (-Dim.of(other))

    def __rsub__(self, other: Any) -> Dim:
        return Dim.of(other) + (-self)

    def __mul__(self, other: Any) -> Dim:
        o = Dim.of(other)
        if self._p is None or o._p is None:
            return UNKNOWN
        terms: dict = {}
        for m1, c1 in self._p:
            for m2, c2 in o._p:
                m = _mono_mul(m1, m2)
                terms[m] = terms.get(m, 0) + c1 * c2
        return Dim(_freeze(terms))

    __rmul__ = __mul__

    def __floordiv__(self, other: Any) -> Dim:
        return _floordiv(self, Dim.of(other))

    def __rfloordiv__(self, other: Any) -> Dim:
        return _floordiv(Dim.of(other), self)

    def exact_div(self, other: Any) -> Dim | None:
        """self / other when the quotient is a polynomial (`(b*t*c).exact_div(b*t)` is c), else None."""
        return _exact_div(self, Dim.of(other))

    def cdiv(self, other: Any) -> Dim:
        """Ceiling division."""
        o = Dim.of(other)
        return (self + o - 1) // o

    # -- comparison / hashing (structural; see same()) --------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, bool):
            return False
        if isinstance(other, int):
            return self.value == other
        if isinstance(other, Dim):
            return self._p == other._p
        return NotImplemented

    def __hash__(self) -> int:
        v = self.value
        return hash(v) if v is not None else hash(self._p)

    def __int__(self) -> int:
        v = self.value
        if v is None:
            raise ValueError(f"dimension {self} is not an int")
        return v

    # -- rendering ----------------------------------------------------------------------------------
    def __str__(self) -> str:
        return _render(self._p, py=False)

    def py(self) -> str:
        """As a Python expression (`h//2`); `?` if unknown."""
        return _render(self._p, py=True)

    def __repr__(self) -> str:
        return f"Dim({self.py()!r})"


UNKNOWN = Dim(None)


def dim(x: Any) -> Dim:
    """Coerce to a Dim: int, Dim, None (-> UNKNOWN) or a string expression."""
    return Dim.of(x)


def sym(name: str) -> Dim:
    """A named symbol (the name is taken as is, not parsed)."""
    return Dim.symbol(name)


def same(a: Any, b: Any) -> bool | None:
    """Three-valued equality of two dimensions: True, False, or None (cannot tell).

    Certain only when the difference is a constant, or after dividing out a factor common to every
    term of both sides (`400*b` vs `256*b` differ: a dimension that multiplies a whole size is taken to
    be nonzero). `h` vs `w`, `n + k` vs `n` are None (k may be 0)."""
    da, db = Dim.of(a), Dim.of(b)
    if da._p is None or db._p is None:
        return None
    diff = (da - db).value
    if diff is not None:
        return diff == 0
    common = _common_factor(da, db)
    if common is not None:
        qa, qb = _exact_div(da, common), _exact_div(db, common)
        if qa is not None and qb is not None:
            return same(qa, qb)
    return None


def _common_factor(a: Dim, b: Dim) -> Dim | None:
    """The largest monomial (no coefficient) dividing every term of a and b, if not 1."""
    terms = list(a._p or ()) + list(b._p or ())
    if not terms:
        return None
    powers = dict(terms[0][0])
    for mono, _ in terms[1:]:
        here = dict(mono)
        powers = {atom: min(p, here[atom]) for atom, p in powers.items() if atom in here}
        if not powers:
            return None
    if not powers:
        return None
    mono = tuple(sorted(powers.items(), key=lambda ap: _akey(ap[0])))
    return Dim(((mono, 1),))


def _is_one(d: Dim) -> bool | None:
    return same(d, 1)


def _floordiv(a: Dim, b: Dim) -> Dim:
    if a._p is None or b._p is None:
        return UNKNOWN
    k = b.value
    if k is None:
        q = _exact_div(a, b)
        if q is not None:
            return q
        return Dim._atom(_Floor(a, b))
    if k == 0:
        return UNKNOWN
    if k < 0:
        a, k = -a, -k
    if k == 1:
        return a
    av = a.value
    if av is not None:
        return Dim.const(av // k)
    terms = a._p
    if terms is None:  # not reached: `a` was known above (and so is `-a`)
        return UNKNOWN
    quot: dict = {}
    rem: dict = {}
    for m, c in terms:
        qc, rc = divmod(c, k)
        if qc:
            quot[m] = qc
        if rc:
            rem[m] = rc
    r_terms = _freeze(rem)
    q_dim, r_dim = Dim(_freeze(quot)), Dim(r_terms)
    if r_dim.value is not None:  # a constant remainder in [0, k): floors to 0
        return q_dim
    return q_dim + _floor_of_remainder(r_terms, k)


def _floor_of_remainder(r_terms: tuple, k: int) -> Dim:
    """floor(R / k) for a symbolic remainder R (its terms), k > 1: the common factor of R's
    coefficients and k cancelled, and a floor inside R merged with this one."""
    g = k
    for _, c in r_terms:
        g = math.gcd(g, c)
    if g > 1:
        r_terms = tuple((m, c // g) for m, c in r_terms)
        k //= g
    r_dim = Dim(r_terms)
    # floor((floor(X/a) + P) / k) == floor((X + a*P) / (a*k)) for integer-valued P
    for m, c in r_terms:
        if c == 1 and len(m) == 1 and m[0][1] == 1 and isinstance(m[0][0], _Floor):
            inner = m[0][0]
            a_den = inner.den.value
            if a_den is not None and a_den > 0:
                rest = r_dim - Dim(((m, 1),))
                return _floordiv(inner.num + rest * a_den, Dim.const(a_den * k))
    return Dim._atom(_Floor(r_dim, Dim.const(k)))


def _exact_div(a: Dim, b: Dim) -> Dim | None:
    if a._p is None or b._p is None:
        return None
    if not a._p:
        return Dim.const(0) if b.value != 0 else None
    k = b.value
    if k is not None:
        if k == 0 or any(c % k for _, c in a._p):
            return None
        return Dim(tuple((m, c // k) for m, c in a._p))
    if len(b._p) == 1:
        mb, cb = b._p[0]
        need = dict(mb)
        terms: dict = {}
        for m, c in a._p:
            if c % cb:
                return None
            powers = dict(m)
            for atom, p in need.items():
                if powers.get(atom, 0) < p:
                    return None
                powers[atom] -= p
            mono = tuple(sorted(((x, p) for x, p in powers.items() if p), key=lambda ap: _akey(ap[0])))
            terms[mono] = terms.get(mono, 0) + c // cb
        return Dim(_freeze(terms))
    if a._p == b._p:
        return Dim.const(1)
    lead_a = max(a._p, key=lambda mc: (_degree(mc[0]), _mkey(mc[0])))
    lead_b = max(b._p, key=lambda mc: (_degree(mc[0]), _mkey(mc[0])))
    q = _exact_div(Dim((lead_a,)), Dim((lead_b,)))
    if q is not None and (a - q * b).value == 0:
        return q
    return None


def _render(p: tuple | None, py: bool) -> str:
    if p is None:
        return "?"
    if not p:
        return "0"
    nonconst = [(m, c) for m, c in p if m]
    const = sum(c for m, c in p if not m)
    if len(nonconst) == 1 and const < 0:
        (m, c) = nonconst[0]
        if c == 1 and len(m) == 1 and m[0][1] == 1 and isinstance(m[0][0], _Floor):
            f = m[0][0]
            k = f.den.value
            if k is not None:  # floor(N/k) + c  ->  floor((N + c*k)/k): "(h-1)/2" rather than "(h+1)/2-1"
                return _render_floor(f.num + const * k, f.den, py, alone=True)
    nonconst.sort(key=lambda mc: (-_degree(mc[0]), _mkey(mc[0])))
    pieces: list[str] = []
    for i, (m, c) in enumerate(nonconst + ([((), const)] if const else [])):
        body = _render_mono(m, abs(c), py)
        if c == -1 and len(m) == 1 and m[0][1] == 1 and isinstance(m[0][0], _Floor):
            body = f"({body})"  # -(a//2), not (-a)//2
        if i == 0:
            pieces.append(("-" if c < 0 else "") + body)
        else:
            pieces.append(("-" if c < 0 else "+") + body)
    return "".join(pieces)


def _render_mono(m: tuple, coef: int, py: bool) -> str:
    if not m:
        return str(coef)
    factors: list[str] = []
    alone = len(m) == 1 and coef == 1 and m[0][1] == 1
    for atom, p in m:
        text = atom if isinstance(atom, str) else _render_floor(atom.num, atom.den, py, alone=alone)
        if p > 1:
            if not isinstance(atom, str) and alone is False and not text.startswith("("):
                text = f"({text})"
            text = f"{text}**{p}"
        factors.append(text)
    if coef != 1:
        factors.insert(0, str(coef))
    return "*".join(factors)


def _render_floor(num: Dim, den: Dim, py: bool, alone: bool) -> str:
    ns = num.py() if py else str(num)
    if len(num._p or ()) > 1 or ns.startswith("-"):
        ns = f"({ns})"
    ds = den.py() if py else str(den)
    den_terms = den._p or ()
    if not (den.value is not None and den.value > 0) and not (
        len(den_terms) == 1 and den_terms[0][1] == 1 and len(den_terms[0][0]) == 1
    ):
        ds = f"({ds})"
    text = f"{ns}{'//' if py else '/'}{ds}"
    return text if alone else f"({text})"


_DIM_OPS = {ast.Add: "__add__", ast.Sub: "__sub__", ast.Mult: "__mul__", ast.FloorDiv: "__floordiv__"}


def _parse_dim(text: str) -> Dim:
    stripped = text.strip()
    if stripped in ("?", ""):
        return UNKNOWN
    try:
        node = ast.parse(stripped, mode="eval").body
        return _dim_from_ast(node)
    except (SyntaxError, ValueError):
        return Dim.symbol(stripped)


def _dim_from_ast(node: ast.AST) -> Dim:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return Dim.const(node.value)
    if isinstance(node, (ast.Name, ast.Attribute)):
        parts = []
        cur: ast.AST = node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name):
            raise ValueError("not a dotted name")  # noqa: TRY004 (caught by _parse_dim)
        parts.append(cur.id)
        return Dim.symbol(".".join(reversed(parts)))
    if isinstance(node, ast.BinOp) and type(node.op) in _DIM_OPS:
        left, right = _dim_from_ast(node.left), _dim_from_ast(node.right)
        return getattr(left, _DIM_OPS[type(node.op)])(right)
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Pow)
        and isinstance(node.right, ast.Constant)
        and type(node.right.value) is int
        and 0 <= node.right.value <= 8
    ):
        base, result = _dim_from_ast(node.left), Dim.const(1)
        for _ in range(node.right.value):
            result = result * base
        return result
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_dim_from_ast(node.operand)
    raise ValueError("not a dimension expression")


def _prod(dims: Iterable[Any]) -> Dim:
    total = Dim.const(1)
    for d in dims:
        total = total * Dim.of(d)
    return total


# =====================================================================================================
# Shapes
# =====================================================================================================
class Shape:
    """A tensor shape: `dims` are all of them (exact=True) or the trailing ones (exact=False)."""

    __slots__ = ("dims", "exact")

    def __init__(self, dims: Iterable[Any] = (), exact: bool = True) -> None:
        self.dims: tuple[Dim, ...] = tuple(Dim.of(d) for d in dims)
        self.exact = exact

    @staticmethod
    def unknown() -> Shape:
        return Shape((), exact=False)

    @staticmethod
    def suffix(*dims: Any) -> Shape:
        return Shape(dims, exact=False)

    @property
    def rank(self) -> int | None:
        return len(self.dims) if self.exact else None

    @property
    def is_unknown(self) -> bool:
        return not self.exact and not self.dims

    @property
    def known(self) -> bool:
        """Rank and every dimension known as an int."""
        return self.exact and all(d.value is not None for d in self.dims)

    def at(self, i: int) -> Dim:
        """Dimension i (negative counts from the end); UNKNOWN when not known or out of range."""
        n = len(self.dims)
        if i < 0:
            return self.dims[i] if -i <= n else UNKNOWN
        if self.exact and i < n:
            return self.dims[i]
        return UNKNOWN

    @property
    def numel(self) -> Dim:
        return _prod(self.dims) if self.exact else UNKNOWN

    def subs(self, env: Mapping[str, Any]) -> Shape:
        return Shape((d.subs(env) for d in self.dims), self.exact)

    def symbols(self) -> set[str]:
        found: set[str] = set()
        for d in self.dims:
            found |= d.symbols()
        return found

    def ints(self) -> tuple[int, ...] | None:
        """The dims as ints when the shape is fully known."""
        if not self.known:
            return None
        return tuple(d.value for d in self.dims)  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Shape):
            return self.exact == other.exact and self.dims == other.dims
        if isinstance(other, (tuple, list)) and self.exact:
            return len(other) == len(self.dims) and all(d == o for d, o in zip(self.dims, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.dims, self.exact))

    def __str__(self) -> str:
        return format_shape(self)

    def __repr__(self) -> str:
        return f"Shape({format_shape(self)})"


def shape(*dims: Any) -> Shape:
    """`shape(4, "c", "h//2")`: a Shape of known rank."""
    return Shape(dims)


def format_shape(s: Shape | None) -> str:
    if s is None or (not s.exact and not s.dims):
        return "[...]"
    body = ", ".join(str(d) for d in s.dims)
    if s.exact:
        return f"[{body}]"
    return f"[..., {body}]"


def same_shape(a: Shape | None, b: Shape | None) -> bool | None:
    if a is None or b is None:
        return None
    if a.exact and b.exact and len(a.dims) != len(b.dims):
        return False
    if not (a.exact and b.exact):
        n = min(len(a.dims), len(b.dims))
        if any(same(x, y) is False for x, y in zip(a.dims[len(a.dims) - n :], b.dims[len(b.dims) - n :])):
            return False
        return None
    answers = [same(x, y) for x, y in zip(a.dims, b.dims)]
    if any(v is False for v in answers):
        return False
    if all(v is True for v in answers):
        return True
    return None


@dataclass(frozen=True)
class Repeated:
    """A tuple/list of tensors of unknown length, each of shape `item`."""

    item: Shape


@dataclass(frozen=True)
class Mask:
    """A boolean mask used as an index (`x[mask]`)."""

    shape: Shape


@dataclass(frozen=True)
class ShapeError:
    """What torch raises (see the module docstring)."""

    message: str
    exception: str = "RuntimeError"
    code: str | None = None
    argument: str | None = None
    expected: Dim | None = None
    input_index: int | None = None
    warning: bool = False
    shape: Shape | None = field(default=None, compare=False)
    exact_message: bool = True  # False: torch's wording depends on strides/requires_grad; ours describes it

    def __str__(self) -> str:
        return f"{self.exception}: {self.message}"


def _err(message: str, exception: str = "RuntimeError", **kw: Any) -> ShapeError:
    return ShapeError(message, exception, **kw)


def _fmt_list(dims: Iterable[Any]) -> str:
    """`[2, 3, 4]` like torch prints sizes."""
    return "[" + ", ".join(str(Dim.of(d)) for d in dims) + "]"


def _fmt_tuple(dims: Iterable[Any]) -> str:
    return "(" + ", ".join(str(Dim.of(d)) for d in dims) + ")"


def _fmt_size(dims: Iterable[Any]) -> str:
    """`torch.Size([2, 3])`"""
    return f"torch.Size({_fmt_list(dims)})"


def _pd(d: Any) -> str:
    """A dim inside a message, parenthesised when it is a compound expression (`(b*t)x6`)."""
    text = str(Dim.of(d))
    if any(ch in text for ch in "+-*/") and not text.lstrip("-").isdigit():
        return f"({text})"
    return text


# =====================================================================================================
# Broadcasting
# =====================================================================================================
def _bdim(a: Dim, b: Dim) -> Dim | None:
    """The broadcast of two dims; None when they certainly do not broadcast."""
    if _is_one(a) is True:
        return b
    if _is_one(b) is True:
        return a
    if same(a, b) is True:
        return a if a.value is not None or b.value is None else b
    av, bv = a.value, b.value
    if av is not None and bv is not None:
        return None  # both ints, different, neither 1
    # one known int k != 1: the result is k whenever the op succeeds (the other is k or 1)
    if av is not None and av != 1:
        return a
    if bv is not None and bv != 1:
        return b
    return UNKNOWN


def broadcast(*shapes: Shape | None, names: tuple[str, str] = ("a", "b")) -> Shape | ShapeError:
    """The broadcast shape of tensors; a ShapeError (torch's message) when certainly incompatible.
    None entries are unknown tensors."""
    if shapes and all(s is None for s in shapes):
        return Shape.unknown()
    result: Shape | None = None
    for s in shapes:
        if s is None:
            widened = _broadcast2(result, Shape.unknown()) if result is not None else Shape.unknown()
            if isinstance(widened, ShapeError):
                return widened
            result = widened
            continue
        if result is None:
            result = s
            continue
        out = _broadcast2(result, s)
        if isinstance(out, ShapeError):
            return out
        result = out
    return result if result is not None else Shape(())


def _broadcast2(a: Shape, b: Shape) -> Shape | ShapeError:
    if a.is_unknown or b.is_unknown:
        # nothing known of one side: the other's sizes hold for the result only if the op succeeds, and
        # the op may itself fail (sizes learned so are no proof that a later op fails)
        return Shape.unknown()
    na, nb = len(a.dims), len(b.dims)
    n = max(na, nb)
    exact = a.exact and b.exact
    out: list[Dim] = []
    for i in range(n):
        # i-th from the right
        da = a.dims[na - 1 - i] if i < na else (Dim.const(1) if a.exact else UNKNOWN)
        db = b.dims[nb - 1 - i] if i < nb else (Dim.const(1) if b.exact else UNKNOWN)
        r = _bdim(da, db)
        if r is None:
            if exact:
                pos = n - 1 - i
                return _err(
                    f"The size of tensor a ({da}) must match the size of tensor b ({db}) "
                    f"at non-singleton dimension {pos}",
                    code="GG507",
                )
            # without the full rank the dimension index torch prints is not known
            return _err(
                f"The size of tensor a ({da}) must match the size of tensor b ({db}) at non-singleton dimension",
                code="GG507",
            )
        out.append(r)
    out.reverse()
    if not exact:
        # an unknown-rank operand may add leading dims and may broadcast the known ones
        if not a.exact and not b.exact:
            return Shape(out, exact=False)
        # the exact one's dims may still be broadcast by leading unknown dims of the other: those
        # positions become unknown unless already known not to be 1
        short = a if not a.exact else b
        fixed = []
        for i, d in enumerate(out):
            from_right = len(out) - 1 - i
            covered = from_right < len(short.dims)
            fixed.append(d if covered or (d.value is not None and d.value != 1) else UNKNOWN)
        return Shape(fixed, exact=False)
    return Shape(out)


# =====================================================================================================
# Helpers shared by layers and ops
# =====================================================================================================
class _Unknown(Exception):
    """Raised inside a rule when the result cannot be known: the rule returns None."""


_REQ = object()  # a parameter without default


@dataclass
class _Sig:
    params: list[tuple[str, Any]]
    varargs: str | None
    kwonly: dict[str, Any]
    varkw: bool


def _parse_sig(text: str) -> _Sig:
    fn = ast.parse(f"def f({text}): pass").body[0]
    assert isinstance(fn, ast.FunctionDef)
    a = fn.args
    positional = a.posonlyargs + a.args
    defaults = [_REQ] * (len(positional) - len(a.defaults)) + [_literal(d) for d in a.defaults]
    params = [(arg.arg, d) for arg, d in zip(positional, defaults)]
    kwonly = {arg.arg: (_REQ if d is None else _literal(d)) for arg, d in zip(a.kwonlyargs, a.kw_defaults)}
    return _Sig(params, a.vararg.arg if a.vararg else None, kwonly, a.kwarg is not None)


def _literal(node: ast.expr) -> Any:
    """A signature's default value (no `ast.literal_eval`: its recursive closures are cyclic garbage,
    and signatures are parsed while a file is checked, with the cyclic GC paused)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _literal(node.operand)
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(e) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    return ast.unparse(node)


def _bind(sig: _Sig, args: tuple | list, kwargs: Mapping[str, Any]) -> dict | None:
    """Bind like Python would; None where Python would raise TypeError."""
    bound: dict[str, Any] = {}
    args = list(args)
    for (name, _), value in zip(sig.params, args):
        bound[name] = value
    extra = args[len(sig.params) :]
    if extra:
        if sig.varargs is None:
            return None
        bound[sig.varargs] = tuple(extra)
    elif sig.varargs is not None:
        bound[sig.varargs] = ()
    rest: dict[str, Any] = {}
    names = {n for n, _ in sig.params}
    for key, value in kwargs.items():
        if key in bound:
            return None
        if key in names or key in sig.kwonly:
            bound[key] = value
        elif sig.varkw:
            rest[key] = value
        else:
            return None
    for name, default in [*sig.params, *sig.kwonly.items()]:
        if name not in bound:
            if default is _REQ:
                return None
            bound[name] = default
    if sig.varkw:
        bound["**"] = rest
    return bound


def _as_shape(x: Any) -> Shape:
    if isinstance(x, Shape):
        return x
    if x is None or x is UNKNOWN:
        return Shape.unknown()
    raise _Unknown


def _opt_shape(x: Any) -> Shape | None:
    """A tensor argument that may be absent (None): Shape or None; UNKNOWN -> unknown shape."""
    if x is None:
        return None
    if isinstance(x, Shape):
        return x
    if x is UNKNOWN:
        return Shape.unknown()
    raise _Unknown


def _int(v: Any) -> Dim:
    """An int-valued argument as a Dim (UNKNOWN when not an int)."""
    if isinstance(v, Dim):
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        return UNKNOWN
    return Dim.const(v)


def _pyint(v: Any) -> int | None:
    """A Python int argument (dims, counts) or None when not known."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, Dim):
        return v.value
    return None


def _flag(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and not isinstance(v, Dim):
        return bool(v)
    if v is None:
        return False
    return None


def _need_flag(v: Any) -> bool:
    f = _flag(v)
    if f is None:
        raise _Unknown
    return f


def _tuple(v: Any, n: int) -> tuple[Dim, ...] | None:
    """torch's _ntuple: an iterable as is, anything else repeated n times; None when unknown."""
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            return None
        return tuple(_int(x) for x in v)
    d = _int(v)
    if d.is_unknown:
        return None
    return (d,) * n


def _need_tuple(v: Any, n: int) -> tuple[Dim, ...]:
    t = _tuple(v, n)
    if t is None:
        raise _Unknown
    return t


def _seq(v: Any) -> tuple | None:
    """A size argument given as a tuple/list/torch.Size (a Shape's dims work too)."""
    if isinstance(v, (tuple, list)):
        return tuple(v)
    if isinstance(v, Shape) and v.exact:
        return v.dims
    return None


def _sizes(args: tuple) -> tuple[Dim, ...] | None:
    """`f(2, 3)` / `f((2, 3))` / `f([2, 3])` / `f(x.size())` size arguments (None for `f()`: a TypeError)."""
    if not args:
        return None
    if len(args) == 1:
        inner = _seq(args[0])
        if inner is not None:
            args = inner
    out = []
    for a in args:
        if isinstance(a, (Shape, str, float)) or a is None:
            return None
        d = _int(a)
        out.append(d)
    return tuple(out)


def _split_tail(x: Shape, n: int) -> tuple[Shape, list[Dim]]:
    """(leading dims, the last n dims) -- unknown dims where an unknown-rank shape has too few."""
    if len(x.dims) >= n:
        return Shape(x.dims[: len(x.dims) - n], x.exact), list(x.dims[len(x.dims) - n :])
    if x.exact:
        raise _Unknown
    return Shape((), False), [UNKNOWN] * (n - len(x.dims)) + list(x.dims)


def _join(lead: Shape, tail: Iterable[Any]) -> Shape:
    return Shape(lead.dims + tuple(Dim.of(d) for d in tail), lead.exact)


def _lt(a: Any, b: Any) -> bool | None:
    d = (Dim.of(a) - Dim.of(b)).value
    return None if d is None else d < 0


def _range_msg(d: int, rank: int) -> ShapeError:
    r = max(rank, 1)
    return _err(
        f"Dimension out of range (expected to be in range of [{-r}, {r - 1}], but got {d})", "IndexError"
    )


def _dim_index(x: Shape, d: Any, extra: int = 0) -> int:
    """Normalise a dim argument: a non-negative index for exact shapes, a negative one for suffix
    shapes. `extra` widens the range (unsqueeze: rank+1). Raises _DimError / _Unknown."""
    v = _pyint(d)
    if v is None:
        raise _Unknown
    if x.exact:
        r = len(x.dims) + extra
        lo, hi = -max(r, 1), max(r, 1) - 1
        if v < lo or v > hi:
            raise _Raise(_range_msg(v, r))
        return v % max(r, 1) if r else 0
    if v < 0 and -v <= len(x.dims) + extra:
        return v
    raise _Unknown


class _Raise(Exception):
    """Carries a ShapeError out of nested helpers."""

    def __init__(self, error: ShapeError) -> None:
        self.error = error


def _real_dim(x: Shape, d: Any) -> int:
    """_dim_index for ops that need an actual dimension (not the 0-d tensor's pseudo dim 0)."""
    i = _dim_index(x, d)
    if x.exact and not x.dims:
        raise _Unknown
    return i


def _pos(x: Shape, i: int) -> int:
    """A list position for index i (negative for suffix shapes) in x.dims."""
    return i if i >= 0 else len(x.dims) + i


def _x_dims_str(x: Shape) -> str:
    if x.exact:
        return _fmt_list(x.dims)
    return "[..., " + ", ".join(str(d) for d in x.dims) + "]" if x.dims else "[...]"


def _run(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except _Raise as r:
        return r.error
    except _Unknown:
        return None
    except (TypeError, ValueError, ZeroDivisionError, IndexError, KeyError, AttributeError):
        if _STRICT:
            raise
        return None


_STRICT = False  # tests set this: a bug in a rule raises instead of giving "unknown"


# =====================================================================================================
# Core shape functions (shared by layers and their functional forms)
# =====================================================================================================
def _conv(
    x: Shape,
    n: int,
    in_ch: Dim,
    out_ch: Dim,
    k: tuple[Dim, ...],
    s: tuple[Dim, ...],
    p: tuple[Dim, ...] | str,
    d: tuple[Dim, ...],
    groups: Dim,
    *,
    transposed: bool = False,
    output_padding: tuple[Dim, ...] | None = None,
    output_size: tuple[Dim, ...] | None = None,
    argument: str = "in_channels",
) -> Shape | ShapeError:
    fname = f"conv_transpose{n}d" if transposed else f"conv{n}d"
    if x.exact and len(x.dims) not in (n + 1, n + 2):
        return _err(
            f"Expected {n + 1}D (unbatched) or {n + 2}D (batched) input to {fname}, "
            f"but got input of size: {_fmt_list(x.dims)}"
        )
    lead, tail = _split_tail(x, n + 1)
    channels, spatial = tail[0], tail[1:]
    if same(channels, in_ch) is False:
        if transposed:
            weight = [in_ch, out_ch // groups, *k]
            prefix = "Given transposed=1"
        else:
            weight = [out_ch, in_ch // groups, *k]
            prefix = f"Given groups={groups}"
        shown = _x_dims_str(x) if not x.exact or len(x.dims) == n + 2 else _fmt_list((1, *x.dims))
        return _err(
            f"{prefix}, weight of size {_fmt_list(weight)}, expected input{shown} to have {in_ch} channels, "
            f"but got {channels} channels instead",
            code="GG501",
            argument=argument,
            expected=channels,
            input_index=0,
        )
    if transposed:
        assert isinstance(p, tuple)
        return _conv_transposed(lead, spatial, n, out_ch, k, s, p, d, output_padding, output_size)
    outs: list[Dim] = []
    if p == "same":
        return _join(lead, [out_ch, *spatial])
    if p == "valid":
        p = (Dim.const(0),) * n
    assert isinstance(p, tuple)
    padded = [spatial[i] + 2 * p[i] for i in range(n)]
    kernel = [d[i] * (k[i] - 1) + 1 for i in range(n)]
    if any(_lt(padded[i], kernel[i]) is True for i in range(n)):
        return _err(
            f"Calculated padded input size per channel: ({' x '.join(str(v) for v in padded)}). "
            f"Kernel size: ({' x '.join(str(v) for v in kernel)}). Kernel size can't be greater than actual "
            "input size"
        )
    for i in range(n):
        outs.append((padded[i] - kernel[i]) // s[i] + 1)
    return _join(lead, [out_ch, *outs])


def _conv_transposed(
    lead: Shape,
    spatial: list[Dim],
    n: int,
    out_ch: Dim,
    k: tuple[Dim, ...],
    s: tuple[Dim, ...],
    p: tuple[Dim, ...],
    d: tuple[Dim, ...],
    output_padding: tuple[Dim, ...] | None,
    output_size: tuple[Dim, ...] | None,
) -> Shape | ShapeError:
    """The output of conv_transpose{n}d on an input whose channels fit."""
    outs: list[Dim] = []
    op = output_padding or (Dim.const(0),) * n
    bad = [
        i for i in range(n) if _lt(op[i], s[i]) is False and _lt(op[i], d[i]) is False
    ]  # torch: output_padding < stride or < dilation
    if bad:
        # conv_transpose1d runs as a 2-d one with a height of 1
        names = ["depth", "height", "width"][3 - max(n, 2) :]
        parts = []
        for label, values, pad in (("output_padding", op, 0), ("stride", s, 1), ("dilation", d, 1)):
            shown = ([Dim.const(pad)] if n == 1 else []) + list(values)
            for name, v in zip(names, shown):
                parts.append(f"{label}_{name}: {v}")
        return _err(
            "output padding must be smaller than either stride or dilation, but got " + " ".join(parts)
        )
    for i in range(n):
        outs.append((spatial[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1)
    if output_size is not None:
        return _join(lead, [out_ch, *output_size])
    for o in outs:
        if o.value is not None and o.value <= 0:
            raise _Unknown  # torch fails with a backend-dependent message
    return _join(lead, [out_ch, *outs])


def _pool_len(length: Dim, k: Dim, s: Dim, p: Dim, d: Dim, ceil_mode: bool) -> Dim:
    span = length + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = (span + s - 1) // s + 1
    if all(v.value is not None for v in (length, k, s, p, d)):
        if ((out - 1) * s - (length + p)).value >= 0:  # type: ignore[operator]
            out = out - 1
        return out
    # no adjustment when the last window always starts inside the input or left padding:
    # (out-1)*s <= L + 2p - d(k-1) - 2 + s < L + p  <=>  s + p <= d(k-1) + 1
    if _lt(d * (k - 1) + 1 - s - p, 0) is False:
        return out
    return UNKNOWN


def _pool(
    x: Shape,
    n: int,
    kind: str,
    k: tuple[Dim, ...],
    s: tuple[Dim, ...],
    p: tuple[Dim, ...],
    d: tuple[Dim, ...],
    ceil_mode: bool,
    return_indices: bool = False,
) -> Any:
    if x.exact and len(x.dims) not in (n + 1, n + 2):
        if kind == "max" and n == 1:
            return _err(
                "max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size for input, "
                f"but got:{_fmt_list(x.dims)}"
            )
        if kind == "max":
            return _err(f"non-empty {n + 1}D or {n + 2}D (batch mode) tensor expected for input")
        raise _Unknown
    for i in range(n):
        half = (d[i] * (k[i] - 1) + 1) // 2
        if _lt(half, p[i]) is True:
            if kind == "max" and n == 1:
                return _err(
                    f"max_pool1d() padding should be at most half of kernel size, but got padding={p[i]} "
                    f"and kernel_size={k[i]}"
                )
            return _err(
                f"pad should be at most half of effective kernel size, but got pad={p[i]}, "
                f"kernel_size={k[i]} and dilation={d[i]}"
            )
    lead, tail = _split_tail(x, n + 1)
    channels, spatial = tail[0], tail[1:]
    if kind == "avg" and n == 3 and any(_lt(spatial[i], k[i]) is True for i in range(3)):
        return _err(
            f"input image (T: {spatial[0]} H: {spatial[1]} W: {spatial[2]}) smaller than kernel size "
            f"(kT: {k[0]} kH: {k[1]} kW: {k[2]})"
        )
    outs = [_pool_len(spatial[i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(n)]
    if any(o.value is not None and o.value <= 0 for o in outs):
        if kind == "max" and n == 1:
            return _err(f"max_pool1d() Invalid computed output size: {outs[0]}")
        one = [Dim.const(1)] if n == 1 else []  # avg_pool1d runs as a 2-d pool of height 1
        sizes = "x".join(str(v) for v in [channels, *one, *spatial])
        got = "x".join(str(v) for v in [channels, *one, *outs])
        return _err(f"Given input size: ({sizes}). Calculated output size: ({got}). Output size is too small")
    out = _join(lead, [channels, *outs])
    return (out, out) if return_indices else out


def _adaptive(x: Shape, n: int, kind: str, output_size: Any, return_indices: bool = False) -> Any:
    fname = f"adaptive_{kind}_pool{n}d"
    if x.exact and len(x.dims) not in (n + 1, n + 2):
        if n == 1:
            return _err(
                f"Expected 2 to 3 dimensions, but got {len(x.dims)}-dimensional tensor for argument #1 'self' "
                f"(while checking arguments for {fname})"
            )
        sep = ": " if kind == "max" else " "
        return _err(f"{fname}(): Expected {n + 1}D or {n + 2}D tensor, but got{sep}{_fmt_list(x.dims)}")
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != n or (n == 1 and None in output_size):
            raise _Unknown
        sizes = list(output_size)
    else:
        sizes = [output_size] * n
    lead, tail = _split_tail(x, n)
    outs = [tail[i] if sizes[i] is None else _int(sizes[i]) for i in range(n)]
    out = _join(lead, outs)
    return (out, out) if return_indices else out


def _scale_len(length: Dim, scale: Any) -> Dim:
    """floor(length * scale) as torch computes it (in double precision)."""
    if isinstance(scale, bool):
        raise _Unknown
    if isinstance(scale, int):
        return length * scale
    if not isinstance(scale, float):
        raise _Unknown
    if length.value is not None:
        return Dim.const(math.floor(float(length.value) * scale))
    from fractions import Fraction  # only here: it imports decimal

    ratio = Fraction(scale)
    if ratio.denominator > 1024:
        return UNKNOWN
    return (length * ratio.numerator) // ratio.denominator


def _interpolate(
    x: Shape,
    size: Any = None,
    scale_factor: Any = None,
    mode: Any = "nearest",
) -> Shape | ShapeError:
    if not x.exact:
        raise _Unknown
    rank = len(x.dims)
    n = rank - 2
    if size is not None and scale_factor is not None:
        return _err("only one of size or scale_factor should be defined", "ValueError")
    if size is None and scale_factor is None:
        return _err("either size or scale_factor should be defined", "ValueError")
    spatial = list(x.dims[2:])
    if size is not None:
        if isinstance(size, (tuple, list)):
            if len(size) != n:
                return _err(
                    "Input and output must have the same number of spatial dimensions, but got input with "
                    f"spatial dimensions of {_fmt_list(spatial)} and output size of {_fmt_tuple(size)}. Please "
                    "provide input tensor in (N, C, d1, d2, ...,dK) format and output size in (o1, o2, ...,oK) "
                    "format.",
                    "ValueError",
                )
            outs = [_int(v) for v in size]
        else:
            outs = [_int(size)] * max(n, 0)
    else:
        if isinstance(scale_factor, (tuple, list)):
            if len(scale_factor) != n:
                return _err(
                    "Input and scale_factor must have the same number of spatial dimensions, but got input with "
                    f"spatial dimensions of {_fmt_list(spatial)} and scale_factor of shape "
                    f"{_fmt_tuple(scale_factor)}. Please provide input tensor in (N, C, d1, d2, ...,dK) format "
                    "and scale_factor in (s1, s2, ...,sK) format.",
                    "ValueError",
                )
            scales = list(scale_factor)
        else:
            scales = [scale_factor] * max(n, 0)
        outs = [_scale_len(spatial[i], scales[i]) for i in range(n)]
    if not isinstance(mode, str):
        raise _Unknown
    needs = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}
    if mode in needs and rank in (3, 4, 5) and rank != needs[mode]:
        return _err(f"Got {rank}D input, but {mode} mode needs {needs[mode]}D input", "NotImplementedError")
    if rank in (3, 4, 5) and any(o.value is not None and o.value <= 0 for o in outs):
        raise _Unknown  # "Input and output sizes should be greater than 0, ..."
    if rank not in (3, 4, 5):
        return _err(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {rank}D) for the modes: nearest | "
            f"linear | bilinear | bicubic | trilinear | lanczos | area | nearest-exact (got {mode})",
            "NotImplementedError",
        )
    return Shape([*x.dims[:2], *outs])


def _pad(x: Shape, pad: Any, mode: Any = "constant") -> Shape | ShapeError:
    seq = _seq(pad)
    if seq is None:
        raise _Unknown
    if len(seq) % 2:
        return _err("Padding length must be divisible by 2")
    half = len(seq) // 2
    if x.exact and half > len(x.dims):
        return _err(
            "Padding length should be less than or equal to two times the input dimension but got padding "
            f"length {len(seq)} and input of dimension {len(x.dims)}"
        )
    if mode != "constant" and x.exact and len(x.dims) not in (half + 1, half + 2):
        return _err(
            f"Padding size {len(seq)} is not supported for {len(x.dims)}D input tensor.",
            "NotImplementedError",
        )
    dims = list(x.dims)
    if len(dims) < half:
        dims = [UNKNOWN] * (half - len(dims)) + dims
    for i in range(half):
        pos = len(dims) - 1 - i
        left, right = _int(seq[2 * i]), _int(seq[2 * i + 1])
        if mode != "constant":
            # reflect/replicate/circular have further limits (pads below the size, no wrapping twice,
            # non-negative output) with mode-specific messages: only the plain cases are modelled, and a
            # symbolic size is taken to be larger than the pad
            for p in (left, right):
                if p.value is None or p.value < 0 or _lt(p, dims[pos]) is False:
                    raise _Unknown
        dims[pos] = dims[pos] + left + right
        size = dims[pos].value
        if size is not None and size < (0 if mode == "constant" else 1):
            raise _Unknown  # torch fails (negative padding past the size)
    return Shape(dims, x.exact)


def _flatten(x: Shape, start: Any, end: Any) -> Shape | ShapeError:
    if x.exact and not x.dims:
        for v in (start, end):
            iv = _pyint(v)
            if iv is None:
                raise _Unknown
            if iv not in (0, -1):
                return _range_msg(iv, 0)
        return Shape((1,))
    s = _dim_index(x, start)
    e = _dim_index(x, end)
    ps, pe = _pos(x, s), _pos(x, e)
    if ps > pe:
        return _err("flatten() has invalid args: start_dim cannot come after end_dim")
    dims = list(x.dims)
    return Shape(dims[:ps] + [_prod(dims[ps : pe + 1])] + dims[pe + 1 :], x.exact)


def _unflatten(x: Shape, dim_arg: Any, sizes: Any) -> Shape | ShapeError:
    seq = _seq(sizes)
    if seq is None:
        raise _Unknown
    i = _real_dim(x, dim_arg)
    p = _pos(x, i)
    size = x.dims[p]
    new = [_int(v) for v in seq]
    holes = [j for j, v in enumerate(new) if v.value == -1]
    if len(holes) > 1:
        return _err("only one dimension can be inferred")
    known = _prod(v for v in new if v.value != -1)
    shown_dim = i if i >= 0 else p if x.exact else i
    if holes:
        q = size.exact_div(known)
        if q is None:
            if size.value is not None and known.value is not None:
                return _err(
                    f"unflatten: Provided sizes {_fmt_list(new)} don't multiply up to the size of dim "
                    f"{shown_dim} ({size}) in the input tensor",
                    code="GG506",
                )
            q = UNKNOWN
        new[holes[0]] = q
    elif same(known, size) is False:
        return _err(
            f"unflatten: Provided sizes {_fmt_list(new)} don't multiply up to the size of dim {shown_dim} "
            f"({size}) in the input tensor",
            code="GG506",
        )
    dims = list(x.dims)
    return Shape(dims[:p] + new + dims[p + 1 :], x.exact)


def _linear(x: Shape, in_f: Dim, out_f: Dim | None, argument: str = "in_features") -> Shape | ShapeError:
    if x.exact and not x.dims:
        return _err("both arguments to linear need to be at least 1D, but they are 0D and 2D")
    k = x.at(-1)
    if same(k, in_f) is False:
        rows = _prod(x.dims[:-1]) if x.exact else UNKNOWN
        cols = out_f if out_f is not None else 1
        return _err(
            f"mat1 and mat2 shapes cannot be multiplied ({_pd(rows)}x{_pd(k)} and {_pd(in_f)}x{_pd(cols)})",
            code="GG501",
            argument=argument,
            expected=k,
            input_index=0,
        )
    lead = Shape(x.dims[:-1], x.exact) if x.dims else Shape((), False)
    return _join(lead, [out_f]) if out_f is not None else lead


# =====================================================================================================
# Layers
# =====================================================================================================
@dataclass
class _LayerDef:
    name: str
    sig_text: str
    forward: Callable[..., Any]
    check: Callable[[LayerSpec], ShapeError | None] | None = None
    count: Callable[[LayerSpec], Dim | None] | None = None

    @property
    def sig(self) -> _Sig:
        return _parse_sig_cached(self.sig_text)


_LAYERS: dict[str, _LayerDef] = {}


def _layer(
    names: str,
    sig: str,
    *,
    check: Callable[[LayerSpec], ShapeError | None] | None = None,
    count: Callable[[LayerSpec], Dim | None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names.split():
            _LAYERS[name] = _LayerDef(name, sig, fn, check, count)
        return fn

    return register


class LayerSpec:
    """A torch.nn layer with its constructor arguments bound (see the module docstring)."""

    def __init__(self, name: str, qualname: str, params: dict[str, Any], ldef: _LayerDef) -> None:
        self.name = name
        self.qualname = qualname
        self.params = params
        self._def = ldef
        self.error: ShapeError | None = None
        if ldef.check is not None:
            checked = _run(lambda: ldef.check(self))  # type: ignore[misc]
            self.error = checked if isinstance(checked, ShapeError) else None

    def output(self, *inputs: Any, **kwargs: Any) -> Any:
        if self.error is not None:
            return self.error
        if not inputs and not kwargs:
            return None
        return _run(lambda: self._def.forward(self, inputs, kwargs))

    def parameter_count(self) -> Dim | None:
        if self._def.count is None:
            return None
        result = _run(lambda: self._def.count(self))  # type: ignore[misc]
        if not isinstance(result, Dim) or result.is_unknown:
            return None
        return result

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def __str__(self) -> str:
        shown = []
        for name, default in self._def.sig.params:
            value = self.params.get(name, default)
            if name in ("device", "dtype") or (default is not _REQ and value == default):
                continue
            if isinstance(value, LayerSpec):
                value = value.name
            shown.append(f"{name}={value}")
        for value in self.params.get("modules", ()):
            shown.append(str(value) if value is not None else "?")
        return f"{self.name}({', '.join(shown)})"

    def __repr__(self) -> str:
        return f"LayerSpec({self})"


def layer_spec(
    qualname: str, args: tuple | list = (), kwargs: Mapping[str, Any] | None = None
) -> LayerSpec | None:
    """The spec of `torch.nn.<Layer>(*args, **kwargs)`, or None (not a modelled layer / does not bind)."""
    name = _layer_name(qualname)
    if name is None:
        return None
    ldef = _LAYERS.get(name)
    if ldef is None:
        return None
    kwargs = dict(kwargs or {})
    if name == "RNN":
        try:
            args, kwargs = _rnn_args(name, args, kwargs)
        except _Unknown:
            return None
    sig = _parse_sig_cached(_RNN_SIG_NL) if name == "RNN" else ldef.sig
    params = _bind(sig, args, kwargs)
    if params is None:
        return None
    return LayerSpec(name, qualname, params, ldef)


def layer_names() -> list[str]:
    return sorted(_LAYERS)


def _layer_name(qualname: str) -> str | None:
    parts = qualname.split(".")
    if (
        len(parts) >= 3
        and parts[:2] == ["torch", "nn"]
        and parts[-1][:1].isupper()
        and (len(parts) == 3 or parts[2] == "modules")
    ):
        return parts[-1]
    return None


def _inputs(inputs: tuple, n: int) -> list[Shape]:
    if len(inputs) < n:
        raise _Unknown
    return [_as_shape(i) for i in inputs[:n]]


def _forward_args(sig: str, inputs: tuple, kwargs: Mapping[str, Any]) -> dict:
    bound = _bind(_parse_sig_cached(sig), inputs, kwargs)
    if bound is None:
        raise _Unknown
    return bound


_SIG_CACHE: dict[str, _Sig] = {}


def _parse_sig_cached(sig: str) -> _Sig:
    parsed = _SIG_CACHE.get(sig)
    if parsed is None:
        parsed = _SIG_CACHE[sig] = _parse_sig(sig)
    return parsed


def _dim_sum(values: Iterable[Dim]) -> Dim:
    total = Dim.const(0)
    for v in values:
        total = total + v
    return total


# -- Linear -------------------------------------------------------------------------------------------
def _count_linear(spec: LayerSpec) -> Dim:
    i, o = _int(spec["in_features"]), _int(spec["out_features"])
    return i * o + (o if _need_flag(spec["bias"]) else 0)


@_layer("Linear", "in_features, out_features, bias=True, device=None, dtype=None", count=_count_linear)
def _f_linear(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return _linear(x, _int(spec["in_features"]), _int(spec["out_features"]))


@_layer("LazyLinear", "out_features, bias=True, device=None, dtype=None")
def _f_lazy_linear(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    if x.exact and not x.dims:
        raise _Unknown
    return _join(Shape(x.dims[:-1], x.exact) if x.dims else Shape((), False), [_int(spec["out_features"])])


def _count_bilinear(spec: LayerSpec) -> Dim:
    a, b, o = (_int(spec[k]) for k in ("in1_features", "in2_features", "out_features"))
    return o * a * b + (o if _need_flag(spec["bias"]) else 0)


@_layer(
    "Bilinear",
    "in1_features, in2_features, out_features, bias=True, device=None, dtype=None",
    count=_count_bilinear,
)
def _f_bilinear(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    x1, x2 = _inputs(inputs, 2)
    in1, in2, out = (_int(spec[k]) for k in ("in1_features", "in2_features", "out_features"))
    if x1.exact and x2.exact:
        if len(x1.dims) != len(x2.dims):
            return _err(f"bilinear(): input dimensions do not match: got {len(x1.dims)} and {len(x2.dims)}")
        for i, (a, b) in enumerate(zip(x1.dims[:-1], x2.dims[:-1])):
            if same(a, b) is False:
                return _err(f"bilinear(): input batch dimensions do not match at dim {i}: got {a} and {b}")
    if same(x1.at(-1), in1) is False:
        return _err(
            f"bilinear(): input1 size does not match weight size: got {x1.at(-1)} but expected {in1}",
            code="GG501",
            argument="in1_features",
            expected=x1.at(-1),
            input_index=0,
        )
    if same(x2.at(-1), in2) is False:
        return _err(
            f"bilinear(): input2 size does not match weight size: got {x2.at(-1)} but expected {in2}",
            code="GG501",
            argument="in2_features",
            expected=x2.at(-1),
            input_index=1,
        )
    lead = x1 if x1.exact or not x2.exact else x2
    return _join(Shape(lead.dims[:-1], lead.exact) if lead.dims else Shape((), False), [out])


# -- Convolutions -------------------------------------------------------------------------------------
_CONV_SIG = (
    "in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True, "
    "padding_mode='zeros', device=None, dtype=None"
)
_CONVT_SIG = (
    "in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1, bias=True, "
    "dilation=1, padding_mode='zeros', device=None, dtype=None"
)


def _conv_n(spec: LayerSpec) -> int:
    return int(spec.name[-2])


def _check_conv(spec: LayerSpec) -> ShapeError | None:
    g = _pyint(spec["groups"])
    i, o = _int(spec["in_channels"]), _int(spec["out_channels"])
    if g is not None:
        if g <= 0:
            return _err("groups must be a positive integer", "ValueError")
        if i.value is not None and i.value % g:
            return _err("in_channels must be divisible by groups", "ValueError")
        if o.value is not None and o.value % g:
            return _err("out_channels must be divisible by groups", "ValueError")
    padding = spec["padding"]
    if isinstance(padding, str) and not spec.name.startswith("ConvTranspose"):
        if padding not in ("same", "valid"):
            return _err(f"Invalid padding string {padding!r}, should be one of", "ValueError")
        stride = _tuple(spec["stride"], _conv_n(spec))
        if padding == "same" and stride is not None and any(v.value not in (1, None) for v in stride):
            return _err("padding='same' is not supported for strided convolutions", "ValueError")
    mode = spec["padding_mode"]
    if isinstance(mode, str) and mode not in ("zeros", "reflect", "replicate", "circular"):
        return _err(
            "padding_mode must be one of ['zeros', 'reflect', 'replicate', 'circular'], but got "
            f"padding_mode='{mode}'",
            "ValueError",
        )
    return None


def _count_conv(spec: LayerSpec) -> Dim:
    n = _conv_n(spec)
    i, o, g = _int(spec["in_channels"]), _int(spec["out_channels"]), _int(spec["groups"])
    k = _prod(_need_tuple(spec["kernel_size"], n))
    if spec.name.startswith("ConvTranspose"):
        w = i * (o // g) * k
    else:
        w = o * (i // g) * k
    return w + (o if _need_flag(spec["bias"]) else 0)


@_layer("Conv1d Conv2d Conv3d", _CONV_SIG, check=_check_conv, count=_count_conv)
def _f_conv(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    n = _conv_n(spec)
    padding = spec["padding"]
    pad: tuple[Dim, ...] | str = padding if isinstance(padding, str) else _need_tuple(padding, n)
    return _conv(
        x,
        n,
        _int(spec["in_channels"]),
        _int(spec["out_channels"]),
        _need_tuple(spec["kernel_size"], n),
        _need_tuple(spec["stride"], n),
        pad,
        _need_tuple(spec["dilation"], n),
        _int(spec["groups"]),
    )


@_layer("ConvTranspose1d ConvTranspose2d ConvTranspose3d", _CONVT_SIG, check=_check_conv, count=_count_conv)
def _f_conv_transpose(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    args = _forward_args("input, output_size=None", inputs, kw)
    x = _as_shape(args["input"])
    n = _conv_n(spec)
    if isinstance(spec["padding"], str) or spec["padding_mode"] != "zeros":
        raise _Unknown
    k, s, p, d = (_need_tuple(spec[a], n) for a in ("kernel_size", "stride", "padding", "dilation"))
    output_size = None
    if args["output_size"] is not None:
        seq = _seq(args["output_size"])
        if seq is None or len(seq) not in (n, n + 1, n + 2):
            raise _Unknown
        output_size = tuple(_int(v) for v in seq[len(seq) - n :])
        if x.exact and len(x.dims) in (n + 1, n + 2):
            spatial = x.dims[len(x.dims) - n :]
            low = [(spatial[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1 for i in range(n)]
            high = [low[i] + s[i] - 1 for i in range(n)]
            for i in range(n):
                if _lt(output_size[i], low[i]) is True or _lt(high[i], output_size[i]) is True:
                    return _err(
                        f"requested an output size of {_fmt_list(output_size)}, but valid sizes range from "
                        f"{_fmt_list(low)} to {_fmt_list(high)} (for an input of {_fmt_size(spatial)})",
                        "ValueError",
                    )
    return _conv(
        x,
        n,
        _int(spec["in_channels"]),
        _int(spec["out_channels"]),
        k,
        s,
        p,
        d,
        _int(spec["groups"]),
        transposed=True,
        output_padding=_need_tuple(spec["output_padding"], n),
        output_size=output_size,
    )


# -- Pooling ------------------------------------------------------------------------------------------
def _pool_args(spec: LayerSpec, n: int) -> tuple:
    k = _need_tuple(spec["kernel_size"], n)
    stride = spec["stride"]
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _need_tuple(stride, n)
    p = _need_tuple(spec["padding"], n)
    d = _need_tuple(spec.params.get("dilation", 1), n)
    return k, s, p, d


@_layer(
    "MaxPool1d MaxPool2d MaxPool3d",
    "kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False",
    count=lambda spec: Dim.const(0),
)
def _f_maxpool(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    n = int(spec.name[-2])
    k, s, p, d = _pool_args(spec, n)
    return _pool(x, n, "max", k, s, p, d, _need_flag(spec["ceil_mode"]), _need_flag(spec["return_indices"]))


@_layer(
    "AvgPool1d",
    "kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True",
    count=lambda spec: Dim.const(0),
)
@_layer(
    "AvgPool2d AvgPool3d",
    "kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None",
    count=lambda spec: Dim.const(0),
)
def _f_avgpool(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    n = int(spec.name[-2])
    k, s, p, d = _pool_args(spec, n)
    return _pool(x, n, "avg", k, s, p, d, _need_flag(spec["ceil_mode"]))


@_layer(
    "AdaptiveAvgPool1d AdaptiveAvgPool2d AdaptiveAvgPool3d", "output_size", count=lambda spec: Dim.const(0)
)
def _f_adaptive_avg(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return _adaptive(x, int(spec.name[-2]), "avg", spec["output_size"])


@_layer(
    "AdaptiveMaxPool1d AdaptiveMaxPool2d AdaptiveMaxPool3d",
    "output_size, return_indices=False",
    count=lambda spec: Dim.const(0),
)
def _f_adaptive_max(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return _adaptive(x, int(spec.name[-2]), "max", spec["output_size"], _need_flag(spec["return_indices"]))


# -- Normalisation ------------------------------------------------------------------------------------
_BN_SIG = (
    "num_features, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True, device=None, dtype=None, "
    "*, bias=True"
)
_IN_SIG = (
    "num_features, eps=1e-05, momentum=0.1, affine=False, track_running_stats=False, device=None, "
    "dtype=None, *, bias=True"
)


def _count_affine(spec: LayerSpec) -> Dim:
    if not _need_flag(spec["affine"]):
        return Dim.const(0)
    nf = _int(spec["num_features"] if "num_features" in spec.params else spec["num_channels"])
    return nf + (nf if _need_flag(spec["bias"]) else 0)


@_layer("BatchNorm1d BatchNorm2d BatchNorm3d", _BN_SIG, count=_count_affine)
def _f_batchnorm(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    n = int(spec.name[-2])
    allowed = {1: (2, 3), 2: (4,), 3: (5,)}[n]
    if x.exact and len(x.dims) not in allowed:
        want = " or ".join(f"{r}D" for r in allowed)
        return _err(f"expected {want} input (got {len(x.dims)}D input)", "ValueError")
    nf = _int(spec["num_features"])
    channels = x.at(1) if x.exact else (x.at(-(allowed[0] - 1)) if len(allowed) == 1 else UNKNOWN)
    if same(channels, nf) is False:
        stats, affine = _flag(spec["track_running_stats"]), _flag(spec["affine"])
        if stats is None or affine is None:
            raise _Unknown
        if stats or affine:
            what = "running_mean" if stats else "weight"
            return _err(
                f"{what} should contain {channels} elements not {nf}",
                code="GG501",
                argument="num_features",
                expected=channels,
                input_index=0,
            )
    return x


def _norm_shape(v: Any) -> tuple[Dim, ...]:
    seq = _seq(v)
    if seq is None:
        d = _int(v)
        if d.is_unknown:
            raise _Unknown
        return (d,)
    return tuple(_int(e) for e in seq)


def _check_layer_norm(
    x: Shape, ns: tuple[Dim, ...], argument: str = "normalized_shape", rms: bool = False
) -> ShapeError | None:
    if rms and x.exact and len(x.dims) < len(ns):
        return _err(
            f"Input tensor must have at least {len(ns)} dimensions, but got {len(x.dims)}",
            "ValueError",
            code="GG501",
            input_index=0,
        )
    tail = x.dims[len(x.dims) - len(ns) :] if len(x.dims) >= len(ns) else None
    bad = False
    if tail is None:
        bad = x.exact
    else:
        bad = any(same(a, b) is False for a, b in zip(tail, ns))
    if bad:
        stars = ", ".join(str(d) for d in ns)
        star = f"[*{stars}]" if rms else f"[*, {stars}]"  # rms_norm words it without the comma
        return _err(
            f"Given normalized_shape={_fmt_list(ns)}, expected input with shape {star}, but got input of "
            f"size{_x_dims_str(x)}",
            code="GG501",
            argument=argument,
            expected=(x.at(-1) if len(ns) == 1 else None),
            input_index=0,
        )
    return None


def _count_layer_norm(spec: LayerSpec) -> Dim:
    if not _need_flag(spec["elementwise_affine"]):
        return Dim.const(0)
    size = _prod(_norm_shape(spec["normalized_shape"]))
    if "bias" in spec.params and _need_flag(spec["bias"]):
        return 2 * size
    return size


@_layer(
    "LayerNorm",
    "normalized_shape, eps=1e-05, elementwise_affine=True, bias=True, device=None, dtype=None",
    count=_count_layer_norm,
)
@_layer(
    "RMSNorm",
    "normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None",
    count=_count_layer_norm,
)
def _f_layer_norm(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return _check_layer_norm(x, _norm_shape(spec["normalized_shape"]), rms=spec.name == "RMSNorm") or x


def _check_group_norm(spec: LayerSpec) -> ShapeError | None:
    g, c = _int(spec["num_groups"]), _int(spec["num_channels"])
    if g.value is not None and c.value is not None and g.value and c.value % g.value:
        return _err(f"num_channels ({c}) must be divisible by num_groups ({g})", "ValueError")
    return None


def _group_norm(x: Shape, groups: Dim, channels_param: Dim | None) -> Shape | ShapeError:
    if x.exact and len(x.dims) < 2:
        return _err(f"Expected at least 2 dimensions for input tensor but received {len(x.dims)}")
    c = x.at(1) if x.exact else UNKNOWN
    if c.value is not None and groups.value is not None and groups.value and c.value % groups.value:
        return _err(
            "Expected number of channels in input to be divisible by num_groups, but got input of shape "
            f"{_fmt_list(x.dims)} and num_groups={groups}",
            code="GG501",
            input_index=0,
        )
    if channels_param is not None and same(c, channels_param) is False:
        return _err(
            "Expected weight to be a vector of size equal to the number of channels in input, but got weight "
            f"of shape [{channels_param}] and input of shape {_fmt_list(x.dims)}",
            code="GG501",
            argument="num_channels",
            expected=c,
            input_index=0,
        )
    return x


@_layer(
    "GroupNorm",
    "num_groups, num_channels, eps=1e-05, affine=True, device=None, dtype=None, *, bias=True",
    check=_check_group_norm,
    count=_count_affine,
)
def _f_group_norm(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    affine = _need_flag(spec["affine"])
    return _group_norm(x, _int(spec["num_groups"]), _int(spec["num_channels"]) if affine else None)


@_layer("InstanceNorm1d InstanceNorm2d InstanceNorm3d", _IN_SIG, count=_count_affine)
def _f_instance_norm(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    n = int(spec.name[-2])
    if x.exact and len(x.dims) not in (n + 1, n + 2):
        return _err(f"expected {n + 1}D or {n + 2}D input (got {len(x.dims)}D input)", "ValueError")
    if not x.exact:
        return x
    feature_dim = len(x.dims) - (n + 1)
    c = x.dims[feature_dim]
    nf = _int(spec["num_features"])
    if same(c, nf) is False:
        if _need_flag(spec["affine"]):
            return _err(
                f"expected input's size at dim={feature_dim} to match num_features ({nf}), but got: {c}.",
                "ValueError",
                code="GG501",
                argument="num_features",
                expected=c,
                input_index=0,
            )
        if _need_flag(spec["track_running_stats"]):
            raise _Unknown
    return x


@_layer("LocalResponseNorm", "size, alpha=0.0001, beta=0.75, k=1.0", count=lambda spec: Dim.const(0))
def _f_identity1(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return x


# -- Element-wise layers ------------------------------------------------------------------------------
_IDENTITY_LAYERS = {
    "Dropout": "p=0.5, inplace=False",
    "Dropout1d": "p=0.5, inplace=False",
    "Dropout2d": "p=0.5, inplace=False",
    "Dropout3d": "p=0.5, inplace=False",
    "AlphaDropout": "p=0.5, inplace=False",
    "FeatureAlphaDropout": "p=0.5, inplace=False",
    "ReLU": "inplace=False",
    "ReLU6": "inplace=False",
    "SELU": "inplace=False",
    "SiLU": "inplace=False",
    "Mish": "inplace=False",
    "Hardswish": "inplace=False",
    "Hardsigmoid": "inplace=False",
    "LeakyReLU": "negative_slope=0.01, inplace=False",
    "ELU": "alpha=1.0, inplace=False",
    "CELU": "alpha=1.0, inplace=False",
    "GELU": "approximate='none'",
    "Sigmoid": "",
    "Tanh": "",
    "Softsign": "",
    "Tanhshrink": "",
    "LogSigmoid": "",
    "Hardtanh": "min_val=-1.0, max_val=1.0, inplace=False, min_value=None, max_value=None",
    "Softplus": "beta=1.0, threshold=20.0",
    "Softshrink": "lambd=0.5",
    "Hardshrink": "lambd=0.5",
    "Threshold": "threshold, value, inplace=False",
    "RReLU": "lower=0.125, upper=0.3333333333333333, inplace=False",
    "Identity": "*args, **kwargs",
}
for _name, _sig in _IDENTITY_LAYERS.items():
    _layer(_name, _sig, count=lambda spec: Dim.const(0))(_f_identity1)


@_layer("Softmax LogSoftmax Softmin", "dim=None", count=lambda spec: Dim.const(0))
def _f_softmax(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return _same_with_dim(x, spec["dim"])


def _same_with_dim(x: Shape, d: Any) -> Shape:
    if d is not None:
        _dim_index(x, d)
    return x


@_layer("Softmax2d", "*args, **kwargs", count=lambda spec: Dim.const(0))
def _f_softmax2d(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    if x.exact and len(x.dims) not in (3, 4):
        return _err(f"Softmax2d: expected input to be 3D or 4D, got {len(x.dims)}D instead", "ValueError")
    return x


@_layer(
    "PReLU", "num_parameters=1, init=0.25, device=None, dtype=None", count=lambda s: _int(s["num_parameters"])
)
def _f_prelu(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    num = _int(spec["num_parameters"])
    if num.value == 1 or not x.exact:
        return x
    channels = x.dims[1] if len(x.dims) >= 2 else (x.dims[0] if x.dims else Dim.const(1))
    if same(channels, num) is False:
        return _err(
            "Mismatch of parameter numbers and input channel size. Found parameter numbers = "
            f"{num} and channel size = {channels}.",
            code="GG501",
            argument="num_parameters",
            expected=channels,
            input_index=0,
        )
    return x


@_layer("GLU", "dim=-1", count=lambda spec: Dim.const(0))
def _f_glu(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return _glu(x, spec["dim"])


def _glu(x: Shape, d: Any) -> Shape | ShapeError:
    if x.exact and not x.dims:
        return _err("glu does not support scalars because halving size must be even")
    i = _dim_index(x, d)
    p = _pos(x, i)
    size = x.dims[p]
    if size.value is not None and size.value % 2:
        return _err(f"Halving dimension must be even, but dimension {i} is size {size}")
    half = size.exact_div(2)
    dims = list(x.dims)
    dims[p] = half if half is not None else UNKNOWN
    return Shape(dims, x.exact)


@_layer("ChannelShuffle", "groups", count=lambda spec: Dim.const(0))
def _f_channel_shuffle(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return x


# -- Embeddings ---------------------------------------------------------------------------------------
def _check_embedding(spec: LayerSpec) -> ShapeError | None:
    idx = _pyint(spec["padding_idx"])
    num = _int(spec["num_embeddings"]).value
    if idx is not None and num is not None and not (-num <= idx < num):
        return _err("Padding_idx must be within num_embeddings", "AssertionError")
    return None


@_layer(
    "Embedding",
    "num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, "
    "sparse=False, _weight=None, _freeze=False, device=None, dtype=None",
    check=_check_embedding,
    count=lambda s: _int(s["num_embeddings"]) * _int(s["embedding_dim"]),
)
def _f_embedding(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return _join(x, [_int(spec["embedding_dim"])])


@_layer(
    "EmbeddingBag",
    "num_embeddings, embedding_dim, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, mode='mean', "
    "sparse=False, _weight=None, include_last_offset=False, padding_idx=None, device=None, dtype=None",
    check=_check_embedding,
    count=lambda s: _int(s["num_embeddings"]) * _int(s["embedding_dim"]),
)
def _f_embedding_bag(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    args = _forward_args("input, offsets=None, per_sample_weights=None", inputs, kw)
    x = _as_shape(args["input"])
    offsets = _opt_shape(args["offsets"])
    dim_ = _int(spec["embedding_dim"])
    if not x.exact:
        raise _Unknown
    if len(x.dims) == 2:
        if offsets is not None:
            return _err(
                "if input is 2D, then offsets has to be None, as input is treated is a mini-batch of fixed length "
                "sequences. However, found offsets of type <class 'torch.Tensor'>",
                "ValueError",
            )
        return Shape((x.dims[0], dim_))
    if len(x.dims) == 1:
        if offsets is None:
            return _err("offsets has to be a 1D Tensor but got None", "ValueError")
        if not offsets.exact or len(offsets.dims) != 1:
            raise _Unknown
        bags = offsets.dims[0] - (1 if _need_flag(spec["include_last_offset"]) else 0)
        return Shape((bags, dim_))
    return _err(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {len(x.dims)}", "ValueError")


# -- Flatten ------------------------------------------------------------------------------------------
@_layer("Flatten", "start_dim=1, end_dim=-1", count=lambda spec: Dim.const(0))
def _f_flatten(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return _flatten(x, spec["start_dim"], spec["end_dim"])


@_layer("Unflatten", "dim, unflattened_size", count=lambda spec: Dim.const(0))
def _f_unflatten(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return _unflatten(x, spec["dim"], spec["unflattened_size"])


# -- Recurrent ----------------------------------------------------------------------------------------
_RNN_SIG = (
    "input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False, "
    "proj_size=0, device=None, dtype=None"
)


def _rnn_args(name: str, args: tuple | list, kwargs: Mapping[str, Any]) -> tuple[list, dict]:
    """nn.RNN takes `nonlinearity` as its 4th positional argument; LSTM and GRU do not take it at all."""
    args, kwargs = list(args), dict(kwargs)
    if name == "RNN":
        if len(args) > 3:
            if "nonlinearity" in kwargs:
                raise _Unknown
            kwargs["nonlinearity"] = args.pop(3)
        kwargs.setdefault("nonlinearity", "tanh")
    return args, kwargs


def _check_rnn(spec: LayerSpec) -> ShapeError | None:
    proj, hidden = _int(spec["proj_size"]), _int(spec["hidden_size"])
    if proj.value is not None and proj.value < 0:
        return _err("proj_size should be a positive integer or zero to disable projections", "ValueError")
    if proj.value and _lt(proj, hidden) is False:
        return _err("proj_size has to be smaller than hidden_size", "ValueError")
    if proj.value and spec.name != "LSTM":
        return _err("proj_size argument is only supported for LSTM, not RNN or GRU", "ValueError")
    nonlinearity = spec.params.get("nonlinearity", "tanh")
    if spec.name == "RNN" and isinstance(nonlinearity, str) and nonlinearity not in ("tanh", "relu"):
        return _err(
            f"Unknown nonlinearity '{spec['nonlinearity']}'. Select from 'tanh' or 'relu'.", "ValueError"
        )
    return None


_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_RNN_SIG_NL = _RNN_SIG + ", *, nonlinearity='tanh'"


def _count_rnn(spec: LayerSpec) -> Dim:
    gates = _GATES[spec.name]
    hidden, proj = _int(spec["hidden_size"]), _int(spec["proj_size"])
    layers = _pyint(spec["num_layers"])
    if layers is None:
        raise _Unknown
    dirs = 2 if _need_flag(spec["bidirectional"]) else 1
    out = proj if proj.value else hidden
    bias = _need_flag(spec["bias"])
    total = Dim.const(0)
    for layer in range(layers):
        size_in = _int(spec["input_size"]) if layer == 0 else out * dirs
        per = gates * hidden * size_in + gates * hidden * out + (2 * gates * hidden if bias else 0)
        if proj.value:
            per = per + proj * hidden
        total = total + per * dirs
    return total


def _rnn_hidden_states(spec: LayerSpec, hx: Any, batched: bool) -> list[Any] | ShapeError:
    """The shapes of the initial hidden state(s) `hx` (h, and c for an LSTM; None entries unknown),
    or torch's error when their rank does not fit the input's."""
    if hx is None:
        return []
    if spec.name == "LSTM":
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise _Unknown
        hs: list[Any] = [_opt_shape(h) for h in hx]
    else:
        hs = [_opt_shape(hx)]
    want_rank = 3 if batched else 2
    kind = "batched 3-D" if batched else "unbatched 2-D"
    if any(h is not None and h.exact and len(h.dims) != want_rank for h in hs):
        if any(h is None or not h.exact for h in hs):
            raise _Unknown
        if spec.name == "LSTM":
            got = ", ".join(f"{len(h.dims)}-D" for h in hs)
            return _err(f"For {kind} input, hx and cx should also be {want_rank}-D but got ({got}) tensors")
        return _err(f"For {kind} input, hx should also be {want_rank}-D but got {len(hs[0].dims)}-D tensor")
    return hs


@_layer("RNN LSTM GRU", _RNN_SIG, check=_check_rnn, count=_count_rnn)
def _f_rnn(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    args = _forward_args("input, hx=None", inputs, kw)
    x = _as_shape(args["input"])
    hx = args["hx"]
    if not x.exact:
        raise _Unknown
    if len(x.dims) not in (2, 3):
        tensor = " tensor" if spec.name == "RNN" else ""  # torch's wording differs
        return _err(
            f"{spec.name}: Expected input to be 2D or 3D, got {len(x.dims)}D{tensor} instead", "ValueError"
        )
    batched = len(x.dims) == 3
    batch_first = _need_flag(spec["batch_first"])
    hidden, proj = _int(spec["hidden_size"]), _int(spec["proj_size"])
    layers = _int(spec["num_layers"])
    dirs = 2 if _need_flag(spec["bidirectional"]) else 1
    h_out = proj if proj.value else hidden
    in_size = _int(spec["input_size"])
    if batched:
        (seq, batch) = (x.dims[1], x.dims[0]) if batch_first else (x.dims[0], x.dims[1])
    else:
        seq, batch = x.dims[0], None
    # hx rank checks come before the input check in torch
    hs = _rnn_hidden_states(spec, hx, batched)
    if isinstance(hs, ShapeError):
        return hs
    if same(x.dims[-1], in_size) is False:
        return _err(
            f"input.size(-1) must be equal to input_size. Expected {in_size}, got {x.dims[-1]}",
            code="GG501",
            argument="input_size",
            expected=x.dims[-1],
            input_index=0,
        )
    lead = [dirs * layers] + ([batch] if batched else [])
    h_shape = Shape(lead + [h_out])
    c_shape = Shape(lead + [hidden])
    for j, h in enumerate(hs):
        if h is None or not h.exact:
            continue
        want = h_shape if j == 0 else c_shape
        if same_shape(h, want) is False:
            label = "hidden" if spec.name != "LSTM" else f"hidden[{j}]"
            return _err(
                f"Expected {label} size {_fmt_tuple(want.dims)}, got {_fmt_list(h.dims)}",
                code="GG501",
                input_index=1,
            )
    if batched:
        out = Shape((batch, seq, dirs * h_out)) if batch_first else Shape((seq, batch, dirs * h_out))
    else:
        out = Shape((seq, dirs * h_out))
    if spec.name == "LSTM":
        return (out, (h_shape, c_shape))
    return (out, h_shape)


@_layer("RNNCell", "input_size, hidden_size, bias=True, nonlinearity='tanh', device=None, dtype=None")
@_layer("LSTMCell GRUCell", "input_size, hidden_size, bias=True, device=None, dtype=None")
def _f_rnn_cell(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    args = _forward_args("input, hx=None", inputs, kw)
    x = _as_shape(args["input"])
    if not x.exact:
        raise _Unknown
    if len(x.dims) not in (1, 2):
        return _err(f"{spec.name}: Expected input to be 1D or 2D, got {len(x.dims)}D instead", "ValueError")
    in_size, hidden = _int(spec["input_size"]), _int(spec["hidden_size"])
    hx = args["hx"]
    hs: list[Shape | None] = []
    if hx is not None:
        if spec.name == "LSTMCell":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise _Unknown
            hs = [_opt_shape(h) for h in hx]
        else:
            hs = [_opt_shape(hx)]
    for h in hs:
        if h is not None and h.exact and len(h.dims) != len(x.dims):
            if len(x.dims) == 1:
                return _err(
                    f"{spec.name}: Expected hidden to be 1D and not {len(h.dims)}D for unbatched input",
                    "ValueError",
                )
            raise _Unknown
    if same(x.dims[-1], in_size) is False:
        return _err(
            f"input has inconsistent input_size: got {x.dims[-1]} expected {in_size}",
            code="GG501",
            argument="input_size",
            expected=x.dims[-1],
            input_index=0,
        )
    for j, h in enumerate(hs):
        if h is None or not h.exact:
            continue
        if len(x.dims) == 2 and same(h.dims[0], x.dims[0]) is False:
            return _err(f"Input batch size {x.dims[0]} doesn't match hidden{j} batch size {h.dims[0]}")
        if same(h.dims[-1], hidden) is False:
            return _err(f"hidden{j} has inconsistent hidden_size: got {h.dims[-1]}, expected {hidden}")
    out = Shape((*x.dims[:-1], hidden))
    return (out, out) if spec.name == "LSTMCell" else out


def _count_cell(spec: LayerSpec) -> Dim:
    gates = {"RNNCell": 1, "GRUCell": 3, "LSTMCell": 4}[spec.name]
    i, h = _int(spec["input_size"]), _int(spec["hidden_size"])
    return gates * h * (i + h) + (2 * gates * h if _need_flag(spec["bias"]) else 0)


for _name in ("RNNCell", "LSTMCell", "GRUCell"):
    _LAYERS[_name].count = _count_cell


# -- Attention and transformers -----------------------------------------------------------------------
_MHA_SIG = (
    "embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False, kdim=None, "
    "vdim=None, batch_first=False, device=None, dtype=None"
)


def _check_mha(spec: LayerSpec) -> ShapeError | None:
    e, h = _int(spec["embed_dim"]), _int(spec["num_heads"])
    if e.value is not None and h.value is not None:
        if e.value <= 0 or h.value <= 0:
            return _err(
                f"embed_dim and num_heads must be greater than 0, got embed_dim={e} and num_heads={h} instead",
                "ValueError",
            )
        if e.value % h.value:
            return _err("embed_dim must be divisible by num_heads", "AssertionError")
    return None


def _count_mha(spec: LayerSpec) -> Dim:
    e = _int(spec["embed_dim"])
    kdim = e if spec["kdim"] is None else _int(spec["kdim"])
    vdim = e if spec["vdim"] is None else _int(spec["vdim"])
    bias = _need_flag(spec["bias"])
    total = e * e + e * kdim + e * vdim + (3 * e if bias else 0) + e * e + (e if bias else 0)
    if _need_flag(spec["add_bias_kv"]):
        total = total + 2 * e
    return total


def _mha(
    spec: LayerSpec,
    q: Shape,
    k: Shape,
    v: Shape,
    need_weights: Any,
    average: Any,
) -> Any:
    e, heads = _int(spec["embed_dim"]), _int(spec["num_heads"])
    batch_first = _need_flag(spec["batch_first"])
    if not (q.exact and k.exact and v.exact):
        raise _Unknown
    if len(q.dims) not in (2, 3):
        return _err(
            f"query should be unbatched 2D or batched 3D tensor but received {len(q.dims)}-D query tensor",
            "AssertionError",
        )
    batched = len(q.dims) == 3
    if len(k.dims) != len(q.dims) or len(v.dims) != len(q.dims):
        raise _Unknown
    if batched and batch_first:
        q, k, v = (Shape((s.dims[1], s.dims[0], s.dims[2])) for s in (q, k, v))
    if same(q.dims[-1], e) is False:
        return _err(
            f"was expecting embedding dimension of {e}, but got {q.dims[-1]}",
            "AssertionError",
            code="GG501",
            argument="embed_dim",
            expected=q.dims[-1],
            input_index=0,
        )
    separate = not (spec["kdim"] is None and spec["vdim"] is None) and not (
        same(_int(spec["kdim"]), e) is True and same(_int(spec["vdim"]), e) is True
    )
    kdim = e if spec["kdim"] is None else _int(spec["kdim"])
    if not separate:
        if same_shape(k, v) is False:
            return _err(
                f"key shape {_fmt_size(k.dims)} does not match value shape {_fmt_size(v.dims)}",
                "AssertionError",
            )
    else:
        if any(same(a, b) is False for a, b in zip(k.dims[:-1], v.dims[:-1])):
            return _err(
                f"key's sequence and batch dims {_fmt_tuple(k.dims[:-1])} do not match value's "
                f"{_fmt_tuple(v.dims[:-1])}",
                "AssertionError",
            )
    if same(k.dims[-1], kdim) is False or (batched and same(k.dims[1], q.dims[1]) is False):
        raise _Unknown  # torch fails deeper inside, with an input-dependent message
    seq_l, seq_s = q.dims[0], k.dims[0]
    extra = (1 if _need_flag(spec["add_bias_kv"]) else 0) + (1 if _need_flag(spec["add_zero_attn"]) else 0)
    seq_s = seq_s + extra
    if batched:
        n = q.dims[1]
        out = Shape((n, seq_l, e)) if batch_first else Shape((seq_l, n, e))
    else:
        out = Shape((seq_l, e))
    need = _need_flag(need_weights)
    if not need:
        return (out, None)
    avg = _need_flag(average)
    if batched:
        w = Shape((q.dims[1], seq_l, seq_s)) if avg else Shape((q.dims[1], heads, seq_l, seq_s))
    else:
        w = Shape((seq_l, seq_s)) if avg else Shape((heads, seq_l, seq_s))
    return (out, w)


@_layer("MultiheadAttention", _MHA_SIG, check=_check_mha, count=_count_mha)
def _f_mha(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    args = _forward_args(
        "query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None, average_attn_weights=True, "
        "is_causal=False",
        inputs,
        kw,
    )
    q, k, v = (_as_shape(args[a]) for a in ("query", "key", "value"))
    return _mha(spec, q, k, v, args["need_weights"], args["average_attn_weights"])


_TEL_SIG = (
    "d_model, nhead, dim_feedforward=2048, dropout=0.1, activation='relu', layer_norm_eps=1e-05, "
    "batch_first=False, norm_first=False, bias=True, device=None, dtype=None"
)


def _check_tel(spec: LayerSpec) -> ShapeError | None:
    e, h = _int(spec["d_model"]), _int(spec["nhead"])
    if e.value is not None and h.value is not None and h.value > 0 and e.value % h.value:
        return _err("embed_dim must be divisible by num_heads", "AssertionError")
    return None


def _count_tel(spec: LayerSpec, decoder: bool = False) -> Dim:
    e, f = _int(spec["d_model"]), _int(spec["dim_feedforward"])
    bias = _need_flag(spec["bias"])
    attn = 4 * e * e + (4 * e if bias else 0)
    ff = e * f + f * e + ((f + e) if bias else 0)
    norms = 2 * e if bias else e
    n_attn, n_norm = (2, 3) if decoder else (1, 2)
    return n_attn * attn + ff + n_norm * norms


def _tel_check_input(spec: LayerSpec, x: Shape, index: int) -> ShapeError | None:
    if not x.exact:
        return None
    if len(x.dims) not in (2, 3):
        return _err(
            f"query should be unbatched 2D or batched 3D tensor but received {len(x.dims)}-D query tensor",
            "AssertionError",
        )
    e = _int(spec["d_model"])
    if same(x.dims[-1], e) is False:
        return _err(
            f"was expecting embedding dimension of {e}, but got {x.dims[-1]}",
            "AssertionError",
            code="GG501",
            argument="d_model",
            expected=x.dims[-1],
            input_index=index,
        )
    return None


@_layer("TransformerEncoderLayer", _TEL_SIG, check=_check_tel, count=_count_tel)
def _f_tel(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    args = _forward_args("src, src_mask=None, src_key_padding_mask=None, is_causal=False", inputs, kw)
    x = _as_shape(args["src"])
    return _tel_check_input(spec, x, 0) or x


@_layer("TransformerDecoderLayer", _TEL_SIG, check=_check_tel, count=lambda s: _count_tel(s, decoder=True))
def _f_tdl(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    args = _forward_args(
        "tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None, "
        "tgt_is_causal=False, memory_is_causal=False",
        inputs,
        kw,
    )
    tgt, memory = _as_shape(args["tgt"]), _as_shape(args["memory"])
    error = _tel_check_input(spec, tgt, 0)
    if error:
        return error
    if memory.exact and tgt.exact:
        if len(memory.dims) != len(tgt.dims) or same(memory.dims[-1], _int(spec["d_model"])) is False:
            raise _Unknown
        if len(tgt.dims) == 3:
            b = 0 if _need_flag(spec["batch_first"]) else 1
            if same(memory.dims[b], tgt.dims[b]) is False:
                raise _Unknown
    return tgt


def _count_stack(spec: LayerSpec) -> Dim:
    layer = spec.params.get("encoder_layer") or spec.params.get("decoder_layer")
    if not isinstance(layer, LayerSpec):
        raise _Unknown
    per = layer.parameter_count()
    n = _int(spec["num_layers"])
    norm = spec["norm"]
    extra = Dim.const(0)
    if norm is not None:
        if not isinstance(norm, LayerSpec) or norm.parameter_count() is None:
            raise _Unknown
        extra = norm.parameter_count()  # type: ignore[assignment]
    if per is None:
        raise _Unknown
    return per * n + extra


@_layer(
    "TransformerEncoder",
    "encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True",
    count=_count_stack,
)
def _f_te(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    args = _forward_args("src, mask=None, src_key_padding_mask=None, is_causal=None", inputs, kw)
    layer = spec["encoder_layer"]
    if not isinstance(layer, LayerSpec) or layer.name != "TransformerEncoderLayer":
        raise _Unknown
    return layer.output(args["src"])


@_layer("TransformerDecoder", "decoder_layer, num_layers, norm=None", count=_count_stack)
def _f_td(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    args = _forward_args(
        "tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None, "
        "tgt_is_causal=None, memory_is_causal=False",
        inputs,
        kw,
    )
    layer = spec["decoder_layer"]
    if not isinstance(layer, LayerSpec) or layer.name != "TransformerDecoderLayer":
        raise _Unknown
    return layer.output(args["tgt"], args["memory"])


@_layer(
    "Transformer",
    "d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048, dropout=0.1, "
    "activation='relu', custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-05, batch_first=False, "
    "norm_first=False, bias=True, device=None, dtype=None",
    check=_check_tel,
)
def _f_transformer(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    args = _forward_args(
        "src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None, "
        "tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None, "
        "memory_is_causal=False",
        inputs,
        kw,
    )
    if spec["custom_encoder"] is not None or spec["custom_decoder"] is not None:
        raise _Unknown
    src, tgt = _as_shape(args["src"]), _as_shape(args["tgt"])
    if not (src.exact and tgt.exact):
        raise _Unknown
    e = _int(spec["d_model"])
    if len(src.dims) == 3:
        b = 0 if _need_flag(spec["batch_first"]) else 1
        if len(tgt.dims) == 3 and same(src.dims[b], tgt.dims[b]) is False:
            return _err("the batch number of src and tgt must be equal")
    if (src.dims and same(src.dims[-1], e) is False) or (tgt.dims and same(tgt.dims[-1], e) is False):
        return _err("the feature number of src and tgt must be equal to d_model", code="GG501")
    if len(src.dims) not in (2, 3) or len(tgt.dims) != len(src.dims):
        raise _Unknown
    return tgt


# -- Resampling ---------------------------------------------------------------------------------------
@_layer(
    "Upsample",
    "size=None, scale_factor=None, mode='nearest', align_corners=None, recompute_scale_factor=None",
    count=lambda spec: Dim.const(0),
)
def _f_upsample(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return _interpolate(x, spec["size"], spec["scale_factor"], spec["mode"])


@_layer(
    "UpsamplingNearest2d UpsamplingBilinear2d",
    "size=None, scale_factor=None",
    count=lambda spec: Dim.const(0),
)
def _f_upsample2d(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    mode = "nearest" if spec.name == "UpsamplingNearest2d" else "bilinear"
    return _interpolate(x, spec["size"], spec["scale_factor"], mode)


def _pixel_shuffle(x: Shape, r: Any, down: bool) -> Shape | ShapeError:
    factor = _int(r)
    name = "pixel_unshuffle" if down else "pixel_shuffle"
    if x.exact and len(x.dims) < 3:
        return _err(
            f"{name} expects input to have at least 3 dimensions, but got input with {len(x.dims)} dimension(s)"
        )
    lead, (c, h, w) = _split_tail(x, 3)
    if not down:
        sq = factor * factor
        if c.value is not None and sq.value is not None and sq.value and c.value % sq.value:
            return _err(
                "pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                f"upscale_factor, but input.size(-3)={c} is not divisible by {sq}"
            )
        q = c.exact_div(sq)
        return _join(lead, [q if q is not None else UNKNOWN, h * factor, w * factor])
    for label, size, pos in (("height", h, -2), ("width", w, -1)):
        if size.value is not None and factor.value and size.value % factor.value:
            return _err(
                f"pixel_unshuffle expects {label} to be divisible by downscale_factor, but input.size({pos})="
                f"{size} is not divisible by {factor}"
            )
    hq, wq = h.exact_div(factor), w.exact_div(factor)
    return _join(
        lead, [c * factor * factor, hq if hq is not None else UNKNOWN, wq if wq is not None else UNKNOWN]
    )


@_layer("PixelShuffle", "upscale_factor", count=lambda spec: Dim.const(0))
def _f_pixel_shuffle(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return _pixel_shuffle(x, spec["upscale_factor"], down=False)


@_layer("PixelUnshuffle", "downscale_factor", count=lambda spec: Dim.const(0))
def _f_pixel_unshuffle(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    return _pixel_shuffle(x, spec["downscale_factor"], down=True)


def _f_pad_layer(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    (x,) = _inputs(inputs, 1)
    n = int(spec.name[-2])
    padding = spec["padding"]
    pads = _seq(padding)
    if pads is None:
        d = _int(padding)
        if d.is_unknown:
            raise _Unknown
        pads = (d,) * (2 * n)
    if len(pads) != 2 * n:
        raise _Unknown
    mode = "constant" if spec.name.startswith(("Zero", "Constant")) else "reflect"
    return _pad(x, pads, mode)


for _n in (1, 2, 3):
    for _kind in ("Zero", "Reflection", "Replication", "Circular"):
        _layer(f"{_kind}Pad{_n}d", "padding", count=lambda spec: Dim.const(0))(_f_pad_layer)
    _layer(f"ConstantPad{_n}d", "padding, value", count=lambda spec: Dim.const(0))(_f_pad_layer)


@_layer("CosineSimilarity", "dim=1, eps=1e-08", count=lambda spec: Dim.const(0))
def _f_cosine(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    x1, x2 = _inputs(inputs, 2)
    return _cosine_similarity(x1, x2, spec["dim"])


def _cosine_similarity(x1: Shape, x2: Shape, d: Any) -> Any:
    b = broadcast(x1, x2)
    if isinstance(b, ShapeError):
        return b
    i = _real_dim(b, d)
    dims = list(b.dims)
    del dims[_pos(b, i)]
    return Shape(dims, b.exact)


# -- Losses -------------------------------------------------------------------------------------------
def _reduction(params: Mapping[str, Any]) -> str:
    size_average, reduce = params.get("size_average"), params.get("reduce")
    if size_average is not None or reduce is not None:
        sa = True if size_average is None else _need_flag(size_average)
        rd = True if reduce is None else _need_flag(reduce)
        return "none" if not rd else ("mean" if sa else "sum")
    r = params.get("reduction", "mean")
    if r not in ("none", "mean", "sum", "batchmean"):
        raise _Unknown
    return r


def ce_target_kind(input_shape: Shape | None, target_shape: Shape | None) -> str | None:
    """What `cross_entropy(input, target)` takes target to be: "probabilities" (same shape as input: it
    must be a float tensor), "indices" (a long tensor), or None when the shapes do not tell."""
    same_ = same_shape(input_shape, target_shape)
    if same_ is True:
        return "probabilities"
    if same_ is False:
        return "indices"
    return None


def _nll(x: Shape, t: Shape, reduction: str) -> Shape | ShapeError:
    if not (x.exact and t.exact):
        if reduction != "none":
            return Shape(())
        raise _Unknown
    rank = len(x.dims)
    if rank < 1:
        raise _Unknown
    if rank != 1 and t.dims and same(x.dims[0], t.dims[0]) is False:
        return _err(
            f"Expected input batch_size ({x.dims[0]}) to match target batch_size ({t.dims[0]}).",
            "ValueError",
            code="GG509",
            input_index=1,
        )
    if rank <= 2:
        if len(t.dims) > 1:
            return _err(
                "0D or 1D target tensor expected, multi-target not supported", code="GG509", input_index=1
            )
        if rank == 1 and t.dims:
            raise _Unknown
        if rank == 2 and not t.dims:
            raise _Unknown
        return Shape(()) if reduction != "none" else t
    want = Shape((x.dims[0], *x.dims[2:]))
    if same_shape(t, want) is False:
        if rank == 4:
            raise _Unknown
        return _err(
            f"Expected target size {_fmt_list(want.dims)}, got {_fmt_list(t.dims)}",
            code="GG509",
            input_index=1,
        )
    return Shape(()) if reduction != "none" else want


def _cross_entropy(x: Shape, t: Shape, reduction: str) -> Shape | ShapeError:
    kind = ce_target_kind(x, t)
    if kind == "probabilities":
        if reduction != "none":
            return Shape(())
        return Shape((x.dims[0], *x.dims[2:])) if len(x.dims) >= 2 else Shape(())
    if kind is None:
        if reduction != "none":
            return Shape(())
        raise _Unknown
    return _nll(x, t, reduction)


def _pointwise_loss(x: Shape, t: Shape, reduction: str, name: str) -> Any:
    differ = same_shape(x, t) is False
    if name in ("binary_cross_entropy", "binary_cross_entropy_with_logits") and differ:
        if name == "binary_cross_entropy":
            message = (
                f"Using a target size ({_fmt_size(t.dims)}) that is different to the input size "
                f"({_fmt_size(x.dims)}) is deprecated. Please ensure they have the same size."
            )
        else:
            message = (
                f"Target size ({_fmt_size(t.dims)}) must be the same as input size ({_fmt_size(x.dims)})"
            )
        return _err(message, "ValueError", code="GG509", input_index=1)
    b = broadcast(x, t)
    if isinstance(b, ShapeError):
        return b
    out = Shape(()) if reduction != "none" else b
    if differ and name in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"):
        return ShapeError(
            f"Using a target size ({_fmt_size(t.dims)}) that is different to the input size ({_fmt_size(x.dims)}). "
            "This will likely lead to incorrect results due to broadcasting. Please ensure they have the same size.",
            "UserWarning",
            code="GG507",
            input_index=1,
            warning=True,
            shape=out,
        )
    return out


_LOSS_LAYERS = {
    "CrossEntropyLoss": (
        "weight=None, size_average=None, ignore_index=-100, reduce=None, reduction='mean', label_smoothing=0.0",
        "cross_entropy",
    ),
    "NLLLoss": (
        "weight=None, size_average=None, ignore_index=-100, reduce=None, reduction='mean'",
        "nll_loss",
    ),
    "MSELoss": ("size_average=None, reduce=None, reduction='mean'", "mse_loss"),
    "L1Loss": ("size_average=None, reduce=None, reduction='mean'", "l1_loss"),
    "SmoothL1Loss": ("size_average=None, reduce=None, reduction='mean', beta=1.0", "smooth_l1_loss"),
    "HuberLoss": ("reduction='mean', delta=1.0", "huber_loss"),
    "BCELoss": ("weight=None, size_average=None, reduce=None, reduction='mean'", "binary_cross_entropy"),
    "BCEWithLogitsLoss": (
        "weight=None, size_average=None, reduce=None, reduction='mean', pos_weight=None",
        "binary_cross_entropy_with_logits",
    ),
}


def _loss(name: str, x: Shape, t: Shape, reduction: str) -> Any:
    if name == "cross_entropy":
        return _cross_entropy(x, t, reduction)
    if name == "nll_loss":
        return _nll(x, t, reduction)
    return _pointwise_loss(x, t, reduction, name)


def _f_loss_layer(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    x, t = _inputs(inputs, 2)
    return _loss(_LOSS_LAYERS[spec.name][1], x, t, _reduction(spec.params))


for _name, (_sig, _fn) in _LOSS_LAYERS.items():
    _layer(_name, _sig, count=lambda spec: Dim.const(0))(_f_loss_layer)


# -- Containers ---------------------------------------------------------------------------------------
@_layer("Sequential", "*modules")
def _f_sequential(spec: LayerSpec, inputs: tuple, kw: dict) -> Any:
    if len(inputs) != 1 or kw:
        raise _Unknown
    value: Any = inputs[0]
    for module in _sequential_modules(spec):
        if not isinstance(module, LayerSpec):
            return Shape.unknown() if isinstance(value, Shape) else None
        if not isinstance(value, Shape) and value is not None:
            return None
        value = module.output(value)
        if value is None or isinstance(value, ShapeError):
            return value
    return value


def _sequential_modules(spec: LayerSpec) -> list[Any]:
    modules = list(spec.params["modules"])
    if len(modules) == 1 and isinstance(modules[0], Mapping):
        return list(modules[0].values())
    return modules


def _count_sequential(spec: LayerSpec) -> Dim:
    total = Dim.const(0)
    for module in _sequential_modules(spec):
        if not isinstance(module, LayerSpec):
            raise _Unknown
        c = module.parameter_count()
        if c is None:
            raise _Unknown
        total = total + c
    return total


_LAYERS["Sequential"].count = _count_sequential


# =====================================================================================================
# Ops
# =====================================================================================================
@dataclass
class _OpDef:
    fn: Callable[..., Any]
    sig_text: str
    free: bool  # the whole call is bound to sig (no tensor receiver / first argument)

    @property
    def sig(self) -> _Sig:
        return _parse_sig_cached(self.sig_text)


_OPS: dict[str, _OpDef] = {}

_OPERATORS = {
    "+": "__add__",
    "-": "__sub__",
    "*": "__mul__",
    "/": "__truediv__",
    "//": "__floordiv__",
    "%": "__mod__",
    "**": "__pow__",
    "@": "__matmul__",
    "&": "__and__",
    "|": "__or__",
    "^": "__xor__",
    "==": "__eq__",
    "!=": "__ne__",
    "<": "__lt__",
    "<=": "__le__",
    ">": "__gt__",
    ">=": "__ge__",
    "+=": "__iadd__",
    "-=": "__isub__",
    "*=": "__imul__",
    "/=": "__itruediv__",
}

_F = "torch.nn.functional."


def _op(names: str, sig: str = "*args, **kwargs", free: bool = False) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        for name in names.split():
            _OPS[name.replace("F.", _F)] = _OpDef(fn, sig, free)
        return fn

    return register


def op_output(
    op: str, receiver: Any = None, args: tuple | list = (), kwargs: Mapping[str, Any] | None = None
) -> Any:
    """The result of a tensor op (see the module docstring); None when not modelled or not known."""
    name = _OPERATORS.get(op, op)
    if name.startswith("F."):
        name = _F + name[2:]
    d = _OPS.get(name)
    if d is None:
        return None
    kw = dict(kwargs or {})

    def go() -> Any:
        if d.free:
            bound = _bind(d.sig, args, kw)
            if bound is None:
                raise _Unknown
            return d.fn(None, bound)
        rest: tuple | list = args
        if receiver is not None:
            x = receiver
        elif "." in name:
            if args:
                x, rest = args[0], args[1:]
            elif "input" in kw:
                x = kw.pop("input")
            else:
                raise _Unknown
        else:
            raise _Unknown
        x = _scalar_or_shape(x)
        bound = _bind(d.sig, rest, kw)
        if bound is None:
            raise _Unknown
        return d.fn(x, bound)

    return _run(go)


def op_names() -> list[str]:
    return sorted(_OPS)


def _scalar_or_shape(x: Any) -> Shape:
    """A tensor operand; Python numbers are 0-dim."""
    if isinstance(x, Shape):
        return x
    if isinstance(x, (int, float, complex)) and not isinstance(x, Dim):
        return Shape(())
    if isinstance(x, Dim):
        return Shape(())
    return _as_shape(x)


# -- same shape ---------------------------------------------------------------------------------------
_SAME_METHODS = (
    "contiguous clone detach detach_ float double half bfloat16 int long bool short byte char cpu cuda to "
    "requires_grad_ pin_memory relu sigmoid tanh exp exp2 expm1 log log2 log10 log1p abs neg negative sqrt "
    "rsqrt square sin cos tan asin acos atan sinh cosh asinh acosh atanh erf erfc erfinv reciprocal sign sgn "
    "floor ceil round trunc frac clamp clip clamp_min clamp_max nan_to_num logical_not bitwise_not isnan isinf "
    "isfinite digamma lgamma relu_ sigmoid_ tanh_ exp_ log_ abs_ neg_ sqrt_ clamp_ clip_ fill_ zero_ normal_ "
    "uniform_ bernoulli_ random_ exponential_ bernoulli triu tril triu_ tril_ flip fliplr flipud roll "
    "type_as cauchy_ log_normal_ geometric_ floor_ ceil_ round_ trunc_ reciprocal_ square_ sign_ retain_grad"
)
_SAME_FUNCS = (
    "torch.relu torch.sigmoid torch.tanh torch.exp torch.log torch.abs torch.neg torch.sqrt torch.rsqrt "
    "torch.square torch.sin torch.cos torch.clamp torch.clip torch.sign torch.floor torch.ceil torch.round "
    "torch.erf torch.log1p torch.expm1 torch.reciprocal torch.nan_to_num torch.logical_not torch.isnan "
    "torch.isinf torch.isfinite torch.triu torch.tril torch.flip torch.roll torch.clone torch.detach "
    "torch.dropout torch.bernoulli torch.exp2 torch.log2 torch.trunc torch.frac torch.atan torch.erfinv "
    "torch.zeros_like torch.ones_like torch.empty_like torch.rand_like torch.randn_like torch.full_like "
    "torch.randint_like torch.sigmoid_ torch.relu_ "
    "F.relu F.relu6 F.elu F.selu F.celu F.gelu F.silu F.mish F.leaky_relu F.hardtanh F.hardswish "
    "F.hardsigmoid F.softplus F.softsign F.tanhshrink F.logsigmoid F.sigmoid F.tanh F.dropout F.dropout1d "
    "F.dropout2d F.dropout3d F.alpha_dropout F.feature_alpha_dropout F.relu_ F.elu_ F.leaky_relu_ "
    "F.softshrink F.hardshrink F.threshold F.rrelu F.local_response_norm F.batch_norm F.instance_norm"
)


@_op(_SAME_METHODS + " " + _SAME_FUNCS)
def _o_same(x: Shape, a: dict) -> Any:
    return x


@_op("type", "dtype=None, non_blocking=False, **kwargs")
def _o_type(x: Shape, a: dict) -> Any:
    return None if a["dtype"] is None else x


@_op(
    "softmax log_softmax torch.softmax torch.log_softmax F.softmax F.log_softmax F.softmin",
    "dim=None, _stacklevel=3, dtype=None",
)
def _o_softmax(x: Shape, a: dict) -> Any:
    return _same_with_dim(x, a["dim"])


@_op(
    "cumsum cumprod logcumsumexp torch.cumsum torch.cumprod torch.logcumsumexp",
    "dim, *, dtype=None, out=None",
)
def _o_cumsum(x: Shape, a: dict) -> Any:
    return _same_with_dim(x, a["dim"])


@_op("cummax cummin torch.cummax torch.cummin", "dim")
def _o_cummax(x: Shape, a: dict) -> Any:
    out = _same_with_dim(x, a["dim"])
    return (out, out)


@_op("argsort torch.argsort", "dim=-1, descending=False, *, stable=False")
def _o_argsort(x: Shape, a: dict) -> Any:
    return _same_with_dim(x, a["dim"])


@_op("sort torch.sort", "dim=-1, descending=False, *, stable=False")
def _o_sort(x: Shape, a: dict) -> Any:
    out = _same_with_dim(x, a["dim"])
    return (out, out)


@_op("F.normalize", "p=2.0, dim=1, eps=1e-12, out=None")
def _o_normalize(x: Shape, a: dict) -> Any:
    return _same_with_dim(x, a["dim"])


@_op("F.layer_norm", "normalized_shape, weight=None, bias=None, eps=1e-05")
def _o_layer_norm(x: Shape, a: dict) -> Any:
    return _check_layer_norm(x, _norm_shape(a["normalized_shape"])) or x


@_op("F.rms_norm", "normalized_shape, weight=None, eps=None")
def _o_rms_norm(x: Shape, a: dict) -> Any:
    return _check_layer_norm(x, _norm_shape(a["normalized_shape"]), rms=True) or x


@_op("F.group_norm", "num_groups, weight=None, bias=None, eps=1e-05")
def _o_group_norm(x: Shape, a: dict) -> Any:
    w = _opt_shape(a["weight"])
    channels = w.at(0) if w is not None and w.exact and len(w.dims) == 1 else None
    return _group_norm(x, _int(a["num_groups"]), channels)


@_op("F.glu", "dim=-1")
def _o_glu(x: Shape, a: dict) -> Any:
    return _glu(x, a["dim"])


# -- broadcasting -------------------------------------------------------------------------------------
_BINARY = (
    "add sub subtract mul multiply div divide true_divide floor_divide remainder fmod pow atan2 arctan2 maximum "
    "minimum fmax fmin eq ne lt le gt ge greater less greater_equal less_equal logical_and logical_or logical_xor "
    "bitwise_and bitwise_or bitwise_xor hypot copysign xlogy float_power "
    "__add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ __floordiv__ __rfloordiv__ "
    "__mod__ __rmod__ __pow__ __rpow__ __and__ __rand__ __or__ __ror__ __xor__ __rxor__ __eq__ __ne__ __lt__ "
    "__le__ __gt__ __ge__"
)


@_op(
    _BINARY + " " + " ".join("torch." + n for n in _BINARY.split() if not n.startswith("_")),
    "other, *args, **kwargs",
)
def _o_binary(x: Shape, a: dict) -> Any:
    return broadcast(x, _scalar_or_shape(a["other"]))


_INPLACE = (
    "add_ sub_ mul_ div_ pow_ fmod_ remainder_ copy_ lerp_ masked_fill_ "
    "__iadd__ __isub__ __imul__ __itruediv__ __ifloordiv__ __imod__ __ipow__ __iand__ __ior__ __ixor__"
)


@_op(_INPLACE, "other, *args, **kwargs")
def _o_inplace(x: Shape, a: dict) -> Any:
    other = _scalar_or_shape(a["other"])
    b = broadcast(x, other)
    if isinstance(b, ShapeError):
        return b
    if x.exact and b.exact and same_shape(b, x) is False:
        return _err(
            f"output with shape {_fmt_list(x.dims)} doesn't match the broadcast shape {_fmt_list(b.dims)}",
            code="GG507",
        )
    return x


@_op("masked_fill torch.masked_fill", "mask, value")
def _o_masked_fill(x: Shape, a: dict) -> Any:
    return broadcast(x, _scalar_or_shape(a["mask"]))


@_op("torch.where", "condition, input=None, other=None, *, out=None", free=True)
def _o_where(_: None, a: dict) -> Any:
    if a["input"] is None and a["other"] is None:
        return None
    return broadcast(*(_scalar_or_shape(a[k]) for k in ("condition", "input", "other")))


@_op("where", "condition, other")
def _o_where_method(x: Shape, a: dict) -> Any:
    return broadcast(_scalar_or_shape(a["condition"]), x, _scalar_or_shape(a["other"]))


@_op("addcmul addcdiv torch.addcmul torch.addcdiv", "tensor1, tensor2, *, value=1")
def _o_addcmul(x: Shape, a: dict) -> Any:
    return broadcast(x, _scalar_or_shape(a["tensor1"]), _scalar_or_shape(a["tensor2"]))


@_op("lerp torch.lerp", "end, weight")
def _o_lerp(x: Shape, a: dict) -> Any:
    return broadcast(x, _scalar_or_shape(a["end"]), _scalar_or_shape(a["weight"]))


# -- matrix products ----------------------------------------------------------------------------------
def _matmul(a: Shape, b: Shape) -> Shape | ShapeError:
    """torch.matmul. Where torch folds the batch dims into a matrix product its message depends on the
    operands' strides and on requires_grad: those errors carry our own wording (exact_message=False)."""
    if not (a.exact and b.exact):
        return _matmul_suffix(a, b)
    ra, rb = len(a.dims), len(b.dims)
    if ra == 0 or rb == 0:
        return _err(f"both arguments to matmul need to be at least 1D, but they are {ra}D and {rb}D")
    if ra == 1 and rb == 1:
        if same(a.dims[0], b.dims[0]) is False:
            return _err(
                f"inconsistent tensor size, expected tensor [{a.dims[0]}] and src [{b.dims[0]}] to have the same "
                f"number of elements, but got {a.dims[0]} and {b.dims[0]} elements respectively",
                code="GG502",
            )
        return Shape(())
    if ra == 2 and rb == 1:
        if same(a.dims[1], b.dims[0]) is False:
            return _err(
                f"size mismatch, got input ({a.dims[0]}), mat ({_pd(a.dims[0])}x{_pd(a.dims[1])}), vec ({b.dims[0]})",
                code="GG502",
            )
        return Shape(a.dims[:1])
    if ra <= 2 and rb == 2:
        rows = a.dims[0] if ra == 2 else Dim.const(1)
        if same(a.dims[-1], b.dims[0]) is False:
            return _err(
                f"mat1 and mat2 shapes cannot be multiplied ({_pd(rows)}x{_pd(a.dims[-1])} and "
                f"{_pd(b.dims[0])}x{_pd(b.dims[1])})",
                code="GG502",
            )
        return Shape((*a.dims[:-1], b.dims[1]))
    if rb <= 2:  # [..., m, k] @ [k] or [k, n]
        if same(a.dims[-1], b.dims[0]) is False:
            return _matmul_mismatch(a, b)
        return Shape((*a.dims[:-1], *b.dims[1:]))
    # rb >= 3: batched
    batch_a = Shape(a.dims[:-2]) if ra >= 2 else Shape(())
    batch_b = Shape(b.dims[:-2])
    batch = _broadcast2(batch_a, batch_b)
    if isinstance(batch, ShapeError):
        return ShapeError(batch.message, batch.exception, code="GG502")
    k_a = a.dims[-1]
    k_b = b.dims[-2]
    if same(k_a, k_b) is False:
        if ra >= 3:
            total = _prod(batch.dims)
            return _err(
                f"Expected size for first two dimensions of batch2 tensor to be: [{total}, {k_a}] but got: "
                f"[{total}, {k_b}].",
                code="GG502",
            )
        return _matmul_mismatch(a, b)
    row_dims = [a.dims[-2]] if ra >= 2 else []
    return Shape((*batch.dims, *row_dims, b.dims[-1]))


def _matmul_mismatch(a: Shape, b: Shape) -> ShapeError:
    second = "size" if len(b.dims) == 1 else "second-to-last dimension"
    return ShapeError(
        f"matmul of {_fmt_list(a.dims)} and {_fmt_list(b.dims)}: the last dimension of the first ({a.dims[-1]}) "
        f"does not match the {second} of the second ({b.dims[-2] if len(b.dims) > 1 else b.dims[0]})",
        code="GG502",
        exact_message=False,
    )


def _matmul_suffix(a: Shape, b: Shape) -> Shape | ShapeError:
    """matmul when a rank is unknown: only the last dims are known."""
    if b.exact and len(b.dims) == 2:
        if a.exact and len(a.dims) < 1:
            raise _Unknown
        if same(a.at(-1), b.dims[0]) is False:
            rows = UNKNOWN
            return _err(
                f"mat1 and mat2 shapes cannot be multiplied ({_pd(rows)}x{_pd(a.at(-1))} and "
                f"{_pd(b.dims[0])}x{_pd(b.dims[1])})",
                code="GG502",
            )
        return _join(Shape(a.dims[:-1], a.exact) if a.dims else Shape((), False), [b.dims[1]])
    if len(a.dims) >= 2 and len(b.dims) >= 2:
        # both at least 2-D in their known part: [..., m, k] @ [..., k, n] -> [..., m, n]
        if same(a.dims[-1], b.dims[-2]) is False:
            raise _Unknown  # message depends on the batch size
        batch = _broadcast2(Shape(a.dims[:-2], a.exact), Shape(b.dims[:-2], b.exact))
        if isinstance(batch, ShapeError):
            raise _Unknown
        return _join(batch, [a.dims[-2], b.dims[-1]])
    raise _Unknown


@_op("matmul __matmul__ torch.matmul", "other, *, out=None")
def _o_matmul(x: Shape, a: dict) -> Any:
    return _matmul(x, _as_shape(a["other"]))


@_op("__rmatmul__", "other")
def _o_rmatmul(x: Shape, a: dict) -> Any:
    return _matmul(_as_shape(a["other"]), x)


@_op("mm torch.mm", "mat2, *, out=None")
def _o_mm(x: Shape, a: dict) -> Any:
    m2 = _as_shape(a["mat2"])
    if x.exact and len(x.dims) != 2:
        return _err("self must be a matrix")
    if m2.exact and len(m2.dims) != 2:
        return _err("mat2 must be a matrix")
    if not (x.exact and m2.exact):
        raise _Unknown
    return _matmul(x, m2)


@_op("bmm torch.bmm", "mat2, *, out=None")
def _o_bmm(x: Shape, a: dict) -> Any:
    m2 = _as_shape(a["mat2"])
    if x.exact and len(x.dims) != 3:
        return _err("batch1 must be a 3D tensor")
    if m2.exact and len(m2.dims) != 3:
        return _err("batch2 must be a 3D tensor")
    if not (x.exact and m2.exact):
        raise _Unknown
    b1, n, m = x.dims
    b2, m2_, p = m2.dims
    if same(b1, b2) is False or same(m, m2_) is False:
        return _err(
            f"Expected size for first two dimensions of batch2 tensor to be: [{b1}, {m}] but got: [{b2}, {m2_}].",
            code="GG502",
        )
    return Shape((b1, n, p))


@_op("mv torch.mv", "vec, *, out=None")
def _o_mv(x: Shape, a: dict) -> Any:
    v = _as_shape(a["vec"])
    if not (x.exact and v.exact):
        raise _Unknown
    if len(x.dims) != 2 or len(v.dims) != 1:
        return _err(f"vector + matrix @ vector expected, got 1, {len(x.dims)}, {len(v.dims)}")
    return _matmul(x, v)


@_op("dot torch.dot", "tensor, *, out=None")
def _o_dot(x: Shape, a: dict) -> Any:
    t = _as_shape(a["tensor"])
    if not (x.exact and t.exact):
        raise _Unknown
    if len(x.dims) != 1 or len(t.dims) != 1:
        return _err(f"1D tensors expected, but got {len(x.dims)}D and {len(t.dims)}D tensors")
    return _matmul(x, t)


@_op("outer ger torch.outer torch.ger", "vec2")
def _o_outer(x: Shape, a: dict) -> Any:
    v = _as_shape(a["vec2"])
    if not (x.exact and v.exact and len(x.dims) == 1 and len(v.dims) == 1):
        raise _Unknown
    return Shape((x.dims[0], v.dims[0]))


@_op("baddbmm torch.baddbmm", "batch1, batch2, *, beta=1, alpha=1, out=None")
def _o_baddbmm(x: Shape, a: dict) -> Any:
    prod = _o_bmm(_as_shape(a["batch1"]), {"mat2": a["batch2"]})
    if not isinstance(prod, Shape):
        return prod
    return _expand_to(x, prod)


@_op("addmm torch.addmm", "mat1, mat2, *, beta=1, alpha=1, out=None")
def _o_addmm(x: Shape, a: dict) -> Any:
    prod = _o_mm(_as_shape(a["mat1"]), {"mat2": a["mat2"]})
    if not isinstance(prod, Shape):
        return prod
    return _expand_to(x, prod)


def _expand_to(x: Shape, target: Shape) -> Shape:
    """An addend broadcast to the product's shape (addmm/baddbmm)."""
    b = broadcast(x, target)
    if isinstance(b, ShapeError) or same_shape(b, target) is False:
        raise _Unknown  # torch's message differs per op
    return target


@_op("F.linear", "weight, bias=None")
def _o_linear(x: Shape, a: dict) -> Any:
    w = _as_shape(a["weight"])
    if not w.exact or len(w.dims) not in (1, 2):
        raise _Unknown
    if len(w.dims) == 1:
        if x.exact and not x.dims:
            raise _Unknown
        if same(x.at(-1), w.dims[0]) is False:
            raise _Unknown
        return Shape(x.dims[:-1], x.exact) if x.dims else Shape((), False)
    out = _linear(x, w.dims[1], w.dims[0], argument="weight")
    if isinstance(out, ShapeError):
        return ShapeError(out.message, out.exception, code="GG501", input_index=0)
    return out


@_op("torch.einsum", "equation, *operands", free=True)
def _o_einsum(_: None, a: dict) -> Any:
    operands = list(a["operands"])
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    eq = a["equation"]
    if not isinstance(eq, str):
        raise _Unknown
    shapes = [_as_shape(o) for o in operands]
    return _einsum(eq, shapes)


def _einsum(equation: str, shapes: list[Shape]) -> Any:
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, rhs = eq.split("->", 1)
    else:
        lhs, rhs = eq, None
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        if len(terms) < len(shapes):
            return _err("einsum(): more operands were provided than specified in the equation")
        return _err("einsum(): fewer operands were provided than specified in the equation")
    sizes: dict[str, Dim] = {}
    ell: Shape | None = None
    for i, (term, s) in enumerate(zip(terms, shapes)):
        operand = _einsum_operand(i, term, s)
        if isinstance(operand, ShapeError):
            return operand
        dims_for, part = operand
        if part is not None:
            if ell is None:
                ell = part
            else:
                merged = _broadcast2(ell, part)
                if isinstance(merged, ShapeError):
                    raise _Unknown
                ell = merged
        for ch, size in dims_for:
            if ch in sizes:
                merged_dim = _bdim(sizes[ch], size)
                if merged_dim is None:
                    return _err(
                        f"einsum(): subscript {ch} has size {size} for operand {i} which does not broadcast with "
                        f"previously seen size {sizes[ch]}",
                        code="GG502",
                    )
                sizes[ch] = merged_dim
            else:
                sizes[ch] = size
    return _einsum_output(terms, rhs, sizes, ell)


def _einsum_operand(i: int, term: str, s: Shape) -> tuple[list[tuple[str, Dim]], Shape | None] | ShapeError:
    """(subscript letter, size) of each of operand i's subscripts, and the dims its ellipsis stands
    for (None without one); or the error when the subscripts do not fit its rank."""
    if not s.exact:
        raise _Unknown
    has_ell = "..." in term
    letters = term.replace("...", "")
    if not all(ch.isalpha() for ch in letters):
        raise _Unknown
    if not has_ell and len(letters) != len(s.dims):
        return _err(
            f"einsum(): the number of subscripts in the equation ({len(letters)}) does not match the number "
            f"of dimensions ({len(s.dims)}) for operand {i} and no ellipsis was given"
        )
    if has_ell and len(letters) > len(s.dims):
        return _err(
            f"einsum(): the number of subscripts in the equation ({len(letters)}) is more than the number of "
            f"dimensions ({len(s.dims)}) for operand {i}"
        )
    before, _, after = term.partition("...")
    n_ell = len(s.dims) - len(letters)
    dims_for: list[tuple[str, Dim]] = []
    for j, ch in enumerate(before):
        dims_for.append((ch, s.dims[j]))
    for j, ch in enumerate(after):
        dims_for.append((ch, s.dims[len(before) + n_ell + j]))
    part = Shape(s.dims[len(before) : len(before) + n_ell]) if has_ell else None
    return dims_for, part


def _einsum_output(terms: list[str], rhs: str | None, sizes: dict[str, Dim], ell: Shape | None) -> Shape:
    """The output shape: the subscripts after `->`, else the ones that occur once, sorted, after the
    broadcast ellipsis dims."""
    if rhs is None:
        counts: dict[str, int] = {}
        for term in terms:
            for ch in term.replace("...", ""):
                counts[ch] = counts.get(ch, 0) + 1
        out_letters = sorted(ch for ch, c in counts.items() if c == 1)
        return Shape([*(ell.dims if ell else ()), *(sizes[ch] for ch in out_letters)])
    out: list[Dim] = []
    before, has, after = rhs.partition("...")
    for ch in before:
        if ch not in sizes:
            raise _Unknown
        out.append(sizes[ch])
    if has and ell is not None:
        out.extend(ell.dims)
    for ch in after:
        if ch not in sizes:
            raise _Unknown
        out.append(sizes[ch])
    return Shape(out)


@_op(
    "F.scaled_dot_product_attention",
    "query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False",
    free=True,
)
def _o_sdpa(_: None, a: dict) -> Any:
    q, k, v = (_as_shape(a[n]) for n in ("query", "key", "value"))
    if not (q.exact and k.exact and v.exact) or min(len(q.dims), len(k.dims), len(v.dims)) < 2:
        raise _Unknown
    if _flag(a["enable_gqa"]) is not False:
        raise _Unknown
    scores = _matmul(q, Shape((*k.dims[:-2], k.dims[-1], k.dims[-2])))
    if isinstance(scores, ShapeError):
        return scores
    return _matmul(scores, v)


# -- reductions ---------------------------------------------------------------------------------------
def _reduce(x: Shape, dims: Any, keepdim: Any, *, all_if_empty: bool = True) -> Shape | ShapeError:
    keep = _need_flag(keepdim)
    if dims is None or (isinstance(dims, (tuple, list)) and not dims and all_if_empty):
        if not x.exact:
            if keep:
                raise _Unknown
            return Shape(())
        return Shape([1] * len(x.dims)) if keep else Shape(())
    seq = list(dims) if isinstance(dims, (tuple, list)) else [dims]
    idx = [_dim_index(x, d) for d in seq]
    positions = [_pos(x, i) for i in idx]
    seen: set[int] = set()
    for i, p in zip(idx, positions):
        if p in seen:
            return _err(f"dim {i} appears multiple times in the list of dims")
        seen.add(p)
    out: list[Dim] = []
    for j, d in enumerate(x.dims):
        if j in seen:
            if keep:
                out.append(Dim.const(1))
        else:
            out.append(d)
    return Shape(out, x.exact)


_REDUCE = "sum mean nansum nanmean prod amax amin logsumexp all any"


@_op(
    " ".join(_REDUCE.split() + ["torch." + n for n in _REDUCE.split()]),
    "dim=None, keepdim=False, *, dtype=None, out=None",
)
def _o_reduce(x: Shape, a: dict) -> Any:
    return _reduce(x, a["dim"], a["keepdim"])


@_op("count_nonzero torch.count_nonzero", "dim=None")
def _o_count_nonzero(x: Shape, a: dict) -> Any:
    return _reduce(x, a["dim"], False)


@_op("std var torch.std torch.var", "dim=None, unbiased=None, keepdim=False, *, correction=None, out=None")
def _o_std(x: Shape, a: dict) -> Any:
    d = a["dim"]
    if isinstance(d, bool):  # std(unbiased)
        return _reduce(x, None, False)
    return _reduce(x, d, a["keepdim"])


@_op(
    "torch.std_mean torch.var_mean",
    "dim=None, unbiased=None, keepdim=False, *, correction=None",
)
def _o_std_mean(x: Shape, a: dict) -> Any:
    out = _o_std(x, a)
    return out if isinstance(out, ShapeError) else (out, out)


@_op("norm torch.norm", "p='fro', dim=None, keepdim=False, dtype=None, out=None")
def _o_norm(x: Shape, a: dict) -> Any:
    return _reduce(x, a["dim"], a["keepdim"])


@_op("argmax argmin torch.argmax torch.argmin", "dim=None, keepdim=False")
def _o_argmax(x: Shape, a: dict) -> Any:
    if a["dim"] is None:
        if _need_flag(a["keepdim"]):
            return Shape([1] * len(x.dims)) if x.exact else None
        return Shape(())
    return _reduce(x, a["dim"], a["keepdim"])


@_op("max min torch.max torch.min", "dim=None, keepdim=False, *, out=None")
def _o_max(x: Shape, a: dict) -> Any:
    d = a["dim"]
    if d is None:
        return Shape(())
    if isinstance(d, Shape):  # max(other): element-wise
        return broadcast(x, d)
    out = _reduce(x, d, a["keepdim"])
    return out if isinstance(out, ShapeError) else (out, out)


@_op("median nanmedian torch.median torch.nanmedian", "dim=None, keepdim=False")
def _o_median(x: Shape, a: dict) -> Any:
    if a["dim"] is None:
        return Shape(())
    out = _reduce(x, a["dim"], a["keepdim"])
    return out if isinstance(out, ShapeError) else (out, out)


@_op("mode torch.mode", "dim=-1, keepdim=False")
def _o_mode(x: Shape, a: dict) -> Any:
    out = _reduce(x, a["dim"], a["keepdim"])
    return out if isinstance(out, ShapeError) else (out, out)


@_op("kthvalue torch.kthvalue", "k, dim=-1, keepdim=False")
def _o_kthvalue(x: Shape, a: dict) -> Any:
    out = _reduce(x, a["dim"], a["keepdim"])
    return out if isinstance(out, ShapeError) else (out, out)


@_op("topk torch.topk", "k, dim=-1, largest=True, sorted=True")
def _o_topk(x: Shape, a: dict) -> Any:
    if x.exact and not x.dims:
        raise _Unknown
    i = _dim_index(x, a["dim"])
    p = _pos(x, i)
    k = _int(a["k"])
    if _lt(x.dims[p], k) is True:
        return _err("selected index k out of range")
    dims = list(x.dims)
    dims[p] = k
    out = Shape(dims, x.exact)
    return (out, out)


# -- shape manipulation -------------------------------------------------------------------------------
def _view(x: Shape, sizes: tuple[Dim, ...]) -> Shape | ShapeError:
    numel = x.numel
    holes = [i for i, s in enumerate(sizes) if s.value == -1]
    for i, s in enumerate(sizes):
        if s.value is not None and s.value < -1:
            return _err(f"invalid shape dimension {s} at index {i} of shape {_fmt_list(sizes)}")
    if len(holes) > 1:
        return _err("only one dimension can be inferred")
    rest = _prod(s for s in sizes if s.value != -1)
    out = list(sizes)
    if holes:
        q = numel.exact_div(rest)
        if q is None:
            if numel.value is not None and rest.value is not None:
                if rest.value == 0:
                    raise _Unknown
                return _err(f"shape '{_fmt_list(sizes)}' is invalid for input of size {numel}", code="GG506")
            q = UNKNOWN  # b*400 elements as (-1, 256): whole for some b, so no error is certain
        out[holes[0]] = q
    elif same(rest, numel) is False:
        return _err(f"shape '{_fmt_list(sizes)}' is invalid for input of size {numel}", code="GG506")
    return Shape(out)


@_op("view reshape torch.reshape", "*shape")
def _o_view(x: Shape, a: dict) -> Any:
    shape_arg = a["shape"]
    if len(shape_arg) == 1 and not isinstance(shape_arg[0], (tuple, list, Shape)):
        v = shape_arg[0]
        if not isinstance(v, (int, Dim)) or isinstance(v, bool):
            return None  # view(dtype)
    sizes = _sizes(tuple(shape_arg))
    if sizes is None:
        raise _Unknown
    if not x.exact and not any(s.value == -1 for s in sizes):
        return Shape(sizes)
    if not x.exact:
        raise _Unknown
    return _view(x, sizes)


@_op("view_as reshape_as", "other")
def _o_view_as(x: Shape, a: dict) -> Any:
    other = _as_shape(a["other"])
    if not other.exact:
        raise _Unknown
    if not x.exact:
        return other
    return _view(x, other.dims)


@_op("expand_as", "other")
def _o_expand_as(x: Shape, a: dict) -> Any:
    other = _as_shape(a["other"])
    if not other.exact:
        raise _Unknown
    return _o_expand(x, {"size": (other.dims,)})


@_op("flatten torch.flatten", "start_dim=0, end_dim=-1")
def _o_flatten(x: Shape, a: dict) -> Any:
    return _flatten(x, a["start_dim"], a["end_dim"])


@_op("unflatten torch.unflatten", "dim, sizes")
def _o_unflatten(x: Shape, a: dict) -> Any:
    return _unflatten(x, a["dim"], a["sizes"])


@_op("squeeze torch.squeeze squeeze_", "dim=None")
def _o_squeeze(x: Shape, a: dict) -> Any:
    d = a["dim"]
    if d is None:
        if not x.exact:
            raise _Unknown
        keep = []
        for s in x.dims:
            one = _is_one(s)
            if one is None:
                return None
            if not one:
                keep.append(s)
        return Shape(keep)
    seq = list(d) if isinstance(d, (tuple, list)) else [d]
    positions = {_pos(x, _dim_index(x, v)) for v in seq}
    out = []
    for j, s in enumerate(x.dims):
        if j in positions:
            one = _is_one(s)
            if one is None:
                raise _Unknown
            if one:
                continue
        out.append(s)
    return Shape(out, x.exact)


@_op("unsqueeze torch.unsqueeze unsqueeze_", "dim")
def _o_unsqueeze(x: Shape, a: dict) -> Any:
    i = _dim_index(x, a["dim"], extra=1)
    dims = list(x.dims)
    p = i if i >= 0 else len(dims) + i + 1
    dims.insert(p, Dim.const(1))
    return Shape(dims, x.exact)


@_op("permute torch.permute", "*dims")
def _o_permute(x: Shape, a: dict) -> Any:
    dims_arg = a["dims"]
    if not dims_arg:
        raise _Unknown  # TypeError: permute() missing its dims
    if len(dims_arg) == 1 and isinstance(dims_arg[0], (tuple, list)):
        dims_arg = tuple(dims_arg[0])
    if not x.exact:
        raise _Unknown
    if len(dims_arg) != len(x.dims):
        return _err(
            "permute(sparse_coo): number of dimensions in the tensor input does not match the length of the "
            f"desired ordering of dimensions i.e. input.dim() = {len(x.dims)} is not equal to len(dims) = "
            f"{len(dims_arg)}"
        )
    idx = [_dim_index(x, d) for d in dims_arg]
    if len(set(idx)) != len(idx):
        return _err("permute(): duplicate dims are not allowed.")
    return Shape([x.dims[i] for i in idx])


@_op("transpose swapaxes swapdims torch.transpose torch.swapaxes torch.swapdims transpose_", "dim0, dim1")
def _o_transpose(x: Shape, a: dict) -> Any:
    if x.exact and not x.dims:
        for v in (a["dim0"], a["dim1"]):
            if _pyint(v) not in (0, -1):
                raise _Unknown
        return x
    i, j = _dim_index(x, a["dim0"]), _dim_index(x, a["dim1"])
    dims = list(x.dims)
    pi, pj = _pos(x, i), _pos(x, j)
    dims[pi], dims[pj] = dims[pj], dims[pi]
    return Shape(dims, x.exact)


@_op("t torch.t", "")
def _o_t(x: Shape, a: dict) -> Any:
    if not x.exact:
        raise _Unknown
    if len(x.dims) > 2:
        return _err(f"t() expects a tensor with <= 2 dimensions, but self is {len(x.dims)}D")
    return Shape(tuple(reversed(x.dims)))


@_op("T", "")
def _o_T(x: Shape, a: dict) -> Any:
    if not x.exact:
        raise _Unknown
    return Shape(tuple(reversed(x.dims)))


@_op("mT mH", "")
def _o_mT(x: Shape, a: dict) -> Any:
    if x.exact and len(x.dims) < 2:
        return _err(
            f"tensor.mT is only supported on matrices or batches of matrices. Got {len(x.dims)}-D tensor."
        )
    dims = list(x.dims)
    if len(dims) < 2:
        raise _Unknown
    dims[-1], dims[-2] = dims[-2], dims[-1]
    return Shape(dims, x.exact)


@_op("H", "")
def _o_H(x: Shape, a: dict) -> Any:
    if not x.exact or len(x.dims) != 2:
        raise _Unknown  # "tensor.H is only supported on matrices (2-D tensors)"
    return Shape(tuple(reversed(x.dims)))


@_op("movedim moveaxis torch.movedim torch.moveaxis", "source, destination")
def _o_movedim(x: Shape, a: dict) -> Any:
    if not x.exact:
        raise _Unknown
    src = a["source"] if isinstance(a["source"], (tuple, list)) else [a["source"]]
    dst = a["destination"] if isinstance(a["destination"], (tuple, list)) else [a["destination"]]
    if len(src) != len(dst):
        raise _Unknown
    s_idx = [_dim_index(x, v) for v in src]
    d_idx = [_dim_index(x, v) for v in dst]
    n = len(x.dims)
    order: list[int | None] = [None] * n
    for s_, d_ in zip(s_idx, d_idx):
        order[d_] = s_
    rest = iter(i for i in range(n) if i not in s_idx)
    perm = [o if o is not None else next(rest) for o in order]
    return Shape([x.dims[i] for i in perm])


@_op("expand", "*size")
def _o_expand(x: Shape, a: dict) -> Any:
    sizes = _sizes(tuple(a["size"]))
    if sizes is None:
        raise _Unknown
    if not x.exact:
        if len(sizes) < len(x.dims):
            raise _Unknown
        out = list(sizes)
        for i in range(1, len(x.dims) + 1):
            if out[-i].value == -1:
                out[-i] = x.dims[-i]
        if any(d.value == -1 for d in out):
            raise _Unknown
        return Shape(out)
    if len(sizes) < len(x.dims):
        return _err(
            f"expand(torch.FloatTensor{{{_fmt_list(x.dims)}}}, size={_fmt_list(sizes)}): the number of sizes "
            f"provided ({len(sizes)}) must be greater or equal to the number of dimensions in the tensor "
            f"({len(x.dims)})"
        )
    lead = len(sizes) - len(x.dims)
    out = []
    for i in reversed(range(len(sizes))):  # torch checks from the last dim
        target = sizes[i]
        if i < lead:
            if target.value == -1:
                raise _Unknown
            out.append(target)
            continue
        have = x.dims[i - lead]
        if target.value == -1:
            out.append(have)
            continue
        if _is_one(have) is True:
            out.append(target)
            continue
        if same(have, target) is False and (have.value is not None or _is_one(have) is False):
            if have.value is not None and target.value is not None:
                return _err(
                    f"The expanded size of the tensor ({target}) must match the existing size ({have}) at "
                    f"non-singleton dimension {i}.  Target sizes: {_fmt_list(sizes)}.  Tensor sizes: "
                    f"{_fmt_list(x.dims)}",
                    code="GG507",
                )
            raise _Unknown
        out.append(have if have.value is not None and have.value != 1 else target)
    return Shape(reversed(out))


@_op("repeat", "*sizes")
def _o_repeat(x: Shape, a: dict) -> Any:
    sizes = _sizes(tuple(a["sizes"]))
    if sizes is None or not x.exact:
        raise _Unknown
    if len(sizes) < len(x.dims):
        return _err(
            "Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor"
        )
    padded = [Dim.const(1)] * (len(sizes) - len(x.dims)) + list(x.dims)
    return Shape([d * r for d, r in zip(padded, sizes)])


@_op("tile torch.tile", "*dims")
def _o_tile(x: Shape, a: dict) -> Any:
    sizes = _sizes(tuple(a["dims"]))
    if sizes is None or not x.exact:
        raise _Unknown
    if len(sizes) < len(x.dims):
        sizes = (Dim.const(1),) * (len(x.dims) - len(sizes)) + tuple(sizes)
    return _o_repeat(x, {"sizes": sizes})


@_op("repeat_interleave torch.repeat_interleave", "repeats=None, dim=None, *, output_size=None")
def _o_repeat_interleave(x: Shape, a: dict) -> Any:
    r = a["repeats"]
    if isinstance(r, Shape) or r is None:
        raise _Unknown
    reps = _int(r)
    if a["dim"] is None:
        return Shape((x.numel * reps,)) if x.exact else None
    i = _real_dim(x, a["dim"])
    dims = list(x.dims)
    dims[_pos(x, i)] = dims[_pos(x, i)] * reps
    return Shape(dims, x.exact)


@_op("narrow torch.narrow", "dim, start, length")
def _o_narrow(x: Shape, a: dict) -> Any:
    i = _real_dim(x, a["dim"])
    p = _pos(x, i)
    start, length = _int(a["start"]), _int(a["length"])
    size = x.dims[p]
    if start.value is not None and length.value is not None and size.value is not None:
        s = start.value + size.value if start.value < 0 else start.value
        if s + length.value > size.value:
            return _err(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    dims = list(x.dims)
    dims[p] = length
    return Shape(dims, x.exact)


@_op("select torch.select", "dim, index")
def _o_select(x: Shape, a: dict) -> Any:
    i = _real_dim(x, a["dim"])
    p = _pos(x, i)
    idx, size = _int(a["index"]), x.dims[p]
    if idx.value is not None and size.value is not None and not (-size.value <= idx.value < size.value):
        return _err(
            f"select(): index {idx} out of range for tensor of size {_fmt_list(x.dims)} at dimension {i}",
            "IndexError",
        )
    dims = list(x.dims)
    del dims[p]
    return Shape(dims, x.exact)


@_op("unbind torch.unbind", "dim=0")
def _o_unbind(x: Shape, a: dict) -> Any:
    i = _real_dim(x, a["dim"])
    p = _pos(x, i)
    dims = list(x.dims)
    size = dims.pop(p)
    item = Shape(dims, x.exact)
    if size.value is not None:
        return tuple(item for _ in range(size.value))
    return Repeated(item)


@_op("chunk torch.chunk", "chunks, dim=0")
def _o_chunk(x: Shape, a: dict) -> Any:
    i = _real_dim(x, a["dim"])
    p = _pos(x, i)
    size = x.dims[p]
    chunks = _int(a["chunks"])
    if chunks.value is not None and chunks.value <= 0:
        return _err(f"chunk expects `chunks` to be greater than 0, got: {chunks}")

    def piece(n: Dim) -> Shape:
        dims = list(x.dims)
        dims[p] = n
        return Shape(dims, x.exact)

    if size.value is not None and chunks.value is not None:
        step = -(-size.value // chunks.value)
        if size.value == 0:
            return tuple(piece(Dim.const(0)) for _ in range(chunks.value))
        count = -(-size.value // step)
        lens = [step] * (count - 1) + [size.value - step * (count - 1)]
        return tuple(piece(Dim.const(n)) for n in lens)
    q = size.exact_div(chunks)
    if q is not None and chunks.value is not None:
        return tuple(piece(q) for _ in range(chunks.value))
    return Repeated(piece(UNKNOWN))


@_op("split torch.split", "split_size_or_sections, dim=0")
def _o_split(x: Shape, a: dict) -> Any:
    i = _real_dim(x, a["dim"])
    p = _pos(x, i)
    size = x.dims[p]
    arg = a["split_size_or_sections"]

    def piece(n: Any) -> Shape:
        dims = list(x.dims)
        dims[p] = Dim.of(n)
        return Shape(dims, x.exact)

    if isinstance(arg, (tuple, list)):
        parts = [_int(v) for v in arg]
        total = _dim_sum(parts)
        if same(total, size) is False:
            return _err(
                f"split_with_sizes expects split_sizes to sum exactly to {size} (input tensor's size at dimension "
                f"{i}), but got split_sizes={_fmt_list(parts)}"
            )
        return tuple(piece(n) for n in parts)
    step = _int(arg)
    if size.value is not None and step.value is not None:
        if step.value <= 0:
            raise _Unknown
        if size.value == 0:
            return (piece(0),)
        count = -(-size.value // step.value)
        lens = [step.value] * (count - 1) + [size.value - step.value * (count - 1)]
        return tuple(piece(n) for n in lens)
    q = size.exact_div(step)
    if q is not None and q.value is not None and q.value > 0:
        return tuple(piece(step) for _ in range(q.value))
    return Repeated(piece(UNKNOWN))


def _stack(shapes: list[Shape], exact: list[Shape], dim_arg: Any) -> Shape | ShapeError:
    """torch.stack: equal shapes, a new dimension of their count."""
    ref = exact[0] if exact else shapes[0]
    for j, s in enumerate(shapes):
        if s.exact and ref.exact and same_shape(s, ref) is False:
            ref_at = shapes.index(ref)
            return _err(
                f"stack expects each tensor to be equal size, but got {_fmt_list(ref.dims)} at entry {ref_at} "
                f"and {_fmt_list(s.dims)} at entry {j}",
                code="GG508",
            )
    if not ref.exact:
        raise _Unknown
    i = _dim_index(ref, dim_arg, extra=1)
    dims = list(_merge_dims([s for s in shapes if s.exact]))
    dims.insert(i, Dim.const(len(shapes)))
    return Shape(dims)


def _cat_like(tensors: Any, dim_arg: Any, stack: bool) -> Any:
    if isinstance(tensors, Repeated):
        raise _Unknown
    if not isinstance(tensors, (tuple, list)):
        raise _Unknown
    name = "stack" if stack else "cat"
    if not tensors:
        return _err(f"torch.{name}(): expected a non-empty list of Tensors", "ValueError")
    shapes = [_as_shape(t) for t in tensors]
    exact = [s for s in shapes if s.exact]
    if stack:
        return _stack(shapes, exact, dim_arg)
    if len(exact) < len(shapes):
        raise _Unknown
    # legacy: 1-D empty tensors are skipped
    kept = [s for s in shapes if not (len(s.dims) == 1 and s.dims[0].value == 0)]
    if not kept:
        return shapes[0]
    ranks = {len(s.dims) for s in kept}
    if len(ranks) > 1:
        if any(len(s.dims) == 1 and s.dims[0].value is None for s in kept):
            raise _Unknown  # a 1-D tensor that may be empty
        first = kept[0]
        other = next(s for s in kept if len(s.dims) != len(first.dims))
        return _err(
            f"Tensors must have same number of dimensions: got {len(first.dims)} and {len(other.dims)}",
            code="GG508",
        )
    for j, s in enumerate(shapes):
        if not s.dims:
            return _err(f"zero-dimensional tensor (at position {j}) cannot be concatenated", code="GG508")
    ref = kept[0]
    i = _dim_index(ref, dim_arg)
    for j, s in enumerate(kept[1:], start=1):
        for k, (da, db) in enumerate(zip(ref.dims, s.dims)):
            if k == i:
                continue
            if same(da, db) is False:
                index = shapes.index(s) if s in shapes else j
                return _err(
                    f"Sizes of tensors must match except in dimension {i}. Expected size {da} but got size {db} "
                    f"for tensor number {index} in the list.",
                    code="GG508",
                )
    merged = list(_merge_dims([Shape(s.dims[:i] + (Dim.const(0),) + s.dims[i + 1 :]) for s in kept]))
    merged[i] = _dim_sum(s.dims[i] for s in kept)
    return Shape(merged)


def _merge_dims(shapes: list[Shape]) -> tuple[Dim, ...]:
    """Shapes known (or assumed) equal: per position, the best-known dim."""
    out = list(shapes[0].dims)
    for s in shapes[1:]:
        for k, d in enumerate(s.dims):
            if out[k].value is None and d.value is not None:
                out[k] = d
    return tuple(out)


@_op("torch.cat torch.concat torch.concatenate", "tensors, dim=0, *, out=None", free=True)
def _o_cat(_: None, a: dict) -> Any:
    return _cat_like(a["tensors"], a["dim"], stack=False)


@_op("torch.stack", "tensors, dim=0, *, out=None", free=True)
def _o_stack(_: None, a: dict) -> Any:
    return _cat_like(a["tensors"], a["dim"], stack=True)


@_op("gather torch.gather", "dim, index, *, sparse_grad=False, out=None")
def _o_gather(x: Shape, a: dict) -> Any:
    index = _as_shape(a["index"])
    _dim_index(x, a["dim"])
    if x.exact and index.exact and len(x.dims) != len(index.dims) and index.dims:
        return _err("Index tensor must have the same number of dimensions as input tensor")
    return index


@_op("index_select torch.index_select", "dim, index")
def _o_index_select(x: Shape, a: dict) -> Any:
    index = _as_shape(a["index"])
    i = _real_dim(x, a["dim"])
    if not index.exact or len(index.dims) > 1:
        raise _Unknown
    dims = list(x.dims)
    dims[_pos(x, i)] = index.dims[0] if index.dims else Dim.const(1)
    return Shape(dims, x.exact)


@_op("masked_select torch.masked_select", "mask")
def _o_masked_select(x: Shape, a: dict) -> Any:
    return Shape((UNKNOWN,))


@_op("nonzero torch.nonzero", "*, as_tuple=False")
def _o_nonzero(x: Shape, a: dict) -> Any:
    if not x.exact:
        raise _Unknown
    if _need_flag(a["as_tuple"]):
        return tuple(Shape((UNKNOWN,)) for _ in range(max(len(x.dims), 1)))
    return Shape((UNKNOWN, len(x.dims)))


@_op("take torch.take", "index")
def _o_take(x: Shape, a: dict) -> Any:
    return _as_shape(a["index"])


@_op("scatter scatter_add scatter_ scatter_add_ index_add index_add_ index_copy index_fill masked_scatter")
def _o_scatter(x: Shape, a: dict) -> Any:
    return x


# -- metadata -----------------------------------------------------------------------------------------
@_op("size shape", "dim=None")
def _o_size(x: Shape, a: dict) -> Any:
    if a["dim"] is None:
        return tuple(x.dims) if x.exact else None
    i = _dim_index(x, a["dim"])
    if x.exact and not x.dims:
        raise _Raise(_range_msg(_pyint(a["dim"]) or 0, 0))
    return x.dims[_pos(x, i)]


@_op("dim ndim ndimension", "")
def _o_dim(x: Shape, a: dict) -> Any:
    return len(x.dims) if x.exact else None


@_op("numel nelement torch.numel", "")
def _o_numel(x: Shape, a: dict) -> Any:
    return x.numel if x.exact else None


@_op("__len__", "")
def _o_len(x: Shape, a: dict) -> Any:
    if x.exact and not x.dims:
        return _err("len() of a 0-d tensor", "TypeError")
    return x.at(0) if x.exact else None


# -- indexing -----------------------------------------------------------------------------------------
def _slice_len(size: Dim, sl: slice) -> Dim:
    start, stop, step = sl.start, sl.stop, sl.step
    st = 1 if step is None else _pyint(step)
    if st is None:
        raise _Unknown
    if st <= 0:
        raise _Raise(_err("step must be greater than zero", "ValueError"))
    ints = [v for v in (start, stop) if v is not None]
    if size.value is not None and all(_pyint(v) is not None for v in ints):
        py = slice(None if start is None else _pyint(start), None if stop is None else _pyint(stop), st)
        return Dim.const(len(range(*py.indices(size.value))))

    def bound(v: Any, default: Dim) -> Dim:
        if v is None:
            return default
        iv = _pyint(v)
        if iv is not None:
            if iv < 0:
                return size + iv
            if size.value is not None:
                return Dim.const(min(iv, size.value))
            return Dim.const(iv)
        d = Dim.of(v)
        if d.is_unknown:
            raise _Unknown
        return d

    b0 = bound(start, Dim.const(0))
    b1 = bound(stop, size)
    length = b1 - b0
    if length.value is not None and length.value < 0:
        length = Dim.const(0)
    return length if st == 1 else length.cdiv(st)


def _getitem(x: Shape, index: Any) -> Any:
    items = list(index) if isinstance(index, tuple) else [index]
    used = sum(_index_consumes(i) for i in items)
    n_ell = sum(1 for i in items if i is Ellipsis)
    if n_ell > 1:
        return _err("an index can only have a single ellipsis ('...')", "IndexError")
    if not x.exact:
        return _getitem_unknown_rank(x, items, used)
    rank = len(x.dims)
    if used > rank:
        return _err(f"too many indices for tensor of dimension {rank}", "IndexError")
    expanded: list[tuple[int, Any]] = []  # (position in the index tuple, item)
    for where, item in enumerate(items):
        if item is Ellipsis:
            expanded.extend([(where, slice(None))] * (rank - used))
        else:
            expanded.append((where, item))
    out: list[Any] = []  # Dims, or ("adv", Shape) placeholders
    pos = 0
    for where, item in expanded:
        step = _index_item(x, pos, where, item)
        if isinstance(step, ShapeError):
            return step
        entry, taken = step
        if entry is not None:
            out.append(entry)
        pos += taken
    out.extend(x.dims[pos:])
    return _advanced_indexing(out)


def _index_consumes(item: Any) -> int:
    """How many dimensions of the indexed tensor one index item consumes."""
    if item is None or item is Ellipsis:
        return 0
    if isinstance(item, Mask):
        if not item.shape.exact:
            raise _Unknown
        return len(item.shape.dims)
    if isinstance(item, bool):
        raise _Unknown
    return 1


def _getitem_unknown_rank(x: Shape, items: list, used: int) -> Any:
    """Only `x[..., <items>]` is known on an unknown-rank tensor."""
    if not items or items[0] is not Ellipsis:
        raise _Unknown
    if len(x.dims) < used:
        raise _Unknown
    rank_known = Shape(x.dims[len(x.dims) - used :]) if used else Shape(())
    res = _getitem(rank_known, tuple(items[1:]))
    if not isinstance(res, Shape):
        return res
    lead = x.dims[: len(x.dims) - used]
    return Shape(lead + res.dims, False)


def _index_item(x: Shape, pos: int, where: int, item: Any) -> tuple[Any, int] | ShapeError:
    """(what the item puts in the result: a Dim, an ("adv", Shape) placeholder or None; how many
    dimensions of `x` from `pos` it consumes), or the IndexError it raises. `where`: its place in
    the index tuple."""
    if item is None:
        return Dim.const(1), 0
    if isinstance(item, slice):
        return _slice_len(x.dims[pos], item), 1
    if isinstance(item, Mask):
        m = item.shape
        covered = x.dims[pos : pos + len(m.dims)]
        for k, (md, xd) in enumerate(zip(m.dims, covered)):
            if same(md, xd) is False:
                return _err(
                    f"The shape of the mask {_fmt_list(m.dims)} at index {k} does not match the shape of the "
                    f"indexed tensor {_fmt_list(x.dims)} at index {pos + k}",
                    "IndexError",
                )
        return ("adv", Shape((UNKNOWN,))), len(m.dims)
    if isinstance(item, Shape):
        return ("adv", item), 1
    if isinstance(item, list):
        if not all(_pyint(v) is not None for v in item):
            raise _Unknown
        return ("adv", Shape((len(item),))), 1
    iv = _pyint(item)
    if iv is not None or isinstance(item, Dim):
        size = x.dims[pos]
        if iv is not None and size.value is not None and not (-size.value <= iv < size.value):
            # torch numbers the dimension by the item's place in the index tuple
            return _err(f"index {iv} is out of bounds for dimension {where} with size {size}", "IndexError")
        return None, 1
    raise _Unknown


def _advanced_indexing(out: list[Any]) -> Any:
    """The result shape from the dims and ("adv", Shape) placeholders: the advanced indices
    broadcast together, in place when they are adjacent, else first."""
    advanced = [j for j, o in enumerate(out) if isinstance(o, tuple)]
    if not advanced:
        return Shape(out)
    adv_shapes = [out[j][1] for j in advanced]
    b = broadcast(*adv_shapes)
    if isinstance(b, ShapeError):
        shown = ", ".join(_fmt_list(s.dims) for s in adv_shapes)
        return _err(
            f"shape mismatch: indexing tensors could not be broadcast together with shapes {shown}",
            "IndexError",
        )
    if not b.exact:
        raise _Unknown
    contiguous = advanced == list(range(advanced[0], advanced[-1] + 1))
    plain = [o for o in out if not isinstance(o, tuple)]
    if contiguous:
        before = [o for o in out[: advanced[0]]]
        after = [o for o in out[advanced[-1] + 1 :]]
        return Shape(before + list(b.dims) + after)
    return Shape(list(b.dims) + plain)


@_op("__getitem__", "index")
def _o_getitem(x: Shape, a: dict) -> Any:
    return _getitem(x, a["index"])


# -- factories ----------------------------------------------------------------------------------------
_FACTORY_KW = "*, out=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False, memory_format=None, generator=None, names=None"


@_op("torch.zeros torch.ones torch.empty torch.rand torch.randn", "*size, " + _FACTORY_KW[3:], free=True)
def _o_factory(_: None, a: dict) -> Any:
    sizes = _sizes(tuple(a["size"]))
    if sizes is None:
        raise _Unknown
    return Shape(sizes)


@_op("torch.full", "size, fill_value, " + _FACTORY_KW, free=True)
def _o_full(_: None, a: dict) -> Any:
    sizes = _sizes((a["size"],))
    if sizes is None:
        raise _Unknown
    return Shape(sizes)


@_op("torch.randint", "*args, " + _FACTORY_KW[3:], free=True)
def _o_randint(_: None, a: dict) -> Any:
    args = a["args"]
    if len(args) not in (2, 3):
        raise _Unknown
    sizes = _sizes((args[-1],))
    if sizes is None:
        raise _Unknown
    return Shape(sizes)


@_op("new_zeros new_ones new_empty", "*size, " + _FACTORY_KW[3:])
def _o_new(x: Shape, a: dict) -> Any:
    return _o_factory(None, a)


@_op("new_full", "size, fill_value, " + _FACTORY_KW)
def _o_new_full(x: Shape, a: dict) -> Any:
    return _o_full(None, a)


@_op("torch.arange", "start, end=None, step=1, " + _FACTORY_KW, free=True)
def _o_arange(_: None, a: dict) -> Any:
    start, end, step = a["start"], a["end"], a["step"]
    if end is None:
        start, end = 0, start
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, end, step)):
        if step == 0:
            raise _Unknown
        return Shape((max(math.ceil((end - start) / step), 0),))
    if _pyint(step) == 1 and isinstance(start, (int, Dim)) and isinstance(end, (int, Dim)):
        return Shape((Dim.of(end) - Dim.of(start),))
    raise _Unknown


@_op("torch.linspace torch.logspace", "start, end, steps, *args, **kwargs", free=True)
def _o_linspace(_: None, a: dict) -> Any:
    return Shape((_int(a["steps"]),))


@_op("torch.eye", "n, m=None, " + _FACTORY_KW, free=True)
def _o_eye(_: None, a: dict) -> Any:
    n = _int(a["n"])
    return Shape((n, n if a["m"] is None else _int(a["m"])))


@_op("torch.randperm", "n, " + _FACTORY_KW, free=True)
def _o_randperm(_: None, a: dict) -> Any:
    return Shape((_int(a["n"]),))


# -- functional layers --------------------------------------------------------------------------------
def _f_conv_op(n: int, transposed: bool) -> Callable:
    def fn(x: Shape, a: dict) -> Any:
        w = _as_shape(a["weight"])
        if not w.exact or len(w.dims) != n + 2:
            raise _Unknown
        groups = _int(a["groups"])
        k = tuple(w.dims[2:])
        s = _need_tuple(a["stride"], n)
        d = _need_tuple(a["dilation"], n)
        padding = a["padding"]
        if transposed:
            p = _need_tuple(padding, n)
            return _conv(
                x, n, w.dims[0], w.dims[1] * groups, k, s, p, d, groups,
                transposed=True, output_padding=_need_tuple(a["output_padding"], n), argument="weight",
            )  # fmt: skip
        pad: tuple[Dim, ...] | str = padding if isinstance(padding, str) else _need_tuple(padding, n)
        return _conv(x, n, w.dims[1] * groups, w.dims[0], k, s, pad, d, groups, argument="weight")

    return fn


for _n in (1, 2, 3):
    _op(f"F.conv{_n}d torch.conv{_n}d", "weight, bias=None, stride=1, padding=0, dilation=1, groups=1")(
        _f_conv_op(_n, False)
    )
    _op(
        f"F.conv_transpose{_n}d torch.conv_transpose{_n}d",
        "weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1",
    )(_f_conv_op(_n, True))


def _f_pool_op(n: int, kind: str) -> Callable:
    def fn(x: Shape, a: dict) -> Any:
        k = _need_tuple(a["kernel_size"], n)
        stride = a["stride"]
        s = (
            k
            if stride is None or (isinstance(stride, (tuple, list)) and not stride)
            else _need_tuple(stride, n)
        )
        p = _need_tuple(a["padding"], n)
        d = _need_tuple(a.get("dilation", 1), n)
        ret = _need_flag(a.get("return_indices", False))
        return _pool(x, n, kind, k, s, p, d, _need_flag(a["ceil_mode"]), ret)

    return fn


def _f_adaptive_op(n: int, kind: str, x: Shape, a: dict) -> Any:
    return _adaptive(x, n, kind, a["output_size"], _need_flag(a.get("return_indices", False)))


def _f_loss_op(name: str, x: Shape, a: dict) -> Any:
    return _loss(name, x, _as_shape(a["target"]), _reduction(a))


for _n in (1, 2, 3):
    _op(
        f"F.max_pool{_n}d torch.max_pool{_n}d F.max_pool{_n}d_with_indices",
        "kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False",
    )(_f_pool_op(_n, "max"))
    _op(
        f"F.avg_pool{_n}d" + (" torch.avg_pool1d" if _n == 1 else ""),
        "kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None",
    )(_f_pool_op(_n, "avg"))
    _op(f"F.adaptive_avg_pool{_n}d" + (" torch.adaptive_avg_pool1d" if _n == 1 else ""), "output_size")(
        partial(_f_adaptive_op, _n, "avg")
    )
    _op(f"F.adaptive_max_pool{_n}d", "output_size, return_indices=False")(partial(_f_adaptive_op, _n, "max"))


@_op(
    "F.interpolate F.upsample",
    "size=None, scale_factor=None, mode='nearest', align_corners=None, recompute_scale_factor=None, antialias=False",
)
def _o_interpolate(x: Shape, a: dict) -> Any:
    return _interpolate(x, a["size"], a["scale_factor"], a["mode"])


@_op("F.upsample_nearest", "size=None, scale_factor=None")
def _o_upsample_nearest(x: Shape, a: dict) -> Any:
    return _interpolate(x, a["size"], a["scale_factor"], "nearest")


@_op("F.upsample_bilinear", "size=None, scale_factor=None")
def _o_upsample_bilinear(x: Shape, a: dict) -> Any:
    return _interpolate(x, a["size"], a["scale_factor"], "bilinear")


@_op("F.pad torch.constant_pad_nd", "pad, mode='constant', value=None")
def _o_pad(x: Shape, a: dict) -> Any:
    return _pad(x, a["pad"], a["mode"])


@_op(
    "F.embedding",
    "weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False",
)
def _o_embedding(x: Shape, a: dict) -> Any:
    w = _as_shape(a["weight"])
    if not w.exact or len(w.dims) != 2:
        raise _Unknown
    return _join(x, [w.dims[1]])


@_op("F.one_hot", "num_classes=-1")
def _o_one_hot(x: Shape, a: dict) -> Any:
    n = _int(a["num_classes"])
    return _join(x, [UNKNOWN if n.value == -1 else n])


@_op("F.pixel_shuffle torch.pixel_shuffle", "upscale_factor")
def _o_pixel_shuffle(x: Shape, a: dict) -> Any:
    return _pixel_shuffle(x, a["upscale_factor"], down=False)


@_op("F.pixel_unshuffle torch.pixel_unshuffle", "downscale_factor")
def _o_pixel_unshuffle(x: Shape, a: dict) -> Any:
    return _pixel_shuffle(x, a["downscale_factor"], down=True)


@_op("F.cosine_similarity torch.cosine_similarity", "x2, dim=1, eps=1e-08")
def _o_cosine(x: Shape, a: dict) -> Any:
    return _cosine_similarity(x, _as_shape(a["x2"]), a["dim"])


_LOSS_KW = "size_average=None, reduce=None, reduction='mean'"
for _fname, _fsig in {
    "cross_entropy": "target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction='mean', label_smoothing=0.0",
    "nll_loss": "target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction='mean'",
    "mse_loss": f"target, {_LOSS_KW}, weight=None",
    "l1_loss": f"target, {_LOSS_KW}",
    "smooth_l1_loss": f"target, {_LOSS_KW}, beta=1.0",
    "huber_loss": "target, reduction='mean', delta=1.0, weight=None",
    "binary_cross_entropy": f"target, weight=None, {_LOSS_KW}",
    "binary_cross_entropy_with_logits": f"target, weight=None, {_LOSS_KW}, pos_weight=None",
}.items():
    _op(f"F.{_fname}", _fsig)(partial(_f_loss_op, _fname))


@_op(
    "F.affine_grid",
    "size, align_corners=None",
)
def _o_affine_grid(theta: Shape, a: dict) -> Any:
    size = _sizes((a["size"],))
    if size is None or len(size) not in (4, 5):
        raise _Unknown
    spatial = 2 if len(size) == 4 else 3
    want = Shape((size[0], spatial, spatial + 1))
    if theta.exact and same_shape(theta, want) is False:
        kind = "2D" if spatial == 2 else "3D"
        return _err(
            # torch prints `size` as the caller passed it (tuple or torch.Size): only the start is certain
            f"Expected a batch of {kind} affine matrices of shape Nx{spatial}x{spatial + 1} for size",
            "ValueError",
        )
    return Shape((size[0], *size[2:], spatial))


@_op("F.grid_sample", "grid, mode='bilinear', padding_mode='zeros', align_corners=None")
def _o_grid_sample(x: Shape, a: dict) -> Any:
    grid = _as_shape(a["grid"])
    if not (x.exact and grid.exact) or len(x.dims) not in (4, 5) or len(grid.dims) != len(x.dims):
        raise _Unknown
    if same(grid.dims[0], x.dims[0]) is False or same(grid.dims[-1], len(x.dims) - 2) is False:
        raise _Unknown
    return Shape((x.dims[0], x.dims[1], *grid.dims[1:-1]))


@_op("torch.view_as_complex", "")
def _o_view_as_complex(x: Shape, a: dict) -> Any:
    if x.exact and (not x.dims or same(x.dims[-1], 2) is False):
        return _err("Tensor must have a last dimension of size 2")
    if not x.dims:
        raise _Unknown
    return Shape(x.dims[:-1], x.exact)


@_op("torch.view_as_real", "")
def _o_view_as_real(x: Shape, a: dict) -> Any:
    return _join(x, [2])


@_op("torch.polar torch.complex", "other, *, out=None")
def _o_polar(x: Shape, a: dict) -> Any:
    return broadcast(x, _as_shape(a["other"]))
