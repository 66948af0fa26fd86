"""The `gradguard` command line: check, explain, rules, lsp, probe."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import gc
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from gradguard import __version__
from gradguard.engine.analyzer import Analyzer, RuleError, internal_error_finding, one_line_cause
from gradguard.engine.catalog import (
    InternalErrorRule,
    iter_rule_metadata,
    known_codes,
    rule_class,
    suggestion_codes,
)
from gradguard.engine.config import Config, ConfigError, load_config, load_config_file
from gradguard.engine.files import (
    NOTEBOOK_SUFFIX,
    UnreadableFile,
    WriteRefused,
    clean_stale_temporaries,
    collect_files,
    read_notebook_bytes,
    read_source_file,
    write_source,
)
from gradguard.engine.finding import Finding
from gradguard.engine.project import ProjectIndex, build_project
from gradguard.engine.source import SourceFile, split_lines
from gradguard.output.render import display_path

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # exit 2 with a clear message, as argparse does
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"gradguard: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradguard", description="Find autograd mistakes in PyTorch code.")
    parser.add_argument("--version", action="version", version=f"gradguard {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    check = sub.add_parser("check", help="check files or directories")
    check.add_argument("paths", nargs="*", default=["."], help="files or directories (default: .)")
    check.add_argument("--fix", action="store_true", help="apply safe fixes in place")
    check.add_argument(
        "--unsafe-fixes", action="store_true", help="also apply unsafe fixes (with --fix/--diff)"
    )
    check.add_argument("--diff", action="store_true", help="print the fixes as a diff instead of writing")
    check.add_argument("--select", help="comma-separated codes or prefixes to enable (e.g. GG2,GG401)")
    check.add_argument("--ignore", help="comma-separated codes or prefixes to disable")
    check.add_argument("--extend-ignore", help="codes to disable on top of the configured ignore list")
    check.add_argument("--format", choices=("text", "json", "sarif", "github"), default="text")
    check.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    check.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=0,
        help="parallel processes (default: all cores; never more than cores or files)",
    )
    check.add_argument("--config", help="pyproject.toml to read [tool.gradguard] from")
    check.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    check.add_argument(
        "--no-project",
        action="store_true",
        help="check every file alone (no project index: imports from other files stay unknown)",
    )
    check.add_argument(
        "--cache-dir",
        help="where to keep the result cache (default: .gradguard_cache at the project root; "
        "also the `cache-dir` setting and GRADGUARD_CACHE_DIR)",
    )
    check.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the result cache (also GRADGUARD_NO_CACHE=1); "
        "--fix and --diff never use it",
    )

    explain = sub.add_parser("explain", help="explain a rule")
    explain.add_argument("code")

    sub.add_parser("rules", help="list all rules")

    lsp = sub.add_parser("lsp", help="start the language server on stdio")
    lsp.add_argument("--log-level", default="info")

    probe = sub.add_parser(
        "probe", help="run modules and autograd Functions with torch to find where gradients stop"
    )
    probe.add_argument("file")
    probe.add_argument("--target", help="class or function to probe (default: all)")
    probe.add_argument("--format", choices=("text", "json"), default="text")
    probe.add_argument("--timeout", type=float, default=20.0)
    probe.add_argument("--memory-mb", type=int, default=4096)
    probe.add_argument("--python", help="interpreter with torch (default: this one)")
    return parser


# -- check --------------------------------------------------------------------------------------
log = logging.getLogger("gradguard")


@dataclass
class FileResult:
    path: str
    findings: list[Finding] = field(default_factory=list)
    skipped: str | None = None  # why the file was not checked
    internal_errors: int = 0  # GG001 findings among `findings`
    write_error: str | None = None  # why a fixed file was not written
    fixed_text: str | None = None  # --diff
    original_text: str | None = None
    fixes_applied: int = 0


@dataclass
class CheckJob:
    config: Config
    fix: bool
    unsafe: bool
    diff: bool = False
    record_reads: bool = False  # send back what the project index read (for the result cache)


_worker_analyzer: Analyzer | None = None
_worker_project: ProjectIndex | None = None
_worker_texts: dict[str, str] = {}


def _init_worker(project: ProjectIndex | None, texts: dict[str, str] | None = None) -> None:
    """Runs once in each worker process. With the "fork" start method the index (built
    and warmed in the parent) arrives without pickling, shared copy-on-write; with
    "spawn" it is pickled once per worker, never per file."""
    global _worker_project, _worker_analyzer, _worker_texts
    _worker_project = project
    _worker_texts = texts or {}
    _worker_analyzer = None


def _analyzer_for(config: Config) -> Analyzer:
    global _worker_analyzer
    if _worker_analyzer is None or _worker_analyzer.config != config:
        _worker_analyzer = Analyzer(config, project=_worker_project)
    return _worker_analyzer


def _check_one(args: tuple[str, CheckJob]) -> FileResult:
    path, job = args
    analyzer = _analyzer_for(job.config)
    if path.endswith(NOTEBOOK_SUFFIX):
        return _check_notebook(path, analyzer)
    text = None if job.fix else _worker_texts.get(path)  # read once already, by the project index
    if text is None:
        try:
            source = read_source_file(path)
        except UnreadableFile as exc:
            return FileResult(path, skipped=str(exc))
        text = source.text
    result = FileResult(path)
    try:
        if job.fix:
            fixed, applied = analyzer.fix(text, path, unsafe=job.unsafe)
            if applied and fixed != text:
                if job.diff:
                    result.fixed_text, result.original_text = fixed, text
                else:
                    try:
                        write_source(source, fixed)
                    except WriteRefused as exc:
                        result.write_error = str(exc)
                    else:
                        result.fixes_applied, text = applied, fixed
        checked = analyzer.check(text, path)
        result.findings = list(checked.findings)
        if checked.errors:
            lines = SourceFile(text, path)
            result.findings.extend(internal_error_finding(error, lines) for error in checked.errors)
            result.internal_errors = len(checked.errors)
        for finding in result.findings:  # computed here: the parent process cannot recompute them
            if finding.fix is not None:
                finding.fix.edits  # noqa: B018 - force the lazy edits before pickling
            finding.alternatives = []
    except Exception as exc:  # one bad file never stops a run over many (RecursionError included)
        log.exception("internal error while checking %s", display_path(path))
        error = RuleError("the analysis", path, 1, traceback.format_exc(), one_line_cause(exc))
        result.findings = [internal_error_finding(error, SourceFile(text, path))]
        result.internal_errors = 1
    return result


def _check_notebook(path: str, analyzer: Analyzer) -> FileResult:
    """A Jupyter notebook: its code cells checked as one program (as the editor does), each
    finding reported in its cell. Notebooks are not fixed in place."""
    from gradguard.engine.notebook import cell_python  # magics -> comments, positions kept

    try:
        notebook = json.loads(read_notebook_bytes(path).decode("utf-8"))
    except UnreadableFile as exc:
        return FileResult(path, skipped=str(exc))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return FileResult(path, skipped=f"skipped: not a valid notebook ({type(exc).__name__}: {exc})")
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        return FileResult(path, skipped="skipped: not a valid notebook (no list of cells)")
    metadata = notebook.get("metadata") if isinstance(notebook.get("metadata"), dict) else {}
    language = (
        (metadata.get("language_info") or {}).get("name")
        if isinstance(metadata.get("language_info"), dict)
        else None
    )
    if isinstance(language, str) and language.lower() not in ("python", "python3", "ipython"):
        return FileResult(path, skipped=f"skipped: a {language} notebook, not Python")
    parts: list[str] = []
    spans: list[tuple[int, int, int]] = []  # (cell number, first line, line count)
    line = 0
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str):
            continue
        text = cell_python(source)
        if text and not text.endswith(("\n", "\r")):
            text += "\n"
        count = len(split_lines(text))
        spans.append((number, line, count))
        parts.append(text)
        line += count
    result = FileResult(path)
    combined = "".join(parts)
    try:
        checked = analyzer.check(combined, path)
        found = list(checked.findings)
        if checked.errors:
            lines = SourceFile(combined, path)
            found.extend(internal_error_finding(error, lines) for error in checked.errors)
            result.internal_errors = len(checked.errors)
    except Exception as exc:
        log.exception("internal error while checking %s", display_path(path))
        error = RuleError("the analysis", path, 1, traceback.format_exc(), one_line_cause(exc))
        found = [internal_error_finding(error, SourceFile(combined, path))]
        result.internal_errors = 1
    for finding in found:
        zero = finding.line - 1
        span = next((s for s in reversed(spans) if s[1] <= zero), None)
        if span is None:
            continue
        number, first, count = span
        end_line = min(finding.end_line - first, max(count, 1))
        end_column = finding.end_column if finding.end_line - first <= count else finding.column + 1
        result.findings.append(
            dataclasses.replace(
                finding,
                line=finding.line - first,
                end_line=max(end_line, finding.line - first),
                end_column=end_column,
                fix=None,  # notebooks are not rewritten by --fix
                alternatives=[],
                cell=number,
            )
        )
    return result


# -- running many files -------------------------------------------------------------------------
def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def job_count(requested: int, files: int) -> int:
    """Processes to use: what was asked (0: all cores), never more than the cores or the files."""
    cores = _available_cpus()
    return max(1, min(requested or cores, cores, files))


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _worker_init(parent: int, project: ProjectIndex | None = None, texts: dict | None = None) -> None:
    """In each worker: the project index; die with the parent (SIGKILL of the parent
    included), leave Ctrl-C and SIGTERM handling to the parent."""
    _init_worker(project, texts)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked while the pool was forked
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - the watchdog below still works
            pass
    if os.getppid() != parent:  # the parent died before we got here
        os._exit(1)

    def watchdog() -> None:  # everywhere (and a second line of defence on Linux)
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watchdog, name="gradguard-watchdog", daemon=True).start()


def _check_chunk(chunk: list[tuple[str, CheckJob]]) -> tuple[list[FileResult], dict | None]:
    results = [_check_one(item) for item in chunk]
    if chunk and chunk[0][1].record_reads:
        from gradguard.cache import index_reads

        return results, index_reads(_worker_project)
    return results, None


def _index_project(
    paths: list[str], config: Config, work: list[tuple[str, CheckJob]], warm: bool = True
) -> tuple[ProjectIndex, dict[str, str]]:
    """The project index: every file under the package roots of the given paths, so that a
    finding in one file may rest on another file's classes; and the texts it read, by path."""
    texts: dict[str, str] = {}
    gc.disable()  # hundreds of thousands of long-lived objects: nothing for the GC to do
    try:
        read: dict[str, str] = {}
        project = build_project(paths, config.exclude, keep=read)
        for path, _ in work:
            text = read.get(project.real_path(path))
            if text is not None:
                texts[path] = text
        del read
    finally:
        gc.enable()
    if warm:
        _warm_project(project)
    return project, texts


