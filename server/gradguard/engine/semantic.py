"""The semantic model of one file: flows of its scopes, summaries of its classes and calls.

`Semantics` is built once per check of a file and answers, lazily:

* `flow(func)` — the `Flow` of a function (or of the script statements, `func=None`) in
  its *natural context*: parameters hold what their annotations/defaults say; in
  `forward` of an `nn.Module` (and the methods it calls) they hold activations (tensors
  that may require grad); `self` is an instance of the enclosing class.
* `class_info(name)` — what a class of the file is (an `nn.Module`, an autograd Function,
  ...) and what each `self.<attr>` holds: the join of every store in `__init__` (after
  the base classes' `__init__`) and in the other methods, `register_buffer/parameter`
  and `add_module` included.
* calls: `model(x)` runs that class's `forward`, `self.helper(x)` the method, `f(x)` a
  function of the file — each evaluated with the caller's argument values (memoised by
  their abstraction, depth- and budget-limited); torch functions, tensor methods, layers,
  optimizers and factories through `gradguard.engine.torch_facts`.

`consulted` records which top-level statements (by name; "" for the script statements)
an analysis used, so that the analyzer can invalidate a unit's cached findings when one
of them changes. A memoised flow, class summary, call summary or call-site list keeps what
it consulted, and each reuse consults that again (`_begin`/`_end`/`_reuse`).
"""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Iterator
from contextlib import contextmanager

from gradguard.engine import shape_flow, torch_facts
from gradguard.engine.backward_helpers import backpropagated_parameters
from gradguard.engine.grad_callers import call_key
from gradguard.engine.holdings import parameter_named
from gradguard.engine.index import (
    KIND_FUNCTION,
    KIND_MODULE,
    ModuleContext,
    callee_name,
    iter_children,
    keyword,
    self_name,
    statement_start_line,
    walk,
)
from gradguard.engine.interpreter import (
    APPEND,
    ATTRIBUTE_STORE,
    BACKWARD,
    CALL,
    DTYPES,
    FUNCTION_INSTANCE_CALL,
    INPLACE,
    OPTIMIZER_STEP,
    REWRAP_CALL,
    TENSORISH,
    ZERO_GRAD_CALL,
    Arguments,
    Flow,
    Saved,
    State,
    _holder_name,
    disables_grad,
    grad_modes,
    is_float_dtype,
    transformed,
)
from gradguard.engine.mentions import (
    MENTIONS,
    Mentions,
    call_sites,
    method_call_sites,
    only_unresolved_import,
)
from gradguard.engine.symshape import UNKNOWN as UNKNOWN_DIM
from gradguard.engine.symshape import Shape
from gradguard.engine.values import (
    ANY,
    BOOL,
    BOOL_VALUE,
    BUFFER,
    CALLABLE,
    CLASS,
    CONTAINER,
    CTX,
    DATA,
    DETACH,
    DICT,
    FLOAT,
    FLOAT_VALUE,
    FUNCTION_CLASS,
    FUNCTION_INSTANCE,
    INT,
    INT_VALUE,
    INTEGRAL,
    ITEM,
    LIST,
    MAYBE,
    MODULE,
    NO,
    NO_GRAD,
    NONDIFF,
    NONE,
    NONE_VALUE,
    NOTHING,
    NUMBER,
    NUMPY,
    NUMPY_CUT,
    OBJECT,
    OBJECT_VALUE,
    OPTIMIZER,
    PARAMETER,
    REF,
    REWRAP,
    SCHEDULER,
    SIZE_VALUE,
    STR,
    STR_VALUE,
    TENSOR,
    TUPLE,
    UNKNOWN,
    YES,
    ZERO_GRAD,
    Cut,
    Value,
    as_integer,
    combine,
    cut,
    element_of,
    join,
    join_all,
    live_grad,
)

MAX_CALL_DEPTH = 6
FROZEN = "<frozen module>"  # `cls` of an unknown module after `.requires_grad_(False)`
MAX_SUMMARIES = 400  # call summaries per file; beyond that calls are unknown

# a line where a `global` statement may start: at the line's start, after `;` or after the `:` of a
# one-line compound statement (`if c: global x`); not `global_pool`, nor "global pooling" in a docstring
_GLOBAL_WORD = re.compile(r"(?:^|[;:])\s*global\b")
_FUNCTION_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef)

# -- vocabulary (hand-written: names people give things; not torch facts) ----------------------

_BUILTIN_CONTAINERS = {
    "list": LIST,
    "tuple": TUPLE,
    "sorted": LIST,
    "reversed": LIST,
    "set": LIST,
    "frozenset": LIST,
}
_BUILTIN_BOOLS = frozenset({"isinstance", "issubclass", "hasattr", "callable", "all", "any"})
_BUILTIN_NONE = frozenset({"print", "setattr", "delattr", "exec"})
_BUILTINS = frozenset(
    {"len", "range", "enumerate", "zip", "min", "max", "sum", "abs", "list", "tuple", "sorted", "reversed",
     "isinstance", "issubclass", "print", "dict", "set", "frozenset", "map", "filter", "iter", "next", "getattr",
     "hasattr", "setattr", "delattr", "round", "str", "repr", "any", "all", "divmod", "pow", "type", "id", "super",
     "float", "int", "bool", "complex", "callable", "open", "format", "hash", "vars", "dir", "exec", "eval",
     "object", "slice", "ord", "chr", "bytes", "staticmethod", "classmethod", "property", "locals", "globals"}
)  # fmt: skip

_LAYER_SAVES_INPUT = frozenset(
    {"Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
     "Embedding", "LayerNorm", "GroupNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d",
     "InstanceNorm2d", "InstanceNorm3d", "PReLU", "RMSNorm"}
)  # fmt: skip
_LAYER_SAVES_OUTPUT = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax",
                       "LogSoftmax": "log_softmax"}  # fmt: skip
_CONTAINER_LAYERS = frozenset({"Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"})
_FACTORIES = frozenset(
    {"zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm", "arange", "linspace", "logspace",
     "eye", "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like",
     "normal", "tensor", "as_tensor", "from_numpy", "Tensor", "FloatTensor", "DoubleTensor", "LongTensor",
     "IntTensor", "BoolTensor", "ByteTensor", "HalfTensor", "asarray", "scalar_tensor", "empty_strided",
     "bernoulli", "multinomial", "poisson"}
)  # fmt: skip
_INT_FACTORIES = frozenset({"randint", "randperm", "LongTensor", "IntTensor", "randint_like", "multinomial"})
# helpers named for converting to a numpy array: `to_numpy`, `to_np`, `tensor_to_numpy`, `to_numpy_array`,
# `tensor2numpy` (not `from_numpy`, `is_numpy`)
_NUMPY_HELPER = re.compile(r"(?:\w*_)?to_?(?:numpy|np)(?:_array)?|\w+2(?:numpy|np)", re.IGNORECASE)
_COPYING_FACTORIES = frozenset({"tensor", "as_tensor", "asarray", "Tensor", "FloatTensor", "DoubleTensor",
                                "LongTensor", "IntTensor", "BoolTensor", "ByteTensor", "HalfTensor"})  # fmt: skip
_COLLECTING = frozenset({"cat", "stack", "concat", "concatenate", "hstack", "vstack", "dstack", "column_stack",
                         "block_diag", "cartesian_prod"})  # fmt: skip
_SHAPE_METHODS = frozenset({"size", "dim", "ndimension", "numel", "nelement", "element_size", "stride",
                            "get_device", "is_contiguous", "data_ptr", "storage_offset", "__len__", "is_floating_point",
                            "is_complex", "equal", "type"})  # fmt: skip
_VIEW_METHODS = frozenset({"view", "view_as", "transpose", "transpose_", "permute", "t", "narrow", "select",
                           "unsqueeze", "squeeze", "expand", "expand_as", "unfold", "diagonal", "movedim",
                           "moveaxis", "swapaxes", "swapdims", "as_strided", "real", "imag", "mT", "T", "H",
                           "mH", "unflatten", "detach", "alias", "indices", "values"})  # fmt: skip
# methods whose arguments other than the receiver give only sizes, dims or shapes (`view_as(other)` reads
# `other.shape`): no gradient flows into them, and the result requires grad exactly when the receiver does
_SHAPE_ARGUMENT_METHODS = (_VIEW_METHODS - {"detach"}) | {"reshape", "reshape_as", "flatten", "repeat", "tile"}  # fmt: skip
# ops whose outputs autograd marks as views of a multi-output node, so writing into one raises "... is the
# output of a function that returns multiple views" (torch 2.13); the other view ops that return tuples do
# not: `tensor_split`/`hsplit`/... give plain slices, `broadcast_tensors` and `meshgrid` give the input itself
# or `expand` views, `unsafe_chunk`/`unsafe_split` opt out
_MULTI_OUTPUT_VIEWS = frozenset({"chunk", "split", "split_with_sizes", "unbind"})
_TYPED_CONSTRUCTORS = {"FloatTensor": "float32", "DoubleTensor": "float64", "HalfTensor": "float16",
                       "LongTensor": "int64", "IntTensor": "int32", "BoolTensor": "bool", "ByteTensor": "uint8"}  # fmt: skip
_INPLACE_EXCEPTIONS = frozenset({"requires_grad_", "share_memory_", "retain_grad_", "pin_memory_",
                                 "record_stream_"})  # fmt: skip
_TENSOR_ATTRIBUTES = {
    "shape": SIZE_VALUE, "dtype": OBJECT_VALUE, "device": OBJECT_VALUE, "ndim": INT_VALUE, "is_cuda": BOOL_VALUE,
    "requires_grad": BOOL_VALUE, "is_leaf": BOOL_VALUE, "grad_fn": OBJECT_VALUE, "layout": OBJECT_VALUE,
    "names": OBJECT_VALUE, "itemsize": INT_VALUE, "nbytes": INT_VALUE, "is_sparse": BOOL_VALUE,
    "is_quantized": BOOL_VALUE, "is_meta": BOOL_VALUE,
}  # fmt: skip
_PARAMETER_CTORS = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter",
                              "torch.nn.UninitializedParameter"})  # fmt: skip
_BUFFER_CTORS = frozenset({"torch.nn.Buffer", "torch.nn.parameter.Buffer"})
_VARIABLES = frozenset({"torch.autograd.Variable", "torch.autograd.variable.Variable"})


def value_key(value: Value, depth: int = 0) -> tuple:
    """A hashable abstraction of a value, for memoising call summaries."""
    if value is UNKNOWN:
        return ()
    elem = value_key(value.elem, depth + 1) if value.elem is not None and depth < 2 else None
    items = (
        tuple(value_key(v, depth + 1) for v in value.items) if value.items is not None and depth < 2 else None
    )
    return (
        value.kinds,
        value.grad,
        value.leaf,
        value.cls,
        value.dtype,
        value.sources,
        value.roots,
        value.stale,
        value.cuts,
        value.blocked,
        value.node,
        elem,
        items,
        tuple((k, value_key(v, depth + 1)) for k, v in value.attrs) if value.attrs and depth < 2 else None,
        shape_flow.key_of(value),
    )


# a call summary: the return value, the saves the caller can reach, the allocation sites written in
# place, the `self.x` attributes left (see `Semantics._summarise_call`)
_CallSummary = tuple[Value, dict, frozenset, tuple]


class BackwardInfo:
    """What a `backward()` event knows besides the value: `retain_graph`, and the local names
    (with their roots and requires-grad) whose graph an earlier `backward()` already freed."""

    __slots__ = ("retain", "stale_grad", "stale_names", "stale_sources", "stale_values")

    def __init__(self, retain: bool, stale_names: tuple, stale_sources: frozenset, stale_grad: int,
                 stale_values: tuple = ()) -> None:  # fmt: skip
        self.retain = retain
        self.stale_names = stale_names
        self.stale_values = stale_values  # what each of `stale_names` holds
        self.stale_sources = stale_sources
        self.stale_grad = stale_grad


