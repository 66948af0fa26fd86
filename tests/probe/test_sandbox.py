"""The probe's channel and limits, without running torch: signed event lines, bounded reads, the
stripped environment, the private working directory."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os

from gradguard.probe.sandbox import (
    MAX_EVENT_LINE,
    SandboxResult,
    _EventReader,
    _private_workdir,
    _read_tail,
    describe_isolation,
    probe_environment,
)

KEY = b"k" * 64


def signed(seq: int, **event) -> bytes:
    body = json.dumps({**event, "seq": seq}).encode()
    return b"\n" + body + b"\t" + hmac.new(KEY, body, hashlib.sha256).hexdigest().encode() + b"\n"


def read(*chunks: bytes) -> SandboxResult:
    async def main() -> SandboxResult:
        result = SandboxResult()
        reader = _EventReader(KEY, result, lambda event: None)
        for chunk in chunks:
            reader.data_received(chunk)
        return result

    return asyncio.run(main())


def test_only_signed_lines_in_sequence_are_accepted():
    isolation = json.dumps({"event": "isolation", "namespaces": ["network", "pid"]}).encode() + b"\n"
    forged = b'{"event": "result", "target": "Net", "status": "ok", "seq": 2}\tdeadbeef\n'
    result = read(
        isolation,
        signed(1, event="stage", stage="load"),
        forged,
        b'{"event": "result", "unterminated',  # swallowed by the next signed line's newline
        signed(2, event="result", target="Net", status="error"),
        signed(2, event="result", target="Net", status="ok"),  # a replay
        signed(3, event="done"),
        signed(4, event="result", target="Late", status="ok"),  # after done: closed
        isolation,  # an isolation line is only believed first
    )
    assert [e["event"] for e in result.events] == ["stage", "result", "done"]
    assert result.events[1]["status"] == "error"
    assert result.isolation["namespaces"] == ["network", "pid"]
    assert result.rejected_lines == 3


def test_an_overlong_line_is_dropped_without_being_kept():
    chunk = b"x" * (1 << 20)
    result = read(*[chunk] * (MAX_EVENT_LINE // len(chunk) + 3), b"\n", signed(1, event="done"))
    assert [e["event"] for e in result.events] == ["done"]
    assert result.dropped_bytes >= MAX_EVENT_LINE


def test_read_tail_is_bounded_and_never_follows_a_link(tmp_path):
    path = tmp_path / "stack.txt"
    path.write_bytes(b"a" * 100_000 + b"END")
    assert _read_tail(str(path), 1000) == "a" * 997 + "END"
    link = tmp_path / "link.txt"
    link.symlink_to("/dev/zero")
    assert _read_tail(str(link), 1000) == ""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert _read_tail(str(fifo), 1000) == ""


def test_the_environment_keeps_what_python_and_torch_need_only():
    base = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "VIRTUAL_ENV": "/v",
        "OMP_NUM_THREADS": "4",
        "TORCH_HOME": "/t",
        "AWS_SECRET_ACCESS_KEY": "x",
        "GITHUB_TOKEN": "y",
        "SSH_AUTH_SOCK": "/s",
        "PYTHONSTARTUP": "/evil.py",
    }
    env = probe_environment(base, tmpdir="/private/tmp")
    assert set(env) == {
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "VIRTUAL_ENV",
        "OMP_NUM_THREADS",
        "TORCH_HOME",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "TMPDIR",
    }
    assert env["OMP_NUM_THREADS"] == "4" and env["TMPDIR"] == "/private/tmp"


def test_private_workdir_links_the_folder(tmp_path):
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    (folder / "vocab.txt").write_text("a b c")
    root = tmp_path / "run"
    root.mkdir()
    work = _private_workdir(str(root), str(folder))
    assert (root / "work" / "vocab.txt").read_text() == "a b c"
    assert (root / "work" / "data").is_dir()
    (root / "work" / "new.txt").write_text("private")
    assert not (folder / "new.txt").exists()
    assert work == str(root / "work")


def test_isolation_is_described_plainly():
    full = {"namespaces": ["network", "pid", "mount"], "subreaper": True, "env_kept": 8, "workdir": True}
    assert describe_isolation(full) == (
        "network cut (own network namespace); processes contained in a PID namespace; "
        "environment stripped to 8 variables; private working directory"
    )
    fallback = {"namespaces": [], "reason": "unprivileged user namespaces are not available (EPERM)"}
    assert describe_isolation({**fallback, "subreaper": True}).startswith(
        "network NOT cut: unprivileged user namespaces are not available (EPERM); processes contained by the"
    )
