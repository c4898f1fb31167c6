"""The model server the compiled Deployments run: it finds its version through the registry's pointer files,
answers as the runtime does, and exports the metrics the compiled alert rules read."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from nebula_runtime.serve import ServerError, build, parser
from tests.ml.conftest import Platform
from tests.ml.test_predict import ROW, training_rows


def environ(platform: Platform, version: str = "champion", model: str = "churn-lr") -> dict[str, str]:
    return {
        "NEBULA_PROJECT": "churn",
        "NEBULA_MODEL": model,
        "NEBULA_MODEL_VERSION": version,
        "NEBULA_DEPLOYMENT": "churn-api",
        "NEBULA_VARIANT": "champion",
        "NEBULA_ARTIFACTS": str(platform.artifacts),
        "NEBULA_ENVIRONMENT": "dev",
    }


def serving_file(tmp_path: Path) -> str:
    path = tmp_path / "serving.json"
    path.write_text(
        json.dumps({"monitoring": {"drift": {"method": "psi", "threshold": 0.2, "window": "1h", "min_samples": 100}}})
    )
    return str(path)


def test_it_serves_the_version_an_alias_names(trained: Platform, tmp_path: Path) -> None:
    app, _ = build(parser().parse_args(["--serving", serving_file(tmp_path)]), environ(trained))
    client = app.test_client()
    assert client.get("/readyz").get_json() == {"status": "ready", "model": "churn-lr", "version": 1}
    meta = client.get("/metadata").get_json()
    assert meta["inputs"]["contract"] == "category" and meta["classes"] == [False, True]
    answer = client.post("/predict", json={"inputs": [ROW]}).get_json()
    assert answer["version"] == 1 and isinstance(answer["predictions"][0]["prediction"], bool)
    bad = client.post("/predict", json={"input": {**ROW, "contract": 3.5, "tenure_months": "x"}})
    assert bad.status_code == 422 and bad.get_json()["error"]["details"][0]["column"] == "tenure_months"
    assert client.post("/predict", data="nope", content_type="application/json").status_code == 400
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'nebula_requests_total{deployment="churn-api",status="200",variant="champion"} 1.0' in metrics
    assert 'nebula_requests_total{deployment="churn-api",status="422",variant="champion"} 1.0' in metrics
    assert "nebula_request_duration_seconds_bucket" in metrics
    assert "process_resident_memory_bytes" in metrics and "process_cpu_seconds_total" in metrics


def test_its_drift_score_follows_the_inputs(trained: Platform, tmp_path: Path) -> None:
    app, _ = build(parser().parse_args(["--serving", serving_file(tmp_path)]), environ(trained))
    client = app.test_client()
    client.post("/predict", json={"inputs": training_rows(400, seed=5)})
    assert client.get("/drift").get_json()["drifted"] is False
    shifted = [{**row, "support_calls": int(row["support_calls"]) + 5} for row in training_rows(400, seed=6)]
    client.post("/predict", json={"inputs": shifted})
    report = client.get("/drift").get_json()
    assert report["drifted"] is True
    assert [f["name"] for f in report["features"] if f["drifted"]] == ["support_calls"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'nebula_drift_score{deployment="churn-api",feature="support_calls",variant="champion"}' in metrics


def test_an_unknown_version_or_alias_is_a_clear_error(trained: Platform) -> None:
    with pytest.raises(ServerError, match="no version under the alias 'gold'"):
        build(parser().parse_args([]), environ(trained, "gold"))
    with pytest.raises(ServerError, match="version 9 is not registered"):
        build(parser().parse_args([]), environ(trained, "9"))
    with pytest.raises(ServerError, match="which model"):
        build(parser().parse_args([]), {"NEBULA_ARTIFACTS": str(trained.artifacts)})


def test_the_server_process_starts_and_answers(trained: Platform, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, **environ(trained, "1", "churn-tree")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nebula_runtime.serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--serving",
            serving_file(tmp_path),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.2)
        answer = requests.post(f"http://127.0.0.1:{port}/predict", json={"input": ROW}, timeout=10)
        assert answer.status_code == 200 and answer.json()["model"] == "churn-tree"
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()


def test_a_missing_model_stops_the_process_with_a_message(tmp_path: Path) -> None:
    env = {**os.environ, "NEBULA_PROJECT": "churn", "NEBULA_MODEL": "churn-lr", "NEBULA_ARTIFACTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "nebula_runtime.serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "no version under the alias 'champion'" in done.stderr and "Traceback" not in done.stderr
