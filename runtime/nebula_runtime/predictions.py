"""Predictions through the runtime: A/B routing, the prediction log, feedback, the A/B report and drift.

Routing: a request goes to a variant by the deployment's traffic weights. With a
caller-supplied `key` (a user or session id) the choice is a hash of the key, so
the same key always lands on the same variant while the weights stay the same;
without one it is random. The answer names the variant and the model version.

Every prediction is logged (inputs, output, latency) by a background writer in
batches, so the request does not wait for the database; feedback, reports and drift
flush it first. Outcomes sent to the feedback endpoint give live accuracy (or RMSE)
per variant, the A/B report with a significance test, and the
`nebula_live_accuracy` gauge. Drift compares each variant's live inputs over the
deployment's window with the reference profile saved at registration.
"""

from __future__ import annotations

import atexit
import hashlib
import math
import queue
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import and_, insert, or_, select

from nebula_compile.spec.types import duration_seconds
from nebula_compile.state.schema import Prediction
from nebula_runtime import models as m
from nebula_runtime import services
from nebula_runtime.auth import Principal, authorize
from nebula_runtime.errors import ApiError, not_found
from nebula_runtime.ops import REGISTRY
from nebula_runtime.services import Runtime

if TYPE_CHECKING:  # the ML stack (pandas, scikit-learn, scipy) loads with the first prediction, not with the API
    from nebula_runtime.ml.serving import Cache, Loaded

