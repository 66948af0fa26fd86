"""text, json, sarif and github renderings of findings."""

from __future__ import annotations

import json
import os
import sys
from typing import Iterable

from gradguard import __version__
from gradguard.engine.finding import Finding, Severity
from gradguard.engine.rule import iter_rule_metadata, rule_class

FORMATS = ("text", "json", "sarif", "github")

_COLORS = {
    Severity.ERROR: "\033[1;31m",
    Severity.WARNING: "\033[1;33m",
    Severity.INFORMATION: "\033[1;36m",
    Severity.HINT: "\033[2m",
}
_BOLD = "\033[1m"
_DIM = "\033[2m"
_RESET = "\033[0m"


def use_color(choice: str, stream=None) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def render(
    findings: list[Finding], fmt: str, color: bool = False, notes: Iterable[tuple[str, str]] = ()
) -> str:
    if fmt == "json":
        return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif(findings), indent=2) + "\n"
    if fmt == "github":
        return "".join(_github(f) for f in findings)
    return text(findings, color, list(notes))


def text(findings: list[Finding], color: bool, notes: list[tuple[str, str]]) -> str:
    def paint(code: str, value: str) -> str:
        return f"{code}{value}{_RESET}" if color else value

    out = []
    for f in findings:
        where = paint(_BOLD, f"{f.path}:{f.line}:{f.column}:")
        code = paint(_COLORS.get(f.severity, ""), f.code)
        fixable = paint(_DIM, " [*]") if f.fix is not None and f.fix.safe else ""
        out.append(f"{where} {code} {f.message}{fixable}\n")
        if f.detail:
            out.append(f"    {f.detail}\n")
    for path, note in notes:
        out.append(paint(_DIM, f"{path}: {note}") + "\n")
    if findings:
        safe = sum(1 for f in findings if f.fix is not None and f.fix.safe)
        noun = "problem" if len(findings) == 1 else "problems"
        out.append(f"Found {len(findings)} {noun}.")
        if safe:
            out.append(f" [*] {safe} fixable with `gradguard check --fix`.")
        out.append("\n")
    else:
        out.append(paint("\033[1;32m", "All checks passed!") + "\n")
    return "".join(out)


def full_message(f: Finding) -> str:
    """The short message followed by the detail, for outputs that show one text."""
    if not f.detail:
        return f.message
    end = "" if f.message.rstrip().endswith((".", ":", "!", "?")) else "."
    return f"{f.message.rstrip()}{end} {f.detail}"


def _github(f: Finding) -> str:
    level = {"error": "error", "warning": "warning"}.get(f.severity.value, "notice")
    message = f"{f.code} {full_message(f)}".replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return (
        f"::{level} title=gradguard {f.code},file={f.path},line={f.line},col={f.column},"
        f"endLine={f.end_line},endColumn={f.end_column}::{message}\n"
    )


def sarif(findings: list[Finding]) -> dict:
    rules = []
    index = {}
    for rule in iter_rule_metadata():
        index[rule.code] = len(rules)
        rules.append(
            {
                "id": rule.code,
                "name": rule.name,
                "shortDescription": {"text": rule.summary},
                "fullDescription": {"text": rule.summary},
                "help": {"text": rule.summary, "markdown": rule.full_explanation()},
                "helpUri": rule.doc_url(),
                "defaultConfiguration": {"level": _sarif_level(rule.severity)},
            }
        )
    results = []
    for f in findings:
        result = {
            "ruleId": f.code,
            "level": _sarif_level(f.severity),
            # SARIF: the text's first sentence is its summary, the rest the detail
            "message": {"text": full_message(f)},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.path.replace(os.sep, "/")},
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.column,
                            "endLine": f.end_line,
                            "endColumn": f.end_column,
                        },
                    }
                }
            ],
        }
        if f.code in index:
            result["ruleIndex"] = index[f.code]
        if f.fix is not None and f.fix.edits:
            result["fixes"] = [
                {
                    "description": {"text": f.fix.title},
                    "artifactChanges": [
                        {
                            "artifactLocation": {"uri": f.path.replace(os.sep, "/")},
                            "replacements": [
                                {
                                    "deletedRegion": {
                                        "startLine": e.start_line,
                                        "startColumn": e.start_column,
                                        "endLine": e.end_line,
                                        "endColumn": e.end_column,
                                    },
                                    "insertedContent": {"text": e.new_text},
                                }
                                for e in f.fix.edits
                            ],
                        }
                    ],
                }
            ]
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "gradguard",
                        "version": __version__,
                        "informationUri": "https://github.com/gradguard/gradguard",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def _sarif_level(severity: Severity) -> str:
    return {"error": "error", "warning": "warning"}.get(severity.value, "note")


def rule_exists(code: str) -> bool:
    return rule_class(code) is not None
