"""The editor settings of section `gradguard`, layered over `[tool.gradguard]`."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from gradguard.engine.config import Config, ConfigError, find_pyproject, load_config, parse_codes
from gradguard.engine.files import matches
from gradguard.engine.finding import Severity

log = logging.getLogger(__name__)

KNOWN_KEYS = {
    "enable",
    "select",
    "ignore",
    "severity",
    "lintOnChange",
    "debounceMs",
    "probe",
    "showSyntaxErrors",
    "diagnosticMode",
    "inlayHints",
    "exclude",
}
DEFAULT_DEBOUNCE_MS = 150
# `openFilesOnly`: diagnostics for the files open in the editor; `workspace`: for every Python
# file and notebook of the workspace folders too, checked in the background (see workspace.py)
DIAGNOSTIC_MODES = ("openFilesOnly", "workspace")
_SEVERITY_ALIASES = {"warn": "warning", "info": "information"}


@dataclass(frozen=True)
class Settings:
    enable: bool = True
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    severity: tuple[tuple[str, str], ...] = ()
    lint_on_change: bool = True
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    probe_enable: bool = True
    probe_timeout: float = 20.0
    # GG000 for a file that does not parse; editors whose Python support reports syntax errors
    # already (VS Code with Pylance) turn it off, as Ruff's `showSyntaxErrors` does.
    show_syntax_errors: bool = True
    diagnostic_mode: str = "openFilesOnly"
    # inlay hints with the shape after assignments: "forward" (in forward and training loops),
    # "all" (every assignment), "off"
    inlay_shapes: str = "forward"
    # glob patterns of files and folders the editor does not check (relative to the workspace
    # folder, matched as `exclude` of `[tool.gradguard]`), on top of that `exclude` and .gitignore
    exclude: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def probe(self) -> dict:
        return {"enable": self.probe_enable, "timeout": self.probe_timeout}

    def to_dict(self) -> dict:
        return {
            "enable": self.enable,
            "select": list(self.select),
            "ignore": list(self.ignore),
            "severity": dict(self.severity),
            "lintOnChange": self.lint_on_change,
            "debounceMs": self.debounce_ms,
            "probe": self.probe,
            "showSyntaxErrors": self.show_syntax_errors,
            "diagnosticMode": self.diagnostic_mode,
            "inlayHints": {"shapes": self.inlay_shapes},
            "exclude": list(self.exclude),
        }


def _codes(value: object, key: str, problems: list[str]) -> tuple[str, ...]:
    """The engine's parsing of a code list; a bad value is reported, not raised."""
    try:
        return tuple(parse_codes(value, f"gradguard.{key}"))
    except ConfigError as exc:
        problems.append(f"{exc}; ignored")
        return ()


