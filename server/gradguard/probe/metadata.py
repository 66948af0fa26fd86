"""Metadata of the probe's finding codes (GG901-GG903).

They are not static rules (nothing in `gradguard.rules` can produce them): plain `CodeInfo`,
listed in `CODES`, which the catalog (`gradguard.engine.catalog`) reads by module name so that
`gradguard explain`, hover and the docs treat them like rules.
"""

from __future__ import annotations

import textwrap

from gradguard.engine.finding import Severity
from gradguard.engine.rule import CodeInfo

_COMMENT_HELP = """
### Telling the probe how to build the target

The probe builds the target from, in this order: a comment on the line(s) just above
the class, its use elsewhere in the file (`Net(20, 5)`, `model(torch.randn(4, 20))`,
also inside `if __name__ == "__main__":`), the constructor's defaults, and the first
layer of `forward` (`nn.Linear.in_features`, `nn.Conv2d.in_channels`, `nn.Embedding`
gets integer indices; a module without layers, its first parameter's shape). An
inferred input is named in the probe's output, and when it does not fit `forward`
the probe says so instead of reporting an error. When none of these is enough it
says what it needs. The comment form (anywhere in the file when it names the class):

```python
# gradguard: probe Net(20, 5) input=(4, 20)
class Net(nn.Module):
    ...
```

`input=(4, 20)` is one float tensor of that shape; `input=[(4, 20), (4, 3)]` passes
two; `input=long(4, 10, high=100)` passes integer indices below `high`; a number
(`input=[(3, 3), 0.5]`) is passed as it is; any other expression
(`input=torch.randn(2, 3, 8, 8)`) is evaluated in the file's namespace.
"""


_TRUST_NOTE = """
### The probe executes your code; it is not a security sandbox

The probe runs your file's definitions (imports, classes, functions, module-level
assignments; not its `if __name__ == "__main__":` block, loops or top-level calls)
and each target's constructor, forward and backward, with torch, as you. It is not a
security sandbox: that code can read and write your files, and code that wants to
can fake its results (it runs in the same process that reports them). Probe only
code you would run yourself; in VS Code the probe is off in untrusted workspaces.

What it does to contain accidents: a time limit and a memory limit; a private
temporary working directory whose entries link to the file's folder (relative paths
such as `open("data.csv")` still find your files; files the code creates stay
there), with the folder on `sys.path`; an environment stripped to what Python and
torch need (`PATH`, `HOME`, locale, `PYTHONPATH`, virtualenv/conda, library paths,
`OMP_*`, `MKL_*`, `TORCH_*`...). On Linux, where unprivileged user namespaces are
available, the run has no network (its own network namespace, loopback only) and its
own PID namespace: nothing it starts outlives it, not even after `setsid` or a double
fork. Without namespaces (or with `GRADGUARD_PROBE_NAMESPACES=0`) the network stays
reachable; on Linux a supervisor then kills every process below it, on other systems
only the probe's process group is killed. `gradguard probe` prints what applied
("Probe isolation: ...").
"""


NoGradient = CodeInfo(
    code="GG901",
    name="no-gradient",
    summary="A parameter gets no gradient (`.grad` is None or all zeros) after a real forward and backward.",
    message="Parameter gets no gradient",
    why=(
        "A parameter whose `.grad` is still `None` or all zeros after a real backward never learns: "
        "an optimizer skips it or leaves it unchanged."
    ),
    severity=Severity.WARNING,
    explanation=(
        textwrap.dedent(
            """
    The probe builds the module, runs one small seeded forward pass on CPU, reduces
    every floating-point output to a scalar with fixed random weights (so that a
    softmax or normalised output does not cancel out) and calls `backward()`. A
    parameter whose `.grad` is still `None` afterwards is not connected to the
    output: the layer is never called in `forward`, its result is thrown away, or the
    path is cut by `.detach()`, `.data`, code under `torch.no_grad()`, `.item()` /
    `.tolist()`, or an operation that has no gradient (a comparison such as
    `x > self.threshold`, `argmax`, a cast to an integer type). A `.grad` of all zeros
    (confirmed with two more inputs) means the parameter is in the graph but its
    gradient is always zero, for example because it only passes through a ReLU that
    is never active.

    Such a parameter never learns: an optimizer skips parameters whose `.grad` is
    `None`, and a zero gradient leaves it unchanged (except for weight decay). The
    finding is placed where the parameter or its layer is defined; when the probe
    saw where the path is cut, the message names that line.

    Parameters with `requires_grad=False` (frozen on purpose) are not reported, nor
    are layers that `forward` does not use but another method of the class does. A
    layer that `forward` runs under `torch.no_grad()` (a teacher or target network)
    is reported as information only.
    """
        )
        + _COMMENT_HELP
        + _TRUST_NOTE
    ),
)


