"""Shapes in the editor: the hover line of a tensor/module/int, the inlay hints after assignments, the
`inlayHints.shapes` setting, and the shapes the probe measured (engine-level and through a real server)."""

from __future__ import annotations

import ast
import textwrap

import pytest
import pytest_lsp
from gradguard.engine.shape_view import Measured, ShapeView
from gradguard.engine.source import SourceFile
from gradguard.lsp.settings import parse_settings
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import SERVER_COMMAND, initialize_in_folder, make_client, server_env, wait_published

NET = textwrap.dedent(
    """\
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 6, 5)
            self.fc = nn.Linear(6 * 12 * 12, 10)

        def forward(self, x):
            h = torch.sigmoid(self.conv(x))
            h = F.max_pool2d(h, 2)
            flat = torch.flatten(h, 1)
            return self.fc(flat)


    def helper(x):
        y = x * 2
        return y


    model = Net()
    images = torch.randn(8, 1, 28, 28)
    for step in range(3):
        logits = model(images)
        loss = logits.sum()
        loss.backward()
    """
)


def view(text: str = NET, measured: dict | None = None) -> ShapeView:
    return ShapeView(ast.parse(text), SourceFile(text, "net.py"), measured)


def column_of(text: str, line: int, word: str) -> int:
    return text.splitlines()[line - 1].index(word)


# -- engine ---------------------------------------------------------------------------------------
def test_hover_on_a_tensor_shows_shape_dtype_gradient_and_what_saved_it():
    hover = view().hover(13, column_of(NET, 13, "h"))
    # the script's call gives the shapes; sigmoid saves its output for backward
    assert hover == "Tensor[8, 6, 24, 24] float32 · requires grad · saved by sigmoid (line 13)"
    assert view().hover(15, column_of(NET, 15, "flat")).startswith("Tensor[8, 864] float32")


def test_hover_on_a_module_attribute_shows_the_layer_and_its_parameters():
    hover = view().hover(16, column_of(NET, 16, "fc") + 1)
    assert hover == "nn.Linear(in_features=864, out_features=10) · 8,650 parameters"
    assert view().hover(9, column_of(NET, 9, "conv") + 1) == (
        "nn.Conv2d(in_channels=1, out_channels=6, kernel_size=5) · 156 parameters"
    )


def test_hover_without_a_context_uses_symbols_and_leaves_unknown_parts_out():
    text = textwrap.dedent(
        """\
        import torch


        def attend(q, k):
            b, t, d = q.shape
            scores = q.transpose(1, 2) * k
            return scores
        """
    )
    shapes = view(text)
    # nothing is known of `k`: the product's sizes would hold only if the product succeeds, and a
    # later op must not be reported on sizes learned so (dev7 coqui-tts), so no shape is claimed
    assert shapes.hover(6, column_of(text, 6, "scores")) is None
    # after `b, t, d = q.shape` the unknown `q` has that shape; mul saves it only when `k` is a
    # tensor that requires grad, and `k` may be a number: no claim about saving
    assert shapes.hover(6, column_of(text, 6, "q")) == "Tensor[b, t, d]"
    assert shapes.hover(5, column_of(text, 5, "d")) == "int = d"
    assert shapes.hover(1, 0) is None  # `import`


def test_inlay_hints_follow_the_mode():
    hints = view().inlay_hints(1, 100, "forward")
    labels = {(h.line, h.label) for h in hints}
    # forward, and the training loop of the script; not the helper
    assert (13, ": [8, 6, 24, 24]") in labels
    assert (15, ": [8, 864]") in labels
    assert (27, ": [8, 10]") in labels and (28, ": []") in labels
    assert not any(h.line == 20 for h in hints)
    assert all(not h.measured for h in hints)
    everything = view().inlay_hints(1, 100, "all")
    assert any(h.line == 25 and h.label == ": [8, 1, 28, 28]" for h in everything)
    assert view().inlay_hints(1, 100, "off") == []
    # a write into a tensor binds no name: no hint (`h[h < 0] = 0`)
    masked = NET.replace(
        "        flat = torch.flatten(h, 1)\n", "        h[h < 0] = 0\n        flat = torch.flatten(h, 1)\n"
    )
    assert [h.line for h in view(masked).inlay_hints(15, 15, "forward")] == []
    # the hint goes right after the name it describes
    first = next(h for h in hints if h.line == 13)
    assert first.column == column_of(NET, 13, "h") + 1
    assert view().inlay_hints(14, 14, "forward") == [h for h in hints if h.line == 14]


def test_measured_shapes_replace_inferred_ones():
    measured = {(13, "h"): Measured((8, 6, 24, 24), "float32"), (14, "h"): Measured(None, None)}
    shapes = view(measured=measured)
    hints = {h.line: h for h in shapes.inlay_hints(13, 14, "forward")}
    assert hints[13].measured and hints[13].label == ": [8, 6, 24, 24]"
    assert not hints[14].measured  # several shapes measured: the inferred one stays
    assert shapes.hover(13, column_of(NET, 13, "h")).endswith("measured by the probe")


def test_settings_value():
    assert parse_settings({}).inlay_shapes == "forward"
    assert parse_settings({"inlayHints": {"shapes": "all"}}).inlay_shapes == "all"
    bad = parse_settings({"inlayHints": {"shapes": "everywhere"}})
    assert bad.inlay_shapes == "forward" and bad.warnings


# -- through the server -----------------------------------------------------------------------------
@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER_COMMAND, client_factory=make_client, server_env=server_env()
    )
)
async def client(lsp_client: LanguageClient, tmp_path):
    await initialize_in_folder(lsp_client, tmp_path)
    yield
    await lsp_client.shutdown_session()


async def _open(client: LanguageClient) -> str:
    uri = (client.root / "net.py").as_uri()  # type: ignore[attr-defined]
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=NET)
        )
    )
    await wait_published(client, uri, 1)
    return uri


@pytest.mark.asyncio
async def test_server_hover_and_inlay_hints(client: LanguageClient):
    uri = await _open(client)
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=12, character=column_of(NET, 13, "h")),
        )
    )
    assert hover is not None and "Tensor[8, 6, 24, 24] float32 · requires grad" in hover.contents.value
    hints = await client.text_document_inlay_hint_async(
        types.InlayHintParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=0, character=0), end=types.Position(line=40, character=0)
            ),
        )
    )
    labels = [(h.position.line, h.label) for h in hints]
    assert (12, ": [8, 6, 24, 24]") in labels and (14, ": [8, 864]") in labels
    assert all(h.kind == types.InlayHintKind.Type for h in hints)
    # the setting turns them off, and `all` adds the script's
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"gradguard": {"debounceMs": 0, "inlayHints": {"shapes": "off"}}}
        )
    )
    params = types.InlayHintParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(
            start=types.Position(line=0, character=0), end=types.Position(line=40, character=0)
        ),
    )
    for _ in range(50):
        if not await client.text_document_inlay_hint_async(params):
            break
    assert not await client.text_document_inlay_hint_async(params)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"gradguard": {"debounceMs": 0, "inlayHints": {"shapes": "all"}}}
        )
    )
    everything = []
    for _ in range(50):
        everything = await client.text_document_inlay_hint_async(params)
        if everything:
            break
    assert (24, ": [8, 1, 28, 28]") in [(h.position.line, h.label) for h in everything]
