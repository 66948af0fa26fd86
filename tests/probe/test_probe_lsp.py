"""The probe in the editor, end to end against `python -m gradguard lsp`: code lenses on
modules and Functions, `gradguard.runProbe` publishing "gradguard-probe" diagnostics,
the content-hash cache, edits clearing them, and workspace trust."""

from __future__ import annotations

import asyncio
import shutil
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import EXAMPLES, SERVER_DIR, probe_env

pytestmark = pytest.mark.torch

SERVER_COMMAND = [sys.executable, "-m", "gradguard", "lsp"]

QUITTER = """\
import os

import torch
import torch.nn as nn


class Quitter(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        os._exit(3)
"""


def make_client() -> LanguageClient:
    from pygls.protocol import default_converter
    from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

    client = LanguageClient(converter_factory=default_converter)
    client.published = []  # type: ignore[attr-defined]

    def publish(ls: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        ls.diagnostics[params.uri] = params.diagnostics
        ls.published.append(params)  # type: ignore[attr-defined]

    features = dict(DEFAULT_CLIENT_FEATURES)
    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = publish
    register_lsp_features(client, features)
    return client


async def start(client: LanguageClient, root, trusted: bool) -> types.InitializeResult:
    return await client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                window=types.WindowClientCapabilities(work_done_progress=True)
            ),
            root_uri=root.as_uri(),
            initialization_options={"workspaceTrusted": trusted, "settings": {"debounceMs": 0}},
        )
    )


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER_COMMAND,
        client_factory=make_client,
        server_env=probe_env(PYTHONPATH=str(SERVER_DIR)),
    ),
)
async def client(lsp_client: LanguageClient, tmp_path):
    lsp_client.init_result = await start(lsp_client, tmp_path, trusted=True)  # type: ignore[attr-defined]
    lsp_client.root = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER_COMMAND,
        client_factory=make_client,
        server_env=probe_env(PYTHONPATH=str(SERVER_DIR)),
    ),
)
async def untrusted(lsp_client: LanguageClient, tmp_path):
    await start(lsp_client, tmp_path, trusted=False)
    lsp_client.root = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def open_doc(client, path, version=1):
    text = path.read_text()
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


async def run_probe(client, uri, target, timeout=120):
    return await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="gradguard.runProbe", arguments=[uri, target])
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


async def test_code_lens_on_modules_and_functions(client: LanguageClient):
    capabilities = client.init_result.capabilities  # type: ignore[attr-defined]
    assert capabilities.code_lens_provider is not None
    assert {"gradguard.runProbe", "gradguard.cancelProbe"} <= set(
        capabilities.execute_command_provider.commands
    )
    root = client.root  # type: ignore[attr-defined]
    shutil.copy(EXAMPLES / "custom_functions.py", root / "functions.py")
    shutil.copy(EXAMPLES / "unused_layer.py", root / "model.py")
    functions_uri, _ = open_doc(client, root / "functions.py")
    model_uri, _ = open_doc(client, root / "model.py")
    assert await lenses(client, functions_uri) == [
        (5, "Run gradcheck", [functions_uri, "MulAdd"]),
        (19, "Run gradcheck", [functions_uri, "BadSquare"]),
        (33, "Run gradcheck", [functions_uri, "RoundSTE"]),
    ]
    assert await lenses(client, model_uri) == [(6, "Check gradient flow", [model_uri, "Classifier"])]

    # "Run gradcheck" on the wrong Function publishes GG903 on its backward's return entry
    result = await run_probe(client, functions_uri, "BadSquare")
    assert result["ran"] and [f["code"] for f in result["findings"]] == ["GG903"]
    await wait_until(lambda: probe_diagnostics(client, functions_uri))
    (diagnostic,) = probe_diagnostics(client, functions_uri)
    assert (diagnostic.code, diagnostic.range.start.line, diagnostic.range.start.character) == (
        "GG903",
        30,
        33,
    )
    assert diagnostic.severity == types.DiagnosticSeverity.Warning  # wrong gradients train silently


