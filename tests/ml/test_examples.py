"""The two examples end to end, as the README runs them: `nebula apply`, `nebula run`, `nebula serve`,
predictions split between the A/B variants, and drift raised by a shift injected into the inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import requests
from sklearn.datasets import load_digits

from tests.ml.conftest import ROOT
from tests.runtime.conftest import free_port


def nebula(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for name in ("DATABASE_URL", "NEBULA_ARTIFACTS", "NEBULA_ENVIRONMENT", "NEBULA_API_KEY"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "nebula_compile.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start(cwd: Path, key: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = {**os.environ, "NEBULA_API_KEY": key}
    for name in ("DATABASE_URL", "NEBULA_ARTIFACTS", "NEBULA_ENVIRONMENT"):
        env.pop(name, None)
    log = (cwd / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "nebula_compile.cli", "serve", "--port", str(port), "--workers", "1"],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                return url, process
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError((cwd / "serve.log").read_text())
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def test_the_churn_example(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "churn", tmp_path / "examples" / "churn")
    text = (ROOT / "nebula.yaml").read_text()
    assert "trials: 30" in text
    (tmp_path / "nebula.yaml").write_text(text.replace("trials: 30", "trials: 2"))  # the same search, shorter
    applied = nebula(tmp_path, "apply", "--env", "dev", "--no-deploy-branch")
    assert applied.returncode == 0, applied.stderr
    ran = nebula(tmp_path, "run", "churn", "--data", "customers=examples/churn/customers.csv")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "churn-lr  registered v1" in ran.stdout and "churn-gb  registered v1" in ran.stdout
    assert "trial 2/2" in ran.stderr  # the tuning's progress
    url, process = start(tmp_path, "demo-key")
    try:
        headers = {"X-API-Key": "demo-key"}
        rows = (
            pd.read_csv(tmp_path / "examples" / "churn" / "customers.csv")
            .drop(columns=["customer_id", "email", "churned"])
            .dropna()
            .sample(400, random_state=0)
            .to_dict("records")
        )
        seen: Counter[str] = Counter()
        for number, row in enumerate(rows[:200]):
            answer = requests.post(
                f"{url}/v1/deployments/churn-api/predict",
                json={"input": row, "key": f"customer-{number}"},
                headers=headers,
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            seen[answer.json()["variant"]] += 1
        assert seen["champion"] > seen["challenger"] > 0  # 90/10 in nebula.yaml
        calm = requests.get(f"{url}/v1/deployments/churn-api/drift", headers=headers, timeout=30).json()
        assert calm["drifted"] is False
        for row in rows[200:]:
            shifted = {**row, "monthly_charges": row["monthly_charges"] * 1.8}
            requests.post(
                f"{url}/v1/deployments/churn-api/predict",
                json={"input": shifted, "key": "customer-0"},
                headers=headers,
                timeout=30,
            )
        drifted = requests.get(f"{url}/v1/deployments/churn-api/drift", headers=headers, timeout=30).json()
        assert drifted["drifted"] is True
        flagged = {f["name"] for v in drifted["variants"] for f in v["features"] if f["drifted"]}
        assert "monthly_charges" in flagged
    finally:
        stop(process)


def test_the_image_classification_example(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "image-classification" / "nebula.yaml", tmp_path / "nebula.yaml")
    applied = nebula(tmp_path, "apply", "--env", "dev", "--no-deploy-branch")
    assert applied.returncode == 0, applied.stderr
    ran = nebula(tmp_path, "run", "digits")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "digits-cnn  registered v1" in ran.stdout
    assert "val_accuracy" in ran.stderr  # per-epoch curves, as they were recorded
    url, process = start(tmp_path, "vision-key")
    try:
        headers = {"X-API-Key": "vision-key"}
        digits = load_digits()
        rows = [{f"pixel_{i}": float(v) for i, v in enumerate(image)} for image in digits.data]
        variants: Counter[str] = Counter()
        correct = 0
        for number in range(0, 1000, 50):
            batch = rows[number : number + 50]
            answer = requests.post(
                f"{url}/v1/deployments/digits-api/predict", json={"inputs": batch}, headers=headers, timeout=60
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            variants[body["variant"]] += 1
            truth = digits.target[number : number + 50]
            correct += sum(p["prediction"] == int(t) for p, t in zip(body["predictions"], truth, strict=True))
        assert correct / 1000 > 0.95
        assert variants["stable"] > 0
        calm = requests.get(f"{url}/v1/deployments/digits-api/drift", headers=headers, timeout=60).json()
        assert calm["drifted"] is False, calm
        inverted = [{k: 16.0 - v for k, v in row.items()} for row in rows[1000:1600]]  # a negative of each image
        for number in range(0, 600, 100):
            requests.post(
                f"{url}/v1/deployments/digits-api/predict",
                json={"inputs": inverted[number : number + 100]},
                headers=headers,
                timeout=60,
            )
        drifted = requests.get(f"{url}/v1/deployments/digits-api/drift", headers=headers, timeout=60).json()
        assert drifted["drifted"] is True
    finally:
        stop(process)