class ClassInfo:
    """A class of the file: its kind and what `self.<attr>` holds."""

    def __init__(self, node: ast.ClassDef, kind: str) -> None:
        self.node = node
        self.name = node.name
        self.kind = kind  # index.KIND_MODULE / KIND_FUNCTION / KIND_OTHER
        self.methods: dict[str, ast.AST] = {
            s.name: s for s in node.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        self.attrs: dict[str, Value] = {}
        self.attr_stores: dict[str, list[ast.AST]] = {}
        self.ready = False

    def method(self, name: str) -> ast.AST | None:
        return self.methods.get(name)


_MISSING = object()
# the fields of statements (and of except handlers and match cases) that hold statements
_STATEMENT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")
_JOINS = frozenset({"cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack", "column_stack"})
_TORCH_JOINS = frozenset(f"torch.{name}" for name in _JOINS)
_REGISTERING_CALLS = ("register_buffer", "register_parameter", "add_module", "register_module")


class Semantics:
    """The lazily computed semantic model of one parsed file."""

    def __init__(self, tree: ast.Module, module: ModuleContext, lines: list[str] | None = None) -> None:
        self.module = module
        self.tree = tree
        self._lines = lines  # the source lines of `tree`, when the caller has them
        self._mentions: Mentions | None = None  # which top-level statements name what
        self._name_uses: dict = {}  # id(top-level statement) -> (it, its NameUses)
        self.top: dict[str, ast.stmt] = {}
        self.script: list[ast.stmt] = []
        self._script_names: frozenset[str] | None = None
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.top[stmt.name] = stmt
            else:
                self.script.append(stmt)
        self._flows: dict[ast.AST | None, Flow] = {}
        self._classes: dict[str, ClassInfo] = {}
        self._summaries: dict[tuple, _CallSummary] = {}
        self._item_sites: dict[tuple, ast.AST] = {}  # (call, index) -> the site of a returned tuple's item
        self._summary_count = 0
        self._stack: list[ast.AST] = []
        self._building: list[ClassInfo] = []
        self._scope_parent: dict[ast.AST, ast.AST | None] | None = None
        self._script_busy = False
        self._global_stores: dict[str, Value] = {}
        self.source_kinds: dict[ast.AST, str] = {}
        self.integer_names_cache: dict[ast.AST, tuple] = {}  # per scope: `integer_use.scan`
        self.dead_none_cache: dict[ast.AST, dict] = {}  # per body: `none_paths.dead_none_branches`
        self.retested_cache: dict[ast.AST, frozenset] = {}  # per body: `path_facts.retested`
        # calls of ops returning several views of one tensor (`chunk`, `split`, `unbind`):
        # autograd forbids writing into those views in place
        self.multi_output_views: set[ast.AST] = set()
        # roots (modules, parameters) whose requires_grad is switched off somewhere in the file
        self.frozen: set[ast.AST] = set()
        self.frozen_parameters: dict[frozenset, set[str]] = {}  # layer roots -> parameters replaced frozen
        self.last_self_attributes: tuple = ()
        self._sites: dict[str, list] = {}  # function name -> its call sites (see _call_sites)
        self._callers_busy: set = set()
        self.consulted: set[str] = set()
        self._flow_owners: dict = {}  # function node (None: the script) -> `_statement_name` of its statement
        # what each memoised result (a flow, a class summary, a call summary) consulted while it
        # was computed: reusing the result consults the same again (see `_reuse`)
        self._consulted_by: dict = {}
        # Provisional results (see `_watch`): the unfinished summaries (a class name, "" for the
        # script) the current computation saw, and the memoised results to drop when each finishes
        self._saw_unfinished: set[str] = set()
        self._provisional: dict[str, list[tuple[dict, object]]] = {}
        self._flows_busy: set[ast.AST | None] = set()
        self.shape_index = shape_flow.ShapeIndex()

    # -- flows ---------------------------------------------------------------------------------
    def flow(self, func: ast.AST | None) -> Flow:
        """The natural-context flow of a function/lambda node, or of the script (None)."""
        # whoever reads a flow rests on the text of the statement it belongs to (a rule reading
        # the script's flow for what a call there passes: an edit of that call re-checks it)
        self.rests_on(func)
        cached = self._flows.get(func)
        if cached is not None:
            self._reuse(func)
            return cached
        if func is not None and self._summarised_first(func):
            return self.flow(func)  # (computed while the class summary was built)
        self._flows_busy.add(func)
        try:
            with self._computing(func) as seen:
                flow = self._new_flow(func)
        finally:
            self._flows_busy.discard(func)
        self._flows[func] = flow
        self._settle(seen, self._flows, func, self._owners(func))
        return flow

    def rests_on(self, func: ast.AST | None) -> None:
        """Book that what is being computed depends on the text of the top-level statement holding
        `func` (None: the script statements), for the analyzer's per-unit cache."""
        owner = self._flow_owners.get(func)
        if owner is None:
            owner = self._flow_owners[func] = "" if func is None else (self._top_name(func) or "")
        self.consulted.add(owner)

    def rests_on_mentions(self, name: str) -> None:
        """Book that what is being computed depends on which top-level statements name `name` (a
        walk for its calls), for the analyzer's per-unit cache."""
        self.consulted.add(MENTIONS + name)

    def rests_on_text_naming(self, name: str) -> list[ast.stmt]:
        """The top-level statements that name `name`, booking that what is being computed depends on
        their text (a walk of the file for how `name` is used), for the analyzer's per-unit cache."""
        self.consulted.add(MENTIONS + name)
        if self._lines is None:
            self.consulted.add("")  # (no lines: only by tests; a conservative stand-in)
            return list(self.tree.body)
        if self._mentions is None:
            self._mentions = Mentions(self.tree.body, self._lines)
        statements = self._mentions.statements_naming(name)
        for stmt in statements:
            self.consulted.add(_statement_name(stmt))
        return statements

    def statements_naming(self, name: str) -> list[ast.stmt]:
        """The top-level statements whose text names `name` (a superset of those using it), in
        order; all of them when the text is not known. Books nothing: a caller whose result rests
        on which statements name it books that itself (`rests_on_mentions`)."""
        if self._lines is None:
            return list(self.tree.body)
        if self._mentions is None:
            self._mentions = Mentions(self.tree.body, self._lines)
        return self._mentions.statements_naming(name)

    # Provisional results: a flow or summary computed while a class summary or the script's flow
    # was still being built saw them unfinished (a class's attributes missing, script names
    # unknown); what it computed depends on who asked first. It is memoised only until that
    # summary is finished, then dropped, so that a later request computes it from the finished
    # one. (A method's own class and the script's own flow are not provisional for themselves:
    # those are computed from a defined start, see `_summarised_first`.)
    @contextmanager
    def _computing(self, key: object) -> Iterator[set[str]]:
        """Around computing a memoised result: what it consults is booked under `key` (see
        `_begin`/`_end`); yields what the enclosing computation had seen unfinished, for `_settle`
        once the result is stored."""
        outer = self._begin()
        seen = self._watch()
        try:
            yield seen
        finally:
            self._end(outer, key)

    def _watch(self) -> set[str]:
        outer = self._saw_unfinished
        self._saw_unfinished = set()
        return outer

    def _settle(self, outer: set[str], cache: dict, key: object, own: frozenset[str]) -> None:
        pending = {tag for tag in self._saw_unfinished - own if self._unfinished(tag)}
        for tag in pending:
            self._provisional.setdefault(tag, []).append((cache, key))
        self._saw_unfinished = outer | pending

    def _unfinished(self, tag: str) -> bool:
        if tag == "":
            return self._script_busy
        info = self._classes.get(tag)
        return info is not None and not info.ready

    def _finished(self, tag: str) -> None:
        for cache, key in self._provisional.pop(tag, ()):
            cache.pop(key, None)

    def _owners(self, func: ast.AST | None) -> frozenset[str]:
        """The summaries a scope is part of: its enclosing classes, "" for the script."""
        owners = {""} if func is None else set()
        node = func
        while node is not None:
            node = self.scope_parent(node)
            if isinstance(node, ast.ClassDef):
                owners.add(node.name)
        return frozenset(owners)

    def _summarised_first(self, func: ast.AST) -> bool:
        """A method of a top-level class: its class summary is built before the method's flow,
        whoever asks first. The summary computes the flows of `__init__` and of the methods that
        store on `self`; asked from inside one of those flows, it would compute them again from
        another start (a summary missing what the outer flow is about to store), and which flow
        is kept would depend on the order of the rules and units. True when the summary has
        computed the flow just built."""
        cls = self.enclosing_class(func)
        if cls is None or self.top.get(cls.name) is not cls or cls.name in self._classes:
            return False
        self.class_info(cls.name)
        return func in self._flows

    # Dependencies (`consulted`): a memoised result records the top-level statements consulted
    # while it was computed, and every later use of it (by another unit of the same check)
    # consults them again. Otherwise a unit whose analysis reused, say, a base class summary
    # built for an earlier unit would not depend on that base class, and its cached findings
    # would survive an edit of it.
    def _begin(self) -> set[str]:
        outer = self.consulted
        self.consulted = set()
        return outer

    def _end(self, outer: set[str], key: object) -> None:
        mine = self.consulted
        self._consulted_by[key] = frozenset(mine) | self._consulted_by.get(key, frozenset())
        outer |= mine
        self.consulted = outer

    def _reuse(self, key: object) -> None:
        consulted = self._consulted_by.get(key)
        if consulted:
            self.consulted |= consulted

    def _new_flow(self, func: ast.AST | None) -> Flow:
        if func is None:
            self._script_busy = True
            concrete = self.shape_index.concrete
            self.shape_index.concrete = True  # the script's calls give concrete shapes
            try:
                flow = Flow(self, None, self.script)
            finally:
                self._script_busy = False
                self.shape_index.concrete = concrete
                self._finished("")
        else:
            parent = self.scope_parent(func)
            enclosing = None
            class_node = None
            if isinstance(parent, ast.ClassDef):
                class_node = parent
                grand = self.scope_parent(parent)
                if grand is not None and not isinstance(grand, ast.ClassDef):
                    enclosing = self.flow(grand)
            elif parent is not None:
                enclosing = self.flow(parent)
            body = func.body if isinstance(func, _FUNCTION_TYPES) else [ast.Return(value=func.body)]  # type: ignore[attr-defined]
            concrete = self.shape_index.concrete
            self.shape_index.concrete = False
            try:
                flow = Flow(self, func, body, enclosing=enclosing, class_node=class_node)
            finally:
                self.shape_index.concrete = concrete
        return flow

    def scope_parent(self, node: ast.AST) -> ast.AST | None:
        """The function/lambda/class directly enclosing `node` (None at module level). Only the
        top-level statement holding `node` is walked (a large file has thousands)."""
        if self._scope_parent is None:
            self._scope_parent = {}
            self._scope_walked: set[int] = set()
            self._scope_walked_statements: set[int] = set()
            self._top_starts = [statement_start_line(s) for s in self.tree.body]
        found = self._scope_parent.get(node, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        line = getattr(node, "lineno", None)
        if line is None:
            return None
        # a def or class is a statement: a walk of the statements finds it (lambdas need every node)
        statement = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        walked = self._scope_walked_statements if statement else self._scope_walked
        index = bisect.bisect_right(self._top_starts, line) - 1
        for candidate in (index, index - 1, index + 1):  # a decorator's lambda sits above `def`
            if 0 <= candidate < len(self.tree.body) and candidate not in walked:
                walked.add(candidate)
                if statement:
                    self._walk_statement_scopes(self.tree.body[candidate])
                else:
                    self._walk_scopes(self.tree.body[candidate])
            if node in self._scope_parent:
                return self._scope_parent[node]
        return None

    def _walk_statement_scopes(self, top: ast.stmt) -> None:
        """`_walk_scopes` for defs and classes only: through the statement lists of statements
        (a def or class is never inside an expression, nor a statement inside a lambda)."""
        parents = self._scope_parent
        assert parents is not None
        stack: list[tuple[ast.AST, ast.AST | None]] = [(top, None)]
        while stack:
            current, scope = stack.pop()
            if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                parents[current] = scope
                scope = current
            for field in _STATEMENT_LISTS:
                children = getattr(current, field, None)
                if children:
                    stack.extend((child, scope) for child in children)

    def _walk_scopes(self, top: ast.stmt) -> None:
        parents = self._scope_parent
        assert parents is not None
        stack: list[tuple[ast.AST, ast.AST | None]] = [(top, None)]
        while stack:
            current, scope = stack.pop()
            if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                parents[current] = scope
                scope = current
            for child in iter_children(current):  # (`ast.iter_child_nodes` without context/operator nodes)
                if isinstance(
                    child, (ast.stmt, ast.expr, ast.excepthandler, ast.match_case, ast.comprehension)
                ):
                    stack.append((child, scope))

    def enclosing_class(self, func: ast.AST) -> ast.ClassDef | None:
        parent = self.scope_parent(func)
        return parent if isinstance(parent, ast.ClassDef) else None

    # -- parameters ------------------------------------------------------------------------------
    def parameter_value(self, flow: Flow, func: ast.AST, arg: ast.arg, default: ast.expr | None) -> Value:
        if not flow.natural and isinstance(default, ast.Constant):
            # a call that does not pass the argument: it holds its default, exactly
            if default.value is None:
                return NONE_VALUE
            kind = {bool: BOOL, int: INT, float: FLOAT, str: STR}.get(type(default.value))
            if kind is not None:
                return Value(kind, grad=NO, leaf=NO)
        from_callers = self._from_callers(func, arg)
        if from_callers is not None:
            if from_callers.kinds == ANY and from_callers.grad != YES:
                # `devices: int` given an unknown call's result (litgpt's `parse_devices(devices)`): an
                # int, bool or str carries no graph, whatever the caller computed it from
                annotated = self._annotation_value(arg.annotation)
                if annotated is not None and annotated.kinds in (INT, BOOL, STR):
                    return annotated
            return from_callers
        return self._natural_parameter(flow, func, arg, default)

    def _from_callers(self, func: ast.AST, arg: ast.arg) -> Value | None:
        """A top-level function of the file whose name is only ever called, directly, in this
        file: its parameter holds what the calls pass (joined). None when that is not known."""
        name = getattr(func, "name", None)
        if name is None or func in self._callers_busy:
            return None
        cls = self.enclosing_class(func) if self.top.get(name) is not func else None
        if cls is not None:  # an unannotated parameter of a method called only as `self.<name>(...)`
            sites = self._method_sites(cls, func, name) if arg.annotation is None else []
        else:
            sites = self._call_sites(name) if self.top.get(name) is func else []
        if not sites:
            return None
        spec = func.args  # type: ignore[attr-defined]
        positional = [a.arg for a in spec.posonlyargs + spec.args][1 if cls is not None else 0 :]
        if arg.arg not in positional and arg not in spec.kwonlyargs:
            return None
        index = positional.index(arg.arg) if arg.arg in positional else None
        self._callers_busy.add(func)
        try:
            values = []
            for call, scope in sites:
                if any(isinstance(a, ast.Starred) for a in call.args) or any(
                    k.arg is None for k in call.keywords
                ):
                    return None
                node = next((k.value for k in call.keywords if k.arg == arg.arg), None)
                if node is None and index is not None and index < len(call.args):
                    node = call.args[index]
                if node is None:
                    return None  # the default: left to the natural guess
                if scope is None and self._script_busy:
                    self._saw_unfinished.add("")
                if scope in self._callers_busy or (scope is None and self._script_busy):
                    return None
                caller = self.flow(scope)
                if node not in caller.values:
                    return None
                values.append(caller.values[node])
                self.consulted.add(self._top_name(scope) or "" if scope is not None else "")
        finally:
            self._callers_busy.discard(func)
        return join_all(values) if values else None

    def called_without_grad(self, func: ast.AST) -> bool:
        """A private helper (`_name`, a method called only as `self._name(...)` or a top-level
        function) that the file calls only where gradients are off: in `with torch.no_grad():`,
        in a function decorated `@torch.no_grad()`, or in another such helper (trl's
        `_update_bema_weights`, called from `@torch.no_grad() on_step_end` only), or that the
        project calls only there (`FileResolver.grad_off_helpers`: calls in other files). A public
        function or method only by the project's evidence: every mention of its name in the project
        is a call made with gradients off (llmcompressor's `copy_from_experts_module`)."""
        name = getattr(func, "name", "")
        if name.startswith("__"):
            return False
        cache = self.__dict__.setdefault("_without_grad", {})
        if func in cache:
            return cache[func]
        resolver = self.module.resolver
        if resolver is not None and call_key(name) in resolver.grad_off_helpers:
            cache[func] = True  # every mention in the project is a call made with gradients off
            return True
        if not name.startswith("_"):
            return False  # a public name: the project's calls only (callers outside it call as they like)
        cache[func] = False  # (a cycle of helpers: taken as called with gradients on)
        sites = self._direct_sites(func, name)
        cache[func] = found = bool(sites) and all(
            scope is not None and self._grad_off_at(scope, call) for call, scope in sites
        )
        return found

    def _direct_sites(self, func: ast.AST, name: str) -> list:
        """The file's calls of a top-level function called only directly, or of a method called
        only as `self.<name>(...)` (none when the name is used any other way)."""
        if self.top.get(name) is func:
            return self._call_sites(name)
        cls = self.enclosing_class(func)
        return self._method_sites(cls, func, name) if cls is not None else []

    def file_calls_only_without_grad(self, func: ast.AST) -> bool:
        """Every call the file makes of `func` (the sites `_from_callers` reads its parameters
        from) is made with gradients off, a script's `with torch.no_grad():` included: what those
        calls pass (a leaf that requires grad) is used with gradients off. Public names too: a
        parameter known from these calls is only known for them."""
        name = getattr(func, "name", None)
        if name is None or name.startswith("__"):
            return False
        cache = self.__dict__.setdefault("_file_calls_without_grad", {})
        if func not in cache:
            cache[func] = False  # (a cycle of helpers: taken as called with gradients on)
            sites = self._direct_sites(func, name)
            for _, scope in sites:
                self.consulted.add(self._top_name(scope) or "" if scope is not None else "")
            cache[func] = bool(sites) and all(self._grad_off_at_site(scope, call) for call, scope in sites)
        return cache[func]

    def _grad_off_at_site(self, scope: ast.AST | None, call: ast.Call) -> bool:
        if scope is not None:
            return self._grad_off_at(scope, call)
        modes = self.__dict__.setdefault("_grad_modes", {})  # the script: its `with` blocks only
        at = modes.get(self.tree)
        if at is None:
            at = modes[self.tree] = grad_modes(self.module, self.tree)
        return at.get(call) is False

    def _grad_off_at(self, scope: ast.AST, call: ast.Call) -> bool:
        modes = self.__dict__.setdefault("_grad_modes", {})  # one walk of `scope` for all its call sites
        at = modes.get(scope)
        if at is None:
            at = modes[scope] = grad_modes(self.module, scope)
        mode = at.get(call)
        if mode is not None:
            return not mode
        return disables_grad(self.module, scope) or self.called_without_grad(scope)

    def _method_sites(self, cls: ast.ClassDef, func: ast.AST, name: str) -> list:
        """`mentions.method_call_sites` of a plain method of a top-level class that no other
        top-level statement names."""
        if self.top.get(cls.name) is not cls or getattr(func, "decorator_list", None):
            return []
        if self._lines is None:
            return []  # (no lines: only by tests; left to the natural guess)
        if self._mentions is None:
            self._mentions = Mentions(self.tree.body, self._lines)
        if self._mentions.statements_naming(name) != [cls]:
            # named elsewhere too: no sites, whatever the class holds (most methods: not walked)
            self.consulted.add(MENTIONS + name)
            return []
        cache = self.__dict__.setdefault("_method_sites_cache", {})
        if (cls, name) not in cache:
            walks = self.__dict__.setdefault("_method_site_walks", {})  # (one walk per statement)
            cache[cls, name] = method_call_sites(cls, name, self._lines, walks)
        sites = cache[cls, name]
        if not sites:
            return []  # (another statement naming it could only leave it so)
        self.consulted.add(MENTIONS + name)
        return sites

    def _call_sites(self, name: str) -> list[tuple[ast.Call, ast.AST | None]]:
        """The direct calls of the file's top-level function `name` (with the calling scope: the
        innermost function or lambda, None for the script); none when the name is also used any
        other way (passed, stored)."""
        found = self._sites.get(name)
        if found is None:
            outer = self._begin()
            try:
                found = self._sites[name] = self._find_call_sites(name)
            finally:
                self._end(outer, ("sites", name))
        else:
            self._reuse(("sites", name))
        return found

    def _find_call_sites(self, name: str) -> list[tuple[ast.Call, ast.AST | None]]:
        # only statements whose text names the function are walked: a walk of every node of a
        # large file costs more than the rest of the analysis of one edit
        return call_sites(self.rests_on_text_naming(name), name, self._name_uses)

    def _natural_parameter(self, flow: Flow, func: ast.AST, arg: ast.arg, default: ast.expr | None) -> Value:
        args = func.args  # type: ignore[attr-defined]
        positional = args.posonlyargs + args.args
        cls = flow.class_node
        decorators = {_decorator_name(d) for d in getattr(func, "decorator_list", ())}
        first = bool(positional) and positional[0] is arg
        if cls is not None and first and "staticmethod" not in decorators:
            info = self.class_info(cls.name) if self.top.get(cls.name) is cls else None
            if "classmethod" in decorators:
                return Value(CLASS, grad=NO, leaf=NO, cls=cls.name, node=cls)
            if info is not None and info.kind == KIND_MODULE:
                return Value(MODULE, grad=NO, leaf=NO, cls=cls.name, node=cls)
            if info is not None and info.kind == KIND_FUNCTION:
                return Value(CTX, grad=NO, leaf=NO, cls=cls.name)
            return Value(OBJECT, grad=NO, leaf=NO, cls=cls.name, node=cls)
        if cls is not None and "staticmethod" in decorators and first:
            info = self.class_info(cls.name) if self.top.get(cls.name) is cls else None
            if info is not None and info.kind == KIND_FUNCTION and getattr(func, "name", "") in (
                "forward", "backward", "setup_context", "jvp", "vjp"):  # fmt: skip
                return Value(CTX, grad=NO, leaf=NO, cls=cls.name)
        annotated = self._annotation_value(arg.annotation)
        if annotated is not None:
            if annotated.is_module:
                # `model: nn.Module`: a module the gradient may reach, known by its parameter
                self.source_kinds.setdefault(arg, "module")
                return annotated.evolve(sources=frozenset((arg,)))
            return annotated.named(arg.arg) if annotated.kinds & TENSORISH else annotated
        if default is not None:
            if isinstance(default, ast.Constant):
                if default.value is None:
                    # `mask=None`, `input_shape=None`: an optional argument of any kind
                    return Value(ANY, grad=MAYBE, leaf=MAYBE, names=frozenset((arg.arg,)))
                kind = {bool: BOOL, int: INT, float: FLOAT, str: STR}.get(type(default.value))
                if kind is not None:
                    return Value(kind, grad=NO, leaf=NO)
            return Value(ANY, grad=MAYBE, leaf=MAYBE, names=frozenset((arg.arg,)))
        if (
            cls is not None
            and self._activation_method(func, cls)
            and not _alias_annotation(arg.annotation)
            and arg.arg not in self._joined_sequences(func)
            and arg.arg not in self._per_layer_items(func)
        ):
            if self.class_kind(cls) == KIND_FUNCTION:
                grad = NO if getattr(func, "name", "") == "backward" else MAYBE
                return Value(TENSOR, grad=grad, leaf=MAYBE, names=frozenset((arg.arg,)))
            return Value(TENSOR, grad=MAYBE, leaf=MAYBE, names=frozenset((arg.arg,)))
        return Value(ANY, grad=MAYBE, leaf=MAYBE, names=frozenset((arg.arg,)))

    def _joined_sequences(self, func: ast.AST) -> frozenset[str]:
        """The names `func` passes whole as the sequence of `torch.cat`/`torch.stack` (`torch.cat(x, dim=1)`):
        a list of tensors (avalanche models/pnn.py's adapters take the previous columns' outputs), not
        one tensor, whatever a `forward` parameter is otherwise taken to be."""
        cache = self.__dict__.setdefault("_joined_cache", {})
        found = cache.get(func)
        if found is None:
            names = set()
            for node in walk(func):
                if (
                    isinstance(node, ast.Call)
                    and node.args
                    and isinstance(node.args[0], ast.Name)
                    and callee_name(node.func) in _JOINS
                    and self.module.qualname(node.func) in _TORCH_JOINS
                ):
                    names.add(node.args[0].id)
            found = cache[func] = frozenset(names)
        return found

    def _per_layer_items(self, func: ast.AST) -> frozenset[str]:
        """The names whose item at an index goes to the layer of a module list at the same index
        (`self.convs[i](x[i])`): one input per layer, a list of tensors (a detection head's feature
        levels, yolov5 models/yolo.py `Detect`), not one tensor, whatever a `forward` parameter is
        otherwise taken to be."""
        cache = self.__dict__.setdefault("_per_layer_cache", {})
        found = cache.get(func)
        if found is None:
            me = self_name(func)  # type: ignore[arg-type]
            names = set()
            for node in walk(func):
                if not isinstance(node, ast.Call):
                    continue
                callee = node.func
                if (
                    isinstance(callee, ast.Subscript)
                    and isinstance(callee.slice, ast.Name)
                    and isinstance(callee.value, ast.Attribute)
                    and isinstance(callee.value.value, ast.Name)
                    and callee.value.value.id == me
                ):
                    index = callee.slice.id
                    for arg in node.args:
                        if (
                            isinstance(arg, ast.Subscript)
                            and isinstance(arg.value, ast.Name)
                            and isinstance(arg.slice, ast.Name)
                            and arg.slice.id == index
                        ):
                            names.add(arg.value.id)
            found = cache[func] = frozenset(names)
        return found

    def class_kind(self, cls: ast.ClassDef) -> str:
        summary = self.module.classes.get(cls.name)
        return summary.kind if summary is not None and self.top.get(cls.name) is cls else "other"

    def _activation_method(self, func: ast.AST, cls: ast.ClassDef) -> bool:
        """`forward` of an nn.Module (and the methods it calls), `forward`/`backward` of an
        autograd Function: their plain parameters hold tensors."""
        kind = self.class_kind(cls)
        name = getattr(func, "name", "")
        if kind == KIND_FUNCTION:
            return name in ("forward", "backward")
        if kind != KIND_MODULE:
            return False
        return name in self.forward_methods(cls)

    def forward_methods(self, cls: ast.ClassDef) -> set[str]:
        """`forward` and the methods it calls as `self.m(...)`, transitively (names)."""
        cache = self.__dict__.setdefault("_reachable_cache", {})
        found = cache.get(cls)
        if found is None:
            methods = {s.name: s for s in cls.body if isinstance(s, _FUNCTION_TYPES)}
            found = set()
            todo = ["forward"]
            while todo:
                name = todo.pop()
                if name in found or name not in methods:
                    continue
                found.add(name)
                for node in walk(methods[name]):  # (`ast.walk` without context nodes, faster)
                    if (
                        isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name)
                        and node.func.value.id == "self"
                    ):
                        todo.append(node.func.attr)
            cache[cls] = found
        return found

    def _annotation_value(self, annotation: ast.expr | None) -> Value | None:
        if annotation is None:
            return None
        texts = self.__dict__.setdefault("_annotation_texts", {})  # (a parameter's, per flow of its function)
        text = texts.get(annotation)
        if text is None:
            text = texts[annotation] = (
                ast.unparse(annotation) if not isinstance(annotation, ast.Constant) else str(annotation.value)
            )
        optional = "Optional" in text or "None" in text
        container = _annotated_container(annotation)
        if container is not None:
            # `dict[str, Tensor]`, `List[torch.Tensor]`: a container of tensors, not a tensor
            elem = Value(TENSOR, grad=MAYBE, leaf=MAYBE) if "Tensor" in text else UNKNOWN
            return Value(container | (NONE if optional else 0), grad=NO, leaf=NO, elem=elem)
        if (
            "Tensor" in text
            and "List" not in text
            and "list" not in text
            and "Tuple" not in text
            and "tuple" not in text
        ):
            return Value(TENSOR | (NONE if optional else 0), grad=MAYBE, leaf=MAYBE)
        if optional:
            return None
        simple = {"int": INT, "float": FLOAT, "bool": BOOL, "str": STR}.get(text)
        if simple is not None:
            return Value(simple, grad=NO, leaf=NO)
        qual = self.module.qualname(annotation)
        if qual is not None:
            if qual.startswith("torch.optim.") and qual.rsplit(".", 1)[1][:1].isupper():
                return Value(OPTIMIZER, grad=NO, leaf=NO, cls=qual)
            if qual in ("torch.nn.Module", "torch.nn.modules.module.Module") or _is_layer_name(qual):
                return Value(MODULE, grad=NO, leaf=NO, cls=qual)
        return None

    # -- names -----------------------------------------------------------------------------------
    def reference(self, qual: str) -> Value:
        return Value(REF, grad=NO, leaf=NO, cls=qual)

    def global_value(self, name: str) -> Value:
        module = self.module
        if name in self.top:
            stmt = self.top[name]
            if isinstance(stmt, ast.ClassDef):
                return Value(CLASS, grad=NO, leaf=NO, cls=name, node=stmt)
            return Value(CALLABLE, grad=NO, leaf=NO, node=stmt)
        qual = module.aliases.get(name)
        if qual is not None:
            return self.reference(qual)
        if name in module.classes:
            # a class imported from another file of the project (its kind resolved there)
            return Value(CLASS, grad=NO, leaf=NO, cls=name)
        if name in module.functions:
            return Value(CALLABLE, grad=NO, leaf=NO, cls=name)
        if self._script_names is None:
            self._script_names = _script_bound_names(self.script)
        stored = self._stored_global(name)
        if name in self._script_names:
            if self._script_busy:
                self._saw_unfinished.add("")
                return UNKNOWN
            self.consulted.add("")
            if None not in self._flows and self._only_unresolved_import(name):
                # the script only binds it by an import of nothing known (`from ._x import name`)
                # and never reads or rebinds it: it ends holding what that import binds, unknown
                # (no need to interpret the whole script: seconds on a file of model configs)
                value = UNKNOWN
            else:
                value = self.flow(None).final_value(name)
            return join(value, stored) if stored is not None else value
        if stored is not None:
            return stored
        if name in _BUILTINS:
            return self.reference(f"builtins.{name}")
        return UNKNOWN

    def _only_unresolved_import(self, name: str) -> bool:
        if self._lines is None:
            return False
        if self._mentions is None:
            self._mentions = Mentions(self.tree.body, self._lines)
        return only_unresolved_import(self._mentions.statements_naming(name), name)

    def _stored_global(self, name: str) -> Value | None:
        """What the file's functions declaring `global name` store into it: every one of them,
        their flows computed before the name is read (not only those some rule happened to ask
        for earlier, which made a reader's facts depend on the order of the units and rules)."""
        for func in self._global_writers().get(name, ()):
            if func not in self._flows and func not in self._flows_busy:
                self.flow(func)
            self.consulted.add(self._top_name(func) or "")
        return self._global_stores.get(name)

    def _global_writers(self) -> dict[str, list[ast.AST]]:
        """name -> the functions declaring it `global` (one walk, only in a file that says `global`)."""
        cached: dict[str, list[ast.AST]] | None = self.__dict__.get("_writers")
        if cached is None:
            found: dict[str, list[ast.AST]] = {}
            self.__dict__["_writers"] = found
            lines = (
                None
                if self._lines is None
                else [
                    i
                    for i, line in enumerate(self._lines, 1)
                    if "global" in line and _GLOBAL_WORD.search(line)
                ]
            )
            if lines is None or lines:
                for func in walk(self.tree):
                    if isinstance(func, _FUNCTION_TYPES):
                        if lines is not None:  # (only a function whose lines hold the word can declare it)
                            first = bisect.bisect_left(lines, func.lineno)
                            if first == len(lines) or lines[first] > (func.end_lineno or func.lineno):
                                continue
                        for node in walk(func):
                            if isinstance(node, ast.Global):
                                for declared in node.names:
                                    found.setdefault(declared, []).append(func)
            return found
        return cached

    def note_global_store(self, name: str, value: Value) -> None:
        before = self._global_stores.get(name)
        self._global_stores[name] = value if before is None else join(before, value)

    # -- classes ---------------------------------------------------------------------------------
    def class_info(self, name: str) -> ClassInfo | None:
        info = self._classes.get(name)
        if info is not None:
            self.consulted.add(name)
            self._reuse(info)
            if not info.ready:
                self._saw_unfinished.add(name)
            return info
        node = self.top.get(name)
        if not isinstance(node, ast.ClassDef):
            return None
        summary = self.module.classes.get(name)
        info = ClassInfo(node, summary.kind if summary is not None else "other")
        self._classes[name] = info
        with self._computing(info) as seen:
            self._build_class(info)
        self._settle(seen, self._classes, name, frozenset((name,)))
        self._finished(name)
        return info

    def _build_class(self, info: ClassInfo) -> None:
        self.consulted.add(info.name)
        self._building.append(info)
        try:
            self._inherit_base_attrs(info)
            self._class_body_attrs(info)
            for attr, value in self._init_stores(info).items():
                info.attrs[attr] = value
            self._join_method_stores(info)
        finally:
            self._building.pop()
            info.ready = True

    def _inherit_base_attrs(self, info: ClassInfo) -> None:
        """Attributes of base classes defined in this file come first."""
        for base in info.node.bases:
            if isinstance(base, ast.Name) and base.id != info.name:
                base_info = self.class_info(base.id)
                if base_info is not None:
                    info.attrs.update(base_info.attrs)
                    for method_name, method in base_info.methods.items():
                        info.methods.setdefault(method_name, method)

    def _class_body_attrs(self, info: ClassInfo) -> None:
        """Names assigned in the class body (a dataclass field's default among them)."""
        for stmt in info.node.body:
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                value = self._class_body_value(stmt.value)
                if value is not None:
                    info.attrs[stmt.targets[0].id] = value
            elif (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and stmt.value is not None
            ):
                value = self._class_body_value(stmt.value)  # a dataclass field's default
                if value is not None:
                    info.attrs[stmt.target.id] = value

    def _init_stores(self, info: ClassInfo) -> dict[str, Value]:
        """`self.x` as the class's own `__init__` leaves it."""
        init = info.methods.get("__init__")
        stores: dict[str, Value] = {}
        if init is not None and self.enclosing_class(init) is info.node:
            flow = self.flow(init)
            end = flow.exit_state
            if end is not None:
                for key, value in end.env.items():
                    if key.startswith("self.") and key.count(".") == 1:
                        stores[key[5:]] = value
        return stores

    def _join_method_stores(self, info: ClassInfo) -> None:
        """Stores in the other methods join in: the attribute may hold either."""
        for method_name, method in info.methods.items():
            if method_name == "__init__" or self.enclosing_class(method) is not info.node:
                continue
            if not self._stores_on_self(method):
                continue
            flow = self.flow(method)
            for event in flow.events_of(ATTRIBUTE_STORE):
                target = event.target
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    before = info.attrs.get(target.attr)
                    info.attrs[target.attr] = event.value if before is None else join(before, event.value)

    def _stores_on_self(self, func: ast.AST) -> bool:
        """`_stores_on_self`, cheaper: the assignments are statements (a walk of the statement
        lists finds them), and a `register_buffer(...)`-like call is only looked for when the
        method's text names one."""
        stack: list[ast.AST] = [func]
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                    ):
                        return True
            for field in _STATEMENT_LISTS:
                children = getattr(node, field, None)
                if children and isinstance(children, list):
                    stack.extend(children)
        lines = self._lines
        if lines is not None:
            first = min([func.lineno, *(d.lineno for d in getattr(func, "decorator_list", ()))])  # type: ignore[attr-defined]
            text = "".join(lines[first - 1 : func.end_lineno or func.lineno])  # type: ignore[attr-defined]
            if not any(word in text for word in _REGISTERING_CALLS):
                return False
        return _stores_on_self(func)

    def _class_body_value(self, expr: ast.expr) -> Value | None:
        if isinstance(expr, ast.Call):
            qual = self.module.call_name(expr)
            if qual is not None and _is_layer_name(qual):
                return Value(MODULE, grad=NO, leaf=NO, cls=qual, sources=frozenset((expr,)))
        if isinstance(expr, ast.Constant):
            if type(expr.value) is int:
                return shape_flow.int_value(expr.value)
            return Value(
                {bool: BOOL, int: INT, float: FLOAT, str: STR}.get(type(expr.value), OBJECT), grad=NO, leaf=NO
            )
        return None

    def note_attribute_store(self, flow: Flow, path: str, value: Value) -> None:
        """`self.x = v` while a class summary is being built from a method called by `__init__`."""
        if not self._building or flow.natural:
            return
        info = self._building[-1]
        attr = path[5:]
        if "." in attr:
            return
        before = info.attrs.get(attr)
        info.attrs[attr] = value if before is None else join(before, value)

    def self_attribute(self, class_name: str, attr: str) -> Value | None:
        info = self.class_info(class_name)
        if info is None:
            return None
        value = info.attrs.get(attr)
        if value is not None:
            return value
        method = info.methods.get(attr)
        if method is not None:
            return Value(CALLABLE, grad=NO, leaf=NO, node=method, cls=class_name)
        return None

    # -- attributes ------------------------------------------------------------------------------
    def attribute(self, flow: Flow, base: Value, node: ast.Attribute, state: State) -> Value:
        attr = node.attr
        kinds = base.kinds
        if kinds == REF:
            return self.reference(f"{base.cls}.{attr}")
        if kinds == ANY:
            return self._any_attribute(base, node, attr)
        if transformed(base) is not None:  # (what a call that may change it left in it is not known)
            return self._any_attribute(base.evolve(grad=MAYBE, attrs=None), node, attr)
        if base.is_tensor:
            return shape_flow.tensor_attribute(base, attr, self._tensor_attribute(base, node, attr))
        if base.attrs:
            held = base.attribute(attr)
            if held is not None:
                return held
        if kinds & (MODULE | OBJECT | CTX) and base.cls is not None and base.is_only(MODULE | OBJECT | CTX):
            value = self._instance_attribute(flow, base, node, attr)
            if value is not None:
                return value
        if kinds & MODULE and base.is_module:
            return shape_flow.module_attribute(base, attr, self._module_attribute(base, attr, node))
        if kinds == CLASS and base.cls in self.top:
            value = self._class_attribute(base, attr)
            if value is not None:
                return value
        return self._special_attribute(base, attr)

    def _any_attribute(self, base: Value, node: ast.Attribute, attr: str) -> Value:
        """An attribute of a value of any kind."""
        if attr in _TENSOR_ATTRIBUTES:
            return _TENSOR_ATTRIBUTES[attr]
        if attr.endswith("_shape"):
            # `grouper.orig_shape = p.shape` stored by a class not seen here, `dist.batch_shape`: by the
            # convention torch's own classes keep (`event_shape`, `normalized_shape`), a shape: integers
            return Value(ANY, grad=NO, leaf=NO)
        if attr == "data" and (base.grad != NO or base.sources):
            return cut(base, DATA, node, TENSOR)
        if base.grad != NO or base.sources or base.cuts:
            # `outputs.logits`, `batch.x`: whatever the object carries
            return Value(ANY, grad=base.grad, leaf=MAYBE, sources=base.sources, cuts=base.cuts,
                         blocked=base.blocked, stale=base.stale, names=base.names)  # fmt: skip
        return UNKNOWN

    def _instance_attribute(self, flow: Flow, base: Value, node: ast.Attribute, attr: str) -> Value | None:
        """An attribute of a module, object or ctx of a known class; None: not decided here."""
        assert base.cls is not None
        if base.cls in self.top and base.kinds != CTX:
            value = self.self_attribute(base.cls, attr)
            if value is not None and value.kinds != CALLABLE:
                value = shape_flow.refine(self, flow, base, attr, value)
            if value is not None:
                if value.kinds == CALLABLE and value.node is not None:
                    return value.evolve(elem=base)  # a bound method
                return value
            if base.is_module:
                if self._registered_by_name(base.cls, attr):
                    return UNKNOWN
                return self._module_attribute(base, attr, node)
            return UNKNOWN
        if base.is_module:
            return shape_flow.module_attribute(base, attr, self._module_attribute(base, attr, node))
        return None

    def _class_attribute(self, base: Value, attr: str) -> Value | None:
        """An attribute of a class defined in this file; None: the class is not known."""
        info = self.class_info(base.cls)  # type: ignore[arg-type]
        if info is None:
            return None
        if attr == "apply" and info.kind == KIND_FUNCTION:
            return Value(
                CALLABLE, grad=NO, leaf=NO, cls=f"{base.cls}.apply", node=info.methods.get("forward")
            )
        method = info.methods.get(attr)
        if method is not None:
            return Value(CALLABLE, grad=NO, leaf=NO, node=method, cls=base.cls)
        return info.attrs.get(attr, UNKNOWN)

    @staticmethod
    def _special_attribute(base: Value, attr: str) -> Value:
        """An attribute of a ctx, an optimizer or a numpy array."""
        kinds = base.kinds
        if kinds == CTX:
            if attr in ("saved_tensors", "saved_variables"):
                return Value(TUPLE, grad=NO, leaf=NO, elem=Value(TENSOR, grad=MAYBE, leaf=MAYBE))
            if attr == "needs_input_grad":
                return Value(TUPLE, grad=NO, leaf=NO, elem=BOOL_VALUE)
            return UNKNOWN
        if kinds == OPTIMIZER:
            if attr == "param_groups":
                return Value(LIST, grad=NO, leaf=NO, elem=Value(DICT, grad=NO, leaf=NO, elem=UNKNOWN))
            return UNKNOWN
        if kinds & NUMPY and base.is_only(NUMPY):
            if attr in ("shape",):
                return Value(TUPLE, grad=NO, leaf=NO, elem=INT_VALUE)
            if attr == "T":
                return base
            return UNKNOWN
        return UNKNOWN

    def _tensor_attribute(self, base: Value, node: ast.Attribute, attr: str) -> Value:
        if attr == "data":
            # a tensor sharing the storage, outside autograd (its own version counter)
            return cut(base, DATA, node, TENSOR).evolve(dtype=base.dtype)
        if attr == "grad":
            return Value(TENSOR | NONE, grad=NO, leaf=YES, dtype=base.dtype, sites=frozenset((node,)),
                         roots=frozenset((node,)))  # fmt: skip
        if attr in ("T", "mT", "H", "mH", "real", "imag"):
            return base.evolve(kinds=TENSOR, sites=frozenset((node,)))
        value = _TENSOR_ATTRIBUTES.get(attr)
        if value is not None:
            return value
        return UNKNOWN

    def _registered_by_name(self, class_name: str, attr: str) -> bool:
        """The class registers `attr` through a method of a base class defined elsewhere
        (`self.add_state("weight", default=torch.tensor(0.0))` in a torchmetrics Metric), or stores
        it itself under a name written as a string (`setattr(self, "bias_correction", total)`): what
        it holds (a state, a buffer, a parameter, a plain tensor) is not known from its name."""
        info = self.class_info(class_name)
        if info is None:
            return False
        names = getattr(info, "registered_names", None)
        if names is None:
            names = info.registered_names = {  # type: ignore[attr-defined]
                name for call in walk(info.node) if (name := _name_registered_on_self(call)) is not None
            }
        return attr in names

    def _module_attribute(self, module: Value, attr: str, node: ast.AST) -> Value:
        cls = module.cls or ""
        if parameter_named(attr):
            if cls.startswith("torch.nn.") and self._layer_has_parameters(cls) is False:
                return UNKNOWN
            stored = self._stored_tensor(cls, attr)
            if stored is not None:
                return stored.evolve(sites=frozenset((node,)), roots=frozenset((node,)))
            return Value(TENSOR | PARAMETER, grad=YES, leaf=YES, sources=module.sources or frozenset((node,)),
                         sites=frozenset((node,)), roots=frozenset((node,)))  # fmt: skip
        if attr in ("running_mean", "running_var", "num_batches_tracked"):
            return Value(
                TENSOR | BUFFER, grad=NO, leaf=YES, sites=frozenset((node,)), roots=frozenset((node,))
            )
        if attr == "training":
            return BOOL_VALUE
        if attr in ("in_features", "out_features", "in_channels", "out_channels", "num_features",
                    "embedding_dim", "num_embeddings", "hidden_size", "num_layers"):  # fmt: skip
            return INT_VALUE
        return UNKNOWN

    def _stored_tensor(self, cls: str, attr: str) -> Value | None:
        """What a module class of another project file stores under a parameter name, when its
        chain of classes registers it as a buffer or stores a plain tensor there (the class's
        statement is read: `register_buffer("bias", ...)` in a base's `__init__`); None: not known."""
        resolver = self.module.resolver
        if resolver is None or not cls or cls in self.top:
            return None
        kind = resolver.stored_tensor(self.module.imported_class(cls) or cls, attr)
        if kind == "buffer":
            return Value(TENSOR | BUFFER, grad=NO, leaf=YES)
        if kind == "tensor":
            return Value(TENSOR, grad=NO, leaf=YES)
        return None

    @staticmethod
    def _layer_has_parameters(qual: str) -> bool | None:
        """Does a `torch.nn` layer own parameters? None for containers (their members do) and
        layers whose configuration decides (`LayerNorm(elementwise_affine=False)`)."""
        facts = torch_facts.layer(qual)
        if facts is None or qual in ("torch.nn.Module", "torch.nn.modules.module.Module"):
            return True  # a module we know nothing more of: a model
        if facts.kind == "container":
            return None
        if facts.parameter_free_always:
            return False
        return True

    # -- calls -----------------------------------------------------------------------------------
    def call(self, flow: Flow, node: ast.Call, callee: Value, args: Arguments, state: State) -> Value:
        kinds = callee.kinds
        if kinds == REF:
            return self.qualified_call(flow, node, callee.cls or "", args, state)
        if kinds == CLASS:
            return self._instantiate(flow, node, callee, args, state)
        if kinds & MODULE and callee.is_module:
            return self.module_call(flow, node, callee, args, state)
        if kinds == CALLABLE:
            if callee.cls is not None and callee.cls.endswith(".apply"):
                return self._function_apply(flow, node, callee, args, state)
            if callee.node is not None:
                return self.call_function(flow, node, callee.node, args, state, self_value=callee.elem)
            return self._opaque_call(node, callee, args, callee_name(node.func))
        if kinds == FUNCTION_INSTANCE:
            flow._record(FUNCTION_INSTANCE_CALL, node, state, callee, args=tuple(args.all()))
            return combine([a for a in args.all() if a.kinds & TENSORISH], node=node)
        return self._opaque_call(node, callee, args, callee_name(node.func))

    def _opaque_call(self, node: ast.Call, callee: Value, args: Arguments, name: str | None) -> Value:
        """A call we cannot see into: its result may be anything, and may carry the gradient
        of whatever went in (and of whatever model the callee is)."""
        values = args.all()
        if name is not None and args.positional and _NUMPY_HELPER.fullmatch(name):
            # `to_numpy(t)`, `tensor2numpy(t)`: a helper named for what it returns, a numpy array, which
            # carries no gradient (mmpose utils/tensor_utils.py: `x.detach().cpu().numpy()`)
            return cut(args.positional[0], NUMPY_CUT, node, NUMPY)
        flag = keyword(node, "requires_grad")
        if isinstance(flag, ast.Constant) and flag.value is True:
            # `crypten.cryptensor(x, requires_grad=True)`, `to_var(x, requires_grad=True)`: the callee makes a
            # new leaf (torch's, or an object with its own autograd): no graph of the arguments behind it
            # that a torch `backward()` could free, and nothing a tensor method name makes a torch tensor
            self.source_kinds.setdefault(node, "opaque")
            return Value(ANY, grad=YES, leaf=MAYBE, sources=frozenset((node,)), saves=False)
        loss_like = name is not None and any(word in name.lower() for word in torch_facts.LOSS_WORDS)
        sources = frozenset()
        grad = NO
        stale = frozenset()
        names = frozenset()
        for value in [*values, callee]:
            sources |= value.sources
            if value is not callee:
                # not the callee's: calling a model or an object's method computes a new graph,
                # the callee is where the gradient goes, not a graph the result was computed from
                names |= value.names
                stale |= value.stale
            grad = max(grad, value.grad)
        if not loss_like:
            # the unknown callee is a root the gradient may reach: identified by what holds it
            # (`model` in `def train(model, ...)`) so that `model.parameters()` names it too
            own = callee.roots if callee.kinds == ANY and callee.roots else frozenset((node,))
            for root in own:
                self.source_kinds.setdefault(root, "opaque")
            sources = sources | own
            grad = max(grad, MAYBE)
        if grad == NO and any(v.kinds == ANY for v in values):
            grad = MAYBE
        cuts = ()
        blocked = frozenset()
        for value in values:
            cuts = cuts + tuple(c for c in value.cuts if c not in cuts)
            blocked |= value.blocked
        return Value(ANY, grad=grad, leaf=MAYBE, sources=sources, cuts=cuts[:4], blocked=blocked, stale=stale,
                     saves=not loss_like or any(v.saves for v in values), names=names)  # fmt: skip

    def _instantiate(self, flow: Flow, node: ast.Call, callee: Value, args: Arguments, state: State) -> Value:
        name = callee.cls or ""
        info = self.class_info(name) if name in self.top else None
        kind = (
            info.kind
            if info is not None
            else (self.module.classes[name].kind if name in self.module.classes else "")
        )
        if kind == KIND_MODULE:
            self.source_kinds.setdefault(node, "module")
            module = Value(MODULE, grad=NO, leaf=NO, cls=name, sources=frozenset((node,)), node=callee.node)
            return shape_flow.instance(self, node, name, args, module) if info is not None else module
        if kind == KIND_FUNCTION:
            return Value(FUNCTION_INSTANCE, grad=NO, leaf=NO, cls=name, node=callee.node)
        if info is not None and self._is_optimizer_class(info):
            return Value(OPTIMIZER, grad=NO, leaf=NO, cls=name, elem=args.get(0, "params"))
        instance = Value(OBJECT, grad=NO, leaf=NO, cls=name, node=callee.node)
        if info is not None:
            attrs = self._instance_attributes(flow, node, info, instance, args, state)
            if attrs:
                instance = instance.evolve(attrs=attrs)
        return instance

    def _instance_attributes(
        self, flow: Flow, node: ast.Call, info: ClassInfo, instance: Value, args: Arguments, state: State
    ) -> tuple:
        """What `self.<attr>` holds in this instance: its `__init__` run with the call's
        arguments, or a dataclass's fields bound to them."""
        init = info.methods.get("__init__")
        if init is not None:
            self.last_self_attributes = ()
            self.call_function(flow, node, init, args, state, self_value=instance)
            return self.last_self_attributes
        if any(_decorator_name(d) == "dataclass" for d in info.node.decorator_list):
            fields = [
                s.target.id
                for s in info.node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            ]
            bound = dict(zip(fields, args.positional, strict=False))
            bound.update({k: v for k, v in args.keywords.items() if k in fields})
            return tuple(bound.items())
        return ()

    def _is_optimizer_class(self, info: ClassInfo) -> bool:
        summary = self.module.classes.get(info.name)
        return summary is not None and any(b.startswith("torch.optim.") for b in summary.bases)

    def module_call(
        self,
        flow: Flow,
        node: ast.Call,
        module: Value,
        args: Arguments,
        state: State,
        site: ast.AST | None = None,
    ) -> Value:
        """`module(*args)`. `site` identifies the output tensor (the call node unless the
        module runs inside a Sequential, where each member's output is its own tensor)."""
        module = transformed(module) or module
        cls = module.cls or ""
        site = site if site is not None else node
        written = args  # as passed (the shapes of an LSTM's `(h, c)` are checked as a pair)
        if cls not in self.top:
            # a layer's tensors passed in containers (an LSTM's `(h, c)`) are inputs too
            args = Arguments(
                node,
                [element_of(v).named_all(v.names) if v.is_only(TUPLE | LIST) else v for v in args.positional],
                args.keywords,
            )
        if self.is_frozen(module):
            # a frozen module: its output requires grad only through its inputs
            inputs = [v for v in args.all() if v.kinds & TENSORISH or v.kinds == ANY]
            result = combine(inputs, node=site).evolve(saves=True)
            return result if module.cls != FROZEN else result.evolve(kinds=ANY)
        inputs = [v for v in args.all() if v.kinds & TENSORISH or v.kinds == ANY]
        if cls in self.top:
            info = self.class_info(cls)
            forward = info.methods.get("forward") if info is not None else None
            if forward is None:
                result = self._layer_output(site, module, inputs, state, has_params=None)
                return shape_flow.base_forward(self, flow, node, module, written, result, state)
            result = self.call_function(flow, node, forward, args, state, self_value=module)
            return self._as_module_output(result, module, inputs)
        if cls.startswith("torch.nn."):
            return self._torch_layer_call(flow, node, module, cls, args, written, inputs, state, site)
        return self._layer_output(site, module, inputs, state, has_params=None)

    def _torch_layer_call(
        self,
        flow: Flow,
        node: ast.Call,
        module: Value,
        cls: str,
        args: Arguments,
        written: Arguments,
        inputs: list[Value],
        state: State,
        site: ast.AST,
    ) -> Value:
        """`layer(*args)` for a `torch.nn` layer."""
        last = cls.rsplit(".", 1)[1]
        if last == "Sequential" and module.items:
            return self._sequential_call(flow, node, module, args, state)
        if last in _CONTAINER_LAYERS:
            result = self._layer_output(site, module, inputs, state, has_params=None)
            return shape_flow.layer_call(flow, node, module, written, result, state)
        if _inplace_flag(module.node) and args.positional:
            # `nn.ReLU(inplace=True)(t)` rectifies `t` itself
            target = node.args[0] if site is node and node.args else node
            flow._inplace(node, target, args.positional[0], (), "inplace=True", state)
            return args.positional[0]
        result = self._layer_output(site, module, inputs, state, has_params=self._layer_has_parameters(cls))
        result = shape_flow.layer_call(flow, node, module, written, result, state, member=site is not node)
        self._record_layer_saves(flow, last, site, inputs, result, state)
        if last in ("LSTM", "GRU", "RNN", "MultiheadAttention"):
            if result.kinds & TUPLE:
                return result  # the shapes of (output, state)
            return Value(TUPLE, grad=NO, leaf=NO, elem=result, items=(result, result))
        return result

    def _sequential_call(
        self, flow: Flow, node: ast.Call, module: Value, args: Arguments, state: State
    ) -> Value:
        """`nn.Sequential(...)(x)`: each member in turn."""
        value = args.get(0, "input") or UNKNOWN
        for layer in module.items:
            if layer.is_module:
                member = layer.node if isinstance(layer.node, ast.Call) else None
                value = self.module_call(flow, node, layer, Arguments(node, [value], {}), state, site=member)
            else:
                value = UNKNOWN
        return value

    @staticmethod
    def _record_layer_saves(
        flow: Flow, last: str, site: ast.AST, inputs: list[Value], result: Value, state: State
    ) -> None:
        """What a layer saves for its backward (its output or its input)."""
        if last in _LAYER_SAVES_OUTPUT and state.nograd is None and result.grad != NO:
            facts = torch_facts.function(f"torch.{_LAYER_SAVES_OUTPUT[last]}")
            if facts is not None:
                flow._record_saves(facts, site, tuple(inputs), {}, result, state)
        elif last in _LAYER_SAVES_INPUT and state.nograd is None and result.grad != NO:
            for value in inputs[:1]:
                for root in value.roots:
                    if root is not site:  # made here on a loop's previous pass (`x = layer(x)`)
                        state.saved.setdefault(root, Saved(site, last, "input", True))

    def _layer_output(
        self, node: ast.AST, module: Value, inputs: list[Value], state: State, has_params: bool | None
    ) -> Value:
        if state.saved and node in state.saved:
            # a new tensor made at this site (a Sequential's member on a loop's next pass): what
            # was saved of the previous one is not this one
            del state.saved[node]
        result = combine(inputs, node=node)
        if has_params is not False:
            grad = YES if has_params else max(result.grad, MAYBE)
            result = result.evolve(
                grad=grad,
                live=live_grad(result),  # (the layer's own parameters are among its sources)
                leaf=NO if grad == YES else MAYBE,
                sources=result.sources | module.sources,
                saves=True,
            )
        elif module.cls and module.cls.rsplit(".", 1)[-1] in _LAYER_SAVES_OUTPUT and result.grad != NO:
            result = result.evolve(saves=True)
        result = result.evolve(stale=result.stale | module.stale)
        if state.nograd is not None and result.grad != NO:
            result = cut(result, NO_GRAD, state.nograd, TENSOR)
        elif has_params is None:
            result = result.evolve(kinds=ANY)
        return result

    def _as_module_output(self, result: Value, module: Value, inputs: list[Value]) -> Value:
        """A module's forward result as seen by the caller: gradient that went into the
        module's own parameters goes into the module instance."""
        if not module.sources:
            return result
        from_inputs = frozenset()
        for value in inputs:
            from_inputs |= value.sources
        internal = result.sources - from_inputs
        if internal:
            return result.evolve(sources=(result.sources & from_inputs) | module.sources)
        return result

    def _function_apply(
        self, flow: Flow, node: ast.Call, callee: Value, args: Arguments, state: State
    ) -> Value:
        flow._record(CALL, node, state, callee, op="apply", args=tuple(args.all()))
        tensors = [v for v in args.all() if v.kinds & TENSORISH or v.kinds == ANY]
        result = combine(tensors, node=node)
        if state.nograd is not None and result.grad != NO:
            result = cut(result, NO_GRAD, state.nograd, TENSOR)
        return result

    def call_function(
        self,
        flow: Flow,
        node: ast.Call,
        func: ast.AST,
        args: Arguments,
        state: State,
        self_value: Value | None = None,
    ) -> Value:
        """The return value of a function/method/lambda of this file called with `args`."""
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return UNKNOWN
        top = self._top_name(func)
        if top is not None:
            self.consulted.add(top)
        if func in self._stack or len(self._stack) >= MAX_CALL_DEPTH:
            return UNKNOWN
        if self_value is not None and _overridden_stub(func):
            return UNKNOWN  # `self._scale(x)` on an abstract stub: a subclass's method runs
        bound = self._bind_arguments(func, args, self_value)
        if bound is None:
            return UNKNOWN
        nograd = state.nograd is not None
        key = (func, nograd, tuple(sorted((k, value_key(v)) for k, v in bound.items())))
        summary = self._call_summary(func, key, bound, self_value)
        if summary is None:
            return UNKNOWN
        value, saved, mutated, self_attrs = summary
        self.shape_index.note_call(flow, key, node)
        self.last_self_attributes = self_attrs
        # tensors the callee created are new objects of *this* call: one call site, one object
        # (two calls of the same layer class must not share their outputs' identity)
        passed = [*args.all(), *([self_value] if self_value is not None else [])]
        outside: frozenset[ast.AST] = frozenset()
        for v in passed:
            outside |= v.roots
        mapping = _callee_objects(value, outside, node, self._item_sites)
        returned, value = value, _resite(value, outside, node, mapping)
        value = _in_caller_names(value, func, bound)
        softmax = self.shape_index.softmax
        if softmax and returned.sites and returned.sites <= softmax:
            softmax.update(value.sites)  # the call returns the callee's probabilities
        if mutated:
            self._note_callee_writes(flow, node, args, passed, mutated & outside, state)
        if nograd:
            if value.grad != NO:
                value = cut(value, NO_GRAD, state.nograd, value.kinds & TENSORISH or TENSOR)  # type: ignore[arg-type]
            if value.cuts and value.kinds & TENSORISH:
                # made under no_grad: the cuts of the callee (a `.detach()` in it) are no cause of
                # the result having no history, the no_grad block is (brevitas stats_op.py)
                blocked = value.blocked
                value = value.evolve(cuts=(Cut(NO_GRAD, state.nograd, blocked),) if blocked else ())  # type: ignore[arg-type]
        else:
            self._keep_callee_saves(node, saved, outside, mapping, state)
            for name in self._backpropagated(func):
                if name in bound and bound[name].is_tensor:  # the helper backpropagates the caller's loss
                    flow.free_graph(bound[name], node, state)
        return value

    def _backpropagated(self, func: ast.AST) -> frozenset[str]:
        cache = self.__dict__.setdefault("_backpropagated_cache", {})
        if func not in cache:
            cache[func] = backpropagated_parameters(self.module, func)
        return cache[func]

    def _call_summary(
        self,
        func: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
        key: tuple,
        bound: dict[str, Value],
        self_value: Value | None,
    ) -> _CallSummary | None:
        """The memoised summary of `func` called with `bound` (None past MAX_SUMMARIES)."""
        cached = self._summaries.get(key)
        if cached is not None:
            self._reuse(key)
            return cached
        if self._summary_count >= MAX_SUMMARIES:
            return None
        self._summary_count += 1
        self._stack.append(func)
        try:
            with self._computing(key) as seen:
                summary = self._summarise_call(func, key, bound, self_value)
        finally:
            self._stack.pop()
        self._summaries[key] = summary
        # (a method's summary is not part of its class summary: one asked for while the class is
        # built, by a call in the script, sees the attributes set so far)
        self._settle(seen, self._summaries, key, frozenset())
        return summary

    def _summarise_call(
        self,
        func: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
        key: tuple,
        bound: dict[str, Value],
        self_value: Value | None,
    ) -> _CallSummary:
        """Runs `func`'s body with `bound`: what it returns, the saves the caller can reach, the
        allocation sites it writes in place and (called on `self_value`) the `self.x` it leaves."""
        parent = self.scope_parent(func)
        class_node = parent if isinstance(parent, ast.ClassDef) else None
        enclosing = None
        if parent is not None and not isinstance(parent, ast.ClassDef):
            enclosing = self.flow(parent)
        body = func.body if not isinstance(func, ast.Lambda) else [ast.Return(value=func.body)]
        callee = Flow(self, func, body, arguments=bound, enclosing=enclosing, natural=False,
                      class_node=class_node)  # fmt: skip
        self.shape_index.note_summary(key, callee)
        # under no_grad the results are cut by the caller; the callee's own saves do not happen
        value = callee.return_value
        end = callee.exit_state
        saved = _reachable_saves(callee, bound)
        self_attrs = (
            tuple((k[5:], v) for k, v in end.env.items() if k.startswith("self.") and k.count(".") == 1)
            if end is not None and self_value is not None
            else ()
        )
        return (value, saved, frozenset(callee.mutated), self_attrs)

    def _note_callee_writes(
        self,
        flow: Flow,
        node: ast.Call,
        args: Arguments,
        passed: list[Value],
        written: frozenset[ast.AST],
        state: State,
    ) -> None:
        """The callee writes into a tensor of the caller's that an earlier op saved (the callee's
        own saves come after: it reports those itself)."""
        roots = [
            r
            for r in written
            if r in state.saved and any(r in v.roots and (r, state.saved[r]) not in v.unsaved for v in passed)
        ]
        if roots:
            hits = tuple(state.saved[r] for r in roots)
            # (`data`: the caller's tensor objects written into, to name the argument that passed them)
            flow._record(
                INPLACE,
                node,
                state,
                join_all(args.all()),
                op="call",
                target=node,
                saved=hits,
                data=frozenset(roots),
            )

    def _keep_callee_saves(
        self,
        node: ast.Call,
        saved: dict,
        outside: frozenset[ast.AST],
        mapping: dict,
        state: State,
    ) -> None:
        """The callee's saves the caller can reach become the caller's, on this call's objects."""
        for root, record in saved.items():
            if root is node:
                # the object this call made on a loop's previous pass (`x = layer(x)`):
                # one site, two objects; the new result is not what was saved
                continue
            # a returned tensor the callee saved (`return torch.sigmoid(x)`) is this call's result
            state.saved.setdefault(root if root in outside else mapping.get(root, node), record)

    def _top_name(self, func: ast.AST) -> str | None:
        node: ast.AST | None = func
        while node is not None:
            parent = self.scope_parent(node)
            if parent is None:
                name = getattr(node, "name", None)
                return name if name in self.top and self.top[name] is node else None
            node = parent
        return None

    def _bind_arguments(
        self, func: ast.AST, args: Arguments, self_value: Value | None
    ) -> dict[str, Value] | None:
        spec = func.args  # type: ignore[attr-defined]
        positional = [a.arg for a in spec.posonlyargs + spec.args]
        bound: dict[str, Value] = {}
        values: list[Value] = []
        written = getattr(args.node, "args", None)
        if written is None or len(written) != len(args.positional):
            written = [None] * len(args.positional)  # a call the analysis made up (a probe comment's)
        for node, value in zip(written, args.positional, strict=True):
            if not isinstance(node, ast.Starred):
                values.append(value)
            elif value.items is not None:
                values.extend(value.items)  # `f(*pair)` with a known tuple/list
            else:
                return None  # how many values it spreads is unknown
        if self_value is not None and positional:
            bound[positional[0]] = self_value
            positional = positional[1:]
        for name, value in zip(positional, values, strict=False):
            bound[name] = value
        extra = values[len(positional) :]
        if spec.vararg is not None:
            bound[spec.vararg.arg] = Value(TUPLE, grad=NO, leaf=NO, elem=join_all(extra) if extra else None,
                                           items=tuple(extra))  # fmt: skip
        elif extra:
            return None
        names = set(positional) | {a.arg for a in spec.kwonlyargs}
        rest = {}
        for key, value in args.keywords.items():
            if key in names:
                bound[key] = value
            else:
                rest[key] = value
        if spec.kwarg is not None:
            bound[spec.kwarg.arg] = Value(
                DICT, grad=NO, leaf=NO, elem=join_all(rest.values()) if rest else None
            )
        return bound

    # -- methods ---------------------------------------------------------------------------------
    def method_call(
        self, flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, state: State
    ) -> Value:
        kinds = receiver.kinds
        if kinds == REF:
            return self.qualified_call(flow, node, f"{receiver.cls}.{attr}", args, state)
        if attr == "backward":
            return self._backward(flow, node, receiver, args, state)
        if receiver.is_tensor:
            return self.tensor_method(flow, node, receiver, attr, args, state)
        if kinds & MODULE and receiver.is_module:
            return self._module_method(flow, node, receiver, attr, args, state)
        if kinds == OPTIMIZER:
            return self._optimizer_method(flow, node, receiver, attr, args, state)
        if kinds == SCHEDULER:
            return NONE_VALUE if attr == "step" else UNKNOWN
        if kinds & (OBJECT | CTX) and receiver.cls in self.top and receiver.is_only(OBJECT | CTX | MODULE):
            return self._object_method(flow, node, receiver, attr, args, state)
        if kinds == CTX:
            return self._ctx_method(flow, node, receiver, attr, args, state)
        if kinds == CLASS and receiver.cls in self.top:
            return self._class_method(flow, node, receiver, attr, args, state)
        if kinds == FUNCTION_INSTANCE and attr in ("forward", "apply"):
            flow._record(FUNCTION_INSTANCE_CALL, node, state, receiver, op=attr, args=tuple(args.all()))
            return combine([a for a in args.all() if a.kinds & TENSORISH], node=node)
        if kinds & (LIST | DICT) and receiver.is_only(LIST | DICT | TUPLE):
            return self._container_method(flow, node, receiver, attr, args, state)
        if kinds == CALLABLE and attr == "apply":
            return self._function_apply(flow, node, receiver, args, state)
        if kinds & NUMPY and receiver.is_only(NUMPY):
            return self._numpy_method(receiver, attr, args)
        return self._loose_method(flow, node, receiver, attr, args, state)

    def _optimizer_method(
        self, flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, state: State
    ) -> Value:
        if attr == "step":
            flow._record(OPTIMIZER_STEP, node, state, receiver)
        elif attr == "zero_grad":
            flow._record(ZERO_GRAD_CALL, node, state, receiver, data=args.get(0, "set_to_none"))
        return NONE_VALUE if attr in ("step", "zero_grad", "add_param_group") else UNKNOWN

    def _object_method(
        self, flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, state: State
    ) -> Value:
        """A method of an instance of a class of this file."""
        if receiver.kinds == CTX:
            return self._ctx_method(flow, node, receiver, attr, args, state)
        method = self.self_attribute(receiver.cls, attr)  # type: ignore[arg-type]
        if method is not None and method.kinds == CALLABLE and method.node is not None:
            return self.call_function(flow, node, method.node, args, state, self_value=receiver)
        # `self.model(x)`, `self.criterion(out, y)`: call whatever the attribute holds
        return self.call(flow, node, method if method is not None else UNKNOWN, args, state)

    def _class_method(
        self, flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, state: State
    ) -> Value:
        """`Cls.attr(...)` on a class of this file (`MyFunction.apply(x)`)."""
        info = self.class_info(receiver.cls)  # type: ignore[arg-type]
        if info is None:
            return UNKNOWN
        if attr == "apply" and info.kind == KIND_FUNCTION:
            return self._function_apply(flow, node, receiver, args, state)
        if info.kind == KIND_FUNCTION and attr in ("forward", "backward"):
            flow._record(CALL, node, state, receiver, op=attr, args=tuple(args.all()))
        method = info.methods.get(attr)
        if method is not None:
            return self.call_function(flow, node, method, args, state)
        return UNKNOWN

    def _numpy_method(self, receiver: Value, attr: str, args: Arguments) -> Value:
        if attr in ("astype",):
            dtype = _dtype_of(self.module, args.node_of(0, "dtype"))
            return receiver.evolve(dtype=dtype)
        if attr in ("item", "tolist"):
            return FLOAT_VALUE if attr == "item" else Value(LIST, grad=NO, leaf=NO)
        return receiver

    def _untyped_method(
        self, flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, state: State
    ) -> Value:
        """A method of a value whose kind is unknown: what its name alone tells."""
        if attr in _SHAPE_METHODS:
            return SIZE_VALUE if attr == "size" and not node.args else INT_VALUE  # `x.size(0)`, `x.dim()`
        if attr == "requires_grad_" and _false_flag(args.node_of(0, "requires_grad")):
            return self._frozen(flow, node, receiver, state)
        if attr in ("parameters", "named_parameters"):
            # only modules have these: the receiver is a module we know nothing else of
            sources = receiver.sources or receiver.roots or frozenset((node,))
            for root in sources:
                self.source_kinds.setdefault(root, "opaque")
            return self._module_method(
                flow, node, receiver.evolve(kinds=MODULE, sources=sources), attr, args, state
            )
        if _is_tensor_method_name(attr) and (
            receiver.grad != NO or receiver.sources or receiver.cuts or receiver.dtype == INTEGRAL
        ):
            # a tensor method on something that carries autograd facts: the same facts
            # come out (without claiming the receiver was a tensor)
            if attr == "requires_grad_":
                result = self._requires_grad(
                    node, receiver.evolve(kinds=TENSOR), args, state, of_unknown_kind=True
                )
            else:
                result = self.tensor_method(flow, node, receiver.evolve(kinds=TENSOR), attr, args, state)
            return result.evolve(kinds=ANY) if result.is_tensor else result
        if attr in ("zero_grad",):
            flow._record(ZERO_GRAD_CALL, node, state, receiver)
            return NONE_VALUE
        if attr == "step":
            flow._record(OPTIMIZER_STEP, node, state, receiver)
            return UNKNOWN
        return self._append_or_opaque(flow, node, receiver, attr, args, state)

    def _loose_method(
        self, flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, state: State
    ) -> Value:
        """A method of a scalar or a string, of a value of unknown kind, or of several kinds at once."""
        kinds = receiver.kinds
        if kinds in (STR, INT, FLOAT):
            return UNKNOWN
        if kinds == ANY:
            return self._untyped_method(flow, node, receiver, attr, args, state)
        if kinds == OBJECT and receiver.cls == _ARGPARSE_OBJECT.cls:
            # `parser.parse_args()`, `parser.add_argument_group(...)`: options, not tensors
            if attr == "parse_known_args":
                return Value(TUPLE, grad=NO, leaf=NO, items=(receiver, Value(LIST, grad=NO, leaf=NO)))
            return receiver
        if kinds & TENSORISH and _is_tensor_method_name(attr) and not receiver.is_tensor:
            # one of several kinds, one a tensor, and a tensor method: only the tensor runs it
            return self.tensor_method(flow, node, receiver.evolve(kinds=TENSOR), attr, args, state)
        if kinds & (TENSORISH | OBJECT):
            return self._append_or_opaque(flow, node, receiver, attr, args, state)
        return UNKNOWN

    def _append_or_opaque(
        self, flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, state: State
    ) -> Value:
        if attr in ("append", "extend", "insert", "add") and isinstance(node.func.value, ast.Name):  # type: ignore[attr-defined]
            return self._container_method(flow, node, receiver, attr, args, state)
        return self._opaque_call(node, receiver, args, attr)

    def freeze(self, value: Value) -> None:
        """`value.requires_grad = False` / `.requires_grad_(False)`: the modules and parameters it
        comes from no longer require grad (for the whole file: order is not tracked)."""
        if value.sources and not value.kinds & ~(MODULE | TENSORISH):
            self.frozen |= value.sources

    def replace_parameter(self, module: Value, attr: str, value: Value) -> None:
        """`layer.weight = nn.Parameter(w, requires_grad=False)`: once every parameter of a torch.nn
        layer is replaced by one that does not require grad, the layer is frozen."""
        if not module.is_only(MODULE) or not module.sources or not module.cls:
            return
        if not value.is_only(TENSOR | PARAMETER) or value.grad != NO:
            return
        facts = torch_facts.layer(module.cls)
        if facts is None or not facts.parameters or attr not in facts.parameters:
            return
        replaced = self.frozen_parameters.setdefault(module.sources, set())
        replaced.add(attr)
        if replaced >= set(facts.parameters):
            self.frozen |= module.sources

    def _freeze_parameter(self, value: Value) -> None:
        """`p.detach_()` / `p.requires_grad_(False)` on a module's parameter (`for p in m.parameters()`):
        it no longer requires grad, nor (for the whole file, as `freeze`) what it comes from."""
        if value.is_only(TENSOR | PARAMETER) and value.kinds & PARAMETER and value.leaf == YES:
            self.freeze(value)

    def is_frozen(self, module: Value) -> bool:
        return module.cls == FROZEN or bool(module.sources) and module.sources <= self.frozen

    def _frozen(self, flow: Flow, node: ast.Call, receiver: Value, state: State) -> Value:
        """`m.requires_grad_(False)`: `m` is a module whose parameters no longer require grad."""
        self.freeze(receiver)
        frozen = receiver.evolve(kinds=MODULE, cls=FROZEN) if not receiver.sources else receiver
        target = node.func.value  # type: ignore[attr-defined]
        if isinstance(target, ast.Name) and target.id in state.env:
            state.env[target.id] = frozen
        return frozen

    def _backward(self, flow: Flow, node: ast.Call, receiver: Value, args: Arguments, state: State) -> Value:
        """`loss.backward()`, or `accelerator.backward(loss)` / `scaler.backward(loss)` (an
        object's method given the loss). The event's data is (retain_graph, the local names
        whose graph an earlier backward already freed)."""
        if receiver.kinds == CLASS:  # `Fn.backward(ctx, g)`: a class's static method (delegation)
            if receiver.cls in self.top:
                return self._class_method(flow, node, receiver, "backward", args, state)
            return UNKNOWN
        loss = receiver
        delegated = False
        if node.args and not node.keywords and not receiver.is_tensor:
            if receiver.kinds & (OBJECT | MODULE) or (receiver.kinds == ANY and receiver.grad != YES):
                loss, delegated = args.positional[0], True
        if not delegated and not (receiver.kinds & (TENSORISH | NUMPY | NUMBER) or receiver.kinds == ANY):
            return NONE_VALUE
        retain = _retains(node)
        stale = [
            (name, held)
            for name in sorted(loss.names)
            if (held := state.env.get(name)) is not None and held.stale
        ]
        # where the staleness comes from: stale names not computed from another stale name
        stale_set = {name for name, _ in stale}
        stale = [(name, held) for name, held in stale if not (held.names - {name}) & stale_set] or stale
        info = BackwardInfo(
            retain,
            tuple(name for name, _ in stale),
            frozenset().union(*(held.sources for _, held in stale)) if stale else frozenset(),
            max((held.grad for _, held in stale), default=NO),
            tuple(held for _, held in stale),
        )
        flow._record(BACKWARD, node, state, loss, op="delegated" if delegated else "", data=info)
        if not retain:
            flow.free_graph(loss, node, state)
        return NONE_VALUE

    def _ctx_method(
        self, flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, state: State
    ) -> Value:
        if attr in ("save_for_backward", "mark_dirty", "mark_non_differentiable", "set_materialize_grads"):
            flow._record(CALL, node, state, receiver, op=f"ctx.{attr}", args=tuple(args.all()))
            return NONE_VALUE
        return UNKNOWN

    def _container_method(
        self, flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, state: State
    ) -> Value:
        name = _holder_name(node.func.value)  # type: ignore[attr-defined]
        if attr in ("append", "add", "insert", "extend"):
            added = args.get(1 if attr == "insert" else 0, "object") or UNKNOWN
            if attr == "extend":
                added = element_of(added)
            flow._record(APPEND, node, state, added, op=attr, target=node.func.value)  # type: ignore[attr-defined]
            if name is not None and name in state.env:
                before = state.env[name]
                elem = added if before.elem is None else join(before.elem, added)
                kinds = before.kinds if before.known else LIST
                state.env[name] = before.evolve(kinds=kinds, elem=elem, items=None)
            return NONE_VALUE
        if attr in ("pop", "get", "setdefault", "__getitem__"):
            return element_of(receiver)
        if attr in ("values",) and receiver.kinds & DICT:
            return Value(LIST, grad=NO, leaf=NO, elem=receiver.elem)
        if attr == "items" and receiver.kinds & DICT:
            pair = Value(TUPLE, grad=NO, leaf=NO, items=(STR_VALUE, receiver.elem or UNKNOWN))
            return Value(LIST, grad=NO, leaf=NO, elem=pair)
        if attr == "keys":
            return Value(LIST, grad=NO, leaf=NO, elem=UNKNOWN)
        if attr in ("copy",):
            return receiver
        if attr in ("index", "count"):
            return INT_VALUE
        return UNKNOWN

    def _module_method(
        self, flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, state: State
    ) -> Value:
        cls = receiver.cls or ""
        if attr == "forward":
            return self.module_call(flow, node, receiver, args, state)
        if attr in ("parameters", "named_parameters"):
            # (a module whose parameters were frozen, `p.requires_grad_(False)` / `p.detach_()` in a
            # loop over them: they no longer require grad)
            grad = NO if self.is_frozen(receiver) else YES
            param = Value(TENSOR | PARAMETER, grad=grad, leaf=YES, sources=receiver.sources)
            if attr == "named_parameters":
                param = Value(TUPLE, grad=NO, leaf=NO, items=(STR_VALUE, param))
            return Value(LIST, grad=NO, leaf=NO, elem=param, sources=receiver.sources)
        if attr == "requires_grad_" and _false_flag(args.node_of(0, "requires_grad")):
            return self._frozen(flow, node, receiver, state)
        if attr in ("train", "eval", "to", "cuda", "cpu", "float", "half", "double", "bfloat16", "requires_grad_",
                    "type", "share_memory", "apply"):  # fmt: skip
            return receiver
        if attr == "zero_grad":
            flow._record(ZERO_GRAD_CALL, node, state, receiver, data=args.get(0, "set_to_none"))
            return NONE_VALUE
        if attr in ("register_buffer", "register_parameter", "add_module", "register_module"):
            return self._register_call(flow, node, attr, args, state)
        if attr in ("modules", "children", "named_modules", "named_children"):
            return Value(LIST, grad=NO, leaf=NO, elem=UNKNOWN)
        held = shape_flow.member(receiver, attr)  # `self.blocks.wte(x)` of a ModuleDict
        if held is not None and held.is_module:
            return self.module_call(flow, node, held, args, state)
        if attr in ("buffers", "named_buffers", "state_dict", "load_state_dict"):
            return UNKNOWN
        if cls in self.top:
            return self._own_module_method(flow, node, receiver, cls, attr, args, state)
        return self._module_container_method(receiver, cls, attr)

    def _register_call(self, flow: Flow, node: ast.Call, attr: str, args: Arguments, state: State) -> Value:
        """`self.register_buffer(name, tensor)`, `register_parameter`, `add_module`, `register_module`."""
        first = args.node_of(0, "name")
        value = args.get(1, {"register_buffer": "tensor", "register_parameter": "param"}.get(attr, "module"))
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            stored = self._registered_value(node, attr, value)
            flow._record(ATTRIBUTE_STORE, node, state, stored, op=first.value, target=node, data=attr)
            if isinstance(node.func.value, ast.Name) and node.func.value.id == "self":  # type: ignore[attr-defined]
                path = f"self.{first.value}"
                state.env[path] = stored
                self.note_attribute_store(flow, path, stored)
        elif value is not None:
            # `self.add_module(str(i), layer)`: registered under a name only known at run time
            flow._record(ATTRIBUTE_STORE, node, state, value, op="", target=node, data=attr)
        return NONE_VALUE

    @staticmethod
    def _registered_value(node: ast.Call, attr: str, value: Value | None) -> Value:
        """What a `register_*` call stores under its name."""
        if attr == "register_buffer":
            base = value if value is not None else NONE_VALUE
            stored = Value(TENSOR | BUFFER, grad=NO if base.grad != YES else YES, leaf=YES,
                           dtype=base.dtype, sites=base.sites or frozenset((node,)),
                           roots=base.roots or frozenset((node,)), shape=base.shape)  # fmt: skip
            if base.kinds & NONE:
                stored = join(stored, NONE_VALUE) if base.kinds != NONE else NONE_VALUE
            return stored
        if attr == "register_parameter":
            return value or UNKNOWN
        return value or UNKNOWN

    def _own_module_method(
        self, flow: Flow, node: ast.Call, receiver: Value, cls: str, attr: str, args: Arguments, state: State
    ) -> Value:
        """A method of a module whose class is defined in this file."""
        method = self.self_attribute(cls, attr)
        if method is not None and method.kinds != CALLABLE:
            method = shape_flow.refine(self, flow, receiver, attr, method)
        if method is not None and method.kinds == CALLABLE and method.node is not None:
            return self.call_function(flow, node, method.node, args, state, self_value=receiver)
        if method is not None and method.is_module:
            return self.module_call(flow, node, method, args, state)
        return UNKNOWN

    @staticmethod
    def _module_container_method(receiver: Value, cls: str, attr: str) -> Value:
        """A method of a `ModuleList`, `ModuleDict` or `Sequential` (or of another module)."""
        if cls.endswith(("ModuleList", "ModuleDict", "Sequential")) and attr in (
            "append",
            "extend",
            "insert",
        ):
            return NONE_VALUE
        if cls.endswith(("ModuleDict",)) and attr in ("values", "items", "keys"):
            return Value(LIST, grad=NO, leaf=NO, elem=receiver.elem or UNKNOWN)
        return UNKNOWN

    # -- tensors ---------------------------------------------------------------------------------
    def tensor_method(
        self,
        flow: Flow,
        node: ast.Call,
        receiver: Value,
        attr: str,
        args: Arguments,
        state: State,
        facts: torch_facts.OpFacts | None = None,
    ) -> Value:
        """`receiver.attr(*args)` on a tensor (or `torch.attr(receiver, *args)` with the function's
        facts): what torch's facts say the op does to autograd, dtype, views and saved tensors."""
        if attr in ("detach", "detach_"):
            return self._detach(node, receiver, attr, state)
        if attr == "requires_grad_":
            return self._requires_grad(node, receiver, args, state)
        facts = facts if facts is not None else torch_facts.op(attr)
        if facts is not None and facts.cuts_graph:
            out = _graph_cut(node, receiver, facts)
            if out is not None:
                return out
        if attr in ("retain_grad", "share_memory_", "pin_memory", "register_hook"):
            return receiver if attr != "register_hook" else OBJECT_VALUE
        if (
            facts is not None
            and facts.returns
            and not set(facts.returns) & {"tensor", "tuple", "tensor_list", "values_indices", "namedtuple"}
        ):
            return _non_tensor_result(node, facts)
        if _writes_in_place(attr, facts):
            operands = tuple(args.all())
            target = node.func.value  # type: ignore[attr-defined]
            if node.args and (self.module.call_name(node) or "").startswith("torch."):
                target = node.args[0]  # `F.relu_(t)`, `torch.sigmoid_(t)`: writes into `t`, not into `F`
            return flow._inplace(node, target, receiver, operands, attr, state)
        if attr in ("to", "type", "view") or attr in _DTYPE_METHOD_NAMES:
            return self._convert(flow, node, receiver, attr, args, state)
        if attr in ("cpu", "cuda", "contiguous", "pin_memory", "coalesce"):
            if receiver.grad == NO:
                return receiver.evolve(sites=frozenset((node,)))
            return combine((receiver,), node=node).evolve(dtype=receiver.dtype)
        if attr == "clone":
            return combine((receiver,), node=node).evolve(
                dtype=receiver.dtype, leaf=NO if receiver.grad != NO else YES
            )
        if facts is not None and facts.grad == "none":
            flow.discard_saves_of(state, node.func.value if isinstance(node.func, ast.Attribute) else node)
            operands = (receiver, *args.positional, *args.keywords.values())
            dtype = facts.dtype if facts.dtype and facts.dtype not in _DTYPE_RULES else "int64"
            return cut(combine(operands, node=node), NONDIFF, node, TENSOR).evolve(dtype=dtype)
        if facts is not None and _returns_values_indices(attr, args, facts):
            values = self._differentiable(flow, node, receiver, attr, args, state, facts)
            indices = cut(values, NONDIFF, node, TENSOR).evolve(dtype="int64")
            return Value(TUPLE, grad=NO, leaf=NO, items=(values, indices), elem=join(values, indices))
        return self._op_result(flow, node, receiver, attr, args, state, facts)

    def _detach(self, node: ast.Call, receiver: Value, attr: str, state: State) -> Value:
        """`t.detach()`: a view sharing the storage and the version counter, without history."""
        result = cut(receiver, DETACH, node, TENSOR).evolve(
            roots=receiver.roots or frozenset((node,)), dtype=receiver.dtype, sites=frozenset((node,))
        )
        # `detach_` detaches the tensor itself (allowed on a leaf: it no longer requires grad)
        if attr == "detach_" and isinstance(node.func.value, ast.Name):  # type: ignore[attr-defined]
            state.env[node.func.value.id] = result  # type: ignore[attr-defined]
            self._freeze_parameter(receiver)
        return result

    def _op_result(
        self,
        flow: Flow,
        node: ast.Call,
        receiver: Value,
        attr: str,
        args: Arguments,
        state: State,
        facts: torch_facts.OpFacts | None,
    ) -> Value:
        """A differentiable op's result: zero gradients, views of the receiver, tuples of tensors."""
        result = self._differentiable(flow, node, receiver, attr, args, state, facts)
        if facts is not None and facts.grad == "zero" and result.sources:
            result = result.evolve(
                sources=frozenset(), blocked=result.blocked | result.sources,
                cuts=(Cut(ZERO_GRAD, node, result.sources), *result.cuts)[:4], live=NO,
            )  # fmt: skip
        view = facts.view if facts is not None else None
        if view == "always" or attr in _VIEW_METHODS:
            result = result.evolve(roots=receiver.roots or result.roots, leaf=receiver.leaf)
        if (
            receiver.dtype == INTEGRAL
            and (
                view == "always"
                or attr in _VIEW_METHODS
                or (facts is not None and facts.same_values == "always")
            )
            and not any(v.kinds == REF for v in args.positional)  # (not `x.view(torch.float32)`)
        ):
            result = as_integer(result)  # a view or copy of integers holds integers
        if (
            facts is not None
            and set(facts.returns) & {"tuple", "tensor_list"}
            and "tensor" not in facts.returns
        ):
            if view == "always" and attr in _MULTI_OUTPUT_VIEWS:
                self.multi_output_views.add(node)
            return Value(TUPLE, grad=NO, leaf=NO, elem=result)
        return result

    def _requires_grad(
        self, node: ast.Call, receiver: Value, args: Arguments, state: State, of_unknown_kind: bool = False
    ) -> Value:
        flag = args.node_of(0, "requires_grad")
        on = flag is None or (isinstance(flag, ast.Constant) and flag.value is True)
        off = isinstance(flag, ast.Constant) and flag.value is False
        if on:
            sources = receiver.sources
            if receiver.leaf != NO:
                self.source_kinds.setdefault(node, "leaf")
                sources = sources | {node}
            result = receiver.evolve(grad=YES, sources=sources)
            if receiver.leaf != NO and (
                (receiver.grad != YES and self._opaque_only(receiver.sources)) or of_unknown_kind
            ):
                # `y = physics(x); y.requires_grad_(True)`: on a tensor that required grad this is a
                # no-op, so the code means one that did not: no graph behind it, a new leaf. So too
                # for a value not known to be a tensor (an unknown call's result, `transform(x_adv)`
                # returning `x_adv.detach().clone()`), whatever gradient it was guessed to carry
                result = result.evolve(leaf=YES, saves=False, stale=frozenset())
        elif off:
            result = receiver.evolve(grad=NO)
            self._freeze_parameter(receiver)
        else:
            result = receiver.evolve(grad=MAYBE)
        if isinstance(node.func.value, ast.Name):  # type: ignore[attr-defined]
            state.env[node.func.value.id] = result  # type: ignore[attr-defined]
        return result

    def _differentiable(
        self, flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, state: State, facts
    ) -> Value:
        operands = (receiver, *args.positional)
        keywords = args.keywords
        if attr in _SHAPE_ARGUMENT_METHODS or (receiver.is_tensor and facts and facts.view == "always"):
            # `x.view(bsz, seq_len, -1)`: sizes, dims and shape tensors carry no gradient into the result
            operands, keywords = (receiver,), {}
        result = flow._tensor_op(attr, node, operands, state, facts=facts, keywords=keywords)
        if (
            result.dtype is None
            and receiver.dtype is not None
            and (facts is None or facts.dtype in (None, "same"))
        ):
            result = result.evolve(dtype=receiver.dtype)
        return result

    def _convert(
        self, flow: Flow, node: ast.Call, receiver: Value, attr: str, args: Arguments, state: State
    ) -> Value:
        if attr == "view":  # `t.view(torch.int32)` reads the same memory as another dtype
            viewed = None
            if len(node.args) + len(node.keywords) == 1:
                viewed = _dtype_of(self.module, node.args[0] if node.args else keyword(node, "dtype"))
            if viewed is None:
                return self._op_result(flow, node, receiver, attr, args, state, torch_facts.op(attr))
            return _dtype_view(node, receiver, viewed)
        if attr in _DTYPE_METHOD_NAMES:
            dtype = _DTYPE_METHOD_NAMES[attr]
        else:
            dtype = None
            for expr in [*node.args, keyword(node, "dtype")]:
                found = _dtype_of(self.module, expr)
                if found is not None:
                    dtype = found
            if dtype is None and attr == "to" and node.args:
                other = args.positional[0]
                if other.is_tensor and other.dtype is not None:
                    dtype = other.dtype
        if dtype is not None and not is_float_dtype(dtype):
            return cut(combine((receiver,), node=node), NONDIFF, node, TENSOR).evolve(dtype=dtype)
        if receiver.grad == NO:
            return receiver.evolve(
                dtype=dtype or receiver.dtype, sites=frozenset((node,)), roots=frozenset((node,))
            )
        return combine((receiver,), node=node).evolve(dtype=dtype or receiver.dtype)

    # -- qualified calls -------------------------------------------------------------------------
    def qualified_call(self, flow: Flow, node: ast.Call, qual: str, args: Arguments, state: State) -> Value:
        root, _, rest = qual.partition(".")
        if root == "builtins":
            return self._builtin(flow, node, rest, args, state)
        if qual in _PARAMETER_CTORS:
            data = args.get(0, "data") or UNKNOWN
            flag = args.node_of(1, "requires_grad")
            off = isinstance(flag, ast.Constant) and flag.value is False
            self.source_kinds.setdefault(node, "parameter")
            return Value(TENSOR | PARAMETER, grad=NO if off else YES, leaf=YES,
                         sources=frozenset() if off else frozenset((node,)), dtype=data.dtype,
                         sites=frozenset((node,)), roots=frozenset((node,)))  # fmt: skip
        if qual in _VARIABLES:
            # the pre-0.4 API: `Variable(t, requires_grad=True)` is a new leaf
            data = args.get(0, "data") or UNKNOWN
            flag = args.node_of(1, "requires_grad")
            on = isinstance(flag, ast.Constant) and flag.value is True
            if on:
                self.source_kinds.setdefault(node, "leaf")
            return Value(TENSOR, grad=YES if on else data.grad, leaf=YES if on else data.leaf,
                         sources=frozenset((node,)) if on else data.sources, dtype=data.dtype,
                         sites=frozenset((node,)), roots=frozenset((node,)))  # fmt: skip
        if qual in _BUFFER_CTORS:
            return Value(
                TENSOR | BUFFER, grad=NO, leaf=YES, sites=frozenset((node,)), roots=frozenset((node,))
            )
        if root == "torch":
            return self._torch_call(flow, node, qual, args, state)
        if qual == "copy.deepcopy" and (args.get(0, "x") or UNKNOWN).is_only(MODULE):
            # a copy of a module has parameters of its own (freezing the copy leaves the original)
            self.source_kinds.setdefault(node, "module")
            return args.positional[0].evolve(sources=frozenset((node,)))
        if root in ("numpy", "np"):
            return self._numpy_call(flow, node, qual, args, state)
        if root == "math":
            return FLOAT_VALUE
        if root == "argparse":
            return _ARGPARSE_OBJECT  # a parser or namespace holds strings and numbers, never a graph
        if root in ("random",):
            return FLOAT_VALUE if rest in ("random", "uniform", "gauss") else UNKNOWN
        if torch_facts.is_optimizer(qual) or torch_facts.is_third_party_optimizer(qual):
            params = args.get(0, "params") or UNKNOWN
            return Value(OPTIMIZER, grad=NO, leaf=NO, cls=qual, elem=params, sources=_params_sources(params))
        # a class from another file or library: what the project knows of it
        resolver = self.module.resolver
        kind = (
            resolver.class_facts(qual).kind
            if resolver is not None and qual.rsplit(".", 1)[-1][:1].isupper()
            else None
        )
        if kind == KIND_MODULE:
            self.source_kinds.setdefault(node, "module")
            return Value(MODULE, grad=NO, leaf=NO, cls=qual, sources=frozenset((node,)))
        if kind == KIND_FUNCTION:
            return Value(FUNCTION_INSTANCE, grad=NO, leaf=NO, cls=qual)
        return self._opaque_call(node, UNKNOWN, args, qual.rsplit(".", 1)[-1])

    def _builtin(self, flow: Flow, node: ast.Call, name: str, args: Arguments, state: State) -> Value:
        first = args.get(0, "x")
        value = _builtin_conversion(node, name, args, first)
        if value is None:
            value = _builtin_arithmetic(flow, node, name, args, first, state)
        if value is None:
            value = self._builtin_other(flow, node, name, args, first, state)
        return value

    def _builtin_other(
        self, flow: Flow, node: ast.Call, name: str, args: Arguments, first: Value | None, state: State
    ) -> Value:
        """The builtins neither `_builtin_conversion` nor `_builtin_arithmetic` knows."""
        if name in _BUILTIN_BOOLS:
            return BOOL_VALUE
        if name == "setattr" and len(args.positional) == 3:
            # `setattr(self, name, layer)`: an attribute store under a computed name
            flow._record(ATTRIBUTE_STORE, node, state, args.positional[2], op="", target=node, data="setattr")
            return NONE_VALUE
        if name in _BUILTIN_NONE:
            return NONE_VALUE
        if name in ("str", "repr", "format", "chr"):
            return STR_VALUE
        if name in ("iter", "next"):
            return element_of(first) if first is not None and name == "next" else (first or UNKNOWN)
        if name == "super":
            cls = flow.class_node
            if cls is not None:
                base = next((b for b in cls.bases if isinstance(b, ast.Name) and b.id in self.top), None)
                if base is not None:
                    return Value(OBJECT, grad=NO, leaf=NO, cls=base.id)
            return OBJECT_VALUE
        if name in ("map", "filter"):
            return Value(LIST, grad=NO, leaf=NO, elem=UNKNOWN)
        if name == "getattr":
            return UNKNOWN
        if name == "type":
            return Value(CLASS, grad=NO, leaf=NO)
        if name in ("id", "hash", "ord"):
            return INT_VALUE
        if name in ("locals", "globals") and not args.positional:
            # a dict of the scope's names: a mapping of its own (`names = locals()` then used as a
            # registry, `names["gen" + str(i)] = ...`: pyod models/mo_gaal.py), not a value with a graph
            return Value(DICT, grad=NO, leaf=NO)
        return UNKNOWN

    def _torch_call(self, flow: Flow, node: ast.Call, qual: str, args: Arguments, state: State) -> Value:
        parts = qual.split(".")
        last = parts[-1]
        namespace = ".".join(parts[:-1])
        if namespace == "torch.nn" or (namespace.startswith("torch.nn.modules") and last[:1].isupper()):
            layer = self._nn_constructor(node, qual, last, args)
            if layer is not None:
                return layer
        if torch_facts.is_lr_scheduler(qual) or (qual.startswith("torch.optim.") and "swa_utils" in qual):
            return Value(SCHEDULER, grad=NO, leaf=NO, cls=qual)
        if torch_facts.is_optimizer(qual):
            params = args.get(0, "params") or UNKNOWN
            return Value(OPTIMIZER, grad=NO, leaf=NO, cls=qual, elem=params, sources=_params_sources(params))
        if namespace in ("torch", "torch.autograd", "torch.autograd.grad_mode") and last in (
            "no_grad", "enable_grad", "inference_mode", "set_grad_enabled"):  # fmt: skip
            return OBJECT_VALUE
        fixed = _TORCH_FIXED_RESULTS.get(qual)
        if fixed is not None:
            return fixed
        if namespace == "torch" and last in _FACTORIES:
            return self._factory(flow, node, last, args, state)
        if last in _COLLECTING and namespace == "torch":
            seq = args.get(0, "tensors") or UNKNOWN
            elem = element_of(seq)
            operands = [elem] if not seq.items else list(seq.items)
            result = flow._tensor_op(last, node, tuple(operands), state)
            if is_float_dtype(result.dtype) and any(v.dtype is None for v in operands):
                # every element is a tensor, and the result has the dtype they promote to: one
                # element of unknown dtype (a float64 argument?) leaves a float result's unknown
                result = result.evolve(dtype=None)
            return result
        if last in ("device", "Size", "Generator", "manual_seed", "set_default_dtype", "dtype", "get_default_dtype",
                    "is_tensor", "is_grad_enabled", "numel"):  # fmt: skip
            return {"manual_seed": OBJECT_VALUE, "is_tensor": BOOL_VALUE, "is_grad_enabled": BOOL_VALUE,
                    "numel": INT_VALUE}.get(last, OBJECT_VALUE)  # fmt: skip
        if namespace in ("torch", "torch.nn.functional", "torch.special", "torch.linalg", "torch.fft"):
            return self._torch_function(flow, node, qual, namespace, last, args, state)
        if qual in TENSOR_DATA:
            return tensor_data(qual, node, args)
        if last[:1].isupper():
            return OBJECT_VALUE
        if namespace.startswith("torch.distributed") and last in torch_facts.DISTRIBUTED_SETUP:
            return _SETUP_RESULTS[torch_facts.DISTRIBUTED_SETUP[last]]  # never a tensor with a graph
        return self._opaque_call(node, UNKNOWN, args, last)

    def _nn_constructor(self, node: ast.Call, qual: str, last: str, args: Arguments) -> Value | None:
        """`nn.Linear(...)` and the other `torch.nn` layers; None for another name of `torch.nn`."""
        if last in _CONTAINER_LAYERS:
            return self._container_layer(node, qual, last, args)
        if last[:1].isupper() and last not in ("Parameter", "Buffer", "Module"):
            self.source_kinds.setdefault(node, "module")
            has_params = self._layer_has_parameters(qual)
            return Value(MODULE, grad=NO, leaf=NO, cls=qual, node=node,
                         sources=frozenset((node,)) if has_params is not False else frozenset())  # fmt: skip
        return None

    def _torch_function(
        self, flow: Flow, node: ast.Call, qual: str, namespace: str, last: str, args: Arguments, state: State
    ) -> Value:
        """A function of `torch`, `torch.nn.functional`, `torch.special`, `torch.linalg`, `torch.fft`."""
        operands = tuple(args.all())
        if namespace == "torch.nn.functional" and _inplace_flag(node) and node.args and args.positional:
            # `F.relu(t, inplace=True)` writes into `t`
            flow._inplace(node, node.args[0], args.positional[0], (), "inplace=True", state)
        if not any(v.kinds & TENSORISH or v.kinds == ANY for v in operands):
            return UNKNOWN
        receiver = operands[0] if operands else UNKNOWN
        facts = torch_facts.function(qual)
        fake_args = Arguments(node, list(args.positional[1:]), args.keywords)
        if qual == "torch.where" and len(args.positional) == 3 and not args.keywords:
            # `torch.where(cond, x, y)` is `x.where(cond, y)`, differentiable in `x` and `y` (the
            # generated facts describe the one-argument form, which returns indices)
            receiver = args.positional[1]
            facts = torch_facts.op("where")
            fake_args = Arguments(node, [args.positional[0], args.positional[2]], {})
        if receiver.kinds & TENSORISH or receiver.kinds == ANY:
            tensor = receiver.evolve(kinds=TENSOR) if receiver.kinds == ANY else receiver
            return self.tensor_method(flow, node, tensor, last, fake_args, state, facts=facts)
        return flow._tensor_op(last, node, operands, state, facts=facts, keywords=args.keywords)

    def _container_layer(self, node: ast.Call, qual: str, last: str, args: Arguments) -> Value:
        members = list(args.positional)
        if last in ("ModuleList", "ParameterList", "ModuleDict", "ParameterDict") and members:
            members = [element_of(members[0])]
        sources = frozenset((node,))
        self.source_kinds.setdefault(node, "module")
        elem = join_all(members) if members else None
        items = tuple(members) if last == "Sequential" else None
        if last == "Sequential" and members and all(m.is_module for m in members):
            sources = frozenset().union(*(m.sources for m in members)) or sources
        return Value(MODULE, grad=NO, leaf=NO, cls=qual, sources=sources, elem=elem, items=items)

    def _factory(self, flow: Flow, node: ast.Call, name: str, args: Arguments, state: State) -> Value:
        dtype = _dtype_of(self.module, keyword(node, "dtype"))
        requires = keyword(node, "requires_grad")
        grad = YES if isinstance(requires, ast.Constant) and requires.value is True else NO
        if requires is not None and not isinstance(requires, ast.Constant):
            grad = MAYBE
        data = args.get(0, "data")
        if name in _COPYING_FACTORIES or name == "from_numpy":
            if data is not None:
                dtype = self._copied_dtype(node, name, data, dtype)
                element = element_of(data) if data.kinds & CONTAINER else data
                tracked = (data.kinds & TENSORISH and (data.grad != NO or data.sources)) or (
                    data.kinds & CONTAINER
                    and element.kinds & TENSORISH
                    and (element.grad != NO or element.sources)
                )
                if not tracked and grad == YES and any(c.blocked for c in (*data.cuts, *element.cuts)):
                    # `torch.tensor(loss.item(), requires_grad=True)`: a new leaf made from a value
                    # cut from the model; backward stops at it, and it is nothing to train
                    base = data if data.cuts else element
                    return Value(TENSOR, grad=YES, leaf=YES, cuts=base.cuts, blocked=base.blocked, dtype=dtype,
                                 sites=frozenset((node,)), roots=frozenset((node,)))  # fmt: skip
                if tracked and name != "tensor" and data.is_tensor:
                    return (
                        data  # `torch.as_tensor(t)` / `torch.Tensor(t)` return `t` itself: the graph is kept
                    )
                if tracked and name != "from_numpy":
                    flow._record(REWRAP_CALL, node, state, data, op=name)
                    base = join(data, element) if data.kinds & CONTAINER else data
                    result = cut(base, REWRAP, node, TENSOR)
                    if grad == YES and base.grad != YES and self._opaque_only(base.sources):
                        # `torch.tensor(rng.randn(n, 3), requires_grad=True)`: data that may hold no
                        # graph at all (an unknown object's result); the new leaf is what is trained
                        self.source_kinds.setdefault(node, "leaf")
                        result = result.evolve(grad=YES, leaf=YES, sources=frozenset((node,)))
                    elif grad == YES:
                        result = result.evolve(grad=YES)
                    return result.evolve(dtype=dtype)
        elif name.endswith("_like") and data is not None:
            dtype = dtype or data.dtype
        dtype = self._factory_dtype(node, name, args, dtype)
        if grad == YES:
            self.source_kinds.setdefault(node, "leaf")
        sources = frozenset((node,)) if grad == YES else frozenset()
        return Value(TENSOR, grad=grad, leaf=YES, sources=sources, dtype=dtype, sites=frozenset((node,)),
                     roots=frozenset((node,)))  # fmt: skip

    def _copied_dtype(self, node: ast.Call, name: str, data: Value, dtype: str | None) -> str | None:
        """The dtype of `torch.<name>(data, ...)` copying or wrapping `data`, given the `dtype=` known."""
        # `torch.FloatTensor(1)` is float32, whatever the data
        dtype = dtype or _TYPED_CONSTRUCTORS.get(name)
        if dtype is not None or keyword(node, "dtype") is not None:
            return dtype  # (`torch.tensor(a, dtype=torch.get_default_dtype())`: given, not known here)
        if name == "Tensor":
            # the legacy `torch.Tensor(data)` copies an array or a list into the default dtype
            # (`torch.Tensor(np.random.rand(3))` is float32, torch 2.13) and returns a tensor
            # itself (an alias, its dtype kept)
            if data.is_tensor:
                return data.dtype
            if not data.kinds & TENSORISH and not self.module.changes_default_dtype:
                return "float32"
            return None
        if data.dtype is not None:
            return data.dtype
        return _literal_dtype(node.args[0] if node.args else None)

    def _opaque_only(self, sources: frozenset) -> bool:
        """Every root is an unknown object's (`rng` in `rng.randn(n)`): nothing known to require grad."""
        return all(self.source_kinds.get(s) == "opaque" for s in sources)

    def _factory_dtype(self, node: ast.Call, name: str, args: Arguments, dtype: str | None) -> str | None:
        """The dtype of a new tensor `torch.<name>(...)` makes, given the one known so far."""
        explicit = keyword(node, "dtype") is not None  # `dtype=other.dtype`: given, but not known here
        if dtype is None and not explicit and name in _INT_FACTORIES:
            dtype = "int64"
        if name == "full" and dtype is None and not explicit:
            # the fill value decides: `torch.full(size, 3)` is int64, `torch.full(size, 0.5)` float32
            fill = args.get(1, "fill_value")
            if fill is None or not fill.is_only(FLOAT):
                explicit = True  # (not known, or not a float: leave the dtype unknown)
        if dtype is None and not explicit and name in ("zeros", "ones", "empty", "full", "rand", "randn", "eye",
                                                       "linspace", "logspace", "normal", "Tensor", "FloatTensor"):  # fmt: skip
            dtype = (
                "float64"
                if name == "DoubleTensor"
                else ("float32" if not self.module.changes_default_dtype else None)
            )
        if dtype is None and name in ("DoubleTensor",):
            dtype = "float64"
        if dtype is None and name == "arange":
            literal = all(isinstance(a, ast.Constant) and isinstance(a.value, int) for a in node.args)
            dtype = "int64" if literal and node.args else None
        return dtype

    def _numpy_call(self, flow: Flow, node: ast.Call, qual: str, args: Arguments, state: State) -> Value:
        last = qual.rsplit(".", 1)[1]
        first = args.get(0, "object")
        given = keyword(node, "dtype")
        at = _NUMPY_DTYPE_POSITION.get(last)
        if given is None and at is not None and len(node.args) > at:
            given = node.args[at]  # `np.zeros(n, np.float32)`
        dtype = _dtype_of(self.module, given)
        if first is not None and first.kinds & TENSORISH and (first.grad != NO or first.sources) and last in (
            "array", "asarray"):  # fmt: skip
            return cut(first, NUMPY_CUT, node, NUMPY)
        if dtype is None and given is None and last in _NUMPY_FLOATS:
            # (a dtype given but not known here, `dtype=np.float16` / `dtype=self.dtype`: not float64)
            if last in ("array", "asarray") and node.args:
                dtype = _literal_dtype(node.args[0], numpy=True) or (
                    first.dtype if first is not None else None
                )
            elif last == "arange" or (last == "full" and not _fill_is_float(args)):
                dtype = None  # (`np.full(n, 1)` is int64)
            else:
                dtype = "float64"
        return Value(NUMPY, grad=NO, leaf=YES, dtype=dtype)


