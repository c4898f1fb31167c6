"""Every shipped config, every environment, checked by the tools that will consume the output.

kubernetes-validate (strict, Kubernetes 1.30 and the newest it bundles) for core
objects; the CRD schemas in schemas/crds for custom resources; `kubectl kustomize`
for each environment folder; `promtool check rules` for the rule files; `dvc dag`
for the pipelines. None of them is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from nebula_compile.api import Compilation
from tests.compile.cases import ENV_CASES, ENV_IDS, ROOT

Compiled = dict[str, tuple[Compilation, Path]]
BIN = Path(sys.executable).parent
CRDS = {
    (f"{path.parent.name}/{path.stem.split('_')[1]}", path.stem.split("_")[0]): json.loads(path.read_text())
    for path in (ROOT / "schemas" / "crds").glob("*/*.json")
}
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, f"{name} is not installed; .ci/run installs it"
    return found


def objects(folder: Path) -> list[tuple[Path, dict[str, object]]]:
    out = []
    for path in sorted([*(folder / "kubernetes").rglob("*.yaml"), *(folder / "gitops").glob("*.yaml")]):
        if path.name != "kustomization.yaml":
            out.extend((path, obj) for obj in yaml.safe_load_all(path.read_text()))
    return out


@pytest.mark.parametrize(("config", "env"), ENV_CASES, ids=ENV_IDS)
def test_core_objects_pass_kubernetes_validate_strict(compiled: Compiled, config: str, env: str) -> None:
    folder = compiled[config][1] / env
    checked = 0
    for path, obj in objects(folder):
        if (obj["apiVersion"], str(obj["kind"]).lower()) in CRDS:
            continue
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{path.relative_to(folder)} fails Kubernetes {version}: {err.message}")
        checked += 1
    assert checked > 10


@pytest.mark.parametrize(("config", "env"), ENV_CASES, ids=ENV_IDS)
def test_custom_resources_match_their_crd_schemas(compiled: Compiled, config: str, env: str) -> None:
    folder = compiled[config][1] / env
    kinds = set()
    for path, obj in objects(folder):
        key = (str(obj["apiVersion"]), str(obj["kind"]).lower())
        if key not in CRDS:
            assert "." not in str(obj["apiVersion"]).split("/")[0] or str(obj["apiVersion"]).endswith("k8s.io/v1"), (
                f"{path.name}: no CRD schema for {key}"
            )
            continue
        errors = [e.message for e in jsonschema.Draft4Validator(CRDS[key]).iter_errors(obj)]
        assert errors == [], f"{path.relative_to(folder)}: {errors}"
        kinds.add(obj["kind"])
    assert {"HTTPRoute", "ServiceMonitor"} <= kinds


@pytest.mark.parametrize(("config", "env"), ENV_CASES, ids=ENV_IDS)
def test_kubectl_kustomize_builds_the_environment(compiled: Compiled, config: str, env: str) -> None:
    folder = compiled[config][1] / env / "kubernetes"
    result = subprocess.run([tool("kubectl"), "kustomize", str(folder)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    built = list(yaml.safe_load_all(result.stdout))
    listed = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    written = sum(len(list(yaml.safe_load_all((folder / name).read_text()))) for name in listed)
    assert len(built) == written


@pytest.mark.parametrize(("config", "env"), ENV_CASES, ids=ENV_IDS)
def test_promtool_accepts_the_rule_files(compiled: Compiled, config: str, env: str) -> None:
    rules = sorted((compiled[config][1] / env / "monitoring" / "prometheus").glob("*.yaml"))
    graph = compiled[config][0].graphs[env]
    alerting = [
        d
        for d in graph.of_kind("deployment")
        if d.spec["monitoring"].get("alerts") or d.spec["monitoring"].get("drift")
    ]
    assert bool(rules) == bool(alerting)
    if not rules:
        return
    result = subprocess.run(
        [tool("promtool"), "check", "rules", *map(str, rules)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(("config", "env"), ENV_CASES, ids=ENV_IDS)
def test_dvc_reads_every_pipeline(compiled: Compiled, config: str, env: str, tmp_path: Path) -> None:
    source = compiled[config][1] / env
    copy = tmp_path / "repo"
    shutil.copytree(source, copy)
    run_env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([tool("dvc"), "init", "--no-scm", "-q"], cwd=copy, check=True, env=run_env)
    pipelines = sorted((copy / "pipelines").glob("*/dvc.yaml"))
    assert pipelines
    for pipeline in pipelines:
        result = subprocess.run(
            [tool("dvc"), "dag", "--md"], cwd=pipeline.parent, capture_output=True, text=True, check=False, env=run_env
        )
        assert result.returncode == 0, result.stderr
        stages = yaml.safe_load(pipeline.read_text())["stages"]
        for stage in stages:
            assert stage in result.stdout
