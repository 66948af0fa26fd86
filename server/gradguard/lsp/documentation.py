"""What the editor shows about a finding's rule: the hover text and the link to the explanation.

The explanation always opens locally, never on a web page:

* a client that runs commands from links (the VS Code extension says so with the
  initialization option `commandLinks`) gets `command:gradguard.showDocumentation?["GG202"]`,
  which the extension opens as a markdown preview;
* any other client gets the `file:` URI of the explanation, written once per version into the
  user's cache folder.

This module never imports torch.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

from gradguard import __version__
from gradguard.engine.catalog import rule_class
from gradguard.engine.finding import Finding

CMD_SHOW_DOCS = "gradguard.showDocumentation"


def cache_dir() -> Path:
    """Where the explanations are written: the user's cache folder, per gradguard version."""
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gradguard" / f"docs-{__version__}"


def explanation_file(code: str) -> Path | None:
    """The rule's explanation as a markdown file (written or refreshed now); None when the code
    is unknown or the cache folder cannot be written."""
    rule = rule_class(code)
    if rule is None:
        return None
    text = rule.full_explanation()
    path = cache_dir() / f"{rule.code}.md"
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{rule.code}.", suffix=".md")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return None
    return path


@functools.lru_cache(maxsize=128)
def _file_link(code: str) -> str | None:
    path = explanation_file(code)
    return path.as_uri() if path is not None else None


def command_link(code: str) -> str:
    return f"command:{CMD_SHOW_DOCS}?{quote(json.dumps([code]))}"


def docs_link(code: str, command_links: bool) -> str | None:
    """The link that opens the local explanation of `code`; None for unknown codes."""
    rule = rule_class(code)
    if rule is None:
        return None
    return command_link(rule.code) if command_links else _file_link(rule.code)


def finding_hover(finding: Finding, markdown: bool, link: str | None) -> str:
    """The hover over a finding. The client shows the diagnostic's message right above it, so the
    hover does not repeat it: the detail (the rest of what the finding says), why the rule matters
    in one or two sentences, the fix's title and a link to the full explanation."""
    rule = rule_class(finding.code)
    name = rule.name if rule is not None else finding.name
    why = rule.short_why() if rule is not None else ""
    fix = f"Quick fix: {finding.fix.title}" if finding.fix is not None else "No automatic fix."
    parts = []
    if finding.detail:
        parts.append(finding.detail)
    if markdown:
        parts.append(f"**{finding.code} {name}**" + (f": {why}" if why else ""))
        parts.append(fix + (f" · [Full explanation]({link})" if link else ""))
    else:
        parts.append(f"{finding.code} {name}" + (f": {why}" if why else ""))
        parts.append(fix)
        if link and not link.startswith("command:"):
            parts.append(f"Full explanation: {link}")
    return "\n\n".join(parts)