def parse_settings(raw: object) -> Settings:
    """Editor settings -> Settings. Never raises: bad values are replaced by defaults and
    reported in `Settings.warnings`, unknown keys too."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return Settings(
            warnings=(f"gradguard settings must be an object, got {type(raw).__name__}; ignored",)
        )
    problems = [f"gradguard.{key}: unknown setting ignored" for key in raw if key not in KNOWN_KEYS]
    enable = _flag(raw, "enable", problems)
    lint_on_change = _flag(raw, "lintOnChange", problems)
    show_syntax_errors = _flag(raw, "showSyntaxErrors", problems)
    diagnostic_mode = _diagnostic_mode(raw, problems)
    debounce = _debounce(raw, problems)
    severity = _severity(raw, problems)
    probe_enable, probe_timeout = _probe(raw, problems)
    inlay_shapes = _inlay_shapes(raw, problems)
    exclude = _exclude(raw, problems)
    return Settings(
        enable=enable,
        select=_codes(raw.get("select"), "select", problems),
        ignore=_codes(raw.get("ignore"), "ignore", problems),
        severity=tuple(sorted(severity.items())),
        lint_on_change=lint_on_change,
        debounce_ms=int(debounce),
        probe_enable=probe_enable,
        probe_timeout=probe_timeout,
        show_syntax_errors=show_syntax_errors,
        diagnostic_mode=diagnostic_mode,
        inlay_shapes=inlay_shapes,
        exclude=exclude,
        warnings=tuple(problems),
    )


def _flag(raw: dict, key: str, problems: list[str]) -> bool:
    """A true/false setting whose default is true."""
    value = raw.get(key, True)
    if not isinstance(value, bool):
        problems.append(f"gradguard.{key}: expected true or false, got {value!r}; using true")
        return True
    return value


def _diagnostic_mode(raw: dict, problems: list[str]) -> str:
    mode = raw.get("diagnosticMode", "openFilesOnly")
    if mode not in DIAGNOSTIC_MODES:
        problems.append(
            f"gradguard.diagnosticMode: expected one of {', '.join(DIAGNOSTIC_MODES)}, got "
            f"{mode!r}; using openFilesOnly"
        )
        return "openFilesOnly"
    return mode


def _debounce(raw: dict, problems: list[str]) -> int | float:
    debounce = raw.get("debounceMs", DEFAULT_DEBOUNCE_MS)
    if isinstance(debounce, bool) or not isinstance(debounce, (int, float)) or not 0 <= debounce <= 60_000:
        problems.append(f"gradguard.debounceMs: expected milliseconds (0-60000), got {debounce!r}; using 150")
        return DEFAULT_DEBOUNCE_MS
    return debounce


def _severity(raw: dict, problems: list[str]) -> dict[str, str]:
    """`severity`: code -> error, warning (or warn), information (or info) or hint."""
    severity: dict[str, str] = {}
    raw_severity = raw.get("severity")
    raw_severity = {} if raw_severity is None else raw_severity
    if not isinstance(raw_severity, dict):
        problems.append(f"gradguard.severity: expected an object of code -> severity, got {raw_severity!r}")
        return severity
    for code, level in raw_severity.items():
        level = _SEVERITY_ALIASES.get(str(level).lower(), str(level).lower())
        try:
            severity[str(code).upper()] = Severity(level).value
        except ValueError:
            problems.append(
                f"gradguard.severity.{code}: unknown severity {level!r} (use error, warning, information or hint)"
            )
    return severity


def _probe(raw: dict, problems: list[str]) -> tuple[bool, float]:
    """`probe.enable` and `probe.timeout` (seconds)."""
    probe = raw.get("probe")
    probe = {} if probe is None else probe
    probe_enable, probe_timeout = True, 20.0
    if not isinstance(probe, dict):
        problems.append(f"gradguard.probe: expected an object, got {probe!r}")
        return probe_enable, probe_timeout
    if isinstance(probe.get("enable"), bool):
        probe_enable = probe["enable"]
    timeout = probe.get("timeout")
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        probe_timeout = float(timeout)
    elif timeout is not None:
        problems.append(f"gradguard.probe.timeout: expected seconds, got {timeout!r}")
    return probe_enable, probe_timeout


def _inlay_shapes(raw: dict, problems: list[str]) -> str:
    """`inlayHints.shapes`: forward, all or off."""
    inlay = raw.get("inlayHints")
    inlay = {} if inlay is None else inlay
    if not isinstance(inlay, dict):
        problems.append(f"gradguard.inlayHints: expected an object, got {inlay!r}")
        return "forward"
    shapes = inlay.get("shapes", "forward")
    if shapes in ("forward", "all", "off"):
        return shapes
    problems.append(
        f"gradguard.inlayHints.shapes: expected forward, all or off, got {shapes!r}; using forward"
    )
    return "forward"


def _exclude(raw: dict, problems: list[str]) -> tuple[str, ...]:
    """`exclude`: a list of glob patterns."""
    raw_exclude = raw.get("exclude")
    raw_exclude = [] if raw_exclude is None else raw_exclude
    if isinstance(raw_exclude, list) and all(isinstance(p, str) for p in raw_exclude):
        return tuple(p.strip() for p in raw_exclude if p.strip())
    problems.append(f"gradguard.exclude: expected a list of glob patterns, got {raw_exclude!r}; ignored")
    return ()


class ProjectConfigs:
    """`[tool.gradguard]` of the nearest pyproject.toml, cached per directory for a short
    while (the server re-checks on every keystroke; reading TOML each time would show)."""

    TTL = 2.0

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, Config, str | None]] = {}
        self.problems: list[str] = []

    def invalidate(self) -> None:
        self._cache.clear()

    def config_for(self, directory: str | None) -> Config:
        if not directory:
            return Config()
        now = time.monotonic()
        cached = self._cache.get(directory)
        if cached is not None and now - cached[0] < self.TTL:
            return cached[1]
        config, origin = Config(), None
        try:
            if os.path.isdir(directory) and find_pyproject(Path(directory)) is not None:
                config, path = load_config(directory)
                origin = str(path) if path else None
        except (ConfigError, OSError, ValueError) as exc:
            self.problems.append(f"pyproject.toml [tool.gradguard]: {exc}; using defaults")
            config = Config()
        self._cache[directory] = (now, config, origin)
        return config

    def is_excluded(self, path: str) -> bool:
        """Whether `exclude` of the nearest `[tool.gradguard]` matches the file (patterns relative
        to that pyproject.toml's folder, as `gradguard check` applies them to directories): the
        editor does not check excluded files, as Ruff's server does not."""
        if not os.path.isabs(path):
            return False
        directory = os.path.dirname(path)
        config = self.config_for(directory)
        cached = self._cache.get(directory)
        if not config.exclude or cached is None or not cached[2]:
            return False
        try:
            rel = Path(path).resolve().relative_to(Path(cached[2]).resolve().parent)
        except (OSError, ValueError):
            return False
        parts = rel.parts
        return any(
            matches("/".join(parts[: i + 1]), parts[i], list(config.exclude)) for i in range(len(parts))
        )


def excluded_by_setting(path: str, folder: str, patterns: tuple[str, ...]) -> bool:
    """Whether `gradguard.exclude` (patterns relative to the workspace folder `folder`, matched
    on every part of the path as `exclude` of `[tool.gradguard]` is) matches the file."""
    if not patterns:
        return False
    try:
        parts = Path(os.path.normpath(path)).relative_to(os.path.normpath(folder)).parts
    except ValueError:
        return False
    return any(matches("/".join(parts[: i + 1]), parts[i], list(patterns)) for i in range(len(parts)))


def effective_config(project: Config, settings: Settings) -> Config:
    """Editor settings over the project's: `select` replaces, `ignore` adds, `severity` merges;
    `showSyntaxErrors: false` ignores GG000."""
    ignore = list(settings.ignore) + ([] if settings.show_syntax_errors else ["GG000"])
    return project.merged(
        select=list(settings.select) or None,
        extend_ignore=ignore or None,
        severity=dict(settings.severity) or None,
    )
