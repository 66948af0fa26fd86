"""Run `runner.py` in a child process with limits, and collect what it reported.

The probe executes the user's code. It contains that code's accidents (infinite loops, huge
allocations, `os._exit`, stray processes, a script that starts training) and keeps it from
reaching the network where the platform allows it, but it is not a security sandbox: the code
runs as the user, can read and write the user's files, and can fake its own results.

* On Linux the child is `isolate.py`, the supervisor: it dies with this process, and where
  unprivileged user namespaces exist it runs the runner in new user, network and PID
  namespaces (no network; when the runner ends, the kernel kills everything it started, even
  after `setsid` or a double fork); elsewhere it kills the runner's whole tree (it is their
  subreaper). The parent is a subreaper too (`gradguard.proctree`) and kills any orphan left.
  What was achieved comes back as `SandboxResult.isolation`.
* The runner works in a private temporary directory that links to the entries of the file's
  folder (relative paths such as `open("data.csv")` still find the user's files; files it
  creates land in the private directory), with the file's folder on `sys.path`; its
  environment is stripped to what Python and torch need (`ENV_KEEP`, `ENV_PREFIXES`).
* The address-space limit is set by the child itself before torch is imported
  (`resource.setrlimit(RLIMIT_AS)`); importing torch 2.13 (CPU) peaks at about 520 MB of
  address space (measured: a 512 MB limit still imports it, 384 MB does not), so the limit is
  never set below 768 MB.
* The child's stdout and stderr (the user's prints) are read incrementally and only a bounded
  tail is kept, so printing 100 MB costs nothing. Results come through a pipe of signed lines
  (see runner.py), never through stdout; every line, the whole channel and the stack dump are
  read with a size limit, so a 400 MB line costs the parent nothing either.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gradguard import proctree

RUNNER = Path(__file__).with_name("runner.py")
ISOLATE = Path(__file__).with_name("isolate.py")
TAIL_BYTES = 16 * 1024
MIN_MEMORY_MB = 768  # below this, `import torch` itself fails
IMPORT_TIMEOUT = 60.0  # starting Python and importing torch, before the time limit starts
MAX_EVENT_LINE = 4 * 1024 * 1024  # one result (a model with thousands of parameters fits)
MAX_EVENTS_BYTES = 32 * 1024 * 1024  # all verified events of one run
MAX_STACK_BYTES = 20_000
MAX_LINKS = 10_000  # entries of the file's folder linked into the private working directory
GRACE_SECONDS = 2.0  # after asking the supervisor to stop, before killing it
EXIT_NO_IDENTITY = 71  # isolate.py: the user namespace was created but the uid not mapped

# what the runner's environment keeps (everything else, tokens and credentials included, is dropped)
ENV_KEEP = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        "LD_LIBRARY_PATH",
        "DYLD_LIBRARY_PATH",
        "SYSTEMROOT",
        "CUDA_VISIBLE_DEVICES",
    }
)
ENV_PREFIXES = ("LC_", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "TORCH_", "PYTORCH_")


@dataclass
class SandboxResult:
    events: list[dict] = field(default_factory=list)
    returncode: int | None = None
    timed_out: bool = False
    output_tail: str = ""
    output_bytes: int = 0
    stack_dump: str = ""  # where the child was when it timed out (faulthandler)
    seconds: float = 0.0
    isolation: dict = field(default_factory=dict)
    rejected_lines: int = 0  # event lines that did not verify (written by the user's code)
    dropped_bytes: int = 0  # event bytes over the limits, never read into memory

    @property
    def finished(self) -> bool:
        return any(e.get("event") == "done" for e in self.events)

    def last_stage(self) -> dict | None:
        stages = [e for e in self.events if e.get("event") == "stage"]
        return stages[-1] if stages else None


def probe_environment(base: dict[str, str] | None = None, tmpdir: str | None = None) -> dict[str, str]:
    """The runner's environment: `base` (os.environ) stripped to ENV_KEEP and ENV_PREFIXES."""
    base = dict(os.environ) if base is None else base
    env = {k: v for k, v in base.items() if k in ENV_KEEP or k.startswith(ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"  # what was printed before a crash reaches the tail
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the user's folder
    env.setdefault("OMP_NUM_THREADS", "1")
    if tmpdir:
        env["TMPDIR"] = tmpdir
    return env


def describe_isolation(info: dict) -> str:
    """One line for people: what the probe's run was cut off from, and what not."""
    if not info:
        return "no isolation information (the probe process did not report it)"
    names = set(info.get("namespaces") or ())
    parts = []
    if "network" in names:
        parts.append("network cut (own network namespace)")
    else:
        parts.append(f"network NOT cut: {info.get('reason') or 'no network namespace'}")
    if "pid" in names:
        parts.append("processes contained in a PID namespace")
    elif info.get("subreaper"):
        parts.append("processes contained by the supervisor (subreaper)")
    else:
        parts.append("processes in a process group only")
    if info.get("env_kept") is not None:
        parts.append(f"environment stripped to {info['env_kept']} variables")
    if info.get("workdir"):
        parts.append("private working directory")
    return "; ".join(parts)


def _private_workdir(root: str, folder: str | None) -> str:
    """A fresh directory whose entries link to the folder's, so relative reads work."""
    work = os.path.join(root, "work")
    os.mkdir(work, 0o700)
    if not folder or not os.path.isdir(folder):
        return work
    try:
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_LINKS:
                    break
                try:
                    os.symlink(entry.path, os.path.join(work, entry.name))
                except OSError:
                    continue
    except OSError:
        pass
    return work


class _EventReader(asyncio.Protocol):
    """Signed event lines from the runner's pipe, each bounded, in total bounded."""

    def __init__(self, key: bytes, result: SandboxResult, on_event) -> None:
        self.key = key
        self.result = result
        self.on_event = on_event
        self.partial = bytearray()
        self.overlong = False  # discarding the rest of a line that is too long
        self.total = 0
        self.expected = 1
        self.first = True
        self.closed = False
        self.eof = asyncio.get_running_loop().create_future()
        self.transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.closed:
            self.result.dropped_bytes += len(data)
            return
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            if end < 0:
                chunk = data[start:]
                if not self.overlong:
                    if len(self.partial) + len(chunk) > MAX_EVENT_LINE:
                        self.result.dropped_bytes += len(self.partial) + len(chunk)
                        self.partial.clear()
                        self.overlong = True
                    else:
                        self.partial += chunk
                else:
                    self.result.dropped_bytes += len(chunk)
                return
            chunk = data[start:end]
            start = end + 1
            if self.overlong:
                self.result.dropped_bytes += len(chunk)
                self.overlong = False
                self.result.rejected_lines += 1
                continue
            if len(self.partial) + len(chunk) > MAX_EVENT_LINE:
                self.result.dropped_bytes += len(self.partial) + len(chunk)
                self.partial.clear()
                self.result.rejected_lines += 1
                continue
            line = bytes(self.partial) + chunk
            self.partial.clear()
            self._line(line)

    def _line(self, line: bytes) -> None:
        if not line.strip():
            return  # each signed line starts with a newline of its own
        if self.first:
            self.first = False
            try:
                info = json.loads(line)
            except ValueError:
                info = None
            if isinstance(info, dict) and info.get("event") == "isolation":
                self.result.isolation.update(info)  # from the supervisor, before any user code
                return
        body, tab, mac = line.rpartition(b"\t")
        expected = hmac.new(self.key, body, hashlib.sha256).hexdigest().encode()
        if not tab or not hmac.compare_digest(mac.strip(), expected):
            self.result.rejected_lines += 1
            return
        try:
            event = json.loads(body)
        except ValueError:
            self.result.rejected_lines += 1
            return
        if not isinstance(event, dict) or event.get("seq") != self.expected:
            self.result.rejected_lines += 1  # replayed or reordered
            return
        self.total += len(line)
        if self.total > MAX_EVENTS_BYTES:  # garbage is dropped as it comes; only results count
            self.result.dropped_bytes += len(line)
            return
        self.expected += 1
        event.pop("seq", None)
        self.result.events.append(event)
        self.on_event(event)
        if event.get("event") == "done":
            self.close()  # nothing is appended after the fact

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc) -> None:
        if not self.eof.done():
            self.eof.set_result(None)


class _Tail(asyncio.Protocol):
    """The child's stdout and stderr: counted, only the last bytes kept."""

    def __init__(self, result: SandboxResult) -> None:
        self.result = result
        self.data = bytearray()
        self.eof = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.result.output_bytes += len(data)
        self.data += data
        if len(self.data) > 2 * TAIL_BYTES:
            del self.data[: len(self.data) - TAIL_BYTES]

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc) -> None:
        if not self.eof.done():
            self.eof.set_result(None)