# torch functions whose result is the same whatever they are given
_TORCH_FIXED_RESULTS = {
    "torch.autograd.grad": Value(TUPLE, grad=NO, leaf=NO, elem=Value(TENSOR, grad=MAYBE, leaf=NO)),
    # False whenever Python runs the code (only TorchScript's compiled copy sees True): an
    # `if torch.jit.is_scripting():` branch never runs in eager code
    "torch.jit.is_scripting": shape_flow.FALSE,
}
# (not `np.load`: it returns the dtype that was saved)
_NUMPY_FLOATS = frozenset({"array", "asarray", "zeros", "ones", "empty", "linspace", "eye", "identity", "randn",
                           "rand", "random", "normal", "uniform", "standard_normal", "full", "arange",
                           "loadtxt", "genfromtxt"})  # fmt: skip
# where numpy functions take their dtype positionally: `np.zeros(shape, dtype)`, `np.full(shape, v, dtype)`
_NUMPY_DTYPE_POSITION = {"zeros": 1, "ones": 1, "empty": 1, "array": 1, "asarray": 1, "identity": 1, "full": 2}  # fmt: skip


def _fill_is_float(args: Arguments) -> bool:
    fill = args.get(1, "fill_value")
    return fill is not None and fill.is_only(FLOAT)


