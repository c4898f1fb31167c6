"""summarize: the changes an ML team reads first, drawn from the resource changes.

Traffic shifts ("churn-api: champion 90% -> 50%"), model versions served, dataset
pins, new or changed alerts, RBAC changes, and changes that cost money (GPUs,
replicas, autoscaling ceilings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nebula_compile.plan.diff import ResourceChange


@dataclass(frozen=True)
class Summary:
    traffic: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()
    rbac: tuple[str, ...] = ()
    cost: tuple[str, ...] = ()

    def sections(self) -> list[tuple[str, tuple[str, ...]]]:
        return [
            ("Traffic", self.traffic),
            ("Model versions", self.models),
            ("Dataset pins", self.datasets),
            ("Alerts", self.alerts),
            ("Access (RBAC)", self.rbac),
            ("Cost", self.cost),
        ]


def _spec(change: ResourceChange, side: str) -> dict[str, Any]:
    resource = change.before if side == "before" else change.after
    return dict(resource.spec) if resource is not None else {}


def _gpus(spec: dict[str, Any]) -> int:
    return int((spec.get("resources") or {}).get("gpu", 0))


def _ceiling(spec: dict[str, Any]) -> int:
    scaling = spec.get("autoscaling")
    return int(scaling["max"]) if scaling else int(spec.get("replicas", 0))


def summarize(environment: str, changes: list[ResourceChange]) -> Summary:
    traffic, models, datasets, alerts, rbac, cost = [], [], [], [], [], []
    where = f" ({environment})"
    for change in changes:
        before, after = _spec(change, "before"), _spec(change, "after")
        label = f"{change.project}/{change.name}" if change.project else change.name
        if change.kind == "deployment":
            old_variants, new_variants = before.get("variants", {}), after.get("variants", {})
            shifts = []
            for name in sorted(set(old_variants) | set(new_variants)):
                a, b = old_variants.get(name, {}), new_variants.get(name, {})
                if a.get("traffic", 0) != b.get("traffic", 0):
                    shifts.append(f"{name} {a.get('traffic', 0)}% -> {b.get('traffic', 0)}%")
                if (a.get("model"), a.get("version")) != (b.get("model"), b.get("version")):
                    old = f"{a['model']}@{a['version']}" if a else "none"
                    new = f"{b['model']}@{b['version']}" if b else "none"
                    models.append(f"{label} {name}: {old} -> {new}{where}")
            if shifts:
                traffic.append(f"{label}: {', '.join(shifts)}{where}")
            old_alerts = (before.get("monitoring") or {}).get("alerts", {})
            new_alerts = (after.get("monitoring") or {}).get("alerts", {})
            for name in sorted(set(old_alerts) | set(new_alerts)):
                if name not in old_alerts:
                    alerts.append(f"{label}: new alert '{name}'{where}")
                elif name not in new_alerts:
                    alerts.append(f"{label}: alert '{name}' removed{where}")
                elif old_alerts[name] != new_alerts[name]:
                    alerts.append(f"{label}: alert '{name}' changed{where}")
            if _ceiling(before) != _ceiling(after):
                cost.append(f"{label}: up to {_ceiling(before)} -> {_ceiling(after)} replicas per variant{where}")
        if change.kind in ("model", "notebook") and _gpus(before) != _gpus(after):
            cost.append(f"{change.kind} {label}: {_gpus(before)} -> {_gpus(after)} GPUs{where}")
        if change.kind == "dataset" and before.get("version") != after.get("version"):
            datasets.append(
                f"{label}: {before.get('version') or 'latest'} -> {after.get('version') or 'latest'}{where}"
            )
        if change.kind in ("role", "binding"):
            rbac.append(f"{change.action} {change.kind} {change.name}{where}")
    return Summary(tuple(traffic), tuple(models), tuple(datasets), tuple(alerts), tuple(rbac), tuple(cost))
