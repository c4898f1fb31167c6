"""Operating the runtime: health, readiness, metrics, the CLI, and the docker-compose files."""

from __future__ import annotations

import io
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
import yaml

from nebula_compile.cli import main
from nebula_compile.state import Store
from tests.conftest import POSTGRES, ROOT
from tests.runtime.conftest import CONFIG, Live, Rt, apply_config
from tests.runtime.test_rest import CSV


def test_health_and_readiness_are_open(rt: Rt) -> None:
    assert rt.client.get("/healthz").get_json() == {"status": "ok"}
    assert rt.client.get("/readyz").get_json() == {"status": "ready", "database": "ok"}


def test_not_ready_when_the_database_is_gone(tmp_path: Path) -> None:
    """On PostgreSQL: a SQLite file cannot be taken away from an open connection."""
    from nebula_runtime import Settings, create_app

    name = f"nebula_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES}/test", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database = f"{POSTGRES}/{name}"

    app = create_app(Settings(database_url=database, artifacts=str(tmp_path), environment="dev", log_level="WARNING"))
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    with psycopg.connect(f"{POSTGRES}/test", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{database.rsplit("/", 1)[1]}" WITH (FORCE)')
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"
    assert client.get("/healthz").status_code == 200  # alive, just not ready
    app.extensions["nebula"].close()


def test_metrics_count_requests_per_route_and_uploads(rt: Rt) -> None:
    rt.get("/v1/projects/churn")
    rt.get("/v1/projects/fraud")
    rt.post("/v1/projects/churn/data", data={"file": (io.BytesIO(CSV), "c.csv")})
    rt.post("/v1/projects/churn/data", data={"file": (io.BytesIO(b"customer_id\n"), "c.csv")})
    text = rt.get("/metrics", "viewer").get_data(as_text=True)
    assert 'nebula_http_requests_total{method="GET",route="/v1/projects/{project}",status="200"}' in text
    assert 'nebula_http_request_duration_seconds_bucket{le="0.1",method="GET",route="/v1/projects/{project}"}' in text
    assert 'nebula_uploads_total{result="stored"}' in text
    assert 'nebula_uploads_total{result="validation_failed"}' in text
    assert "nebula_upload_bytes_total" in text
    assert rt.client.get("/metrics").status_code == 401


def test_the_documented_client_against_nebula_serve(live: Live) -> None:
    """The product description's Python client, unchanged but for the base URL."""
    API_KEY = live.rt.keys["viewer"]
    BASE_URL = f"{live.url}/v1"

    def get_project(project_id: str) -> dict[str, str]:
        url = f"{BASE_URL}/projects/{project_id}"
        headers = {"X-API-Key": API_KEY}
        response = requests.get(url, headers=headers, timeout=10)
        response.raise_for_status()
        result: dict[str, str] = response.json()
        return result

    project = get_project("churn")
    assert (project["id"], project["name"], project["description"]) == ("churn", "churn", "Predict churn")
    with pytest.raises(requests.HTTPError):
        get_project("no-such-project")
    metrics = requests.get(f"{live.url}/metrics", headers={"X-API-Key": API_KEY}, timeout=10).text
    assert 'route="/v1/projects/{project}",status="200"' in metrics  # gathered across the gunicorn workers


# --- CLI ----------------------------------------------------------------------------------------------


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "platform"
    folder.mkdir()
    config = folder / "nebula.yaml"
    config.write_text(
        CONFIG.read_text().replace(
            "platform: {name: runtime-test}", "platform: {name: runtime-test, state: sqlite:///.nebula/state.db}"
        )
    )
    monkeypatch.chdir(folder)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    store = _open(folder)
    apply_config(store, config)
    store.close()
    return folder


def _open(folder: Path) -> Store:
    return Store.open(f"sqlite:///{folder}/.nebula/state.db")


def test_keys_create_list_revoke(platform: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--role", "viewer", "--name", "grafana", "--project", "churn"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("neb_")
    assert "shown only this once" in err
    from nebula_runtime import Settings, create_app

    store = _open(platform)
    settings = Settings(
        database_url=f"sqlite:///{platform}/.nebula/state.db",
        environment="dev",
        log_level="WARNING",
        key_cache_seconds=0,
    )
    app = create_app(settings, store=store)
    client = app.test_client()
    assert client.get("/v1/projects/churn", headers={"X-API-Key": key}).status_code == 200
    assert client.get("/v1/projects/fraud", headers={"X-API-Key": key}).status_code == 403
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "grafana" in listing and "churn" in listing and key not in listing
    assert main(["keys", "revoke", key.split("_")[1]]) == 0
    assert client.get("/v1/projects/churn", headers={"X-API-Key": key}).status_code == 401
    assert main(["keys", "create", "--role", "wizard"]) == 1
    assert "role 'wizard' is not defined in nebula.yaml" in capsys.readouterr().err
    app.extensions["nebula"].close()


def test_serve_refuses_bad_settings_clearly(
    platform: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(platform))  # serve would set it for this process
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["serve", "--port", "18080"]) == 1
    assert "cannot reach or migrate the state store" in capsys.readouterr().err
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("NEBULA_MAX_UPLOAD", "lots")
    assert main(["serve"]) == 1
    assert "NEBULA_MAX_UPLOAD='lots' is not a size" in capsys.readouterr().err
    assert main(["serve", "missing.yaml"]) == 1


# --- docker-compose and the image ---------------------------------------------------------------------


def test_compose_file_describes_the_stack() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"runtime", "postgres", "prometheus", "grafana"}
    runtime = services["runtime"]
    assert runtime["ports"] == ["8080:8080"]
    assert runtime["env_file"] == ".env"
    assert runtime["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert runtime["environment"]["DATABASE_URL"].startswith("postgresql://nebula:${POSTGRES_PASSWORD")
    for name, service in services.items():  # every mounted file exists (bind mounts of missing files become folders)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and not source.endswith("metrics.key"):
                assert (ROOT / source).exists(), (name, source)
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(example) == {"NEBULA_API_KEY", "POSTGRES_PASSWORD"}
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in text and "password:" not in text.lower().replace("postgres_password", "")


def test_dockerfile_runs_nebula_serve_as_a_user() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    cmd = [line for line in lines if line.startswith("CMD ")][-1]
    assert '"serve"' in cmd and '"0.0.0.0"' in cmd and '"8080"' in cmd
    for line in lines:  # every COPY source exists in the build context
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    (tmp_path / "metrics.key").write_text("neb_00000000_x\n")
    config.write_text(
        (ROOT / "deploy/prometheus/prometheus.yml")
        .read_text()
        .replace("/etc/prometheus/metrics.key", str(tmp_path / "metrics.key"))
    )
    checked = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
