"""Policies that look across resources, as Python functions. Data policies cover the rest.

Each check takes the environment being checked and yields the resources (graph
resources, or Kubernetes objects with the graph resource they came from) that
violate it. CHECKS is the explicit registry that packs name with `check:`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from nebula_compile.ir.graph import Resource, ResourceGraph
from nebula_compile.spec.types import looks_like_secret


def pinned(image: str) -> bool:
    """A digest, or a tag other than 'latest' (a registry port is not a tag)."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and not last.endswith(":latest")


@dataclass(frozen=True)
class Target:
    """What a policy is checked against: one environment's graph and emitted objects."""

    graph: ResourceGraph
    objects: Mapping[str, Mapping[str, Any]]
    parameters: Mapping[str, Any]

    def resource_of(self, obj: Mapping[str, Any]) -> Resource | None:
        rid = obj.get("metadata", {}).get("annotations", {}).get("nebula/resource")
        return self.graph.get(rid) if isinstance(rid, str) else None


Found = tuple[Resource | None, str, str, str | None]
"""(graph resource, kind, name, field path) of one violation."""
Check = Callable[[Target], Iterator[Found]]


def _pods(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec", {})
    if obj.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    pod: Mapping[str, Any] = spec.get("template", {}).get("spec", {})
    return pod


def _containers(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    pod = _pods(obj) or {}
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def pinned_images(target: Target) -> Iterator[Found]:
    for obj in target.objects.values():
        for container in _containers(obj):
            image = str(container.get("image", ""))
            if not pinned(image):
                yield target.resource_of(obj), obj["kind"], obj["metadata"]["name"], None


def allowed_registries(target: Target) -> Iterator[Found]:
    allowed = [str(r).rstrip("/") + "/" for r in target.parameters.get("registries") or []]
    if not allowed:
        return
    for obj in target.objects.values():
        for container in _containers(obj):
            image = str(container.get("image", ""))
            if not any(image.startswith(prefix) for prefix in allowed):
                yield target.resource_of(obj), obj["kind"], obj["metadata"]["name"], None


def prod_models_have_gates(target: Target) -> Iterator[Found]:
    if not target.graph.settings.get("production"):
        return
    served: set[str] = set()
    for deployment in target.graph.of_kind("deployment"):
        served.update(f"model.{deployment.project}.{v['model']}" for v in deployment.spec["variants"].values())
    for rid in sorted(served):
        model = target.graph.get(rid)
        if model is not None and not model.spec.get("gates"):
            yield model, "model", model.name, "gates"


def namespace_network_policy(target: Target) -> Iterator[Found]:
    covered = {
        obj["metadata"].get("namespace") for obj in target.objects.values() if obj.get("kind") == "NetworkPolicy"
    }
    for obj in target.objects.values():
        if obj.get("kind") == "Namespace" and obj["metadata"]["name"] not in covered:
            yield target.resource_of(obj), "Namespace", obj["metadata"]["name"], None


def no_literal_secrets(target: Target) -> Iterator[Found]:
    for obj in target.objects.values():
        for container in _containers(obj):
            for variable in container.get("env", []):
                if "value" in variable and looks_like_secret(str(variable.get("name", ""))):
                    yield target.resource_of(obj), obj["kind"], obj["metadata"]["name"], None


@functools.lru_cache(maxsize=1024)
def shortest_interval(schedule: str) -> float:
    """The shortest gap, in seconds, between runs of a cron schedule (over its next 50 runs)."""
    runs = croniter(schedule, datetime(2030, 1, 1, tzinfo=UTC))
    times = [float(runs.get_next(float)) for _ in range(50)]
    return min(b - a for a, b in itertools.pairwise(times))


def retraining_floor(target: Target) -> Iterator[Found]:
    floor = float(target.parameters.get("minimum_minutes", 60)) * 60
    for model in target.graph.of_kind("model"):
        schedule = (model.spec.get("retraining") or {}).get("schedule")
        if schedule and shortest_interval(schedule) < floor:
            yield model, "model", model.name, "retraining"


CHECKS: dict[str, Check] = {
    "pinned-images": pinned_images,
    "allowed-registries": allowed_registries,
    "prod-models-have-gates": prod_models_have_gates,
    "namespace-network-policy": namespace_network_policy,
    "no-literal-secrets": no_literal_secrets,
    "retraining-floor": retraining_floor,
}
