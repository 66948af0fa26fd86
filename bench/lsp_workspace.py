"""The language server's workspace index (issue 11): figures, never pass/fail.

Through real stdio sessions with `python -m gradguard lsp` (VS Code-like capabilities:
progress, workspace/configuration, watched files), on three workspaces: an empty one, a
synthetic one of 5,000 small model files (tests/lsp/workspace_tree.py) and 5,000 files of
real code (transformers' sources, installed or from bench/.corpus, plus copies of its
model packages: ~2 million lines, built in bench/.corpus/workspace5000/):

* `first`: server start -> the first publishDiagnostics of a file opened right after
  `initialized` (a model importing its base class from another file), median of --repeat
  runs, plus the time the index takes in the background and the server's RSS after it;
* `workspace`: `diagnosticMode: workspace`: start -> index built -> every file checked
  (from the $/progress notifications), CPU seconds of the server and its worker processes,
  peak RSS of the server and of the whole process tree; and the didChange ->
  publishDiagnostics latency of one-character edits in an open file while the workspace is
  being checked, against the same edits once it is done;
* `shutdown`: `shutdown` + `exit` sent while the index is built and while the workspace is
  checked: the time to the answer, to the server's exit and to the end of its processes.

    .venv/bin/python bench/lsp_workspace.py [first|workspace|shutdown|all] [--repeat 3]

JSON goes to bench/results/lsp-workspace-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import corpus
from lsp_latency import Client, percentiles

from tests.lsp.workspace_tree import synthetic_workspace

BASE = "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n"
MODEL = (
    "import torch\nfrom base import Base\n\n\nclass Net(Base):\n    def forward(self, x):\n"
    "        y = torch.relu(x)\n        return y\n\n    def backward(self, grad):\n        return grad\n"
)
EDIT_LINE = 6  # "        y = torch.relu(x)"

CAPABILITIES = {
    "window": {"workDoneProgress": True},
    "workspace": {
        "configuration": True,
        "didChangeWatchedFiles": {"dynamicRegistration": True},
        "workspaceFolders": True,
    },
    "textDocument": {"publishDiagnostics": {"versionSupport": True}},
}


class WorkspaceClient(Client):
    """Answers workspace/configuration with the given settings and records $/progress."""

    def __init__(self, command, env, settings: dict) -> None:
        self.settings = settings
        self.progress: dict[str, list[tuple[float, dict]]] = {}
        self.published: list[tuple[float, dict]] = []
        super().__init__(command, env)

    def _answer(self, message: dict) -> None:
        method = message.get("method")
        if method == "$/progress":
            params = message["params"]
            self.progress.setdefault(str(params["token"]), []).append((time.perf_counter(), params["value"]))
        elif method == "textDocument/publishDiagnostics":
            self.published.append((time.perf_counter(), message["params"]))
        if "id" in message and method is not None:
            result = None
            if method == "workspace/configuration":
                result = [self.settings for _ in message["params"].get("items", [])]
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def pump(self, until, timeout: float = 600.0):
        """Handle messages until `until()` is true."""
        deadline = time.perf_counter() + timeout
        while not until():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError("the server did not get there in time")
            try:
                _, message = self.messages.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            self._answer(message)

    def ended(self, prefix: str) -> tuple[float, str] | None:
        for token, values in self.progress.items():
            if token.startswith(prefix) and values and values[-1][1].get("kind") == "end":
                return values[-1][0], values[-1][1].get("message", "")
        return None

    def begun(self, prefix: str) -> tuple[float, str] | None:
        for token, values in self.progress.items():
            if token.startswith(prefix) and values and values[0][1].get("kind") == "begin":
                return values[0][0], values[0][1].get("title", "")
        return None


def server_command() -> tuple[list[str], dict]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "server"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return [sys.executable, "-m", "gradguard", "lsp", "--log-level", "warning"], env


def start(root: Path, settings: dict) -> WorkspaceClient:
    command, env = server_command()
    client = WorkspaceClient(command, env, settings)
    client.request(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": root.as_uri(),
            "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
            "capabilities": CAPABILITIES,
            "initializationOptions": {"settings": settings, "interpreter": [sys.executable]},
        },
    )
    client.notify("initialized", {})
    return client


def open_doc(client: Client, path: Path, version: int = 1) -> str:
    uri = path.as_uri()
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": version, "text": path.read_text()}},
    )
    return uri


def first_publish(client: WorkspaceClient, uri: str, version: int | None = 1) -> tuple[float, dict]:
    found: list = []

    def done() -> bool:
        for stamp, params in client.published:
            if params["uri"] == uri and (version is None or params.get("version") == version):
                found.append((stamp, params))
                return True
        return False

    client.pump(done)
    return found[0]


class TreeSampler:
    """Samples CPU time and RSS of a process and all its descendants (/proc) until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu: dict[int, float] = {}
        self.peak_tree_rss = 0.0
        self.peak_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _descendants(self) -> list[int]:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as handle:
                        fields = handle.read().rsplit(")", 1)[1].split()
                    parents[int(entry)] = int(fields[1])
                except OSError:
                    continue
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(p for p, parent in parents.items() if parent == pid)
        return out

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.is_set():
            total_rss = 0.0
            pids = self._descendants()
            self.peak_children = max(self.peak_children, len(pids) - 1)
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/stat") as handle:
                        fields = handle.read().rsplit(")", 1)[1].split()
                    self.cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
                    with open(f"/proc/{pid}/status") as handle:
                        for line in handle:
                            if line.startswith("VmRSS:"):
                                total_rss += int(line.split()[1]) / 1024
                except OSError:
                    continue
            self.peak_tree_rss = max(self.peak_tree_rss, total_rss)
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- the workspaces -------------------------------------------------------------------------------
def real_tree() -> Path:
    """5,000 files of real code: transformers plus copies of its model packages."""
    tree = corpus.CORPUS_DIR / "workspace5000"
    if tree.exists():
        return tree
    spec = importlib.util.find_spec("transformers")
    source = Path(spec.origin).parent if spec and spec.origin else corpus.ensure_package("transformers")
    tmp = tree.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(
        source, tmp / "transformers", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so")
    )
    count = sum(1 for _ in tmp.rglob("*.py"))
    copy = tmp / "transformers_copy" / "models"
    copy.mkdir(parents=True)
    (tmp / "transformers_copy" / "__init__.py").write_text("")
    (copy / "__init__.py").write_text("")
    for model in sorted((tmp / "transformers" / "models").iterdir()):
        if count >= 5000:
            break
        if model.is_dir():
            shutil.copytree(model, copy / model.name)
            count += sum(1 for _ in (copy / model.name).rglob("*.py"))
    os.replace(tmp, tree)
    return tree


