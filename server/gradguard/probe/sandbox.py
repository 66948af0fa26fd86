"""Run `runner.py` in a child process with limits, and collect what it reported.

* the child gets its own session (process group), so a timeout or a cancel kills it
  and everything it started (`os.killpg`);
* the address-space limit is set by the child itself before torch is imported
  (`resource.setrlimit(RLIMIT_AS)`); importing torch 2.13 (CPU) peaks at about 520 MB of
  address space (measured: a 512 MB limit still imports it, 384 MB does not), so the
  limit is never set below 768 MB;
* the child's stdout and stderr (the user's prints) are read incrementally and only a
  bounded tail is kept, so printing 100 MB costs nothing;
* results come through a separate events file, never through stdout, so user prints
  cannot corrupt them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RUNNER = Path(__file__).with_name("runner.py")
TAIL_BYTES = 16 * 1024
MIN_MEMORY_MB = 768  # below this, `import torch` itself fails
IMPORT_TIMEOUT = 60.0  # starting Python and importing torch, before the time limit starts


@dataclass
class SandboxResult:
    events: list[dict] = field(default_factory=list)
    returncode: int | None = None
    timed_out: bool = False
    output_tail: str = ""
    output_bytes: int = 0
    stack_dump: str = ""  # where the child was when it timed out (faulthandler)
    seconds: float = 0.0

    @property
    def finished(self) -> bool:
        return any(e.get("event") == "done" for e in self.events)

    def last_stage(self) -> dict | None:
        stages = [e for e in self.events if e.get("event") == "stage"]
        return stages[-1] if stages else None


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
) -> SandboxResult:
    """Run the plan in a child process. Cancelling the awaiting task kills the child."""
    result = SandboxResult()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gradguard-probe-") as tmp:
        plan_path = os.path.join(tmp, "plan.json")
        events_path = os.path.join(tmp, "events.jsonl")
        stack_path = os.path.join(tmp, "stack.txt")
        plan = {**plan, "stack_file": stack_path}
        with open(plan_path, "w", encoding="utf-8") as handle:
            json.dump(plan, handle)
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"  # what was printed before a crash reaches the tail
        env.pop("PYTHONSTARTUP", None)
        env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
        proc = await asyncio.create_subprocess_exec(
            python or sys.executable,
            str(RUNNER),
            plan_path,
            events_path,
            str(memory_mb),
            str(timeout),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
            env=env,
        )
        pgid = proc.pid  # start_new_session: the child leads its own group
        tail = bytearray()

        async def drain() -> None:
            assert proc.stdout is not None
            while True:
                chunk = await proc.stdout.read(65536)
                if not chunk:
                    return
                result.output_bytes += len(chunk)
                tail.extend(chunk)
                if len(tail) > 2 * TAIL_BYTES:
                    del tail[: len(tail) - TAIL_BYTES]

        reader = asyncio.ensure_future(drain())
        try:
            try:
                await _wait_with_deadline(
                    proc, events_path, timeout, import_timeout=max(IMPORT_TIMEOUT, timeout)
                )
            except asyncio.TimeoutError:
                result.timed_out = True
                # ask for a stack dump (faulthandler) to say where it was stuck, then kill
                try:
                    os.kill(proc.pid, signal.SIGUSR1)
                    await asyncio.sleep(0.3)
                except ProcessLookupError:
                    pass
                _kill_group(pgid)
                await proc.wait()
        except BaseException:
            _kill_group(pgid)  # cancelled from the editor, or Ctrl-C
            reader.cancel()
            try:
                await asyncio.wait_for(proc.wait(), timeout=5)
            except BaseException:
                pass
            raise
        finally:
            _kill_group(pgid)  # whatever the user's code started is gone too
        try:
            await asyncio.wait_for(reader, timeout=2)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            reader.cancel()
        result.returncode = proc.returncode
        result.output_tail = bytes(tail[-TAIL_BYTES:]).decode("utf-8", errors="replace")
        result.events = _read_events(events_path)
        try:
            result.stack_dump = Path(stack_path).read_text(encoding="utf-8", errors="replace")[-20000:]
        except OSError:
            pass
    result.seconds = time.perf_counter() - started
    return result


async def _wait_with_deadline(proc, events_path: str, timeout: float, import_timeout: float) -> None:
    """Wait for the child. The time limit counts from the moment torch is imported (the
    child's "load" stage): a slow import on a busy machine is not the user's code."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + import_timeout
    loaded = False
    waiter = asyncio.ensure_future(proc.wait())
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            done, _ = await asyncio.wait({waiter}, timeout=min(remaining, 0.1 if not loaded else remaining))
            if done:
                return
            if not loaded and _import_finished(events_path):
                loaded = True
                deadline = loop.time() + timeout
    finally:
        if not waiter.done():
            waiter.cancel()


def _import_finished(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return b'"stage": "load"' in handle.read(4096)
    except OSError:
        return False


def _read_events(path: str) -> list[dict]:
    events = []
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                try:
                    events.append(json.loads(raw))
                except ValueError:
                    continue  # a partial last line from a killed child
    except OSError:
        pass
    return events
