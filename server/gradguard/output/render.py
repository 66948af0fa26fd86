"""text, json, sarif and github renderings of findings."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from urllib.parse import quote

from gradguard import __version__
from gradguard.engine.catalog import iter_rule_metadata, rule_class
from gradguard.engine.finding import Finding, Fix, Severity
from gradguard.engine.rule import Documented, Rule

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
    findings: list[Finding],
    fmt: str,
    color: bool = False,
    notes: Iterable[tuple[str, str]] = (),
    problems: Iterable[str] = (),
    skipped: Iterable[tuple[str, str]] = (),
) -> str:
    """`problems`: why the check is incomplete ("2 files not checked"); `skipped`: (path,
    reason) of what was not checked. A run with problems never says "All checks passed!"."""
    skipped, problems = list(skipped), list(problems)
    if fmt == "json":
        return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif(findings, skipped, complete=not problems), indent=2) + "\n"
    if fmt == "github":
        return "".join(_github(f) for f in findings) + "".join(_github_skipped(p, r) for p, r in skipped)
    return text(findings, color, list(notes), problems)


def display_path(path: str) -> str:
    """A path as printed in text: control characters (a newline in a file name) and
    undecodable bytes escaped, so that one finding is always one line."""
    if path.isprintable():
        return path
    out = []
    for ch in path:
        if ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


def text(
    findings: list[Finding], color: bool, notes: list[tuple[str, str]], problems: list[str] | None = None
) -> str:
    def paint(code: str, value: str) -> str:
        return f"{code}{value}{_RESET}" if color else value

    out = []
    for f in findings:
        cell = f"cell {f.cell}:" if f.cell is not None else ""
        where = paint(_BOLD, f"{display_path(f.path)}:{cell}{f.line}:{f.column}:")
        code = paint(_COLORS.get(f.severity, ""), f.code)
        fixable = paint(_DIM, " [*]") if f.fix is not None and f.fix.safe else ""
        out.append(f"{where} {code} {f.message}{fixable}\n")
        if f.detail:
            out.append(f"    {f.detail}\n")
    for path, note in notes:
        out.append(paint(_DIM, f"{display_path(path)}: {note}") + "\n")
    if findings:
        safe = sum(1 for f in findings if f.fix is not None and f.fix.safe)
        noun = "problem" if len(findings) == 1 else "problems"
        out.append(f"Found {len(findings)} {noun}.")
        if safe:
            out.append(f" [*] {safe} fixable with `gradguard check --fix`.")
        out.append("\n")
    elif not problems:
        out.append(paint("\033[1;32m", "All checks passed!") + "\n")
    if problems:
        detail = "; ".join(problems)
        head = (
            "Incomplete check"
            if findings
            else "No problems found in what was checked, but the check is incomplete"
        )
        out.append(paint(_COLORS[Severity.ERROR], f"{head}: {detail} (see the messages above).") + "\n")
    return "".join(out)


def full_message(f: Finding) -> str:
    """The short message followed by the detail, for outputs that show one text."""
    if not f.detail:
        return f.message
    end = "" if f.message.rstrip().endswith((".", ":", "!", "?")) else "."
    return f"{f.message.rstrip()}{end} {f.detail}"


def _github_data(value: str) -> str:
    # GitHub's workflow-command escaping (actions/toolkit `escapeData`)
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_property(value: str) -> str:
    # ... and `escapeProperty`: also `:` and `,`, which delimit properties
    return _github_data(value).replace(":", "%3A").replace(",", "%2C")


def _github(f: Finding) -> str:
    level = {"error": "error", "warning": "warning"}.get(f.severity.value, "notice")
    message = f"{f.code} {full_message(f)}"
    if f.cell is not None:  # a notebook: GitHub cannot point into a cell, say where in the message
        message = f"cell {f.cell}, line {f.line}, column {f.column}: {message}"
        where = ""
    else:
        where = f",line={f.line},col={f.column},endLine={f.end_line},endColumn={f.end_column}"
    title = _github_property(f"gradguard {f.code}")
    return f"::{level} title={title},file={_github_property(f.path)}{where}::{_github_data(message)}\n"


def _github_skipped(path: str, reason: str) -> str:
    title = _github_property("gradguard: not checked")
    return f"::error title={title},file={_github_property(path)}::{_github_data(reason)}\n"


def _uri(path: str) -> str:
    """A relative URI reference for SARIF: the path's bytes percent-encoded (spaces, `#`,
    `%`, newlines...), `/` as separator."""
    return quote(os.fsencode(path.replace(os.sep, "/")), safe="/")


def sarif(findings: list[Finding], skipped: Iterable[tuple[str, str]] = (), complete: bool = True) -> dict:
    rules = [_sarif_rule(rule) for rule in iter_rule_metadata()]
    index = {rule["id"]: i for i, rule in enumerate(rules)}
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
                "results": [_sarif_result(f, index) for f in findings],
                "invocations": [
                    {
                        "executionSuccessful": complete,
                        "toolExecutionNotifications": [
                            {
                                "level": "error",
                                "message": {"text": f"not checked: {reason}"},
                                "locations": [
                                    {"physicalLocation": {"artifactLocation": {"uri": _uri(path)}}}
                                ],
                            }
                            for path, reason in skipped
                        ],
                    }
                ],
            }
        ],
    }


def _sarif_rule(rule: Documented | type[Rule]) -> dict:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.summary},
        "help": {"text": rule.summary, "markdown": rule.full_explanation()},
        "helpUri": rule.doc_url(),
        "defaultConfiguration": {"level": _sarif_level(rule.severity)},
    }


def _sarif_result(f: Finding, index: dict[str, int]) -> dict:
    location: dict = {"artifactLocation": {"uri": _uri(f.path)}}
    # SARIF: the text's first sentence is its summary, the rest the detail
    message = full_message(f)
    if f.cell is None:
        location["region"] = {
            "startLine": f.line,
            "startColumn": f.column,
            "endLine": f.end_line,
            "endColumn": f.end_column,
        }
    else:  # a notebook: lines are within the cell, which a SARIF region cannot say
        message = f"cell {f.cell}, line {f.line}, column {f.column}: {message}"
    result: dict = {
        "ruleId": f.code,
        "level": _sarif_level(f.severity),
        "message": {"text": message},
        "locations": [{"physicalLocation": location}],
    }
    if f.code in index:
        result["ruleIndex"] = index[f.code]
    if f.fix is not None and f.fix.edits:
        result["fixes"] = [_sarif_fix(f.path, f.fix)]
    return result


def _sarif_fix(path: str, fix: Fix) -> dict:
    return {
        "description": {"text": fix.title},
        "artifactChanges": [
            {
                "artifactLocation": {"uri": _uri(path)},
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
                    for e in fix.edits
                ],
            }
        ],
    }


def _sarif_level(severity: Severity) -> str:
    return {"error": "error", "warning": "warning"}.get(severity.value, "note")


def rule_exists(code: str) -> bool:
    return rule_class(code) is not None
