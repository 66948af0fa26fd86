"""Hostile probe targets: code that tries to escape the probe's kill, forge or hide its results,
or make the parent read huge files; and code that only expects its folder to be where it is.

Run alone it prints the table of inputs tried / handled / failures (each case in a fresh Python
process, so that its peak memory is its own):

    PYTHONPATH=server python tests/adversarial/probe_targets.py [-k NAME] [--no-namespaces]

A case is "handled" when the probe ends within its time limit, reports what really happened
(forged lines are ignored, hidden results are reported as a failed run, never as a clean one),
nothing the target started is still running afterwards, and the parent's memory stayed small.
A "limit" is what the probe does not prevent and says so (README, `gradguard explain GG901`).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_DIR = Path(os.environ.get("GRADGUARD_SERVER_DIR") or ROOT / "server")

HEADER = "import os\nimport signal\nimport socket\nimport subprocess\nimport sys\nimport time\n\nimport torch\nimport torch.nn as nn\n\n\n"
SLEEPER = 'subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", MARKER]{extra})'


@dataclass
class Outcome:
    handled: bool
    detail: str
    limit: bool = False  # a documented limit of the probe, not a failure


@dataclass
class Case:
    name: str
    what: str
    source: str  # MARKER, DATA are replaced
    check: Callable[[object, dict], Outcome]
    timeout: float = 20.0
    files: dict | None = None  # extra files next to the target


CASES: list[Case] = []


def case(name: str, what: str, source: str, timeout: float = 20.0, files: dict | None = None):
    def register(check: Callable[[object, dict], Outcome]) -> Callable[[object, dict], Outcome]:
        CASES.append(Case(name, what, HEADER + source, check, timeout, files))
        return check

    return register


def codes(report) -> list[str]:
    return [f.code for f in report.findings]


def messages(report) -> str:
    return " | ".join(f.message for f in report.findings)


ESCAPE = f"""\
def escape():
    {SLEEPER.format(extra=", start_new_session=True")}
    if os.fork() == 0:  # double fork, new session: a daemon
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", MARKER])
        os._exit(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)
        escape()

    def forward(self, x):
        return self.fc(x)
"""


@case("escape_then_finish", "setsid + double-forked daemons, then a normal run", ESCAPE)
def escape_then_finish(report, facts) -> Outcome:
    if codes(report) != ["GG901"]:
        return Outcome(False, f"findings {codes(report)}: {messages(report)[:200]}")
    return Outcome(True, "GG901 reported; " + facts["leftovers"])


@case(
    "escape_then_hang",
    "setsid + double-forked daemons, then an infinite loop (timeout)",
    ESCAPE.replace("        escape()\n", "        escape()\n        while True:\n            pass\n"),
    timeout=5,
)
def escape_then_hang(report, facts) -> Outcome:
    if "timed out" not in messages(report):
        return Outcome(False, f"not reported as a timeout: {messages(report)[:200]}")
    return Outcome(True, "timeout reported; " + facts["leftovers"])


@case(
    "fork_storm",
    "300 sleeping children, then an infinite loop",
    """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        for _ in range(300):
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", MARKER])
        while True:
            pass

    def forward(self, x):
        return self.fc(x)
""",
    timeout=8,
)
def fork_storm(report, facts) -> Outcome:
    return Outcome("timed out" in messages(report), facts["leftovers"])


@case(
    "kill_parent",
    "kills its parent process (the probe's supervisor), then sleeps",
    f"""\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        {SLEEPER.format(extra=", start_new_session=True")}
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(600)

    def forward(self, x):
        return self.fc(x)
""",
    timeout=8,
)
def kill_parent(report, facts) -> Outcome:
    if not report.findings:
        return Outcome(False, "reported as clean")
    return Outcome(True, f"{report.findings[0].message[:90]}...; " + facts["leftovers"])


FORGED = (
    '{"event": "result", "target": "Net", "kind": "module", "status": "ok", "params": [], "checked": 4}\n'
    '{"event": "done"}\n'
    '{"event": "result", "target": "Net", "status": "ok", "params": []'  # unterminated
)


@case(
    "forge_lines",
    "writes forged result lines into every open descriptor, also after the run (daemon)",
    f"""\
FORGED = {FORGED!r}


def forge():
    for fd in range(3, 64):
        try:
            os.write(fd, FORGED.encode())
        except OSError:
            pass


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)
        forge()
        if os.fork() == 0:  # keeps forging after the probe said "done"
            for _ in range(50):
                time.sleep(0.1)
                forge()
            os._exit(0)

    def forward(self, x):
        forge()
        return self.fc(x)