ProbeError = CodeInfo(
    code="GG902",
    name="probe-error",
    summary="Building the target, its forward pass or its backward pass raised an exception.",
    message="The probe's run raised an exception",
    why=(
        "The probe ran the code with torch and it raised; the finding is on the deepest line of your "
        "file in the traceback."
    ),
    severity=Severity.ERROR,
    explanation=(
        textwrap.dedent(
            """
    The probe ran the code with torch and it failed. The finding is placed on the
    deepest line of *your* file in the traceback, with PyTorch's own message. For
    errors raised during `backward()` ("one of the variables needed for gradient
    computation has been modified by an inplace operation"), the probe runs the same
    step again under `torch.autograd.detect_anomaly()` and points at the forward
    operation whose saved result was later modified in place.

    Each `nn.Module` is first built and run (forward and backward) on the `meta`
    device, which computes shapes but no values and allocates nothing. A shape error
    found there is reported on your line right away ("found on the meta device"; the
    meta kernels word some errors differently from the CPU ones, e.g. "a and b must
    have same reduction dim" for a matrix product), and a model whose parameters would
    not fit in the memory limit is sized there without allocating it. Code the meta
    device cannot run (`.item()`, `.numpy()`, data-dependent shapes, ops without a
    meta kernel) is not an error: the probe then simply runs the CPU pass. So the
    constructor usually runs twice, once on meta and once on CPU.

    The same code is used, with severity "information", when the probe could not run
    at all: it could not tell how to construct the target or what input to give it
    (the message says exactly what it needs and how to write the comment), the run
    exceeded the time or memory limit, or the process died.

    The probe runs in a separate process with a time limit (default 20 s) and an
    address-space limit (default 4 GB, at least 768 MB: importing torch 2.13 alone
    needs about 0.5 GB of address space), and in the editor only in trusted
    workspaces. Your file's definitions run (imports, classes, functions, constants),
    its script part does not: no `if __name__ == "__main__":` block, no top-level
    calls or loops.
    """
        )
        + _COMMENT_HELP
        + _TRUST_NOTE
    ),
)


GradcheckMismatch = CodeInfo(
    code="GG903",
    name="gradcheck-mismatch",
    summary="A custom `torch.autograd.Function`'s backward disagrees with finite differences.",
    message="backward() does not match the numerical gradient",
    why=(
        "Your `backward` disagrees with `torch.autograd.gradcheck`'s finite differences in float64, so "
        "training uses wrong gradients for that input."
    ),
    # silent wrong gradients; the report raises it to an error where PyTorch itself raises
    # (a wrong number or shape of gradients)
    severity=Severity.WARNING,
    explanation=(
        textwrap.dedent(
            """
    For every `torch.autograd.Function` subclass, the probe runs
    `torch.autograd.gradcheck` in float64 on small random inputs (shape (3, 3) for
    each tensor argument unless the file or a probe comment says otherwise). When the
    analytical gradient (your `backward`) differs from the finite-difference one, the
    finding names the input whose gradient is wrong and the largest absolute error,
    and is placed on that input's entry in `backward`'s `return` statement.

    A `backward` that returns the wrong number of gradients, or a gradient of the
    wrong shape, is reported the same way (PyTorch raises "returned an incorrect
    number of gradients" / "returned an invalid gradient at index N").

    Two kinds of Function are deliberately not differentiable and are not reported:
    straight-through estimators (forward is piecewise constant, like `round` or
    `sign`, so finite differences are zero) and gradient reversal/scaling layers
    (forward returns its input unchanged and backward changes the gradient).
    """
        )
        + _COMMENT_HELP
        + _TRUST_NOTE
    ),
)


CODES: tuple[CodeInfo, ...] = (NoGradient, ProbeError, GradcheckMismatch)
PROBE_CODES: dict[str, CodeInfo] = {info.code: info for info in CODES}
