"""Fix-all in a notebook: the engine chooses the fixes (`select_fixes`, as `apply_fixes` does for a
file), the server maps each to its cell."""

from __future__ import annotations

import pytest_lsp
from gradguard.engine.catalog import rule_class
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import (
    SERVER_COMMAND,
    apply_text_edits,
    edits_for,
    initialize_in_folder,
    make_client,
    server_env,
    wait_published,
)

GG202 = rule_class("GG202").INVALID[0]


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER_COMMAND, client_factory=make_client, server_env=server_env()
    ),
)
async def client(lsp_client: LanguageClient, tmp_path):
    await initialize_in_folder(lsp_client, tmp_path)
    yield
    await lsp_client.shutdown_session()


async def test_fix_all_in_a_notebook_fixes_each_cell_once(client: LanguageClient):
    nb = (client.root / "nb.ipynb").as_uri()  # type: ignore[attr-defined]
    head, _, rest = GG202.code.partition("\nclass")
    fixed_rest = GG202.fixed.partition("\nclass")[2]
    # the same buggy class twice, in two cells, with a cell of notes between them
    texts = [head + "\n", "class" + rest, "# notes\n", ("class" + rest).replace("ClippedSigmoid", "Other")]
    uris = [f"{nb}#cell{i}" for i in range(len(texts))]
    client.notebook_document_did_open(
        types.DidOpenNotebookDocumentParams(
            notebook_document=types.NotebookDocument(
                uri=nb,
                notebook_type="jupyter-notebook",
                version=1,
                cells=[types.NotebookCell(kind=types.NotebookCellKind.Code, document=uri) for uri in uris],
            ),
            cell_text_documents=[
                types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
                for uri, text in zip(uris, texts, strict=True)
            ],
        )
    )
    published = await wait_published(client, uris[3], 1)
    assert [d.code for d in published.diagnostics] == ["GG202"]

    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="gradguard.fixAll", arguments=[uris[1], 1])
    )
    assert result["applied"] is True and result["fixes"] == 2
    edit = client.applied_edits[-1].edit  # type: ignore[attr-defined]
    after = [apply_text_edits(text, edits_for(edit, uri)) for uri, text in zip(uris, texts, strict=True)]
    assert after == [
        texts[0],
        "class" + fixed_rest,
        texts[2],
        ("class" + fixed_rest).replace("ClippedSigmoid", "Other"),
    ]
