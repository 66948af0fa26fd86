"""Bad inputs for `gradguard check`, one function per input (issue 15, "CLI" and the
file-safety part of "`--fix` must never change what it did not report").

Each case gets a `Harness` and an empty scratch directory, runs the
real command line and raises `Failure` when the input is not handled. Handled always means:
it ends (no hang), with no traceback on stderr (unless the case is about the log), with the
documented exit status (0 clean, 1 findings, 2 usage error or incomplete check), and then
what the case is about. `test_cli_inputs.py` runs every case under pytest; `campaign.py`
runs them against any copy of the sources and counts.
"""

from __future__ import annotations

import ast
import json
import os
import re
import resource
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from harness import (
    BUGGY,
    CLEAN,
    Failure,
    Harness,
    Run,
    alive,
    check,
    children,
    give_to_nobody,
    kill_group,
    wait_for,
)

TRACEBACK = "Traceback (most recent call last)"


@dataclass
class Case:
    group: str
    name: str
    run: Callable[[Harness, Path], None]
    needs_root: bool = False  # changes a file's owner

    @property
    def id(self) -> str:
        return f"{self.group}/{self.name}"


CASES: list[Case] = []


def case(group: str, name: str | None = None, needs_root: bool = False):
    def register(fn: Callable[[Harness, Path], None]) -> Callable[[Harness, Path], None]:
        CASES.append(Case(group, name or fn.__name__, fn, needs_root))
        return fn

    return register


def handled(run: Run, codes: tuple[int, ...] = (0, 1, 2), traceback_ok: bool = False) -> None:
    check(not run.hung, f"hung: killed after {run.seconds:.0f} s")
    if not traceback_ok:
        check(TRACEBACK not in run.stderr, "traceback: " + " | ".join(run.stderr.strip().splitlines()[-2:]))
    check(run.returncode in codes, f"exit {run.returncode}, expected {codes}: {run.describe()}")


def incomplete(run: Run) -> None:
    """A run that could not check everything: exit 2, and it never says all passed."""
    handled(run, (2,))
    check("All checks passed" not in run.stdout, "says 'All checks passed!' though files were skipped")


def project(directory: Path, files: int = 1, text: str = BUGGY) -> list[Path]:
    paths = []
    for i in range(files):
        path = directory / f"m{i:02d}.py"
        path.write_text(text)
        paths.append(path)
    return paths


def temporaries(directory: Path) -> list[str]:
    found = []
    for root, _dirs, files in os.walk(directory):
        found += [f for f in files if f.endswith((".tmp", ".gradguard")) and f.startswith(".")]
    return found


def compiles(path: Path) -> bool:
    try:
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


# -- FIFOs, devices and other non-files ------------------------------------------------------------
@case("special-files")
def fifo_in_directory(h: Harness, d: Path) -> None:
    project(d)
    os.mkfifo(d / "pipe.py")
    run = h.run("check", d, timeout=20)
    incomplete(run)
    check("FIFO" in run.stderr, "the FIFO is not named as skipped")
    check("m00.py:8:9: GG202" in run.stdout, "the other file was not checked")


@case("special-files")
def fifo_in_directory_with_process_pool(h: Harness, d: Path) -> None:
    project(d, 20)
    os.mkfifo(d / "pipe.py")
    run = h.run("check", "--jobs", "2", d, timeout=30)
    incomplete(run)
    check(run.stdout.count("GG202") == 20, "not every other file was checked")


@case("special-files")
def fifo_named_on_the_command_line(h: Harness, d: Path) -> None:
    os.mkfifo(d / "pipe.py")
    incomplete(h.run("check", d / "pipe.py", timeout=20))


@case("special-files")
def dev_zero_named_on_the_command_line(h: Harness, d: Path) -> None:
    run = h.run("check", "/dev/zero", timeout=20)
    incomplete(run)


@case("special-files")
def symlink_to_dev_zero_in_directory(h: Harness, d: Path) -> None:
    project(d)
    os.symlink("/dev/zero", d / "zero.py")
    incomplete(h.run("check", d, timeout=20))


@case("special-files")
def unix_socket_named_py(h: Harness, d: Path) -> None:
    project(d)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(d / "sock.py"))
        incomplete(h.run("check", d, timeout=20))
    finally:
        server.close()


@case("special-files")
def symlink_loop_named_py(h: Harness, d: Path) -> None:
    project(d)
    os.symlink("loop.py", d / "loop.py")
    incomplete(h.run("check", d, timeout=20))


@case("special-files")
def dangling_symlink_named_py(h: Harness, d: Path) -> None:
    project(d)
    os.symlink("nowhere.py", d / "dangling.py")
    incomplete(h.run("check", d, timeout=20))


@case("special-files")
def symlinked_directory_loop(h: Harness, d: Path) -> None:
    project(d)
    os.symlink(".", d / "again")
    os.symlink("..", d / "up")
    run = h.run("check", d, timeout=20)
    handled(run, (1,))
    check(run.stdout.count("GG202") == 1, "a file was checked more than once through a symlink loop")


