"""Settings: which rules run and how severe their findings are.

Read from `[tool.gradguard]` in the nearest pyproject.toml; the CLI's flags and the
editor's settings are layered on top with `Config.merged`.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from gradguard.engine.finding import Severity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

DEFAULT_EXCLUDES = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".env",
    "env",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".gradguard_cache",
    ".pytest_cache",
    ".tox",
    ".nox",
    "build",
    "dist",
    "site-packages",
)


class ConfigError(ValueError):
    """A setting has a value we cannot use."""


def parse_codes(value: object, setting: str) -> list[str]:
    """A list of rule codes/prefixes from a list or a comma/space separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{setting} must be a list of rule codes, got {value!r}")
    return [v.strip().upper() for v in value if v.strip()]


def _type_name(value: object) -> str:
    names = {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "an array"}
    return names.get(type(value), "a table" if isinstance(value, dict) else type(value).__name__)


def _patterns(value: object, setting: str) -> list[str]:
    """Path patterns: a list of strings (one string is taken as a list of one)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{setting} must be a list of path patterns (strings), got {value!r}")
    return list(value)


def _severities(value: object, setting: str) -> dict[str, Severity]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{setting} must be a table of code = severity, got {value!r}")
    result = {}
    for code, level in value.items():
        try:
            result[str(code).upper()] = Severity(str(level).lower())
        except ValueError:
            raise ConfigError(
                f"{setting}.{code}: unknown severity {level!r} (use error, warning, information or hint)"
            ) from None
    return result


def code_matches(code: str, selector: str) -> bool:
    """ruff-style prefix selection: "GG2" selects GG201..GG299, "ALL" everything."""
    return selector == "ALL" or code.startswith(selector)


@dataclass(frozen=True)
class Config:
    select: tuple[str, ...] = ("ALL",)
    ignore: tuple[str, ...] = ()
    severity: dict[str, Severity] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    # whether `select` was set (command line or config file) rather than left at its default:
    # the CLI leaves suggestion rules out of the default selection only
    select_given: bool = False
    cache_dir: str | None = None  # `cache-dir`: where `gradguard check` keeps its result cache

    def enabled(self, code: str) -> bool:
        if not any(code_matches(code, s) for s in self.select):
            return False
        # a more specific select wins over a broader ignore, as in ruff
        # "ALL" is the least specific selector (not a 3-character prefix like "GG2")
        best_select = max(
            (0 if s == "ALL" else len(s) for s in self.select if code_matches(code, s)), default=-1
        )
        best_ignore = max(
            (0 if s == "ALL" else len(s) for s in self.ignore if code_matches(code, s)), default=-1
        )
        # at equal specificity the ignore wins (`--ignore ALL` turns everything off)
        return best_select > best_ignore if best_ignore >= 0 else True

    def severity_for(self, code: str, default: Severity) -> Severity:
        return self.severity.get(code, default)

    def merged(self, **overrides: object) -> "Config":
        """A copy with the given settings replaced (None = keep)."""
        changes: dict[str, object] = {}
        if overrides.get("select") is not None:
            changes["select"] = tuple(parse_codes(overrides["select"], "select")) or ("ALL",)
            changes["select_given"] = True
        if overrides.get("ignore") is not None:
            changes["ignore"] = tuple(parse_codes(overrides["ignore"], "ignore"))
        if overrides.get("extend_ignore") is not None:
            changes["ignore"] = tuple(self.ignore) + tuple(parse_codes(overrides["extend_ignore"], "ignore"))
        if overrides.get("severity") is not None:
            changes["severity"] = {**self.severity, **_severities(overrides["severity"], "severity")}
        if overrides.get("exclude") is not None:
            changes["exclude"] = tuple(_patterns(overrides["exclude"], "exclude"))
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_table(cls, table: object, origin: str = "[tool.gradguard]") -> "Config":
        if not isinstance(table, dict):
            raise ConfigError(
                f"{origin}: [tool.gradguard] must be a table, got {_type_name(table)}"
                + (" (write [tool.gradguard], not [[tool.gradguard]])" if isinstance(table, list) else "")
            )
        known = {
            "select",
            "ignore",
            "extend-ignore",
            "extend_ignore",
            "severity",
            "exclude",
            "extend-exclude",
            "cache-dir",
        }
        for key in table:
            if key not in known:
                log.warning("%s: unknown setting %r ignored", origin, key)
        config = cls()
        try:
            exclude = _patterns(table.get("exclude"), "exclude") + _patterns(
                table.get("extend-exclude"), "extend-exclude"
            )
            cache_dir = table.get("cache-dir")
            if cache_dir is not None and (not isinstance(cache_dir, str) or not cache_dir):
                raise ConfigError(f"cache-dir must be a path (a string), got {cache_dir!r}")
            config = replace(config, cache_dir=cache_dir)
            return config.merged(
                select=table.get("select"),
                ignore=table.get("ignore"),
                extend_ignore=table.get("extend-ignore", table.get("extend_ignore")),
                severity=table.get("severity"),
                exclude=exclude or None,
            )
        except ConfigError as exc:
            raise ConfigError(f"{origin}: [tool.gradguard] {exc}") from None


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above `start` that has a [tool.gradguard] table."""
    start = start.resolve()
    directory = start if start.is_dir() else start.parent
    for candidate_dir in [directory, *directory.parents]:
        candidate = candidate_dir / "pyproject.toml"
        try:
            is_file = candidate.is_file()
        except OSError:  # an unreadable directory on the way up
            continue
        if is_file:
            try:
                data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                log.warning("%s: cannot read: %s", candidate, exc)
                continue
            tool = data.get("tool")
            if isinstance(tool, dict) and "gradguard" in tool:
                return candidate
            if tool is not None and not isinstance(tool, dict):
                log.warning("%s: `tool` is not a table; ignored", candidate)
    return None


def load_config(start: Path | str | None = None) -> tuple[Config, Path | None]:
    """Config from the nearest pyproject.toml (defaults when there is none).
    Raises ConfigError for values that cannot be used."""
    path = find_pyproject(Path(start or os.getcwd()))
    if path is None:
        return Config(), None
    return load_config_file(path), path


def load_config_file(path: Path) -> Config:
    """Config from the [tool.gradguard] table of this TOML file (defaults when it has none).
    Raises ConfigError when it cannot be read or a value cannot be used."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    tool = data.get("tool")
    if tool is None:
        return Config()
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: `tool` must be a table, got {_type_name(tool)}")
    if "gradguard" not in tool:
        return Config()
    config = Config.from_table(tool["gradguard"], origin=str(path))
    if config.cache_dir is not None:  # relative to the file that sets it
        config = replace(config, cache_dir=str(path.parent / os.path.expanduser(config.cache_dir)))
    return config
