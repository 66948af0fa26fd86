"""The stdio transport's frame reader (pure) and reading files the client has not opened."""

from __future__ import annotations

import json
import os

import pytest
from gradguard.lsp.diskread import Unreadable, read_source
from gradguard.lsp.transport import INVALID_REQUEST, PARSE_ERROR, FrameParser, Message, Problem, request_id
from hypothesis import given, settings
from hypothesis import strategies as st


def body(msg_id, method="x", **extra) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, **extra}).encode()


def frame(data: bytes, header: bytes = b"Content-Length") -> bytes:
    return header + b": %d\r\n\r\n" % len(data) + data


def feed_all(parser: FrameParser, *chunks: bytes) -> list:
    out = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def values(items) -> list:
    return [i.value for i in items if isinstance(i, Message)]


def problems(items) -> list[Problem]:
    return [i for i in items if isinstance(i, Problem)]


@pytest.mark.parametrize(
    "data",
    [
        frame(body(1)),
        b"content-length: %d\r\n\r\n" % len(body(1)) + body(1),
        b"Content-Length: %d\n\n" % len(body(1)) + body(1),
        b"  Content-Length :   %d  \r\n\r\n" % len(body(1)) + body(1),
        b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: %d\r\n\r\n"
        % len(body(1))
        + body(1),
        b"\r\n\r\n" + frame(body(1)),  # blank lines between frames
    ],
    ids=["canonical", "lowercase", "lf-only", "padded", "content-type-first", "leading-blank-lines"],
)
def test_unusual_but_unambiguous_frames_are_read(data):
    items = FrameParser().feed(data)
    assert values(items) == [json.loads(body(1))]
    assert not problems(items)


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (b"Content-Length: 99999999999", INVALID_REQUEST),
        (b"Content-Length: %d" % 2**70, INVALID_REQUEST),
        (b"Content-Length: abc", PARSE_ERROR),
        (b"Content-Length: -5", PARSE_ERROR),
        (b"Content-Length: 0x40", PARSE_ERROR),
        (b"Content-Length: 1e2", PARSE_ERROR),
        (b"Content-Type: text/plain", PARSE_ERROR),
        (b"not a header", PARSE_ERROR),
    ],
)
def test_broken_headers_answer_the_request_and_resync(header, code):
    parser = FrameParser()
    items = feed_all(parser, header + b"\r\n\r\n" + body(7), frame(body(8)))
    assert [(p.code, p.msg_id) for p in problems(items)] == [(code, 7)]  # the request in it is answered
    assert values(items) == [json.loads(body(8))]  # the next frame is read


def test_a_huge_length_is_never_allocated_and_its_bytes_are_skipped():
    parser = FrameParser(max_body=1000)
    items = parser.feed(b"Content-Length: 5000\r\n\r\n" + body(1)[:-1])
    assert problems(items) and problems(items)[0].msg_id == 1
    for _ in range(50):  # the announced body really arrives: dropped as it comes
        assert parser.feed(b"a" * 100) == []
    assert len(parser._buf) <= 32
    assert values(parser.feed(frame(body(2)))) == [json.loads(body(2))]


def test_header_section_is_bounded():
    parser = FrameParser(max_header=100)
    items = parser.feed(b"X-Junk: " + b"a" * 500)
    assert problems(items)
    assert len(parser._buf) <= 100
    assert values(parser.feed(b"\r\n\r\n" + frame(body(3)))) == [json.loads(body(3))]


def test_length_too_short_reports_the_request_then_resyncs():
    data = body(4)
    items = feed_all(FrameParser(), b"Content-Length: %d\r\n\r\n" % (len(data) - 10) + data, frame(body(5)))
    assert [(p.code, p.msg_id) for p in problems(items)] == [(PARSE_ERROR, 4)]
    assert values(items) == [json.loads(body(5))]


def test_length_too_long_with_a_following_frame_reads_both():
    data = body(4)
    items = FrameParser().feed(b"Content-Length: %d\r\n\r\n" % (len(data) + 30) + data + frame(body(5)))
    messages = [i for i in items if isinstance(i, Message)]
    assert [m.value["id"] for m in messages] == [4, 5]
    assert "longer than the message" in (messages[0].warning or "")


def test_length_too_long_alone_is_read_when_the_client_goes_quiet():
    parser = FrameParser()
    data = body(4)
    assert parser.feed(b"Content-Length: %d\r\n\r\n" % (len(data) + 30) + data) == []
    items = parser.idle()
    assert values(items) == [json.loads(data)]
    assert parser.idle() == []  # once


def test_a_slow_body_is_not_cut_short_by_the_idle_check():
    parser = FrameParser()
    data = body(4)
    assert parser.feed(b"Content-Length: %d\r\n\r\n" % len(data) + data[:10]) == []
    assert parser.idle() == []  # incomplete JSON: keep waiting
    assert values(parser.feed(data[10:])) == [json.loads(data)]


def test_a_body_mentioning_content_length_is_not_split():
    text = "Content-Length: 12\\r\\n\\r\\n{}"  # inside a JSON string
    data = body(6, params={"text": text})
    parser = FrameParser()
    header = b"Content-Length: %d\r\n\r\n" % len(data)
    items = feed_all(parser, header + data[:40], data[40:])
    assert values(items) == [json.loads(data)] and not problems(items)


def test_empty_and_non_json_bodies_are_reported():
    items = feed_all(FrameParser(), b"Content-Length: 0\r\n\r\n", frame(b"hello"), frame(body(9)))
    assert len(problems(items)) == 2
    assert values(items) == [json.loads(body(9))]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=30))
def test_any_chunking_of_valid_frames_reads_the_same_messages(cuts):
    stream = b"".join(frame(body(i, params={"t": "é" * i})) for i in range(5))
    parser = FrameParser()
    items, position = [], 0
    for cut in cuts:
        items.extend(parser.feed(stream[position : position + cut]))
        position += cut
    items.extend(parser.feed(stream[position:]))
    assert [v["id"] for v in values(items)] == list(range(5))
    assert not problems(items)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (body(3), 3),
        (body("abc"), "abc"),
        (body(3)[:-5], 3),  # truncated
        (b'{"jsonrpc": "2.0", "method": "x", "params": {"id": 9}}', None),  # a notification
        (b'{"jsonrpc": "2.0", "id": 5, "result": null}', None),  # a response
        (body(1) + body(2), 1),  # only the first value counts
    ],
)
def test_request_id_salvage(data, expected):
    found = request_id(data)
    assert (found if isinstance(found, (int, str)) else None) == expected


# -- files the client has not opened ----------------------------------------------------------------
def test_read_source_refuses_what_is_not_a_small_regular_utf8_file(tmp_path):
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    big = tmp_path / "big.py"
    big.write_bytes(b"x = 1\n" * 1000)
    latin = tmp_path / "latin.py"
    latin.write_bytes(b"# caf\xe9\n")
    cases = {fifo: "not a regular file", "/dev/zero": "not a regular file", big: "bytes", latin: "not UTF-8"}
    cases[tmp_path] = "not a regular file"
    cases[tmp_path / "missing.py"] = "cannot open"
    for path, why in cases.items():
        with pytest.raises(Unreadable, match=why):
            read_source(str(path), limit=1000)
    good = tmp_path / "good.py"
    good.write_text("\ufeffimport torch\n", encoding="utf-8")
    link = tmp_path / "link.py"
    link.symlink_to(good)
    assert read_source(str(link)) == "import torch\n"
