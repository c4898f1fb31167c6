"""The benchmark's config generator makes valid, deterministic configs of the asked size."""

from __future__ import annotations

from generate import generate

from nebula_compile.api import validate_text


def test_generated_projects_are_valid_without_warnings() -> None:
    validation = validate_text(generate(projects=7))
    assert validation.ok
    assert validation.diagnostics == ()
    assert validation.spec is not None
    assert len(validation.spec.projects) == 7


def test_generated_deployments_count() -> None:
    validation = validate_text(generate(deployments=25))
    assert validation.ok, validation.diagnostics
    assert validation.spec is not None
    assert sum(len(p.deployments) for p in validation.spec.projects.values()) == 25


def test_generation_is_deterministic() -> None:
    assert generate(projects=3) == generate(projects=3)
