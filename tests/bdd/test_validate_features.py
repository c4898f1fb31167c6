"""Step definitions for tests/features/validate.feature."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from nebula_compile import cli

ROOT = Path(__file__).resolve().parent.parent.parent

scenarios("validate.feature")


class Run:
    def __init__(self) -> None:
        self.code = -1
        self.output = ""
        self.diagnostics: list[dict[str, object]] = []


@pytest.fixture
def run() -> Run:
    return Run()


@given("the repository's own nebula.yaml")
def repository_config(in_tmp: Path) -> None:
    shutil.copy(ROOT / "nebula.yaml", in_tmp / "nebula.yaml")


@given("a nebula.yaml with:")
def config_with(in_tmp: Path, docstring: str) -> None:
    (in_tmp / "nebula.yaml").write_text(docstring + "\n", encoding="utf-8")


@when(parsers.parse('I run "{command}"'))
def run_command(command: str, run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    args = command.split()[1:]
    run.code = cli.main([*args, "--color", "never"])
    captured = capsys.readouterr()
    run.output = captured.out + captured.err
    assert cli.main([*args, "--format", "json"]) == run.code
    run.diagnostics = json.loads(capsys.readouterr().out)["diagnostics"]


@then(parsers.parse("the exit code is {code:d}"))
def exit_code(run: Run, code: int) -> None:
    assert run.code == code, run.output


@then(parsers.parse('the output says "{text}"'))
def output_says(run: Run, text: str) -> None:
    assert text in run.output


@then(parsers.parse('the output does not say "{text}" outside the code frame'))
def output_does_not_say(run: Run, text: str) -> None:
    outside = [line for line in run.output.splitlines() if " | " not in line]
    assert all(text not in line for line in outside)


@then(parsers.parse("the error is {code} at line {line:d} column {column:d}"))
def error_at(run: Run, code: str, line: int, column: int) -> None:
    found = [(d["code"], d["line"], d["column"]) for d in run.diagnostics if d["severity"] == "error"]
    assert (code, line, column) in found, found
