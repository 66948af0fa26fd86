"""The probe's supervisor (Linux): isolate what it can without privileges, run the runner, and
make sure nothing it started outlives it.

Run as a script (standard library only, like runner.py; it never imports gradguard):

    python -I -S isolate.py SPEC_JSON

SPEC: {"parent": pid, "events_fd": n, "cwd": dir, "argv": [python, runner.py, ...], "isolate": bool}

1. It dies with its parent (`PR_SET_PDEATHSIG`: SIGTERM, whose handler kills the whole run), and
   is the subreaper of everything below it.
2. Where unprivileged user namespaces are allowed, it moves into new user and network namespaces
   (only a loopback interface: no network) and makes its children start a new PID namespace. The
   first child is that namespace's init; when init ends, for whatever reason, the kernel kills
   every process left in the namespace: `setsid`, double forks and daemons cannot escape it.
   Init dies with the supervisor, the supervisor with the server.
3. Without namespaces it falls back to the process tree: the runner and whatever it starts stay
   below the supervisor (subreaper), which kills all of them when the runner ends.
4. What it managed is the first line of the events pipe, written before any user code runs:
   {"event": "isolation", ...} (the parent accepts an unsigned line only there).

The runner runs as the second process of the namespace (init ignores signals it has no handler
for, so the user's code must not be init). Exit status: the runner's (a signal is re-raised).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
EXIT_PARENT_GONE = 70

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _prctl(option: int, value: int) -> bool:
    return _libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) == 0


def _unshare(flags: int) -> str | None:
    """None on success, else why not."""
    if _libc.unshare(ctypes.c_int(flags)) == 0:
        return None
    code = ctypes.get_errno()
    return f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _enter_namespaces(uid: int, gid: int) -> dict:
    """Try user+network+PID namespaces, then fewer; map our own uid and gid in the new user
    namespace; bring its loopback interface up."""
    tried = []
    for flags, names in (
        (CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS, ("network", "pid", "mount")),
        (CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID, ("network", "pid")),
        (CLONE_NEWUSER | CLONE_NEWNET, ("network",)),
        (CLONE_NEWUSER | CLONE_NEWPID, ("pid",)),
    ):
        why = _unshare(flags)
        if why is not None:
            tried.append(why)
            continue
        try:
            try:
                _write("/proc/self/setgroups", "deny")
            except FileNotFoundError:
                pass
            _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
            _write("/proc/self/gid_map", f"{gid} {gid} 1\n")
        except OSError as exc:
            # the namespace exists but we have no identity in it: cannot go on in it
            return {"fatal": f"cannot map the user into the new user namespace: {exc}"}
        loopback = _loopback_up() if "network" in names else ""
        return {"namespaces": list(names), "loopback": loopback}
    reason = tried[0] if tried else "unknown"
    return {"namespaces": [], "reason": f"unprivileged user namespaces are not available ({reason})"}


def _loopback_up() -> str:
    import fcntl
    import socket
    import struct

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            request = struct.pack("16sh22x", b"lo", 0)
            flags = struct.unpack("16sh22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))
        return "up"
    except OSError as exc:
        return f"down ({exc})"


# -- the process tree (the fallback without a PID namespace) ------------------------------------------
def _children_table() -> dict[int, list[int]]:
    table: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read(1024).rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[0] not in (b"Z", b"X"):
            table.setdefault(int(fields[1]), []).append(int(entry))
    return table


def _descendants(pid: int) -> list[int]:
    table = _children_table()
    found, todo = [], [pid]
    while todo:
        for child in table.get(todo.pop(), ()):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def _kill_below(pid: int) -> None:
    """Stop, then kill, every descendant of pid until none is left."""
    for _ in range(50):
        found = _descendants(pid)
        if not found:
            return
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for child in found:
                try:
                    os.kill(child, sig)
                except OSError:
                    pass
        _reap_all()
        time.sleep(0.01)


def _reap_all() -> list[tuple[int, int]]:
    reaped: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, status))


def _code_of(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def _exit_as(code: int) -> None:
    """Exit with code; 128+N as the signal N itself, so the parent sees how the runner ended."""
    sys.stdout.flush()
    if 128 < code < 128 + 65:
        sig = code - 128
        try:
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            time.sleep(1)
        except (OSError, ValueError):
            pass
    os._exit(code)


def _run_worker(spec: dict) -> None:
    """In the child: die with the parent, go to the private directory, become the runner."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.chdir(spec["cwd"])
        os.execv(spec["argv"][0], spec["argv"])
    except OSError as exc:
        os.write(2, f"gradguard probe: cannot start {spec['argv'][0]}: {exc}\n".encode())
    os._exit(127)


