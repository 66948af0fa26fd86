"""The probe in the editor after issue 14, against `python -m gradguard lsp` with torch: the lens shows
the last result, results stay until their module's text changes (and across settings changes),
"Check gradient flow of all modules in this file", notebook cells, and the quick fix for a module
that needs constructor values (with "not run" instead of a problem count)."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import EXAMPLES, SERVER_DIR, probe_env

pytestmark = pytest.mark.torch

SERVER_COMMAND = [sys.executable, "-m", "gradguard", "lsp"]

GOOD = """\


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(20, 8)
        self.b = nn.Linear(8, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))
"""

MLP = """\
import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, in_dim, hidden, out_dim):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
"""

TRAIN = """\
import torch
from models import MLP

model = MLP(20, 64, 3)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
"""


def make_client() -> LanguageClient:
    from pygls.protocol import default_converter
    from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

    client = LanguageClient(converter_factory=default_converter)
    client.published = []  # type: ignore[attr-defined]
    client.lens_refreshes = 0  # type: ignore[attr-defined]

    def publish(ls: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        ls.diagnostics[params.uri] = params.diagnostics
        ls.published.append(params)  # type: ignore[attr-defined]

    def lens_refresh(ls: LanguageClient, params: None) -> None:
        ls.lens_refreshes += 1  # type: ignore[attr-defined]

    def register(ls: LanguageClient, params: types.RegistrationParams) -> None:
        return None

    features = dict(DEFAULT_CLIENT_FEATURES)
    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = publish
    features[types.WORKSPACE_CODE_LENS_REFRESH] = lens_refresh
    features[types.CLIENT_REGISTER_CAPABILITY] = register
    register_lsp_features(client, features)
    return client


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER_COMMAND,
        client_factory=make_client,
        server_env=probe_env(PYTHONPATH=str(SERVER_DIR)),
    ),
)
async def client(lsp_client: LanguageClient, tmp_path):
    from pytest_lsp import client_capabilities

    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=tmp_path.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=tmp_path.as_uri(), name="ws")],
            initialization_options={"workspaceTrusted": True, "settings": {"debounceMs": 0}},
        )
    )
    lsp_client.root = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def open_doc(client, path, text=None, version=1):
    if text is None:
        text = path.read_text()
    else:
        path.write_text(text)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=path.as_uri(), language_id="python", version=version, text=text)
        )
    )
    return path.as_uri(), text


async def lenses(client, uri):
    result = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    return [(lens.range.start.line, lens.command.title, list(lens.command.arguments)) for lens in result]


async def run_probe(client, uri, target=None, timeout=120):
    arguments = [uri] if target is None else [uri, target]
    return await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="gradguard.runProbe", arguments=arguments)
        ),
        timeout=timeout,
    )


def probe_diagnostics(client, uri):
    return [d for d in client.diagnostics.get(uri, []) if d.source == "gradguard-probe"]


async def wait_until(predicate, timeout=20.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for the server")
        await asyncio.sleep(0.05)


def change(client, uri, version, text):
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def test_lenses_show_the_last_result_and_offer_all_modules(client: LanguageClient):
    root = client.root  # type: ignore[attr-defined]
    text = (
        (EXAMPLES / "unused_layer.py")
        .read_text()
        .replace('\n\nif __name__ == "__main__":', GOOD + "\n\nif 0:")
    )
    uri, text = open_doc(client, root / "model.py", text)
    assert await lenses(client, uri) == [
        (6, "Check gradient flow", [uri, "Classifier"]),
        (6, "Check gradient flow of all modules in this file", [uri]),
        (18, "Check gradient flow", [uri, "Small"]),
    ]
    result = await run_probe(client, uri)  # all modules
    assert result["ran"] and result["published"], result
    titles = {line: title for line, title, _ in await lenses(client, uri)}
    assert titles[6] == "Check gradient flow of all modules in this file" or titles[6].startswith("✗")
    shown = [(line, title) for line, title, args in await lenses(client, uri) if len(args) == 2]
    assert shown[0][0] == 6 and shown[0][1].startswith("✗ 2 parameters without gradient · ")
    assert shown[1][0] == 18 and shown[1][1].startswith("✓ all 4 parameters get gradients · ")
    assert re.search(r" · \d+(\.\d)? m?s$", shown[1][1]), shown[1][1]
    assert client.lens_refreshes >= 1  # type: ignore[attr-defined]
    assert any("1 problem" in m.message for m in client.messages)

    # settings changes re-check the file and keep the probe's results
    await wait_until(lambda: probe_diagnostics(client, uri))
    before = len(client.published)  # type: ignore[attr-defined]
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"gradguard": {"debounceMs": 0, "severity": {"GG202": "hint"}}}
        )
    )
    await wait_until(lambda: len(client.published) > before)  # type: ignore[attr-defined]
    assert [d.code for d in probe_diagnostics(client, uri)] == ["GG901"]

    # editing one module forgets its result only; the other's stays, moved with the text
    edited = "# header\n" + text.replace("nn.Linear(20, 8)", "nn.Linear(20, 16)").replace(
        "nn.Linear(8, 2)", "nn.Linear(16, 2)"
    )
    change(client, uri, 2, edited)
    await wait_until(lambda: any(p.uri == uri and p.version == 2 for p in client.published))  # type: ignore[attr-defined]
    assert [(d.code, d.range.start.line) for d in probe_diagnostics(client, uri)] == [("GG901", 11)]
    after = [(line, title) for line, title, args in await lenses(client, uri) if len(args) == 2]
    assert after[0][0] == 7 and after[0][1].startswith("✗ 2 parameters without gradient")
    assert after[1] == (19, "Check gradient flow")


async def test_needs_constructor_values_offers_the_probe_comment(client: LanguageClient):
    root = client.root  # type: ignore[attr-defined]
    uri, text = open_doc(client, root / "models.py", MLP)
    result = await run_probe(client, uri, "MLP")
    assert result["ran"], result
    # nothing ran: the message says so instead of counting a problem
    message = client.messages[-1].message
    assert "not run: MLP" in message and "problem" not in message, message
    ((_, title, _),) = await lenses(client, uri)
    assert title == "○ not run: needs constructor values (see the quick fix)"
    await wait_until(lambda: probe_diagnostics(client, uri))
    (diagnostic,) = probe_diagnostics(client, uri)
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic]),
        )
    )
    (action,) = [a for a in actions if a.title.startswith("Add `# gradguard: probe")]
    assert action.title == "Add `# gradguard: probe MLP(in_dim=..., hidden=..., out_dim=...)`"

    # with a call elsewhere in the project, the comment is filled from it
    (root / "train.py").write_text(TRAIN)
    change(client, uri, 2, text + "\n")
    result = await run_probe(client, uri, "MLP")
    await wait_until(lambda: probe_diagnostics(client, uri))
    (diagnostic,) = probe_diagnostics(client, uri)
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic]),
        )
    )
    (action,) = [a for a in actions if a.title.startswith("Add `# gradguard: probe")]
    assert action.title == "Add `# gradguard: probe MLP(20, 64, 3)` (as in train.py line 4)"
    if action.edit is None:
        action = await client.code_action_resolve_async(action)
    (edit,) = action.edit.document_changes[0].edits
    assert (edit.range.start.line, edit.new_text) == (4, "# gradguard: probe MLP(20, 64, 3)\n")
    lines = (text + "\n").splitlines(keepends=True)
    fixed = "".join(lines[:4]) + edit.new_text + "".join(lines[4:])
    change(client, uri, 3, fixed)
    result = await run_probe(client, uri, "MLP")
    assert result["ran"] and result["findings"] == [], result
    ((_, title, _),) = await lenses(client, uri)
    assert title.startswith("✓ all 4 parameters get gradients · ")


async def test_notebook_cells_are_probed_as_one_program(client: LanguageClient):
    root = client.root  # type: ignore[attr-defined]
    nb = (root / "nb.ipynb").as_uri()
    source = (EXAMPLES / "unused_layer.py").read_text().split('\n\nif __name__ == "__main__":')[0]
    head, _, rest = source.partition("\n\nclass")
    cells = [
        (head + "\n", f"{nb}#cell1"),
        ("# the model\n", f"{nb}#cell2"),
        ("class" + rest + "\n", f"{nb}#cell3"),
        ("model = Classifier(20, 5)\n", f"{nb}#cell4"),
    ]
    client.notebook_document_did_open(
        types.DidOpenNotebookDocumentParams(
            notebook_document=types.NotebookDocument(
                uri=nb,
                notebook_type="jupyter-notebook",
                version=1,
                cells=[
                    types.NotebookCell(kind=types.NotebookCellKind.Code, document=uri) for _, uri in cells
                ],
            ),
            cell_text_documents=[
                types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
                for text, uri in cells
            ],
        )
    )
    cell3 = cells[2][1]
    # the class's cell does not import torch itself: the lens comes from the notebook as a whole
    assert await lenses(client, cell3) == [(0, "Check gradient flow", [cell3, "Classifier"])]
    assert await lenses(client, cells[0][1]) == []
    result = await run_probe(client, cell3, "Classifier")
    assert result["ran"] and result["published"], result
    await wait_until(lambda: probe_diagnostics(client, cell3))
    (diagnostic,) = probe_diagnostics(client, cell3)
    # `self.fc2 = ...` is line 4 of the cell
    assert (diagnostic.code, diagnostic.range.start.line) == ("GG901", 4)
    assert probe_diagnostics(client, cells[0][1]) == []
    ((_, title, _),) = await lenses(client, cell3)
    assert title.startswith("✗ 2 parameters without gradient")


async def test_other_files_without_targets_have_no_lenses(client: LanguageClient):
    root = client.root  # type: ignore[attr-defined]
    shutil.copy(EXAMPLES / "unused_layer.py", root / "model.py")
    uri, _ = open_doc(client, root / "script.py", "import torch\nprint(torch.ones(2))\n")
    assert await lenses(client, uri) == []
