"""End-to-end: the real `gradguard lsp` process driven by pytest-lsp, as VS Code (its
recorded client capabilities) and as a plain client."""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from gradguard.engine.rule import rule_class
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import (
    SERVER_COMMAND,
    apply_text_edits,
    edits_for,
    make_client,
    plain_capabilities,
    published_for,
    server_env,
    vscode_capabilities,
    wait_for,
    wait_published,
)

GG202 = rule_class("GG202").INVALID[0]
BUGGY = GG202.code
BUGGY_LINE = GG202.lines[0] - 1  # 0-based


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER_COMMAND, client_factory=make_client, server_env=server_env()
    ),
    params=["vscode", "plain"],
)
async def client(lsp_client: LanguageClient, request, tmp_path):
    capabilities = vscode_capabilities() if request.param == "vscode" else plain_capabilities()
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities,
            root_uri=tmp_path.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=tmp_path.as_uri(), name="ws")],
            initialization_options={"settings": {"debounceMs": 0}, "workspaceTrusted": False},
        )
    )
    lsp_client.kind = request.param  # type: ignore[attr-defined]
    lsp_client.root = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, name: str, text: str, version: int = 1) -> str:
    uri = (client.root / name).as_uri()  # type: ignore[attr-defined]
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
        )
    )
    return uri


def change_all(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


def change_range(client, uri, version, start, end, text):
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(*start), types.Position(*end)), text=text
                )
            ],
        )
    )


async def server_text(client: LanguageClient, uri: str) -> str:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="gradguard.debugDocumentText", arguments=[uri])
    )


async def test_diagnostics_on_open(client: LanguageClient):
    uri = open_doc(client, "model.py", BUGGY)
    published = await wait_published(client, uri, 1)
    diags = [d for d in published.diagnostics if d.code == "GG202"]
    assert len(diags) == 1
    diag = diags[0]
    assert diag.source == "gradguard"
    assert diag.range.start.line == BUGGY_LINE
    line = BUGGY.splitlines()[BUGGY_LINE]
    assert diag.range.start.character == len(line) - len(line.lstrip())
    # the rule's explanation, as a local file (clients that announce commandLinks get a command link)
    assert diag.code_description is not None and diag.code_description.href.startswith("file://")
    assert diag.code_description.href.endswith("/GG202.md")
    assert diag.severity == types.DiagnosticSeverity.Error  # backward raises


async def test_unnecessary_tag_for_fake_backward(client: LanguageClient):
    example = rule_class("GG101").INVALID[0]
    uri = open_doc(client, "fake.py", example.code)
    published = await wait_published(client, uri, 1)
    diags = [d for d in published.diagnostics if d.code == "GG101"]
    assert [d.range.start.line for d in diags] == [n - 1 for n in example.lines]
    if client.kind == "vscode":  # type: ignore[attr-defined]
        assert list(diags[0].tags) == [types.DiagnosticTag.Unnecessary]
    else:  # the plain client did not announce tag support
        assert not diags[0].tags


async def _quickfix(client: LanguageClient, uri: str, diag: types.Diagnostic, title: str) -> types.CodeAction:
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diag.range,
            context=types.CodeActionContext(diagnostics=[diag]),
        )
    )
    titles = [a.title for a in actions]
    assert f"Ignore {diag.code} on this line" in titles
    assert f"Show documentation for {diag.code}" in titles
    action = next(a for a in actions if a.title == title)
    assert action.kind == types.CodeActionKind.QuickFix
    if action.edit is None:  # lazily resolved (VS Code announces resolveSupport for edits)
        assert client.kind == "vscode"  # type: ignore[attr-defined]
        action = await client.code_action_resolve_async(action)
    assert action.edit is not None
    return action


async def test_quick_fix_clears_the_diagnostic(client: LanguageClient):
    uri = open_doc(client, "model.py", BUGGY)
    published = await wait_published(client, uri, 1)
    diag = next(d for d in published.diagnostics if d.code == "GG202")
    action = await _quickfix(client, uri, diag, "Replace with `y.masked_fill(...)`")
    assert action.is_preferred
    fixed = apply_text_edits(BUGGY, edits_for(action.edit, uri))
    assert fixed == GG202.fixed
    change_all(client, uri, 2, fixed)
    published = await wait_published(client, uri, 2)
    assert [d for d in published.diagnostics if d.code == "GG202"] == []


