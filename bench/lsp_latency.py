"""Language-server latency benchmark (issue 4).

Through a real stdio session with `python -m gradguard lsp` (debounce 0, every rule on):

* server start -> `initialize` response,
* for timm's vision_transformer.py (~5,300 lines) and two other large timm model files:
  100 one-character edits inside a method, time from sending `didChange` to receiving the
  `publishDiagnostics` of that version (p50, p95, max); plus two harder scenarios on
  vision_transformer.py: pressing Enter inside a method (lines move), typing a call
  `(...)` character by character (the file stops parsing in between), and typing new lines
  (Enter, then `print(x)` key by key, `--edits`/10 times),
* server memory (RSS) after opening the files,
* hovers on the tensors assigned in `forward` methods and inlay hints for 60-line windows of
  vision_transformer.py (shapes): latency of each request once the file is analysed, and of the
  first hover after an edit (`--shapes-only` runs just this).

The timm sources are downloaded at run time (`pip download --no-deps timm`) into
bench/.corpus/ (git-ignored); nothing is committed. Usage:

    python bench/lsp_latency.py [--edits 100] [--json results.json]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / ".corpus"
FILES = ["timm/models/vision_transformer.py", "timm/models/efficientnet.py", "timm/models/resnet.py"]


def fetch_corpus() -> list[Path]:
    CORPUS.mkdir(exist_ok=True)
    wanted = [CORPUS / Path(name).name for name in FILES]
    if all(p.exists() for p in wanted):
        return wanted
    wheels = glob.glob(str(CORPUS / "timm-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "timm", "-d", str(CORPUS), "-q"],
            check=True,
        )
        wheels = glob.glob(str(CORPUS / "timm-*.whl"))
    with zipfile.ZipFile(max(wheels)) as archive:
        for name, target in zip(FILES, wanted):
            target.write_bytes(archive.read(name))
    return wanted


class Client:
    """A minimal LSP client over the server's stdio, timing what it receives."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        self.messages: queue.Queue = queue.Queue()
        self._id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = out.read(length or 0)
            self.messages.put((time.perf_counter(), json.loads(body)))

    def send(self, payload: dict) -> float:
        data = json.dumps(payload).encode()
        stamp = time.perf_counter()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(data) + data)
        self.proc.stdin.flush()
        return stamp

    def request(self, method: str, params: dict) -> tuple[float, dict]:
        self._id += 1
        ident = self._id
        self.send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        while True:
            stamp, message = self.messages.get(timeout=120)
            if message.get("id") == ident and "method" not in message:
                return stamp, message
            self._answer(message)

    def notify(self, method: str, params: dict) -> float:
        return self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def _answer(self, message: dict) -> None:
        if "id" in message and "method" in message:  # a request from the server
            result = (
                [None] * len(message["params"].get("items", []))
                if message["method"] == "workspace/configuration"
                else None
            )
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def wait_diagnostics(self, uri: str, version: int) -> tuple[float, dict]:
        while True:
            stamp, message = self.messages.get(timeout=120)
            self._answer(message)
            if message.get("method") == "textDocument/publishDiagnostics":
                params = message["params"]
                if params["uri"] == uri and params.get("version") == version:
                    return stamp, params

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server has used so far: less sensitive to the
        machine's load than wall time."""
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        try:
            self.request("shutdown", None)  # type: ignore[arg-type]
            self.notify("exit", None)  # type: ignore[arg-type]
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.proc.kill()


def edit_site(lines: list[str]) -> tuple[int, int]:
    """A line inside a method body near the middle of the file: (0-based line, column
    after the first identifier), where inserting a letter keeps the code valid."""
    middle = len(lines) // 2
    order = sorted(range(len(lines)), key=lambda i: abs(i - middle))
    for index in order:
        text = lines[index]
        stripped = text.lstrip()
        indent = len(text) - len(stripped)
        if (
            indent >= 8
            and stripped[:1].isalpha()
            and " = " in stripped
            and not stripped.startswith(("return", "if ", "for ", "with ", "elif", "while"))
        ):
            name = stripped.split(" = ")[0]
            if name.isidentifier():
                return index, indent + len(name)
    raise RuntimeError("no edit site found")


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(p95, 2),
        "max_ms": round(ordered[-1], 2),
    }


def change(
    client: Client, uri: str, version: int, line: int, col: int, end_line: int, end_col: int, text: str
) -> float:
    return client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [
                {
                    "range": {
                        "start": {"line": line, "character": col},
                        "end": {"line": end_line, "character": end_col},
                    },
                    "text": text,
                }
            ],
        },
    )


