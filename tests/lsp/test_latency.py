"""Editing a large file re-parses and re-checks only what the edit touched (a synthetic
~5,300-line model file: the tests do not download timm; bench/lsp_latency.py does)."""

from __future__ import annotations

import statistics
import time

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import SERVER_COMMAND, make_client, server_env, wait_published


def synthetic_model_file(classes: int = 162) -> str:
    parts = [
        "import math\n",
        "import torch\n",
        "import torch.nn as nn\n",
        "import torch.nn.functional as F\n\n\n",
    ]
    for i in range(classes):
        parts.append(
            f"""class Block{i}(nn.Module):
    \"\"\"Block number {i}.\"\"\"

    def __init__(self, dim: int = 64, hidden: int = 256, drop: float = 0.1):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)
        self.scale = nn.Parameter(torch.ones(dim) * {i + 1} / 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm(x)
        x = self.fc1(x)
        x = F.gelu(x)
        x = self.drop(x)
        x = self.fc2(x)
        x = x * self.scale
        return shortcut + self.drop(x)

    def extra_repr(self) -> str:
        return f"scale={{self.scale.mean().item():.3f}}"


def make_block{i}(dim: int = 64) -> Block{i}:
    block = Block{i}(dim)
    with torch.no_grad():
        block.scale.fill_(math.sqrt(1.0 / dim))
    return block


"""
        )
    parts.append("MODELS = {\n")
    parts.extend(f"    'block{i}': make_block{i},\n" for i in range(classes))
    parts.append("}\n")
    return "".join(parts)


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER_COMMAND, client_factory=make_client, server_env=server_env()
    ),
)
async def client(lsp_client: LanguageClient, tmp_path):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=tmp_path.as_uri(),
            initialization_options={"settings": {"debounceMs": 0}},
        )
    )
    lsp_client.root = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_one_character_edits_in_a_large_file_are_incremental(client: LanguageClient):
    text = synthetic_model_file()
    lines = text.splitlines()
    assert len(lines) > 5000
    uri = (client.root / "big_model.py").as_uri()  # type: ignore[attr-defined]
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    await wait_published(client, uri, 1, timeout=60)
    # type into a method in the middle of the file: "x = self.fc1(x)" -> "xq = ..." and back
    line = next(i for i in range(len(lines) // 2, len(lines)) if lines[i].strip() == "x = self.fc1(x)")
    column = lines[line].index("x")
    wall = []
    version = 1
    for i in range(40):
        version += 1
        start, end, new = (
            ((line, column + 1), (line, column + 1), "q")
            if i % 2 == 0
            else ((line, column + 1), (line, column + 2), "")
        )
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(*start), types.Position(*end)), text=new
                    )
                ],
            )
        )
        sent = time.perf_counter()
        await wait_published(client, uri, version, timeout=30)
        wall.append((time.perf_counter() - sent) * 1000)
    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="gradguard.debugStats", arguments=[uri])
    )
    edits = [s for s in stats if s["version"] > 1]
    assert len(edits) == 40
    # every keystroke re-parsed only the class it touched, never the whole file
    assert {s["parse"] for s in edits} == {"incremental"}
    assert max(s["reparsed_lines"] for s in edits) < 60
    # and the engine's time per keystroke is a small fraction of a cold check of the file
    assert statistics.median(s["analysis_ms"] for s in edits) < 50, edits
    print(f"synthetic {len(lines)} lines: wall p50 {statistics.median(wall):.1f} ms, max {max(wall):.1f} ms")