# `OpFacts.dtype` values that are rules, not dtype names
_DTYPE_RULES = frozenset({"same", "promote", "int_to_float", "promote_int_to_float", "strict", "argument"})
_DTYPE_METHOD_NAMES = {"float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16",
                       "long": "int64", "int": "int32", "short": "int16", "bool": "bool", "byte": "uint8",
                       "char": "int8"}  # fmt: skip


def is_param_free_layer(qualname: str | None) -> bool:
    """A `torch.nn` layer that owns no parameters in any configuration (activations, pooling,
    dropout, most losses, ...)."""
    if not qualname or not qualname.startswith("torch.nn."):
        return False
    facts = torch_facts.layer(qualname)
    return bool(facts is not None and facts.parameter_free_always)


def _is_tensor_method_name(name: str) -> bool:
    return torch_facts.is_tensor_method(name)


# methods whose meaning on a tensor the interpreter knows, beyond the op table


def _dtype_view(node: ast.Call, receiver: Value, dtype: str) -> Value:
    """`t.view(torch.int32)`: the same memory read as another dtype. torch records no history
    (the result neither requires grad nor has a `grad_fn`, whatever the dtype); it is a view of
    `t` (writes reach `t`), and its last dimension scales with the element sizes."""
    result = cut(receiver, NONDIFF, node, TENSOR)
    before = torch_facts.dtype(receiver.dtype) if receiver.dtype is not None else None
    after = torch_facts.dtype(dtype)
    same_size = before is not None and after is not None and before.itemsize == after.itemsize
    return result.evolve(dtype=dtype, roots=receiver.roots or frozenset((node,)),
                         shape=receiver.shape if same_size else None)  # fmt: skip