@case("special-files")
def directory_named_like_a_module(h: Harness, d: Path) -> None:
    (d / "pkg.py").mkdir()
    project(d / "pkg.py")
    run = h.run("check", d, timeout=20)
    handled(run, (1,))


# -- signals: no worker outlives the main process ----------------------------------------------------
def _pool_run(h: Harness, d: Path, **extra):
    project(d, 20)
    process = h.start("check", "--jobs", "2", d, hooks={"GG_TEST_SLOW": "30", **extra})
    found: list[int] = []
    if not wait_for(lambda: bool(found.extend(children(process.pid)) or found), 20):
        kill_group(process)
        process.communicate()
        raise Failure("no worker processes started")
    time.sleep(0.5)
    return process, sorted(set(found + children(process.pid)))


def _workers_gone(process: subprocess.Popen, workers: list[int], signame: str) -> None:
    try:
        gone = wait_for(lambda: not any(alive(p) for p in workers), 10)
        left = [p for p in workers if alive(p)]
    finally:
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        kill_group(process)
        process.communicate()
    check(gone, f"{len(left)} pool worker(s) still running 10 s after {signame} of the main process")


@case("signals")
def sigkill_of_main_process_kills_pool_workers(h: Harness, d: Path) -> None:
    process, workers = _pool_run(h, d)
    os.kill(process.pid, signal.SIGKILL)
    _workers_gone(process, workers, "SIGKILL")


@case("signals")
def sigterm_of_main_process_stops_pool_workers(h: Harness, d: Path) -> None:
    process, workers = _pool_run(h, d)
    os.kill(process.pid, signal.SIGTERM)
    exited = wait_for(lambda: process.poll() is not None, 10)
    _workers_gone(process, workers, "SIGTERM")
    check(exited, "the main process did not exit within 10 s of SIGTERM")


@case("signals")
def ctrl_c_of_main_process_stops_pool_workers(h: Harness, d: Path) -> None:
    process, workers = _pool_run(h, d)
    os.kill(process.pid, signal.SIGINT)
    exited = wait_for(lambda: process.poll() is not None, 10)
    code = process.returncode
    stderr = process.stderr.read() if exited and process.stderr else ""
    _workers_gone(process, workers, "SIGINT")
    check(exited, "the main process did not exit within 10 s of Ctrl-C")
    check(code == 130, f"exit {code} after Ctrl-C, expected 130")
    check(TRACEBACK not in stderr, "traceback after Ctrl-C")


@case("signals")
def sigterm_during_fix_leaves_file_whole(h: Harness, d: Path) -> None:
    (path,) = project(d)
    ready = d / "ready"
    process = h.start("check", "--fix", path, hooks={"GG_TEST_SLOW_FIX": "20", "GG_TEST_READY": str(ready)})
    if not wait_for(ready.exists, 20):
        kill_group(process)
        raise Failure("the fix never started")
    os.kill(process.pid, signal.SIGTERM)
    exited = wait_for(lambda: process.poll() is not None, 10)
    kill_group(process)
    process.communicate()
    check(exited, "did not exit within 10 s of SIGTERM")
    check(path.read_text() == BUGGY, "the file changed though the run was stopped before writing")
    check(not temporaries(d), f"temporary files left: {temporaries(d)}")


# -- permissions (restricted: root without the capabilities that bypass them) ----------------------------------------------------
@case("permissions")
def unreadable_subdirectory(h: Harness, d: Path) -> None:
    project(d)
    sub = d / "private"
    sub.mkdir()
    (sub / "hidden.py").write_text(BUGGY)
    os.chmod(sub, 0)
    run = h.run("check", d, restricted=True, timeout=20)
    incomplete(run)
    check("private" in run.stderr, "the unreadable directory is not named")
    check("m00.py:8:9: GG202" in run.stdout, "the readable file was not checked")


@case("permissions")
def unsearchable_subdirectory(h: Harness, d: Path) -> None:
    project(d)
    sub = d / "listable"
    sub.mkdir()
    (sub / "x.py").write_text(BUGGY)
    os.chmod(sub, 0o644)  # readable, not searchable
    incomplete(h.run("check", d, restricted=True, timeout=20))


@case("permissions")
def unreadable_file(h: Harness, d: Path) -> None:
    project(d)
    secret = d / "secret.py"
    secret.write_text(BUGGY)
    os.chmod(secret, 0)
    run = h.run("check", d, restricted=True, timeout=20)
    incomplete(run)
    check("secret.py" in run.stderr, "the unreadable file is not named")


@case("permissions")
def unreadable_pyproject(h: Harness, d: Path) -> None:
    project(d)
    (d / "pyproject.toml").write_text("[tool.gradguard]\n")
    os.chmod(d / "pyproject.toml", 0)
    handled(h.run("check", d, restricted=True, timeout=20), (1, 2))


