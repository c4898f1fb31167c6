"""Training, tuning, evaluation and registration of one model, tracked in the state store.

A run is recorded when it starts (status `running`), its per-epoch curves are
written while it trains (readable through `GET /v1/projects/{p}/runs/{id}`), and
it ends `succeeded` or `failed` with params, metrics, the dataset version, the
manifest revision and timing. Its artifacts (the fitted pipeline, the reference
profile for drift, the evaluation) go to the artifact store under
`runs/<environment>/<project>/<model>/<run id>/`. A version is registered only when every gate
passes.
"""

from __future__ import annotations

import io
import json
import math
import time
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import joblib
import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from nebula_compile.spec.catalog import SUPERVISED
from nebula_compile.state.schema import AuditEntry, ModelAlias, ModelVersion, RunMetric, TrainingRun
from nebula_runtime.ml import data as datastage
from nebula_runtime.ml import estimators as est
from nebula_runtime.ml import preprocess, registry
from nebula_runtime.ml.drift import profile as drift_profile
from nebula_runtime.ml.workspace import StageError, Workspace

ARTIFACT = "model.joblib"
PROFILE_ROWS = 5_000
_BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nebula-profile")


def _now() -> datetime:
    return datetime.now(UTC)


def _id(prefix: str) -> str:
    import secrets

    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class Outcome:
    """What a training run produced, as the evaluate and register stages read it back."""

    run_id: str
    model: str
    metrics: dict[str, float]
    params: dict[str, Any]
    gates: list[dict[str, Any]]
    artifact: str
    dataset_version_id: str
    seconds: float
    curves: dict[str, list[float]] = field(default_factory=dict)
    tuning: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return all(g["passed"] for g in self.gates)


class Curves:
    """Writes per-epoch points to the state store as they come, so the API shows a run while it trains."""

    def __init__(self, ws: Workspace, run_id: str) -> None:
        self.ws, self.run_id = ws, run_id
        self.history: dict[str, list[float]] = {}

    def __call__(self, epoch: int, values: Mapping[str, float]) -> None:
        """The torch nets' per-epoch report (epochs count from 0 there; steps count from 1 here)."""
        epoch += 1
        at = _now()
        with self.ws.store.sessions.begin() as session:
            for name, value in values.items():
                if value is None or not math.isfinite(float(value)):
                    continue
                session.merge(RunMetric(run_id=self.run_id, name=name, step=epoch, value=float(value), at=at))
                self.history.setdefault(name, []).append(float(value))
        shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if v is not None)
        self.ws.say(f"  epoch {epoch}: {shown}")

    def add(self, name: str, values: Sequence[float]) -> None:
        at = _now()
        with self.ws.store.sessions.begin() as session:
            for step, value in enumerate(values, start=1):
                if math.isfinite(float(value)):
                    session.merge(RunMetric(run_id=self.run_id, name=name, step=step, value=float(value), at=at))
        self.history[name] = [float(v) for v in values]


def _target(frame: pd.DataFrame, target: str, kind: str | None, task: str) -> pd.Series:
    y = frame[target]
    if task != "classification":
        return pd.to_numeric(y, errors="coerce").astype("float64")
    if kind == "boolean":
        return y.astype(bool)
    if pd.api.types.is_float_dtype(y.dtype) and bool((y.dropna() % 1 == 0).all()):
        return y.astype("int64")
    return y


def _split(
    X: pd.DataFrame, y: pd.Series | None, split: Mapping[str, Any], seed: int, classify: bool
) -> tuple[Any, ...]:
    test = float(split.get("test", 0.2))
    validation = float(split.get("validation", 0.0))

    def stratify(labels: pd.Series | None) -> pd.Series | None:
        if labels is None or not classify or not split.get("stratify", True):
            return None
        counts = labels.value_counts()
        return labels if len(counts) > 1 and int(counts.min()) >= 2 else None

    if y is None:
        X_train, X_test = train_test_split(X, test_size=test, random_state=seed)
        return X_train, X_test, None, None, None, None
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test, random_state=seed, stratify=stratify(y))
    X_val = y_val = None
    if validation > 0:
        share = validation / (1 - test)
        X_train, X_val, y_train, y_val = train_test_split(
            X_train, y_train, test_size=share, random_state=seed, stratify=stratify(y_train)
        )
    return X_train, X_test, y_train, y_test, X_val, y_val


