"""The probe's meta pass measures the shape of every tensor `forward` binds to a name, per line, and
the editor uses those shapes (marked as measured) instead of the inferred ones."""

from __future__ import annotations

import ast

import pytest
from gradguard.engine.shape_view import Measured, ShapeView
from gradguard.engine.source import SourceFile
from gradguard.lsp import probe_features

from .conftest import run_probes

pytestmark = pytest.mark.torch

TEXT = """\
import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        h = self.fc(x)
        return torch.relu(h)


# gradguard: probe Net(16) input=(4, 3, 8)
class Net(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Linear(8, dim)
        self.blocks = nn.ModuleList([Block(dim), Block(dim)])

    def forward(self, x):
        y = self.proj(x)
        for block in self.blocks:
            y = block(y)
        pooled = y.mean(
            dim=1,
        )
        return pooled
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("shapes") / "net.py"
    path.write_text(TEXT)
    return run_probes({"net": (TEXT, str(path))})["net"]


def test_meta_pass_records_shapes_per_line(report):
    note = next(n for n in report.notes if n.name == "Net")
    rows = {(line, name): (dims, dtype) for line, name, dims, dtype in note.shapes}
    assert rows[(23, "y")] == ([4, 3, 16], "float32")
    assert rows[(11, "h")] == ([4, 3, 16], "float32")  # inside the sub-module's forward
    assert rows[(25, "y")] == ([4, 3, 16], "float32")
    # a statement over several lines is recorded on one of its lines
    assert any(
        name == "pooled" and 26 <= line <= 28 and dims == [4, 16] for (line, name), (dims, _) in rows.items()
    )
    assert not any(name == "self" for _, name in rows)


def test_measured_shapes_follow_their_class_and_reach_the_hints(report):
    state = probe_features.ProbeState()
    src = probe_features.ProbeSource("file:///net.py", TEXT, "/net.py")
    probe_features._store_results(state, src, None, report.findings, report.notes)

    class Editor:  # the language server, as measured_shapes sees it
        def __init__(self, text):
            self.text = text

        def get_document_text(self, uri):
            return self.text

    measured = probe_features.measured_shapes(Editor(TEXT), state, "file:///net.py")
    assert measured[(23, "y")] == ((4, 3, 16), "float32")
    view = ShapeView(ast.parse(TEXT), SourceFile(TEXT), {k: Measured(*v) for k, v in measured.items()})
    hints = {h.line: h for h in view.inlay_hints(1, 40, "forward")}
    assert hints[23].measured and hints[23].label == ": [4, 3, 16]"
    # two lines inserted above: the shapes move with their class
    moved = "# a comment\n# another\n" + TEXT
    assert probe_features.measured_shapes(Editor(moved), state, "file:///net.py")[(25, "y")] == (
        (4, 3, 16),
        "float32",
    )
    # the class changed: what was measured no longer holds
    edited = TEXT.replace("return pooled", "return pooled * 2")
    assert (23, "y") not in probe_features.measured_shapes(Editor(edited), state, "file:///net.py")