def _dtype_of(module: ModuleContext, expr: ast.AST | None) -> str | None:
    if expr is None:
        return None
    qual = module.qualname(expr)
    if qual is not None:
        return DTYPES.get(qual)
    if isinstance(expr, ast.Name) and expr.id in ("float", "int", "bool"):
        return {"float": "float64", "int": "int64", "bool": "bool"}[expr.id]
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {"float32": "float32", "float64": "float64", "float": "float64", "int64": "int64"}.get(
            expr.value
        )
    return None


def _literal_dtype(expr: ast.AST | None, numpy: bool = False) -> str | None:
    """The dtype torch.tensor/np.array give a literal: ints -> int64, floats -> float32
    (float64 for numpy), bools -> bool."""
    if expr is None:
        return None
    leaves = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.List, ast.Tuple)):
            stack.extend(node.elts)
        elif isinstance(node, ast.Constant):
            leaves.append(node.value)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
            leaves.append(node.operand.value)
        else:
            return None
    if not leaves:
        return "float64" if numpy else "float32"
    if all(isinstance(v, bool) for v in leaves):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in leaves):
        return "int64"
    if all(isinstance(v, (int, float)) for v in leaves):
        return "float64" if numpy else "float32"
    return None


def _params_sources(params: Value) -> frozenset:
    if params.sources:
        return params.sources
    elem = element_of(params)
    if elem.sources:
        return elem.sources
    if elem.kinds & DICT:
        inner = element_of(elem)
        return inner.sources
    return frozenset()