@case("permissions")
def writable_file_in_read_only_directory_fix(h: Harness, d: Path) -> None:
    sub = d / "ro"
    sub.mkdir()
    (path,) = project(sub)
    os.chmod(path, 0o644)
    os.chmod(sub, 0o555)
    run = h.run("check", "--fix", path, restricted=True, timeout=30)
    handled(run)
    check(len(run.stderr.strip().splitlines()) <= 2, "more than a one-line message: " + run.stderr[-300:])
    check(compiles(path), "the file no longer compiles")
    check(
        path.read_text() == BUGGY or "torch.relu" in path.read_text(),
        "the file is neither fixed nor unchanged",
    )
    check(not temporaries(d), f"temporary files left: {temporaries(d)}")


@case("permissions")
def read_only_file_is_refused(h: Harness, d: Path) -> None:
    (path,) = project(d)
    os.chmod(path, 0o444)
    run = h.run("check", "--fix", path, timeout=30)
    handled(run, (2,))
    check(path.read_text() == BUGGY, "a read-only (0444) file was rewritten")
    check(stat.S_IMODE(path.stat().st_mode) == 0o444, "the mode of the read-only file changed")
    check("read-only" in run.stderr, "no message says the file is read-only")


# -- [tool.gradguard] of the wrong type ------------------------------------------------------------
BAD_CONFIGS = {
    "exclude_is_a_number": "[tool.gradguard]\nexclude = 5\n",
    "array_of_tables": "[[tool.gradguard]]\nselect = ['GG2']\n",
    "tool_is_a_number": "tool = 5\n",
    "gradguard_is_a_string": "[tool]\ngradguard = 'x'\n",
    "select_is_a_number": "[tool.gradguard]\nselect = 5\n",
    "select_has_a_number": "[tool.gradguard]\nselect = ['GG2', 5]\n",
    "ignore_is_a_table": "[tool.gradguard]\nignore = { a = 1 }\n",
    "severity_is_a_number": "[tool.gradguard]\nseverity = 5\n",
    "severity_value_is_a_number": "[tool.gradguard]\nseverity = { GG202 = 5 }\n",
    "severity_value_unknown": "[tool.gradguard]\nseverity = { GG202 = 'fatal' }\n",
    "exclude_has_a_number": "[tool.gradguard]\nexclude = [5]\n",
    "extend_exclude_is_a_number": "[tool.gradguard]\nextend-exclude = 5\n",
    "exclude_is_a_table": "[tool.gradguard]\nexclude = { a = 1 }\n",
    "extend_ignore_is_a_number": "[tool.gradguard]\nextend-ignore = 5\n",
    "invalid_toml": "[tool.gradguard\nselect = \n",
    "unknown_code": "[tool.gradguard]\nselect = ['XX9']\n",
}


def _config_case(name: str, text: str) -> None:
    def run_case(h: Harness, d: Path) -> None:
        project(d)
        (d / "pyproject.toml").write_text(text)
        run = h.run("check", d, cwd=d, timeout=20)
        handled(run, (1, 2))
        if run.returncode == 2:
            lines = run.stderr.strip().splitlines()
            check(
                len(lines) == 1 and lines[0].startswith("gradguard: error:"), f"not a one-line error: {lines}"
            )
        else:  # ignored with a warning: the run goes on
            check("GG202" in run.stdout, "the file was not checked")

    case("config", name)(run_case)


for _name, _text in BAD_CONFIGS.items():
    _config_case(_name, _text)


@case("config")
def pyproject_is_a_directory(h: Harness, d: Path) -> None:
    project(d)
    (d / "pyproject.toml").mkdir()
    handled(h.run("check", d, cwd=d, timeout=20), (1,))


@case("config")
def pyproject_not_utf8(h: Harness, d: Path) -> None:
    project(d)
    (d / "pyproject.toml").write_bytes(b"[tool.gradguard]\nselect = ['\xff']\n")
    handled(h.run("check", d, cwd=d, timeout=20), (1, 2))


@case("config")
def config_option_missing_file(h: Harness, d: Path) -> None:
    project(d)
    handled(h.run("check", "--config", d / "nope.toml", d, timeout=20), (2,))


@case("config")
def config_option_is_a_directory(h: Harness, d: Path) -> None:
    project(d)
    handled(h.run("check", "--config", d, d, timeout=20), (2,))


@case("config")
def config_option_bad_toml(h: Harness, d: Path) -> None:
    project(d)
    (d / "custom.toml").write_text("[tool.gradguard\n")
    run = h.run("check", "--config", d / "custom.toml", d, timeout=20)
    handled(run, (2,))


@case("config")
def config_option_wrong_type(h: Harness, d: Path) -> None:
    project(d)
    (d / "custom.toml").write_text("[tool.gradguard]\nexclude = 5\n")
    handled(h.run("check", "--config", d / "custom.toml", d, timeout=20), (2,))


@case("config")
def config_option_other_name_is_read(h: Harness, d: Path) -> None:
    project(d)
    (d / "custom.toml").write_text("[tool.gradguard]\nignore = ['GG202']\n")
    run = h.run("check", "--config", d / "custom.toml", d, timeout=20)
    handled(run, (0,))


