"""The project index on real code: figures, never pass/fail.

    .venv/bin/python bench/project.py forward        # (a) transformers: classes with `forward` known as modules
    .venv/bin/python bench/project.py throughput     # (b) CLI lines per CPU-second with and without the index
    .venv/bin/python bench/project.py breakdown      # (b) the same in one process, phase by phase
    .venv/bin/python bench/project.py memory         # (c) index memory on transformers, 5,000-file tree timing
    .venv/bin/python bench/project.py findings       # (d) findings the index adds or removes (to review)
    .venv/bin/python bench/project.py all

JSON goes to bench/results/project-<what>-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
from gradguard.engine.index import ModuleContext
from gradguard.engine.project import ClassRef, build_project
from gradguard.engine.source import SourceFile

PACKAGES = ("timm", "torchvision", "transformers")


def _save(what: str, data: dict) -> Path:
    corpus.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = corpus.RESULTS_DIR / f"project-{what}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- (a) ------------------------------------------------------------------------------------------
def forward_classes() -> dict:
    package = corpus.ensure_package("transformers")
    start = time.perf_counter()
    index = build_project([package])
    index.warm()
    index_seconds = time.perf_counter() - start
    total = before = after = 0
    missing: dict[str, int] = {}
    examples: dict[str, str] = {}
    for path in corpus.python_files(package):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        source = SourceFile(text, str(path))
        alone = ModuleContext(tree, source)
        with_index = ModuleContext(tree, source, index.for_file(path))
        for stmt in tree.body:
            if not isinstance(stmt, ast.ClassDef):
                continue
            if not any(isinstance(s, ast.FunctionDef) and s.name == "forward" for s in stmt.body):
                continue
            total += 1
            before += alone.is_module_class(stmt.name)
            if with_index.is_module_class(stmt.name):
                after += 1
            else:
                entry = index.file(path)
                facts = index.facts_of(ClassRef(entry.module, stmt.name, True), entry.root)
                bases = ", ".join(ast.unparse(b) for b in stmt.bases) or "(no base)"
                key = f"{facts.kind}: {bases}"
                missing[key] = missing.get(key, 0) + 1
                examples.setdefault(key, f"{path.relative_to(package.parent)}:{stmt.lineno} {stmt.name}")
    result = {
        "classes_defining_forward": total,
        "known_modules_before": before,
        "known_modules_after": after,
        "share_before": before / total,
        "share_after": after / total,
        "index_seconds_wall": index_seconds,
        "not_known": [
            {"why": key, "count": count, "example": examples[key]}
            for key, count in sorted(missing.items(), key=lambda kv: -kv[1])
        ],
    }
    print(f"transformers: {total} top-level classes define `forward`")
    print(f"  known nn.Module subclasses without the index: {before} ({before / total:.1%})")
    print(f"  known nn.Module subclasses with the index:    {after} ({after / total:.1%})")
    print(f"  (index built and warmed in {index_seconds:.1f} s wall)")
    for item in result["not_known"][:15]:
        print(f"  not known: {item['count']:4d}  {item['why']}   e.g. {item['example']}")
    return result


# -- (b) ------------------------------------------------------------------------------------------
def _cli(dirs: list[Path], jobs: int, project: bool) -> dict:
    argv = [sys.executable, "-m", "gradguard", "check", "--format", "json", "--exit-zero", "-j", str(jobs)]
    if not project:
        argv.append("--no-project")
    argv += [str(d) for d in dirs]
    # cold runs, and no result cache written into the corpus
    env = dict(os.environ, PYTHONPATH=str(corpus.ROOT / "server"), GRADGUARD_NO_CACHE="1")
    before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    cpu = _children_cpu() - before
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return {"cpu_seconds": cpu, "wall_seconds": wall, "findings": json.loads(proc.stdout)}


def throughput(repeat: int, jobs: int) -> dict:
    dirs = [corpus.ensure_package(p) for p in PACKAGES]
    lines = sum(
        corpus.count_lines(f.read_text(encoding="utf-8")) for d in dirs for f in corpus.python_files(d)
    )
    runs: dict[str, list[dict]] = {"without": [], "with": []}
    for _ in range(repeat):  # interleaved, so that load on the machine hits both alike
        for name, project in (("without", False), ("with", True)):
            result = _cli(dirs, jobs, project)
            runs[name].append({k: v for k, v in result.items() if k != "findings"})
    best = {name: min(r["cpu_seconds"] for r in rs) for name, rs in runs.items()}
    out = {
        "lines": lines,
        "jobs": jobs,
        "runs": runs,
        "lines_per_cpu_second_without": lines / best["without"],
        "lines_per_cpu_second_with": lines / best["with"],
        "ratio": best["without"] / best["with"],
    }
    print(
        f"gradguard check -j {jobs} on timm + torchvision + transformers ({lines:,} lines), best of {repeat}:"
    )
    for name in ("without", "with"):
        walls = min(r["wall_seconds"] for r in runs[name])
        print(
            f"  {name:7s} the index: {best[name]:6.1f} CPU s ({lines / best[name]:,.0f} lines/CPU-s), "
            f"{walls:5.1f} s wall"
        )
    print(f"  with / without: {out['ratio']:.1%} of the lines per CPU-second")
    return out


def breakdown(repeat: int) -> dict:
    """Where the difference goes, in one process (no worker pool): the same files checked
    without and with the index, interleaved, best of `repeat` per phase."""
    import profile_engine

    dirs = [corpus.ensure_package(p) for p in PACKAGES]
    files = [(str(f), f.read_text(encoding="utf-8")) for d in dirs for f in corpus.python_files(d)]
    lines = sum(corpus.count_lines(t) for _, t in files)
    best: dict[str, dict[str, float]] = {"without": {}, "with": {}}
    modules = {}
    for _ in range(repeat):
        for name in ("without", "with"):
            gc.collect()
            index_cpu = 0.0
            project = None
            if name == "with":
                gc.disable()
                t0 = time.process_time()
                project = build_project(dirs)
                project.warm()
                index_cpu = time.process_time() - t0
                gc.enable()
                gc.freeze()
            timed = profile_engine.TimedAnalyzer()
            timed.project = project
            profile_engine.install_phase_timers(timed)
            t0 = time.process_time()
            for path, text in files:
                timed.check(text, path)
            total = time.process_time() - t0
            rules = sum(v for k, v in timed.times.items() if k.startswith("rule "))
            phases = {
                "index (build + warm)": index_cpu,
                "parse": timed.times["parse"],
                "module context": timed.times["module context"],
                "unit index": timed.times["unit index"],
                "rules": rules,
                "rest": total - sum(timed.times.values()),
                "total": total + index_cpu,
            }
            modules[name] = timed.counts["units"]
            for key, value in phases.items():
                best[name][key] = min(best[name].get(key, value), value)
            del project, timed
            gc.unfreeze()
    print(f"in one process, {lines:,} lines, best of {repeat} (CPU seconds):")
    print(f"  {'phase':24s} {'without':>8s} {'with':>8s} {'diff':>7s}")
    for key in best["without"]:
        a, b = best["without"][key], best["with"][key]
        print(f"  {key:24s} {a:8.2f} {b:8.2f} {b - a:+7.2f}")
    print(f"  units indexed: {modules['without']} without, {modules['with']} with")
    ratio = best["without"]["total"] / best["with"]["total"]
    print(f"  with / without: {ratio:.1%} of the lines per CPU-second")
    return {"lines": lines, "best": best, "units": modules, "ratio": ratio}


# -- (c) ------------------------------------------------------------------------------------------
def memory_and_scale() -> dict:
    package = corpus.ensure_package("transformers")
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    cpu0 = time.process_time()
    index = build_project([package])
    index.warm()
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - start
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    files = len(index.files)
    del index
    print(f"transformers index ({files} files): {current / 2**20:.0f} MB held, {peak / 2**20:.0f} MB peak")
    print(f"  built and warmed in {wall:.1f} s wall, {cpu:.1f} s CPU (tracemalloc on: slower than real)")
    # a 5,000-file tree: the three libraries plus copies of transformers' model packages
    tree = corpus.CORPUS_DIR / "tree5000"
    if not tree.exists():
        tmp = tree.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in PACKAGES:
            shutil.copytree(corpus.SRC_DIR / name / name, tmp / name)
        count = sum(1 for _ in tmp.rglob("*.py"))
        models = sorted((tmp / "transformers" / "models").iterdir())
        copy = tmp / "transformers_copy" / "models"
        copy.mkdir(parents=True)
        (tmp / "transformers_copy" / "__init__.py").write_text("")
        (copy / "__init__.py").write_text("")
        for model in models:
            if count >= 5000 or not model.is_dir():
                continue
            shutil.copytree(model, copy / model.name)
            count += sum(1 for _ in (copy / model.name).rglob("*.py"))
        os.replace(tmp, tree)
    n_files = sum(1 for _ in tree.rglob("*.py"))
    out = {}
    for jobs in (1, 2):
        gc.collect()
        start = time.perf_counter()
        cpu0 = time.process_time()
        children0 = _children_cpu()
        big = build_project([tree], jobs=jobs)
        built = time.perf_counter() - start
        big.warm()
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0 + _children_cpu() - children0
        del big
        print(
            f"{n_files}-file tree, {jobs} process(es): indexed in {built:.1f} s wall, every class's kind "
            f"and the import graph at {wall:.1f} s wall ({cpu:.1f} s CPU)"
        )
        out[jobs] = {"index_wall": built, "index_and_warm_wall": wall, "cpu": cpu}
    return {
        "tree_runs": out,
        "transformers_files": files,
        "transformers_index_mb": current / 2**20,
        "transformers_index_peak_mb": peak / 2**20,
        "tree_files": n_files,
    }


# -- (d) ------------------------------------------------------------------------------------------
def new_findings(jobs: int) -> dict:
    dirs = [corpus.ensure_package(p) for p in PACKAGES]
    without = _cli(dirs, jobs, False)["findings"]
    with_index = _cli(dirs, jobs, True)["findings"]

    def key(f: dict) -> tuple:
        return (f["path"], f["code"], f["line"], f["column"], f["message"])

    old = {key(f) for f in without}
    new = {key(f) for f in with_index}
    added = sorted(new - old)
    removed = sorted(old - new)
    print(f"findings without the index: {len(old)}, with: {len(new)}")
    print(f"added by the index: {len(added)}; gone with the index: {len(removed)}")
    for label, items in (("ADDED", added), ("GONE", removed)):
        for path, code, line, _column, message in items:
            try:
                text = Path(path).read_text(encoding="utf-8").splitlines()[line - 1].strip()
            except (OSError, IndexError):
                text = ""
            rel = os.path.relpath(path, corpus.SRC_DIR)
            print(f"{label} {rel}:{line} {code} {message[:140]}\n      | {text[:150]}")
    return {
        "without": len(old),
        "with": len(new),
        "added": [list(k) for k in added],
        "removed": [list(k) for k in removed],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("forward", "throughput", "breakdown", "memory", "findings", "all"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    todo = ("forward", "throughput", "memory", "findings") if args.what == "all" else (args.what,)
    for what in todo:
        if what == "forward":
            data = forward_classes()
        elif what == "throughput":
            data = throughput(args.repeat, args.jobs)
        elif what == "breakdown":
            data = breakdown(args.repeat)
        elif what == "memory":
            data = memory_and_scale()
        else:
            data = new_findings(args.jobs)
        print(f"-> {_save(what, data)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
