"""The server never crashes or stops answering, and keeps its copy of the text exact."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from pathlib import Path

import pytest
import pytest_lsp
from gradguard.engine.rule import rule_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import SERVER_COMMAND, make_client, published_for, server_env, wait_for, wait_published

BUGGY = rule_class("GG202").INVALID[0].code
HERE = Path(__file__).resolve().parent


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER_COMMAND, client_factory=make_client, server_env=server_env()
    ),
)
async def client(lsp_client: LanguageClient, tmp_path):
    from .conftest import vscode_capabilities

    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=vscode_capabilities(),
            root_uri=tmp_path.as_uri(),
            initialization_options={"settings": {"debounceMs": 0, "surprise": 1}, "unknownOption": True},
        )
    )
    lsp_client.root = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def _open(client, uri, text, version=1):
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
        )
    )


def _change(client, uri, version, changes):
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=changes,
        )
    )


def _partial(sl, sc, el, ec, text):
    return types.TextDocumentContentChangePartial(
        range=types.Range(types.Position(sl, sc), types.Position(el, ec)), text=text
    )


async def _text(client, uri):
    return await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="gradguard.debugDocumentText", arguments=[uri])
        ),
        timeout=20,
    )


async def test_unknown_settings_and_options_are_logged(client: LanguageClient):
    for word in ("surprise", "unknownOption"):
        await wait_for(lambda word=word: any(word in m.message for m in client.log_messages))


async def test_invalid_positions_are_clamped(client: LanguageClient):
    uri = (client.root / "a.py").as_uri()  # type: ignore[attr-defined]
    _open(client, uri, "ab\ncd\n")
    _change(client, uri, 2, [_partial(0, 99, 0, 99, "X")])  # past the end of the line
    assert await _text(client, uri) == "abX\ncd\n"
    _change(client, uri, 3, [_partial(99, 0, 120, 5, "Y")])  # past the end of the document
    assert await _text(client, uri) == "abX\ncd\nY"
    _change(client, uri, 4, [_partial(1, 1, 0, 1, "")])  # end before start
    assert await _text(client, uri) == "ad\nY"
    result = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri=uri), types.Position(10**6, 10**6))
    )
    assert result is None
    # negative positions do not fit the protocol: an error answer, not silence
    future: concurrent.futures.Future = concurrent.futures.Future()
    client.protocol._request_futures["negative-position"] = future
    client.protocol._send_data(
        {
            "jsonrpc": "2.0",
            "id": "negative-position",
            "method": "textDocument/hover",
            "params": {"textDocument": {"uri": uri}, "position": {"line": -1, "character": -5}},
        }
    )
    with pytest.raises(JsonRpcException):
        await asyncio.wait_for(asyncio.wrap_future(future), timeout=20)
    assert await _text(client, uri) == "ad\nY"


async def test_surrogate_pairs_and_crlf(client: LanguageClient):
    uri = (client.root / "u.py").as_uri()  # type: ignore[attr-defined]
    _open(client, uri, "s = '𝔘x'\r\nt = 1\r\n")
    _change(client, uri, 2, [_partial(0, 7, 0, 8, "y")])  # 𝔘 is two UTF-16 units
    assert await _text(client, uri) == "s = '𝔘y'\r\nt = 1\r\n"
    _change(client, uri, 3, [_partial(1, 0, 1, 0, "\n")])  # "\r" + "\n" stays two lines
    assert await _text(client, uri) == "s = '𝔘y'\r\n\nt = 1\r\n"
    _change(client, uri, 4, [_partial(0, 0, 0, 0, "a = 1\x0cb\u2028c = 2\n")])  # not line breaks in LSP
    text = await _text(client, uri)
    assert text.startswith("a = 1\x0cb\u2028c = 2\ns = ")


async def test_large_garbage_and_nested_inputs(client: LanguageClient):
    root = client.root  # type: ignore[attr-defined]
    big = (BUGGY + "\n") * (5 * 1024 * 1024 // (len(BUGGY) + 1) + 1)
    cases = {
        "big.py": big,
        "nested.py": "import torch\nx = " + "(" * 5000 + "1" + ")" * 5000 + "\n",
        "deep.py": "import torch\nx = " + "a + " * 50000 + "a\n",
        "unary.py": "import torch\nx = " + "-" * 100000 + "1\n",
        "garbage.py": "import torch\n\x00\x01\xff\ud800 garbage \udfff\n" + "\x7f" * 1000,
        "ok.py": BUGGY,
    }
    for name, text in cases.items():
        _open(client, (root / name).as_uri(), text)
    # the server keeps answering while it works through them
    for name, text in cases.items():
        got = await _text(client, (root / name).as_uri())
        assert got == text
    ok = await wait_published(client, (root / "ok.py").as_uri(), 1, timeout=60)
    assert "GG202" in [d.code for d in ok.diagnostics]
    for name in ("nested.py", "deep.py", "unary.py", "garbage.py"):
        published = await wait_published(client, (root / name).as_uri(), 1, timeout=60)
        assert [d.code for d in published.diagnostics] in ([], ["GG000"]), name


async def test_rapid_edit_burst(client: LanguageClient):
    uri = (client.root / "burst.py").as_uri()  # type: ignore[attr-defined]
    _open(client, uri, BUGGY)
    expected = BUGGY
    for version in range(2, 302):
        _change(client, uri, version, [_partial(0, 0, 0, 0, "#")])
        expected = "#" + expected
    assert await _text(client, uri) == expected
    final = await wait_published(client, uri, 301, timeout=30)
    assert final.version == 301


# -- a rule that crashes: the others' findings still arrive, the error is logged ------------------
BROKEN_SERVER = [
    sys.executable,
    "-c",
    "import sys; sys.path.insert(0, sys.argv[1]); import broken_rule_server; broken_rule_server.main()",
    str(HERE),
]


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=BROKEN_SERVER, client_factory=make_client, server_env=server_env()
    ),
)
async def broken_client(lsp_client: LanguageClient, tmp_path):
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


async def test_broken_rule_is_logged_and_others_still_report(broken_client: LanguageClient):
    uri = (broken_client.root / "m.py").as_uri()  # type: ignore[attr-defined]
    _open(broken_client, uri, BUGGY)
    published = await wait_published(broken_client, uri, 1)
    assert "GG202" in [d.code for d in published.diagnostics]
    assert any("rule GG999 failed" in m.message for m in broken_client.log_messages)


@pytest.mark.parametrize("from_thread", [False, True])
async def test_extra_findings_merge_and_clear_on_change(broken_client: LanguageClient, from_thread):
    client = broken_client
    uri = (client.root / "m.py").as_uri()  # type: ignore[attr-defined]
    _open(client, uri, BUGGY)
    await wait_published(client, uri, 1)
    before = len(published_for(client, uri))
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="test.addExtraFindings", arguments=[uri, from_thread])
    )
    await wait_for(lambda: len(published_for(client, uri)) > before)
    merged = published_for(client, uri)[-1]
    assert merged.version == 1
    sources = {(d.code, d.source) for d in merged.diagnostics}
    assert ("GG901", "gradguard-probe") in sources and ("GG202", "gradguard") in sources
    _change(client, uri, 2, [_partial(0, 0, 0, 0, "\n")])
    after = await wait_published(client, uri, 2)
    assert "GG901" not in [d.code for d in after.diagnostics]
    assert "GG202" in [d.code for d in after.diagnostics]


# -- property: the server's text equals a locally maintained copy --------------------------------
def _split(text: str) -> list[str]:
    import re

    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z", text)


def _utf16_len(s: str) -> int:
    return sum(2 if ord(c) > 0xFFFF else 1 for c in s)


PIECES = st.sampled_from(
    list("ab (:)\t'\"#") + ["\n", "\r\n", "\r", "é", "𝔘", "\x0c", "\u2028", "    ", "def f():\n"]
)


def _texts(max_pieces: int):
    return st.lists(PIECES, max_size=max_pieces).map("".join)


@st.composite
def edit_script(draw):
    start_text = draw(_texts(30))
    steps = []
    for _ in range(draw(st.integers(1, 15))):
        steps.append((draw(st.floats(0, 1)), draw(st.floats(0, 1)), draw(_texts(4))))
    return start_text, steps


def _pick(text: str, a: float, b: float):
    """A valid LSP range (UTF-16, never inside a surrogate pair) and its code-point offsets."""
    lines = _split(text)
    if not lines or lines[-1].endswith(("\n", "\r")):
        lines.append("")  # the empty line after a final line break
    positions = []  # (line, utf16 col, offset)
    offset = 0
    for number, line in enumerate(lines):
        body = line[:-2] if line.endswith("\r\n") else line[:-1] if line.endswith(("\n", "\r")) else line
        units = 0
        for index in range(len(body) + 1):
            positions.append((number, units, offset + index))
            if index < len(body):
                units += 2 if ord(body[index]) > 0xFFFF else 1
        offset += len(line)
    first = positions[int(a * (len(positions) - 1))]
    second = positions[int(b * (len(positions) - 1))]
    return min(first, second, key=lambda p: p[2]), max(first, second, key=lambda p: p[2])


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER_COMMAND, client_factory=make_client, server_env=server_env()
    ),
    scope="module",
)
async def shared_client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={"settings": {"debounceMs": 0}},
        )
    )
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio(loop_scope="module")
async def test_server_text_matches_local_copy(shared_client: LanguageClient):
    counter = iter(range(10**6))
    failures: list[str] = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(edit_script())
    def property_check(script):
        start_text, steps = script
        uri = f"untitled:prop-{next(counter)}.py"
        future = asyncio.run_coroutine_threadsafe(_run_script(shared_client, uri, start_text, steps), loop)
        error = future.result(timeout=60)
        if error:
            failures.append(error)
        assert not error, error

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, property_check)
    assert not failures


async def _run_script(client, uri, text, steps) -> str | None:
    _open(client, uri, text)
    version = 1
    for a, b, new in steps:
        (sl, sc, so), (el, ec, eo) = _pick(text, a, b)
        version += 1
        _change(client, uri, version, [_partial(sl, sc, el, ec, new)])
        text = text[:so] + new + text[eo:]
        got = await _text(client, uri)
        if got != text:
            return f"after {version - 1} edits: server {got!r} != local {text!r}"
    published = await wait_published(client, uri, version, timeout=20)
    if published.version != version:
        return "diagnostics for a wrong version"
    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))
    if any(p.version not in (None, *range(1, version + 1)) for p in published_for(client, uri)):
        return "diagnostics for a version never sent"
    return None
