"""emit_monitoring: alert rules and dashboards for every deployment.

The alert rules of nebula.yaml (and a drift alert where drift detection is on)
become PromQL over the metrics the model server exports. The same groups go into
the PrometheusRule objects of the Kubernetes output and, as plain Prometheus rule
files, into `monitoring/prometheus/` (what `promtool check rules` reads). Each
deployment also gets a Grafana dashboard: latency, throughput, errors, CPU,
memory, live accuracy and drift, per variant.

Metrics the model server exports (the contract with the runtime):
`nebula_requests_total{namespace,deployment,variant,status}`,
`nebula_request_duration_seconds_bucket{...,le}`,
`nebula_live_accuracy{namespace,deployment,variant}`,
`nebula_drift_score{namespace,deployment,variant,feature}`.
"""

from __future__ import annotations

import functools
from typing import Any

from nebula_compile.emit.bundle import Bundle
from nebula_compile.emit.context import EmitContext, cached, shared_key
from nebula_compile.emit.kube import camel
from nebula_compile.emit.yamlout import dump
from nebula_compile.ir.graph import Resource, ResourceGraph, pretty_json
from nebula_compile.spec.types import duration_seconds

QUANTILES = {"latency": 0.95, "latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}


def _selector(namespace: str, deployment: str) -> str:
    return f'namespace="{namespace}",deployment="{deployment}"'


def metric_expr(metric: str, namespace: str, deployment: str, by: str = "") -> str:
    """PromQL for a serving metric of one deployment, summed over pods (and `by` labels)."""
    sel = _selector(namespace, deployment)
    group = f" by ({by})" if by else ""
    pods = f'namespace="{namespace}",pod=~"{deployment}-.*",container="model"'
    if metric in QUANTILES:
        keep = f"le,{by}" if by else "le"
        return (
            f"histogram_quantile({QUANTILES[metric]}, sum by ({keep}) "
            f"(rate(nebula_request_duration_seconds_bucket{{{sel}}}[5m])))"
        )
    if metric == "throughput":
        return f"sum{group} (rate(nebula_requests_total{{{sel}}}[5m]))"
    if metric == "errors":
        return f'sum{group} (rate(nebula_requests_total{{{sel},status=~"5.."}}[5m]))'
    if metric == "error_rate":
        return (
            f'sum{group} (rate(nebula_requests_total{{{sel},status=~"5.."}}[5m]))'
            f" / sum{group} (rate(nebula_requests_total{{{sel}}}[5m]))"
        )
    if metric == "cpu":
        return f"sum (rate(container_cpu_usage_seconds_total{{{pods}}}[5m]))"
    if metric == "memory":
        return f"sum (container_memory_working_set_bytes{{{pods}}})"
    if metric == "accuracy":
        return f"min{group} (nebula_live_accuracy{{{sel}}})"
    if metric == "drift":
        return f"max{group} (nebula_drift_score{{{sel}}})"
    raise ValueError(f"no PromQL for metric {metric!r}")  # the language admits no other metric


def _seconds(duration: str) -> str:
    """Prometheus durations take no mixed units like 1h30m in old versions; normalize to s/m/h."""
    seconds = int(duration_seconds(duration))
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 1)}s"


