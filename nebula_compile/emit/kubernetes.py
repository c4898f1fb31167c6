"""emit_kubernetes: the resource graph -> one kustomize folder for the environment.

Files are grouped the way reviewers think: per project `project.yaml` (namespace,
accounts, RBAC, network policies, secrets), `deployment-<name>.yaml` (everything
that serves it), `model-<name>.yaml` (training) and `notebook-<name>.yaml`.

Per project: a Namespace (Pod Security "restricted"), service accounts, RBAC from
roles and bindings, a default-deny NetworkPolicy plus the allows the workloads
need, ExternalSecrets for the credentials its data sources reference, and the
project's manifest as a ConfigMap for the jobs. Per deployment variant: a
Deployment and a Service; per deployment: a Gateway API HTTPRoute whose weighted
backends carry the A/B split, an autoscaler and a disruption budget where they
apply, a ServiceMonitor and a PrometheusRule. Per model: a training Job and a
retraining CronJob. Per notebook: a StatefulSet and Service, or a Kubeflow
Notebook. Every object carries the line of nebula.yaml it came from.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from nebula_compile.diagnostics import Diagnostic
from nebula_compile.emit import monitoring
from nebula_compile.emit.bundle import Bundle, problem
from nebula_compile.emit.context import EmitContext, cached, shared_key
from nebula_compile.emit.images import image_ref
from nebula_compile.emit.kube import PORT, RESTRICTED_CONTAINER, k8s, labels, pod_security, provenance, resources
from nebula_compile.emit.yamlout import dump, dump_all
from nebula_compile.ir.graph import Resource, ResourceGraph, content_hash, pretty_json

GPU = "nvidia.com/gpu"
SERVING_SA = "nebula-serving"
WORKLOAD_SA = "nebula-workload"
MANIFEST_CONFIGMAP = "nebula-manifest"
MAX_CONFIGMAP = 1_000_000  # Kubernetes stores objects in etcd, which caps them at about 1 MiB
MAX_NAME = 63
JOBS = "nebula_runtime.jobs"
DRIFT_CHECK = "*/15 * * * *"
"""How often a model with retraining.on_drift checks its deployments for drift."""

NOTEBOOK_IMAGES = {"jupyter": "quay.io/jupyter/scipy-notebook:2024-10-07", "vscode": "codercom/code-server:4.93.1"}
NOTEBOOK_PORTS = {"jupyter": 8888, "vscode": 8080}
NOTEBOOK_UID = {"jupyter": 1000, "vscode": 1000}

READ = ["get", "list", "watch"]
ALL = ["get", "list", "watch", "create", "update", "patch", "delete"]
VERBS = {
    "read": READ,
    "create": ["create"],
    "update": ["update", "patch"],
    "delete": ["delete"],
    "write": ["create", "update", "patch", "delete"],
    "train": ["create"],
    "deploy": ["update", "patch"],
    "*": ALL,
}
RESOURCE_RULES: dict[str, list[tuple[str, str]]] = {
    "projects": [("", "pods"), ("", "events"), ("", "configmaps")],
    "deployments": [
        ("apps", "deployments"),
        ("", "services"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("policy", "poddisruptionbudgets"),
        ("gateway.networking.k8s.io", "httproutes"),
    ],
    "models": [("batch", "jobs"), ("batch", "cronjobs")],
    "runs": [("batch", "jobs"), ("", "pods/log")],
    "notebooks": [("apps", "statefulsets"), ("kubeflow.org", "notebooks"), ("", "services")],
}
RESOURCE_RULES["*"] = sorted({rule for rules in RESOURCE_RULES.values() for rule in rules})


class _Objects:
    """Collects (path, object) pairs for one project folder."""

    def __init__(self, graph: ResourceGraph, project: str, namespace: str) -> None:
        self.graph = graph
        self.project = project
        self.namespace = namespace
        self.items: list[tuple[str, dict[str, Any]]] = []
        self.unit = "project"
        """The file the next objects go to: one per project, deployment, model and notebook."""
        self.problems: list[Diagnostic] = []

    def add(self, obj: dict[str, Any]) -> None:
        self.items.append((f"{self.project}/{self.unit}.yaml", obj))

    def labels(self, **extra: str) -> dict[str, str]:
        return labels(self.graph.environment, self.project, **extra)

    def notes(self, resource: Resource | None) -> dict[str, str]:
        return provenance(resource, self.graph.revision)


def _role_rules(permissions: list[str]) -> list[dict[str, Any]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for permission in permissions:
        resource, action = permission.split(":", 1)
        granted = VERBS.get(action)
        if not granted:
            continue
        for group, kind in RESOURCE_RULES.get(resource, []):
            grants.setdefault((group, kind), set()).update(granted, READ)
    by_verbs: dict[tuple[str, ...], dict[str, set[str]]] = {}
    for (group, kind), verbs in grants.items():
        ordered = tuple(v for v in ALL if v in verbs)
        by_verbs.setdefault(ordered, {}).setdefault(group, set()).add(kind)
    rules = []
    for verb_list, groups in sorted(by_verbs.items()):
        for group, kinds in sorted(groups.items()):
            rules.append({"apiGroups": [group], "resources": sorted(kinds), "verbs": list(verb_list)})
    return rules


def _subject(subject: str, namespace: str) -> dict[str, str]:
    kind, name = subject.split(":", 1)
    if kind == "serviceaccount":
        return {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "User" if kind == "user" else "Group", "name": name}


def _secret_refs(value: Any, trail: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every secret reference inside a JSON value, with the key path that holds it."""
    if isinstance(value, dict):
        if ("secret" in value and set(value) <= {"secret", "key"}) or set(value) == {"env"}:
            yield trail, value
            return
        for key in sorted(value):
            yield from _secret_refs(value[key], (*trail, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_refs(item, (*trail, str(index)))


def env_name(*parts: str) -> str:
    return "_".join(p.upper().replace("-", "_").replace(".", "_") for p in parts if p)


def _project_manifest(graph: ResourceGraph, project: str, connections: set[str]) -> str:
    """The manifest, cut to what a project's jobs need: its resources and its connections."""
    mine = [graph.get(f"connection.{name}") for name in connections] + [graph.get(f"project.{project}")]
    for kind in ("dataset", "preprocessing", "model", "notebook", "deployment"):
        mine.extend(graph.project_resources(project, kind))
    return pretty_json(graph.to_json(sorted((r for r in mine if r is not None), key=lambda r: r.id)))


def _state_egress(out: _Objects, port: int) -> None:
    """The training pods reach the state store (runs, versions, the registry) through the default deny."""
    out.add(
        k8s(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "allow-state-store",
            out.namespace,
            out.labels(),
            out.notes(None),
            spec={
                "podSelector": {"matchLabels": {"nebula/component": "training"}},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": port}]}],
            },
        )
    )


def _state_env(out: _Objects) -> list[dict[str, Any]]:
    """DATABASE_URL for the jobs (runs, versions, the registry): from the secret store when platform.state is a
    reference (an ExternalSecret `nebula-state` in the namespace), else the URL as written (not a SQLite file)."""
    state = out.graph.platform.get("state")
    if isinstance(state, str):
        # a SQLite file is this machine's, not the cluster's: the jobs then use the state the manifest names
        if state.startswith("sqlite"):
            return []
        _state_egress(out, urlsplit(state).port or 5432)
        return [{"name": "DATABASE_URL", "value": state}]
    if not isinstance(state, dict):
        return []
    _state_egress(out, 5432)
    remote: dict[str, str] = {"key": str(state.get("secret") or state.get("env"))}
    if state.get("key"):
        remote["property"] = str(state["key"])
    out.add(
        k8s(
            "external-secrets.io/v1",
            "ExternalSecret",
            "nebula-state",
            out.namespace,
            out.labels(),
            out.notes(None),
            spec={
                "refreshInterval": "1h",
                "secretStoreRef": {
                    "kind": "ClusterSecretStore",
                    "name": out.graph.settings["kubernetes"]["secret_store"],
                },
                "target": {"name": "nebula-state", "creationPolicy": "Owner"},
                "data": [{"secretKey": "url", "remoteRef": remote}],
            },
        )
    )
    return [{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "nebula-state", "key": "url"}}}]


