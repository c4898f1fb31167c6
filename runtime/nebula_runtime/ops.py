"""Operations: /healthz, /readyz, /metrics, JSON logs with a request id, per-route metrics."""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import time
import uuid
from typing import Any

import orjson
from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from sqlalchemy import text

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "nebula_http_requests_total",
    "HTTP requests by route, method and status",
    ("route", "method", "status"),
    registry=REGISTRY,
)
LATENCY = Histogram(
    "nebula_http_request_duration_seconds",
    "HTTP request latency by route",
    ("route", "method"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
UPLOADS = Counter("nebula_uploads_total", "Data uploads by result", ("result",), registry=REGISTRY)
UPLOAD_BYTES = Counter("nebula_upload_bytes_total", "Bytes of data stored from uploads", registry=REGISTRY)

_RULE_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
log = logging.getLogger("nebula.runtime.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and the record's extras."""

    SKIP = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "fields"}

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        entry: dict[str, Any] = {
            "time": _timestamp(seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields is not None:  # the access log's fields, gathered in one dict (cheaper than extras)
            entry.update(fields)
        else:
            entry.update({k: v for k, v in vars(record).items() if k not in self.SKIP})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


@functools.lru_cache(maxsize=4)
def _timestamp(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


@functools.lru_cache(maxsize=256)
def route_label(rule: str) -> str:
    """`/v1/projects/<project>` -> `/v1/projects/{project}`, as the OpenAPI document writes it."""
    return _RULE_PARAM.sub(r"{\1}", rule)


@functools.lru_cache(maxsize=4096)
def _series(route: str, method: str, status: int) -> tuple[Any, Any]:
    return REQUESTS.labels(route, method, str(status)), LATENCY.labels(route, method)


UNMEASURED = frozenset({"/metrics", "/healthz", "/readyz"})


def configure_logging(level: str) -> None:
    root = logging.getLogger("nebula.runtime")
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(level.upper())


def install(app: Flask) -> None:
    @app.before_request
    def start() -> None:
        state = g._get_current_object()
        current = request._get_current_object()  # type: ignore[attr-defined]
        state.started = time.perf_counter()
        incoming = current.headers.get("X-Request-ID", "")
        state.request_id = incoming if incoming and _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        state.route = route_label(current.url_rule.rule) if current.url_rule is not None else "unmatched"

    @app.after_request
    def finish(response: Response) -> Response:
        state = g._get_current_object()
        current = request._get_current_object()  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - getattr(state, "started", time.perf_counter())
        route = getattr(state, "route", "unmatched")
        request_id = getattr(state, "request_id", "")
        response.headers["X-Request-ID"] = request_id
        status = response.status_code
        if route not in UNMEASURED:
            count, latency = _series(route, current.method, status)
            count.inc()
            latency.observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            principal = getattr(state, "principal", None)
            log.info(
                "%s %s %s",
                current.method,
                current.path,
                status,
                extra={
                    "fields": {
                        "request_id": request_id,
                        "method": current.method,
                        "path": current.path,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "actor": principal.actor if principal is not None else None,
                        "remote": current.remote_addr,
                    }
                },
            )
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status":"ok"}', mimetype="application/json")

    @app.get("/readyz")
    def readyz() -> Response:
        try:
            with g.runtime.store.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as err:  # the database is down or unreachable: not ready
            body = {"status": "unavailable", "database": type(err).__name__}
            return Response(orjson.dumps(body), status=503, mimetype="application/json")
        return Response(b'{"status":"ready","database":"ok"}', mimetype="application/json")

    @app.get("/metrics")
    def metrics() -> Response:
        g.principal = g.runtime.auth.authenticate(request.headers)  # any valid key or token may scrape
        from nebula_runtime.predictions import refresh_gauges

        refresh_gauges(g.runtime)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            data = generate_latest(registry)
        else:
            data = generate_latest(REGISTRY)
        return Response(data, mimetype=CONTENT_TYPE_LATEST)