def _writes_in_place(attr: str, facts: torch_facts.OpFacts | None) -> bool:
    """Whether tensor method `attr` writes into its receiver (torch's facts, else the `_` suffix)."""
    if facts is not None:
        return bool(facts.writes_self)
    return attr.endswith("_") and not attr.startswith("_") and attr not in _INPLACE_EXCEPTIONS


def _graph_cut(node: ast.Call, receiver: Value, facts: torch_facts.OpFacts) -> Value | None:
    """What an op that leaves the graph (`numpy()`, `tolist()`, `item()`) returns, if it does."""
    returns = set(facts.returns)
    if returns & {"ndarray"}:
        return cut(receiver, NUMPY_CUT, node, NUMPY).evolve(dtype=receiver.dtype)
    if returns & {"list"}:
        return cut(receiver, ITEM, node, LIST)
    if returns & {"float", "int", "bool", "complex"}:
        return cut(receiver, ITEM, node, FLOAT | INT | BOOL)
    return None


_ARGPARSE_OBJECT = Value(OBJECT, grad=NO, leaf=NO, cls="argparse")

# torch.distributed's set-up functions (torch 2.13 annotations: `-> DeviceMesh`, `-> int`): a
# `DeviceMesh` or process group, a rank or world size (torchao test/prototype/blockwise_fp8_training)
_SETUP_RESULTS = {"object": OBJECT_VALUE, "int": INT_VALUE}  # torch_facts.DISTRIBUTED_SETUP's words