def _read_tail(path: str, limit: int) -> str:
    """The last `limit` bytes of a regular file (never following a link the child made)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return ""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return ""
        if info.st_size > limit:
            os.lseek(fd, info.st_size - limit, os.SEEK_SET)
        return os.read(fd, limit).decode("utf-8", errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _stop(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def run_sandboxed(
    plan: dict,
    python: str | None = None,
    timeout: float = 20.0,
    memory_mb: int = 4096,
    cwd: str | None = None,
    isolate: bool | None = None,
) -> SandboxResult:
    """Run the plan in a child process. `cwd`: the folder whose files relative paths should
    find (the file's folder). `isolate`: use namespaces where available (default: yes, unless
    GRADGUARD_PROBE_NAMESPACES=0). Cancelling the awaiting task kills the child and its tree."""
    if isolate is None:
        isolate = os.environ.get("GRADGUARD_PROBE_NAMESPACES", "1") != "0"
    result = SandboxResult()
    started = time.perf_counter()
    python = python or sys.executable
    linux = sys.platform.startswith("linux")
    with tempfile.TemporaryDirectory(prefix="gradguard-probe-") as tmp:
        plan_path = os.path.join(tmp, "plan.json")
        stack_path = os.path.join(tmp, "stack.txt")
        private_tmp = os.path.join(tmp, "tmp")
        os.mkdir(private_tmp, 0o700)
        work = _private_workdir(tmp, cwd)
        with open(plan_path, "w", encoding="utf-8") as handle:
            json.dump({**plan, "stack_file": stack_path}, handle)
        env = probe_environment(tmpdir=private_tmp)
        key = secrets.token_hex(32).encode()
        events_r, events_w = os.pipe()
        nonce_r, nonce_w = os.pipe()
        os.write(nonce_w, key + b"\n")
        os.close(nonce_w)
        runner_argv = [
            python,
            str(RUNNER),
            plan_path,
            str(events_w),
            str(nonce_r),
            str(memory_mb),
            str(timeout),
        ]
        if linux:
            spec = {
                "parent": os.getpid(),
                "events_fd": events_w,
                "nonce_fd": nonce_r,
                "cwd": work,
                "argv": runner_argv,
                "isolate": isolate,
            }
            argv = [python, "-I", "-S", str(ISOLATE), json.dumps(spec)]
        else:
            argv = runner_argv
        await _run_child(argv, work, env, key, (events_r, events_w, nonce_r), timeout, result)
        result.stack_dump = _read_tail(stack_path, MAX_STACK_BYTES)
        if linux and result.isolation:
            result.isolation["env_kept"] = len(env)
            result.isolation["workdir"] = True
    result.seconds = time.perf_counter() - started
    if isolate and linux and result.returncode == EXIT_NO_IDENTITY and not result.events:
        # namespaces exist but the user could not be mapped into one: run without them
        retry = await run_sandboxed(plan, python, timeout, memory_mb, cwd, isolate=False)
        retry.isolation["reason"] = "a user namespace could be created but not entered"
        return retry
    return result


async def _run_child(
    argv: list[str],
    work: str,
    env: dict,
    key: bytes,
    fds: tuple[int, int, int],
    timeout: float,
    result: SandboxResult,
) -> None:
    """Start the child, read its events and output into `result` until it ends or the deadline
    passes, and leave nothing of its process tree behind. `fds`: the events pipe's ends and the
    nonce pipe's reading end (the child's ends are closed here once it has them)."""
    events_r, events_w, nonce_r = fds
    loop = asyncio.get_running_loop()
    loaded = asyncio.Event()

    def on_event(event: dict) -> None:
        if event.get("event") == "stage" and event.get("stage") == "load":
            loaded.set()

    reader = _EventReader(key, result, on_event)
    # the output pipe is ours, not asyncio's: asyncio's Process.wait() also waits until
    # the pipe is closed, which a process that escaped the kill may never do
    output_r, output_w = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output_w,
            stderr=output_w,
            start_new_session=True,
            cwd=work,
            env=env,
            pass_fds=(events_w, nonce_r),
        )
    finally:
        for fd in (events_w, nonce_r, output_w):
            os.close(fd)
    proctree.SPAWNED.add(proc.pid)
    events_transport, _ = await loop.connect_read_pipe(lambda: reader, os.fdopen(events_r, "rb", 0))
    tail = _Tail(result)
    output_transport, _ = await loop.connect_read_pipe(lambda: tail, os.fdopen(output_r, "rb", 0))

    def close() -> None:
        reader.close()
        events_transport.close()
        output_transport.close()

    try:
        await _watch(proc, loaded, timeout, result)
    except BaseException:
        close()
        raise
    for waiting in (tail.eof, reader.eof):  # what is still in the pipes, briefly
        try:
            await asyncio.wait_for(asyncio.shield(waiting), timeout=2)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
    close()
    result.returncode = proc.returncode
    result.output_tail = bytes(tail.data[-TAIL_BYTES:]).decode("utf-8", errors="replace")


async def _watch(proc, loaded: asyncio.Event, timeout: float, result: SandboxResult) -> None:
    """Wait for the child within the deadlines; on a timeout or a cancellation, stop it. Its
    process group and any orphans are killed in every case."""
    pgid = proc.pid  # start_new_session: the child leads its own group
    try:
        try:
            await _wait_with_deadline(proc, loaded, timeout, import_timeout=max(IMPORT_TIMEOUT, timeout))
        except asyncio.TimeoutError:
            result.timed_out = True
            # ask for a stack dump (faulthandler) to say where it was stuck, then stop it
            _stop(proc.pid, signal.SIGUSR1)
            await asyncio.sleep(0.3)
            await _terminate(proc, pgid)
    except BaseException:
        await asyncio.shield(_terminate(proc, pgid))  # cancelled from the editor, or Ctrl-C
        raise
    finally:
        _kill_group(pgid)  # whatever the user's code started is gone too
        proctree.SPAWNED.discard(proc.pid)
        if proctree.is_subreaper():  # the server and `gradguard probe`: orphans came to us
            proctree.kill_orphans()


async def _terminate(proc, pgid: int) -> None:
    """Ask the supervisor to kill the run (it knows the whole tree), then make sure."""
    if proc.returncode is None:
        _stop(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=GRACE_SECONDS)
        except asyncio.TimeoutError:
            pass
    _kill_group(pgid)
    if proc.returncode is None:
        _stop(proc.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except asyncio.TimeoutError:
            pass


async def _wait_with_deadline(proc, loaded: asyncio.Event, timeout: float, import_timeout: float) -> None:
    """Wait for the child. The time limit counts from the moment torch is imported (the
    child's "load" stage): a slow import on a busy machine is not the user's code."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + import_timeout
    waiter = asyncio.ensure_future(proc.wait())
    loading = asyncio.ensure_future(loaded.wait())
    counting = False
    try:
        while True:
            if not counting and loading.done():
                counting = True
                deadline = loop.time() + timeout
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            wanted = {waiter} if counting else {waiter, loading}
            done, _ = await asyncio.wait(wanted, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if waiter in done:
                return
    finally:
        for task in (waiter, loading):
            if not task.done():
                task.cancel()