def workspaces(scratch: Path) -> dict[str, Path]:
    empty = scratch / "empty"
    empty.mkdir()
    synthetic = scratch / "synthetic5000"
    synthetic_workspace(synthetic, 5000)
    return {"empty": empty, "synthetic5000": synthetic, "real5000": real_tree()}


def stats_of(root: Path) -> dict:
    files = [p for p in root.rglob("*.py")]
    return {"files": len(files), "lines": sum(p.read_bytes().count(b"\n") for p in files)}


def with_model_files(root: Path, scratch: Path) -> tuple[Path, Path]:
    """A model and its base class written into the workspace (removed afterwards)."""
    directory = root / "zz_gradguard_bench"
    directory.mkdir(exist_ok=True)
    (directory / "base.py").write_text(BASE)
    (directory / "model.py").write_text(MODEL)
    return directory / "model.py", directory


# -- measurements ---------------------------------------------------------------------------------
def measure_first(roots: dict[str, Path], repeat: int) -> dict:
    """Runs interleaved (empty, synthetic, real, empty, ...): the machine's load drifts."""
    runs: dict[str, list[float]] = {name: [] for name in roots}
    index_s: dict[str, list[float]] = {name: [] for name in roots}
    rss: dict[str, list[float]] = {name: [] for name in roots}
    extras = {name: with_model_files(root, root) for name, root in roots.items()}
    try:
        for _ in range(repeat):
            for name, root in roots.items():
                model = extras[name][0]
                client = start(root, {"debounceMs": 0})
                uri = open_doc(client, model)
                stamp, params = first_publish(client, uri)
                runs[name].append((stamp - client.started) * 1000)
                assert [d["code"] for d in params["diagnostics"]] == ["GG101"], params
                client.pump(lambda c=client: c.ended("gradguard-index") is not None)
                index_s[name].append(client.ended("gradguard-index")[0] - client.started)
                time.sleep(0.5)
                rss[name].append(client.rss_mb())
                client.close()
    finally:
        for _, extra in extras.values():
            shutil.rmtree(extra, ignore_errors=True)
    out = {}
    for name, root in roots.items():
        out[name] = {
            **stats_of(root),
            "start_to_first_diagnostics_ms": {
                "runs": [round(r) for r in runs[name]],
                "median": round(statistics.median(runs[name])),
            },
            "start_to_index_ready_s": round(statistics.median(index_s[name]), 2),
            "rss_after_index_mb": round(statistics.median(rss[name]), 1),
        }
        print(
            f"{name:>14}: first diagnostics {out[name]['start_to_first_diagnostics_ms']['median']} ms "
            f"(runs {out[name]['start_to_first_diagnostics_ms']['runs']}), index ready after "
            f"{out[name]['start_to_index_ready_s']} s, RSS {out[name]['rss_after_index_mb']} MB",
            flush=True,
        )
    return out