async def test_run_probe_publishes_caches_and_edit_clears(client: LanguageClient):
    root = client.root  # type: ignore[attr-defined]
    shutil.copy(EXAMPLES / "unused_layer.py", root / "model.py")
    uri, text = open_doc(client, root / "model.py")
    result = await run_probe(client, uri, "Classifier")
    assert result["ran"] and result["published"] and not result["cached"], result
    await wait_until(lambda: probe_diagnostics(client, uri))
    (diagnostic,) = probe_diagnostics(client, uri)
    assert diagnostic.code == "GG901"
    assert (diagnostic.range.start.line, diagnostic.range.start.character) == (10, 8)
    assert "`fc2.weight`, `fc2.bias` get no gradient" in diagnostic.message
    assert any("1 problem" in m.message for m in client.messages)

    # same content: answered from the cache, no new subprocess
    again = await run_probe(client, uri, "Classifier", timeout=10)
    assert again["cached"] and again["findings"] == result["findings"]

    # an edit outside the module keeps its result, moved with the text
    edited = "# a comment\n" + text
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=edited)],
        )
    )
    await wait_until(lambda: any(p.uri == uri and p.version == 2 for p in client.published))
    (moved,) = probe_diagnostics(client, uri)
    assert (moved.code, moved.range.start.line) == ("GG901", 11)
    # an edit of the module's text clears it (the engine's diagnostics stay)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
            content_changes=[
                types.TextDocumentContentChangeWholeDocument(text=edited.replace("(32, classes)", "(32, 3)"))
            ],
        )
    )
    await wait_until(lambda: any(p.uri == uri and p.version == 3 for p in client.published))
    assert probe_diagnostics(client, uri) == []


async def test_hostile_target_reports_and_server_stays_up(client: LanguageClient):
    root = client.root  # type: ignore[attr-defined]
    path = root / "quitter.py"
    path.write_text(QUITTER)
    uri, _ = open_doc(client, path)
    result = await run_probe(client, uri, None)
    assert result["ran"], result
    await wait_until(lambda: probe_diagnostics(client, uri))
    (diagnostic,) = probe_diagnostics(client, uri)
    assert diagnostic.code == "GG902" and diagnostic.range.start.line == 12
    assert "os._exit(3) was called" in diagnostic.message
    # still answering; the lens shows the last result
    ((line, title, arguments),) = await lenses(client, uri)
    assert (line, arguments) == (6, [uri, "Quitter"])
    assert title.startswith("✗ os._exit(3) was called in the forward pass · "), title


async def test_untrusted_workspace_never_runs_the_probe(untrusted: LanguageClient):
    root = untrusted.root  # type: ignore[attr-defined]
    shutil.copy(EXAMPLES / "unused_layer.py", root / "model.py")
    uri, _ = open_doc(untrusted, root / "model.py")
    # the lens is shown; running it explains why it does not run
    assert await lenses(untrusted, uri) == [(6, "Check gradient flow", [uri, "Classifier"])]
    result = await run_probe(untrusted, uri, "Classifier", timeout=10)
    assert result == {"ran": False, "reason": "untrusted"}
    await wait_until(lambda: any("trusted workspace" in m.message for m in untrusted.messages))
    assert probe_diagnostics(untrusted, uri) == []


SPINNER = """\
import os
import subprocess
import sys

import torch
import torch.nn as nn


class Spinner(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", PID_FILE])
        marker = open(PID_FILE, "w")  # held open: the test finds this process by it
        marker.write("started"), marker.flush()
        while True:
            pass
"""


@pytest.mark.parametrize("how", ["command", "progress"])
async def test_cancel_kills_the_probe_and_its_children(client: LanguageClient, how: str):
    from .conftest import processes_with

    root = client.root  # type: ignore[attr-defined]
    pid_file = root / "pids"
    path = root / "spinner.py"
    path.write_text(SPINNER.replace("PID_FILE", repr(str(pid_file))))
    uri, _ = open_doc(client, path)
    running = asyncio.ensure_future(run_probe(client, uri, "Spinner"))
    await wait_until(lambda: pid_file.exists() and pid_file.read_text() == "started", timeout=60)
    await wait_until(lambda: len(processes_with(str(pid_file))) == 2, timeout=10)
    # the run shows as a cancellable progress in the editor
    (token,) = [t for t, values in client.progress_reports.items() if values and values[0].cancellable]
    assert client.progress_reports[token][0].title == "gradguard: probing Spinner"
    if how == "command":
        cancelled = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="gradguard.cancelProbe", arguments=[uri])
        )
        assert cancelled is True
    else:  # the cancel button of the editor's progress notification
        client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(running, timeout=10)
    assert result == {"ran": False, "reason": "cancelled"}
    await wait_until(lambda: not processes_with(str(pid_file)), timeout=10)
    assert probe_diagnostics(client, uri) == []
    await wait_until(lambda: client.progress_reports[token][-1].kind == "end")