# -- arguments --------------------------------------------------------------------------------------
@case("arguments")
def jobs_1000_is_capped(h: Harness, d: Path) -> None:
    project(d, 30)
    # fork() fails after 50 calls (the hook): an uncapped run fails instead of forking 1,000 times
    process = h.start("check", "--jobs", "1000", d, hooks={"GG_TEST_SLOW": "0.3", "GG_TEST_FORK_LIMIT": "50"})
    most = 0
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        most = max(most, len(children(process.pid)))
        time.sleep(0.05)
    hung = process.poll() is None
    kill_group(process)
    out, err = process.communicate()
    check(not hung, f"hung with {most} worker processes")
    cores = len(os.sched_getaffinity(0))
    handled(Run([], process.returncode, out, err, 0), (1,))
    check(most <= cores, f"{most} worker processes for {cores} cores")
    check(out.count("GG202") == 30, "not every file was checked")


@case("arguments")
def jobs_negative(h: Harness, d: Path) -> None:
    project(d)
    handled(h.run("check", "--jobs", "-3", d, timeout=20), (2,))


@case("arguments")
def jobs_not_a_number(h: Harness, d: Path) -> None:
    handled(h.run("check", "--jobs", "many", d, timeout=20), (2,))


@case("arguments")
def ignore_all(h: Harness, d: Path) -> None:
    project(d)
    run = h.run("check", "--ignore", "ALL", d, timeout=20)
    handled(run, (0,))
    check("GG202" not in run.stdout, "--ignore ALL still reports findings")


@case("arguments")
def select_all_ignore_all(h: Harness, d: Path) -> None:
    project(d)
    handled(h.run("check", "--select", "ALL", "--ignore", "ALL", d, timeout=20), (0,))


@case("arguments")
def ignore_all_but_select_one(h: Harness, d: Path) -> None:
    project(d)
    run = h.run("check", "--ignore", "ALL", "--select", "GG202", d, timeout=20)
    handled(run, (1,))  # the more specific select wins


@case("arguments")
def unknown_rule_code(h: Harness, d: Path) -> None:
    project(d)
    handled(h.run("check", "--select", "GG9999", d, timeout=20), (2,))


@case("arguments")
def missing_path(h: Harness, d: Path) -> None:
    handled(h.run("check", d / "nope", timeout=20), (2,))


@case("arguments")
def empty_directory(h: Harness, d: Path) -> None:
    handled(h.run("check", d, timeout=20), (0,))


@case("arguments")
def same_file_twice(h: Harness, d: Path) -> None:
    (path,) = project(d)
    run = h.run("check", path, d, path, timeout=20)
    handled(run, (1,))
    check(run.stdout.count("GG202") == 1, "a file named twice is reported twice")


@case("arguments")
def file_named_like_an_option(h: Harness, d: Path) -> None:
    (d / "-x.py").write_text(BUGGY)
    handled(h.run("check", "--", "-x.py", cwd=d, timeout=20), (1,))


@case("arguments")
def stdout_closed_early(h: Harness, d: Path) -> None:
    project(d, 40)
    process = h.start("check", "--jobs", "1", d)
    assert process.stdout is not None
    process.stdout.readline()
    process.stdout.close()
    try:
        process.wait(timeout=60)
        err = process.stderr.read() if process.stderr else ""
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise Failure("hung after its reader went away") from None
    check(TRACEBACK not in err, "traceback when stdout is closed: " + err[-200:])


@case("arguments")
def stdout_on_a_full_disk(h: Harness, d: Path) -> None:
    if not os.path.exists("/dev/full"):
        return
    project(d)
    with open("/dev/full", "w") as full:
        process = h.start("check", d, stdout=full)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            kill_group(process)
            raise Failure("hung writing to a full disk") from None
    check(TRACEBACK not in err, "traceback when stdout is full: " + err.strip().splitlines()[-1])
    check(process.returncode != 0, "exit 0 though the report could not be written")


# -- nothing is lost silently ---------------------------------------------------------------------
@case("lost-findings")
def rule_that_raises(h: Harness, d: Path) -> None:
    project(d)
    run = h.run("check", d, hooks={"GG_TEST_CRASH_RULE": "1"}, timeout=30)
    handled(run, (2,), traceback_ok=True)
    check(re.search(r"GG001 .*GG999.*RuntimeError", run.stdout), "no internal-error finding naming the rule")
    check("m00.py:8:9: GG202" in run.stdout, "the other rules' findings are missing")
    check(
        "this rule is broken on purpose" in run.stderr and TRACEBACK in run.stderr, "no traceback in the log"
    )


@case("lost-findings")
def rule_that_raises_with_process_pool(h: Harness, d: Path) -> None:
    project(d, 20)
    run = h.run("check", "--jobs", "2", "--format", "json", d, hooks={"GG_TEST_CRASH_RULE": "1"}, timeout=60)
    handled(run, (2,), traceback_ok=True)
    items = json.loads(run.stdout)
    check(
        len({i["path"] for i in items if i["code"] == "GG001"}) == 20,
        "a file without its internal-error finding",
    )
    check(sum(i["code"] == "GG202" for i in items) == 20, "the other rules' findings are missing")


