"""check_policies: every policy, in every environment, over the compiled output.

Levels come from the pack, then `policies:` at the top of nebula.yaml, then the
environment's own `policies:`. A mandatory violation is an error (NEB401), an
advisory one a warning (NEB402); each points at the nebula.yaml line of the
resource (and field) at fault, or at the environment override that set it.
Policies change nothing: they read the graph and the emitted objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from nebula_compile.diagnostics import Diagnostic, Path, Severity, did_you_mean
from nebula_compile.ir.graph import Resource, ResourceGraph
from nebula_compile.policy.checks import CHECKS, Found, Target
from nebula_compile.policy.packs import Policy, load_packs
from nebula_compile.resolve.overlay import override_path
from nebula_compile.source.sourcemap import SourceMap
from nebula_compile.spec.models import PolicySetting, Spec


@dataclass(frozen=True)
class Result:
    policy: Policy
    environment: str
    level: str
    violations: tuple[Diagnostic, ...]


@dataclass(frozen=True)
class PolicyReport:
    results: tuple[Result, ...]
    diagnostics: tuple[Diagnostic, ...] = field(default=())
    """Problems with the packs or the levels themselves, plus every violation."""

    @property
    def failed(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


def _validator(schema: Mapping[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def _setting(entry: object) -> tuple[str | None, dict[str, Any]]:
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, PolicySetting):
        return entry.level, dict(entry.parameters)
    return None, {}


def effective(policy: Policy, spec: Spec, environment: str) -> tuple[str, dict[str, Any]]:
    level: str = policy.level
    parameters = dict(policy.parameters)
    for entry in (spec.policies.get(policy.name), spec.environments[environment].policies.get(policy.name)):
        new_level, new_parameters = _setting(entry)
        level = new_level or level
        parameters.update(new_parameters)
    return level, parameters


def _field_path(resource: Resource | None, path: str | None) -> Path:
    if resource is None:
        return ()
    return (*resource.path, *path.split(".")) if path else resource.path


def _data_policy(policy: Policy, target: Target) -> Iterator[Found]:
    assert policy.check_schema is not None
    check = _validator(policy.check_schema)
    when = _validator(policy.when) if policy.when else None
    if policy.target == "graph":
        for kind in policy.kinds:
            for resource in target.graph.of_kind(kind):
                spec = dict(resource.spec)
                if when is not None and not when.is_valid(spec):
                    continue
                if not check.is_valid(spec):
                    yield resource, kind, resource.name, policy.path
        return
    for obj in target.objects.values():
        if obj.get("kind") not in policy.kinds:
            continue
        if when is not None and not when.is_valid(obj):
            continue
        if not check.is_valid(obj):
            yield target.resource_of(obj), str(obj["kind"]), str(obj["metadata"]["name"]), policy.path


def check_policies(
    spec: Spec,
    sourcemap: SourceMap,
    graphs: Mapping[str, ResourceGraph],
    objects: Mapping[str, Mapping[str, Mapping[str, Any]]],
    config_root: str | None,
) -> PolicyReport:
    policies, problems = load_packs(config_root, set(CHECKS))
    found: list[Diagnostic] = list(problems)
    names = {p.name for p in policies}
    for scope, table in [(("policies",), spec.policies)] + [
        (("environments", env, "policies"), settings.policies) for env, settings in spec.environments.items()
    ]:
        for name in table:
            if name not in names:
                found.append(
                    Diagnostic(
                        "NEB404",
                        f"unknown policy '{name}'",
                        sourcemap.span((*scope, name), key=True),
                        did_you_mean(name, names) or "run 'nebula policy list' for the policies there are",
                        path=(*scope, name),
                    )
                )
    results: list[Result] = []
    for environment, graph in graphs.items():
        environment_settings = dict(graph.settings)
        for policy in sorted(policies, key=lambda p: p.name):
            level, parameters = effective(policy, spec, environment)
            if level == "disabled":
                results.append(Result(policy, environment, level, ()))
                continue
            if policy.environment is not None and not _validator(policy.environment).is_valid(environment_settings):
                results.append(Result(policy, environment, level, ()))
                continue
            target = Target(graph, objects.get(environment, {}), parameters)
            hits = CHECKS[policy.check](target) if policy.check else _data_policy(policy, target)
            violations = []
            seen: set[tuple[str, str, str]] = set()
            for resource, kind, name, path in hits:
                if (kind, name, str(path)) in seen:
                    continue
                seen.add((kind, name, str(path)))
                where = override_path(spec, environment, _field_path(resource, path))
                span = sourcemap.span(where) if where else None
                message = policy.message.format(
                    name=name, kind=kind, environment=environment, project=resource.project if resource else ""
                )
                violations.append(
                    Diagnostic(
                        "NEB401" if level == "mandatory" else "NEB402",
                        f"[{policy.name}] {message}",
                        span,
                        policy.hint,
                        Severity.ERROR if level == "mandatory" else Severity.WARNING,
                        path=where,
                    )
                )
            results.append(Result(policy, environment, level, tuple(violations)))
            found.extend(violations)
    return PolicyReport(tuple(results), tuple(found))
