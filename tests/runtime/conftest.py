"""A runtime over a reconciled state: tests/runtime/nebula.yaml applied to SQLite or PostgreSQL.

`rt` gives the app's test client, the store and a key per role; `live` serves the same
app under gunicorn on a free port for tests that need a real HTTP server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from nebula_compile.api import compile_path
from nebula_compile.state import Store
from nebula_compile.state.schema import ModelVersion, RunMetric, TrainingRun
from nebula_runtime import create_app
from nebula_runtime.services import create_key
from nebula_runtime.settings import Settings

CONFIG = Path(__file__).with_name("nebula.yaml")
BOOTSTRAP = "bootstrap-test-key"
ROLES = ("viewer", "uploader", "scientist", "auditor", "keymaster", "admin")


@dataclass
class Rt:
    app: Flask
    client: FlaskClient
    store: Store
    settings: Settings
    keys: dict[str, str]
    artifacts: Path
    database: str

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}

    def get(self, path: str, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers(role), **kwargs)

    def post(self, path: str, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.post(path, headers=self.headers(role), **kwargs)

    def graphql(self, query: str, role: str = "admin", variables: dict[str, Any] | None = None) -> Any:
        return self.client.post("/graphql", json={"query": query, "variables": variables}, headers=self.headers(role))


def apply_config(store: Store, config: Path = CONFIG) -> None:
    compilation = compile_path(str(config), ["dev"])
    assert compilation.ok, compilation.diagnostics
    store.apply_graphs(list(compilation.graphs.values()), commit="c0ffee", author="test")


def register_version(
    store: Store, project: str, model: str, version: int, metrics: dict[str, float], aliases: tuple[str, ...] = ()
) -> str:
    """What the ML lifecycle's registry writes: a finished run with curves, and a version."""
    from nebula_compile.state.schema import ModelAlias

    now = datetime.now(UTC)
    run_id = f"run_{project}_{model}_{version}"
    with store.sessions.begin() as session:
        session.add(
            TrainingRun(
                id=run_id,
                environment="dev",
                project=project,
                model=model,
                status="succeeded",
                params={"seed": 7},
                metrics=metrics,
                dataset_version_id=None,
                commit="c0ffee",
                error=None,
                started_at=now,
                finished_at=now,
                created_by="test",
            )
        )
        session.flush()
        for step in range(3):
            session.add(RunMetric(run_id=run_id, name="loss", step=step, value=1.0 / (step + 1), at=now))
        session.add(
            ModelVersion(
                id=f"mv_{project}_{model}_{version}",
                environment="dev",
                project=project,
                model=model,
                version=version,
                run_id=run_id,
                metrics=metrics,
                params={"seed": 7},
                artifact=f"models/{model}/{version}",
                dataset_version_id=None,
                commit="c0ffee",
                created_at=now,
            )
        )
        for alias in aliases:
            session.merge(
                ModelAlias(
                    environment="dev",
                    project=project,
                    model=model,
                    alias=alias,
                    version=version,
                    updated_at=now,
                    updated_by="test",
                )
            )
    return run_id


def make_rt(database: str, tmp_path: Path) -> Rt:
    store = Store.open(database)
    apply_config(store)
    keys = {
        role: create_key(store, role=role, name=f"{role}-key", projects=None, created_by="test").key for role in ROLES
    }
    keys["churn-viewer"] = create_key(store, role="viewer", name="scoped", projects=["churn"], created_by="test").key
    keys["churn-uploader"] = create_key(
        store, role="uploader", name="scoped-up", projects=["churn"], created_by="test"
    ).key
    keys["bootstrap"] = BOOTSTRAP
    settings = Settings(
        database_url=database,
        artifacts=str(tmp_path / "artifacts"),
        environment="dev",
        api_key=BOOTSTRAP,
        max_upload_bytes=4 << 20,
        key_cache_seconds=0.0,
        log_level="WARNING",
    )
    app = create_app(settings, store=store)
    app.testing = True
    return Rt(app, app.test_client(), store, settings, keys, tmp_path / "artifacts", database)


@pytest.fixture
def rt(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rt]:
    monkeypatch.setenv("NEBULA_TEST_CI_KEY", "ci-key-from-the-environment")
    runtime = make_rt(database, tmp_path)
    with runtime.client:
        yield runtime
    runtime.app.extensions["nebula"].close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Live:
    url: str
    rt: Rt
    process: subprocess.Popen[bytes]


@pytest.fixture
def live(rt: Rt, tmp_path: Path) -> Iterator[Live]:
    """`nebula serve` itself, on a free port, over the same database and artifact folder."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": rt.database,
        "NEBULA_ARTIFACTS": str(rt.artifacts),
        "NEBULA_ENVIRONMENT": "dev",
        "NEBULA_API_KEY": BOOTSTRAP,
        "NEBULA_MAX_UPLOAD": str(rt.settings.max_upload_bytes),
        "NEBULA_LOG_LEVEL": "INFO",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each server gathers its own workers' metrics
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "nebula_compile.cli", "serve", "--port", str(port), "--workers", "2", "--threads", "8"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.close()
            raise AssertionError((tmp_path / "serve.log").read_text())
        time.sleep(0.1)
    try:
        yield Live(url, rt, process)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