def rule_groups(graph: ResourceGraph, deployment: Resource) -> list[dict[str, Any]]:
    spec = deployment.spec
    namespace = spec["namespace"]
    name = deployment.name
    monitoring = spec.get("monitoring") or {}
    where = f"{deployment.project}/{name} in {graph.environment}"
    source = str(deployment.source) if deployment.source else "nebula.yaml"
    rules: list[dict[str, Any]] = []
    for alert_name, alert in sorted((monitoring.get("alerts") or {}).items()):
        expr = f"{metric_expr(alert['metric'], namespace, name)} {alert.get('op', '>')} {alert['threshold']:g}"
        rules.append(
            {
                "alert": camel(deployment.project or "", name, alert_name),
                "expr": expr,
                "for": _seconds(alert.get("for", "5m")),
                "labels": {
                    "severity": alert.get("severity", "warning"),
                    "nebula_project": deployment.project,
                    "nebula_deployment": name,
                    "nebula_environment": graph.environment,
                },
                "annotations": {
                    "summary": f"{alert['metric']} {alert.get('op', '>')} {alert['threshold']:g} for {where}",
                    "description": alert.get("description")
                    or f"Alert '{alert_name}' of {where}, declared at {source}.",
                },
            }
        )
    drift = monitoring.get("drift")
    if drift:
        rules.append(
            {
                "alert": camel(deployment.project or "", name, "drift"),
                "expr": f"{metric_expr('drift', namespace, name, 'variant,feature')} > {drift['threshold']:g}",
                "for": _seconds(drift.get("window", "1h")),
                "labels": {
                    "severity": "warning",
                    "nebula_project": deployment.project,
                    "nebula_deployment": name,
                    "nebula_environment": graph.environment,
                },
                "annotations": {
                    "summary": f"input drift ({drift.get('method', 'psi')}) above {drift['threshold']:g} for {where}",
                    "description": f"Feature {{{{ $labels.feature }}}} of variant {{{{ $labels.variant }}}} drifted; declared at {source}.",
                },
            }
        )
    if not rules:
        return []
    return [{"name": f"nebula.{graph.environment}.{deployment.project}.{name}", "rules": rules}]


def _panel(
    panel_id: int, title: str, expr: str, unit: str, x: int, y: int, legend: str = "{{variant}}"
) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": legend}],
    }


def dashboard(graph: ResourceGraph, deployment: Resource) -> dict[str, Any]:
    namespace, name = deployment.spec["namespace"], deployment.name
    panels_spec = [
        ("Latency p50 / p95 / p99", "latency_p99", "s"),
        ("Throughput", "throughput", "reqps"),
        ("Errors", "errors", "reqps"),
        ("Error rate", "error_rate", "percentunit"),
        ("CPU", "cpu", "short"),
        ("Memory", "memory", "bytes"),
        ("Live accuracy", "accuracy", "percentunit"),
        ("Drift score", "drift", "short"),
    ]
    panels = []
    for index, (title, metric, unit) in enumerate(panels_spec):
        by = "variant,feature" if metric == "drift" else "variant"
        by = "" if metric in ("cpu", "memory") else by
        legend = "{{variant}} {{feature}}" if metric == "drift" else ("total" if not by else "{{variant}}")
        panel = _panel(
            index + 1, title, metric_expr(metric, namespace, name, by), unit, (index % 2) * 12, (index // 2) * 8, legend
        )
        if metric == "latency_p99":
            panel["targets"] = [
                {
                    "refId": ref,
                    "expr": metric_expr(m, namespace, name, "variant"),
                    "legendFormat": f"{{{{variant}}}} {label}",
                }
                for ref, m, label in (
                    ("A", "latency_p50", "p50"),
                    ("B", "latency_p95", "p95"),
                    ("C", "latency_p99", "p99"),
                )
            ]
        panels.append(panel)
    return {
        "uid": f"nebula-{graph.environment}-{deployment.project}-{name}"[:40],
        "title": f"Nebula / {deployment.project} / {name} ({graph.environment})",
        "tags": ["nebula", graph.environment, deployment.project or ""],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": panels,
    }


def _deployment_monitoring(graph: ResourceGraph, deployment: Resource) -> tuple[list[dict[str, Any]], str]:
    return rule_groups(graph, deployment), pretty_json(dashboard(graph, deployment))


def emit_monitoring(graph: ResourceGraph, context: EmitContext) -> Bundle:
    files: dict[str, str] = {}
    by_project: dict[str, list[dict[str, Any]]] = {}
    shared = shared_key(graph)
    for deployment in graph.of_kind("deployment"):
        if deployment.spec.get("target", "kubernetes") != "kubernetes":
            continue
        groups, board = cached(
            context,
            ("monitoring", shared, deployment.hash),
            functools.partial(_deployment_monitoring, graph, deployment),
        )
        by_project.setdefault(deployment.project or "", []).extend(groups)
        files[f"monitoring/grafana/{deployment.project}-{deployment.name}.json"] = board
    for project, groups in sorted(by_project.items()):
        if groups:
            files[f"monitoring/prometheus/{project}.rules.yaml"] = dump({"groups": groups})
    return Bundle(files)