def _chain_source(depth: int) -> str:
    return (
        "import torch\nimport torch.nn as nn\n\n\nclass M(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.w = nn.Parameter(torch.ones(3))\n\n"
        "    def forward(self, x):\n"
        f"        y = x{'.relu()' * depth}\n"
        "        loss = (y * self.w).sum()\n        loss.backward()\n        return y\n"
    )


@case("lost-findings")
def deep_method_chain(h: Harness, d: Path) -> None:
    """A 350-call chain made rules hit the recursion limit: whatever a rule does with it,
    the run must not pass silently when a rule failed."""
    path = d / "chain.py"
    path.write_text(_chain_source(350))
    run = h.run("check", "--format", "json", path, timeout=60)
    handled(run, (0, 1, 2), traceback_ok=True)
    failed = h.rule_errors(path)
    codes = [i["code"] for i in json.loads(run.stdout or "[]")]
    if failed:
        check(
            run.returncode == 2 and "GG001" in codes,
            f"rules {failed} failed, yet no GG001 and exit {run.returncode}",
        )


@case("lost-findings")
def not_utf8_file_is_counted(h: Harness, d: Path) -> None:
    (d / "latin.py").write_bytes("# caf\xe9\nimport torch\n".encode("latin-1"))
    run = h.run("check", d, timeout=20)
    incomplete(run)
    check("1 file not checked" in run.stdout, "the summary does not count the skipped file")


@case("lost-findings")
def binary_file_is_counted(h: Harness, d: Path) -> None:
    (d / "blob.py").write_bytes(b"\x00\x01\x02")
    incomplete(h.run("check", d, timeout=20))


@case("lost-findings")
def file_over_size_limit_is_counted(h: Harness, d: Path) -> None:
    big = d / "big.py"
    with open(big, "wb") as handle:
        handle.truncate(21 * 1024 * 1024)  # sparse: it must not be read to be refused
    incomplete(h.run("check", d, timeout=30))


@case("lost-findings")
def skipped_file_with_exit_zero(h: Harness, d: Path) -> None:
    (d / "blob.py").write_bytes(b"\x00")
    incomplete(h.run("check", "--exit-zero", d, timeout=20))


@case("lost-findings")
def skipped_file_in_diff_mode(h: Harness, d: Path) -> None:
    (d / "blob.py").write_bytes(b"\x00")
    project(d)
    handled(h.run("check", "--diff", d, timeout=20), (2,))


@case("lost-findings")
def skipped_file_in_json_sarif_github(h: Harness, d: Path) -> None:
    (d / "blob.py").write_bytes(b"\x00")
    for fmt in ("json", "sarif", "github"):
        run = h.run("check", "--format", fmt, d, timeout=20)
        handled(run, (2,))
    sarif = json.loads(h.run("check", "--format", "sarif", d, timeout=20).stdout)
    check(
        sarif["runs"][0].get("invocations", [{}])[0].get("executionSuccessful") is False,
        "SARIF says it succeeded",
    )