def _warm_project(project: ProjectIndex) -> None:
    gc.disable()
    try:
        project.warm()
    finally:
        gc.enable()
    # the index lives as long as the process: keep the garbage collector from walking it
    # again and again (and, after a fork, from touching every page of it)
    gc.freeze()


def _run_parallel(
    work: list[tuple[str, CheckJob]],
    jobs: int,
    project: ProjectIndex | None = None,
    texts: dict | None = None,
    reads: list[dict] | None = None,
) -> list[FileResult]:
    fork = sys.platform.startswith("linux") or "fork" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork") if fork else None
    # forked workers share the index and the texts copy-on-write; with "spawn" the index is
    # pickled once per worker and the workers read the files themselves
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_worker_init,
        initargs=(os.getpid(), project, texts if fork else {}),
    )
    size = max(1, len(work) // (jobs * 8))
    try:
        # submit/result rather than map: map cancels the pending futures when interrupted,
        # which races with the pool's own clean-up on 3.11 (an InvalidStateError traceback)
        # the workers are forked during the first submit: a Ctrl-C or SIGTERM arriving inside
        # fork's bookkeeping can be lost, so they wait until the pool is up
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            futures = [pool.submit(_check_chunk, work[i : i + size]) for i in range(0, len(work), size)]
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        results = []
        for future in futures:
            chunk_results, chunk_reads = future.result()
            results.extend(chunk_results)
            if chunk_reads is not None and reads is not None:
                reads.append(chunk_reads)
    except BaseException:
        # interrupted or failed: stop the workers now rather than let them finish their files
        for process in list(getattr(pool, "_processes", {}).values()):
            try:
                process.kill()
            except (OSError, ValueError, AttributeError):
                pass
        pool.shutdown(wait=False)  # (not cancel_futures: the same race)
        raise
    pool.shutdown()
    return results


class _Terminated(SystemExit):
    pass


def _on_sigterm(signum, frame) -> None:
    raise _Terminated(128 + signal.SIGTERM)


def _resolve_config_path(args: argparse.Namespace) -> tuple[Config, Path | None]:
    """The effective settings, and the pyproject.toml they came from (None: defaults)."""
    config_path: Path | None
    if args.config:
        config_path = Path(args.config)
        if not config_path.is_file():
            raise UsageError(f"--config: no such file: {args.config}")
        config = load_config_file(config_path)
    else:
        first = Path(args.paths[0]) if args.paths else Path.cwd()
        try:
            exists = first.exists()
        except OSError:
            exists = False
        config, config_path = load_config(first if exists else Path.cwd())
    config = config.merged(select=args.select, ignore=args.ignore, extend_ignore=args.extend_ignore)
    if not config.select_given:
        config = dataclasses.replace(config, ignore=(*config.ignore, *suggestion_codes()))
    known = known_codes()  # GG9xx too: ignoring/re-grading probe findings is valid
    for selector in (*config.select, *config.ignore, *config.severity):
        if selector == InternalErrorRule.code:
            raise UsageError(
                f"{selector} ({InternalErrorRule.name}) is always reported; it cannot be configured"
            )
        if selector != "ALL" and not any(code.startswith(selector) for code in known):
            raise UsageError(f"unknown rule code or prefix: {selector}")
    return config, config_path


def _cache_root(args: argparse.Namespace, config: Config, config_path: Path | None) -> Path | None:
    """Where the result cache lives; None when it is not to be used (--no-cache, --fix, --diff)."""
    from gradguard.cache import default_cache_dir

    if args.no_cache or args.fix or args.diff or os.environ.get("GRADGUARD_NO_CACHE", "") not in ("", "0"):
        return None
    if args.cache_dir:
        return Path(args.cache_dir)
    if os.environ.get("GRADGUARD_CACHE_DIR"):
        return Path(os.environ["GRADGUARD_CACHE_DIR"])
    if config.cache_dir:
        return Path(config.cache_dir)
    return default_cache_dir(config_path)


def _file_digest(path: str, texts: dict[str, str]) -> str | None:
    """The digest of what checking `path` reads (its text; a notebook's bytes); None when it
    cannot be read (the check then says why). A text read here is left in `texts`."""
    import hashlib

    from gradguard.cache import text_digest

    if path.endswith(NOTEBOOK_SUFFIX):
        try:
            return hashlib.sha256(read_notebook_bytes(path)).hexdigest()
        except UnreadableFile:
            return None
    text = texts.get(path)
    if text is None:
        try:
            text = texts[path] = read_source_file(path).text
        except UnreadableFile:
            return None
    return text_digest(text)


def _check_all(
    work: list[tuple[str, CheckJob]],
    jobs: int,
    project: ProjectIndex | None,
    texts: dict,
    reads: list[dict] | None = None,
) -> list[FileResult]:
    """Check every file of `work`: in `jobs` worker processes when there are enough files, else here.
    `reads`: where the workers' recorded reads go (the result cache)."""
    if jobs > 1 and len(work) > 8:
        return _run_parallel(work, jobs, project, texts, reads)
    _init_worker(project, texts)
    return [_check_one(w) for w in work]


def _cached_check(
    args: argparse.Namespace,
    root: Path,
    config: Config,
    work: list[tuple[str, CheckJob]],
    jobs: int,
) -> list[FileResult]:
    """The check with the result cache: the hits read back, the rest checked and stored."""
    from gradguard import cache as result_cache

    project, texts = (None, {}) if args.no_project else _index_project(args.paths, config, work, warm=False)
    context = result_cache.context_digest(
        result_cache.engine_fingerprint(),
        result_cache.settings_fingerprint(config, args.no_project),
        result_cache.project_fingerprint(project) if project is not None else "no project",
    )
    store = result_cache.ResultCache.open(root, context)
    results: list[FileResult | None] = [None] * len(work)
    keys: dict[int, str] = {}
    todo: list[int] = []
    for i, (path, _job) in enumerate(work):
        digest = _file_digest(path, texts) if store is not None else None
        if store is not None and digest is not None:
            keys[i] = store.key(path, digest)
            findings = store.get(keys[i])
            if findings is not None:
                results[i] = FileResult(path, findings)
                continue
        todo.append(i)
    reads: list[dict] = []
    if todo:
        if project is not None:
            _warm_project(project)
        missed = [(work[i][0], dataclasses.replace(work[i][1], record_reads=True)) for i in todo]
        checked = _check_all(missed, min(jobs, len(missed)), project, texts, reads)
        for i, result in zip(todo, checked, strict=True):
            results[i] = result
            cacheable = not (result.skipped or result.internal_errors or result.write_error)
            if store is not None and i in keys and cacheable:
                store.put(keys[i], result.findings)
    if store is not None:
        merged = result_cache.merge_reads(result_cache.index_reads(project), *reads)
        if merged is not None:
            store.close(merged)
        log.debug("cache: %d hits, %d misses, %d written", store.hits, store.misses, store.written)
    return [r for r in results if r is not None]


def run_check(args: argparse.Namespace) -> int:
    from gradguard.output import render
    from gradguard.output.render import use_color

    if args.jobs < 0:
        raise UsageError(f"--jobs must be 0 (all cores) or more, got {args.jobs}")
    config, config_path = _resolve_config_path(args)
    fileset = collect_files(args.paths, config.exclude)
    if fileset.missing:
        raise UsageError("no such file or directory: " + ", ".join(display_path(m) for m in fileset.missing))
    job = CheckJob(config, fix=args.fix or args.diff, unsafe=args.unsafe_fixes, diff=args.diff)
    if args.fix and not args.diff:
        clean_stale_temporaries({os.path.dirname(os.path.realpath(p)) or "." for p in fileset.files})
    work = [(str(p), job) for p in fileset.files]
    jobs = job_count(args.jobs, len(work))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    cache_root = _cache_root(args, config, config_path)
    try:
        if cache_root is not None:
            results = _cached_check(args, cache_root, config, work, jobs)
        else:
            project, texts = (None, {}) if args.no_project else _index_project(args.paths, config, work)
            results = _check_all(work, jobs, project, texts)
    finally:
        signal.signal(signal.SIGTERM, previous)

    findings: list[Finding] = []
    skipped: list[tuple[str, str]] = list(fileset.unreadable)
    diffs: list[str] = []
    fixed_count = internal_errors = write_errors = 0
    for path, reason in fileset.unreadable:
        print(f"gradguard: {display_path(path)}: {reason}", file=sys.stderr)
    for result in results:
        findings.extend(result.findings)
        internal_errors += result.internal_errors
        if result.skipped:
            skipped.append((result.path, result.skipped))
            print(f"gradguard: {display_path(result.path)}: {result.skipped}", file=sys.stderr)
        if result.write_error:
            write_errors += 1
            print(f"gradguard: {display_path(result.path)}: not fixed: {result.write_error}", file=sys.stderr)
        fixed_count += result.fixes_applied
        if args.diff and result.fixed_text is not None and result.original_text is not None:
            diffs.append(
                "".join(
                    difflib.unified_diff(
                        result.original_text.splitlines(keepends=True),
                        result.fixed_text.splitlines(keepends=True),
                        fromfile=f"a/{display_path(result.path)}",
                        tofile=f"b/{display_path(result.path)}",
                    )
                )
            )
    findings.sort(key=lambda f: (f.sort_key, f.cell or 0))
    incomplete = bool(skipped or internal_errors or write_errors)
    if args.diff:
        sys.stdout.write("".join(diffs))
        return EXIT_USAGE if incomplete else EXIT_FINDINGS if diffs else EXIT_CLEAN
    problems = _problems(
        len(skipped) - len(fileset.unreadable), len(fileset.unreadable), internal_errors, write_errors
    )
    color = use_color(args.color)
    sys.stdout.write(render(findings, args.format, color=color, problems=problems, skipped=skipped))
    if args.fix and fixed_count and args.format == "text":
        print(f"Fixed {fixed_count} problem{'s' if fixed_count != 1 else ''}.")
    if incomplete:
        return EXIT_USAGE  # the check is not complete: never a pass, --exit-zero or not
    if args.exit_zero:
        return EXIT_CLEAN
    return EXIT_FINDINGS if findings else EXIT_CLEAN


def _problems(files: int, directories: int, internal_errors: int, write_errors: int) -> list[str]:
    """What kept the check from being complete, one phrase each (shown after the findings)."""
    problems = []
    if files:
        problems.append(f"{files} file{'s' if files != 1 else ''} not checked")
    if directories:
        problems.append(f"{directories} director{'ies' if directories != 1 else 'y'} not read")
    if internal_errors:
        problems.append(f"{internal_errors} internal error{'s' if internal_errors != 1 else ''} (GG001)")
    if write_errors:
        problems.append(f"{write_errors} fixed file{'s' if write_errors != 1 else ''} not written")
    return problems


# -- other commands -------------------------------------------------------------------------------
def run_explain(code: str) -> int:
    rule = rule_class(code)
    if rule is None:
        raise UsageError(f"unknown rule {code!r}; `gradguard rules` lists them")
    sys.stdout.write(rule.full_explanation())
    return EXIT_CLEAN


def run_rules() -> int:
    for rule in iter_rule_metadata():
        fix = {None: "   ", "safe": "fix", "unsafe": "fix*"}[getattr(rule.fix_applicability, "value", None)]
        print(f"{rule.code}  {rule.name:<32} {fix:<5} {rule.summary}")
    return EXIT_CLEAN


def _setup_output() -> None:
    # a path or message the terminal's encoding cannot show is escaped, never a crash
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    if not logging.getLogger().handlers:  # the log of `check`: warnings and tracebacks on stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("gradguard: %(message)s"))
        logging.getLogger().addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            _setup_output()
            return run_check(args)
        if args.command == "explain":
            return run_explain(args.code)
        if args.command == "rules":
            return run_rules()
        if args.command == "lsp":
            from gradguard.lsp.server import start

            start(log_level=args.log_level)
            return EXIT_CLEAN
        if args.command == "probe":
            from gradguard.probe.cli import run_probe

            return run_probe(args)
        parser.print_help()
        return EXIT_USAGE
    except (UsageError, ConfigError) as exc:
        print(f"gradguard: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_broken_pipe()
        return EXIT_CLEAN
    except OSError as exc:  # e.g. stdout on a full disk
        print(f"gradguard: error: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


def _quiet_broken_pipe() -> None:
    # the reader went away (`| head`): do not let the final flush print a traceback
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