def _non_tensor_result(node: ast.Call, facts: torch_facts.OpFacts) -> Value:
    """size(), dim(), numel(), is_contiguous(), data_ptr(), ...: not a tensor."""
    if "size" in facts.returns and not node.args and not node.keywords:
        return SIZE_VALUE
    if "bool" in facts.returns:
        return BOOL_VALUE
    if "int" in facts.returns:
        return INT_VALUE
    return OBJECT_VALUE


def _returns_values_indices(attr: str, args: Arguments, facts: torch_facts.OpFacts) -> bool:
    """`t.max(dim)`, `t.sort()`, ...: a (values, indices) pair (`t.max(other)` is a tensor)."""
    if "values_indices" not in facts.returns:
        return False
    if not (
        facts.returns_values_indices
        or len(args.positional) >= (1 if facts.is_method else 2)
        or "dim" in args.keywords
    ):
        return False
    return not (args.positional and args.positional[-1].is_tensor and attr in ("max", "min"))


def _reachable_saves(callee: Flow, bound: dict[str, Value]) -> dict:
    """What of a callee's saves its caller can reach: saves of the caller's own tensors (on any
    path), and of a returned tensor only where that very tensor is returned after being saved."""
    end = callee.exit_state
    outside_roots = frozenset().union(*(v.roots for v in bound.values())) if bound else frozenset()
    saved = {r: rec for r, rec in (end.saved.items() if end is not None else ()) if r in outside_roots}
    points = list(callee.return_points)
    if callee.final is not None:
        points.append((NONE_VALUE, callee.final))
    for returned, at in points:
        for root in _all_roots(returned) - outside_roots:
            if root in at.saved:
                saved.setdefault(root, at.saved[root])
    return saved