def _base_objects(out: _Objects, project: Resource, connections: dict[str, Resource]) -> list[dict[str, Any]]:
    """Namespace, accounts, network policies; returns the env entries for connection secrets."""
    graph, ns, settings = out.graph, out.namespace, out.graph.settings
    kube = settings["kubernetes"]
    out.add(
        k8s(
            "v1",
            "Namespace",
            ns,
            None,
            {
                **out.labels(),
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
            out.notes(project),
        )
    )
    cloud = settings.get("cloud") or {}
    for account, suffix in ((SERVING_SA, "-serving"), (WORKLOAD_SA, "")):
        role_arn: dict[str, str] = {}
        if cloud.get("account_id"):  # the IAM roles stacks/aws makes: read-only for serving, read-write for jobs
            name = f"{graph.platform['name']}-{graph.environment}-{project.name}{suffix}"
            role_arn["eks.amazonaws.com/role-arn"] = f"arn:aws:iam::{cloud['account_id']}:role/{name}"
        out.add(
            k8s(
                "v1",
                "ServiceAccount",
                account,
                ns,
                out.labels(),
                {**out.notes(project), **role_arn},
                automountServiceAccountToken=False,
            )
        )
    dns = {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    out.add(
        k8s(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "default-deny",
            ns,
            out.labels(),
            out.notes(project),
            spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        )
    )
    out.add(
        k8s(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "allow-dns",
            ns,
            out.labels(),
            out.notes(project),
            spec={"podSelector": {}, "policyTypes": ["Egress"], "egress": [dns]},
        )
    )
    gateway_ns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": kube["gateway_namespace"]}}}
    monitoring_ns = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": kube["monitoring_namespace"]}}
    }
    out.add(
        k8s(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "allow-serving-ingress",
            ns,
            out.labels(),
            out.notes(project),
            spec={
                "podSelector": {"matchLabels": {"nebula/component": "serving"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [gateway_ns, monitoring_ns], "ports": [{"protocol": "TCP", "port": PORT}]}],
            },
        )
    )
    https = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]}
    out.add(
        k8s(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "allow-https-egress",
            ns,
            out.labels(),
            out.notes(project),
            spec={
                "podSelector": {
                    "matchExpressions": [
                        {"key": "nebula/component", "operator": "In", "values": ["notebook", "serving", "training"]}
                    ]
                },
                "policyTypes": ["Egress"],
                "egress": [https],
            },
        )
    )
    ports = sorted({int(c.spec["port"]) for c in connections.values() if "port" in c.spec})
    if ports:
        out.add(
            k8s(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                "allow-data-sources",
                ns,
                out.labels(),
                out.notes(project),
                spec={
                    "podSelector": {
                        "matchExpressions": [
                            {"key": "nebula/component", "operator": "In", "values": ["notebook", "training"]}
                        ]
                    },
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                            "ports": [{"protocol": "TCP", "port": p} for p in ports],
                        }
                    ],
                },
            )
        )
    env: list[dict[str, Any]] = _state_env(out)
    for cname, connection in sorted(connections.items()):
        refs = list(_secret_refs(connection.spec))
        if not refs:
            continue
        secret_name = f"connection-{cname}"
        data = []
        for trail, ref in refs:
            secret_key = "-".join(trail)
            remote: dict[str, str] = {"key": ref["secret"]} if "secret" in ref else {"key": ref["env"]}
            if ref.get("key"):
                remote["property"] = ref["key"]
            data.append({"secretKey": secret_key, "remoteRef": remote})
            env.append(
                {
                    "name": env_name("NEBULA", "CONNECTION", cname, *trail),
                    "valueFrom": {"secretKeyRef": {"name": secret_name, "key": secret_key}},
                }
            )
        out.add(
            k8s(
                "external-secrets.io/v1",
                "ExternalSecret",
                secret_name,
                ns,
                out.labels(),
                out.notes(connection),
                spec={
                    "refreshInterval": "1h",
                    "secretStoreRef": {"kind": "ClusterSecretStore", "name": kube["secret_store"]},
                    "target": {"name": secret_name, "creationPolicy": "Owner"},
                    "data": data,
                },
            )
        )
    manifest = _project_manifest(graph, project.name, set(connections))
    if len(manifest.encode("utf-8")) > MAX_CONFIGMAP:
        out.problems.append(
            problem(
                project,
                "NEB504",
                f"the manifest of project '{project.name}' is {len(manifest.encode()):,} bytes; "
                f"a ConfigMap holds at most {MAX_CONFIGMAP:,}",
                "split the project into several projects",
            )
        )
    else:
        out.add(
            k8s(
                "v1",
                "ConfigMap",
                MANIFEST_CONFIGMAP,
                ns,
                out.labels(),
                out.notes(project),
                data={"manifest.json": manifest},
            )
        )
    return env