async def test_ignore_action_adds_noqa(client: LanguageClient):
    uri = open_doc(client, "model.py", BUGGY)
    published = await wait_published(client, uri, 1)
    diag = next(d for d in published.diagnostics if d.code == "GG202")
    action = await _quickfix(client, uri, diag, "Ignore GG202 on this line")
    text = apply_text_edits(BUGGY, edits_for(action.edit, uri))
    assert "  # keep confident activations only  # noqa: GG202" in text.splitlines()[BUGGY_LINE]
    change_all(client, uri, 2, text)
    published = await wait_published(client, uri, 2)
    assert [d for d in published.diagnostics if d.code == "GG202"] == []


async def test_hover(client: LanguageClient):
    uri = open_doc(client, "model.py", BUGGY)
    published = await wait_published(client, uri, 1)
    diag = next(d for d in published.diagnostics if d.code == "GG202")
    result = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=diag.range.start)
    )
    assert result is not None and "GG202 masked-assignment" in result.contents.value
    assert result.contents.kind == (
        types.MarkupKind.Markdown if client.kind == "vscode" else types.MarkupKind.PlainText  # type: ignore[attr-defined]
    )
    # the word notes
    text = "import torch\nx = torch.ones(2, requires_grad=True)\ny = x.detach()\n"
    uri2 = open_doc(client, "words.py", text)
    await wait_published(client, uri2, 1)
    result = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri2), position=types.Position(2, 8))
    )
    assert result is not None and "cut from the autograd graph" in result.contents.value
    result = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri2), position=types.Position(1, 20)
        )
    )
    assert result is not None and "requires_grad" in result.contents.value
    nothing = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri2), position=types.Position(0, 2))
    )
    assert nothing is None


async def test_fix_all_command_and_source_action(client: LanguageClient):
    uri = open_doc(client, "model.py", BUGGY)
    await wait_published(client, uri, 1)
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(types.Position(0, 0), types.Position(0, 0)),
            context=types.CodeActionContext(diagnostics=[], only=[types.CodeActionKind.SourceFixAll]),
        )
    )
    assert [a.kind for a in actions] == ["source.fixAll.gradguard"]
    action = actions[0]
    if action.edit is None:
        action = await client.code_action_resolve_async(action)
    assert apply_text_edits(BUGGY, edits_for(action.edit, uri)) == GG202.fixed

    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="gradguard.fixAll", arguments=[uri, 1])
    )
    assert result["applied"] is True and result["fixes"] == 1
    edit = client.applied_edits[-1].edit  # type: ignore[attr-defined]
    assert apply_text_edits(BUGGY, edits_for(edit, uri)) == GG202.fixed
    stale = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="gradguard.fixAll", arguments=[uri, 7])
    )
    assert stale["applied"] is False


async def test_explain_rule_command(client: LanguageClient):
    text = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="gradguard.explainRule", arguments=["GG202"])
    )
    assert text.startswith("## GG202 masked-assignment")
    with pytest.raises(Exception, match="unknown rule"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="gradguard.explainRule", arguments=["GG999"])
        )


async def test_configuration_change_republishes(client: LanguageClient):
    uri = open_doc(client, "model.py", BUGGY)
    await wait_published(client, uri, 1)
    before = len(published_for(client, uri))
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"gradguard": {"debounceMs": 0, "severity": {"GG202": "error"}}}
        )
    )
    await wait_for(lambda: len(published_for(client, uri)) > before)
    diag = next(d for d in published_for(client, uri)[-1].diagnostics if d.code == "GG202")
    assert diag.severity == types.DiagnosticSeverity.Error
    before = len(published_for(client, uri))
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"gradguard": {"debounceMs": 0, "ignore": ["GG202"]}})
    )
    await wait_for(lambda: len(published_for(client, uri)) > before)
    assert [d for d in published_for(client, uri)[-1].diagnostics if d.code == "GG202"] == []


async def test_pyproject_applies_underneath(client: LanguageClient):
    root = client.root  # type: ignore[attr-defined]
    (root / "pyproject.toml").write_text('[tool.gradguard]\nignore = ["GG202"]\n')
    uri = open_doc(client, "model.py", BUGGY)
    published = await wait_published(client, uri, 1)
    assert [d for d in published.diagnostics if d.code == "GG202"] == []


