"""lower: a resolved spec and one environment -> that environment's resource graph.

The environment's overrides are applied (`resolve.overlay`), defaults that depend
on other values are made explicit (a model's task, framework and metrics, a
deployment's variants, each project's namespace), and every resource records the
line of nebula.yaml it came from, so a problem found later still points there.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel

from nebula_compile.diagnostics import Diagnostic, Path
from nebula_compile.ir.graph import Resource, ResourceGraph, Source, make_resource
from nebula_compile.resolve import Resolved, overlay
from nebula_compile.resolve.rules import metrics_of, namespace_prefix, task_of
from nebula_compile.source.sourcemap import SourceMap
from nebula_compile.spec import catalog
from nebula_compile.spec.models import SQL_TYPES, Model, Spec


def _dump(value: BaseModel) -> dict[str, Any]:
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)


class _Lowering:
    def __init__(self, sourcemap: SourceMap, root_dir: str) -> None:
        self.sourcemap = sourcemap
        self.root_dir = root_dir
        self.resources: list[Resource] = []
        self.diagnostics: list[Diagnostic] = []

    def add(
        self,
        kind: str,
        name: str,
        project: str | None,
        spec: dict[str, Any],
        path: Path,
        depends_on: tuple[str, ...] = (),
    ) -> None:
        span = self.sourcemap.span(path, key=True)
        source = None if span is None else Source(_relative(span.file, self.root_dir), span.line, span.column)
        self.resources.append(make_resource(kind, name, project, spec, depends_on, source, span, path))


def _relative(file: str, root_dir: str) -> str:
    rel = os.path.relpath(file, root_dir or ".")
    return rel.replace(os.sep, "/")


def image_name(spec: Spec, project: str, model: str) -> str:
    return f"{spec.platform.registry.rstrip('/')}/{project}-{model}"


def model_spec(spec: Spec, project: str, name: str, model: Model) -> dict[str, Any]:
    task = task_of(model)
    out = _dump(model)
    out["task"] = task
    out["framework"] = model.framework or ("torch" if model.algorithm == "neural_network" else "sklearn")
    out["metrics"] = list(metrics_of(model))
    tuning = out.get("tuning")
    if tuning is not None:
        metric = tuning.get("metric") or out["metrics"][0]
        tuning["metric"] = metric
        tuning.setdefault("direction", "minimize" if metric in catalog.LOWER_IS_BETTER else "maximize")
    out["image"] = image_name(spec, project, name)
    return out


def lower(
    resolved: Resolved, environment: str, sourcemap: SourceMap, *, root_dir: str = "", revision: str | None = None
) -> tuple[ResourceGraph, tuple[Diagnostic, ...]]:
    """The resource graph of `environment`; ids sorted, so the order never depends on input order."""
    spec = overlay(resolved.spec, environment)
    env = spec.environments[environment]
    prefix = namespace_prefix(spec, environment)
    lowering = _Lowering(sourcemap, root_dir)

    for cname, connection in spec.connections.items():
        data = _dump(connection)
        data["sql"] = connection.type in SQL_TYPES
        lowering.add("connection", cname, None, data, ("connections", cname))
    for rname, role in spec.roles.items():
        lowering.add("role", rname, None, _dump(role), ("roles", rname))
    for index, binding in enumerate(spec.bindings):
        data = _dump(binding)
        name = f"{binding.role}.{binding.subject}"
        needs = (f"role.{binding.role}", *(f"project.{p}" for p in binding.projects or ()))
        lowering.add("binding", name, None, data, ("bindings", index), needs)
    # how the runtime authenticates callers (secret references only); it reads this from the state
    lowering.add("auth", "auth", None, _dump(spec.auth), ("auth",))

    for pname, project in spec.projects.items():
        base: Path = ("projects", pname)
        namespace = f"{prefix}{pname}"
        lowering.add(
            "project",
            pname,
            None,
            {
                "namespace": namespace,
                "description": project.description,
                "owners": list(project.owners),
                "labels": dict(project.labels),
            },
            base,
        )
        pid = f"project.{pname}"

        def data_id(name: str, project_name: str = pname) -> str:
            kind = "dataset" if name in spec.projects[project_name].datasets else "preprocessing"
            return f"{kind}.{project_name}.{name}"

        for dname, dataset in project.datasets.items():
            data = _dump(dataset)
            source = dataset.source
            if dataset.format is None and source.path:
                suffix = source.path.rsplit(".", 1)[-1].lower()
                data["format"] = "json" if suffix == "jsonl" else suffix
            deps: tuple[str, ...] = (pid,)
            if source.connection:
                deps += (f"connection.{source.connection}",)
            lowering.add("dataset", dname, pname, data, (*base, "datasets", dname), deps)
        for sname, step in project.preprocessing.items():
            data = _dump(step)
            data["root"] = resolved.roots.get((pname, sname))
            lowering.add(
                "preprocessing", sname, pname, data, (*base, "preprocessing", sname), (pid, data_id(step.input))
            )
        for mname, model in project.models.items():
            data = model_spec(spec, pname, mname, model)
            data["root"] = resolved.roots.get((pname, model.dataset))
            lowering.add("model", mname, pname, data, (*base, "models", mname), (pid, data_id(model.dataset)))
        for nname, notebook in project.notebooks.items():
            needs = (pid, *(f"dataset.{pname}.{d}" for d in notebook.datasets))
            lowering.add("notebook", nname, pname, _dump(notebook), (*base, "notebooks", nname), needs)
        for dname, deployment in project.deployments.items():
            data = _dump(deployment)
            variants = deployment.effective_variants()
            data["variants"] = {
                vname: {"model": v.model, "version": v.version, "traffic": v.traffic if v.traffic is not None else 100}
                for vname, v in variants.items()
            }
            data.pop("model", None)
            data.pop("version", None)
            data["namespace"] = namespace
            serves = (pid, *(f"model.{pname}.{v.model}" for v in variants.values()))
            lowering.add("deployment", dname, pname, data, (*base, "deployments", dname), serves)

    settings = _dump(env)
    settings.pop("overrides", None)
    settings["name"] = environment
    settings["namespace_prefix"] = prefix
    platform = _dump(spec.platform)
    if not isinstance(spec.platform.state, str):
        platform["state"] = _dump(spec.platform.state)
    resources = tuple(sorted(lowering.resources, key=lambda r: r.id))
    graph = ResourceGraph(environment, settings, platform, resources, revision)
    return graph, tuple(lowering.diagnostics)
