"""The pipeline end to end on the churn example: ingest, checks, preprocessing, training, gates, registry,
and parity with scikit-learn trained directly."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sqlalchemy import select

from nebula_compile.state.schema import AuditEntry, DatasetVersion, ModelAlias, ModelVersion, TrainingRun
from nebula_runtime.ml import pipeline
from nebula_runtime.ml.workspace import StageError
from tests.ml.conftest import CONFIG, ROOT, Platform, compiled, make_platform

DATA = ROOT / "examples" / "churn" / "customers.csv"


def test_models_that_pass_their_gates_are_registered_and_the_others_are_not(trained: Platform) -> None:
    results = {m.model: m for m in trained.summary.models}
    assert results["churn-lr"].version == 1
    assert results["churn-tree"].version == 1
    assert results["churn-perfect"].version is None
    assert results["churn-perfect"].error == "gates failed"
    assert results["churn-perfect"].gates[0]["passed"] is False
    assert results["churn-lr"].metrics["roc_auc"] >= 0.75
    assert set(results["churn-lr"].metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert not trained.summary.ok  # one model failed its gates


def test_registration_sets_the_aliases_the_deployments_serve(trained: Platform) -> None:
    with trained.workspace() as ws, ws.store.sessions() as session:
        aliases = {(a.model, a.alias): a.version for a in session.scalars(select(ModelAlias))}
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "model.register")).all()
    assert aliases == {
        ("churn-lr", "latest"): 1,
        ("churn-lr", "champion"): 1,
        ("churn-tree", "latest"): 1,
        ("churn-tree", "challenger"): 1,
    }
    assert {e.details["model"] for e in audit} == {"churn-lr", "churn-tree"}


def test_a_run_records_params_metrics_data_revision_and_timing(trained: Platform) -> None:
    with trained.workspace() as ws, ws.store.sessions() as session:
        runs = {r.model: r for r in session.scalars(select(TrainingRun))}
        version = session.scalars(select(ModelVersion).where(ModelVersion.model == "churn-lr")).one()
        data = session.get(DatasetVersion, runs["churn-lr"].dataset_version_id)
    run = runs["churn-lr"]
    assert run.status == "succeeded"
    assert run.params["max_iter"] == 500 and run.params["seed"] == 42
    assert run.params["regularization"] == {"kind": "l2", "strength": 1.0}
    assert run.metrics["seconds"] > 0
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert data is not None and data.dataset == "customers" and data.rows == 4000
    assert data.lineage["source"] == "ingest" and data.lineage["from"] == {"path": "examples/churn/customers.csv"}
    assert version.run_id == run.id and version.dataset_version_id == data.id
    assert runs["churn-perfect"].status == "succeeded"  # it trained; its gate kept it out of the registry
    artifact = trained.artifacts / version.artifact
    assert {p.name for p in artifact.iterdir()} == {"model.joblib", "profile.json", "evaluation.json"}
    evaluation = json.loads((artifact / "evaluation.json").read_text())
    assert np.asarray(evaluation["confusion_matrix"]["matrix"]).sum() == 800  # the 20% test split


def test_the_saved_pipeline_applies_the_preprocessing_itself(trained: Platform) -> None:
    with trained.workspace() as ws, ws.store.sessions() as session:
        folder = session.scalars(select(ModelVersion.artifact).where(ModelVersion.model == "churn-lr")).one()
    bundle = joblib.load(io.BytesIO((trained.artifacts / folder / "model.joblib").read_bytes()))
    assert bundle["meta"]["inputs"] == {
        "tenure_months": "integer",
        "monthly_charges": "float",
        "total_charges": "float",
        "contract": "category",
        "payment_method": "category",
        "support_calls": "integer",
    }
    raw = pd.DataFrame(
        [
            {
                "tenure_months": 2.0,
                "monthly_charges": 99.0,
                "total_charges": np.nan,
                "contract": "month-to-month",
                "payment_method": "check",
                "support_calls": 6.0,
            }
        ]
    )
    proba = bundle["pipeline"].predict_proba(raw)  # a missing total and raw categories: the pipeline copes
    assert proba.shape == (1, 2) and 0.5 < proba[0][1] <= 1.0


def test_parity_with_scikit_learn_trained_directly(trained: Platform) -> None:
    """The same estimator, data, split and seed, written by hand: the same score to the last digit."""
    frame = pd.read_csv(DATA).drop_duplicates(ignore_index=True)
    frame = frame.drop(columns=["customer_id", "email"])
    frame["total_charges"] = frame["total_charges"].astype(float)
    y = frame.pop("churned").astype(bool)
    X_train, X_test, y_train, y_test = train_test_split(frame, y, test_size=0.2, random_state=42, stratify=y)
    median = X_train["total_charges"].median()
    for part in (X_train, X_test):
        part["total_charges"] = part["total_charges"].fillna(median)
        part["charges_per_month"] = part["total_charges"] / (part["tenure_months"] + 1)
    scaled = ["tenure_months", "monthly_charges", "total_charges", "charges_per_month", "support_calls"]
    direct = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("scale", StandardScaler(), scaled),
                        ("one_hot", OneHotEncoder(handle_unknown="ignore"), ["contract", "payment_method"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(C=1.0, max_iter=500, random_state=42)),
        ]
    ).fit(X_train, y_train)
    expected = roc_auc_score(y_test, direct.predict_proba(X_test)[:, 1])
    nebula = next(m for m in trained.summary.models if m.model == "churn-lr").metrics["roc_auc"]
    assert nebula == pytest.approx(expected, abs=1e-12)


def test_the_same_content_is_not_a_new_version(tmp_path: Path) -> None:
    platform = make_platform(tmp_path, train=False)
    with platform.workspace() as ws:
        first = pipeline.ingest(ws, "churn", "customers")
        again = pipeline.ingest(ws, "churn", "customers")
        assert (first.number, again.number, again.data_id) == (1, 1, first.data_id)
        changed = tmp_path / "customers.csv"
        changed.write_text(DATA.read_text().replace("C000001,", "C900001,", 1))
        second = pipeline.ingest(ws, "churn", "customers", file=changed)
    assert second.number == 2 and second.lineage["parent"] == first.data_id
    stored = platform.artifacts / "files" / "md5" / second.md5[:2] / second.md5[2:]
    assert stored.exists()  # DVC's remote layout, as uploads use


def test_a_failing_check_stops_the_pipeline_naming_column_rule_and_count(tmp_path: Path) -> None:
    platform = make_platform(tmp_path, train=False)
    lines = DATA.read_text().splitlines()
    body = [line.replace(",month-to-month,", ",weekly,") for line in lines[1:50]]
    changed = sum(",weekly," in line for line in body)
    bad = [lines[0], *body]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(bad) + "\n")
    with platform.workspace() as ws:
        with pytest.raises(StageError) as caught:
            pipeline.run_project(ws, "churn", ["churn-lr"], files={"customers": path})
        with ws.store.sessions() as session:
            assert session.scalar(select(TrainingRun)) is None  # nothing trained on bad data
    message = str(caught.value)
    assert "column contract" in message and f"{changed} rows" in message
    assert "weekly" in message or "categories" in message


def test_the_job_entry_point_runs_a_stage_and_reports_failure_by_exit_status(tmp_path: Path) -> None:
    platform = make_platform(tmp_path, train=False)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(compiled(CONFIG)))
    env = {"DATABASE_URL": platform.url, "NEBULA_ARTIFACTS": str(platform.artifacts), "PATH": "/usr/bin:/bin"}

    def job(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "nebula_runtime.jobs",
                *args,
                "--manifest",
                str(manifest),
                "--project",
                "churn",
                "--workdir",
                str(tmp_path / "work"),
                "--root",
                str(ROOT),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    done = job("pipeline", "--model", "churn-tree")
    assert done.returncode == 0, done.stderr
    assert "registered version 1" in done.stdout
    assert json.loads((tmp_path / "work" / "registry" / "churn-tree.json").read_text())["version"] == 1
    failed = job("pipeline", "--model", "churn-perfect")
    assert failed.returncode == 1
    assert "gates failed: roc_auc >= 0.99" in failed.stdout
    gate = job("evaluate", "--model", "churn-perfect")
    assert gate.returncode == 1 and "fails its gates" in gate.stderr and "Traceback" not in gate.stderr
    usage = job("train")
    assert usage.returncode != 0 and "--model" in usage.stderr
    shutil.rmtree(tmp_path / "work")


def test_nebula_run_explains_its_mistakes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nebula_compile.cli import main

    shutil.copy(CONFIG, tmp_path / "nebula.yaml")
    config = str(tmp_path / "nebula.yaml")
    assert main(["run", "churn", config, "--data", "customers"]) == 2
    assert "--data takes DATASET=PATH" in capsys.readouterr().err
    assert main(["run", "nowhere", config]) == 1
    assert "no project 'nowhere'" in capsys.readouterr().err
    assert main(["run", "churn", config, "--model", "churn-xl"]) == 1
    assert "has no model 'churn-xl'; it has: churn-lr, churn-perfect, churn-tree" in capsys.readouterr().err
    assert main(["run", "churn", config, "--data", "orders=x.csv"]) == 1
    assert "has no dataset 'orders'" in capsys.readouterr().err


def test_concurrent_registrations_each_get_their_own_version(database: str, tmp_path: Path) -> None:
    """The training Job, a retraining CronJob and `nebula run` may register at the same moment."""
    import threading

    from nebula_runtime.ml import train as trainstage
    from nebula_runtime.ml.registry import resolve
    from nebula_runtime.ml.workspace import opened

    with opened(compiled(CONFIG), database_url=database, artifacts=str(tmp_path / "a"), root=ROOT) as ws:
        pipeline.ingest(ws, "churn", "customers")
        outcomes = [trainstage.train(ws, "churn", "churn-tree") for _ in range(4)]
        numbers: list[int | None] = []
        errors: list[BaseException] = []

        def register(outcome: trainstage.Outcome) -> None:
            try:
                numbers.append(trainstage.register(ws, "churn", "churn-tree", outcome))
            except BaseException as err:  # collected, then reported by the assertion below
                errors.append(err)

        threads = [threading.Thread(target=register, args=(o,)) for o in outcomes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors and sorted(n for n in numbers if n is not None) == [1, 2, 3, 4]
        assert resolve(ws.artifacts, "dev", "churn", "churn-tree", "latest")[0] == 4