async def test_syntax_error_mid_edit_keeps_previous_findings(client: LanguageClient):
    uri = open_doc(client, "model.py", BUGGY)
    published = await wait_published(client, uri, 1)
    assert any(d.code == "GG202" for d in published.diagnostics)
    # type a half-finished line above the class: the file stops parsing
    change_range(client, uri, 2, (2, 0), (2, 0), "def broken(:\n")
    published = await wait_published(client, uri, 2)
    codes = sorted(d.code for d in published.diagnostics)
    assert codes.count("GG000") == 1
    kept = [d for d in published.diagnostics if d.code == "GG202"]
    assert [d.range.start.line for d in kept] == [BUGGY_LINE + 1]  # moved down with the edit
    assert next(d for d in published.diagnostics if d.code == "GG000").range.start.line == 2
    # keep typing while broken: still there, still moving
    change_range(client, uri, 3, (0, 0), (0, 0), "\n")
    published = await wait_published(client, uri, 3)
    assert [d.range.start.line for d in published.diagnostics if d.code == "GG202"] == [BUGGY_LINE + 2]
    # finish the line: real analysis again
    change_range(client, uri, 4, (3, 0), (4, 0), "")
    published = await wait_published(client, uri, 4)
    assert [d.range.start.line for d in published.diagnostics if d.code == "GG202"] == [BUGGY_LINE + 1]
    assert "GG000" not in [d.code for d in published.diagnostics]


async def test_stale_versions_are_never_published(client: LanguageClient):
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"gradguard": {"debounceMs": 1000}})
    )
    uri = open_doc(client, "model.py", BUGGY)
    await wait_published(client, uri, 1)
    for version in range(2, 22):  # a burst of edits well within the debounce window
        change_range(client, uri, version, (0, 0), (0, 0), "\n")  # (a "#" would comment out `import torch`)
    final = await wait_published(client, uri, 21)
    await asyncio.sleep(0.5)
    versions = [p.version for p in published_for(client, uri)]
    assert versions[-1] == 21
    assert set(versions) <= {1, 21}, versions  # nothing for the versions in between
    assert "GG202" in [d.code for d in final.diagnostics]


async def test_extra_findings_cleared_on_change(client: LanguageClient):
    # no probe involved: an edit simply republishes; this checks the version of each publish
    uri = open_doc(client, "model.py", BUGGY, version=5)
    published = await wait_published(client, uri, 5)
    assert published.version == 5


async def test_untitled_documents(client: LanguageClient):
    uri = "untitled:Untitled-1"
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=BUGGY)
        )
    )
    published = await wait_published(client, uri, 1)
    assert "GG202" in [d.code for d in published.diagnostics]
    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))
    await wait_for(lambda: list(published_for(client, uri)[-1].diagnostics) == [])


