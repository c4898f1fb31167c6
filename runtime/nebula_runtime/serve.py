"""The model server: `python -m nebula_runtime.serve --config /app/nebula-model.json`.

What the compiled Deployments run, one variant per Deployment. It loads the model
version the variant serves from the artifact store (a version number, or an alias
resolved through the registry's pointer files; an alias is looked up again every
minute, so a promotion reaches running servers without a rollout), and serves:

- `POST /predict` (`{"inputs": [...]}` or `{"input": {...}}`) with the same
  answers as the runtime's predict endpoint;
- `GET /healthz`, `GET /readyz` (ready once the model is loaded), `GET /metadata`;
- `GET /metrics`: `nebula_requests_total{deployment,variant,status}`,
  `nebula_request_duration_seconds`, `nebula_drift_score{deployment,variant,feature}`
  and the process's CPU and memory (`process_cpu_seconds_total`, `process_resident_memory_bytes`)
  over the recent inputs (the deployment's drift window), which the compiled alert
  rules read.

Settings come from the environment the compiled Deployment sets: NEBULA_PROJECT,
NEBULA_DEPLOYMENT, NEBULA_VARIANT, NEBULA_MODEL, NEBULA_MODEL_VERSION,
NEBULA_ARTIFACTS, NEBULA_ENVIRONMENT; the serving config (monitoring) is read from
/etc/nebula/serving/serving.json or --serving.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from nebula_compile.spec.types import duration_seconds
from nebula_runtime.ml import drift as driftlib
from nebula_runtime.ml.artifacts import ArtifactError, ArtifactStore
from nebula_runtime.ml.registry import resolve
from nebula_runtime.ml.serving import BodyError, InputError, Loaded, load, rows_of

DRIFT_EVERY_SECONDS = 30.0
RELOAD_SECONDS = 60.0


class ServerError(RuntimeError):
    """A model server that cannot start as configured; the message says what is missing."""


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body, default=str), status=status, mimetype="application/json")


def _error(status: int, code: str, message: str, details: Any = None) -> Response:
    return _json(status, {"error": {"code": code, "message": message, "details": details}})


def create_server(
    model: Loaded,
    deployment: str,
    variant: str,
    monitoring: Mapping[str, Any],
    reload: Callable[[Loaded], Loaded] | None = None,
) -> Flask:
    """A Flask app serving one loaded model version; with `reload`, the version an alias names now, checked every
    RELOAD_SECONDS (the drift window starts over when the version changes)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes
    requests_total = Counter(
        "nebula_requests", "Predictions by status", ("deployment", "variant", "status"), registry=registry
    )
    duration = Histogram(
        "nebula_request_duration_seconds",
        "Prediction latency",
        ("deployment", "variant"),
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        registry=registry,
    )
    drift_score = Gauge(
        "nebula_drift_score", "Input drift per feature", ("deployment", "variant", "feature"), registry=registry
    )
    settings = dict(monitoring.get("drift") or {})
    window = driftlib.Window(
        maxlen=20_000,
        window_seconds=duration_seconds(str(settings.get("window", "1h"))),
        features=list((model.profile or {}).get("features") or {}),
    )
    last_drift = [0.0]
    lock = threading.Lock()
    state: dict[str, Any] = {"model": model, "checked": time.monotonic()}

    def model_now() -> Loaded:
        served: Loaded = state["model"]
        if reload is None:
            return served
        with lock:
            if time.monotonic() - state["checked"] < RELOAD_SECONDS:
                return served
            state["checked"] = time.monotonic()
        try:
            fresh = reload(served)
        except Exception:  # the store is unreachable for a moment: keep serving what is loaded
            logging.getLogger("nebula.serve").warning("could not look up the served version", exc_info=True)
            return served
        if fresh.version != served.version:
            with lock:
                state["model"] = fresh
                window.clear()
        return fresh

    def refresh_drift(force: bool = False) -> dict[str, Any] | None:
        model = model_now()
        if not model.profile or not settings:
            return None
        with lock:
            if not force and time.monotonic() - last_drift[0] < DRIFT_EVERY_SECONDS:
                return None
            last_drift[0] = time.monotonic()
        report = driftlib.compare(
            model.profile,
            window.columns(),
            str(settings.get("method", "psi")),
            float(settings.get("threshold", 0.2)),
            settings.get("features") or None,
            int(settings.get("min_samples", 100)),
        )
        for feature in report.features:
            if feature.score is not None:
                drift_score.labels(deployment, variant, feature.name).set(feature.score)
        return report.as_dict()

    app = Flask("nebula_model_server")

    @app.get("/healthz")
    def healthz() -> Response:
        return _json(200, {"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        model = model_now()
        return _json(200, {"status": "ready", "model": model.model, "version": model.version})

    @app.get("/metadata")
    def metadata() -> Response:
        model = model_now()
        return _json(
            200,
            {
                "project": model.project,
                "deployment": deployment,
                "variant": variant,
                "model": model.model,
                "version": model.version,
                "task": model.task,
                "inputs": model.inputs,
                "classes": model.meta.get("classes"),
                "metrics": model.meta.get("metrics"),
            },
        )

    @app.post("/predict")
    def predict() -> Response:
        started = time.perf_counter()
        try:
            rows = rows_of(request.get_json(silent=True))
        except BodyError as err:
            requests_total.labels(deployment, variant, "400").inc()
            return _error(400, "bad_request", str(err))
        current = model_now()
        try:
            outputs = current.predict(rows)
        except InputError as err:
            requests_total.labels(deployment, variant, "422").inc()
            return _error(422, "invalid_input", str(err), err.details)
        except Exception:  # counted, so the compiled error-rate alerts see it; Flask answers 500
            requests_total.labels(deployment, variant, "500").inc()
            raise
        window.extend(rows)
        requests_total.labels(deployment, variant, "200").inc()
        duration.labels(deployment, variant).observe(time.perf_counter() - started)
        return _json(
            200, {"model": current.model, "version": current.version, "variant": variant, "predictions": outputs}
        )

    @app.get("/drift")
    def drift() -> Response:
        report = refresh_drift(force=True)
        if report is None:
            return _error(404, "not_found", "drift detection is not configured for this deployment")
        return _json(200, report)

    @app.get("/metrics")
    def metrics() -> Response:
        refresh_drift()
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    return app


def _settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if args.config:
        try:
            config = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ServerError(f"cannot read the serving config {args.config}: {err}") from None
    serving: dict[str, Any] = {}
    path = Path(args.serving or "/etc/nebula/serving/serving.json")
    if path.exists():
        serving = json.loads(path.read_text(encoding="utf-8"))
    project = environ.get("NEBULA_PROJECT") or serving.get("project") or config.get("project")
    model = environ.get("NEBULA_MODEL") or serving.get("model") or config.get("model")
    version = environ.get("NEBULA_MODEL_VERSION") or str(serving.get("version") or "champion")
    if not project or not model:
        raise ServerError("which model? set NEBULA_PROJECT and NEBULA_MODEL, or pass --config with project and model")
    return {
        "project": str(project),
        "model": str(model),
        "version": version,
        "deployment": environ.get("NEBULA_DEPLOYMENT") or serving.get("deployment") or str(model),
        "variant": environ.get("NEBULA_VARIANT") or serving.get("variant") or "default",
        "environment": environ.get("NEBULA_ENVIRONMENT") or "dev",
        "artifacts": environ.get("NEBULA_ARTIFACTS") or config.get("artifacts") or ".nebula/artifacts",
        "monitoring": serving.get("monitoring") or {},
        "port": int(args.port or config.get("port") or 8080),
    }


def build(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Flask, dict[str, Any]]:
    found = _settings(args, environ)
    artifacts = ArtifactStore(found["artifacts"])
    try:
        number, folder = resolve(artifacts, found["environment"], found["project"], found["model"], found["version"])
        model = load(artifacts, folder, found["project"], found["model"], number)
    except ArtifactError as err:
        raise ServerError(str(err)) from None

    def reload(current: Loaded) -> Loaded:
        number, folder = resolve(artifacts, found["environment"], found["project"], found["model"], found["version"])
        return (
            current if number == current.version else load(artifacts, folder, found["project"], found["model"], number)
        )

    pinned = str(found["version"]).isdigit()  # a version number never changes; an alias may move
    server = create_server(
        model, found["deployment"], found["variant"], found["monitoring"], None if pinned else reload
    )
    return server, found


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nebula_runtime.serve", description="Serve one registered model version."
    )
    p.add_argument("--config", help="the model's nebula-model.json (from its image's build context)")
    p.add_argument("--serving", help="the variant's serving.json (default /etc/nebula/serving/serving.json)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--threads", type=int, default=8)
    return p


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)  # one request, one core: small models lose time to thread hand-offs
    except ImportError:
        pass
    try:
        app, found = build(args, os.environ if environ is None else environ)
    except ServerError as err:
        sys.stderr.write(f"nebula model server: {err}\n")
        return 1
    from gunicorn.app.base import BaseApplication

    options = {
        "bind": f"{args.host}:{found['port']}",
        "workers": 1,
        "threads": args.threads,
        "worker_class": "gthread",
        "timeout": 120,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": f"nebula-model-{found['model']}",
    }

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Callable[..., Any]:
            return app

    sys.stderr.write(
        f"nebula: serving {found['project']}/{found['model']} version {found['version']} "
        f"on http://{args.host}:{found['port']}\n"
    )
    Server().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
