"""The process tree of the language server and the probe (Linux; elsewhere these do nothing).

* `set_subreaper()`: `prctl(PR_SET_CHILD_SUBREAPER)`: a process that leaves the tree (double fork,
  `setsid`, its parent killed) is re-parented to us instead of to init, so it stays findable;
* `kill_descendants()`: stop, then kill, every process below us, repeatedly until none is left
  (a process that forks while we kill is caught in the next round);
* `kill_orphans(known)`: the same for the children we did not start ourselves (orphans that were
  re-parented to us), leaving `known` children alone.

Descendants are found in /proc (parent pids); zombie children are reaped with `waitpid` on their
pid only, never `waitpid(-1)`, so asyncio's child watchers still see the processes they wait for.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable

log = logging.getLogger("gradguard.proctree")

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

# children started by this process that must not be treated as orphans (probe supervisors)
SPAWNED: set[int] = set()

_libc = None
_subreaper = False


def _prctl(option: int, value: int) -> bool:
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return _libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def set_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process. False where unsupported."""
    global _subreaper
    _subreaper = _prctl(PR_SET_CHILD_SUBREAPER, 1) or _subreaper
    return _subreaper


def is_subreaper() -> bool:
    """Did this process make itself a subreaper (the language server, `gradguard probe`)?"""
    return _subreaper


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    return _prctl(PR_SET_PDEATHSIG, int(sig))


def _table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process we can see."""
    table: dict[int, tuple[int, str]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                data = handle.read(1024)
        except OSError:
            continue
        fields = data.rpartition(b")")[2].split()
        if len(fields) >= 2:
            table[int(entry)] = (int(fields[1]), fields[0].decode("ascii", "replace"))
    return table


def descendants(pid: int | None = None, table: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """Every live (non-zombie) process below pid, parents before children."""
    root = os.getpid() if pid is None else pid
    table = _table() if table is None else table
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = [root]
    seen = {root}
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
                if table[child][1] not in ("Z", "X"):
                    found.append(child)
    return found


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _reap(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            pass


def kill_tree(roots: Iterable[int], rounds: int = 50, keep: Iterable[int] = ()) -> int:
    """SIGSTOP then SIGKILL the given processes and everything below them, and what gets
    re-parented to us meanwhile (except `keep`); returns how many were killed. Those that were
    our children are reaped."""
    me = os.getpid()
    keep = set(keep)
    roots = [p for p in roots if p != me]
    if not roots or not sys.platform.startswith("linux"):
        _signal_all(roots, signal.SIGKILL)
        return len(roots)
    killed: set[int] = set()
    for _ in range(rounds):
        table = _table()
        targets = [p for p in roots if p in table and table[p][1] not in ("Z", "X")]
        for root in roots:
            targets.extend(descendants(root, table))
        targets = [p for p in dict.fromkeys(targets) if p != me]
        if not targets:
            break
        _signal_all(targets, signal.SIGSTOP)  # no more forks while we look again
        killed.update(targets)
        table = _table()
        later = [p for root in roots for p in descendants(root, table) if p not in targets]
        _signal_all(later, signal.SIGSTOP)
        _signal_all(targets + later, signal.SIGKILL)
        killed.update(later)
        # orphans of the killed are re-parented to us (subreaper): they become roots too
        adopted = [p for p, (parent, _) in _table().items() if parent == me and p not in keep]
        roots = list(dict.fromkeys(roots + adopted))
        time.sleep(0.01)
    _reap(p for p, (parent, _) in _table().items() if parent == me and p in killed | set(roots))
    return len(killed)


def kill_descendants() -> int:
    """Kill every process below this one (on exit)."""
    me = os.getpid()
    children = [p for p, (parent, _) in _table().items() if parent == me]
    count = kill_tree(children)
    if count:
        log.info("killed %d leftover process(es)", count)
    return count


def kill_orphans(known: Iterable[int] = ()) -> int:
    """Kill the children (and their trees) that this process did not start itself: orphans
    re-parented to it because it is their subreaper. `known` and SPAWNED are left alone."""
    me = os.getpid()
    keep = set(known) | SPAWNED
    table = _table()
    orphans = [p for p, (parent, state) in table.items() if parent == me and p not in keep]
    zombies = [p for p in orphans if table[p][1] in ("Z", "X")]
    _reap(zombies)
    live = [p for p in orphans if p not in zombies]
    if not live:
        return 0
    count = kill_tree(live, keep=keep)
    log.info("killed %d orphaned process(es)", count)
    return count
