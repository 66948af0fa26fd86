"""The adversarial campaign of issue 15, for the command line and `--fix`.

    .venv/bin/python tests/adversarial/campaign.py                  # this checkout's server/
    .venv/bin/python tests/adversarial/campaign.py --server /tmp/old/server   # another copy

Part 1 runs every bad input of cli_cases.py. Part 2 runs `gradguard check --fix` (safe
fixes, then `--unsafe-fixes`) over every formatting variant of fix_variants.py, in batches
(a directory of variants, some of them symlinks, hard-linked or with unusual modes), three
times per batch: a reference run; a run killed with SIGKILL at a random moment (then every
file must be the original or the reference result byte for byte, no worker may outlive the
kill); and a run after the kill (every file as in the reference, no temporary file left).

Prints the table: inputs tried / handled / failures, and what failed. Exit status 1 when
anything failed. Inputs come from this checkout's tests; the code under test is --server's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import stat
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "server"))  # the inputs (rule examples) of this checkout

from cli_cases import CASES
from fix_variants import examples, problems, tree_of, variants
from harness import ROOT, Harness, Scratch, alive, children


# -- part 1 --------------------------------------------------------------------------------------
def run_cli_cases(h: Harness, only: str | None) -> tuple[int, list[tuple[str, str]]]:
    tried, failures = 0, []
    for case in CASES:
        if only and only not in case.id:
            continue
        if case.needs_root and os.geteuid() != 0:
            continue
        tried += 1
        with Scratch() as directory:
            try:
                case.run(h, directory)
            except AssertionError as exc:
                failures.append((case.id, str(exc).splitlines()[0][:200] if str(exc) else "failed"))
            except Exception as exc:  # noqa: BLE001 - the harness itself failed: count it, say so
                failures.append((case.id, f"harness error: {type(exc).__name__}: {exc}"[:200]))
        failed = failures and failures[-1][0] == case.id
        print(
            f"  {'FAIL' if failed else 'ok':4} {case.id}" + (f": {failures[-1][1]}" if failed else ""),
            flush=True,
        )
    return tried, failures


# -- part 2 --------------------------------------------------------------------------------------
MODES = {"safe": ["--fix"], "unsafe": ["--fix", "--unsafe-fixes"]}


def _layout(directory: Path, batch: list, rng: random.Random) -> dict[str, dict]:
    """Write a batch of variants; some become symlinks, hard links or get odd modes."""
    targets = directory / "targets"
    targets.mkdir()
    others = directory / "links"
    others.mkdir()
    layout = {}
    for index, variant in enumerate(batch):
        name = f"v{index:04d}.py"
        path = directory / name
        kind = rng.choice(["plain"] * 6 + ["symlink", "hardlink", "mode"])
        info = {"variant": variant, "kind": kind, "mode": 0o644}
        if kind == "symlink":
            target = targets / name
            target.write_bytes(variant.data)
            os.symlink(os.path.relpath(target, directory), path)
        else:
            path.write_bytes(variant.data)
            if kind == "hardlink":
                os.link(path, others / f"{name}.link")
            if kind == "mode":
                info["mode"] = rng.choice([0o600, 0o640, 0o755, 0o664])
                os.chmod(path, info["mode"])
        layout[name] = info
    return layout


def _copy(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, symlinks=True)
    # copytree does not keep hard links: recreate them
    for link in (destination / "links").iterdir():
        link.unlink()
        os.link(destination / link.name.removesuffix(".link"), link)


def _content(path: Path) -> bytes:
    return path.read_bytes()


def _leftovers(directory: Path) -> list[str]:
    return [
        str(p.relative_to(directory))
        for p in directory.rglob(".*")
        if p.name.endswith((".tmp", ".gradguard")) and p.is_file()
    ]


def _metadata_problems(directory: Path, name: str, info: dict) -> list[str]:
    path = directory / name
    found = []
    if info["kind"] == "symlink" and not path.is_symlink():
        found.append("symlink replaced by a regular file")
    if info["kind"] == "hardlink":
        link = directory / "links" / f"{name}.link"
        if not path.exists() or path.stat().st_ino != link.stat().st_ino:
            found.append("hard link broken")
    if info["kind"] == "mode" and path.exists() and stat.S_IMODE(path.stat().st_mode) != info["mode"]:
        found.append(f"mode {info['mode']:o} became {stat.S_IMODE(path.stat().st_mode):o}")
    return found


def _run_output_problems(run) -> list[str]:
    if run.hung:
        return ["run hung"]
    if "Traceback (most recent call last)" in run.stderr:
        return ["traceback: " + run.stderr.strip().splitlines()[-1][:120]]
    if run.returncode not in (0, 1, 2):
        return [f"exit {run.returncode}"]
    return []


def run_fix_campaign(h: Harness, seed: int, batch_size: int, limit: int | None, jobs: int):
    rng = random.Random(seed)
    cases = examples()
    plain = {name: code for name, code in cases}
    pool = [v for name, code in cases for v in variants(name, code)]
    rng.shuffle(pool)
    if limit:
        pool = pool[:limit]
    stats: dict[str, Counter] = defaultdict(Counter)
    failures: list[tuple[str, str]] = []
    for mode, flags in MODES.items():
        # references: the plain examples fixed by the server under test
        references = _references(h, [*flags, "--jobs", str(jobs)], plain)
        for start in range(0, len(pool), batch_size):
            batch = pool[start : start + batch_size]
            with Scratch() as root:
                base = root / "base"
                base.mkdir()
                layout = _layout(base, batch, rng)
                run = _FixRun(h, [*flags, "--jobs", str(jobs)], mode, start, layout, stats, failures)
                # 1. the reference run
                results, took = run.reference(base, root / "ref", references)
                # 2. a run killed at a random moment, 3. the run after it
                run.killed_and_rerun(base, root / "killed", results, rng.uniform(0.05, max(0.1, took)))
            done = min(start + batch_size, len(pool))
            print(f"  {mode}: {done}/{len(pool)} variants, {len(failures)} failures so far", flush=True)
    return stats, failures


def _references(h: Harness, args: list[str], plain: dict[str, str]) -> dict[str, list]:
    """The plain examples fixed by the server under test: each one's tree (none when it does not parse)."""
    references: dict[str, list] = {}
    with Scratch() as directory:
        for index, name in enumerate(plain):
            (directory / f"p{index:03d}.py").write_text(plain[name])
        h.run("check", *args, directory, timeout=600)
        for index, name in enumerate(plain):
            try:
                references[name] = [tree_of((directory / f"p{index:03d}.py").read_bytes())]
            except SyntaxError:
                references[name] = []
    return references


