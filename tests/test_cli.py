"""The `nebula` command as users run it: exit codes, output, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nebula_compile import __version__, cli
from nebula_compile.spec.schema import render_schema

ROOT = Path(__file__).resolve().parent.parent


def nebula(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nebula_compile", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "PYTHONPATH": str(ROOT)},
    )


def test_validate_the_repository_config() -> None:
    result = nebula("validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("nebula.yaml: valid: 2 projects")


def test_invalid_config_exits_1_with_a_code_frame(tmp_path: Path) -> None:
    config = tmp_path / "nebula.yaml"
    config.write_text("projects:\n  p:\n    deployments:\n      api: {model: m, replica: 2}\n")
    result = nebula("validate", str(config))
    assert result.returncode == 1
    assert "error[NEB201]: unknown key 'replica' in deployment 'api'" in result.stderr
    assert f"--> {config}:4:23" in result.stderr
    assert "^^^^^^^" in result.stderr
    assert "hint: did you mean 'replicas'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_format(tmp_path: Path) -> None:
    config = tmp_path / "nebula.yaml"
    config.write_text("projects: [1\n")
    result = nebula("validate", str(config), "--format", "json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["valid"] is False
    assert document["diagnostics"][0]["code"] == "NEB101"


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    result = nebula("validate", str(tmp_path / "absent.yaml"))
    assert result.returncode == 1
    assert "NEB100" in result.stderr and "Traceback" not in result.stderr


def test_default_path_is_nebula_yaml_in_the_working_directory(tmp_path: Path) -> None:
    result = nebula("validate", cwd=tmp_path)
    assert result.returncode == 1
    assert "configuration file 'nebula.yaml' does not exist" in result.stderr


def test_usage_errors_exit_2() -> None:
    assert nebula("frobnicate").returncode == 2
    assert nebula("validate", "--format", "xml").returncode == 2
    assert nebula().returncode == 2


def test_version_and_help() -> None:
    assert nebula("--version").stdout.strip() == f"nebula {__version__}"
    for command in ("validate", "schema", "init"):
        result = nebula(command, "--help")
        assert result.returncode == 0 and "usage: nebula" in result.stdout


def test_warnings_as_errors(tmp_path: Path) -> None:
    config = tmp_path / "nebula.yaml"
    config.write_text("projects:\n  p:\n    datasets: {d: {source: {upload: true}}}\n")
    assert nebula("validate", str(config)).returncode == 0
    assert nebula("validate", str(config), "--warnings-as-errors").returncode == 1


def test_init_writes_a_valid_config_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "Fraud Detection"
    result = nebula("init", str(target))
    assert result.returncode == 0, result.stderr
    text = (target / "nebula.yaml").read_text()
    assert "  fraud-detection:\n" in text
    assert text.startswith("# yaml-language-server: $schema=./nebula.schema.json")
    assert (target / "nebula.schema.json").read_text() == render_schema()
    assert nebula("validate", str(target / "nebula.yaml")).returncode == 0
    again = nebula("init", str(target))
    assert again.returncode == 1 and "--force" in again.stderr
    assert nebula("init", str(target), "--force", "--name", "fraud").returncode == 0
    assert "  fraud:\n" in (target / "nebula.yaml").read_text()
    assert nebula("init", str(target), "--force", "--name", "Bad_Name").returncode == 2


def test_schema_print_write_and_check(tmp_path: Path) -> None:
    assert nebula("schema").stdout == render_schema()
    out = tmp_path / "s.json"
    assert nebula("schema", "--out", str(out)).returncode == 0
    assert nebula("schema", "--check", str(out)).returncode == 0
    out.write_text("{}")
    stale = nebula("schema", "--check", str(out))
    assert stale.returncode == 1 and "out of date" in stale.stderr


def test_a_bug_exits_3_with_a_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(path: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "validate_path", broken)
    assert cli.main(["validate"]) == 3
    err = capsys.readouterr().err
    assert "internal error" in err and "Traceback" in err and "RuntimeError: boom" in err


def test_a_folder_means_its_nebula_yaml(tmp_path: Path) -> None:
    (tmp_path / "nebula.yaml").write_text((ROOT / "examples" / "minimal" / "nebula.yaml").read_text())
    result = nebula("validate", str(tmp_path))
    assert result.returncode == 0, result.stderr


def test_compile_out_onto_a_file_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "build"
    blocker.write_text("not a folder")
    result = nebula("compile", str(ROOT / "examples" / "minimal" / "nebula.yaml"), "--out", str(blocker))
    assert result.returncode == 1
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr
