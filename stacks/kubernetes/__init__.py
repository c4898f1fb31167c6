"""The Kubernetes stack: the compiled objects of one environment, rolled into a cluster with pulumi-kubernetes.

It reads `build/<env>/kubernetes/kustomization.yaml` and the files it lists (what
Argo CD or Flux would sync from the deploy branch), and applies them in order:
namespaces and other cluster-scoped objects first, then each project's objects,
through a provider built from stack config (`kubernetes:kubeconfig`, a secret, or
the current context of the local kubeconfig).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "StorageClass", "PriorityClass"}
)


class StackError(ValueError):
    """Compiled output that cannot be rolled out as it is; the message names the file."""


@dataclass(frozen=True)
class Objects:
    cluster: tuple[dict[str, Any], ...]
    by_project: dict[str, tuple[dict[str, Any], ...]]


def _documents(path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise StackError(f"cannot read {path}: {err.strerror}; run `nebula compile` first") from None
    for document in yaml.safe_load_all(text):
        if document is None:
            continue
        if not isinstance(document, dict) or "kind" not in document or "apiVersion" not in document:
            raise StackError(f"{path}: a document without apiVersion and kind is not a Kubernetes object")
        yield document


def read(folder: str | Path) -> Objects:
    """The objects of a compiled kubernetes/ folder, in kustomization order, split by scope."""
    root = Path(folder)
    index = root / "kustomization.yaml"
    try:
        listed = yaml.safe_load(index.read_text(encoding="utf-8")) or {}
    except OSError:
        raise StackError(f"{index} is missing: run `nebula compile` for this environment first") from None
    cluster: list[dict[str, Any]] = []
    projects: dict[str, list[dict[str, Any]]] = {}
    for entry in listed.get("resources") or []:
        for document in _documents(root / entry):
            if document["kind"] in CLUSTER_SCOPED:
                cluster.append(document)
            else:
                project = Path(entry).parts[0] if len(Path(entry).parts) > 1 else "platform"
                projects.setdefault(project, []).append(document)
    return Objects(tuple(cluster), {k: tuple(v) for k, v in sorted(projects.items())})


def _no_wait(document: dict[str, Any]) -> dict[str, Any]:
    """A Job trains for as long as it trains (and may fail its gates): `pulumi up` must not wait on it."""
    if document["kind"] not in ("Job", "CronJob"):
        return document
    metadata = dict(document.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), "pulumi.com/skipAwait": "true"}
    return {**document, "metadata": metadata}


def build(objects: Objects, kubeconfig: Any = None, context: str | None = None) -> dict[str, Any]:
    """Declare the rollout: one provider, the cluster-scoped objects, then one group per project after them."""
    import pulumi_kubernetes as k8s

    provider = k8s.Provider(
        "cluster",
        kubeconfig=kubeconfig,
        context=context,
        enable_server_side_apply=True,
        delete_unreachable=False,
    )
    cluster = k8s.yaml.v2.ConfigGroup(
        "cluster-scoped", objs=list(objects.cluster), opts=pulumi.ResourceOptions(provider=provider)
    )
    groups: list[Any] = []
    for project, items in objects.by_project.items():
        groups.append(
            k8s.yaml.v2.ConfigGroup(
                f"project-{project}",
                objs=[_no_wait(o) for o in items],
                opts=pulumi.ResourceOptions(provider=provider, depends_on=[cluster]),
            )
        )
    return {
        "namespaces": sorted(o["metadata"]["name"] for o in objects.cluster if o["kind"] == "Namespace"),
        "objects": len(objects.cluster) + sum(len(v) for v in objects.by_project.values()),
        "projects": sorted(objects.by_project),
        "groups": len(groups) + 1,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """The program: `nebula-kubernetes:objects` (the compiled kubernetes/ folder) and the cluster from config."""
    config = pulumi.Config()
    kube = pulumi.Config("kubernetes")
    try:
        objects = read(config.require("objects"))
    except StackError as err:
        raise pulumi.RunError(str(err)) from None
    for name, value in build(objects, kube.get_secret("kubeconfig"), kube.get("context")).items():
        pulumi.export(name, value)