class _FixRun:
    """One batch of variants in one mode: the reference run, then a killed run and its rerun."""

    def __init__(self, h: Harness, args: list[str], mode: str, start: int, layout: dict, stats, failures):
        self.h, self.args, self.mode, self.start, self.layout = h, args, mode, start, layout
        self.stats, self.failures = stats, failures

    def reference(self, base: Path, ref_dir: Path, references: dict) -> tuple[dict[str, bytes], float]:
        """Fix a copy of `base`; each variant's result, and how long the run took."""
        stats, mode = self.stats, self.mode
        _copy(base, ref_dir)
        started = time.monotonic()
        run = self.h.run("check", *self.args, ref_dir, timeout=600)
        took = time.monotonic() - started
        run_problems = _run_output_problems(run)
        results = {}
        for name, info in self.layout.items():
            variant = info["variant"]
            stats[mode]["tried"] += 1
            found = list(run_problems)
            try:
                data = _content(ref_dir / name)
            except OSError as exc:
                data = b""
                found.append(f"unreadable after the run: {exc}")
            results[name] = data
            if data:
                example = variant.name.split("/", 1)[0]
                found += problems(variant, data, references.get(example, []))
            found += _metadata_problems(ref_dir, name, info)
            if _leftovers(ref_dir):
                found.append("temporary files left after a clean run")
            if found:
                stats[mode]["failed"] += 1
                self.failures += [(f"{mode} {info['kind']} {variant.name}", p) for p in found]
            else:
                stats[mode]["handled"] += 1
        return results, took

    def killed_and_rerun(self, base: Path, kill_dir: Path, results: dict[str, bytes], delay: float) -> None:
        """Fix a copy of `base` in a run SIGKILLed after `delay` seconds, then run again to the end."""
        _copy(base, kill_dir)
        killed, survived = self._kill_run(kill_dir, delay)
        bad_after_kill, padded_names = self._after_kill(kill_dir, results)
        rerun = self.h.run("check", *self.args, kill_dir, timeout=600)
        rerun_problems = _run_output_problems(rerun)
        for name, info in self.layout.items():
            if name in bad_after_kill or name in padded_names:
                continue
            try:
                data = _content(kill_dir / name)
            except OSError:
                data = b"<missing>"
            if data != results[name]:
                self.failures.append(
                    (f"{self.mode} rerun {info['variant'].name}", "differs from the reference run")
                )
                bad_after_kill.append(name)
        left = _leftovers(kill_dir)
        if left:
            self.failures.append(
                (f"{self.mode} rerun batch {self.start}", f"stale temporary files not cleaned: {left[:2]}")
            )
        if rerun_problems:
            self.failures += [(f"{self.mode} rerun batch {self.start}", p) for p in rerun_problems]
        if survived or bad_after_kill or left or rerun_problems:
            self.stats["killed"]["failed"] += 1
        else:
            self.stats["killed"]["handled"] += 1
        self.stats["killed"]["really killed"] += int(killed)

    def _kill_run(self, kill_dir: Path, delay: float) -> tuple[bool, list[int]]:
        """Start the run, SIGKILL it after `delay` (if still running): whether it was killed, and the
        worker processes that outlived it (killed in turn)."""
        process = self.h.start("check", *self.args, kill_dir)
        workers: set[int] = set()
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and process.poll() is None:
            workers.update(children(process.pid))
            time.sleep(0.01)
        killed = process.poll() is None
        if killed:
            os.kill(process.pid, 9)
        process.wait()
        for stream in (process.stdout, process.stderr):  # not read: a surviving worker
            if stream is not None:  # still holds the pipes open
                stream.close()
        self.stats["killed"]["tried"] += 1
        survived = [p for p in workers if alive(p) and _wait_dead(p)]
        if survived:
            self.failures.append(
                (f"kill batch {self.start}", f"{len(survived)} workers outlived SIGKILL of the main")
            )
            for pid in survived:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        return killed, survived

    def _after_kill(self, kill_dir: Path, results: dict[str, bytes]) -> tuple[list[str], list[str]]:
        """The files the killed run left neither original nor fixed, and those left fixed but padded."""
        bad_after_kill: list[str] = []
        padded_names: list[str] = []
        for name, info in self.layout.items():
            try:
                data = _content(kill_dir / name)
            except OSError:
                data = b"<missing>"
            # a hard-linked file is rewritten in place: killed between the write and
            # the cut, it holds the fixed code followed by blanks (by design)
            padded = info["kind"] == "hardlink" and data.rstrip(b" ") == results[name]
            if padded and data != results[name]:
                self.stats["killed"]["left padded (in place)"] += 1
                padded_names.append(name)  # the rerun leaves it so: nothing to fix
            elif data not in (info["variant"].data, results[name]):
                bad_after_kill.append(name)
                self.failures.append(
                    (
                        f"{self.mode} killed {info['kind']} {info['variant'].name}",
                        "neither the original nor the fixed file",
                    )
                )
        return bad_after_kill, padded_names


