"""Policies: every built-in one fires on the mistake it is about, points at the line, and obeys its level."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from nebula_compile.api import check_compilation_policies, compile_validation, validate_path, validate_text
from nebula_compile.policy.checks import CHECKS
from nebula_compile.policy.evaluate import PolicyReport
from nebula_compile.policy.packs import load_packs
from nebula_compile.policy.report import render_junit, render_sarif

BASE = """\
environments:
  dev: {}
  prod:
    production: true
    gpu_nodes: true
projects:
  shop:
    datasets:
      orders: {format: csv, encryption: {at_rest: true}, columns: {amount: float, late: boolean}}
    models:
      lr: {algorithm: logistic_regression, dataset: orders, target: late, gates: ["roc_auc >= 0.7"]}
    deployments:
      api:
        variants:
          a: {model: lr, traffic: 90}
          b: {model: lr, version: challenger, traffic: 10}
        replicas: 2
        monitoring:
          alerts: {slow: {metric: latency_p99, threshold: 0.5}}
          drift: {method: psi}
"""


def report(text: str, root: Path | None = None) -> PolicyReport:
    if root is None:
        validation = validate_text(textwrap.dedent(text))
    else:
        (root / "nebula.yaml").write_text(textwrap.dedent(text))
        validation = validate_path(str(root / "nebula.yaml"))
    compilation = compile_validation(validation, revision=None)
    assert compilation.ok, [d.message for d in compilation.diagnostics]
    return check_compilation_policies(compilation)


def fired(result: PolicyReport) -> list[tuple[str, str, int]]:
    """(policy, code, line) of every violation."""
    out = []
    for r in result.results:
        for v in r.violations:
            out.append((r.policy.name, v.code, v.span.line if v.span else 0))
    return sorted(set(out))


def test_the_base_config_passes_every_policy() -> None:
    result = report(BASE)
    assert result.diagnostics == ()
    assert len({r.policy.name for r in result.results}) >= 12


def test_the_shipped_configs_pass_every_mandatory_policy() -> None:
    root = Path(__file__).resolve().parent.parent.parent
    for config in [root / "nebula.yaml", *sorted((root / "examples").glob("*/nebula.yaml"))]:
        compilation = compile_validation(validate_path(str(config)), revision=None)
        assert not check_compilation_policies(compilation).failed, config


@pytest.mark.parametrize(
    ("change", "policy", "code", "line"),
    [
        (("        replicas: 2\n", ""), "prod-min-replicas", "NEB401", 13),
        ((', gates: ["roc_auc >= 0.7"]', ""), "prod-models-have-gates", "NEB401", 11),
        (
            (
                "encryption: {at_rest: true}, columns: {amount: float",
                "encryption: {at_rest: false}, columns: {amount: {type: float, pii: true}",
            ),
            "pii-encrypted",
            "NEB401",
            9,
        ),
        (("          drift: {method: psi}\n", ""), "prod-drift-monitoring", "NEB402", 18),
        (("          alerts: {slow: {metric: latency_p99, threshold: 0.5}}\n", ""), "prod-alerts", "NEB402", 18),
    ],
)
def test_each_policy_fires_on_its_mistake(change: tuple[str, str], policy: str, code: str, line: int) -> None:
    text = BASE.replace(*change)
    assert text != BASE
    found = fired(report(text))
    assert (policy, code, line) in found, found
    assert {p for p, _, _ in found} == {policy}, "one mistake, one policy"


def test_traffic_zero_variant_is_refused() -> None:
    text = BASE.replace("a: {model: lr, traffic: 90}", "a: {model: lr, traffic: 100}").replace(
        "traffic: 10}", "traffic: 0}"
    )
    assert ("ab-min-traffic", "NEB401", 14) in fired(report(text))


def test_gpus_only_where_there_are_gpu_nodes() -> None:
    text = BASE.replace("target: late, gates", "target: late, resources: {gpu: 1}, gates")
    found = fired(report(text))
    assert ("gpu-needs-gpu-nodes", "NEB401", 11) in found, found
    result = report(text)
    envs = {r.environment for r in result.results if r.policy.name == "gpu-needs-gpu-nodes" and r.violations}
    assert envs == {"dev"}, "prod has GPU nodes"


def test_retraining_floor_and_parameters() -> None:
    text = BASE.replace("target: late, gates", "target: late, retraining: {schedule: '*/10 * * * *'}, gates")
    assert ("retraining-floor", "NEB402", 11) in fired(report(text))
    relaxed = text + "policies:\n  retraining-floor: {parameters: {minimum_minutes: 5}}\n"
    assert "retraining-floor" not in {p for p, _, _ in fired(report(relaxed))}


def test_levels_change_per_environment() -> None:
    text = BASE.replace("        replicas: 2\n", "")
    assert report(text).failed
    advisory = text + "policies:\n  prod-min-replicas: advisory\n"
    result = report(advisory)
    assert not result.failed and ("prod-min-replicas", "NEB402", 13) in fired(result)
    disabled = text.replace(
        "    production: true\n", "    production: true\n    policies: {prod-min-replicas: disabled}\n"
    )
    assert "prod-min-replicas" not in {p for p, _, _ in fired(report(disabled))}


def test_an_environment_override_is_blamed_where_it_is_written() -> None:
    text = BASE.replace(
        "    production: true\n",
        "    production: true\n    overrides:\n      shop:\n        deployments:\n          api: {replicas: 1}\n",
    )
    assert ("prod-min-replicas", "NEB401", 8) in fired(report(text))


def test_allowed_registries() -> None:
    text = (
        BASE + "policies:\n  allowed-registries: {level: mandatory, parameters: {registries: [registry.example.com]}}\n"
    )
    result = report(text)
    assert result.failed and {p for p, _, _ in fired(result)} == {"allowed-registries"}
    ok = (
        BASE
        + "platform: {registry: registry.example.com/ml}\npolicies:\n  allowed-registries: {level: mandatory, parameters: {registries: [registry.example.com]}}\n"
    )
    assert not report(ok).failed


def test_unknown_policy_name_in_the_config() -> None:
    result = report(BASE + "policies:\n  prod-min-replica: advisory\n")
    (problem,) = [d for d in result.diagnostics if d.code == "NEB404"]
    assert problem.hint == "did you mean 'prod-min-replicas'?"
    assert problem.span is not None and problem.span.line == 22


def test_a_repository_pack_adds_policies(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "team.yaml").write_text(
        "version: 1\npolicies:\n"
        "  - name: owners-required\n    description: Projects name owners.\n    level: mandatory\n"
        "    match: {target: graph, kind: project}\n    assert: {properties: {owners: {minItems: 1}}}\n"
        "    path: owners\n    message: project '{name}' names no owners\n"
    )
    result = report(BASE, tmp_path)
    assert ("owners-required", "NEB401", 7) in fired(result)


def test_a_broken_pack_points_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "bad.yaml").write_text("policies:\n  - name: x\n    message: m\n    check: nonsense\n")
    result = report(BASE, tmp_path)
    (problem,) = [d for d in result.diagnostics if d.code == "NEB403"]
    assert problem.span is not None and problem.span.line == 4 and problem.span.file.endswith("bad.yaml")
    assert result.failed


def test_builtin_pack_is_valid() -> None:
    policies, problems = load_packs(None, set(CHECKS))
    assert problems == []
    assert len(policies) >= 12
    assert {p.level for p in policies} == {"mandatory", "advisory"}


def test_sarif_validates_and_points_at_lines() -> None:
    text = BASE.replace("        replicas: 2\n", "")
    sarif = json.loads(render_sarif(report(text)))
    schema_path = Path(__file__).parent / "sarif-2.1.0-subset.json"
    jsonschema.validate(sarif, json.loads(schema_path.read_text()))
    results = sarif["runs"][0]["results"]
    assert any(r["ruleId"] == "prod-min-replicas" and r["level"] == "error" for r in results)
    region = next(r for r in results if r["ruleId"] == "prod-min-replicas")["locations"][0]["physicalLocation"][
        "region"
    ]
    assert region["startLine"] == 13


def test_junit_counts_failures() -> None:
    text = BASE.replace("        replicas: 2\n", "")
    root = ET.fromstring(render_junit(report(text)))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert suites["prod"].get("failures") == "1" and suites["dev"].get("failures") == "0"
    failing = [c.get("name") for c in suites["prod"].findall("testcase") if c.find("failure") is not None]
    assert failing == ["prod-min-replicas"]


def test_sarif_paths_are_relative_to_the_repository(tmp_path: Path) -> None:
    import git

    repo_root = tmp_path / "repo"
    (repo_root / "ml").mkdir(parents=True)
    git.Repo.init(repo_root).close()
    (repo_root / "ml" / "nebula.yaml").write_text(textwrap.dedent(BASE.replace("        replicas: 2\n", "")))
    from nebula_compile import cli

    out = tmp_path / "r.sarif"
    assert cli.main(["policy", "check", str(repo_root / "ml"), "--format", "sarif", "--out", str(out)]) == 1
    results = json.loads(out.read_text())["runs"][0]["results"]
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"] for r in results for loc in r.get("locations", [])}
    assert uris == {"ml/nebula.yaml"}
