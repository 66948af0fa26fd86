"""Through the real server: an edit in one unit re-checks the units whose findings rest on it.

The subclass's `forward` changes a parameter in place (GG201) only while the *base class's*
`__init__` makes it a parameter; the edits below are in the base class, character by
character, as an editor sends them, and the subclass's finding must follow."""

from __future__ import annotations

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import SERVER_COMMAND, make_client, plain_capabilities, server_env, wait_published

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
            capabilities=plain_capabilities(),  # (publishDiagnostics versions, code action literals)
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


# Typing new lines (issue 10): Enter, then a statement key by key, above, inside and below the
# findings. The server moves the nodes below an Enter in place (and drops the lazy fixes that
# rest on them): after the keystrokes, the diagnostics and the quick fixes of the typed buffer
# are those of the same text opened fresh.
TYPED_TEXT = """import torch
from torch.nn import Module, Parameter


def make_weight(n):
    w = torch.zeros(n, requires_grad=True)
    w.add_(1)
    return w


class Gate(Module):
    def __init__(self, n):
        super().__init__()
        self.alpha = Parameter(torch.zeros(n))

    def forward(self, x):
        self.alpha.clamp_(0, 1)
        return self.alpha * x


def train(model, data):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in data:
        loss = model(x).sum()
        loss.backward()
        opt.step()
"""
# (0-based line at whose end Enter is pressed, the statement typed on the new line), bottom up
TYPED_LINES = [
    (25, "print(loss)"),  # below every finding, in the loop
    (16, "y = x + 1"),  # above the finding with a fix, in its method
    (5, "w = w * 1"),  # above the finding that cites a line, in its function
    (1, "SCALE = 2"),  # module level, above everything
]


def _indent_below(lines: list[str], line: int) -> str:
    """The indentation of a new line typed below `line` (of the block it opens, if it opens one)."""
    source = lines[line + 1] if lines[line].rstrip().endswith(":") else lines[line]
    return source[: len(source) - len(source.lstrip())]


def _diagnostics(published) -> list[tuple]:
    return sorted(
        (d.range.start.line, d.range.start.character, d.range.end.line, d.code, d.message)
        for d in published.diagnostics
    )


async def _quick_fixes(client: LanguageClient, uri: str, published) -> list[tuple]:
    fixes = []
    for diagnostic in published.diagnostics:
        actions = await client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=diagnostic.range,
                context=types.CodeActionContext(diagnostics=[diagnostic]),
            )
        )
        for action in actions or []:
            if isinstance(action, types.CodeAction) and action.edit and action.edit.changes:
                edits = action.edit.changes.get(uri, [])
                fixes.append(
                    (action.title, [(e.range.start.line, e.range.start.character, e.new_text) for e in edits])
                )
    return sorted(fixes)


async def test_typing_new_lines_gives_what_opening_the_text_fresh_gives(client: LanguageClient):
    uri = (client.root / "typed.py").as_uri()  # type: ignore[attr-defined]
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=TYPED_TEXT)
        )
    )
    first = await wait_published(client, uri, 1)
    assert sorted(d.code for d in first.diagnostics) == ["GG201", "GG203", "GG401"]
    # computing the fixes once loads what they need (libcst): from then on, a unit that moved
    # may keep its cached findings and compute their fixes where it is now
    assert await _quick_fixes(client, uri, first)
    lines = TYPED_TEXT.splitlines()
    version = 1
    for line, statement in TYPED_LINES:
        indent = _indent_below(lines, line)
        version += 1
        edit(client, uri, version, line, len(lines[line]), len(lines[line]), "\n" + indent)
        await wait_published(client, uri, version)
        for i, char in enumerate(statement):  # `print(` and `y = ` do not parse
            version += 1
            edit(client, uri, version, line + 1, len(indent) + i, len(indent) + i, char)
            await wait_published(client, uri, version)
    typed = await wait_published(client, uri, version)
    text = TYPED_TEXT
    for line, statement in TYPED_LINES:
        below = text.splitlines(keepends=True)
        text = "".join(
            [*below[: line + 1], _indent_below(below, line) + statement + "\n", *below[line + 1 :]]
        )
    fresh_uri = (client.root / "fresh.py").as_uri()  # type: ignore[attr-defined]
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=fresh_uri, language_id="python", version=1, text=text)
        )
    )
    fresh = await wait_published(client, fresh_uri, 1)
    assert _diagnostics(typed) == _diagnostics(fresh)
    # `w = w * 1` made `w` a non-leaf: GG203 went away; the other two moved
    assert sorted(d.code for d in typed.diagnostics) == ["GG201", "GG401"]
    fixes = await _quick_fixes(client, uri, typed)
    assert any(edits for _, edits in fixes), fixes  # (the GG201 fix)
    assert fixes == await _quick_fixes(client, fresh_uri, fresh)