def notebook(cells: list[tuple[str, str]], language: str = "python") -> str:
    return json.dumps(
        {
            "cells": [
                {"cell_type": kind, "metadata": {}, "source": text.splitlines(keepends=True), "outputs": []}
                if kind == "code"
                else {"cell_type": kind, "metadata": {}, "source": text}
                for kind, text in cells
            ],
            "metadata": {"language_info": {"name": language}},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        indent=1,
    )


NOTEBOOK_CELLS = [
    ("markdown", "# A notebook"),
    ("code", "%matplotlib inline\nimport torch\n!pip list\n"),
    ("code", "x = torch.randn(3, requires_grad=True)\nx.add_(1)\n"),
]


@case("notebooks")
def notebook_on_the_command_line(h: Harness, d: Path) -> None:
    path = d / "nb.ipynb"
    path.write_text(notebook(NOTEBOOK_CELLS))
    run = h.run("check", path, timeout=30)
    handled(run, (1,))
    check("GG000" not in run.stdout, "the notebook was parsed as Python")
    check(re.search(r"nb\.ipynb:cell 3:2:1: GG203", run.stdout), "the finding is not reported in its cell")


@case("notebooks")
def notebook_json_output_names_the_cell(h: Harness, d: Path) -> None:
    path = d / "nb.ipynb"
    path.write_text(notebook(NOTEBOOK_CELLS))
    items = json.loads(h.run("check", "--format", "json", path, timeout=30).stdout)
    check([(i["code"], i.get("cell"), i["line"]) for i in items] == [("GG203", 3, 2)], f"got {items}")


@case("notebooks")
def notebook_not_json(h: Harness, d: Path) -> None:
    (d / "nb.ipynb").write_text("{ not json")
    incomplete(h.run("check", d / "nb.ipynb", timeout=20))


@case("notebooks")
def notebook_wrong_shape(h: Harness, d: Path) -> None:
    (d / "nb.ipynb").write_text('{"cells": 5}')
    incomplete(h.run("check", d / "nb.ipynb", timeout=20))


@case("notebooks")
def notebook_in_another_language(h: Harness, d: Path) -> None:
    (d / "nb.ipynb").write_text(notebook([("code", "x <- c(1, 2)\n")], language="R"))
    incomplete(h.run("check", d / "nb.ipynb", timeout=20))


@case("notebooks")
def notebook_is_not_rewritten_by_fix(h: Harness, d: Path) -> None:
    path = d / "nb.ipynb"
    text = notebook(NOTEBOOK_CELLS)
    path.write_text(text)
    run = h.run("check", "--fix", path, timeout=30)
    handled(run, (1,))
    check(path.read_text() == text, "--fix rewrote the notebook")


LATIN1 = "# -*- coding: latin-1 -*-\n# r\xe9sum\xe9\n" + BUGGY


@case("encodings")
def latin1_coding_cookie(h: Harness, d: Path) -> None:
    path = d / "latin.py"
    path.write_bytes(LATIN1.encode("latin-1"))
    run = h.run("check", path, timeout=20)
    handled(run, (1,))
    check("latin.py:10:9: GG202" in run.stdout, "the latin-1 file was not checked")


@case("encodings")
def latin1_coding_cookie_fix_keeps_encoding(h: Harness, d: Path) -> None:
    path = d / "latin.py"
    path.write_bytes(LATIN1.encode("latin-1"))
    handled(h.run("check", "--fix", path, timeout=20), (0,))
    data = path.read_bytes()
    check(
        b"r\xe9sum\xe9" in data and b"torch.relu" in data, "the fixed file lost its latin-1 bytes or the fix"
    )
    check(compiles(path), "the fixed file does not compile")


@case("encodings")
def unknown_coding_cookie(h: Harness, d: Path) -> None:
    (d / "odd.py").write_bytes(b"# -*- coding: klingon -*-\nimport torch\n")
    incomplete(h.run("check", d, timeout=20))


@case("encodings")
def bom_with_latin1_cookie(h: Harness, d: Path) -> None:
    (d / "both.py").write_bytes(b"\xef\xbb\xbf# -*- coding: latin-1 -*-\nimport torch\n")
    incomplete(h.run("check", d, timeout=20))


@case("encodings")
def utf16_file(h: Harness, d: Path) -> None:
    (d / "wide.py").write_bytes(BUGGY.encode("utf-16"))
    incomplete(h.run("check", d, timeout=20))


@case("encodings")
def bom_file_is_checked(h: Harness, d: Path) -> None:
    (d / "bom.py").write_bytes(b"\xef\xbb\xbf" + BUGGY.encode())
    handled(h.run("check", d, timeout=20), (1,))


# -- syntax Python cannot parse -----------------------------------------------------------------------
def _gg000(h: Harness, d: Path, source: str) -> str:
    path = d / "x.py"
    path.write_text("import torch\n" + source + "\n")
    run = h.run("check", "--format", "json", path, timeout=30)
    handled(run, (0, 1))
    items = [i for i in json.loads(run.stdout) if i["code"] == "GG000"]
    return items[0]["message"] if items else ""


@case("syntax")
def deep_nesting_memory_error(h: Harness, d: Path) -> None:
    message = _gg000(h, d, "x = " + "-" * 100000 + "1")
    check(message and "nested" in message and "Python" in message, f"GG000 message: {message!r}")


@case("syntax")
def deep_nesting_recursion_error(h: Harness, d: Path) -> None:
    message = _gg000(h, d, "x = " + "+".join(["1"] * 100000))
    check(message and "nested" in message, f"GG000 message: {message!r}")


NEWER_SYNTAX = {
    "type_alias": ("type Vector = list[float]", (3, 12)),
    "generic_function": ("def first[T](xs: list[T]) -> T:\n    return xs[0]", (3, 12)),
    "generic_class": ("class Box[T]:\n    pass", (3, 12)),
    "fstring_reused_quotes": ('d = {"k": 1}\ns = f"{d["k"]}"', (3, 12)),
    "fstring_backslash": ("xs = ['a']\ns = f\"{'\\n'.join(xs)}\"", (3, 12)),
    "except_without_parentheses": ("try:\n    pass\nexcept ValueError, TypeError:\n    pass", (3, 14)),
    "template_string": ('name = "x"\ns = t"hi {name}"', (3, 14)),
}


def _newer_case(name: str, source: str, needed: tuple[int, int]) -> None:
    def run_case(h: Harness, d: Path) -> None:
        message = _gg000(h, d, source)
        if sys.version_info[:2] >= needed:
            check(not message, f"valid Python {needed} syntax reported: {message}")
            return
        running = f"{sys.version_info[0]}.{sys.version_info[1]}"
        check(
            f"Python {running}" in message and "version mismatch" in message,
            f"GG000 does not say Python {running} parsed it and that it is a version mismatch: {message!r}",
        )

    case("syntax", name)(run_case)


for _name, (_source, _needed) in NEWER_SYNTAX.items():
    _newer_case(_name, _source, _needed)


@case("syntax")
def real_syntax_error_is_not_blamed_on_the_version(h: Harness, d: Path) -> None:
    message = _gg000(h, d, "def f(:\n    pass")
    check(message and "version mismatch" not in message, f"GG000 message: {message!r}")


@case("scale")
def deep_directory_tree(h: Harness, d: Path) -> None:
    depth = 1100  # deeper than the recursion limit
    fd = os.open(d, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("deep.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as handle:
            handle.write(BUGGY)
    finally:
        os.close(fd)
    run = h.run("check", d, timeout=60)
    handled(run, (1,))


@case("scale")
def fifty_thousand_statements_on_one_line(h: Harness, d: Path) -> None:
    path = d / "flat.py"
    path.write_text("import torch\n" + "".join(f"a{i}=torch.zeros(3);" for i in range(50_000)) + "\n")
    # an address-space cap, so that a quadratic run fails fast instead of taking the machine
    run = h.run_measured("check", path, limits={resource.RLIMIT_AS: 3 * 1024**3}, timeout=120)
    handled(run, (0,))
    check(
        run.max_rss_kb < 600 * 1024, f"peak RSS {run.max_rss_kb // 1024} MB for 50,000 statements on one line"
    )


@case("scale")
def many_small_files(h: Harness, d: Path) -> None:
    project(d, 400, CLEAN)
    handled(h.run("check", d, timeout=120), (0,))


# -- output formats cannot be forged ------------------------------------------------------------------
FORGED = "a\n::error file=forged.py,line=1::forged annotation\n.py"


@case("output")
def github_newline_in_file_name(h: Harness, d: Path) -> None:
    (d / FORGED).write_text(BUGGY)
    run = h.run("check", "--format", "github", d, timeout=20)
    handled(run, (1,))
    lines = run.stdout.splitlines()
    check(len(lines) == 1, f"{len(lines)} lines for one finding: {lines}")
    check("forged.py,line=1" not in run.stdout, "the file name forged an annotation")
    match = re.match(r"::(\w+) title=([^,]*),file=([^,]*),line=8,", lines[0])
    check(
        match and unquote(match.group(3)) == str(d / FORGED), f"file property not escaped: {lines[0][:120]}"
    )


@case("output")
def github_comma_colon_percent_in_file_name(h: Harness, d: Path) -> None:
    name = "a,line=99:b%25.py"
    (d / name).write_text(BUGGY)
    run = h.run("check", "--format", "github", d, timeout=20)
    handled(run, (1,))
    line = run.stdout.splitlines()[0]
    check(",line=99" not in line and "line=8," in line, f"properties forged by the file name: {line[:150]}")
    check(f"file={d!s}/a%2Cline=99%3Ab%2525.py," in line, f"not escaped per GitHub's rules: {line[:150]}")


@case("output")
def text_newline_in_file_name(h: Harness, d: Path) -> None:
    (d / FORGED).write_text(BUGGY)
    run = h.run("check", d, timeout=20)
    handled(run, (1,))
    check(sum("GG202" in ln for ln in run.stdout.splitlines()) == 1, "one finding spread over several lines")
    check(not any(ln.startswith("::error") for ln in run.stdout.splitlines()), "a raw newline in the output")


@case("output")
def json_newline_in_file_name(h: Harness, d: Path) -> None:
    (d / FORGED).write_text(BUGGY)
    items = json.loads(h.run("check", "--format", "json", d, timeout=20).stdout)
    check([i["path"] for i in items] == [str(d / FORGED)], "the path did not survive JSON")


@case("output")
def sarif_newline_in_file_name(h: Harness, d: Path) -> None:
    (d / FORGED).write_text(BUGGY)
    data = json.loads(h.run("check", "--format", "sarif", d, timeout=20).stdout)
    uri = data["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    check("\n" not in uri and " " not in uri, f"the SARIF uri is not percent-encoded: {uri!r}")
    check(unquote(uri) == str(d / FORGED), "the SARIF uri does not decode to the path")


@case("output")
def undecodable_file_name(h: Harness, d: Path) -> None:
    name = os.fsdecode(b"caf\xe9-\xff.py")
    (d / name).write_text(BUGGY)
    for fmt in ("text", "json", "sarif", "github"):
        run = h.run("check", "--format", fmt, d, timeout=20)
        handled(run, (1,))


# -- --fix writes safely ---------------------------------------------------------------------------
@case("fix-files")
def fix_writes_through_symlink(h: Harness, d: Path) -> None:
    real = d / "real"
    real.mkdir()
    target = real / "target.py"
    target.write_text(BUGGY)
    link = d / "link.py"
    os.symlink(target, link)
    handled(h.run("check", "--fix", link, timeout=30), (0,))
    check(link.is_symlink(), "the symlink was replaced by a regular file")
    check("torch.relu" in target.read_text(), "the symlink's target was not fixed")


@case("fix-files")
def fix_keeps_hard_links(h: Harness, d: Path) -> None:
    (path,) = project(d)
    other = d / "other-name.txt"
    os.link(path, other)
    handled(h.run("check", "--fix", path, timeout=30), (0,))
    check(path.stat().st_nlink == 2 and path.stat().st_ino == other.stat().st_ino, "the hard link was broken")
    check("torch.relu" in other.read_text(), "the other name does not see the fix")
    check(not temporaries(d), f"temporary files left: {temporaries(d)}")


@case("fix-files", needs_root=True)
def fix_keeps_owner_group_mode(h: Harness, d: Path) -> None:
    (path,) = project(d)
    give_to_nobody(path)
    os.chmod(path, 0o640)
    before = path.stat()
    handled(h.run("check", "--fix", path, timeout=30), (0,))
    after = path.stat()
    check((after.st_uid, after.st_gid) == (before.st_uid, before.st_gid), "owner or group changed")
    check(stat.S_IMODE(after.st_mode) == 0o640, f"mode changed to {stat.S_IMODE(after.st_mode):o}")
    check("torch.relu" in path.read_text(), "not fixed")


@case("fix-files")
def fix_keeps_unusual_mode(h: Harness, d: Path) -> None:
    (path,) = project(d)
    os.chmod(path, 0o751)
    handled(h.run("check", "--fix", path, timeout=30), (0,))
    check(stat.S_IMODE(path.stat().st_mode) == 0o751, "mode changed")


def _long_name_case(length: int) -> None:
    def run_case(h: Harness, d: Path) -> None:
        path = d / ("n" * (length - 3) + ".py")
        path.write_text(BUGGY)
        handled(h.run("check", "--fix", path, timeout=30), (0,))
        check("torch.relu" in path.read_text(), "not fixed")
        check(not temporaries(d), f"temporary files left: {temporaries(d)}")

    case("fix-files", f"fix_file_name_of_{length}_characters")(run_case)


for _length in (248, 255):
    _long_name_case(_length)


def _big_buggy() -> str:
    return BUGGY + "".join(
        f"# padding line {i:05d} to make the file bigger than the limit\n" for i in range(400)
    )


@case("fix-files")
def disk_full_during_fix(h: Harness, d: Path) -> None:
    """Disk full, simulated with RLIMIT_FSIZE (write() fails with EFBIG past 4 KiB)."""
    path = d / "big.py"
    text = _big_buggy()
    path.write_text(text)
    run = h.run("check", "--fix", path, limits={resource.RLIMIT_FSIZE: 4096}, timeout=30)
    handled(run, (2,))
    check(path.read_text() == text, "the file changed though the write failed")
    check(not temporaries(d), f"temporary files left: {temporaries(d)}")
    check(len(run.stderr.strip().splitlines()) == 1, "not a one-line message: " + run.stderr[-300:])


@case("fix-files")
def disk_full_during_in_place_fix(h: Harness, d: Path) -> None:
    """The same for a hard-linked file, which is rewritten in place."""
    path = d / "big.py"
    text = _big_buggy()
    path.write_text(text)
    os.link(path, d / "twin.txt")
    run = h.run("check", "--fix", path, limits={resource.RLIMIT_FSIZE: 4096}, timeout=30)
    handled(run, (2,))
    check(path.read_text() == text, "the file changed though the write failed")


def _during_fix(h: Harness, d: Path, action: Callable[[Path], None]) -> tuple[Run, Path]:
    (path,) = project(d)
    ready = d / "ready"
    process = h.start("check", "--fix", path, hooks={"GG_TEST_SLOW_FIX": "3", "GG_TEST_READY": str(ready)})
    if not wait_for(ready.exists, 30):
        kill_group(process)
        raise Failure("the fix never started")
    action(path)
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise Failure("hung") from None
    return Run([], process.returncode, out, err, 0), path


@case("fix-files")
def file_edited_during_fix(h: Harness, d: Path) -> None:
    edited = BUGGY + "\nEDITED = True\n"
    run, path = _during_fix(h, d, lambda p: p.write_text(edited))
    handled(run, (2,))
    check(path.read_text() == edited, "an edit made during the run was overwritten")
    check("changed" in run.stderr, "no message says the file changed")


@case("fix-files")
def file_deleted_during_fix(h: Harness, d: Path) -> None:
    run, path = _during_fix(h, d, lambda p: p.unlink())
    handled(run, (2,))
    check(not path.exists(), "a file deleted during the run was re-created")
    check(not temporaries(d), f"temporary files left: {temporaries(d)}")


@case("fix-files")
def stale_temporary_files_are_cleaned(h: Harness, d: Path) -> None:
    (path,) = project(d)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = d / f".gradguard-{dead.pid}-abcd1234.tmp"
    stale.write_bytes(b"")
    legacy = d / f".{path.name}.k2j4h5g6.gradguard"
    legacy.write_bytes(b"")
    old = time.time() - 3600
    os.utime(legacy, (old, old))
    live = d / f".gradguard-{os.getpid()}-live0000.tmp"  # a run in progress: left alone
    live.write_bytes(b"")
    handled(h.run("check", "--fix", path, timeout=30), (0,))
    check(not stale.exists() and not legacy.exists(), "stale temporary files were not cleaned up")
    check(live.exists(), "a live run's temporary file was removed")


@case("fix-files")
def fix_result_always_compiles(h: Harness, d: Path) -> None:
    paths = project(d, 12)
    handled(h.run("check", "--fix", "--jobs", "2", d, timeout=60), (0,))
    for path in paths:
        check(compiles(path) and ast.parse(path.read_text()), f"{path.name} does not compile")