def _rbac(out: _Objects, project: Resource) -> None:
    graph, ns = out.graph, out.namespace
    subjects: dict[str, list[dict[str, str]]] = {}
    for binding in graph.of_kind("binding"):
        projects = binding.spec.get("projects")
        if projects is not None and project.name not in projects:
            continue
        subjects.setdefault(binding.spec["role"], []).append(_subject(binding.spec["subject"], ns))
    for role_name, members in sorted(subjects.items()):
        role = graph.get(f"role.{role_name}")
        if role is None:
            continue
        rules = _role_rules(role.spec["permissions"])
        if not rules:
            continue
        name = f"nebula-{role_name}"
        out.add(k8s("rbac.authorization.k8s.io/v1", "Role", name, ns, out.labels(), out.notes(role), rules=rules))
        unique = sorted({json.dumps(m, sort_keys=True): m for m in members}.items())
        out.add(
            k8s(
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                name,
                ns,
                out.labels(),
                out.notes(role),
                roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                subjects=[m for _, m in unique],
            )
        )


def _volumes(manifest: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if manifest:
        volumes.append({"name": "manifest", "configMap": {"name": MANIFEST_CONFIGMAP}})
        mounts.append({"name": "manifest", "mountPath": "/etc/nebula", "readOnly": True})
    return volumes, mounts


def _job_spec(out: _Objects, model: Resource, command: list[str], env: list[dict[str, Any]]) -> dict[str, Any]:
    graph = out.graph
    volumes, mounts = _volumes(manifest=True)
    pod: dict[str, Any] = {
        "serviceAccountName": WORKLOAD_SA,
        "restartPolicy": "Never",
        "securityContext": pod_security(),
        "containers": [
            {
                "name": "train",
                "image": image_ref(graph, model),
                "command": ["python", "-m", JOBS, *command],
                "env": [
                    {"name": "NEBULA_ENVIRONMENT", "value": graph.environment},
                    {"name": "NEBULA_ARTIFACTS", "value": str(graph.platform["artifacts"])},
                    *env,
                ],
                "resources": resources(dict(model.spec.get("resources", {})), GPU),
                "securityContext": RESTRICTED_CONTAINER,
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    if int(model.spec.get("resources", {}).get("gpu", 0)):
        pod["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "backoffLimit": 1,
        "ttlSecondsAfterFinished": 86400,
        "template": {"metadata": {"labels": out.labels(component="training", model=model.name)}, "spec": pod},
    }


def _training(out: _Objects, model: Resource, env: list[dict[str, Any]]) -> None:
    ns = out.namespace
    args = ["pipeline", "--manifest", "/etc/nebula/manifest.json", "--project", out.project, "--model", model.name]
    spec = _job_spec(out, model, args, env)
    name = f"train-{model.name}-{content_hash(spec)[:8]}"
    if len(name) > MAX_NAME:
        out.problems.append(
            problem(
                model,
                "NEB503",
                f"training Job name '{name}' is {len(name)} characters; Kubernetes allows {MAX_NAME}",
                f"shorten model '{model.name}' to at most {MAX_NAME - 15} characters",
            )
        )
        return
    out.add(
        k8s(
            "batch/v1", "Job", name, ns, out.labels(component="training", model=model.name), out.notes(model), spec=spec
        )
    )
    retraining = model.spec.get("retraining") or {}
    command = ["--manifest", "/etc/nebula/manifest.json", "--project", out.project, "--model", model.name]
    cronjobs = []
    if retraining.get("schedule"):
        cronjobs.append((f"retrain-{model.name}", str(retraining["schedule"]), ["retrain", *command]))
    if retraining.get("on_drift"):
        # the drift check: retrains only when a deployment serving the model drifted (and min_interval allows)
        cronjobs.append((f"drift-{model.name}", DRIFT_CHECK, ["retrain", *command, "--trigger", "drift"]))
    for cron_name, schedule, args in cronjobs:
        out.add(
            k8s(
                "batch/v1",
                "CronJob",
                cron_name,
                ns,
                out.labels(component="training", model=model.name),
                out.notes(model),
                spec={
                    "schedule": schedule,
                    "timeZone": "Etc/UTC",
                    "concurrencyPolicy": "Forbid",
                    "successfulJobsHistoryLimit": 3,
                    "failedJobsHistoryLimit": 3,
                    "jobTemplate": {"spec": _job_spec(out, model, args, env)},
                },
            )
        )


def _serving(out: _Objects, deployment: Resource) -> None:
    graph, ns, spec = out.graph, out.namespace, deployment.spec
    name = deployment.name
    autoscaling = spec.get("autoscaling")
    replicas = int(spec.get("replicas", 1))
    backends = []
    for vname, variant in spec["variants"].items():
        model = graph.get(f"model.{out.project}.{variant['model']}")
        assert model is not None, "references are resolved before lowering"
        full = f"{name}-{vname}"
        selector = {"nebula/deployment": name, "nebula/variant": vname}
        obj_labels = out.labels(component="serving", deployment=name, variant=vname, model=variant["model"])
        config = {
            "project": out.project,
            "deployment": name,
            "variant": vname,
            "model": variant["model"],
            "version": variant["version"],
            "traffic": variant["traffic"],
            "task": model.spec["task"],
            "monitoring": spec.get("monitoring", {}),
        }
        config_text = pretty_json(config)
        out.add(
            k8s(
                "v1",
                "ConfigMap",
                f"{full}-serving",
                ns,
                obj_labels,
                out.notes(deployment),
                data={"serving.json": config_text},
            )
        )
        volumes, mounts = _volumes(manifest=False)
        volumes.append({"name": "serving", "configMap": {"name": f"{full}-serving"}})
        mounts.append({"name": "serving", "mountPath": "/etc/nebula/serving", "readOnly": True})
        probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 2}
        pod = {
            "serviceAccountName": SERVING_SA,
            "automountServiceAccountToken": False,
            "securityContext": pod_security(),
            "containers": [
                {
                    "name": "model",
                    "image": image_ref(graph, model),
                    "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                    "env": [
                        {"name": "NEBULA_ENVIRONMENT", "value": graph.environment},
                        {"name": "NEBULA_PROJECT", "value": out.project},
                        {"name": "NEBULA_DEPLOYMENT", "value": name},
                        {"name": "NEBULA_VARIANT", "value": vname},
                        {"name": "NEBULA_MODEL", "value": variant["model"]},
                        {"name": "NEBULA_MODEL_VERSION", "value": str(variant["version"])},
                        {"name": "NEBULA_ARTIFACTS", "value": str(graph.platform["artifacts"])},
                    ],
                    "resources": resources(dict(spec.get("resources", {})), GPU),
                    "securityContext": RESTRICTED_CONTAINER,
                    "startupProbe": {**probe, "failureThreshold": 30},
                    "livenessProbe": {**probe, "failureThreshold": 3},
                    "readinessProbe": {
                        "httpGet": {"path": "/readyz", "port": "http"},
                        "periodSeconds": 5,
                        "timeoutSeconds": 2,
                        "failureThreshold": 2,
                    },
                    "volumeMounts": mounts,
                }
            ],
            "volumes": volumes,
        }
        deployment_spec: dict[str, Any] = {}
        if autoscaling is None:
            deployment_spec["replicas"] = replicas
        deployment_spec.update(
            {
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {
                        "labels": obj_labels,
                        "annotations": {"nebula/serving-config": content_hash(config)},
                    },
                    "spec": pod,
                },
            }
        )
        top = max(replicas, int(autoscaling["max"]) if autoscaling else 0)
        if top > 1:
            deployment_spec["template"]["spec"]["topologySpreadConstraints"] = [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": selector},
                }
            ]
        out.add(k8s("apps/v1", "Deployment", full, ns, obj_labels, out.notes(deployment), spec=deployment_spec))
        out.add(
            k8s(
                "v1",
                "Service",
                full,
                ns,
                obj_labels,
                out.notes(deployment),
                spec={
                    "type": "ClusterIP",
                    "selector": selector,
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                },
            )
        )
        if autoscaling is not None:
            out.add(
                k8s(
                    "autoscaling/v2",
                    "HorizontalPodAutoscaler",
                    full,
                    ns,
                    obj_labels,
                    out.notes(deployment),
                    spec={
                        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": full},
                        "minReplicas": int(autoscaling["min"]),
                        "maxReplicas": int(autoscaling["max"]),
                        "metrics": [
                            {
                                "type": "Resource",
                                "resource": {
                                    "name": "cpu",
                                    "target": {
                                        "type": "Utilization",
                                        "averageUtilization": int(autoscaling["target_cpu"]),
                                    },
                                },
                            }
                        ],
                    },
                )
            )
        floor = int(autoscaling["min"]) if autoscaling else replicas
        if floor > 1:
            out.add(
                k8s(
                    "policy/v1",
                    "PodDisruptionBudget",
                    full,
                    ns,
                    obj_labels,
                    out.notes(deployment),
                    spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}},
                )
            )
        backends.append({"group": "", "kind": "Service", "name": full, "port": 80, "weight": int(variant["traffic"])})

    kube = graph.settings["kubernetes"]
    route: dict[str, Any] = {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": kube["gateway"],
                "namespace": kube["gateway_namespace"],
            }
        ]
    }
    dns = graph.settings.get("dns")
    if dns:
        route["hostnames"] = [f"{name}.{out.project}.{dns['zone']}"]
    route["rules"] = [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": backends}]
    route_labels = out.labels(component="serving", deployment=name)
    out.add(k8s("gateway.networking.k8s.io/v1", "HTTPRoute", name, ns, route_labels, out.notes(deployment), spec=route))
    out.add(
        k8s(
            "monitoring.coreos.com/v1",
            "ServiceMonitor",
            name,
            ns,
            route_labels,
            out.notes(deployment),
            spec={
                "selector": {"matchLabels": {"nebula/deployment": name, "nebula/component": "serving"}},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
            },
        )
    )
    groups = monitoring.rule_groups(graph, deployment)
    if groups:
        out.add(
            k8s(
                "monitoring.coreos.com/v1",
                "PrometheusRule",
                name,
                ns,
                route_labels,
                out.notes(deployment),
                spec={"groups": groups},
            )
        )


def _notebook(out: _Objects, notebook: Resource) -> None:
    graph, ns, spec = out.graph, out.namespace, notebook.spec
    kind = spec.get("kind", "jupyter")
    image = spec.get("image") or NOTEBOOK_IMAGES[kind]
    port = NOTEBOOK_PORTS[kind]
    uid = NOTEBOOK_UID[kind]
    name = f"notebook-{notebook.name}"
    obj_labels = out.labels(component="notebook", notebook=notebook.name)
    container = {
        "name": "notebook",
        "image": image,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "resources": resources(dict(spec.get("resources", {})), GPU),
        "securityContext": {**RESTRICTED_CONTAINER, "readOnlyRootFilesystem": False},
        "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan" if kind == "jupyter" else "/home/coder"}],
    }
    pod: dict[str, Any] = {
        "serviceAccountName": WORKLOAD_SA,
        "securityContext": pod_security(uid),
        "containers": [container],
    }
    if int(spec.get("resources", {}).get("gpu", 0)):
        pod["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    claim: dict[str, Any] = {
        "metadata": {"name": "home"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": spec.get("storage", "10Gi")}}},
    }
    storage_class = graph.settings["kubernetes"].get("storage_class")
    if storage_class:
        claim["spec"]["storageClassName"] = storage_class
    if graph.settings["kubernetes"].get("notebooks") == "kubeflow":
        volume_name = f"{name}-home"
        pod["volumes"] = [{"name": "home", "persistentVolumeClaim": {"claimName": volume_name}}]
        out.add(
            k8s(
                "v1",
                "PersistentVolumeClaim",
                volume_name,
                ns,
                obj_labels,
                out.notes(notebook),
                spec=claim["spec"],
            )
        )
        out.add(
            k8s(
                "kubeflow.org/v1",
                "Notebook",
                name,
                ns,
                obj_labels,
                out.notes(notebook),
                spec={"template": {"spec": pod}},
            )
        )
        return
    selector = {"nebula/notebook": notebook.name}
    out.add(
        k8s(
            "apps/v1",
            "StatefulSet",
            name,
            ns,
            obj_labels,
            out.notes(notebook),
            spec={
                "serviceName": name,
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {"metadata": {"labels": obj_labels}, "spec": pod},
                "volumeClaimTemplates": [claim],
            },
        )
    )
    out.add(
        k8s(
            "v1",
            "Service",
            name,
            ns,
            obj_labels,
            out.notes(notebook),
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        )
    )


def _connections_of(graph: ResourceGraph, project: str) -> dict[str, Resource]:
    out: dict[str, Resource] = {}
    for dataset in graph.project_resources(project, "dataset"):
        name = (dataset.spec.get("source") or {}).get("connection")
        connection = graph.get(f"connection.{name}") if name else None
        if connection is not None:
            out[connection.name] = connection
    return out


def emit_kubernetes(graph: ResourceGraph, context: EmitContext) -> Bundle:
    files: dict[str, str] = {}
    objects: dict[str, dict[str, Any]] = {}
    found: list[Diagnostic] = []
    shared = shared_key(graph)
    for project in graph.of_kind("project"):
        key = (
            "kubernetes",
            shared,
            project.hash,
            *(r.hash for kind in PROJECT_KINDS for r in graph.project_resources(project.name, kind)),
        )
        project_files, project_objects, problems = cached(
            context, key, functools.partial(_project_files, graph, project)
        )
        files.update(project_files)
        objects.update(project_objects)
        found.extend(problems)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(p.removeprefix("kubernetes/") for p in files),
    }
    files["kubernetes/kustomization.yaml"] = dump(kustomization)
    return Bundle(files, tuple(found), objects)