REQUESTS = Counter(
    "nebula_requests",
    "Predictions served, by deployment, variant and status",
    ("deployment", "variant", "status"),
    registry=REGISTRY,
)
DURATION = Histogram(
    "nebula_request_duration_seconds",
    "Prediction latency (model and routing, without the HTTP layer)",
    ("deployment", "variant"),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
ACCURACY = Gauge(
    "nebula_live_accuracy",
    "Accuracy of a variant's predictions against the outcomes sent as feedback",
    ("deployment", "variant"),
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
DRIFT = Gauge(
    "nebula_drift_score",
    "Input drift of a feature: the score of the deployment's drift method",
    ("deployment", "variant", "feature"),
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
DRIFT_WINDOW_ROWS = 20_000


# --- the prediction log -------------------------------------------------------------------------------


class Log:
    """Writes predictions in batches on a thread of its own; `flush()` waits until all written so far are stored."""

    def __init__(self, rt: Runtime, batch: int = 500, interval: float = 0.05) -> None:
        self.rt, self.batch, self.interval = rt, batch, interval
        self._queue: queue.Queue[dict[str, Any] | threading.Event] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="nebula-prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            self._queue.put(row)

    def flush(self, timeout: float = 10.0) -> None:
        if not self._thread.is_alive():
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            pending: list[dict[str, Any]] = []
            waiting: list[threading.Event] = []
            item = self._queue.get()
            deadline = time.monotonic() + self.interval
            while True:
                if isinstance(item, threading.Event):
                    waiting.append(item)
                    break
                pending.append(item)
                if len(pending) >= self.batch:
                    break
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if pending:
                self._store(pending)
            for event in waiting:
                event.set()

    def _store(self, rows: list[dict[str, Any]]) -> None:
        """One statement for the batch; if the database refuses it, row by row, so one bad row loses only itself."""
        import logging

        try:
            with self.rt.store.engine.begin() as connection:
                connection.execute(insert(Prediction), rows)
            return
        except Exception:
            if len(rows) == 1:
                logging.getLogger("nebula.runtime").exception("could not store prediction %s", rows[0]["id"])
                return
        for row in rows:  # the log must not take serving down; what fails reaches the server log
            self._store([row])


def _finite(value: Any) -> Any:
    """JSON without NaN or infinity (PostgreSQL's json refuses them): those become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


_logs: dict[int, Log] = {}
_caches: dict[int, Cache] = {}
_lock = threading.Lock()


def _log(rt: Runtime) -> Log:
    with _lock:
        found = _logs.get(id(rt))
        if found is None or found.rt is not rt:
            found = _logs[id(rt)] = Log(rt)
        return found


def _cache(rt: Runtime) -> Cache:
    from nebula_runtime.ml.artifacts import ArtifactStore
    from nebula_runtime.ml.serving import Cache

    with _lock:
        found = _caches.get(id(rt))
        if found is None or str(found.artifacts.location) != str(rt.settings.artifacts):
            found = _caches[id(rt)] = Cache(ArtifactStore(str(rt.settings.artifacts)))
        return found


# --- routing ------------------------------------------------------------------------------------------


ROUTING_SECONDS = 1.0
"""How long a resolved deployment (variants, aliases, versions) is reused: an alias move shows within a second."""
_routes: dict[tuple[int, str | None, str], tuple[float, list[m.Deployment]]] = {}
_folders: dict[tuple[int, str, str, int], str] = {}


def _deployments(rt: Runtime, name: str, project: str | None) -> list[m.Deployment]:
    """Every deployment called `name` (in `project`, or in any project), reused for ROUTING_SECONDS."""
    key = (id(rt), project, name)
    cached = _routes.get(key)
    if cached is not None and time.monotonic() - cached[0] < ROUTING_SECONDS:
        return cached[1]
    if project is not None:
        found = [services.get_deployment(rt, project, name)]
    else:
        found = [d for items in services.deployments_for(rt, _projects(rt)).values() for d in items if d.name == name]
    if len(_routes) > 1000:  # names asked for that do not exist must not grow it without bound
        _routes.clear()
    _routes[key] = (time.monotonic(), found)
    return found


def find_deployment(rt: Runtime, principal: Principal, name: str, project: str | None = None) -> m.Deployment:
    """A deployment by name: within a project, or across the projects the caller may see (names may repeat)."""
    candidates = _deployments(rt, name, project)
    if project is None:
        candidates = [
            d
            for d in candidates
            if principal.can("predictions:predict", d.project) or principal.can("deployments:read", d.project)
        ]
    if not candidates:
        raise not_found("deployment", name)
    if len(candidates) > 1:
        where = ", ".join(f"/v1/projects/{d.project}/deployments/{name}" for d in candidates)
        raise ApiError(409, f"several projects have a deployment '{name}'; use one of {where}")
    return candidates[0]


def _projects(rt: Runtime) -> list[str]:
    """Every project of the served environment (the caller's access is checked by whoever asks)."""
    rows = rt.reader.rows(
        "SELECT name FROM resources WHERE environment = ? AND kind = 'project' ORDER BY name", [rt.environment]
    )
    return [str(r[0]) for r in rows]


def _spec(rt: Runtime, kind: str, project: str, name: str) -> dict[str, Any]:
    """A reconciled resource's spec; {} when it is not there."""
    rows = rt.reader.rows(
        "SELECT spec FROM resources WHERE environment = ? AND kind = ? AND project = ? AND name = ?",
        [rt.environment, kind, project, name],
    )
    return dict(services._json(rows[0][0])) if rows else {}


def choose(deployment: m.Deployment, key: str | None) -> m.Variant:
    live = [v for v in deployment.variants if v.traffic > 0]
    if not live:
        raise ApiError(409, f"deployment '{deployment.name}' sends no traffic to any variant")
    total = sum(v.traffic for v in live)
    if key is None:
        point = secrets.randbelow(total * 100) / 100
    else:
        digest = hashlib.sha256(f"{deployment.project}/{deployment.name}/{key}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") % (total * 100) / 100
    for variant in live:
        if point < variant.traffic:
            return variant
        point -= variant.traffic
    return live[-1]


def _folder(rt: Runtime, project: str, model: str, version: int) -> str:
    key = (id(rt), project, model, version)
    if key in _folders:  # a registered version never changes
        return _folders[key]
    rows = rt.reader.rows(
        "SELECT artifact FROM model_versions WHERE environment = ? AND project = ? AND model = ? AND version = ?",
        [rt.environment, project, model, version],
    )
    if not rows:
        raise ApiError(409, f"model '{model}' version {version} is not registered in {rt.environment}")
    _folders[key] = str(rows[0][0])
    return _folders[key]


def loaded(rt: Runtime, project: str, variant: m.Variant) -> Loaded:
    if variant.resolved_version is None:
        raise ApiError(
            409,
            f"variant '{variant.name}' serves model '{variant.model}' {variant.version}, which resolves to no "
            f"registered version yet: train it with `nebula run {project} --model {variant.model}`",
        )
    folder = _folder(rt, project, variant.model, variant.resolved_version)
    return _cache(rt).get(project, variant.model, variant.resolved_version, folder)


def predict(
    rt: Runtime, principal: Principal, name: str, body: m.PredictRequest, project: str | None = None
) -> m.PredictResponse:
    deployment = find_deployment(rt, principal, name, project)
    authorize(principal, "predictions:predict", deployment.project)
    from nebula_runtime.ml.serving import InputError

    variant = choose(deployment, body.key)
    rows = body.rows()
    started = time.perf_counter()
    status = "200"
    try:
        model = loaded(rt, deployment.project, variant)
        outputs = model.predict(rows)
    except InputError as err:
        status = "422"
        raise ApiError(422, str(err), err.details) from None
    except ApiError as err:
        status = str(err.status)
        raise
    except Exception:
        status = "500"
        raise
    finally:
        REQUESTS.labels(deployment.name, variant.name, status).inc()
        if status == "200":
            DURATION.labels(deployment.name, variant.name).observe(time.perf_counter() - started)
    elapsed = (time.perf_counter() - started) * 1000
    at = datetime.now(UTC)
    ids = [f"pr_{secrets.token_hex(12)}" for _ in rows]
    _log(rt).add(
        [
            {
                "id": pid,
                "environment": rt.environment,
                "project": deployment.project,
                "deployment": deployment.name,
                "variant": variant.name,
                "model": variant.model,
                "version": model.version,
                "inputs": _finite(dict(row)),
                "output": _finite(out),
                "latency_ms": elapsed / len(rows),
                "at": at,
                "outcome": None,
                "outcome_at": None,
            }
            for pid, row, out in zip(ids, rows, outputs, strict=True)
        ]
    )
    return m.PredictResponse(
        project=deployment.project,
        deployment=deployment.name,
        variant=variant.name,
        model=variant.model,
        version=model.version,
        predictions=[m.PredictionOut(id=pid, **out) for pid, out in zip(ids, outputs, strict=True)],
    )


# --- feedback and the A/B report -----------------------------------------------------------------------


def feedback(
    rt: Runtime, principal: Principal, name: str, body: m.FeedbackRequest, project: str | None = None
) -> m.FeedbackResponse:
    deployment = find_deployment(rt, principal, name, project)
    authorize(principal, "predictions:predict", deployment.project)
    _log(rt).flush()
    outcomes = {item.prediction_id: item.outcome for item in body.items}
    at = datetime.now(UTC)
    recorded: list[str] = []
    with rt.store.sessions.begin() as session:
        rows = session.scalars(
            select(Prediction).where(
                Prediction.id.in_(list(outcomes)),
                Prediction.environment == rt.environment,
                Prediction.project == deployment.project,
                Prediction.deployment == deployment.name,
            )
        ).all()
        for row in rows:
            row.outcome, row.outcome_at = outcomes[row.id], at
            recorded.append(row.id)
    unknown = sorted(set(outcomes) - set(recorded))
    _refresh_accuracy(rt, deployment)
    return m.FeedbackResponse(recorded=len(recorded), unknown=unknown)


def _same(outcome: Any, prediction: Any) -> bool:
    if isinstance(prediction, bool) or isinstance(outcome, bool):
        return _truthy(outcome) == _truthy(prediction)
    if isinstance(prediction, int | float) and isinstance(outcome, int | float):
        return float(prediction) == float(outcome)
    return str(outcome) == str(prediction)


def _truthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        lowered = value.strip().lower()
        return True if lowered in ("true", "1", "yes") else False if lowered in ("false", "0", "no") else None
    return None


def _labelled(rt: Runtime, deployment: m.Deployment, since: datetime | None) -> list[tuple[str, Any, Any, float]]:
    """Each variant's predictions by the version it serves now: a report never mixes a variant's versions."""
    current = [(v.name, v.resolved_version) for v in deployment.variants if v.resolved_version is not None]
    if not current:
        return []
    with rt.store.sessions() as session:
        query = select(Prediction.variant, Prediction.output, Prediction.outcome, Prediction.latency_ms).where(
            Prediction.environment == rt.environment,
            Prediction.project == deployment.project,
            Prediction.deployment == deployment.name,
            or_(*(and_(Prediction.variant == name, Prediction.version == version) for name, version in current)),
        )
        if since is not None:
            query = query.where(Prediction.at >= since)
        return [(r[0], r[1], r[2], float(r[3])) for r in session.execute(query)]


ACCURACY_WINDOW = timedelta(hours=24)
"""Live accuracy is over the outcomes of the last day: current, and bounded in cost per feedback call."""


def _refresh_accuracy(rt: Runtime, deployment: m.Deployment) -> None:
    for row in report(rt, deployment, datetime.now(UTC) - ACCURACY_WINDOW).variants:
        if row.accuracy is not None:
            ACCURACY.labels(deployment.name, row.variant).set(row.accuracy)


def _task(rt: Runtime, project: str, model: str) -> str:
    return str(_spec(rt, "model", project, model).get("task") or "classification")


def report(rt: Runtime, deployment: m.Deployment, since: datetime | None) -> m.AbReport:
    _log(rt).flush()
    by_variant: dict[str, list[tuple[Any, Any, float]]] = {}
    for name, output, outcome, latency in _labelled(rt, deployment, since):
        by_variant.setdefault(name, []).append((output, outcome, latency))
    rows = []
    for variant in deployment.variants:
        items = by_variant.get(variant.name, [])
        latencies = sorted(x[2] for x in items)
        labelled = [(o.get("prediction") if isinstance(o, dict) else o, y) for o, y, _ in items if y is not None]
        accuracy = rmse = None
        correct: int | None = None
        if _task(rt, deployment.project, variant.model) == "regression":
            pairs = [(_number(p), _number(y)) for p, y in labelled]
            errors = [(p - y) ** 2 for p, y in pairs if p is not None and y is not None]
            rmse = math.sqrt(sum(errors) / len(errors)) if errors else None
        else:
            correct = sum(_same(y, p) for p, y in labelled)
            accuracy = correct / len(labelled) if labelled else None
        rows.append(
            m.VariantReport(
                variant=variant.name,
                model=variant.model,
                version=variant.resolved_version,
                traffic=variant.traffic,
                requests=len(items),
                labelled=len(labelled),
                correct=correct,
                accuracy=accuracy,
                rmse=rmse,
                latency_p50_ms=_quantile(latencies, 0.5),
                latency_p99_ms=_quantile(latencies, 0.99),
            )
        )
    return m.AbReport(
        project=deployment.project,
        deployment=deployment.name,
        since=since,
        variants=rows,
        tests=_tests(rows),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))
    return round(values[index], 4)


MIN_LABELLED = 30
"""Below this many outcomes per arm the normal approximation is not trusted: no test is called significant."""


def _tests(rows: Sequence[m.VariantReport]) -> list[m.AbTest]:
    """Each variant against the one with the most traffic: a two-sided two-proportion z-test on accuracy."""
    scored = [r for r in rows if r.accuracy is not None and r.labelled > 0]
    if len(scored) < 2:
        return []
    control = max(scored, key=lambda r: (r.traffic, r.labelled))
    out = []
    for row in scored:
        if row is control:
            continue
        n1, n2 = control.labelled, row.labelled
        x1, x2 = control.correct or 0, row.correct or 0
        pooled = (x1 + x2) / (n1 + n2)
        spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        difference = x2 / n2 - x1 / n1
        p_value = 1.0 if spread == 0 else math.erfc(abs(difference) / spread / math.sqrt(2))  # two-sided normal
        out.append(
            m.AbTest(
                control=control.variant,
                variant=row.variant,
                metric="accuracy",
                difference=round(difference, 6),
                p_value=round(p_value, 6),
                significant=p_value < 0.05 and min(n1, n2) >= MIN_LABELLED,
            )
        )
    return out


def ab_report(
    rt: Runtime, principal: Principal, name: str, query: m.ReportQuery, project: str | None = None
) -> m.AbReport:
    deployment = find_deployment(rt, principal, name, project)
    authorize(principal, "deployments:read", deployment.project)
    since = datetime.now(UTC) - timedelta(seconds=duration_seconds(query.window)) if query.window else None
    return report(rt, deployment, since)


# --- drift ----------------------------------------------------------------------------------------------


def drift(rt: Runtime, principal: Principal, name: str, project: str | None = None) -> m.DriftOut:
    deployment = find_deployment(rt, principal, name, project)
    authorize(principal, "deployments:read", deployment.project)
    return measure_drift(rt, deployment)


def _monitoring(rt: Runtime, deployment: m.Deployment) -> Mapping[str, Any]:
    spec = _spec(rt, "deployment", deployment.project, deployment.name)
    return (spec.get("monitoring") or {}).get("drift") or {}


def measure_drift(rt: Runtime, deployment: m.Deployment) -> m.DriftOut:
    from nebula_runtime.ml import drift as driftlib

    _log(rt).flush()
    settings = _monitoring(rt, deployment)
    method = str(settings.get("method", "psi"))
    threshold = float(settings.get("threshold", 0.2))
    window = str(settings.get("window", "1h"))
    min_samples = int(settings.get("min_samples", 100))
    since = datetime.now(UTC) - timedelta(seconds=duration_seconds(window))
    variants = []
    for variant in deployment.variants:
        if variant.resolved_version is None:
            continue
        with rt.store.sessions() as session:
            inputs = list(
                session.scalars(
                    select(Prediction.inputs)
                    .where(
                        Prediction.environment == rt.environment,
                        Prediction.project == deployment.project,
                        Prediction.deployment == deployment.name,
                        Prediction.variant == variant.name,
                        Prediction.version == variant.resolved_version,
                        Prediction.at >= since,
                    )
                    .order_by(Prediction.at.desc())
                    .limit(DRIFT_WINDOW_ROWS)
                )
            )
        model = loaded(rt, deployment.project, variant)
        if not model.profile:
            continue
        features = settings.get("features") or None
        columns: dict[str, list[Any]] = {name: [] for name in model.profile["features"]}
        for row in inputs:
            for column, values in columns.items():
                values.append(row.get(column))
        result = driftlib.compare(model.profile, columns, method, threshold, features, min_samples)
        for feature in result.features:
            if feature.score is not None:
                DRIFT.labels(deployment.name, variant.name, feature.name).set(feature.score)
        variants.append(
            m.VariantDrift(
                variant=variant.name, model=variant.model, version=variant.resolved_version, **result.as_dict()
            )
        )
    return m.DriftOut(
        project=deployment.project,
        deployment=deployment.name,
        window=window,
        drifted=any(v.drifted for v in variants),
        variants=variants,
    )


GAUGE_SECONDS = 60.0
_refreshed: dict[int, float] = {}


def refresh_gauges(rt: Runtime) -> None:
    """Before a scrape, at most once a minute: drift of every deployment with drift detection, so the compiled
    drift alert sees the runtime's predictions too (the model servers export their own)."""
    last = _refreshed.get(id(rt), 0.0)
    if time.monotonic() - last < GAUGE_SECONDS:
        return
    _refreshed[id(rt)] = time.monotonic()
    for deployments in services.deployments_for(rt, _projects(rt)).values():
        for deployment in deployments:
            if not _monitoring(rt, deployment):
                continue
            try:
                measure_drift(rt, deployment)
            except Exception:  # one deployment's trouble (no version yet, a missing artifact) must not stop a scrape
                import logging

                logging.getLogger("nebula.runtime").warning(
                    "drift of %s/%s not measured", deployment.project, deployment.name, exc_info=True
                )
