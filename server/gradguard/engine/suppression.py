"""`# noqa: GG202` and `# gradguard: ignore[GG202]` comments on a line, and
`# gradguard: noqa: GG202` on a line of its own for the whole file (as Ruff's `# ruff: noqa`)."""

from __future__ import annotations

import re

_NOQA = re.compile(
    r"#\s*noqa(?P<sep>\s*:\s*(?P<codes>[A-Za-z]+[0-9]+(?:\s*[,\s]\s*[A-Za-z]+[0-9]+)*))?", re.I
)
_IGNORE = re.compile(r"#\s*gradguard\s*:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.I)
_CODE = re.compile(r"[A-Za-z]+[0-9]+")
FILE_NOQA = re.compile(
    r"^\s*#\s*gradguard\s*:\s*noqa(?P<sep>\s*:\s*(?P<codes>[A-Za-z]+[0-9]+(?:\s*[,\s]\s*[A-Za-z]+[0-9]+)*))?\s*$",
    re.IGNORECASE,
)
FILE = 0  # the table's key for codes silenced in the whole file

ALL = None  # marker: every code on the line is silenced


def suppressions(lines: list[str]) -> dict[int, set[str] | None]:
    """Map of 1-based line -> codes silenced there (None: all); key FILE (0): the whole file."""
    result: dict[int, set[str] | None] = {}
    for number, text in enumerate(lines, start=1):
        if "#" not in text:
            continue
        lowered = text.lower()
        if "noqa" not in lowered and "gradguard" not in lowered:
            continue
        whole_file = FILE_NOQA.match(text)
        if whole_file is not None:
            codes = whole_file.group("codes")
            current = result.get(FILE, set())
            if codes is None:
                result[FILE] = ALL
            elif current is not ALL:
                result[FILE] = current | {c.upper() for c in _CODE.findall(codes)}  # type: ignore[operator]
            continue
        for match in list(_NOQA.finditer(text)) + list(_IGNORE.finditer(text)):
            codes = match.group("codes")
            if codes is None:
                result[number] = ALL
                break
            found = {c.upper() for c in _CODE.findall(codes)}
            current = result.get(number, set())
            if current is not ALL:
                result[number] = current | found  # type: ignore[operator]
    return result


def is_suppressed(table: dict[int, set[str] | None], code: str, line: int, end_line: int) -> bool:
    # A finding may be silenced on its first or its last line (multi-line statements), or in
    # the whole file.
    for number in (FILE, line, end_line):
        if number in table:
            codes = table[number]
            if codes is ALL or code in codes:  # type: ignore[operator]
                return True
    return False


# -- the edits that add a suppression (the language server's "Disable GGxxx" quick fixes) -----------
def line_suppression(line: str, code: str) -> tuple[int, str]:
    """(column, text) to insert into `line` (its text without the line ending) to silence
    `code` there: the code added to the line's `# noqa: ...` / `# gradguard: ignore[...]`
    comment, or a new `  # noqa: CODE` at the end of the line. The column is 0-based."""
    for pattern in (_NOQA, _IGNORE):
        match = next((m for m in pattern.finditer(line) if m.group("codes")), None)
        if match is not None:
            return match.end("codes"), f", {code}"
    return len(line), f"  # noqa: {code}"


def file_suppression(lines: list[str], code: str) -> tuple[int, int, str]:
    """(line index, column, text), all 0-based, to insert into the file of `lines` (each with its
    line ending) to silence `code` in the whole file: the code added to the file's
    `# gradguard: noqa: ...` line, or that line added at the top of the file (after a shebang
    and an encoding declaration), with the file's line ending."""
    bodies = [_without_ending(line) for line in lines]
    for index, body in enumerate(bodies):
        match = FILE_NOQA.match(body)
        if match is not None and match.group("codes"):
            return index, match.end("codes"), f", {code}"
    index = 0
    while (
        index < len(bodies)
        and index < 2
        and (
            bodies[index].startswith("#!")
            or ("coding" in bodies[index] and bodies[index].lstrip().startswith("#"))
        )
    ):
        index += 1
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    return index, 0, f"# gradguard: noqa: {code}{newline}"


def _without_ending(line: str) -> str:
    if line.endswith("\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith(("\n", "\r")) else line
