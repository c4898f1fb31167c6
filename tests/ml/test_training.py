"""Every algorithm of the language trains, is judged by its task's metrics and serves; tuning searches its space
with each strategy; seeds repeat runs; the torch nets report their curves while they train."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs, make_classification, make_regression
from sqlalchemy import select

from nebula_compile.state.schema import RunMetric, TrainingRun
from nebula_runtime.ml import pipeline
from nebula_runtime.ml.serving import load
from nebula_runtime.ml.train import train
from nebula_runtime.ml.workspace import StageError
from tests.ml.conftest import Platform, make_platform

CLASSIFIERS = {
    "logistic_regression": "{max_iter: 300}",
    "svm": "{kernel: rbf, C: 1.0}",
    "decision_tree": "{max_depth: 5}",
    "random_forest": "{n_estimators: 30, max_depth: 6}",
    "gradient_boosting": "{n_estimators: 40}",
    "neural_network": "{architecture: mlp, hidden_layers: [32], epochs: 15, learning_rate: 0.01}",
}
REGRESSORS = {
    "linear_regression": "{regularization: {kind: l2, strength: 0.1}}",
    "polynomial_regression": "{degree: 2}",
    "svr": "{C: 10.0}",
    "decision_tree": "{max_depth: 6}",
    "random_forest": "{n_estimators: 30}",
    "gradient_boosting": "{n_estimators: 60}",
    "neural_network": "{architecture: mlp, hidden_layers: [32], epochs: 30, learning_rate: 0.01}",
}
UNSUPERVISED = {
    "kmeans": ("clustering", "{n_clusters: 3}"),
    "hierarchical": ("clustering", "{n_clusters: 3, linkage: ward}"),
    "dbscan": ("clustering", "{eps: 1.5, min_samples: 5}"),
    "pca": ("dimensionality_reduction", "{n_components: 2}"),
    "tsne": ("dimensionality_reduction", "{n_components: 2, perplexity: 20, max_iter: 250}"),
}


def write_data(folder: Path) -> None:
    X, y = make_classification(n_samples=600, n_features=6, n_informative=4, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    frame["label"] = np.where(y == 1, "yes", "no")
    frame.to_csv(folder / "classes.csv", index=False)
    X, y = make_regression(n_samples=600, n_features=5, noise=5.0, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    frame["value"] = y
    frame.to_csv(folder / "values.csv", index=False)
    X, _ = make_blobs(n_samples=450, centers=3, n_features=4, cluster_std=0.6, random_state=0)
    pd.DataFrame(X, columns=[f"x{i}" for i in range(4)]).to_csv(folder / "points.csv", index=False)


def config(folder: Path, tuning: str = "") -> Path:
    models = []
    for name, params in CLASSIFIERS.items():
        framework = "\n    framework: torch" if name == "neural_network" else ""
        models.append(
            f"c-{name.replace('_', '-')}:\n    task: classification\n    algorithm: {name}{framework}\n"
            f"    dataset: classes\n    target: label\n    params: {params}\n    gates: ['accuracy >= 0.7']"
        )
    for name, params in REGRESSORS.items():
        models.append(
            f"r-{name.replace('_', '-')}:\n    task: regression\n    algorithm: {name}\n"
            f"    dataset: values\n    target: value\n    params: {params}\n    gates: ['r2 >= 0.5']"
        )
    for name, (task, params) in UNSUPERVISED.items():
        gate = "silhouette >= 0.3" if task == "clustering" else "trustworthiness >= 0.7"
        metric = "silhouette" if task == "clustering" else "trustworthiness"
        models.append(
            f"u-{name}:\n    task: {task}\n    algorithm: {name}\n    dataset: points\n    params: {params}\n"
            f"    metrics: [{metric}]\n    gates: ['{gate}']"
        )
    body = "\n".join(textwrap.indent(m, "      ") for m in models)
    text = f"""\
