"""lower: the resource graph and its manifest.json contract."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from nebula_compile.api import compile_validation, validate_text
from nebula_compile.ir.manifest import read_manifest, render_manifest_schema
from tests.compile.cases import ROOT
from tests.compile.test_emit_content import CONFIG

SCHEMA = ROOT / "schemas" / "manifest.schema.json"


def graph(text: str = CONFIG, env: str = "prod"):  # type: ignore[no-untyped-def]
    compilation = compile_validation(validate_text(text), [env])
    assert compilation.ok, compilation.diagnostics
    return compilation.graphs[env]


def test_committed_manifest_schema_is_up_to_date() -> None:
    assert SCHEMA.read_text() == render_manifest_schema(), "run 'make schema'"


def test_every_manifest_validates_against_the_schema(compiled: dict[str, tuple[object, Path]]) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    manifests = sorted(p for _, folder in compiled.values() for p in folder.glob("*/manifest.json"))  # type: ignore[attr-defined]
    assert len(manifests) >= 8
    for path in manifests:
        errors = [e.message for e in validator.iter_errors(json.loads(path.read_text()))]
        assert errors == [], path
        assert read_manifest(path.read_text()).resources


def test_ids_dependencies_and_sources() -> None:
    g = graph()
    ids = [r.id for r in g]
    assert ids == sorted(ids)
    assert "deployment.shop.api" in ids and "connection.db" in ids and "binding.viewer.group:analysts" in ids
    api = g.get("deployment.shop.api")
    assert api is not None
    assert api.depends_on == ("model.shop.lr", "model.shop.nn", "project.shop")
    assert api.source is not None and (api.source.file, api.source.line) == ("nebula.yaml", 39)
    dataset = g.get("dataset.shop.orders")
    assert dataset is not None and "connection.db" in dataset.depends_on


def test_defaults_are_explicit_in_the_manifest() -> None:
    g = graph()
    lr = g.get("model.shop.lr")
    assert lr is not None
    assert lr.spec["task"] == "classification" and lr.spec["framework"] == "sklearn"
    assert lr.spec["metrics"] == ["accuracy", "precision", "recall", "f1", "roc_auc"]
    scaled = g.get("deployment.shop.scaled")
    assert scaled is not None and scaled.spec["variants"] == {
        "main": {"model": "lr", "version": "champion", "traffic": 100}
    }
    project = g.get("project.shop")
    assert project is not None and project.spec["namespace"] == "p-shop"
    assert g.settings["namespace_prefix"] == "p-"


def test_overrides_are_applied_per_environment() -> None:
    dev, prod = graph(env="dev"), graph(env="prod")
    dev_api, prod_api = dev.get("deployment.shop.api"), prod.get("deployment.shop.api")
    assert dev_api is not None and prod_api is not None
    assert dev_api.spec["variants"]["a"]["traffic"] == 50 and prod_api.spec["variants"]["a"]["traffic"] == 80
    assert dev.get("deployment.shop.fn") is None and prod.get("deployment.shop.fn") is not None


def test_hashes_change_exactly_where_the_config_does() -> None:
    before = {r.id: r.hash for r in graph()}
    after = {r.id: r.hash for r in graph(CONFIG.replace("replicas: 3", "replicas: 4"))}
    changed = sorted(rid for rid in before if before[rid] != after[rid])
    assert changed == ["deployment.shop.api"]
    assert graph().hash != graph(CONFIG.replace("replicas: 3", "replicas: 4")).hash