def _wait_dead(pid: int, seconds: float = 5.0) -> bool:
    """True when the process is still alive after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return False
        time.sleep(0.05)
    return alive(pid)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", default=str(ROOT / "server"), help="the gradguard sources to test")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--batch", type=int, default=48, help="variants per --fix run")
    parser.add_argument("--limit", type=int, help="at most this many variants")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", help="run only the CLI cases whose id contains this")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--skip-fix", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    h = Harness(args.server)
    rows = []
    failures: list[tuple[str, str]] = []
    if not args.skip_cli:
        print("bad CLI inputs:")
        tried, cli_failures = run_cli_cases(h, args.only)
        rows.append(
            (
                "bad CLI inputs",
                tried,
                tried - len({f[0] for f in cli_failures}),
                len({f[0] for f in cli_failures}),
            )
        )
        failures += cli_failures
    if not args.skip_fix:
        print("--fix over formatting variants:")
        stats, fix_failures = run_fix_campaign(h, args.seed, args.batch, args.limit, args.jobs)
        for mode in MODES:
            s = stats[mode]
            rows.append((f"--fix ({mode}) on a variant", s["tried"], s["handled"], s["failed"]))
        k = stats["killed"]
        rows.append(
            (
                (
                    f"--fix run SIGKILLed ({k['really killed']} killed mid-run; "
                    f"{k['left padded (in place)']} hard-linked files left as fixed code + blanks) + rerun"
                ),
                k["tried"],
                k["handled"],
                k["failed"],
            )
        )
        failures += fix_failures
    print()
    print(f"server: {args.server}")
    print("| part | inputs tried | handled | failures |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} |")
    kinds = Counter(_kind(reason) for _, reason in failures)
    if kinds:
        print("\nfailures by kind:")
        for kind, count in kinds.most_common():
            print(f"  {count:5}  {kind}")
        print("\nexamples:")
        seen = set()
        for where, reason in failures:
            if _kind(reason) in seen:
                continue
            seen.add(_kind(reason))
            print(f"  {where}: {reason}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "failures": failures}, indent=1))
    return 1 if failures else 0


def _kind(reason: str) -> str:
    return reason.split(":")[0][:80]


if __name__ == "__main__":
    sys.exit(main())
