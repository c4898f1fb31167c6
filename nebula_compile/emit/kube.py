"""Small builders for Kubernetes objects, shared by the emitters.

They fix the shape every object has: apiVersion, kind, metadata (name, namespace,
sorted labels, sorted annotations with the provenance of the object), then the
body, so that the output reads the way Kubernetes users expect.
"""

from __future__ import annotations

from typing import Any

from nebula_compile.ir.graph import Resource

PART_OF = "nebula"
PORT = 8080
UID = 10001

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def pod_security(uid: int = UID) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def labels(environment: str, project: str | None = None, **extra: str) -> dict[str, str]:
    out = {
        "app.kubernetes.io/managed-by": "nebula",
        "app.kubernetes.io/part-of": PART_OF,
        "nebula/environment": environment,
    }
    if project is not None:
        out["nebula/project"] = project
    out.update({f"nebula/{k}": v for k, v in extra.items()})
    return dict(sorted(out.items()))


def provenance(resource: Resource | None, revision: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if resource is not None:
        out["nebula/resource"] = resource.id
        if resource.source is not None:
            out["nebula/source"] = f"{resource.source.file}:{resource.source.line}"
    if revision:
        out["nebula/commit"] = revision
    return out


def k8s(
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None,
    obj_labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    **body: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = dict(sorted(obj_labels.items()))
    if annotations:
        metadata["annotations"] = dict(sorted(annotations.items()))
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}


def resources(spec: dict[str, Any], gpu_key: str = "nvidia.com/gpu") -> dict[str, Any]:
    """Requests from `cpu`/`memory`; limits from `limits`, else the requests; GPUs as limits."""
    requests = {"cpu": str(spec.get("cpu", "500m")), "memory": str(spec.get("memory", "1Gi"))}
    given = spec.get("limits") or {}
    limits: dict[str, str] = {
        "cpu": str(given.get("cpu") or requests["cpu"]),
        "memory": str(given.get("memory") or requests["memory"]),
    }
    gpu = int(spec.get("gpu", 0))
    if gpu:
        limits[gpu_key] = str(gpu)
        requests[gpu_key] = str(gpu)
    return {"requests": requests, "limits": limits}


def camel(*parts: str) -> str:
    return "".join(
        piece[:1].upper() + piece[1:] for part in parts for piece in part.replace("_", "-").split("-") if piece
    )