PROJECT_KINDS = ("dataset", "preprocessing", "model", "notebook", "deployment")


def _project_files(
    graph: ResourceGraph, project: Resource
) -> tuple[dict[str, str], dict[str, dict[str, Any]], list[Diagnostic]]:
    """One project's folder: files, the objects in them, and what went wrong."""
    files: dict[str, str] = {}
    objects: dict[str, dict[str, Any]] = {}
    found: list[Diagnostic] = []
    namespace = project.spec["namespace"]
    out = _Objects(graph, project.name, namespace)
    models = graph.project_resources(project.name, "model")
    connections = _connections_of(graph, project.name)
    out.unit = "project"
    env = _base_objects(out, project, connections)
    _rbac(out, project)
    for model in models:
        out.unit = f"model-{model.name}"
        _training(out, model, env)
    for deployment in graph.project_resources(project.name, "deployment"):
        if deployment.spec.get("target", "kubernetes") == "kubernetes":
            out.unit = f"deployment-{deployment.name}"
            _serving(out, deployment)
    for notebook in graph.project_resources(project.name, "notebook"):
        out.unit = f"notebook-{notebook.name}"
        _notebook(out, notebook)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for path, obj in out.items:
        grouped.setdefault(f"kubernetes/{path}", []).append(obj)
    for path, group in grouped.items():
        files[path] = dump_all(group)
        for index, obj in enumerate(group):
            objects[f"{path}#{index}"] = obj
    found.extend(out.problems)
    return files, objects, found
