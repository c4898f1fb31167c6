"""overlay: one environment's view of the spec."""

from __future__ import annotations

from nebula_compile.resolve import overlay
from tests.unit.helpers import PROJECT, check

ENVS = """\
environments:
  dev:
    overrides:
      churn:
        deployments:
          api: {replicas: 1, autoscaling: {max: 3}, traffic: {one: 50, two: 50}, resources: {cpu: 250m}}
        models:
          rf: {resources: {memory: 8Gi}, retraining: {schedule: "0 1 * * *"}}
  prod:
    production: true
"""


def test_overrides_apply_to_their_environment_only() -> None:
    text = (
        PROJECT.replace("      api:\n", "      api:\n        replicas: 3\n        autoscaling: {min: 3, max: 9}\n")
        + ENVS
    )
    validation = check(text)
    assert validation.ok, validation.diagnostics
    spec = validation.spec
    assert spec is not None
    dev = overlay(spec, "dev").projects["churn"]
    prod = overlay(spec, "prod").projects["churn"]
    api_dev, api_prod = dev.deployments["api"], prod.deployments["api"]
    assert api_dev.replicas == 1 and api_prod.replicas == 3
    assert api_dev.autoscaling is not None and (api_dev.autoscaling.min, api_dev.autoscaling.max) == (3, 3)
    assert {n: v.traffic for n, v in api_dev.effective_variants().items()} == {"one": 50, "two": 50}
    assert {n: v.traffic for n, v in api_prod.effective_variants().items()} == {"one": 70, "two": 30}
    assert api_dev.resources.cpu == "250m" and api_prod.resources.cpu == "500m"
    assert dev.models["rf"].resources.memory == "8Gi"
    assert dev.models["rf"].retraining is not None and dev.models["rf"].retraining.schedule == "0 1 * * *"
    assert prod.models["rf"].retraining is None
    # the spec itself is unchanged
    assert spec.projects["churn"].deployments["api"].replicas == 3


def test_objects_limited_to_environments() -> None:
    text = PROJECT.replace("      api:\n", "      api:\n        environments: [prod]\n") + ENVS.replace(
        "          api: {replicas: 1, autoscaling: {max: 3}, traffic: {one: 50, two: 50}, resources: {cpu: 250m}}\n", ""
    ).replace("        deployments:\n", "")
    validation = check(text)
    assert validation.ok, validation.diagnostics
    assert validation.spec is not None
    assert "api" not in overlay(validation.spec, "dev").projects["churn"].deployments
    assert "api" in overlay(validation.spec, "prod").projects["churn"].deployments


def test_autoscaling_override_checked_after_merge() -> None:
    text = PROJECT.replace("      api:\n", "      api:\n        autoscaling: {min: 2, max: 4}\n") + (
        "environments:\n  dev:\n    overrides:\n      churn:\n        deployments:\n          api: {autoscaling: {min: 6}}\n"
    )
    validation = check(text)
    (diagnostic,) = validation.diagnostics
    assert diagnostic.code == "NEB221"
    assert "min 6 above max 4" in diagnostic.message
    assert diagnostic.span is not None and diagnostic.span.line == 32
