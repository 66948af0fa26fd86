"""`gradguard probe FILE [--target NAME] [--format text|json]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from gradguard import proctree
from gradguard.engine.config import ConfigError, load_config
from gradguard.engine.finding import Severity
from gradguard.probe.report import ProbeReport, UnknownTarget, apply_config, probe_source
from gradguard.probe.sandbox import MIN_MEMORY_MB

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
NOT_A_SANDBOX = (
    "The probe executes your code; it is not a security sandbox, and code that wants to can fake its results."
)


def run_probe(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"gradguard: error: no such file: {args.file}", file=sys.stderr)
        return EXIT_USAGE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"gradguard: error: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.timeout <= 0:
        print("gradguard: error: --timeout must be positive", file=sys.stderr)
        return EXIT_USAGE
    if args.memory_mb < MIN_MEMORY_MB:
        print(
            f"gradguard: note: --memory-mb raised to {MIN_MEMORY_MB} (importing torch needs about 0.5 GB)",
            file=sys.stderr,
        )
    python = args.python or sys.executable
    proctree.set_subreaper()  # what the probed code leaves behind comes back to us, and is killed
    try:
        report = asyncio.run(
            probe_source(
                text,
                str(path),
                target=args.target,
                python=python,
                timeout=args.timeout,
                memory_mb=args.memory_mb,
                cwd=str(path.resolve().parent),
            )
        )
    except UnknownTarget as exc:
        print(f"gradguard: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as exc:
        print(f"gradguard: error: cannot start the interpreter {python!r}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config, _ = load_config(path.resolve())
    except ConfigError as exc:
        print(f"gradguard: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    report.findings = apply_config(report.findings, config)
    if report.error:
        print(f"gradguard: {report.error}", file=sys.stderr)
        return EXIT_CLEAN if report.nothing_to_probe else EXIT_USAGE
    if args.format == "json":
        sys.stdout.write(json.dumps([f.to_dict() for f in report.findings], indent=2) + "\n")
    else:
        sys.stdout.write(render_text(report))
    # "could not run" notes (severity information) are not findings about the code
    problems = [f for f in report.findings if f.severity in (Severity.ERROR, Severity.WARNING)]
    return EXIT_FINDINGS if problems else EXIT_CLEAN


def render_text(report: ProbeReport) -> str:
    from gradguard.output.render import text

    out = []
    for note in report.notes:
        seconds = f" [{note.seconds:.2f} s]" if note.seconds is not None else ""
        out.append(f"{report.path}:{note.line}: probe {note.name}: {note.summary}{seconds}\n")
    out.append(text(report.findings, color=False, notes=[]))
    out.append(f"Probe wall time: {report.seconds:.2f} s (including starting Python and importing torch)\n")
    out.append(f"Probe isolation: {report.isolation_summary}. {NOT_A_SANDBOX}\n")
    if report.rejected_lines:
        out.append(
            f"Probe: {report.rejected_lines} result line(s) written by the probed code itself were ignored\n"
        )
    return "".join(out)