version: 1
projects:
  lab:
    datasets:
      classes: {{source: {{path: classes.csv}}}}
      values: {{source: {{path: values.csv}}}}
      points: {{source: {{path: points.csv}}}}
    models:
{body}
{tuning}"""
    path = folder / "nebula.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    folder = tmp_path_factory.mktemp("lab")
    write_data(folder)
    platform = make_platform(folder, config(folder), train=False)
    with platform.workspace() as ws:
        ws.root = folder
        platform.summary = pipeline.run_project(ws, "lab")
    return platform


def test_every_algorithm_trains_passes_its_gate_and_registers(lab: Platform) -> None:
    results = {m.model: m for m in lab.summary.models}
    assert len(results) == len(CLASSIFIERS) + len(REGRESSORS) + len(UNSUPERVISED)
    failed = {name: (r.error, r.metrics) for name, r in results.items() if r.version != 1}
    assert not failed
    assert set(results["c-svm"].metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert set(results["r-svr"].metrics) == {"rmse", "mae", "r2"}
    assert results["u-kmeans"].metrics["silhouette"] > 0.5


@pytest.mark.parametrize(
    ("model", "row"),
    [
        ("c-random-forest", {f"x{i}": 0.1 * i for i in range(6)}),
        ("c-neural-network", {f"x{i}": 0.1 * i for i in range(6)}),
        ("r-polynomial-regression", {f"x{i}": 0.2 for i in range(5)}),
        ("u-hierarchical", {f"x{i}": 1.0 for i in range(4)}),
        ("u-dbscan", {f"x{i}": 99.0 for i in range(4)}),
        ("u-pca", {f"x{i}": 1.0 for i in range(4)}),
    ],
)
def test_registered_models_answer_new_rows(lab: Platform, model: str, row: dict[str, float]) -> None:
    with lab.workspace() as ws, ws.store.sessions() as session:
        run = session.scalars(select(TrainingRun).where(TrainingRun.model == model)).one()
        loaded = load(ws.artifacts, run.params["artifact"], "lab", model, 1)
    [answer] = loaded.predict([row])
    if model.startswith("c-"):
        assert answer["prediction"] in ("yes", "no")
    elif model == "u-dbscan":
        assert answer["prediction"] == -1  # far from every core point: noise
    elif model == "u-pca":
        assert len(answer["embedding"]) == 2
    else:
        assert isinstance(answer["prediction"], int | float)


def test_tsne_says_it_cannot_embed_new_rows(lab: Platform) -> None:
    with lab.workspace() as ws, ws.store.sessions() as session:
        run = session.scalars(select(TrainingRun).where(TrainingRun.model == "u-tsne")).one()
        loaded = load(ws.artifacts, run.params["artifact"], "lab", "u-tsne", 1)
    with pytest.raises(ValueError, match="t-SNE embeds only the rows it was trained on"):
        loaded.predict([{f"x{i}": 1.0 for i in range(4)}])


def test_the_torch_net_writes_its_curves_while_it_trains(lab: Platform) -> None:
    with lab.workspace() as ws, ws.store.sessions() as session:
        run = session.scalars(select(TrainingRun).where(TrainingRun.model == "c-neural-network")).one()
        points = session.scalars(select(RunMetric).where(RunMetric.run_id == run.id)).all()
    curves: dict[str, list[int]] = {}
    for point in points:
        curves.setdefault(point.name, []).append(point.step)
    assert set(curves) >= {"loss", "accuracy"}
    assert sorted(curves["loss"]) == list(range(1, 16))  # 15 epochs, one point each
    stamps = sorted(p.at for p in points if p.name == "loss")
    assert stamps[0] < stamps[-1]  # written as the epochs went, not at the end


def test_gradient_boosting_records_its_stages(lab: Platform) -> None:
    with lab.workspace() as ws, ws.store.sessions() as session:
        run = session.scalars(select(TrainingRun).where(TrainingRun.model == "c-gradient-boosting")).one()
        steps = session.scalars(select(RunMetric.step).where(RunMetric.run_id == run.id, RunMetric.name == "loss"))
        assert len(list(steps)) == 40


@pytest.mark.parametrize("strategy", ["grid", "random", "bayesian"])
def test_tuning_searches_the_space_with_cross_validation(tmp_path: Path, strategy: str) -> None:
    write_data(tmp_path)
    text = f"""\
version: 1
projects:
  lab:
    datasets:
      classes: {{source: {{path: classes.csv}}}}
    models:
      tuned:
        task: classification
        algorithm: random_forest
        dataset: classes
        target: label
        params: {{n_estimators: 20}}
        tuning:
          strategy: {strategy}
          trials: 4
          cv: 3
          metric: f1
          space:
            max_depth: [2, 8]
            min_samples_leaf: {{low: 1, high: 9, step: 4}}
