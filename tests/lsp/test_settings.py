"""Editor settings: validation, and layering over [tool.gradguard]."""

from __future__ import annotations

from gradguard.engine.config import Config
from gradguard.engine.finding import Severity
from gradguard.lsp.settings import ProjectConfigs, effective_config, parse_settings


def test_defaults_and_bad_values_never_raise():
    assert parse_settings(None).debounce_ms == 150
    settings = parse_settings(
        {"enable": "yes", "debounceMs": -3, "lintOnChange": 1, "select": 5, "probe": [], "color": "red"}
    )
    assert (settings.enable, settings.debounce_ms, settings.lint_on_change, settings.select) == (
        True,
        150,
        True,
        (),
    )
    assert len(settings.warnings) == 6
    assert any("color" in w for w in settings.warnings)
    assert parse_settings("nonsense").warnings


def test_values():
    settings = parse_settings(
        {
            "select": "gg1, GG202",
            "ignore": ["gg105"],
            "severity": {"gg202": "warn", "GG101": "Hint"},
            "debounceMs": 0,
            "lintOnChange": False,
            "probe": {"enable": False, "timeout": 5},
        }
    )
    assert settings.select == ("GG1", "GG202") and settings.ignore == ("GG105",)
    assert dict(settings.severity) == {"GG202": "warning", "GG101": "hint"}
    assert (settings.debounce_ms, settings.lint_on_change) == (0, False)
    assert settings.probe == {"enable": False, "timeout": 5.0}
    assert not settings.warnings


def test_editor_settings_over_project_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gradguard]\nignore = ["GG105"]\nseverity = { GG202 = "error", GG101 = "hint" }\n'
    )
    project = ProjectConfigs().config_for(str(tmp_path))
    assert project.ignore == ("GG105",)
    # empty editor lists keep the project's choice
    same = effective_config(project, parse_settings({"select": [], "ignore": []}))
    assert not same.enabled("GG105") and same.enabled("GG202")
    merged = effective_config(
        project, parse_settings({"ignore": ["GG4"], "severity": {"GG202": "information"}})
    )
    assert not merged.enabled("GG105") and not merged.enabled("GG401")  # ignore lists add up
    assert merged.severity_for("GG202", Severity.WARNING) is Severity.INFORMATION  # the editor wins
    assert merged.severity_for("GG101", Severity.WARNING) is Severity.HINT
    selected = effective_config(Config(), parse_settings({"select": ["GG2"]}))
    assert selected.enabled("GG202") and not selected.enabled("GG101")


def test_broken_pyproject_falls_back_to_defaults(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.gradguard]\nseverity = { GG202 = "loud" }\n')
    configs = ProjectConfigs()
    assert configs.config_for(str(tmp_path)) == Config()
    assert configs.problems


def test_diagnostic_mode():
    assert parse_settings({}).diagnostic_mode == "openFilesOnly"
    assert parse_settings({"diagnosticMode": "workspace"}).diagnostic_mode == "workspace"
    bad = parse_settings({"diagnosticMode": "everything"})
    assert bad.diagnostic_mode == "openFilesOnly"
    assert bad.warnings and "diagnosticMode" in bad.warnings[0]
    assert parse_settings({"diagnosticMode": "workspace"}).to_dict()["diagnosticMode"] == "workspace"


def test_exclude_setting_is_a_list_of_globs_relative_to_the_folder(tmp_path):
    from gradguard.lsp.settings import excluded_by_setting

    settings = parse_settings({"exclude": [" legacy ", "*_pb2.py", ""]})
    assert settings.exclude == ("legacy", "*_pb2.py") and not settings.warnings
    assert settings.to_dict()["exclude"] == ["legacy", "*_pb2.py"]
    bad = parse_settings({"exclude": "legacy"})
    assert bad.exclude == () and "gradguard.exclude" in bad.warnings[0]
    folder = str(tmp_path)
    assert excluded_by_setting(str(tmp_path / "legacy" / "old.py"), folder, settings.exclude)
    assert excluded_by_setting(str(tmp_path / "proto" / "msg_pb2.py"), folder, settings.exclude)
    assert not excluded_by_setting(str(tmp_path / "model.py"), folder, settings.exclude)
    assert not excluded_by_setting(str(tmp_path / "src" / "legacy_model.py"), folder, settings.exclude)
    assert not excluded_by_setting(str(tmp_path.parent / "legacy" / "x.py"), folder, settings.exclude)
