"""Helpers for the probe tests: they run the probe (and so torch) in subprocesses."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "probe"
SERVER_DIR = ROOT / "server"
CACHE_HOME = tempfile.mkdtemp(prefix="gradguard-test-cache-")


def probe_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SERVER_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["NO_COLOR"] = "1"
    env["XDG_CACHE_HOME"] = CACHE_HOME  # the server writes rule explanations there
    env.update(extra)
    return env


def run_probes(jobs: dict[str, tuple[str, str]], concurrency: int = 2, **kwargs):
    """{key: (text, path)} -> {key: ProbeReport}, a few probe subprocesses at a time."""
    from gradguard.probe.report import probe_source

    async def main():
        gate = asyncio.Semaphore(concurrency)

        async def one(key, text, path):
            async with gate:
                return key, await probe_source(text, path, python=sys.executable, **kwargs)

        return dict(await asyncio.gather(*(one(k, t, p) for k, (t, p) in jobs.items())))

    return asyncio.run(main())


def process_gone(pid: int) -> bool:
    """No such process, or only a zombie left for init to reap."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains marker or that hold a file whose path does
    (the probe may run in its own PID namespace, where its pids are not ours)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or process_gone(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(int(entry))
                    continue
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if marker in os.readlink(f"/proc/{entry}/fd/{fd}"):
                    found.append(int(entry))
                    break
        except OSError:
            continue
    return found
