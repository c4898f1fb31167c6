"""A trained platform: tests/ml/nebula.yaml applied to a SQLite state store and its pipeline run once.

The churn example's data (examples/churn/customers.csv) is read from the repository,
so the models, versions, runs and artifacts are real; tests that change state make
their own copy with `make_platform`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from nebula_compile.api import compile_path
from nebula_compile.state import Store
from nebula_runtime import create_app
from nebula_runtime.ml import pipeline
from nebula_runtime.ml.pipeline import RunSummary
from nebula_runtime.ml.workspace import Workspace, opened
from nebula_runtime.services import create_key
from nebula_runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("nebula.yaml")


@dataclass
class Platform:
    url: str
    artifacts: Path
    manifest: dict[str, Any]
    summary: RunSummary
    folder: Path

    def workspace(self) -> Any:
        return opened(self.manifest, database_url=self.url, artifacts=str(self.artifacts), root=ROOT)


def compiled(config: Path = CONFIG) -> dict[str, Any]:
    compilation = compile_path(str(config), ["dev"])
    assert compilation.ok, compilation.diagnostics
    manifest: dict[str, Any] = compilation.graphs["dev"].to_json()
    return manifest


def make_platform(folder: Path, config: Path = CONFIG, train: bool = True) -> Platform:
    url = f"sqlite:///{folder}/state.db"
    compilation = compile_path(str(config), ["dev"])
    assert compilation.ok, compilation.diagnostics
    store = Store.open(url)
    try:
        store.apply_graphs(list(compilation.graphs.values()), commit="c0ffee", author="test")
    finally:
        store.close()
    manifest = compilation.graphs["dev"].to_json()
    summary = RunSummary("churn")
    platform = Platform(url, folder / "artifacts", manifest, summary, folder)
    if train:
        ws: Workspace
        with platform.workspace() as ws:
            platform.summary = pipeline.run_project(ws, "churn")
    return platform


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    return make_platform(tmp_path_factory.mktemp("ml-platform"))


@dataclass
class Served:
    platform: Platform
    client: FlaskClient
    keys: dict[str, str]

    def post(self, path: str, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.post(path, headers={"X-API-Key": self.keys[role]}, **kwargs)

    def get(self, path: str, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.get(path, headers={"X-API-Key": self.keys[role]}, **kwargs)


def serve(platform: Platform) -> Iterator[Served]:
    store = Store.open(platform.url)
    keys = {
        role: create_key(store, role=role, name=role, projects=None, created_by="test").key
        for role in ("admin", "client", "viewer")
    }
    settings = Settings(
        database_url=platform.url,
        artifacts=str(platform.artifacts),
        environment="dev",
        api_key="bootstrap",
        key_cache_seconds=0.0,
        log_level="WARNING",
    )
    app = create_app(settings, store=store)
    app.testing = True
    with app.test_client() as client:
        yield Served(platform, client, keys)
    app.extensions["nebula"].close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A freshly trained platform of its own behind the runtime (predictions change its state)."""
    yield from serve(make_platform(tmp_path))
