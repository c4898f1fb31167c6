"""Predictions through the runtime: A/B routing by weight and by key, feedback, the A/B report, drift, metrics."""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

import pandas as pd
import pytest

from nebula_runtime import jobs
from nebula_runtime.ml import pipeline
from tests.ml.conftest import ROOT, Served

ROW = {
    "tenure_months": 3,
    "monthly_charges": 80.0,
    "total_charges": 240.0,
    "contract": "month-to-month",
    "payment_method": "check",
    "support_calls": 4,
}
INPUTS = ["tenure_months", "monthly_charges", "total_charges", "contract", "payment_method", "support_calls"]


def training_rows(count: int, seed: int = 0) -> list[dict[str, object]]:
    frame = pd.read_csv(ROOT / "examples" / "churn" / "customers.csv").dropna(subset=["total_charges"])
    sample = frame.sample(count, random_state=seed)
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in sample[INPUTS].to_dict("records")
    ]


def test_a_prediction_names_its_variant_and_version(served: Served) -> None:
    answer = served.post("/v1/deployments/churn-api/predict", "client", json={"input": ROW})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["variant"] in ("champion", "challenger")
    assert body["model"] == {"champion": "churn-lr", "challenger": "churn-tree"}[body["variant"]]
    assert body["version"] == 1
    [prediction] = body["predictions"]
    assert isinstance(prediction["prediction"], bool)
    assert set(prediction["probabilities"]) == {"False", "True"}
    assert prediction["prediction"] == (prediction["probabilities"]["True"] > 0.5)
    scoped = served.post("/v1/projects/churn/deployments/churn-api/predict", "client", json={"inputs": [ROW, ROW]})
    assert len(scoped.get_json()["predictions"]) == 2


def test_traffic_follows_the_weights_and_a_key_sticks(served: Served) -> None:
    seen = Counter(
        served.post("/v1/deployments/churn-api/predict", json={"input": ROW}).get_json()["variant"] for _ in range(400)
    )
    assert 0.62 < seen["champion"] / 400 < 0.78  # 70% by nebula.yaml; a binomial 400 is within ±8 points
    keyed = {
        served.post("/v1/deployments/churn-api/predict", json={"input": ROW, "key": "user-42"}).get_json()["variant"]
        for _ in range(20)
    }
    assert len(keyed) == 1
    by_key = Counter(
        served.post("/v1/deployments/churn-api/predict", json={"input": ROW, "key": f"user-{i}"}).get_json()["variant"]
        for i in range(300)
    )
    assert 0.6 < by_key["champion"] / 300 < 0.8  # keys spread by the same weights


def test_bad_input_is_a_422_naming_row_and_column(served: Served) -> None:
    wrong = served.post("/v1/deployments/churn-api/predict", json={"inputs": [ROW, {**ROW, "tenure_months": "ten"}]})
    assert wrong.status_code == 422
    assert wrong.get_json()["error"]["details"][0] == {
        "row": 1,
        "column": "tenure_months",
        "message": "expected integer, got str",
    }
    unknown = served.post("/v1/deployments/churn-api/predict", json={"input": {**ROW, "shoe_size": 9}})
    assert unknown.status_code == 422 and "shoe_size" in unknown.get_json()["error"]["message"]
    both = served.post("/v1/deployments/churn-api/predict", json={"input": ROW, "inputs": [ROW]})
    assert both.status_code == 422
    assert served.post("/v1/deployments/nope/predict", json={"input": ROW}).status_code == 404
    assert served.post("/v1/deployments/churn-api/predict", "viewer", json={"input": ROW}).status_code == 403


def test_feedback_gives_live_accuracy_and_a_significance_test(served: Served) -> None:
    truth = random.Random(3)
    ids: list[tuple[str, str, bool]] = []
    for row in training_rows(300, seed=1):
        body = served.post("/v1/deployments/churn-api/predict", "client", json={"input": row}).get_json()
        ids.append((body["variant"], body["predictions"][0]["id"], body["predictions"][0]["prediction"]))
    # the challenger's outcomes agree with it, the champion's only half the time: a real difference
    outcomes = [
        {"prediction_id": pid, "outcome": said if variant == "challenger" or truth.random() < 0.5 else not said}
        for variant, pid, said in ids
    ]
    recorded = served.post("/v1/deployments/churn-api/feedback", "client", json={"items": outcomes})
    assert recorded.get_json() == {"recorded": 300, "unknown": []}
    stray = served.post(
        "/v1/deployments/churn-api/feedback", "client", json={"items": [{"prediction_id": "pr_nope", "outcome": True}]}
    )
    assert stray.get_json() == {"recorded": 0, "unknown": ["pr_nope"]}
    report = served.get("/v1/deployments/churn-api/report", "client").get_json()
    variants = {v["variant"]: v for v in report["variants"]}
    assert variants["challenger"]["accuracy"] == 1.0
    assert 0.35 < variants["champion"]["accuracy"] < 0.65
    assert variants["champion"]["requests"] + variants["challenger"]["requests"] == 300
    assert variants["champion"]["latency_p50_ms"] > 0
    [test] = report["tests"]
    assert (test["control"], test["variant"]) == ("champion", "challenger")
    assert test["significant"] is True and test["p_value"] < 0.001
    metrics = served.get("/metrics").get_data(as_text=True)
    assert 'nebula_live_accuracy{deployment="churn-api",variant="challenger"} 1.0' in metrics
    assert 'nebula_requests_total{deployment="churn-api",status="200",variant="champion"}' in metrics


