"""The `gradguard` command line: check, explain, rules, lsp, probe."""

from __future__ import annotations

import argparse
import difflib
import gc
import multiprocessing
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gradguard import __version__
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.config import Config, ConfigError, load_config
from gradguard.engine.files import UnreadableFile, collect_files, read_source
from gradguard.engine.finding import Finding
from gradguard.engine.project import ProjectIndex, build_project
from gradguard.engine.rule import all_rules, iter_rule_metadata, rule_class

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with a clear message, as argparse does
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
    check.add_argument("--jobs", "-j", type=int, default=0, help="parallel processes (default: all cores)")
    check.add_argument("--config", help="pyproject.toml to read [tool.gradguard] from")
    check.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    check.add_argument(
        "--no-project",
        action="store_true",
        help="check every file alone (no project index: imports from other files stay unknown)",
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
@dataclass
class FileResult:
    path: str
    findings: list[Finding] = field(default_factory=list)
    note: str | None = None  # why the file was skipped
    fixed_text: str | None = None
    original_text: str | None = None
    fixes_applied: int = 0


@dataclass
class CheckJob:
    config: Config
    fix: bool
    unsafe: bool


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


def _check_one(args: tuple[str, CheckJob]) -> FileResult:
    global _worker_analyzer
    path, job = args
    if _worker_analyzer is None or _worker_analyzer.config != job.config:
        _worker_analyzer = Analyzer(job.config, project=_worker_project)
    analyzer = _worker_analyzer
    text = _worker_texts.get(path)  # read once already, by the project index
    if text is None:
        try:
            text = read_source(Path(path))
        except UnreadableFile as exc:
            return FileResult(path, note=str(exc))
    result = FileResult(path)
    try:
        if job.fix:
            fixed, applied = analyzer.fix(text, path, unsafe=job.unsafe)
            if applied:
                result.fixed_text, result.original_text, result.fixes_applied = fixed, text, applied
                text = fixed
        result.findings = analyzer.check(text, path).findings
        for finding in result.findings:  # computed here: the parent process cannot recompute them
            if finding.fix is not None:
                finding.fix.edits  # noqa: B018 - force the lazy edits before pickling
                finding.alternatives = []
    except RecursionError:
        result.note = "skipped: nesting too deep to analyse"
    except Exception as exc:  # one bad file never stops a run over many
        result.note = f"internal error: {type(exc).__name__}: {exc}"
    return result


def _write_atomically(path: Path, text: str) -> None:
    # Never leave a half-written user file: write beside it, then rename over it.
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".gradguard", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _resolve_config(args: argparse.Namespace) -> Config:
    if args.config:
        config_path = Path(args.config)
        if not config_path.is_file():
            raise UsageError(f"--config: no such file: {args.config}")
        config, _ = load_config(config_path)
    else:
        first = Path(args.paths[0]) if args.paths else Path.cwd()
        config, _ = load_config(first if first.exists() else Path.cwd())
    config = config.merged(select=args.select, ignore=args.ignore, extend_ignore=args.extend_ignore)
    from gradguard.probe.metadata import PROBE_CODES  # GG9xx: ignoring/re-grading probe findings is valid

    known = set(all_rules()) | {"GG000"} | set(PROBE_CODES)
    for selector in (*config.select, *config.ignore, *config.severity):
        if selector != "ALL" and not any(code.startswith(selector) for code in known):
            raise UsageError(f"unknown rule code or prefix: {selector}")
    return config


def run_check(args: argparse.Namespace) -> int:
    from gradguard.output import render
    from gradguard.output.render import use_color

    config = _resolve_config(args)
    fileset = collect_files(args.paths, config.exclude)
    if fileset.missing:
        raise UsageError("no such file or directory: " + ", ".join(fileset.missing))
    job = CheckJob(config, fix=args.fix or args.diff, unsafe=args.unsafe_fixes)
    work = [(str(p), job) for p in fileset.files]
    jobs = args.jobs or os.cpu_count() or 1
    # The project index first: every file under the package roots of the given paths, so
    # that a finding in one file may rest on another file's classes.
    project = None
    texts: dict[str, str] = {}
    if not args.no_project:
        gc.disable()  # hundreds of thousands of long-lived objects: nothing for the GC to do
        try:
            read: dict[str, str] = {}
            project = build_project(args.paths, config.exclude, keep=read)
            project.warm()
            for path, _ in work:
                text = read.get(project.real_path(path))
                if text is not None:
                    texts[path] = text
            del read
        finally:
            gc.enable()
        # the index lives as long as the process: keep the garbage collector from walking
        # it again and again (and, after a fork, from touching every page of it)
        gc.freeze()
    if jobs > 1 and len(work) > 8:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        # with "spawn" (no fork) the texts would be pickled for every worker: let them read
        shared = texts if context.get_start_method() == "fork" else {}
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=(project, shared)
        ) as pool:
            results = list(pool.map(_check_one, work, chunksize=max(1, len(work) // (jobs * 8))))
    else:
        _init_worker(project, texts)
        results = [_check_one(w) for w in work]

    findings: list[Finding] = []
    notes: list[tuple[str, str]] = []
    diffs: list[str] = []
    fixed_count = 0
    for result in results:
        findings.extend(result.findings)
        if result.note:
            notes.append((result.path, result.note))
            print(f"gradguard: {result.path}: {result.note}", file=sys.stderr)
        if result.fixed_text is not None and result.original_text is not None:
            fixed_count += result.fixes_applied
            if args.diff:
                diffs.append(
                    "".join(
                        difflib.unified_diff(
                            result.original_text.splitlines(keepends=True),
                            result.fixed_text.splitlines(keepends=True),
                            fromfile=f"a/{result.path}",
                            tofile=f"b/{result.path}",
                        )
                    )
                )
            else:
                _write_atomically(Path(result.path), result.fixed_text)
    findings.sort(key=lambda f: f.sort_key)
    if args.diff:
        sys.stdout.write("".join(diffs))
        return EXIT_FINDINGS if diffs else EXIT_CLEAN
    color = use_color(args.color)
    sys.stdout.write(render(findings, args.format, color=color, notes=[] if args.format != "text" else []))
    if args.fix and fixed_count and args.format == "text":
        print(f"Fixed {fixed_count} problem{'s' if fixed_count != 1 else ''}.")
    if args.exit_zero:
        return EXIT_CLEAN
    return EXIT_FINDINGS if findings else EXIT_CLEAN


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
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
        return EXIT_CLEAN


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