def type_new_lines(client: Client, uri: str, version: int, line: int, indent: str, edits: int) -> tuple:
    """Typing new lines below `line` (a blank line holding `indent`): Enter, then `print(x)` key by
    key, again and again (every Enter moves the lines below; the statement does not parse until
    its `)`); the lines typed are deleted again. Returns the last version and the latencies."""
    samples = []
    current, col = line, len(indent)
    cpu_before = client.cpu_seconds()
    for _ in range(max(1, edits // 10)):
        for ch in ["\n" + indent, *"print(x)"]:
            version += 1
            sent = change(client, uri, version, current, col, current, col, ch)
            stamp, _ = client.wait_diagnostics(uri, version)
            samples.append((stamp - sent) * 1000)
            if ch.startswith("\n"):
                current, col = current + 1, len(indent)
            else:
                col += 1
    result = percentiles(samples)
    result["server_cpu_ms_per_keystroke"] = round(
        (client.cpu_seconds() - cpu_before) * 1000 / len(samples), 2
    )
    version += 1
    change(client, uri, version, line, len(indent), current, col, "")
    client.wait_diagnostics(uri, version)
    return version, result


def shape_positions(text: str, limit: int = 120) -> list[tuple[int, int]]:
    """(0-based line, column) of names assigned in `forward`-like methods: where a hover shows a
    shape (spread over the file)."""
    import ast

    tree = ast.parse(text)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.startswith(("forward", "_forward")):
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.Assign):
                    for target in stmt.targets:
                        if isinstance(target, ast.Name):
                            found.append((target.lineno - 1, target.col_offset))
    found.sort()
    step = max(1, len(found) // limit)
    return found[::step][:limit]


def shape_latency(client: Client, uri: str, text: str, version: int) -> dict:
    """Hovers on assigned tensors and inlay hints for 60-line windows, once the version is analysed;
    then the first hover after each of 10 edits (the shapes are computed anew for a version)."""
    positions = shape_positions(text)
    samples, shown = [], 0
    for line, col in positions:
        sent = time.perf_counter()
        stamp, reply = client.request(
            "textDocument/hover",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": col}},
        )
        samples.append((stamp - sent) * 1000)
        result = reply.get("result")
        shown += bool(result and "Tensor" in json.dumps(result))
    out = {"hover": {**percentiles(samples), "positions": len(positions), "with_a_shape": shown}}
    lines = text.count("\n") + 1
    samples, hints = [], 0
    for start in range(0, lines, max(60, lines // 60)):
        sent = time.perf_counter()
        stamp, reply = client.request(
            "textDocument/inlayHint",
            {
                "textDocument": {"uri": uri},
                "range": {
                    "start": {"line": start, "character": 0},
                    "end": {"line": start + 60, "character": 0},
                },
            },
        )
        samples.append((stamp - sent) * 1000)
        hints += len(reply.get("result") or [])
    out["inlay_hints_60_lines"] = {**percentiles(samples), "hints": hints}
    sent = time.perf_counter()
    stamp, reply = client.request(
        "textDocument/inlayHint",
        {
            "textDocument": {"uri": uri},
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": lines, "character": 0}},
        },
    )
    out["inlay_hints_whole_file_ms"] = round((stamp - sent) * 1000, 2)
    out["inlay_hints_whole_file"] = len(reply.get("result") or [])
    # the first hover after an edit: a new version, the shapes are computed for it
    samples = []
    line, col = positions[len(positions) // 2] if positions else (0, 0)
    for i in range(10):
        version += 1
        edit = "q" if i % 2 == 0 else ""
        end = col if i % 2 == 0 else col + 1
        change(client, uri, version, line, col, line, end, edit)
        client.wait_diagnostics(uri, version)
        sent = time.perf_counter()
        stamp, _ = client.request(
            "textDocument/hover",
            {
                "textDocument": {"uri": uri},
                "position": {"line": positions[0][0], "character": positions[0][1]},
            },
        )
        samples.append((stamp - sent) * 1000)
    out["first_hover_after_an_edit"] = percentiles(samples)
    return out


def run_shapes() -> dict:
    files = fetch_corpus()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "server"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, "-m", "gradguard", "lsp", "--log-level", "warning"]
    client = Client(command, env)
    client.request(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": None,
            "capabilities": {"textDocument": {"publishDiagnostics": {"versionSupport": True}}},
            "initializationOptions": {"settings": {"debounceMs": 0}},
        },
    )
    client.notify("initialized", {})
    path = next(p for p in files if p.name == "vision_transformer.py")
    uri = path.resolve().as_uri()
    text = path.read_text(encoding="utf-8")
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )
    client.wait_diagnostics(uri, 1)
    results = {"file": path.name, "lines": text.count("\n") + 1, "load_average": os.getloadavg()[0]}
    results.update(shape_latency(client, uri, text, 1))
    client.close()
    return results


def run(edits: int) -> dict:
    files = fetch_corpus()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "server"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed server has its .pyc files
    command = [sys.executable, "-m", "gradguard", "lsp", "--log-level", "warning"]
    results: dict = {"python": sys.version.split()[0], "load_average_before": os.getloadavg()[0], "files": {}}

    starts, cpu = [], []
    for _ in range(5):
        client = Client(command, env)
        stamp, _ = client.request(
            "initialize", {"processId": os.getpid(), "rootUri": None, "capabilities": {}}
        )
        starts.append((stamp - client.started) * 1000)
        cpu.append(client.cpu_seconds() * 1000)
        client.close()
    results["start_to_initialize_ms"] = {
        "runs": [round(s, 1) for s in starts],
        "median": round(statistics.median(starts), 1),
        "cpu_median": round(statistics.median(cpu), 1),
    }

    client = Client(command, env)
    client.request(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": None,
            "capabilities": {"textDocument": {"publishDiagnostics": {"versionSupport": True}}},
            "initializationOptions": {"settings": {"debounceMs": 0}},
        },
    )
    client.notify("initialized", {})
    results["rss_after_start_mb"] = round(client.rss_mb(), 1)
    opened = {}
    for path in files:
        uri = path.resolve().as_uri()
        text = path.read_text(encoding="utf-8")
        sent = client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        stamp, params = client.wait_diagnostics(uri, 1)
        opened[path.name] = (uri, text.splitlines(keepends=True))
        results["files"][path.name] = {
            "lines": len(opened[path.name][1]),
            "open_to_diagnostics_ms": round((stamp - sent) * 1000, 1),
            "diagnostics": len(params["diagnostics"]),
        }
    results["rss_after_open_mb"] = round(client.rss_mb(), 1)

    for name, (uri, lines) in opened.items():
        line, col = edit_site(lines)
        version = 1
        ranges = {}
        samples = []
        cpu_before = client.cpu_seconds()
        for i in range(edits):
            version += 1
            if i % 2 == 0:  # type a letter, then delete it again
                sent = change(client, uri, version, line, col, line, col, "q")
            else:
                sent = change(client, uri, version, line, col, line, col + 1, "")
            stamp, _ = client.wait_diagnostics(uri, version)
            samples.append((stamp - sent) * 1000)
        entry = results["files"][name]
        entry["edit_site_line"] = line + 1
        ranges["one_char_edits"] = (2, version)
        entry["one_char_edits"] = percentiles(samples)
        entry["one_char_edits"]["server_cpu_ms_per_edit"] = round(
            (client.cpu_seconds() - cpu_before) * 1000 / edits, 2
        )
        if name == "vision_transformer.py":
            results["shapes"] = shape_latency(client, uri, "".join(lines), version)
            version += 10
            # Enter inside the method: every later line moves
            samples = []
            cpu_before = client.cpu_seconds()
            for i in range(edits // 2):
                version += 1
                if i % 2 == 0:
                    sent = change(client, uri, version, line, 0, line, 0, "\n")
                else:
                    sent = change(client, uri, version, line, 0, line + 1, 0, "")
                stamp, _ = client.wait_diagnostics(uri, version)
                samples.append((stamp - sent) * 1000)
            ranges["enter_key_edits"] = (ranges["one_char_edits"][1] + 1, version)
            entry["enter_key_edits"] = percentiles(samples)
            entry["enter_key_edits"]["server_cpu_ms_per_edit"] = round(
                (client.cpu_seconds() - cpu_before) * 1000 / max(1, edits // 2), 2
            )
            # typing "print(x)" on a new line: the file does not parse until ")" arrives
            samples = []
            version += 1
            first_typing = version + 1
            indent = " " * (len(lines[line]) - len(lines[line].lstrip()))
            change(client, uri, version, line, 0, line, 0, indent + "\n")
            client.wait_diagnostics(uri, version)
            col = len(indent)
            cpu_before, typed = client.cpu_seconds(), 0
            for _ in range(max(1, edits // 20)):
                for ch in "print(x)":
                    version += 1
                    sent = change(client, uri, version, line, col, line, col, ch)
                    stamp, _ = client.wait_diagnostics(uri, version)
                    samples.append((stamp - sent) * 1000)
                    col += 1
                    typed += 1
                version += 1
                change(client, uri, version, line, len(indent), line, col, "")
                client.wait_diagnostics(uri, version)
                col = len(indent)
            ranges["typing_with_syntax_errors"] = (first_typing, version)
            entry["typing_with_syntax_errors"] = percentiles(samples)
            # (the deletions between the calls typed included)
            entry["typing_with_syntax_errors"]["server_cpu_ms_per_keystroke"] = round(
                (client.cpu_seconds() - cpu_before) * 1000 / max(1, typed), 2
            )
            first_typing = version + 1
            version, entry["new_lines_typed"] = type_new_lines(client, uri, version, line, indent, edits)
            ranges["new_lines_typed"] = (first_typing, version)
        # the server's own view: engine time per analysed version (no I/O)
        _, reply = client.request(
            "workspace/executeCommand", {"command": "gradguard.debugStats", "arguments": [uri]}
        )
        stats = reply.get("result") or []
        for scenario, (low, high) in ranges.items():
            engine = [s["analysis_ms"] for s in stats if low <= s["version"] <= high]
            if engine:
                entry[scenario]["engine_ms"] = percentiles(engine)
                entry[scenario]["parse_modes"] = sorted(
                    {s["parse"] for s in stats if low <= s["version"] <= high}
                )
    results["rss_after_edits_mb"] = round(client.rss_mb(), 1)
    results["load_average_after"] = os.getloadavg()[0]
    client.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--shapes-only", action="store_true", help="only the hover/inlay-hint latency")
    args = parser.parse_args()
    results = run_shapes() if args.shapes_only else run(args.edits)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
