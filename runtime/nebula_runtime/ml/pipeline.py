"""A project's pipeline, stage by stage, as `nebula run` and the compiled Jobs and DVC stages run it.

The stage order is the compiler's (nebula_compile.emit.pipelines.stages), so a
laptop and a cluster run the same steps in the same order. Each stage may leave a
small JSON record at the path DVC declares as its output, so `dvc repro` sees
what changed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nebula_runtime.ml import data as datastage
from nebula_runtime.ml import preprocess
from nebula_runtime.ml import train as trainstage
from nebula_runtime.ml.workspace import StageError, Workspace


def _record(workdir: Path | None, relative: str, value: Mapping[str, Any]) -> None:
    if workdir is None:
        return
    path = workdir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    temporary.replace(path)


def ingest(ws: Workspace, project: str, dataset: str, workdir: Path | None = None, file: Path | None = None) -> Any:
    version = datastage.ingest(ws, project, dataset, file)
    _record(workdir, f"data/raw/{dataset}", {"data_id": version.data_id, "number": version.number, "md5": version.md5})
    return version


def validate(ws: Workspace, project: str, dataset: str, workdir: Path | None = None) -> dict[str, Any]:
    try:
        report = datastage.validate(ws, project, dataset)
    except StageError:
        row = datastage.latest_version(ws, project, dataset)
        if row is not None:
            _record(workdir, f"reports/{dataset}.json", {"passed": False, **row.report})
        raise
    _record(workdir, f"reports/{dataset}.json", report)
    _record(workdir, f"data/validated/{dataset}", {"data_id": report["data_id"], "number": report["version"]})
    return report


def prepare(ws: Workspace, project: str, step: str, workdir: Path | None = None) -> dict[str, Any]:
    """The `preprocess` stage: the step's columns exist and its row work leaves rows; the column work is fitted
    with each model (it is part of the model), so serving applies it too."""
    steps = ws.lineage(project, step)
    frame, version, _kinds = datastage.training_frame(ws, project, step)
    try:
        preprocess.check_columns(steps, [str(c) for c in frame.columns])
        rows = len(preprocess.prepare_rows(frame, steps, None))
    except preprocess.PreprocessingError as err:
        raise StageError(str(err)) from None
    if rows == 0:
        raise StageError(f"preprocessing '{step}' leaves no rows of dataset version {version.number}")
    summary = {"step": step, "data_id": version.data_id, "rows_in": len(frame), "rows_out": rows}
    ws.say(f"preprocessing {step}: {len(frame):,} rows in, {rows:,} out")
    _record(workdir, f"data/prepared/{step}", summary)
    return summary


def train(ws: Workspace, project: str, model: str, workdir: Path | None = None, trigger: str = "manual") -> Any:
    outcome = trainstage.train(ws, project, model, trigger)
    _record(workdir, f"models/{model}", {"run_id": outcome.run_id, "artifact": outcome.artifact})
    return outcome


def evaluate(ws: Workspace, project: str, model: str, workdir: Path | None = None) -> Any:
    outcome = trainstage.outcome_of(ws, project, model)
    _record(workdir, f"metrics/{model}.json", {**outcome.metrics, "gates_passed": outcome.passed})
    if not outcome.passed:
        failed = [f"{g['gate']} (measured {g['measured']})" for g in outcome.gates if not g["passed"]]
        raise StageError(f"model '{model}' fails its gates: {'; '.join(failed)}; it is not registered")
    return outcome


def register(ws: Workspace, project: str, model: str, workdir: Path | None = None) -> int | None:
    outcome = trainstage.outcome_of(ws, project, model)
    version = trainstage.register(ws, project, model, outcome)
    _record(workdir, f"registry/{model}.json", {"version": version, "run_id": outcome.run_id})
    return version


@dataclass
class ModelResult:
    model: str
    run_id: str | None = None
    version: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class RunSummary:
    project: str
    datasets: dict[str, int] = field(default_factory=dict)
    models: list[ModelResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(m.error is None and m.version is not None for m in self.models)


def plan(ws: Workspace, project: str, models: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(stage, object) in order: the datasets and steps the chosen models need, then each model."""
    chosen = list(models) if models else ws.names("model", project)
    for name in chosen:
        ws.spec("model", project, name)
    datasets: list[str] = []
    steps: list[str] = []
    for name in chosen:
        source = str(ws.spec("model", project, name)["dataset"])
        root = ws.root_dataset(project, source)
        if root not in datasets:
            datasets.append(root)
        for step, _ in ws.lineage(project, source):
            if step not in steps:
                steps.append(step)
    if not chosen:
        datasets = ws.names("dataset", project)
    order: list[tuple[str, str]] = []
    for dataset in datasets:
        order += [("ingest", dataset), ("validate", dataset)]
    order += [("preprocess", step) for step in steps]
    order += [("train", name) for name in chosen]
    return order


def run_project(
    ws: Workspace,
    project: str,
    models: Sequence[str] | None = None,
    files: Mapping[str, Path] | None = None,
    workdir: Path | None = None,
    bar: Any = None,
    trigger: str = "manual",
) -> RunSummary:
    """Every stage a project's models need, in order. A model that fails stops only itself."""
    if project not in ws.projects():
        raise StageError(f"no project '{project}' in {ws.environment}; projects: {', '.join(ws.projects())}")
    files = dict(files or {})
    for dataset in files:
        ws.spec("dataset", project, dataset)
    summary = RunSummary(project)
    for stage, name in plan(ws, project, models):
        if bar is not None:
            bar.set_description(f"{stage} {name}")
        if stage == "ingest":
            version = ingest(ws, project, name, workdir, files.get(name))
            summary.datasets[name] = version.number
        elif stage == "validate":
            validate(ws, project, name, workdir)
        elif stage == "preprocess":
            prepare(ws, project, name, workdir)
        else:
            result = ModelResult(name)
            started = time.perf_counter()
            try:
                outcome = train(ws, project, name, workdir, trigger)
                result.run_id, result.metrics, result.gates = outcome.run_id, outcome.metrics, outcome.gates
                _record(workdir, f"metrics/{name}.json", {**outcome.metrics, "gates_passed": outcome.passed})
                result.version = register(ws, project, name, workdir)
                if result.version is None:
                    result.error = "gates failed"
            except StageError as err:
                result.error = str(err)
                ws.say(f"error: {err}")
            except Exception as err:  # a model that fails stops only itself; the rest still train
                result.error = f"{type(err).__name__}: {err}"
                ws.say(f"error: model '{name}' failed: {result.error}")
            result.seconds = time.perf_counter() - started
            summary.models.append(result)
        if bar is not None:
            bar.update(1)
    return summary
