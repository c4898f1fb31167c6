"""emit_pipelines: per project, the ML pipeline as a DVC pipeline and as Kubernetes Jobs.

Stages: ingest and validate each dataset, run each preprocessing step, then per
model train, evaluate and register. Each stage calls the runtime's job entry
point (`python -m nebula_runtime.jobs STAGE`) with the compiled manifest, so a
laptop (`dvc repro`, `nebula run`) and a cluster (the Jobs, applied in order) run
the same code (`jobs.yaml` lists the Jobs in order). `params.yaml` holds each object's spec, so DVC reruns exactly the
stages whose part of nebula.yaml changed.
"""

from __future__ import annotations

import functools
from typing import Any

from nebula_compile import __version__
from nebula_compile.emit.bundle import Bundle
from nebula_compile.emit.context import EmitContext, cached, shared_key
from nebula_compile.emit.kube import RESTRICTED_CONTAINER, k8s, labels, pod_security, provenance
from nebula_compile.emit.yamlout import dump, dump_all
from nebula_compile.ir.graph import Resource, ResourceGraph

MANIFEST = "../../manifest.json"
IN_CLUSTER_MANIFEST = "/etc/nebula/manifest.json"


def _stage(
    command: list[str], deps: list[str], params: list[str], outs: list[str], metrics: list[str] | None = None
) -> dict[str, Any]:
    stage: dict[str, Any] = {"cmd": " ".join(command)}
    if deps:
        stage["deps"] = deps
    if params:
        stage["params"] = params
    if outs:
        stage["outs"] = outs
    if metrics:
        stage["metrics"] = [{m: {"cache": False}} for m in metrics]
    return stage


def _data_path(graph: ResourceGraph, project: str, name: str) -> str:
    if graph.get(f"dataset.{project}.{name}") is not None:
        return f"data/validated/{name}"
    return f"data/prepared/{name}"


def stages(graph: ResourceGraph, project: str) -> list[tuple[str, list[str], dict[str, Any]]]:
    """(stage name, job arguments, DVC stage) in an order that respects dependencies."""
    out: list[tuple[str, list[str], dict[str, Any]]] = []

    def job(*args: str) -> list[str]:
        return ["--project", project, *args]

    for dataset in graph.project_resources(project, "dataset"):
        name = dataset.name
        args = job("--dataset", name)
        out.append(
            (
                f"ingest-{name}",
                ["ingest", *args],
                _stage(["ingest", *args], [], [f"datasets.{name}"], [f"data/raw/{name}"]),
            )
        )
        out.append(
            (
                f"validate-{name}",
                ["validate", *args],
                _stage(
                    ["validate", *args],
                    [f"data/raw/{name}"],
                    [f"datasets.{name}.columns"],
                    [f"data/validated/{name}"],
                    [f"reports/{name}.json"],
                ),
            )
        )
    steps = {r.name: r for r in graph.project_resources(project, "preprocessing")}
    done: set[str] = set()

    def visit(step: Resource) -> None:
        if step.name in done:
            return
        done.add(step.name)
        source = step.spec["input"]
        if source in steps:
            visit(steps[source])
        args = job("--step", step.name)
        out.append(
            (
                f"preprocess-{step.name}",
                ["preprocess", *args],
                _stage(
                    ["preprocess", *args],
                    [_data_path(graph, project, source)],
                    [f"preprocessing.{step.name}"],
                    [f"data/prepared/{step.name}"],
                ),
            )
        )

    for step in steps.values():
        visit(step)
    for model in graph.project_resources(project, "model"):
        name = model.name
        args = job("--model", name)
        data = _data_path(graph, project, model.spec["dataset"])
        out.append(
            (
                f"train-{name}",
                ["train", *args],
                _stage(["train", *args], [data], [f"models.{name}"], [f"models/{name}"]),
            )
        )
        out.append(
            (
                f"evaluate-{name}",
                ["evaluate", *args],
                _stage(
                    ["evaluate", *args],
                    [f"models/{name}", data],
                    [f"models.{name}.metrics", f"models.{name}.gates"],
                    [],
                    [f"metrics/{name}.json"],
                ),
            )
        )
        out.append(
            (
                f"register-{name}",
                ["register", *args],
                _stage(
                    ["register", *args], [f"models/{name}", f"metrics/{name}.json"], [], [], [f"registry/{name}.json"]
                ),
            )
        )
    return out


def _params(graph: ResourceGraph, project: str) -> dict[str, Any]:
    return {
        "datasets": {r.name: dict(r.spec) for r in graph.project_resources(project, "dataset")},
        "preprocessing": {r.name: dict(r.spec) for r in graph.project_resources(project, "preprocessing")},
        "models": {r.name: dict(r.spec) for r in graph.project_resources(project, "model")},
    }


def jobs_image(graph: ResourceGraph) -> str:
    return f"{str(graph.platform['registry']).rstrip('/')}/nebula-jobs:{__version__}"


def _job(graph: ResourceGraph, project: Resource, order: int, stage: str, args: list[str]) -> dict[str, Any]:
    namespace = project.spec["namespace"]
    obj_labels = labels(graph.environment, project.name, component="training", stage=stage)
    return k8s(
        "batch/v1",
        "Job",
        f"{order:02d}-{stage}"[:63].rstrip("-"),
        namespace,
        obj_labels,
        provenance(project, graph.revision),
        spec={
            "backoffLimit": 1,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": obj_labels},
                "spec": {
                    "serviceAccountName": "nebula-workload",
                    "restartPolicy": "Never",
                    "securityContext": pod_security(),
                    "containers": [
                        {
                            "name": "stage",
                            "image": jobs_image(graph),
                            "command": [
                                "python",
                                "-m",
                                "nebula_runtime.jobs",
                                args[0],
                                "--manifest",
                                IN_CLUSTER_MANIFEST,
                                *args[1:],
                            ],
                            "securityContext": RESTRICTED_CONTAINER,
                            "volumeMounts": [
                                {"name": "tmp", "mountPath": "/tmp"},
                                {"name": "manifest", "mountPath": "/etc/nebula", "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "manifest", "configMap": {"name": "nebula-manifest"}},
                    ],
                },
            },
        },
    )


def _project_pipeline(graph: ResourceGraph, project: Resource) -> dict[str, str]:
    planned = stages(graph, project.name)
    if not planned:
        return {}
    folder = f"pipelines/{project.name}"
    dvc_stages = {}
    for name, _args, stage in planned:
        command, rest = stage["cmd"].split(" ", 1)
        dvc_stages[name] = {**stage, "cmd": f"python -m nebula_runtime.jobs {command} --manifest {MANIFEST} {rest}"}
    jobs = [_job(graph, project, order, name, args) for order, (name, args, _) in enumerate(planned, start=1)]
    return {
        f"{folder}/dvc.yaml": dump({"stages": dvc_stages}),
        f"{folder}/params.yaml": dump(_params(graph, project.name)),
        f"{folder}/jobs.yaml": dump_all(jobs),
    }


def emit_pipelines(graph: ResourceGraph, context: EmitContext) -> Bundle:
    files: dict[str, str] = {}
    shared = shared_key(graph)
    for project in graph.of_kind("project"):
        key = (
            "pipelines",
            shared,
            project.hash,
            *(
                r.hash
                for kind in ("dataset", "preprocessing", "model")
                for r in graph.project_resources(project.name, kind)
            ),
        )
        files.update(cached(context, key, functools.partial(_project_pipeline, graph, project)))
    return Bundle(files)