def _grid(space: Mapping[str, Any]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for name, dimension in space.items():
        if isinstance(dimension, list):
            grid[name] = list(dimension)
            continue
        low, high, step = float(dimension["low"]), float(dimension["high"]), dimension.get("step")
        if step:
            values = list(np.arange(low, high + float(step) / 2, float(step)))
        elif dimension.get("log"):
            values = list(np.geomspace(low, high, 5))
        else:
            values = list(np.linspace(low, high, 5))
        grid[name] = [round(float(v)) if _ints(name, dimension) else float(v) for v in values]
    return grid


INTEGER_PARAMS = frozenset(
    {
        "n_estimators",
        "max_depth",
        "min_samples_split",
        "min_samples_leaf",
        "max_iter",
        "n_clusters",
        "degree",
        "epochs",
        "batch_size",
        "n_components",
        "n_init",
        "min_samples",
        "patience",
        "kernel_size",
        "n_iter_no_change",
        "max_leaf_nodes",
    }
)
"""Parameters that take whole numbers: a range over them is searched over integers."""


def _ints(name: str, dimension: Mapping[str, Any]) -> bool:
    step = dimension.get("step")
    return name in INTEGER_PARAMS or (
        step is not None and float(step).is_integer() and float(dimension["low"]).is_integer()
    )


def _suggest(trial: Any, name: str, dimension: Any) -> Any:
    if isinstance(dimension, list):
        return trial.suggest_categorical(name, dimension)
    low, high, step, log = dimension["low"], dimension["high"], dimension.get("step"), bool(dimension.get("log"))
    if _ints(name, dimension):
        return trial.suggest_int(name, int(low), int(high), step=int(step or 1), log=log and step is None)
    return trial.suggest_float(name, float(low), float(high), step=None if log else step, log=log)


def tune(
    ws: Workspace,
    spec: Mapping[str, Any],
    steps: Sequence[tuple[str, Mapping[str, Any]]],
    X: pd.DataFrame,
    y: pd.Series,
    classes: Sequence[Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Search the space with cross-validation on the training split; the best params and a summary."""
    import optuna

    tuning = spec["tuning"]
    metric = tuning.get("metric") or (spec.get("metrics") or ["accuracy"])[0]
    direction: Literal["minimize", "maximize"] = est.better(metric, tuning.get("direction"))
    scorer = est.scoring(metric, classes)
    seed = int(spec.get("seed", 42))
    space = dict(tuning["space"])
    strategy = tuning.get("strategy", "bayesian")
    if strategy == "grid":
        grid = _grid(space)
        sampler: Any = optuna.samplers.GridSampler(grid, seed=seed)
        budget = min(int(tuning.get("trials", 20)), math.prod(len(v) for v in grid.values()))
    elif strategy == "random":
        sampler, budget = optuna.samplers.RandomSampler(seed=seed), int(tuning.get("trials", 20))
    else:
        sampler, budget = optuna.samplers.TPESampler(seed=seed), int(tuning.get("trials", 20))
    folds = int(tuning.get("cv", 5))
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed)
        if spec.get("task") == "classification"
        else KFold(folds, shuffle=True, random_state=seed)
    )
    # CV scores are on the scorer's scale: negated losses, so "maximize" always applies to them
    sign = -1.0 if est.negated(metric) else 1.0

    def objective(trial: Any) -> float:
        if strategy == "grid":
            chosen = {name: trial.suggest_categorical(name, values) for name, values in grid.items()}
        else:
            chosen = {name: _suggest(trial, name, dim) for name, dim in space.items()}
        pipeline = Pipeline(
            [
                ("prep", preprocess.build(steps, spec.get("features"), None)),
                ("model", est.estimator(spec, chosen)),
            ]
        )
        scores = cross_val_score(pipeline, X, y, scoring=scorer, cv=splitter, error_score="raise")
        value = float(np.mean(scores)) * sign
        ws.say(f"  trial {trial.number + 1}/{budget}: {metric} {value:.4f} with {chosen}")
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=sampler)
    timeout = tuning.get("timeout")
    from nebula_compile.spec.types import duration_seconds

    study.optimize(
        objective, n_trials=budget, timeout=duration_seconds(timeout) if timeout else None, catch=(ValueError,)
    )
    finished = [t for t in study.trials if t.value is not None]
    if not finished:
        raise StageError(f"tuning of '{spec.get('algorithm')}' found no trial that could be scored")
    best = study.best_trial
    summary = {
        "strategy": strategy,
        "metric": metric,
        "direction": direction,
        "cv": folds,
        "trials": len(study.trials),
        "best_value": float(best.value) if best.value is not None else None,
        "best_params": {k: est.plain(v) for k, v in best.params.items()},
    }
    return summary["best_params"], summary


def _start(ws: Workspace, project: str, model: str, params: Mapping[str, Any], version_id: str, trigger: str) -> str:
    run_id = _id("run")
    with ws.store.sessions.begin() as session:
        session.add(
            TrainingRun(
                id=run_id,
                environment=ws.environment,
                project=project,
                model=model,
                status="running",
                params={**dict(params), "trigger": trigger},
                metrics={},
                dataset_version_id=version_id,
                commit=ws.revision,
                error=None,
                started_at=_now(),
                finished_at=None,
                created_by=ws.actor,
            )
        )
    return run_id


def _finish(ws: Workspace, run_id: str, status: str, **values: Any) -> None:
    with ws.store.sessions.begin() as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None, "the run was recorded when it started"
        run.status = status
        run.finished_at = _now()
        for key, value in values.items():
            setattr(run, key, value)


def _classes(model: Any) -> list[Any] | None:
    found = getattr(model, "classes_", None)
    return None if found is None else [est.plain(c) for c in found]


def _fit(
    spec: Mapping[str, Any],
    prep: Pipeline,
    model: Any,
    X_train: pd.DataFrame,
    y_train: pd.Series | None,
    X_val: pd.DataFrame | None,
    y_val: pd.Series | None,
    curves: Curves,
) -> Pipeline:
    """Fit preprocessing then the estimator (the torch nets see validation data and report each epoch)."""
    Xt = prep.fit_transform(X_train, y_train)
    if spec.get("framework") == "torch" and spec["algorithm"] == "neural_network":
        model.set_params(callbacks=curves)
        fit_args: dict[str, Any] = {}
        if X_val is not None:
            fit_args = {"X_val": prep.transform(X_val), "y_val": np.asarray(y_val)}
        model.fit(Xt, np.asarray(y_train), **fit_args)
        model.set_params(callbacks=None)
    elif y_train is None:
        model.fit(Xt)
    else:
        model.fit(Xt, np.asarray(y_train))
    return Pipeline([("prep", prep), ("model", model)])


def _staged_curves(spec: Mapping[str, Any], pipeline: Pipeline, X_val: Any, y_val: Any, curves: Curves) -> None:
    """Per-stage curves of scikit-learn's iterative models, measured after the fit."""
    model = pipeline.named_steps["model"]
    if hasattr(model, "train_score_"):
        curves.add("loss", [float(v) for v in model.train_score_])
        if X_val is not None and hasattr(model, "staged_predict"):
            Xv = pipeline.named_steps["prep"].transform(X_val)
            if spec.get("task") == "classification":
                accuracy = [float(np.mean(p == np.asarray(y_val))) for p in model.staged_predict(Xv)]
                curves.add("val_accuracy", accuracy)
            else:
                rmse = [float(np.sqrt(np.mean((p - np.asarray(y_val)) ** 2))) for p in model.staged_predict(Xv)]
                curves.add("val_rmse", rmse)
    elif hasattr(model, "loss_curve_"):
        curves.add("loss", [float(v) for v in model.loss_curve_])


def evaluate_model(
    spec: Mapping[str, Any], pipeline: Pipeline, X_test: pd.DataFrame, y_test: pd.Series | None
) -> tuple[dict[str, float], dict[str, Any]]:
    task = spec.get("task") or "classification"
    wanted = list(spec.get("metrics") or [])
    model = pipeline.named_steps["model"]
    extra: dict[str, Any] = {}
    if task == "classification":
        assert y_test is not None
        classes = list(model.classes_)
        Xt = pipeline.named_steps["prep"].transform(X_test)  # once, for both answers
        proba = model.predict_proba(Xt) if hasattr(model, "predict_proba") else None
        predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)] if proba is not None else model.predict(Xt)
        if proba is not None and np.asarray(classes).dtype != object:
            predicted = predicted.astype(np.asarray(classes).dtype)
        metrics = est.classification_metrics(np.asarray(y_test), predicted, proba, classes, wanted)
        extra["confusion_matrix"] = est.confusion(np.asarray(y_test), predicted, classes)
    elif task == "regression":
        assert y_test is not None
        metrics = est.regression_metrics(np.asarray(y_test, dtype="float64"), pipeline.predict(X_test), wanted)
    elif task == "clustering":
        Xt = pipeline.named_steps["prep"].transform(X_test)
        metrics = est.clustering_metrics(Xt, np.asarray(model.predict(Xt)), wanted)
    else:
        Xt = pipeline.named_steps["prep"].transform(X_test)
        if spec["algorithm"] == "tsne":  # it embeds only its training rows: judged there, as it was fitted
            metrics = {"trustworthiness": model.trustworthiness_} if "trustworthiness" in wanted else {}
        else:
            metrics = est.reduction_metrics(model, Xt, model.transform(Xt), wanted)
    return metrics, extra


def _bundle(pipeline: Pipeline, meta: Mapping[str, Any]) -> bytes:
    out = io.BytesIO()
    joblib.dump({"pipeline": pipeline, "meta": dict(meta)}, out, compress=1)
    return out.getvalue()


def train(ws: Workspace, project: str, name: str, trigger: str = "manual") -> Outcome:
    """The `train` stage, evaluation included: a tracked run and its artifacts; gates are judged, not enforced."""
    spec = ws.spec("model", project, name)
    task = spec.get("task") or "classification"
    target = spec.get("target")
    steps = ws.lineage(project, str(spec["dataset"]))
    frame, version, kinds = datastage.training_frame(ws, project, str(spec["dataset"]))
    try:
        preprocess.check_columns(steps, [str(c) for c in frame.columns])
    except preprocess.PreprocessingError as err:
        raise StageError(str(err)) from None
    frame = preprocess.prepare_rows(frame, steps, target if task in SUPERVISED else None)
    if task in SUPERVISED:
        if not target or target not in frame.columns:
            raise StageError(f"model '{name}': the data has no target column '{target}'")
        y: pd.Series | None = _target(frame, target, kinds.get(target), task)
        X = frame
        X.pop(target)  # the frame is this run's own: taking the column out spares a copy of every other
    else:
        y, X = None, frame
    if len(X) < 10:
        raise StageError(f"model '{name}': {len(X)} rows after preprocessing; at least 10 are needed to train")
    seed = int(spec.get("seed", 42))
    params = dict(spec.get("params") or {})
    run_id = _start(ws, project, name, {**params, "seed": seed}, version.data_id, trigger)
    started = time.perf_counter()
    curves = Curves(ws, run_id)
    try:
        X_train, X_test, y_train, y_test, X_val, y_val = _split(
            X, y, spec.get("split") or {}, seed, task == "classification"
        )
        dropped = {c for _, step in steps for c in (step.get("clean") or {}).get("drop_columns") or []}
        features = [str(c) for c in X.columns if str(c) not in dropped]  # what a caller sends to predict
        inputs = {c: kinds.get(c, "float") for c in features}
        # the drift reference: at most PROFILE_ROWS training inputs (ample for quantiles; the split shuffled the
        # rows with the seed, so the first ones are a random sample), built on a thread while the model fits
        sample = X_train.iloc[:PROFILE_ROWS]
        profiling = _BACKGROUND.submit(
            drift_profile, {c: sample[c].to_numpy() for c in features}, kinds=inputs, seed=seed
        )
        tuning = None
        tuned: dict[str, Any] = {}
        if spec.get("tuning") and y_train is not None:
            classes = sorted(pd.Series(y_train).unique().tolist()) if task == "classification" else None
            ws.say(
                f"{name}: tuning ({spec['tuning'].get('strategy', 'bayesian')}, {spec['tuning'].get('trials', 20)} trials)"
            )
            tuned, tuning = tune(ws, spec, steps, X_train, y_train, classes)
        ws.say(f"{name}: training {spec['algorithm']} on {len(X_train):,} rows")
        prep = preprocess.build(steps, spec.get("features"), None)
        model = est.estimator(spec, tuned)
        pipeline = _fit(spec, prep, model, X_train, y_train, X_val, y_val, curves)
        _staged_curves(spec, pipeline, X_val, y_val, curves)
        metrics, extra = evaluate_model(spec, pipeline, X_test, y_test)
        gates = est.check_gates(spec.get("gates") or [], metrics)
        seconds = time.perf_counter() - started
        meta = {
            "project": project,
            "model": name,
            "run_id": run_id,
            "task": task,
            "algorithm": spec["algorithm"],
            "framework": spec.get("framework"),
            "target": target,
            "inputs": inputs,
            "classes": _classes(pipeline.named_steps["model"]),
            "metrics": metrics,
            "params": {**params, **tuned, "seed": seed},
            "dataset_version_id": version.data_id,
            "revision": ws.revision,
            "trained_at": _now().isoformat(),
        }
        folder = f"runs/{ws.environment}/{project}/{name}/{run_id}"
        evaluation = {"metrics": metrics, "gates": gates, **extra, "tuning": tuning}
        ws.artifacts.write_many(
            {
                f"{folder}/{ARTIFACT}": _bundle(pipeline, meta),
                f"{folder}/profile.json": json.dumps(profiling.result(), sort_keys=True).encode(),
                f"{folder}/evaluation.json": json.dumps(evaluation, sort_keys=True, default=str).encode(),
            }
        )
        outcome = Outcome(
            run_id, name, metrics, meta["params"], gates, folder, version.data_id, seconds, curves.history, tuning
        )
        _finish(
            ws,
            run_id,
            "succeeded",
            metrics={**metrics, "seconds": round(seconds, 3)},
            params={**meta["params"], "trigger": trigger, "artifact": folder, "gates": gates},
        )
    except Exception as err:
        _finish(ws, run_id, "failed", error=f"{type(err).__name__}: {err}"[:2000])
        if isinstance(err, StageError | est.ModelError | preprocess.PreprocessingError):
            raise StageError(f"model '{name}': {err}") from None
        ws.say(traceback.format_exc(limit=3))
        raise
    for gate in gates:
        ws.say(f"{name}: gate {gate['gate']}: {'pass' if gate['passed'] else 'FAIL'} (measured {gate['measured']})")
    return outcome


def outcome_of(ws: Workspace, project: str, name: str, run_id: str | None = None) -> Outcome:
    """The latest succeeded run of a model (or the given one), as the evaluate and register stages need it."""
    with ws.store.sessions() as session:
        query = select(TrainingRun).where(
            TrainingRun.environment == ws.environment,
            TrainingRun.project == project,
            TrainingRun.model == name,
            TrainingRun.status == "succeeded",
        )
        if run_id:
            query = query.where(TrainingRun.id == run_id)
        run = session.scalar(query.order_by(TrainingRun.started_at.desc()).limit(1))
    if run is None:
        raise StageError(f"model '{name}' has no finished training run: run the train stage first")
    params = dict(run.params)
    gates = params.pop("gates", [])
    artifact = params.pop("artifact", "")
    params.pop("trigger", None)
    metrics = {k: v for k, v in run.metrics.items() if k != "seconds"}
    return Outcome(
        run.id,
        name,
        metrics,
        params,
        gates,
        artifact,
        run.dataset_version_id or "",
        float(run.metrics.get("seconds", 0)),
    )


def register(ws: Workspace, project: str, name: str, outcome: Outcome) -> int | None:
    """Register the run's model as the next version when every gate passed; move the aliases the config allows.

    Always: `latest`. An alias a deployment of this environment serves (`champion`, `challenger`, ...) is set
    when it does not exist yet, so a new deployment can start. It moves to a newer version only outside
    production environments; in production a person moves it (the API's alias PUT, or a version pinned in
    nebula.yaml), so production never switches on its own.
    """
    if not outcome.passed:
        failed = [g["gate"] + f" (measured {g['measured']})" for g in outcome.gates if not g["passed"]]
        ws.say(f"{name}: not registered; gates failed: {'; '.join(failed)}")
        return None
    production = bool((ws.manifest.get("settings") or {}).get("production"))
    served = _served_aliases(ws, project, name)
    for attempt in range(50):
        try:
            number, moved = _record_version(ws, project, name, outcome, served, production)
            break
        except IntegrityError:  # another run took this number at the same moment: take the next
            if attempt == 49:
                raise StageError(f"model '{name}': too many concurrent registrations; run register again") from None
            time.sleep(0.01 * (1 + attempt % 5))
    registry.write_version(ws.artifacts, ws.environment, project, name, number, outcome.artifact)
    with ws.store.sessions() as session:  # mirror what the store holds now, not what this run wished
        current = {
            a.alias: a.version
            for a in session.scalars(
                select(ModelAlias).where(
                    ModelAlias.environment == ws.environment, ModelAlias.project == project, ModelAlias.model == name
                )
            )
        }
    for alias in moved:
        registry.write_alias(ws.artifacts, ws.environment, project, name, alias, current.get(alias, number))
    ws.say(f"{name}: registered version {number} ({', '.join(moved)})")
    return number


def _record_version(
    ws: Workspace, project: str, name: str, outcome: Outcome, served: list[str], production: bool
) -> tuple[int, list[str]]:
    """One transaction: the next version number, the version row, the aliases, the audit entry."""
    at = _now()
    with ws.store.sessions.begin() as session:
        existing = session.scalar(
            select(ModelVersion).where(
                ModelVersion.environment == ws.environment,
                ModelVersion.project == project,
                ModelVersion.model == name,
                ModelVersion.run_id == outcome.run_id,
            )
        )
        if existing is not None:
            return existing.version, []
        top = session.scalar(
            select(func.max(ModelVersion.version)).where(
                ModelVersion.environment == ws.environment,
                ModelVersion.project == project,
                ModelVersion.model == name,
            )
        )
        number = int(top or 0) + 1
        session.add(
            ModelVersion(
                id=_id("mv"),
                environment=ws.environment,
                project=project,
                model=name,
                version=number,
                run_id=outcome.run_id,
                metrics=outcome.metrics,
                params=outcome.params,
                artifact=outcome.artifact,
                dataset_version_id=outcome.dataset_version_id or None,
                commit=ws.revision,
                created_at=at,
            )
        )
        moved = []
        for alias in ["latest", *served]:
            row = session.get(ModelAlias, (ws.environment, project, name, alias))
            if row is None:
                session.add(
                    ModelAlias(
                        environment=ws.environment,
                        project=project,
                        model=name,
                        alias=alias,
                        version=number,
                        updated_at=at,
                        updated_by=ws.actor,
                    )
                )
                moved.append(alias)
            elif alias == "latest" or not production:
                row.version, row.updated_at, row.updated_by = number, at, ws.actor
                moved.append(alias)
        session.add(
            AuditEntry(
                at=at,
                actor=ws.actor,
                action="model.register",
                environment=ws.environment,
                details={"project": project, "model": name, "version": number, "run": outcome.run_id, "aliases": moved},
            )
        )
    return number, moved


def _served_aliases(ws: Workspace, project: str, name: str) -> list[str]:
    aliases: set[str] = set()
    for deployment in ws.names("deployment", project):
        for variant in (ws.spec("deployment", project, deployment).get("variants") or {}).values():
            if variant.get("model") == name and isinstance(variant.get("version"), str):
                aliases.add(str(variant["version"]))
    aliases.discard("latest")
    return sorted(aliases)