def edits(client: WorkspaceClient, uri: str, version: int, count: int) -> tuple[list[float], int]:
    samples = []
    for i in range(count):
        version += 1
        col = len("        y")
        text, end = ("q", col) if i % 2 == 0 else ("", col + 1)
        sent = client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": EDIT_LINE, "character": col},
                            "end": {"line": EDIT_LINE, "character": end},
                        },
                        "text": text,
                    }
                ],
            },
        )
        stamp, _ = first_publish(client, uri, version)
        samples.append((stamp - sent) * 1000)
        time.sleep(0.05)
    return samples, version


def measure_workspace(roots: dict[str, Path]) -> dict:
    out = {}
    for name, root in roots.items():
        if name == "empty":
            continue
        model, extra = with_model_files(root, root)
        try:
            client = start(root, {"debounceMs": 0, "diagnosticMode": "workspace"})
            sampler = TreeSampler(client.proc.pid)
            uri = open_doc(client, model)
            first_publish(client, uri)
            client.pump(lambda c=client: c.ended("gradguard-index") is not None)
            indexed = client.ended("gradguard-index")
            client.pump(lambda c=client: c.begun("gradguard-check") is not None)
            during, version = edits(client, uri, 1, 20)
            still_checking = client.ended("gradguard-check") is None
            client.pump(lambda c=client: c.ended("gradguard-check") is not None, timeout=1800)
            checked = client.ended("gradguard-check")
            began = client.begun("gradguard-check")
            sampler.stop()
            server_peak = peak_rss_mb(client.proc.pid)
            time.sleep(0.5)
            after, version = edits(client, uri, version, 20)
            files_with_problems = len({p["uri"] for _, p in client.published if p["diagnostics"]})
            rss_end = client.rss_mb()
            client.close()
        finally:
            shutil.rmtree(extra, ignore_errors=True)
        out[name] = {
            **stats_of(root),
            "start_to_indexed_s": round(indexed[0] - client.started, 2),
            "index_message": indexed[1],
            "check_title": began[1],
            "check_s": round(checked[0] - began[0], 2),
            "start_to_checked_s": round(checked[0] - client.started, 2),
            "check_message": checked[1],
            "cpu_s_server_and_workers": round(sum(sampler.cpu.values()), 1),
            "processes_seen": len(sampler.cpu),
            "peak_rss_server_mb": round(server_peak, 1),
            "peak_rss_tree_mb": round(sampler.peak_tree_rss, 1),
            "rss_server_after_mb": round(rss_end, 1),
            "files_published_with_problems": files_with_problems,
            "edit_latency_while_checking": {**percentiles(during), "all_during_check": still_checking},
            "edit_latency_after": percentiles(after),
        }
        r = out[name]
        print(
            f"{name:>14}: indexed after {r['start_to_indexed_s']} s; '{r['check_title']}' took {r['check_s']} s "
            f"({r['check_message']}); CPU {r['cpu_s_server_and_workers']} s in {r['processes_seen']} processes; "
            f"peak RSS server {r['peak_rss_server_mb']} MB, tree {r['peak_rss_tree_mb']} MB; "
            f"edit p50 {r['edit_latency_while_checking']['p50_ms']} ms while checking, "
            f"{r['edit_latency_after']['p50_ms']} ms after",
            flush=True,
        )
    return out