async def test_notebook_cells_are_one_program(client: LanguageClient):
    if client.kind != "vscode":  # type: ignore[attr-defined]
        pytest.skip("notebook sync needs a client with notebook capabilities")
    nb = (client.root / "nb.ipynb").as_uri()  # type: ignore[attr-defined]
    head, _, rest = BUGGY.partition("\nclass")
    cells = [
        ("%matplotlib inline\n" + head + "\n", f"{nb}#cell1"),
        ("# notes\n", f"{nb}#cell2"),
        ("class" + rest, f"{nb}#cell3"),
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
    published = await wait_published(client, cell3, 1)
    # cell 3 alone does not import torch: only analysed together with cell 1
    line = "class" + rest
    expected = line.splitlines().index(BUGGY.splitlines()[BUGGY_LINE])
    assert [(d.code, d.range.start.line) for d in published.diagnostics if d.code == "GG202"] == [
        ("GG202", expected)
    ]
    first = await wait_published(client, cells[0][1], 1)
    assert list(first.diagnostics) == []
    # editing the cell moves the finding within the cell
    client.notebook_document_did_change(
        types.DidChangeNotebookDocumentParams(
            notebook_document=types.VersionedNotebookDocumentIdentifier(uri=nb, version=2),
            change=types.NotebookDocumentChangeEvent(
                cells=types.NotebookDocumentCellChanges(
                    text_content=[
                        types.NotebookDocumentCellContentChanges(
                            document=types.VersionedTextDocumentIdentifier(uri=cell3, version=2),
                            changes=[
                                types.TextDocumentContentChangePartial(
                                    range=types.Range(types.Position(0, 0), types.Position(0, 0)), text="\n\n"
                                )
                            ],
                        )
                    ]
                )
            ),
        )
    )
    published = await wait_published(client, cell3, 2)
    assert [(d.code, d.range.start.line) for d in published.diagnostics if d.code == "GG202"] == [
        ("GG202", expected + 2)
    ]
    # a quick fix on the cell edits that cell, in the cell's own coordinates
    diag = next(d for d in published.diagnostics if d.code == "GG202")
    action = await _quickfix(client, cell3, diag, "Replace with `y.masked_fill(...)`")
    cell_text = apply_text_edits("\n\n" + line, edits_for(action.edit, cell3))
    assert "y = y.masked_fill(y < 0.5, 0)" in cell_text
    assert cell_text.startswith("\n\nclass")


async def test_unknown_settings_are_logged_not_fatal(client: LanguageClient):
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"gradguard": {"debounceMs": "soon", "colour": "blue", "severity": {"GG202": "loud"}}}
        )
    )
    for word in ("colour", "debounceMs", "loud"):  # one logMessage per problem
        await wait_for(lambda word=word: any(word in m.message for m in client.log_messages))
    uri = open_doc(client, "model.py", BUGGY)
    published = await wait_published(client, uri, 1)
    assert "GG202" in [d.code for d in published.diagnostics]


async def test_alternative_fix_is_offered_but_never_preferred(client: LanguageClient):
    example = rule_class("GG101").INVALID[0]
    uri = open_doc(client, "fake.py", example.code)
    published = await wait_published(client, uri, 1)
    diag = next(d for d in published.diagnostics if d.code == "GG101")
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diag.range,
            context=types.CodeActionContext(diagnostics=[diag]),
        )
    )
    by_title = {a.title: a for a in actions}
    main = by_title["Remove `backward` (autograd never calls it)"]
    alternative = by_title["Convert to torch.autograd.Function"]
    assert main.is_preferred is True
    assert not alternative.is_preferred
    if alternative.edit is None:
        alternative = await client.code_action_resolve_async(alternative)
    converted = apply_text_edits(example.code, edits_for(alternative.edit, uri))
    assert "torch.autograd.Function" in converted
    compile(converted, "converted.py", "exec")
    # fix-all applies only the main (safe) fixes
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="gradguard.fixAll", arguments=[uri])
    )
    assert result["applied"] is True
    fixed = apply_text_edits(example.code, edits_for(client.applied_edits[-1].edit, uri))  # type: ignore[attr-defined]
    assert "def backward" not in fixed and "autograd.Function" not in fixed


async def test_lint_on_save_only_and_disable(client: LanguageClient):
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"gradguard": {"debounceMs": 0, "lintOnChange": False}})
    )
    uri = open_doc(client, "model.py", BUGGY)
    await wait_published(client, uri, 1)
    change_range(client, uri, 2, (0, 0), (0, 0), "\n")
    await asyncio.sleep(0.5)
    assert published_for(client, uri, 2) == []
    client.text_document_did_save(types.DidSaveTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))
    saved = await wait_published(client, uri, 2)
    assert [d.range.start.line for d in saved.diagnostics if d.code == "GG202"] == [BUGGY_LINE + 1]
    before = len(published_for(client, uri))
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"gradguard": {"enable": False}})
    )
    await wait_for(lambda: len(published_for(client, uri)) > before)
    assert list(published_for(client, uri)[-1].diagnostics) == []


async def test_settings_pulled_with_workspace_configuration(client: LanguageClient):
    if client.kind != "vscode":  # type: ignore[attr-defined]
        pytest.skip("the plain client has no workspace/configuration")
    uri = open_doc(client, "model.py", BUGGY)
    await wait_published(client, uri, 1)
    client.set_configuration({"debounceMs": 0, "select": ["GG1"]}, section="gradguard")
    before = len(published_for(client, uri))
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await wait_for(lambda: len(published_for(client, uri)) > before)
    assert [d for d in published_for(client, uri)[-1].diagnostics if d.code == "GG202"] == []
