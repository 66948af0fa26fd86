"""Through the real server: an edit in one unit re-checks the units whose findings rest on it.

The subclass's `forward` changes a parameter in place (GG201) only while the *base class's*
`__init__` makes it a parameter; the edits below are in the base class, character by
character, as an editor sends them, and the subclass's finding must follow."""

from __future__ import annotations

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import SERVER_COMMAND, make_client, server_env, wait_published

TEXT = """import torch
from torch.nn import Module, Parameter


class Base(Module):
    def __init__(self, n):
        super().__init__()
        self.alpha = Parameter(torch.zeros(n))

    def forward(self, x):
        return x * self.alpha


class Gate(Base):
    def forward(self, x):
        self.alpha.clamp_(0, 1)
        return self.alpha * x
"""
FINDING_LINE = 15  # 0-based: `self.alpha.clamp_(0, 1)` in Gate.forward
INIT_LINE = 7  # 0-based: `self.alpha = Parameter(...)` in Base.__init__


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER_COMMAND, client_factory=make_client, server_env=server_env()
    )
)
async def client(lsp_client: LanguageClient, tmp_path):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                text_document=types.TextDocumentClientCapabilities(
                    publish_diagnostics=types.PublishDiagnosticsClientCapabilities(version_support=True)
                )
            ),
            root_uri=tmp_path.as_uri(),
            initialization_options={"settings": {"debounceMs": 0}, "workspaceTrusted": False},
        )
    )
    lsp_client.root = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def edit(client: LanguageClient, uri: str, version: int, line: int, start: int, end: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(line, start), types.Position(line, end)), text=text
                )
            ],
        )
    )


def gg201_lines(published) -> list[int]:
    return [d.range.start.line for d in published.diagnostics if d.code == "GG201"]


async def test_editing_the_base_class_init_updates_the_subclass_finding(client: LanguageClient):
    uri = (client.root / "gate.py").as_uri()  # type: ignore[attr-defined]
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=TEXT)
        )
    )
    assert gg201_lines(await wait_published(client, uri, 1)) == [FINDING_LINE]
    # `Parameter(torch.zeros(n))` -> `torch.zeros(n)`: delete "Parameter(" and the closing ")"
    # one character at a time, as a user would (the text does not parse in between)
    line = TEXT.splitlines()[INIT_LINE]
    start = line.index("Parameter(")
    version = 1
    for _ in range(len("Parameter(")):
        version += 1
        edit(client, uri, version, INIT_LINE, start, start + 1, "")
        await wait_published(client, uri, version)
    end = len(line) - len("Parameter(") - 1
    version += 1
    edit(client, uri, version, INIT_LINE, end, end + 1, "")
    published = await wait_published(client, uri, version)
    assert gg201_lines(published) == []  # `alpha` is a plain tensor attribute now
    # and back: type "Parameter(" and ")" again
    for i, char in enumerate("Parameter("):
        version += 1
        edit(client, uri, version, INIT_LINE, start + i, start + i, char)
        await wait_published(client, uri, version)
    version += 1
    edit(client, uri, version, INIT_LINE, len(line) - 1, len(line) - 1, ")")
    published = await wait_published(client, uri, version)
    assert gg201_lines(published) == [FINDING_LINE]