"""
    (tmp_path / "nebula.yaml").write_text(text)
    platform = make_platform(tmp_path, tmp_path / "nebula.yaml", train=False)
    messages: list[str] = []
    with platform.workspace() as ws:
        ws.root, ws.say = tmp_path, messages.append
        summary = pipeline.run_project(ws, "lab")
        with ws.store.sessions() as session:
            run = session.scalars(select(TrainingRun)).one()
    [result] = summary.models
    assert result.version == 1
    trials = [m for m in messages if m.strip().startswith("trial ")]
    assert len(trials) == 4
    assert run.params["max_depth"] in (2, 8) and run.params["min_samples_leaf"] in (1, 5, 9)
    assert "f1" in trials[0]


def test_the_same_seed_repeats_a_run_and_another_seed_does_not(tmp_path: Path) -> None:
    write_data(tmp_path)

    def auc(seed: int, folder: Path) -> float:
        folder.mkdir()
        shutil_copy = (tmp_path / "classes.csv").read_bytes()
        (folder / "classes.csv").write_bytes(shutil_copy)
        (folder / "nebula.yaml").write_text(
            "version: 1\nprojects:\n  lab:\n    datasets:\n      classes: {source: {path: classes.csv}}\n"
            "    models:\n      forest:\n        task: classification\n        algorithm: random_forest\n"
            f"        dataset: classes\n        target: label\n        params: {{n_estimators: 10}}\n        seed: {seed}\n"
        )
        platform = make_platform(folder, folder / "nebula.yaml", train=False)
        with platform.workspace() as ws:
            ws.root = folder
            return pipeline.run_project(ws, "lab").models[0].metrics["roc_auc"]

    first, again, other = auc(7, tmp_path / "a"), auc(7, tmp_path / "b"), auc(8, tmp_path / "c")
    assert first == again
    assert first != other


def one_model(folder: Path, path: str = "classes.csv", target: str = "label") -> Platform:
    """A platform with one decision tree over one file of `folder`."""
    (folder / "nebula.yaml").write_text(
        f"version: 1\nprojects:\n  lab:\n    datasets:\n      classes: {{source: {{path: {path}}}}}\n"
        "    models:\n      m:\n        task: classification\n        algorithm: decision_tree\n"
        f"        dataset: classes\n        target: {target}\n"
    )
    return make_platform(folder, folder / "nebula.yaml", train=False)


def test_a_target_that_is_not_in_the_data_is_named(tmp_path: Path) -> None:
    write_data(tmp_path)
    with one_model(tmp_path, target="outcome").workspace() as ws:
        ws.root = tmp_path
        summary = pipeline.run_project(ws, "lab")
    assert summary.models[0].error is not None and "no target column 'outcome'" in summary.models[0].error


def test_a_missing_data_file_stops_with_its_path(tmp_path: Path) -> None:
    with one_model(tmp_path, path="nowhere.csv").workspace() as ws:
        ws.root = tmp_path
        with pytest.raises(StageError, match=r"nowhere\.csv"):
            pipeline.run_project(ws, "lab")


def test_a_pinned_dataset_version_is_what_trains(tmp_path: Path) -> None:
    write_data(tmp_path)
    platform = one_model(tmp_path)
    with platform.workspace() as ws:
        ws.root = tmp_path
        first = pipeline.ingest(ws, "lab", "classes")
        changed = tmp_path / "more.csv"
        changed.write_text((tmp_path / "classes.csv").read_text() + "0,0,0,0,0,0,yes\n")
        pipeline.ingest(ws, "lab", "classes", file=changed)
    text = (
        (tmp_path / "nebula.yaml")
        .read_text()
        .replace("{source: {path: classes.csv}}", '{source: {path: classes.csv}, version: "1"}')
    )
    (tmp_path / "nebula.yaml").write_text(text)
    pinned = make_platform(tmp_path, tmp_path / "nebula.yaml", train=False)  # same store, the pin applied
    with pinned.workspace() as ws:
        ws.root = tmp_path
        outcome = train(ws, "lab", "m")
    assert outcome.dataset_version_id == first.data_id


def test_one_failing_model_stops_only_itself(tmp_path: Path) -> None:
    """A derived feature that divides by zero leaves missing values a linear model refuses: that model fails,
    with its reason; the project's other model still trains and registers."""
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 10, "b": [0.0, 1.0, 2.0, 3.0] * 10, "y": ["p", "q"] * 20})
    frame.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "nebula.yaml").write_text(
        "version: 1\nprojects:\n  lab:\n    datasets:\n      rows: {source: {path: rows.csv}}\n"
        "    preprocessing:\n      ratio:\n        input: rows\n        features: {r: a / b}\n"
        "    models:\n      linear:\n        algorithm: logistic_regression\n        dataset: ratio\n        target: y\n"
        "      tree:\n        task: classification\n        algorithm: decision_tree\n        dataset: rows\n"
        "        target: y\n"
    )
    platform = make_platform(tmp_path, tmp_path / "nebula.yaml", train=False)
    with platform.workspace() as ws:
        ws.root = tmp_path
        summary = pipeline.run_project(ws, "lab")
    results = {m.model: m for m in summary.models}
    assert results["linear"].version is None and "NaN" in str(results["linear"].error)
    assert results["tree"].version == 1


@pytest.mark.parametrize("labels", [[False, True], ["no", "yes"], [0, 1, 2, 3]])
def test_the_confusion_matrix_is_scikit_learns(labels: list[object]) -> None:
    from sklearn.metrics import confusion_matrix

    from nebula_runtime.ml.estimators import confusion

    rng = np.random.default_rng(0)
    truth, said = rng.choice(np.asarray(labels), 500), rng.choice(np.asarray(labels), 500)
    assert confusion(truth, said, labels)["matrix"] == confusion_matrix(truth, said, labels=labels).tolist()
    unseen = np.asarray(["a", "zz"], dtype=object)  # a label outside the classes is left out, as scikit-learn does
    assert confusion(unseen, np.asarray(["a", "a"], dtype=object), ["a", "b"])["matrix"] == [[1, 0], [0, 0]]
