"""Helpers for the end-to-end language server tests (pytest-lsp against the real process)."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from lsprotocol import types

ROOT = Path(__file__).resolve().parents[2]
SERVER_DIR = ROOT / "server"


# The server writes rule explanations into the user's cache folder: one of the test run instead.
CACHE_HOME = tempfile.mkdtemp(prefix="gradguard-test-cache-")


def server_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SERVER_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["XDG_CACHE_HOME"] = CACHE_HOME
    env.update(extra)
    return env


SERVER_COMMAND = [sys.executable, "-m", "gradguard", "lsp"]


def plain_capabilities() -> types.ClientCapabilities:
    """A minimal client: no documentChanges, no resolve, no markdown, no tags."""
    return types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(
            code_action=types.CodeActionClientCapabilities(
                code_action_literal_support=types.ClientCodeActionLiteralOptions(
                    code_action_kind=types.ClientCodeActionKindOptions(
                        value_set=[types.CodeActionKind.QuickFix, types.CodeActionKind.SourceFixAll]
                    )
                )
            ),
            publish_diagnostics=types.PublishDiagnosticsClientCapabilities(version_support=True),
        ),
        workspace=types.WorkspaceClientCapabilities(apply_edit=True),
    )


def vscode_capabilities() -> types.ClientCapabilities:
    from pytest_lsp import client_capabilities

    return client_capabilities("visual-studio-code")


async def initialize_in_folder(client, root: Path) -> None:
    """Initialize `client` with VS Code's capabilities and `root` as its one workspace folder
    (untrusted, no debounce); `client.root` is that folder."""
    await client.initialize_session(
        types.InitializeParams(
            capabilities=vscode_capabilities(),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="ws")],
            initialization_options={"settings": {"debounceMs": 0}, "workspaceTrusted": False},
        )
    )
    client.root = root


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until predicate() is truthy (returns its value) or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for the server")
        await asyncio.sleep(interval)


def apply_text_edits(text: str, edits: list[types.TextEdit]) -> str:
    """Apply LSP edits (UTF-16 positions, lines split at \\n, \\r\\n, \\r) the way an editor does."""
    import re

    lines = re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z", text)

    def offset(pos: types.Position) -> int:
        total = sum(len(line) for line in lines[: pos.line])
        if pos.line >= len(lines):
            return len(text)
        body = lines[pos.line].rstrip("\r\n")
        units = 0
        for index, ch in enumerate(body):
            if units >= pos.character:
                return total + index
            units += 2 if ord(ch) > 0xFFFF else 1
        return total + len(body)

    spans = sorted(((offset(e.range.start), offset(e.range.end), e.new_text) for e in edits), reverse=True)
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text


def edits_for(edit: types.WorkspaceEdit, uri: str) -> list[types.TextEdit]:
    found: list[types.TextEdit] = []
    if edit.changes:
        found.extend(edit.changes.get(uri, []))
    for change in edit.document_changes or []:
        if isinstance(change, types.TextDocumentEdit) and change.text_document.uri == uri:
            found.extend(change.edits)  # type: ignore[arg-type]
    return found


def _converter():
    """pygls's converter, except that a code action carrying a command stays a CodeAction:
    lsprotocol's hook takes anything with a "command" key for a Command, dropping the
    action's kind (a client tells them apart by whether "command" is a string)."""
    from typing import Union

    from pygls.protocol import default_converter

    converter = default_converter()

    def command_or_action(obj, _):
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, types.Command)
        return converter.structure(obj, types.CodeAction)

    converter.register_structure_hook(Union[types.Command, types.CodeAction], command_or_action)
    return converter


def make_client():
    """pytest-lsp's client, recording every publishDiagnostics (with its version) and
    answering workspace/applyEdit and client/registerCapability by recording them."""
    from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, LanguageClient, register_lsp_features

    client = LanguageClient(converter_factory=_converter)
    client.published = []  # type: ignore[attr-defined]
    client.applied_edits = []  # type: ignore[attr-defined]
    client.registrations = []  # type: ignore[attr-defined]

    def publish(ls: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        ls.diagnostics[params.uri] = params.diagnostics
        ls.published.append(params)  # type: ignore[attr-defined]

    def apply_edit(
        ls: LanguageClient, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        ls.applied_edits.append(params)  # type: ignore[attr-defined]
        return types.ApplyWorkspaceEditResult(applied=True)

    def register_capability(ls: LanguageClient, params: types.RegistrationParams) -> None:
        ls.registrations.extend(params.registrations)  # type: ignore[attr-defined]

    features = dict(DEFAULT_CLIENT_FEATURES)
    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = publish
    features[types.WORKSPACE_APPLY_EDIT] = apply_edit
    features[types.CLIENT_REGISTER_CAPABILITY] = register_capability
    register_lsp_features(client, features)
    return client


def published_for(client, uri: str, version: int | None = None) -> list:
    return [p for p in client.published if p.uri == uri and (version is None or p.version == version)]


async def wait_published(client, uri: str, version: int | None, timeout: float = 10.0):
    """The first publishDiagnostics for uri at `version` (any version when None)."""
    found = await wait_for(lambda: published_for(client, uri, version), timeout=timeout)
    return found[-1]