def _all_roots(value: Value, depth: int = 0) -> frozenset:
    roots = value.roots
    if depth < 2:
        for part in (*(value.items or ()), *([value.elem] if value.elem is not None else [])):
            roots = roots | _all_roots(part, depth + 1)
    return roots


def _callee_objects(value: Value, outside: frozenset, call: ast.AST, item_sites: dict) -> dict:
    """Where the objects a callee created and returned live in the caller: the items of a
    returned tuple (`return h, norm_h`) are distinct objects of the call, anything else is
    "the call's result"."""
    mapping: dict = {}
    if value.items is not None:
        for index, item in enumerate(value.items):
            made = _all_roots(item) - outside
            if made:
                site = item_sites.get((call, index))
                if site is None:
                    site = item_sites[(call, index)] = ast.copy_location(ast.Name(id=f"<item {index}>"), call)
                    site.end_lineno, site.end_col_offset = call.end_lineno, call.end_col_offset  # type: ignore[attr-defined]
                for root in made:
                    mapping.setdefault(root, site)
    for root in _all_roots(value) - outside:
        mapping.setdefault(root, call)
    return mapping


def _resite(value: Value, outside: frozenset, call: ast.AST, mapping: dict, depth: int = 0) -> Value:
    """A callee's result as the caller sees it: objects the callee created (their allocation
    sites are nodes of the callee) become objects of the call; the caller's own pass through."""
    if depth > 2:
        return value
    changes: dict = {}
    if value.roots and not value.roots <= outside:
        changes["roots"] = frozenset(r if r in outside else mapping.get(r, call) for r in value.roots)
    if value.sites and not value.sites <= outside:
        changes["sites"] = frozenset(r if r in outside else mapping.get(r, call) for r in value.sites)
    if value.items is not None:
        items = tuple(_resite(item, outside, call, mapping, depth + 1) for item in value.items)
        if any(a is not b for a, b in zip(items, value.items, strict=True)):
            changes["items"] = items
    if value.elem is not None:
        elem = _resite(value.elem, outside, call, mapping, depth + 1)
        if elem is not value.elem:
            changes["elem"] = elem
    return value.evolve(**changes) if changes else value


def _inplace_flag(call: ast.AST | None) -> bool:
    """A layer or functional call made with `inplace=True`."""
    if not isinstance(call, ast.Call):
        return False
    flag = keyword(call, "inplace")
    return isinstance(flag, ast.Constant) and flag.value is True


def _false_flag(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _retains(node: ast.Call) -> bool:
    for kw in node.keywords:
        if kw.arg in ("retain_graph", "create_graph"):
            return not (isinstance(kw.value, ast.Constant) and kw.value.value in (False, None))
        if kw.arg is None:
            return True
    return len(node.args) >= 2 and not (
        isinstance(node.args[1], ast.Constant) and node.args[1].value in (False, None)
    )


def _decorator_name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _is_layer_name(qual: str) -> bool:
    if not qual.startswith("torch.nn.") or qual.count(".") != 2:
        return False
    last = qual.rsplit(".", 1)[1]
    return last[:1].isupper() and last not in ("Parameter", "Buffer", "Module")


_CONTAINER_ANNOTATIONS = {"list": LIST, "List": LIST, "tuple": TUPLE, "Tuple": TUPLE, "Sequence": LIST | TUPLE,
                          "dict": DICT, "Dict": DICT, "Mapping": DICT, "MutableMapping": DICT}  # fmt: skip


def _alias_annotation(annotation: ast.expr | None) -> bool:
    """`data: AtomicDataDict.Type`: an annotation naming another module's attribute (a type alias
    such as `Type = Dict[str, torch.Tensor]`) that does not say tensor: the parameter is not taken
    for the tensor an unannotated `forward` argument is (nequip nn/embedding/node.py)."""
    return (
        isinstance(annotation, ast.Attribute)
        and isinstance(annotation.value, ast.Name)
        and "Tensor" not in annotation.attr
        and annotation.attr != "Any"
    )


def _annotated_container(annotation: ast.expr) -> int | None:
    """The container kind of `list[...]`, `Dict[str, Tensor]`, `Optional[List[Tensor]]`,
    `Sequence[Tensor] | None` (None for anything else, unions of several kinds included)."""
    node = annotation
    if isinstance(node, ast.Subscript) and isinstance(node.value, (ast.Name, ast.Attribute)):
        head = node.value.id if isinstance(node.value, ast.Name) else node.value.attr
        if head == "Optional":
            node = node.slice
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        if isinstance(node.right, ast.Constant) and node.right.value is None:
            node = node.left
        elif isinstance(node.left, ast.Constant) and node.left.value is None:
            node = node.right
    if isinstance(node, ast.Subscript) and isinstance(node.value, (ast.Name, ast.Attribute)):
        head = node.value.id if isinstance(node.value, ast.Name) else node.value.attr
        return _CONTAINER_ANNOTATIONS.get(head)
    return None


def _statement_name(stmt: ast.stmt) -> str:
    """The name `consulted` knows a top-level statement by ("" for the script's statements)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return stmt.name
    return ""


def _local_names(func: ast.AST) -> frozenset[str]:
    """The parameters of `func` and the names it (or a function inside it) assigns."""
    names = getattr(func, "_gg_local_names", None)
    if names is None:
        spec = func.args  # type: ignore[attr-defined]
        every = [*spec.posonlyargs, *spec.args, *spec.kwonlyargs, spec.vararg, spec.kwarg]
        found = {a.arg for a in every if a is not None}
        found.update(n.id for n in walk(func) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load))
        names = func._gg_local_names = frozenset(found)  # type: ignore[attr-defined]
    return names


def _in_caller_names(value: Value, func: ast.AST, bound: dict[str, Value], depth: int = 0) -> Value:
    """A callee's return value as the caller names it: the callee's own variables (`output` in
    `output = self.main(input); return output`) mean nothing in the caller, where the same name
    may hold something else; a parameter stands for the caller's names of its argument."""
    local = _local_names(func)
    names = value.names
    if names and not names.isdisjoint(local):
        kept = names - local
        for name in names & local:
            argument = bound.get(name)
            if argument is not None:
                kept |= argument.names
        value = value.evolve(names=frozenset(kept))
    if value.items and depth < 2:
        items = tuple(_in_caller_names(item, func, bound, depth + 1) for item in value.items)
        if any(a is not b for a, b in zip(items, value.items, strict=True)):
            value = value.evolve(items=items)
    return value


def _script_bound_names(script: list[ast.stmt]) -> frozenset[str]:
    """The names top-level script statements bind (cheaply, by their targets; not inside
    functions or classes)."""
    names: set[str] = set()
    pending: list[ast.AST] = list(script)  # statements and assignment targets
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            pending.extend(node.elts)
        elif isinstance(node, ast.Starred):
            pending.append(node.value)
        elif isinstance(node, ast.Assign):
            pending.extend(node.targets)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            pending.append(node.target)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            pending.append(node.target)
            pending.extend(node.body)
        elif isinstance(node, (ast.If, ast.While, ast.With, ast.AsyncWith, ast.Try)):
            if isinstance(node, (ast.With, ast.AsyncWith)):
                pending.extend(i.optional_vars for i in node.items if i.optional_vars is not None)
            for block in (
                getattr(node, "body", []),
                getattr(node, "orelse", []),
                getattr(node, "finalbody", []),
            ):
                pending.extend(block)
            for handler in getattr(node, "handlers", []):
                pending.extend(handler.body)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
    return frozenset(names)


def _stores_on_self(func: ast.AST) -> bool:
    for node in walk(func):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    return True
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _REGISTERING_CALLS
        ):
            return True
    return False


def _builtin_conversion(node: ast.Call, name: str, args: Arguments, first: Value | None) -> Value | None:
    """`float(x)`, `len`, `range`, `enumerate`, `zip`, `list(...)` and the other containers, `dict(...)`;
    None for another builtin."""
    if name in ("float", "int", "bool", "complex"):
        kind = {"float": FLOAT, "int": INT, "bool": BOOL, "complex": FLOAT}[name]
        if first is not None and (first.kinds & TENSORISH and (first.grad != NO or first.sources)):
            return cut(first, ITEM, node, kind)
        return Value(kind, grad=NO, leaf=NO)
    if name == "len":
        return INT_VALUE
    if name == "range":
        return Value(LIST, grad=NO, leaf=NO, elem=INT_VALUE)
    if name == "enumerate":
        elem = element_of(first) if first is not None else UNKNOWN
        return Value(LIST, grad=NO, leaf=NO, elem=Value(TUPLE, grad=NO, leaf=NO, items=(INT_VALUE, elem)))
    if name == "zip":
        items = tuple(element_of(v) for v in args.positional)
        return Value(LIST, grad=NO, leaf=NO, elem=Value(TUPLE, grad=NO, leaf=NO, items=items))
    if name in _BUILTIN_CONTAINERS:
        if first is None:
            return Value(_BUILTIN_CONTAINERS[name], grad=NO, leaf=NO)
        return Value(_BUILTIN_CONTAINERS[name], grad=NO, leaf=NO, elem=element_of(first),
                     items=first.items if name in ("list", "tuple") else None)  # fmt: skip
    if name == "dict":
        values = list(args.keywords.values())
        return Value(DICT, grad=NO, leaf=NO, elem=join_all(values) if values else None)
    return None


def _builtin_arithmetic(
    flow: Flow, node: ast.Call, name: str, args: Arguments, first: Value | None, state: State
) -> Value | None:
    """`sum`, `min`, `max`, `abs`, `pow`, `round`; None for another builtin."""
    if name == "sum":
        if first is None:
            return INT_VALUE
        elem = element_of(first)
        start = args.get(1, "start")
        if start is not None and start.is_only(LIST | TUPLE) and elem.is_only(LIST | TUPLE):
            # `sum(zip(layers, acts), ())`: the sequences concatenated, their items in one sequence
            parts = [element_of(elem), *([element_of(start)] if start.items or start.elem else [])]
            return Value(start.kinds, grad=NO, leaf=NO, elem=join_all(parts))
        if elem.kinds & TENSORISH and (elem.is_tensor or elem.grad != NO):
            parts = [elem] if start is None else [elem, start]
            return flow._tensor_op("add", node, tuple(parts), state)
        return elem if elem.is_only(NUMBER) else UNKNOWN
    if name in ("min", "max", "abs", "pow", "round"):
        values = args.all() if len(args.positional) > 1 else [element_of(first) if first else UNKNOWN]
        if name in ("abs", "round", "pow"):
            values = args.positional[:1]
        result = join_all(values) if values else UNKNOWN
        if name == "round" and result.is_tensor:
            return cut(result, ZERO_GRAD, node, TENSOR)
        return result
    return None


# `TensorDataset(x, y)` and a `DataLoader` over one: what an item / a batch holds (`cls` says which)
TENSOR_DATASET = "torch.utils.data.TensorDataset"
DATA_LOADER = "torch.utils.data.DataLoader"
TENSOR_DATA = {
    TENSOR_DATASET: TENSOR_DATASET,
    "torch.utils.data.dataset.TensorDataset": TENSOR_DATASET,
    DATA_LOADER: DATA_LOADER,
    "torch.utils.data.dataloader.DataLoader": DATA_LOADER,
}


def tensor_data(qual: str, node: ast.Call, args: Arguments) -> Value:
    """`TensorDataset(x, y)`: an object whose items (`ds[i]`, iterating) are the tuples of rows
    `(x[i], y[i])`; `DataLoader(ds, ...)` over one (default collation): the tuples of batches,
    `x`'s rows stacked (same dtype, a leading batch dimension of unknown size; the rows themselves
    with `batch_size=None`). Anything else (a `collate_fn`, another dataset) is an unknown object."""
    if TENSOR_DATA[qual] == TENSOR_DATASET:
        if node.keywords or not args.positional or any(isinstance(a, ast.Starred) for a in node.args):
            return OBJECT_VALUE
        if not all(t.is_tensor for t in args.positional):
            return OBJECT_VALUE
        row = Value(TUPLE, grad=NO, leaf=NO, items=tuple(element_of(t) for t in args.positional))
        return Value(OBJECT, grad=NO, leaf=NO, cls=TENSOR_DATASET, elem=row)
    dataset = args.get(0, "dataset")
    if (
        dataset is None
        or dataset.cls != TENSOR_DATASET
        or dataset.elem is None
        or dataset.elem.items is None
        or any(isinstance(a, ast.Starred) for a in node.args)
        or any(k.arg is None or k.arg == "collate_fn" for k in node.keywords)
        or len(node.args) > 6  # the seventh is collate_fn
    ):
        return OBJECT_VALUE
    size = args.node_of(1, "batch_size")
    rows = dataset.elem.items
    if not (isinstance(size, ast.Constant) and size.value is None):
        rows = tuple(_batched(row) for row in rows)
    batch = Value(TUPLE, grad=NO, leaf=NO, items=tuple(r.evolve(names=frozenset()) for r in rows))
    return Value(OBJECT, grad=NO, leaf=NO, cls=DATA_LOADER, elem=batch)


def _batched(row: Value) -> Value:
    """Rows stacked by the default collation: a new tensor, one more (leading) dimension."""
    shape = row.shape
    if isinstance(shape, Shape):
        shape = Shape([UNKNOWN_DIM, *shape.dims]) if shape.exact else None
    return row.evolve(shape=shape, sites=frozenset(), roots=frozenset())


def _overridden_stub(func: ast.AST) -> bool:
    """A method subclasses override: `@abstractmethod`, or a body that is only a docstring, `pass`,
    `...` or `raise NotImplementedError` (torch-uncertainty's `Scaler._scale`). Its own body says
    nothing of what a call on `self` returns."""
    if isinstance(func, ast.Lambda):
        return False
    for deco in func.decorator_list:  # type: ignore[attr-defined]
        if (deco.id if isinstance(deco, ast.Name) else getattr(deco, "attr", "")) == "abstractmethod":
            return True
    for stmt in func.body:  # type: ignore[attr-defined]
        if isinstance(stmt, ast.Pass) or (
            isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        ):
            continue
        if isinstance(stmt, ast.Raise) and stmt.exc is not None:
            exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                continue
        return False
    return True


__all__ = [
    "BACKWARD",
    "ClassInfo",
    "Semantics",
    "value_key",
]
_ = (CALLABLE, CONTAINER, FUNCTION_CLASS, NOTHING, PARAMETER, INPLACE, NONDIFF, NONE)


def _name_registered_on_self(node: ast.AST) -> str | None:
    """`"name"` in `self.add_state("name", ...)` (a method call on `self` whose first argument is a
    string) or in `setattr(self, "name", value)`."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func, args = node.func, node.args
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self":
        first = args[0]
    elif isinstance(func, ast.Name) and func.id == "setattr" and len(args) == 3 and _is_self(args[0]):
        first = args[1]
    else:
        return None
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"
