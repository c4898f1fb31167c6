"""make_plan: the compiled base and head of a change -> the Plan a pull request shows.

A plan holds, per environment, the typed resource changes, the rendered file
changes and the ML summary, plus the policy results of the head and the manifest
hashes of both sides (what `apply` checks a saved plan against).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nebula_compile.diagnostics import Diagnostic
from nebula_compile.ir.graph import ResourceGraph
from nebula_compile.plan.diff import FileChange, ResourceChange, diff_files, diff_graphs
from nebula_compile.plan.summary import Summary, summarize
from nebula_compile.render import as_dict

PLAN_VERSION = "nebula.plan/v1"


@dataclass(frozen=True)
class EnvironmentPlan:
    environment: str
    base_hash: str | None
    head_hash: str | None
    resources: tuple[ResourceChange, ...]
    files: tuple[FileChange, ...]
    summary: Summary

    @property
    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "delete": 0}
        for change in self.resources:
            out[change.action] += 1
        return out


@dataclass(frozen=True)
class Plan:
    base_revision: str | None
    head_revision: str | None
    environments: tuple[EnvironmentPlan, ...]
    policy: tuple[Diagnostic, ...]

    @property
    def changed(self) -> bool:
        return any(e.resources or e.files for e in self.environments)

    @property
    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "delete": 0}
        for env in self.environments:
            for action, count in env.counts.items():
                out[action] += count
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": PLAN_VERSION,
            "base_revision": self.base_revision,
            "head_revision": self.head_revision,
            "changed": self.changed,
            "counts": self.counts,
            "policy": [as_dict(d) for d in self.policy],
            "environments": [
                {
                    "environment": env.environment,
                    "base_hash": env.base_hash,
                    "head_hash": env.head_hash,
                    "counts": env.counts,
                    "summary": {title.lower(): list(lines) for title, lines in env.summary.sections()},
                    "resources": [
                        {
                            "id": c.id,
                            "kind": c.kind,
                            "action": c.action,
                            "source": c.source,
                            "fields": [{"path": f.path, "before": f.before, "after": f.after} for f in c.fields],
                        }
                        for c in env.resources
                    ],
                    "files": [{"path": f.path, "action": f.action, "diff": f.diff} for f in env.files],
                }
                for env in self.environments
            ],
        }


Side = tuple[Mapping[str, ResourceGraph], Mapping[str, Mapping[str, str]]]
"""One side of a change: graphs and rendered files, by environment."""


def make_plan(
    base: Side,
    head: Side,
    policy: tuple[Diagnostic, ...],
    *,
    base_revision: str | None,
    head_revision: str | None,
) -> Plan:
    environments = []
    base_graphs, base_files = base
    head_graphs, head_files = head
    for name in sorted(set(base_graphs) | set(head_graphs)):
        old, new = base_graphs.get(name), head_graphs.get(name)
        resources = diff_graphs(old, new)
        files = diff_files(base_files.get(name, {}), head_files.get(name, {}))
        environments.append(
            EnvironmentPlan(
                name,
                old.hash if old else None,
                new.hash if new else None,
                tuple(resources),
                tuple(files),
                summarize(name, resources),
            )
        )
    return Plan(base_revision, head_revision, tuple(environments), policy)