def _wait_for(pid: int, on_other=None) -> int:
    """Reap children until pid ends; the status code of pid."""
    while True:
        try:
            child, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
        if child == pid:
            return _code_of(status)
        if on_other is not None:
            on_other(child)


def _mount_proc() -> str:
    """In the new mount namespace: a /proc of the new PID namespace, so that /proc/<getpid()>
    and /proc/self agree (psutil and friends read /proc/<pid>)."""
    _libc.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_void_p,
    ]
    if _libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return f"host /proc ({os.strerror(ctypes.get_errno())})"
    if _libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
        return f"host /proc ({os.strerror(ctypes.get_errno())})"
    return "own /proc"


def _namespace_init(spec: dict, mount: bool, status_w: int, go_r: int) -> None:
    """PID 1 of the new PID namespace: mount its /proc, start the runner (once the supervisor
    has reported the isolation), forward signals, reap; when the runner ends, end too (the
    kernel then kills whatever is left in the namespace)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.write(status_w, (_mount_proc() if mount else "host /proc").encode())
    os.close(status_w)
    os.read(go_r, 1)
    os.close(go_r)
    worker = os.fork()
    if worker == 0:
        _run_worker(spec)

    def forward(sig, _frame) -> None:
        try:
            os.kill(worker, sig)
        except OSError:
            pass
        if sig == signal.SIGTERM:
            os._exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGUSR1, forward)
    signal.signal(signal.SIGTERM, forward)
    _close_channel(spec)
    os._exit(_wait_for(worker))


def _close_channel(spec: dict) -> None:
    for key in ("events_fd", "nonce_fd"):
        try:
            os.close(int(spec[key]))
        except (OSError, KeyError, ValueError):
            pass


def main(argv: list[str]) -> None:
    spec = json.loads(argv[0])
    # SIGTERM, not SIGKILL: without a PID namespace, the handler below still has to kill the tree
    signal.signal(signal.SIGTERM, lambda *_: os._exit(128 + signal.SIGTERM))
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != spec["parent"]:
        os._exit(EXIT_PARENT_GONE)  # the server died before we could tie ourselves to it
    info: dict = {"event": "isolation", "subreaper": _prctl(PR_SET_CHILD_SUBREAPER, 1)}
    if spec.get("isolate", True):
        state = _enter_namespaces(os.getuid(), os.getgid())
        if "fatal" in state:
            os.write(2, f"gradguard probe: {state['fatal']}\n".encode())
            os._exit(71)
        info.update(state)
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # in case the new credentials cleared it
    else:
        info.update({"namespaces": [], "reason": "isolation was turned off"})
    pid_namespace = "pid" in info.get("namespaces", ())
    status_r, status_w = os.pipe()
    go_r, go_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(status_r)
        os.close(go_w)
        if pid_namespace:
            _namespace_init(spec, "mount" in info["namespaces"], status_w, go_r)
        os.close(status_w)
        os.read(go_r, 1)  # the isolation line goes first
        os.close(go_r)
        _run_worker(spec)
    os.close(status_w)
    os.close(go_r)
    if pid_namespace:
        info["proc"] = os.read(status_r, 512).decode(errors="replace") or "unknown"
    os.close(status_r)
    os.write(int(spec["events_fd"]), (json.dumps(info) + "\n").encode())
    os.write(go_w, b"g")
    os.close(go_w)
    _close_channel(spec)

    def stop(sig, _frame) -> None:
        if sig == signal.SIGUSR1:  # "where are you": the runner dumps its stack
            try:
                os.kill(child, sig)
            except OSError:
                pass
            return
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass
        if not pid_namespace:
            _kill_below(os.getpid())
        os._exit(128 + sig)

    signal.signal(signal.SIGUSR1, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    code = _wait_for(child)
    _kill_below(os.getpid())  # without a PID namespace: what the runner left behind
    _exit_as(code)


if __name__ == "__main__":
    main(sys.argv[1:])
