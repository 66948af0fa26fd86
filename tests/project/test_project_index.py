"""The project index on its own: summaries, resolution, kinds, the import graph."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.index import ModuleContext
from gradguard.engine.project import (
    KIND_FUNCTION,
    KIND_MODULE,
    KIND_OPTIMIZER,
    KIND_OTHER,
    KIND_SCHEDULER,
    KIND_UNKNOWN,
    ClassRef,
    ModuleRef,
    Unknown,
    build_project,
    scan_source,
    summarize_source,
)
from gradguard.engine.source import SourceFile

ROOT = Path(__file__).resolve().parents[2]


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


# -- summaries ---------------------------------------------------------------------------------
TRICKY = textwrap.dedent(
    '''
    """Module docstring with code at column 0:
    class Fake(nn.Module):
    import os
    from x import y
    """
    from __future__ import annotations
    import os, sys as system
    import a.b.c
    import a.b as ab
    from . import sibling
    from ..pkg.mod import (
        One,  # a comment
        Two as Deux,
    )
    from m import *
    try:
        from fast import Impl
    except ImportError:
        Impl = None
    if TYPE_CHECKING:
        from typing import Any
    else:
        Any = object
    __all__ = ["One", "Net"]
    __all__ += ["Deux"]
    __all__.append("extra")
    X = Y = os.path
    Z: int = 3
    p, q = 1, 2
    Alias = One


    @decorator
    class Net(Base, mixins.Mixin, Generic[T], metaclass=Meta):
        """Doc."""

        def backward(self, grad):
            return grad

        class Inner:
            def backward(self):
                pass


    class Multi(
        A,  # first
        B,
    ):
        pass


    class Plain: pass


    async def fetch():
        opt.zero_grad()


    def train(model):
        s = """
    def not_a_function():
    """
        loss.backward()
        optimizer.step()

    # a trailing comment that mentions clip_grad
    '''
)


def test_scanner_agrees_with_the_parser_on_tricky_code() -> None:
    fast = scan_source(TRICKY)
    slow = summarize_source(TRICKY)
    assert fast is not None and slow is not None
    assert fast.fast and not slow.fast
    assert fast.names == slow.names
    assert fast.digest == slow.digest
    names = slow.names
    assert names["Net"].bases == ("Base", "mixins.Mixin", "Generic") and names["Net"].defines_backward
    assert names["Multi"].bases == ("A", "B") and not names["Multi"].defines_backward
    assert "Fake" not in names  # inside the docstring
    assert names["Impl"].kind == "import"  # the except branch's `Impl = None` keeps the import
    assert names["Deux"].module == "pkg.mod" and names["Deux"].level == 2 and names["Deux"].name == "Two"
    assert names["ab"].module == "a.b" and names["a"].module == "a"
    assert names["Alias"].alias == "One" and names["X"].alias == "os.path"
    assert names["train"].calls == frozenset({"backward", "step"})
    assert names["fetch"].calls == frozenset({"zero_grad"})
    assert slow.all == ("One", "Net", "Deux", "extra")
    assert slow.stars == (("m", 0),)


def test_scanner_agrees_with_the_parser_on_the_projects_own_sources() -> None:
    files = sorted((ROOT / "server").rglob("*.py")) + sorted((ROOT / "tests").rglob("*.py"))
    assert len(files) > 100
    for path in files:
        text = path.read_text()
        fast, slow = scan_source(text, str(path)), summarize_source(text, str(path))
        if slow is None:
            continue
        assert fast is not None and fast.names == slow.names and fast.digest == slow.digest, path


def test_scanner_falls_back_on_what_it_cannot_read() -> None:
    text = "X = dict(\na=1,\n)\nclass A(B): pass\n"
    summary = scan_source(text)
    assert summary is not None and not summary.fast  # a column-0 continuation: full parse
    assert set(summary.names) == {"X", "A"}
    # a file that does not parse (an editor buffer mid-edit) still shows its top level
    assert summarize_source("def broken(:\n") is None
    broken = scan_source("import torch\n\ndef broken(:\n    pass\n")
    assert broken is not None and set(broken.names) == {"torch", "broken"}


# -- resolution ----------------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "pkg/__init__.py": """
                from .layers import Block as Block
                from .layers import *
                from . import heads
            """,
            "pkg/layers.py": """
                import torch
                from torch import nn

                __all__ = ["Block", "Wide"]

                class Block(nn.Module):
                    pass

                class Wide(Block):
                    pass

                class _Private(nn.Module):
                    pass

                class Hidden(nn.Module):
                    pass
            """,
            "pkg/heads/__init__.py": "",
            "pkg/heads/linear.py": """
                from ..layers import Block

                class Head(Block):
                    pass
            """,
            "pkg/optim.py": """
                import torch

                class MyOpt(torch.optim.Optimizer):
                    pass

                class Warmup(torch.optim.lr_scheduler.LambdaLR):
                    pass

                class Clip(torch.autograd.Function):
                    pass

                class Config:
                    pass

                Dynamic = make_class()

                class Built(Dynamic):
                    pass
            """,
            "app.py": """
                import pkg.heads.linear as hl
                from pkg import *
                from pkg.optim import MyOpt
            """,
        },
    )
    return tmp_path


def test_relative_imports_re_exports_and_submodules(project: Path) -> None:
    index = build_project([project])
    app = index.for_file(project / "app.py")
    assert index.module_name(project / "pkg/heads/linear.py") == "pkg.heads.linear"
    assert index.for_file(project / "pkg/heads/linear.py").absolute("layers", 2) == "pkg.layers"
    assert index.for_file(project / "pkg/__init__.py").absolute(None, 1) == "pkg"
    assert app.resolve("pkg.Block") == ClassRef("pkg.layers", "Block", True)
    assert app.resolve("pkg.heads") == ModuleRef("pkg.heads", True)
    assert app.class_facts("pkg.heads.linear.Head").kind == KIND_MODULE
    assert app.class_facts("pkg.Wide").kind == KIND_MODULE  # through the star import


def test_star_imports_follow_all(project: Path) -> None:
    index = build_project([project])
    exports = dict(index.for_file(project / "app.py").star_exports("pkg.layers"))
    assert set(exports) == {"Block", "Wide"}  # __all__: no Hidden, no _Private, no torch
    pkg = dict(index.for_file(project / "app.py").star_exports("pkg"))
    assert {"Block", "Wide", "heads"} <= set(pkg) and "Hidden" not in pkg
    assert pkg["heads"] == "pkg.heads"


def test_kinds_down_to_the_torch_roots(project: Path) -> None:
    index = build_project([project])
    facts = index.for_file(project / "app.py").class_facts
    assert facts("pkg.optim.MyOpt").kind == KIND_OPTIMIZER
    assert facts("pkg.optim.Warmup").kind == KIND_SCHEDULER  # LambdaLR read from torch's source
    assert facts("pkg.optim.Clip").kind == KIND_FUNCTION
    assert facts("pkg.optim.Config").kind == KIND_OTHER
    assert facts("pkg.optim.Built").kind == KIND_UNKNOWN  # a base made at run time
    assert facts("torch.nn.modules.conv.Conv2d").kind == KIND_MODULE
    assert facts("torch.nn.TransformerEncoderLayer").kind == KIND_MODULE
    assert facts("torch.utils.data.Dataset").kind == KIND_OTHER
    assert facts("torch.optim.AdamW").kind == KIND_OPTIMIZER


def test_import_a_b_as_c_in_the_engine(project: Path) -> None:
    index = build_project([project])
    text = "import pkg.heads.linear as hl\n\n\nclass Net(hl.Head):\n    pass\n"
    tree = ast.parse(text)
    module = ModuleContext(tree, SourceFile(text), index.for_file(project / "app.py"))
    assert module.is_module_class("Net")
    call = ast.parse("hl.Head()").body[0].value
    assert module.is_layer_constructor(call)


def test_compiled_and_missing_modules_are_unknown(tmp_path: Path) -> None:
    write(tmp_path, {"m.py": "from fast import Base\n\nclass A(Base):\n    pass\n"})
    (tmp_path / "fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    index = build_project([tmp_path], search_paths=[])
    resolver = index.for_file(tmp_path / "m.py")
    assert isinstance(resolver.resolve("fast.Base"), Unknown)
    assert resolver.resolve("nowhere.Thing") is None
    assert resolver.class_facts("m.A").kind == KIND_UNKNOWN
    assert resolver.class_facts("nowhere.Thing").kind == KIND_UNKNOWN


def test_import_cycles_terminate(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.py": "from b import *\nfrom b import X\nclass A(X):\n    pass\nY = X\n",
            "b.py": "from a import *\nfrom a import Y as X\nclass B(A):\n    pass\n",
            "c.py": "from c import C\nclass C(C):\n    pass\n",
        },
    )
    start = time.perf_counter()
    index = build_project([tmp_path], search_paths=[])
    resolver = index.for_file(tmp_path / "a.py")
    resolver.resolve("a.X")  # a value of unknown origin: it terminates
    assert resolver.class_facts("a.A").kind == KIND_UNKNOWN
    assert resolver.class_facts("b.B").kind == KIND_UNKNOWN
    assert resolver.class_facts("c.C").kind == KIND_UNKNOWN
    index.warm()
    assert index.dependents(tmp_path / "a.py") == {str((tmp_path / "b.py").resolve())}
    assert index.dependencies(tmp_path / "a.py") == {str((tmp_path / "b.py").resolve())}
    for path in ("a.py", "b.py", "c.py"):
        text = (tmp_path / path).read_text()
        Analyzer(project=index).check(text, str(tmp_path / path))
    assert time.perf_counter() - start < 10


def test_dependents_are_transitive_and_updates_are_incremental(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "base.py": "import torch.nn as nn\nclass Base(nn.Module):\n    pass\n",
            "model.py": "from base import Base\nclass Net(Base):\n    pass\n",
            "train.py": "from model import Net\nnet = Net()\n",
            "other.py": "import os\n",
        },
    )
    index = build_project([tmp_path])
    base, model, train = (str((tmp_path / n).resolve()) for n in ("base.py", "model.py", "train.py"))
    assert index.dependents(base) == {model, train}
    assert index.dependents(base, transitive=False) == {model}
    before = index.for_file(train).signature
    assert not index.refresh(base)  # same size and mtime: nothing read
    time.sleep(0.01)
    Path(base).write_text("class Base:\n    pass\n")
    os.utime(base, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert index.refresh(base)
    assert index.for_file(train).signature != before  # train.py's findings may rest on base.py
    assert index.for_file(model).class_facts("model.Net").kind == KIND_OTHER
    assert not index.update(str(tmp_path / "other.py"), "import os\n")


def test_notebooks_are_indexed_from_their_code_cells(tmp_path: Path) -> None:
    write(tmp_path, {"model.py": "import torch.nn as nn\nclass Net(nn.Module):\n    pass\n"})
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": ["# from model import Nothing\n"]},
            {
                "cell_type": "code",
                "source": ["%matplotlib inline\n", "from model import Net\n", "net = Net()\n"],
            },
            {"cell_type": "code", "source": "def step(opt):\n    opt.zero_grad()\n"},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "explore.ipynb").write_text(json.dumps(notebook))
    index = build_project([tmp_path])
    index.add_file(tmp_path / "explore.ipynb")
    entry = index.file(tmp_path / "explore.ipynb")
    assert entry is not None and entry.notebook
    assert set(entry.summary.names) == {"Net", "net", "step"}
    assert entry.summary.names["step"].calls == frozenset({"zero_grad", "step"})  # its name too
    assert index.dependents(tmp_path / "model.py") == {str((tmp_path / "explore.ipynb").resolve())}


# -- installed packages ------------------------------------------------------------------------------
def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.mark.skipif(not _installed("lightning"), reason="lightning's sources are installed by scripts/setup")
def test_lightning_backward_hook_comes_from_lightnings_source(tmp_path: Path) -> None:
    text = "import lightning as L\n\n\nclass Lit(L.LightningModule):\n    def backward(self, loss):\n        pass\n"
    write(tmp_path, {"lit.py": text})
    index = build_project([tmp_path])
    resolver = index.for_file(tmp_path / "lit.py")
    facts = resolver.class_facts("lightning.LightningModule")
    assert facts.kind == KIND_MODULE
    assert facts.backward_hook == "lightning.pytorch.core.module.LightningModule"
    assert facts.display_kind == "lightning-module"
    module = ModuleContext(ast.parse(text), SourceFile(text), resolver)
    summary = module.classes["Lit"]
    assert summary.kind == KIND_MODULE
    # the source's own class, not the fallback name table (which would give the name as written)
    assert summary.backward_hook == "lightning.pytorch.core.module.LightningModule"
    assert Analyzer(project=index).check(text, str(tmp_path / "lit.py")).findings == []
    # LightningDataModule is no module
    assert resolver.class_facts("lightning.LightningDataModule").kind == KIND_OTHER


@pytest.mark.skipif(not _installed("transformers"), reason="transformers is installed by scripts/setup")
def test_transformers_is_read_lazily_and_never_imported(tmp_path: Path) -> None:
    """Resolving `PreTrainedModel` reads a handful of transformers' files out of ~3,000,
    and nothing is imported."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT / "server")!r})
        from gradguard.engine.project import ProjectIndex
        index = ProjectIndex([])
        facts = index.class_facts("transformers.PreTrainedModel")
        bert = index.class_facts("transformers.models.bert.modeling_bert.BertModel")
        read = [p for p in index._external if "transformers" in p]
        print(facts.kind, bert.kind, len(read), "transformers" in sys.modules, "torch" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    kind, bert, read, imported, torch_imported = out.stdout.split()
    assert (kind, bert) == (KIND_MODULE, KIND_MODULE)
    assert 0 < int(read) < 40
    assert imported == "False" and torch_imported == "False"


def test_index_files_in_worker_processes_gives_the_same_index(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": "from .m0 import C0\n"}
    for i in range(300):
        base = f"C{i - 1}" if i else "nn.Module"
        imports = "import torch.nn as nn\n" + (f"from .m{i - 1} import C{i - 1}\n" if i else "")
        files[f"pkg/m{i}.py"] = (
            f"{imports}\n\nclass C{i}({base}):\n    def step(self):\n        self.zero_grad()\n"
        )
    write(tmp_path, files)
    serial = build_project([tmp_path / "pkg"])
    parallel = build_project([tmp_path / "pkg"], jobs=2)
    assert set(serial.files) == set(parallel.files) and len(serial.files) == 301
    for path, entry in serial.files.items():
        assert parallel.files[path].summary.names == entry.summary.names
        assert parallel.files[path].module == entry.module
    resolver = parallel.for_file(tmp_path / "pkg" / "m299.py")
    assert resolver.class_facts("pkg.m299.C299").kind == KIND_MODULE  # 300 bases deep
    assert len(parallel.dependents(tmp_path / "pkg" / "m0.py")) == 300


def test_absurdly_deep_chains_do_not_crash(tmp_path: Path) -> None:
    files = {"m0.py": "import torch.nn as nn\n\n\nclass C0(nn.Module):\n    pass\n"}
    for i in range(1, 1500):
        files[f"m{i}.py"] = f"from m{i - 1} import C{i - 1}\n\n\nclass C{i}(C{i - 1}):\n    pass\n"
    write(tmp_path, files)
    index = build_project([tmp_path], search_paths=[])
    facts = index.for_file(tmp_path / "m1499.py").class_facts("m1499.C1499")
    assert facts.kind in (KIND_MODULE, KIND_UNKNOWN)
    text = (tmp_path / "m1499.py").read_text() + "    def backward(self, g):\n        return g\n"
    Analyzer(project=index).check(text, str(tmp_path / "m1499.py"))  # no exception


def test_editor_buffers_mid_edit_keep_their_facts(tmp_path: Path) -> None:
    write(tmp_path, {"base.py": "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n"})
    index = build_project([tmp_path])
    base = tmp_path / "base.py"
    facts = index.for_file(base).class_facts
    assert facts("base.Base").kind == KIND_MODULE
    # a half-typed method: the file does not parse, the class header is still read
    broken = "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    def forward(self, x\n"
    assert not index.update(base, broken)
    assert index.for_file(base).class_facts("base.Base").kind == KIND_MODULE
    # a tree from the caller is used as is
    text = "class Base:\n    pass\n"
    assert index.update(base, text, tree=ast.parse(text))
    assert index.for_file(base).class_facts("base.Base").kind == KIND_OTHER
    # nothing readable at all: the previous facts stay
    assert not index.update(base, "class Base(:\n")
    assert index.for_file(base).class_facts("base.Base").kind == KIND_OTHER


def test_editor_updates_keep_the_import_graph_right(tmp_path: Path) -> None:
    """An update of one file's summary re-reads only that file's imports for the graph
    (the others' edges are kept); lines moving are no change for the files importing it."""
    write(
        tmp_path,
        {
            "base.py": "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n",
            "model.py": "from base import Base\n\n\nclass Net(Base):\n    pass\n",
            "train.py": "from model import Net\n",
        },
    )
    index = build_project([tmp_path])
    base, model, train = (str((tmp_path / n).resolve()) for n in ("base.py", "model.py", "train.py"))
    assert index.dependents(base) == {model, train}
    before = index.for_file(train).signature
    # a line added above the class: the same facts
    assert not index.update(base, "\nimport torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n")
    assert index.for_file(train).signature == before
    # model.py stops importing base.py, then imports it again
    assert index.update(model, "class Net:\n    pass\n")
    assert index.dependents(base) == set() and index.dependents(model) == {train}
    assert index.update(model, "from base import Base\n\n\nclass Net(Base):\n    pass\n")
    assert index.dependents(base) == {model, train}
    assert index.for_file(train).class_facts("model.Net").kind == KIND_MODULE
    # two updates before the graph is asked for
    assert index.update(model, "class Net:\n    pass\n")
    assert index.update(train, "from base import Base\n")
    assert index.dependents(base) == {train} and index.dependents(model) == set()


def test_what_a_class_stores_under_parameter_names() -> None:
    """`class_tensor_stores`: buffers, factory tensors, None, parameters, anything else; and a
    store under a name the text does not spell."""
    from gradguard.engine.holdings import class_tensor_stores, stored_tensor_kind

    text = (
        "class Q(nn.Module):\n    def __init__(self, w):\n        super().__init__()\n"
        '        self.register_buffer("bias", t.zeros(3))\n        self.bias_scale = torch.ones(3)\n'
        "        self.weight = None\n        self.weight = w\n        self.weight_g = nn.Parameter(w)\n"
        "        self.weight_v = torch.zeros(3, requires_grad=True)\n        self.scales = torch.ones(3)\n"
        "    def to_half(self):\n        self.bias = self.bias.to(torch.float16).contiguous()\n"
        "        self.weight_g = self.weight_g.detach().requires_grad_()\n"
    )
    assert class_tensor_stores(text) == (
        "?:weight",
        "?:weight_g",
        "?:weight_v",
        "b:bias",
        "n:weight",
        "p:weight_g",
        "s:bias",
        "t:bias_scale",
    )
    assert class_tensor_stores(text + "        setattr(self, name, w)\n")[0] == "?:*"
    assert stored_tensor_kind(["b", "n", "s"]) == "buffer"
    assert stored_tensor_kind(["s"]) is None
    assert stored_tensor_kind(["t", "b"]) == "tensor"
    assert stored_tensor_kind(["n"]) is None
    assert stored_tensor_kind(["b", "p"]) is None
    assert stored_tensor_kind([]) is None