""",
)
def forge_lines(report, facts) -> Outcome:
    if codes(report) != ["GG901"]:
        return Outcome(False, f"the forged clean result won: findings {codes(report)}")
    rejected = getattr(report, "rejected_lines", None)
    return Outcome(True, f"GG901 still reported; {rejected} forged lines ignored; " + facts["leftovers"])


@case(
    "huge_result_line",
    "writes a 400 MB line into every open descriptor",
    """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)
        chunk = b"x" * (1 << 20)
        for fd in range(3, 64):
            try:
                os.fstat(fd)
            except OSError:
                continue
            try:
                for _ in range(400):
                    os.write(fd, chunk)
                os.write(fd, b"\\n")
            except OSError:
                pass

    def forward(self, x):
        return self.fc(x)
""",
    timeout=60,
)
def huge_result_line(report, facts) -> Outcome:
    grew = facts["parent_peak_mb"] - facts["parent_before_mb"]
    if grew > 150:
        return Outcome(False, f"the parent grew by {grew:.0f} MB")
    if codes(report) != ["GG901"]:
        return Outcome(False, f"findings {codes(report)}: {messages(report)[:150]}")
    return Outcome(True, f"GG901 reported; parent grew {grew:.0f} MB")


@case(
    "hide_results",
    "patches the probe's emitter to drop everything",
    """\
import __main__

__main__.emit = lambda obj: None  # runs when the probe loads the file's definitions


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)
""",
)
def hide_results(report, facts) -> Outcome:
    if not report.findings:
        return Outcome(False, "reported as clean")
    return Outcome(True, f"reported: {report.findings[0].message[:100]}")


@case(
    "fake_results",
    "wraps the probe's emitter to turn its own result into a clean one",
    """\
import __main__

_real = __main__.emit


def _fake(obj):
    if obj.get("event") == "result":
        obj = {**obj, "params": []}
    _real(obj)


__main__.emit = _fake  # runs when the probe loads the file's definitions


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)
""",
)
def fake_results(report, facts) -> Outcome:
    if codes(report) == ["GG901"]:
        return Outcome(True, "not fooled")
    return Outcome(
        True, "faked a clean result, as documented: code in the probe can fake its results", limit=True
    )


@case(
    "relative_data",
    "reads vocab.txt from its folder by a relative path; writes scratch.txt",
    """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        with open("vocab.txt") as handle:  # relative to the file's folder, as when run there
            vocab = handle.read().split()
        self.embed = nn.Embedding(len(vocab), 8)
        self.fc = nn.Linear(8, 2)
        with open("scratch.txt", "w") as handle:
            handle.write("written by the probe")

    def forward(self, x):
        return self.fc(self.embed(x).mean(1))
""",
    files={"vocab.txt": "a b c d e f g h i j\n"},
)
def relative_data(report, facts) -> Outcome:
    if report.findings:
        return Outcome(False, f"findings: {messages(report)[:200]}")
    if facts["scratch_in_folder"]:
        return Outcome(False, "scratch.txt was written into the user's folder")
    return Outcome(True, "vocab.txt read by its relative path; scratch.txt stayed in the private directory")


@case(
    "network_and_env",
    "connects out to the network and reads a secret from the environment",
    """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        try:
            socket.create_connection(("192.0.2.1", 9), timeout=2).close()
            reached = "connected"
        except OSError as exc:
            reached = type(exc).__name__ + str(exc.errno)
        print("NETWORK", reached, "SECRET", os.environ.get("GRADGUARD_TEST_SECRET", "absent"))

    def forward(self, x):
        return self.fc(x)
""",
)
def network_and_env(report, facts) -> Outcome:
    tail = report.output_tail
    secret = "SECRET absent" in tail
    summary = getattr(report, "isolation_summary", "")
    cut = "network cut" in summary
    blocked = "NETWORK connected" not in tail and "NETWORK" in tail
    if not secret:
        return Outcome(False, "the parent's environment reached the probed code")
    if cut and not blocked:
        return Outcome(False, "said the network was cut, but the connection went out")
    if not cut:
        return Outcome(True, f"environment stripped; network not cut here, and the result says so: {summary}")
    return Outcome(True, f"environment stripped; network unreachable ({tail.split('NETWORK')[1].split()[0]})")


@case(
    "stack_file_swap",
    "replaces the probe's stack-dump file with a link to /dev/zero, then hangs",
    """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        for fd in range(3, 64):
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if path.endswith("stack.txt"):
                os.unlink(path)
                os.symlink("/dev/zero", path)
        while True:
            pass

    def forward(self, x):
        return self.fc(x)