def shutdown_during(client: WorkspaceClient) -> dict:
    """`shutdown` then `exit` while the server works: the time to the answer, and to the end of
    the server and of every process it started."""
    children = TreeSampler(client.proc.pid)._descendants()
    sent = time.perf_counter()
    stamp, _ = client.request("shutdown", None)  # type: ignore[arg-type]
    answered = stamp - sent
    client.notify("exit", None)  # type: ignore[arg-type]
    client.proc.wait(timeout=60)
    exited = time.perf_counter() - sent
    deadline = time.perf_counter() + 30
    while any(os.path.exists(f"/proc/{pid}") for pid in children) and time.perf_counter() < deadline:
        time.sleep(0.01)
    gone = time.perf_counter() - sent
    return {
        "shutdown_answered_s": round(answered, 3),
        "exited_s": round(exited, 3),
        "children": len(children),
        "children_gone_s": round(gone, 3),
    }


def _percent(client: WorkspaceClient, prefix: str) -> int:
    best = -1
    for token, values in client.progress.items():
        if token.startswith(prefix):
            for _, value in values:
                best = max(best, int(value.get("percentage") or 0))
    return best


def measure_shutdown(roots: dict[str, Path], repeat: int) -> dict:
    """Shutdown while the index is built (early, and near its end, where the index is pickled
    for the worker processes), and while the workspace is checked (workspace mode)."""
    phases = {
        "indexing": lambda c: c.begun("gradguard-index") is not None,
        "index_90%": lambda c: _percent(c, "gradguard-index") >= 90,
        "checking": lambda c: _percent(c, "gradguard-check") >= 5,
    }
    out: dict[str, dict[str, list[dict]]] = {}
    for name in ("synthetic5000", "real5000"):
        out[name] = {phase: [] for phase in phases}
        for _ in range(repeat):
            for phase, reached in phases.items():
                client = start(roots[name], {"debounceMs": 0, "diagnosticMode": "workspace"})
                client.pump(lambda c=client, r=reached: r(c), timeout=900)
                out[name][phase].append(shutdown_during(client))
        for phase, runs in out[name].items():
            print(
                f"{name}: shutdown while {phase}: answered in {[r['shutdown_answered_s'] for r in runs]} s, "
                f"exited after {[r['exited_s'] for r in runs]} s, its processes gone after "
                f"{[r['children_gone_s'] for r in runs]} s",
                flush=True,
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="all", choices=["first", "workspace", "shutdown", "all"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix="gradguard-ws-") as scratch:
        roots = workspaces(Path(scratch))
        if args.what in ("first", "all"):
            results["first"] = measure_first(roots, args.repeat)
        if args.what in ("workspace", "all"):
            results["workspace"] = measure_workspace(roots)
        if args.what in ("shutdown", "all"):
            results["shutdown"] = measure_shutdown(roots, args.repeat)
    results["load_average_after"] = os.getloadavg()[0]
    corpus.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = corpus.RESULTS_DIR / f"lsp-workspace-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
