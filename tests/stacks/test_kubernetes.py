"""The Kubernetes stack under Pulumi's mocks: every compiled object of an environment is rolled out exactly once,
cluster-scoped objects first, through a provider built from stack config."""

from __future__ import annotations

from pathlib import Path

import pytest

from nebula_compile.output import write_tree
from stacks.kubernetes import StackError, build, read
from tests.stacks.conftest import compiled, run


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's prod output, written as `nebula compile` writes it."""
    _, _, files = compiled("nebula.yaml", "prod")
    folder = tmp_path_factory.mktemp("build") / "prod"
    write_tree(str(folder), files)
    return folder


def test_every_compiled_object_is_rolled_out_once_cluster_scoped_first(demo: Path) -> None:
    objects = read(demo / "kubernetes")
    recorder, outputs = run(build, objects, "kubeconfig-from-a-secret", None, stack="prod", project="nebula-kubernetes")
    [provider] = recorder.of("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "kubeconfig-from-a-secret"
    assert provider.inputs["enableServerSideApply"] == "true"
    groups = {r.name: r for r in recorder.of("kubernetes:yaml/v2:ConfigGroup")}
    assert sorted(groups) == ["cluster-scoped", "project-churn", "project-digits"]
    for name in ("project-churn", "project-digits"):  # namespaces exist before what lives in them
        assert "cluster-scoped" in recorder.dependencies[name]
    assert "project-churn" not in recorder.dependencies["cluster-scoped"]
    cluster = [o["kind"] for o in groups["cluster-scoped"].inputs["objs"]]
    assert set(cluster) <= {"Namespace", "ClusterRole", "ClusterRoleBinding"} and "Namespace" in cluster
    rolled = [
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
        for group in groups.values()
        for o in group.inputs["objs"]
    ]
    written = [
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
        for o in (*objects.cluster, *(x for items in objects.by_project.values() for x in items))
    ]
    assert sorted(rolled) == sorted(written) and len(rolled) == len(set(rolled)) == outputs["objects"]
    assert all(ns for kind, ns, _ in rolled if kind not in ("Namespace", "ClusterRole", "ClusterRoleBinding"))
    assert outputs["namespaces"] == ["prod-churn", "prod-digits"]
    jobs = [o for g in groups.values() for o in g.inputs["objs"] if o["kind"] in ("Job", "CronJob")]
    assert jobs and all(o["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true" for o in jobs)


def test_a_kube_context_from_config_selects_the_cluster(demo: Path) -> None:
    recorder, _ = run(build, read(demo / "kubernetes"), None, "prod-eks", stack="prod", project="nebula-kubernetes")
    [provider] = recorder.of("pulumi:providers:kubernetes")
    assert provider.inputs["context"] == "prod-eks" and "kubeconfig" not in provider.inputs


def test_an_environment_that_was_not_compiled_is_named(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="run `nebula compile` for this environment first"):
        read(tmp_path / "kubernetes")
    (tmp_path / "kubernetes").mkdir()
    (tmp_path / "kubernetes" / "kustomization.yaml").write_text("resources: [a.yaml]\n")
    (tmp_path / "kubernetes" / "a.yaml").write_text("just: text\n")
    with pytest.raises(StackError, match="not a Kubernetes object"):
        read(tmp_path / "kubernetes")


def test_compile_writes_the_stack_folders(demo: Path) -> None:
    aws = demo / "stacks" / "aws"
    assert (aws / "Pulumi.yaml").read_text().startswith("name: nebula-aws\n")
    assert (aws / "Pulumi.prod.yaml").read_text() == (
        "config:\n  nebula-aws:manifest: ../../manifest.json\n  aws:region: eu-west-1\n"
    )
    assert (aws / "__main__.py").read_text().splitlines()[2:] == ["from stacks.aws import main", "", "main()"]
    kube = (demo / "stacks" / "kubernetes" / "Pulumi.prod.yaml").read_text()
    assert kube == "config:\n  nebula-kubernetes:objects: ../../kubernetes\n  kubernetes:context: prod-eks\n"
    assert ((aws / ".." / ".." / "manifest.json").resolve()).exists()
    _, _, dev = compiled("nebula.yaml", "dev")
    assert "stacks/kubernetes/Pulumi.dev.yaml" in dev and "stacks/aws/Pulumi.yaml" not in dev  # dev has no cloud