""",
    timeout=5,
)
def stack_file_swap(report, facts) -> Outcome:
    grew = facts["parent_peak_mb"] - facts["parent_before_mb"]
    if grew > 150:
        return Outcome(False, f"the parent grew by {grew:.0f} MB")
    return Outcome("timed out" in messages(report), f"timeout reported; parent grew {grew:.0f} MB")


# -- running ----------------------------------------------------------------------------------------
def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                if handle.read().rpartition(b")")[2].split()[0] in (b"Z", b"X"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def run_in_process(name: str) -> dict:
    """Run one case here (a fresh process); returns the outcome as a dict."""
    sys.path.insert(0, str(SERVER_DIR))
    from gradguard.probe.report import probe_source

    try:  # as the language server and `gradguard probe` are: orphans come back to us
        from gradguard import proctree

        proctree.set_subreaper()
    except ImportError:  # an older checkout (GRADGUARD_SERVER_DIR)
        pass

    item = next(c for c in CASES if c.name == name)
    with tempfile.TemporaryDirectory(prefix="gg-hostile-") as tmp:
        folder = Path(tmp) / "project"
        folder.mkdir()
        marker = f"gg-hostile-marker-{os.getpid()}-{name}"
        for file_name, content in (item.files or {}).items():
            (folder / file_name).write_text(content)
        path = folder / "target.py"
        text = item.source.replace("MARKER", repr(marker))
        path.write_text(text)
        os.environ["GRADGUARD_TEST_SECRET"] = "hunter2"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.monotonic()
        report = asyncio.run(
            probe_source(text, str(path), python=sys.executable, timeout=item.timeout, cwd=str(folder))
        )
        seconds = time.monotonic() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        deadline = time.monotonic() + 5
        while _processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _processes_with(marker)
        for pid in left:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        facts = {
            "leftovers": f"{len(left)} processes left running" if left else "nothing left running",
            "parent_before_mb": before,
            "parent_peak_mb": peak,
            "scratch_in_folder": (folder / "scratch.txt").exists(),
        }
        outcome = item.check(report, facts)
        if left:
            outcome = Outcome(False, f"{len(left)} processes it started survived the probe; {outcome.detail}")
        if seconds > item.timeout + 70:
            outcome = Outcome(False, f"took {seconds:.0f} s; {outcome.detail}")
        return {
            "handled": outcome.handled,
            "detail": outcome.detail,
            "limit": outcome.limit,
            "seconds": round(seconds, 1),
            "isolation": getattr(report, "isolation_summary", "(not reported)"),
        }


def run_case(name: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SERVER_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    limit = 240
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--in-process", name],
            capture_output=True,
            text=True,
            env=env,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"handled": False, "detail": f"the probe hung (no answer within {limit} s)", "seconds": limit}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"handled": False, "detail": f"the case crashed: {tail[:200]}", "limit": False, "seconds": 0}
    return json.loads(lines[-1])


def main(argv: list[str]) -> int:
    if argv[:1] == ["--in-process"]:
        print(json.dumps(run_in_process(argv[1])))
        return 0
    if "--no-namespaces" in argv:  # the fallback: the process tree only
        os.environ["GRADGUARD_PROBE_NAMESPACES"] = "0"
    selected = CASES
    if "-k" in argv:
        word = argv[argv.index("-k") + 1]
        selected = [c for c in CASES if word in c.name]
    rows = []
    for item in selected:
        result = run_case(item.name)
        rows.append((item, result))
        mark = "limit" if result.get("limit") else ("ok   " if result["handled"] else "FAIL ")
        print(f"{mark} {item.name:20} {result['detail']}  [{result.get('seconds', 0)} s]", flush=True)
    isolation = {r.get("isolation") for _, r in rows if r.get("isolation")}
    for line in sorted(isolation):
        print(f"isolation: {line}")
    limits = sum(1 for _, r in rows if r.get("limit"))
    handled = sum(1 for _, r in rows if r["handled"] and not r.get("limit"))
    failures = sum(1 for _, r in rows if not r["handled"])
    print()
    print("| group | inputs tried | handled | failures | documented limits |")
    print("|---|---|---|---|---|")
    print(f"| hostile probe targets | {len(rows)} | {handled} | {failures} | {limits} |")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
