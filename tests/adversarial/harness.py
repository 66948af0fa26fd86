"""Running the real `gradguard` command line on hostile inputs, for the adversarial tests and
the campaign (`tests/adversarial/campaign.py`).

`Harness(server)` runs `python -m gradguard` with `server` first on PYTHONPATH (the
worktree's own `server/`, or an older copy to measure "before"), with a timeout (a hang is
a failure, not a stuck test), optionally `restricted` (started as root, it loses the
capabilities that bypass file permissions, CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so
that permission cases mean something), with resource limits, and with test hooks
(`hooked_cli.py`: a rule that always raises, a slow analysis to have time to kill the run,
a limit on fork()).
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HOOKED = HERE / "hooked_cli.py"

BUGGY = """\
import torch
import torch.nn as nn


class Rectifier(nn.Module):
    def forward(self, x):
        x = torch.tanh(x)  # saves its output for backward
        x[x < 0] = 0  # clip negatives
        return x * 2
"""

CLEAN = """\
import torch


def double(x):
    return torch.relu(x) * 2
"""


class Failure(AssertionError):
    """The input was not handled; the message says how."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise Failure(message)


@dataclass
class Run:
    args: list[str]
    returncode: int | None  # None: it hung and was killed
    stdout: str
    stderr: str
    seconds: float
    max_rss_kb: int = 0

    @property
    def hung(self) -> bool:
        return self.returncode is None

    def describe(self) -> str:
        err = self.stderr.strip().splitlines()[-3:]
        return f"exit {self.returncode}, {self.seconds:.1f} s, stderr: {' | '.join(err)[:300]}"


def nobody_ids() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:  # pragma: no cover
        return 65534, 65534


class Harness:
    def __init__(self, server: Path | str = ROOT / "server", python: str = sys.executable) -> None:
        self.server = Path(server)
        self.python = python

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GG_TEST_", "PYTHONPATH"))}
        env.update(PYTHONPATH=str(self.server), NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
        env.update(extra)
        return env

    def command(self, args: list[str], hooked: bool = False) -> list[str]:
        if hooked:
            return [self.python, str(HOOKED), *map(str, args)]
        return [self.python, "-m", "gradguard", *map(str, args)]

    def start(
        self,
        *args: object,
        cwd: Path | str | None = None,
        hooks: dict[str, str] | None = None,
        restricted: bool = False,
        limits: dict[int, int] | None = None,
        stdin: object = subprocess.DEVNULL,
        stdout: object = subprocess.PIPE,
    ) -> subprocess.Popen:
        extra = dict(hooks or {})
        preexec = _preexec(restricted and os.geteuid() == 0, limits or {})
        return subprocess.Popen(
            self.command([str(a) for a in args], hooked=bool(hooks)),
            cwd=cwd,
            env=self.env(**extra),
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            errors="backslashreplace",
            preexec_fn=preexec,  # noqa: PLW1509 - limits and capabilities must be set before exec
            start_new_session=True,  # a hung run is killed with all it started
        )

    def run(self, *args: object, timeout: float = 60.0, **kwargs) -> Run:
        started = time.monotonic()
        process = self.start(*args, **kwargs)
        try:
            out, err = process.communicate(timeout=timeout)
            code: int | None = process.returncode
        except subprocess.TimeoutExpired:
            kill_group(process)
            out, err = process.communicate()
            code = None
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # an upper bound; see run_measured
        return Run([str(a) for a in args], code, out or "", err or "", time.monotonic() - started, rss)

    def rule_errors(self, path: Path) -> list[str]:
        """The rules that raise on this file, according to the engine under test."""
        out = subprocess.run(
            [self.python, "-c", _rule_errors_script(), str(path)],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return json.loads(out.stdout or "[]")

    def run_measured(self, *args: object, timeout: float = 120.0, **kwargs) -> Run:
        """Like run, with the peak RSS of this one process (wait4)."""
        started = time.monotonic()
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        process = self.start(*args, **kwargs)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                kill_group(process)
                pid, status, usage = os.wait4(process.pid, 0)
                process.returncode = -9
                err = process.stderr.read() if process.stderr else ""
                return Run([str(a) for a in args], None, "", err, time.monotonic() - started, usage.ru_maxrss)
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        err = process.stderr.read() if process.stderr else ""
        return Run(
            [str(a) for a in args], process.returncode, "", err, time.monotonic() - started, usage.ru_maxrss
        )


def _rule_errors_script() -> str:
    return (
        "import sys, json\n"
        "from gradguard.engine.analyzer import Analyzer\n"
        "text = open(sys.argv[1], encoding='utf-8').read()\n"
        "print(json.dumps(sorted({e.code for e in Analyzer().check(text, sys.argv[1]).errors})))\n"
    )


PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


def _preexec(drop: bool, limits: dict[int, int]):
    def preexec() -> None:
        # an ignored SIGXFSZ survives exec: RLIMIT_FSIZE then makes write() fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        # ... and so does an ignored SIGINT (a harness started with `&` by a shell ignores it):
        # the run under test must see Ctrl-C as a terminal would send it
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for which, value in limits.items():
            resource.setrlimit(which, (value, value))
        if drop:  # root without the capabilities that bypass file permissions
            libc = ctypes.CDLL(None, use_errno=True)
            for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
                if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                    raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    return preexec


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- processes ----------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a process, None when it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2 :].split()
    return int(rest[1]), rest[0]


def alive(pid: int) -> bool:
    info = _stat(pid)
    return info is not None and info[1] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """Live child processes (not multiprocessing's resource tracker)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None and info[0] == pid and info[1] not in ("Z", "X"):
                try:
                    cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"resource_tracker" not in cmdline:
                    found.append(int(entry))
    return found


def wait_for(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


# -- places -------------------------------------------------------------------------------------
class Scratch:
    """A directory for one case."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="gg-adversarial-"))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["chmod", "-R", "u+rwx", str(self.path)], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(self.path)], capture_output=True, check=False)


def give_to_nobody(*paths: Path) -> None:
    if os.geteuid() != 0:
        return
    uid, gid = nobody_ids()
    for path in paths:
        os.lchown(path, uid, gid)
