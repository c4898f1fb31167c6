"""The CI examples and the pre-commit hook call nebula the way the CLI accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from nebula_compile.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples" / "ci").glob("*.yml"))


def commands(value: object) -> list[str]:
    """Every `nebula ...` command line in a workflow, shell continuations joined."""
    found: list[str] = []
    if isinstance(value, dict):
        for item in value.values():
            found.extend(commands(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(commands(item))
    elif isinstance(value, str):
        text = value.replace("\\\n", " ")
        for line in text.splitlines():
            match = re.search(r"\bnebula (validate|compile|plan|policy|schema|init)\b[^>|;&]*", line)
            if match:
                found.append(match.group(0).strip())
    return found


@pytest.mark.parametrize("workflow", EXAMPLES, ids=lambda p: p.name)
def test_workflow_commands_parse(workflow: Path) -> None:
    found = commands(yaml.safe_load(workflow.read_text()))
    assert len(found) >= 3
    parser = build_parser()
    for command in found:
        words = [w.replace('"', "") for w in shlex.split(command.replace("${{ github.base_ref }}", "main"))]
        parser.parse_args(words[1:])  # exits (fails the test) on a flag the CLI does not have


def test_pre_commit_hook() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "nebula-validate" and hook["entry"] == "nebula validate"
    assert re.search(hook["files"], "nebula.yaml") and re.search(hook["files"], "projects/churn.yaml")
    assert not re.search(hook["files"], "README.md")
