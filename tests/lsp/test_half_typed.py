"""While the file does not parse, the last findings move along with the edits."""

from __future__ import annotations

from gradguard.engine.config import Config
from gradguard.engine.finding import Finding, Fix, Severity, TextEdit
from gradguard.engine.incremental import IncrementalParser
from gradguard.engine.source import split_lines
from gradguard.lsp.server import AnalysisState, GradguardServer, Snapshot


def finding(line, end_line=None, fix=True):
    end_line = end_line or line
    return Finding(
        "GG202",
        "masked-assignment",
        Severity.WARNING,
        "m",
        line,
        5,
        end_line,
        9,
        "x.py",
        fix=Fix("Replace", "safe", [TextEdit(line, 5, line, 9, "y")]) if fix else None,
    )


def kept(old: str, new: str, findings: list[Finding]) -> list[Finding]:
    state = AnalysisState(IncrementalParser(), split_lines(old), findings)
    snap = Snapshot("file:///x.py", 2, new, split_lines(new), "x.py", Config())
    return GradguardServer._kept_while_broken(state, snap)


OLD = "".join(f"line{i}\n" for i in range(1, 11))


def test_findings_after_the_edit_move_with_it():
    new = OLD.replace("line3\n", "line3\ndef broken(:\n")
    (moved,) = kept(OLD, new, [finding(7)])
    assert (moved.line, moved.end_line) == (8, 8)
    assert moved.fix is not None and moved.fix.edits[0].start_line == 8


def test_findings_before_the_edit_stay():
    new = OLD.replace("line5\n", "line5 (\n")
    (same,) = kept(OLD, new, [finding(2)])
    assert (same.line, same.fix.edits[0].start_line) == (2, 2)


def test_finding_on_the_edited_line_stays_without_its_fix():
    new = OLD.replace("line5\n", "line5 (\n")
    (here,) = kept(OLD, new, [finding(5)])
    assert (here.line, here.end_line, here.fix) == (5, 5, None)


def test_findings_in_deleted_lines_disappear_and_spanning_ones_stretch():
    new = OLD.replace("line4\nline5\nline6\n", "")
    result = kept(OLD, new, [finding(5), finding(2, 9), finding(9)])
    assert [(f.line, f.end_line) for f in result] == [(2, 6), (6, 6)]
    assert result[0].fix is None  # its edits no longer fit the text


def test_the_old_syntax_error_is_not_kept():
    old_error = Finding("GG000", "syntax-error", Severity.ERROR, "Syntax error", 3, 1, 3, 2, "x.py")
    assert kept(OLD, OLD.replace("line1", "line1 ("), [old_error]) == []