def test_shifted_inputs_raise_drift_and_unshifted_ones_do_not(served: Served) -> None:
    for row in training_rows(600, seed=2):
        served.post("/v1/deployments/churn-api/predict", json={"input": row, "key": "steady"})
    steady = served.get("/v1/deployments/churn-api/drift").get_json()
    [variant] = [v for v in steady["variants"] if v["samples"]]
    assert variant["enough_data"] is True and variant["drifted"] is False, variant
    for row in training_rows(600, seed=3):
        shifted = {**row, "monthly_charges": float(row["monthly_charges"]) + 40.0}  # prices went up
        served.post("/v1/deployments/churn-api/predict", json={"input": shifted, "key": "steady"})
    drifted = served.get("/v1/deployments/churn-api/drift").get_json()
    assert drifted["drifted"] is True
    [variant] = [v for v in drifted["variants"] if v["samples"]]
    flagged = [f["name"] for f in variant["features"] if f["drifted"]]
    assert flagged == ["monthly_charges"]
    metrics = served.get("/metrics").get_data(as_text=True)
    line = next(x for x in metrics.splitlines() if x.startswith("nebula_drift_score") and "monthly_charges" in x)
    assert float(line.rsplit(" ", 1)[1]) > 0.2


@pytest.mark.parametrize("path", ["/v1/deployments/churn-api/report", "/v1/deployments/churn-api/drift"])
def test_reports_need_read_access(served: Served, path: str) -> None:
    assert served.client.get(path).status_code == 401


def test_retraining_on_drift_runs_only_when_a_deployment_drifted(served: Served) -> None:
    """The drift check's CronJob: `jobs retrain --trigger drift` trains only after the inputs shifted, and the
    new version passes through its gates; in a non-production environment the served alias follows it."""

    def check() -> list[str]:
        said: list[str] = []
        args = argparse.Namespace(
            stage="retrain",
            project="churn",
            model="churn-lr",
            trigger="drift",
            workdir=None,
            data=None,
            dataset=None,
            step=None,
        )
        with served.platform.workspace() as ws:
            ws.root, ws.say = ROOT, said.append
            assert jobs.run_stage(ws, args) == 0
        return said

    key = next(  # a caller the champion (churn-lr) serves
        f"k{n}"
        for n in range(100)
        if served.post("/v1/deployments/churn-api/predict", json={"input": ROW, "key": f"k{n}"}).get_json()["variant"]
        == "champion"
    )
    for row in training_rows(300, seed=7):
        served.post("/v1/deployments/churn-api/predict", json={"input": row, "key": key})
    assert any("nothing to do" in line for line in check())
    for row in training_rows(300, seed=8):
        served.post("/v1/deployments/churn-api/predict", json={"input": {**row, "tenure_months": 0}, "key": key})
    said = check()
    assert any("drifted on tenure_months" in line for line in said), said
    assert any("registered version 2" in line for line in said), said
    model = served.get("/v1/projects/churn/models/churn-lr").get_json()
    assert model["aliases"]["champion"] == 2


def test_a_project_scoped_key_predicts_through_the_global_route(served: Served) -> None:
    from nebula_compile.state import Store
    from nebula_runtime.services import create_key

    store = Store.open(served.platform.url)
    try:
        scoped = create_key(store, role="client", name="churn-only", projects=["churn"], created_by="test").key
    finally:
        store.close()
    answer = served.client.post("/v1/deployments/churn-api/predict", headers={"X-API-Key": scoped}, json={"input": ROW})
    assert answer.status_code == 200, answer.get_json()


def test_numbers_too_large_for_a_float_are_a_422(served: Served) -> None:
    answer = served.post("/v1/deployments/churn-api/predict", json={"input": {**ROW, "tenure_months": 10**400}})
    assert answer.status_code == 422 and answer.get_json()["error"]["details"][0]["column"] == "tenure_months"


def test_the_report_counts_only_the_version_each_variant_serves_now(served: Served) -> None:
    for _ in range(5):
        served.post("/v1/deployments/churn-api/predict", json={"input": ROW})
    before = {
        v["variant"]: v["requests"] for v in served.get("/v1/deployments/churn-api/report").get_json()["variants"]
    }
    assert sum(before.values()) == 5
    moved = served.client.put(
        "/v1/projects/churn/models/churn-lr/aliases/champion",
        headers={"X-API-Key": served.keys["admin"]},
        json={"version": 1},
    )
    assert moved.status_code == 200
    with served.platform.workspace() as ws:
        ws.root = ROOT
        pipeline.run_project(ws, "churn", ["churn-lr"])  # version 2; dev moves the champion alias to it
    time.sleep(1.1)  # the runtime re-reads aliases within a second
    after = {v["variant"]: v for v in served.get("/v1/deployments/churn-api/report").get_json()["variants"]}
    assert after["champion"]["version"] == 2 and after["champion"]["requests"] == 0
    assert after["challenger"]["requests"] == before.get("challenger", 0)
