"""The committed JSON Schema is current, and every shipped config is valid by both checkers."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from nebula_compile.api import validate_path
from nebula_compile.source import load
from nebula_compile.spec.schema import render_schema

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "nebula.schema.json"
CONFIGS = [ROOT / "nebula.yaml", *sorted((ROOT / "examples").glob("*/nebula.yaml"))]
EVERY_YAML = [ROOT / "nebula.yaml", *sorted((ROOT / "examples").rglob("*.yaml"))]


def test_committed_schema_is_up_to_date() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == render_schema(), (
        "schemas/nebula.schema.json is stale: run 'nebula schema --out schemas/nebula.schema.json'"
    )


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA.read_text()))


def test_the_required_examples_exist() -> None:
    names = {p.parent.name for p in CONFIGS[1:]}
    assert {"minimal", "churn", "image-classification", "multi-env"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_is_valid(config: Path) -> None:
    validation = validate_path(str(config))
    assert validation.ok, [str(d) for d in validation.diagnostics]
    assert not validation.diagnostics, "shipped configs should not even warn"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_merged_config_validates_against_the_json_schema(config: Path) -> None:
    document = load(str(config))
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document.value)]
    assert errors == []


@pytest.mark.parametrize("path", EVERY_YAML, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_names_the_schema_for_editors(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    target = (path.parent / first.split("$schema=", 1)[1]).resolve()
    assert target == SCHEMA


def test_the_schema_rejects_what_the_validator_rejects() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    bad = {"projects": {"p": {"deployments": {"d": {"model": "m", "replica": 2}}}}}
    assert not validator.is_valid(bad)
    literal_secret = {"connections": {"c": {"type": "mysql", "host": "h", "database": "d", "password": "x"}}}
    assert not validator.is_valid(literal_secret)
