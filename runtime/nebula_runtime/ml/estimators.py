"""Every algorithm of the language as a scikit-learn estimator, and the metrics and gates that judge it.

`estimator(spec)` turns a compiled model spec (algorithm, task, framework, params,
seed) into an unfitted estimator. The language's `regularization: {kind, strength}`
maps onto each library's own knob (C = 1/strength, alpha, weight decay); other
parameters pass through by name, so whatever scikit-learn or the torch networks
take can be written in nebula.yaml. Clustering methods without `predict` and
t-SNE get the out-of-sample rule documented on their wrappers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from sklearn import metrics as skm
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.manifold import TSNE, trustworthiness
from sklearn.neighbors import NearestNeighbors
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from nebula_compile.spec.catalog import LOWER_IS_BETTER


class ModelError(ValueError):
    """A model that cannot be built or trained as written; the message says what to change."""


def _regularization(params: dict[str, Any]) -> tuple[str, float] | None:
    value = params.pop("regularization", None)
    if not value:
        return None
    return str(value.get("kind", "l2")), float(value.get("strength", 1.0))


def _c(strength: float) -> float:
    return 1.0 / strength if strength > 0 else 1e12


def _linear(params: dict[str, Any], seed: int) -> Any:
    reg = _regularization(params)
    if reg is None or reg[0] == "none" or reg[1] == 0:
        return LinearRegression(**params)
    kind, strength = reg
    if kind == "l2":
        return Ridge(alpha=strength, random_state=seed, **params)
    if kind == "l1":
        return Lasso(alpha=strength, random_state=seed, **params)
    return ElasticNet(alpha=strength, random_state=seed, **params)


def _logistic(params: dict[str, Any], seed: int) -> Any:
    reg = _regularization(params)
    if reg is not None:
        kind, strength = reg
        if kind == "none":
            params.setdefault("C", 1e12)
        else:
            params.setdefault("C", _c(strength))
            if kind == "l1":
                params.setdefault("l1_ratio", 1.0)
                params.setdefault("solver", "saga")
            elif kind == "elasticnet":
                params.setdefault("l1_ratio", 0.5)
                params.setdefault("solver", "saga")
    return LogisticRegression(random_state=seed, **params)


def _svm(cls: type, params: dict[str, Any], seed: int | None) -> Any:
    reg = _regularization(params)
    if reg is not None and reg[0] != "none":
        params.setdefault("C", _c(reg[1]))
    if seed is not None:
        params.setdefault("random_state", seed)
    return cls(**params)


def _torch(task: str, params: dict[str, Any], seed: int) -> Any:
    from nebula_runtime.ml.nets import TorchClassifier, TorchRegressor

    reg = _regularization(params)
    if reg is not None:
        kind, strength = reg
        if kind in ("l2", "elasticnet"):
            params.setdefault("weight_decay", strength)
        if kind in ("l1", "elasticnet"):
            params.setdefault("l1", strength)
    if "hidden_layers" in params and isinstance(params["hidden_layers"], list):
        params["hidden_layers"] = tuple(params["hidden_layers"])
    if "channels" in params and isinstance(params["channels"], list):
        params["channels"] = tuple(params["channels"])
    cls = TorchClassifier if task == "classification" else TorchRegressor
    return cls(random_state=seed, **params)


def _sklearn_mlp(task: str, params: dict[str, Any], seed: int) -> Any:
    reg = _regularization(params)
    if reg is not None and reg[0] != "none":
        params.setdefault("alpha", reg[1])
    if "learning_rate" in params:
        params["learning_rate_init"] = params.pop("learning_rate")
    if "epochs" in params:
        params["max_iter"] = params.pop("epochs")
    if "hidden_layers" in params:
        params["hidden_layer_sizes"] = tuple(params.pop("hidden_layers"))
    cls = MLPClassifier if task == "classification" else MLPRegressor
    return cls(random_state=seed, **params)


def estimator(spec: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> Any:
    """The unfitted estimator for a compiled model spec; `params` (from tuning) override the spec's."""
    algorithm, task = spec["algorithm"], spec.get("task") or "classification"
    seed = int(spec.get("seed", 42))
    given = {**dict(spec.get("params") or {}), **dict(params or {})}
    try:
        return _build(algorithm, task, spec.get("framework") or "sklearn", given, seed)
    except TypeError as err:  # an unknown parameter name: the library's own words, with ours around them
        raise ModelError(f"{algorithm}: {err}") from None


def _build(algorithm: str, task: str, framework: str, params: dict[str, Any], seed: int) -> Any:
    classify = task == "classification"
    if algorithm == "neural_network":
        return _torch(task, params, seed) if framework == "torch" else _sklearn_mlp(task, params, seed)
    if algorithm == "logistic_regression":
        return _logistic(params, seed)
    if algorithm == "svm":
        # probabilities (for ROC AUC and the API's answers) come from calibration on held-out folds
        params.pop("probability", None)
        return CalibratedClassifierCV(_svm(SVC, params, seed), ensemble=False, cv=3)
    if algorithm == "svr":
        return _svm(SVR, params, None)
    if algorithm == "linear_regression":
        return _linear(params, seed)
    if algorithm == "polynomial_regression":
        poly = {k: params.pop(k) for k in ("degree", "interaction_only", "include_bias") if k in params}
        poly.setdefault("include_bias", False)
        return Pipeline([("poly", PolynomialFeatures(**poly)), ("linear", _linear(params, seed))])
    if algorithm in ("decision_tree", "random_forest", "gradient_boosting"):
        _regularization(params)  # trees regularize through depth and leaves; the language's knob is ignored
        table = {
            "decision_tree": (DecisionTreeClassifier, DecisionTreeRegressor),
            "random_forest": (RandomForestClassifier, RandomForestRegressor),
            "gradient_boosting": (GradientBoostingClassifier, GradientBoostingRegressor),
        }
        cls = table[algorithm][0 if classify else 1]
        return cls(random_state=seed, **params)
    if algorithm == "kmeans":
        params.setdefault("n_init", 10)
        return KMeans(random_state=seed, **params)
    if algorithm == "hierarchical":
        return Hierarchical(**params)
    if algorithm == "dbscan":
        return DensityClusters(**params)
    if algorithm == "pca":
        return PCA(random_state=seed, **params)
    if algorithm == "tsne":
        return Embedding(random_state=seed, **params)
    raise ModelError(f"unknown algorithm '{algorithm}'")


class Hierarchical(ClusterMixin, BaseEstimator):
    """Agglomerative clustering; new points join the cluster whose training centroid is nearest."""

    def __init__(
        self,
        n_clusters: int | None = 2,
        linkage: str = "ward",
        metric: str = "euclidean",
        distance_threshold: float | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.linkage = linkage
        self.metric = metric
        self.distance_threshold = distance_threshold

    def fit(self, X: Any, y: Any = None) -> Hierarchical:
        X = np.asarray(X, dtype="float64")
        model = AgglomerativeClustering(
            n_clusters=None if self.distance_threshold is not None else self.n_clusters,
            linkage=self.linkage,
            metric=self.metric,
            distance_threshold=self.distance_threshold,
        )
        self.labels_ = model.fit_predict(X)
        self.centroids_ = np.stack([X[self.labels_ == k].mean(axis=0) for k in range(self.labels_.max() + 1)])
        return self

    def predict(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype="float64")
        distances = ((X[:, None, :] - self.centroids_[None, :, :]) ** 2).sum(axis=2)
        return np.asarray(distances.argmin(axis=1))


class DensityClusters(ClusterMixin, BaseEstimator):
    """DBSCAN; a new point takes the cluster of the nearest core sample within eps, else noise (-1)."""

    def __init__(self, eps: float = 0.5, min_samples: int = 5, metric: str = "euclidean") -> None:
        self.eps = eps
        self.min_samples = min_samples
        self.metric = metric

    def fit(self, X: Any, y: Any = None) -> DensityClusters:
        X = np.asarray(X, dtype="float64")
        model = DBSCAN(eps=self.eps, min_samples=self.min_samples, metric=self.metric).fit(X)
        self.labels_ = model.labels_
        core = model.core_sample_indices_
        self.core_ = X[core] if len(core) else X[:0]
        self.core_labels_ = model.labels_[core]
        return self

    def predict(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype="float64")
        if not len(self.core_):
            return np.full(len(X), -1)
        index = NearestNeighbors(n_neighbors=1, metric=self.metric).fit(self.core_)
        distance, nearest = index.kneighbors(X)
        labels = self.core_labels_[nearest[:, 0]]
        return np.where(distance[:, 0] <= self.eps, labels, -1)


class Embedding(TransformerMixin, BaseEstimator):
    """t-SNE: it embeds the training rows and has no rule for new rows, so `transform` says so."""

    def __init__(
        self,
        n_components: int = 2,
        perplexity: float = 30.0,
        early_exaggeration: float = 12.0,
        learning_rate: float | str = "auto",
        max_iter: int = 1000,
        metric: str = "euclidean",
        init: str = "pca",
        random_state: int = 42,
    ) -> None:
        self.n_components = n_components
        self.perplexity = perplexity
        self.early_exaggeration = early_exaggeration
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.metric = metric
        self.init = init
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> Embedding:
        X = np.asarray(X, dtype="float64")
        perplexity = min(self.perplexity, max(1.0, (len(X) - 1) / 3))
        self.embedding_ = TSNE(
            n_components=self.n_components,
            perplexity=perplexity,
            early_exaggeration=self.early_exaggeration,
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            metric=self.metric,
            init=self.init,
            random_state=self.random_state,
        ).fit_transform(X)
        k = max(1, min(5, len(X) // 2 - 1))
        self.trustworthiness_ = float(trustworthiness(X, self.embedding_, n_neighbors=k))
        return self

    def transform(self, X: Any) -> np.ndarray:
        raise ModelError("t-SNE embeds only the rows it was trained on; use pca to project new rows")


# --- metrics ---------------------------------------------------------------------------------------


def positive_label(classes: Sequence[Any]) -> Any:
    """The class that precision, recall and F1 are about in a binary problem: True, 1, or the last in order."""
    for candidate in (True, 1, 1.0, "yes", "true", "1"):
        if candidate in list(classes):
            return candidate
    return list(classes)[-1]


def classification_metrics(
    y_true: Any, y_pred: Any, proba: np.ndarray | None, classes: Sequence[Any], wanted: Sequence[str]
) -> dict[str, Any]:
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    options: dict[str, Any] = {"average": average, "zero_division": 0}
    if binary:
        options["pos_label"] = positive_label(classes)
    out: dict[str, Any] = {}
    for name in wanted:
        if name == "accuracy":
            out[name] = skm.accuracy_score(y_true, y_pred)
        elif name == "precision":
            out[name] = skm.precision_score(y_true, y_pred, **options)
        elif name == "recall":
            out[name] = skm.recall_score(y_true, y_pred, **options)
        elif name == "f1":
            out[name] = skm.f1_score(y_true, y_pred, **options)
        elif name == "roc_auc" and proba is not None and len(set(np.asarray(y_true).tolist())) > 1:
            if binary:
                column = list(classes).index(positive_label(classes))
                out[name] = skm.roc_auc_score(np.asarray(y_true) == classes[column], proba[:, column])
            else:
                out[name] = skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=list(classes))
        elif name == "log_loss" and proba is not None:
            out[name] = skm.log_loss(y_true, proba, labels=list(classes))
    return {k: float(v) for k, v in out.items()}


def confusion(y_true: Any, y_pred: Any, classes: Sequence[Any]) -> dict[str, Any]:
    """Rows: true class, columns: predicted class, in `classes` order (scikit-learn's convention)."""
    labels = np.asarray(list(classes))
    truth, said = np.asarray(y_true), np.asarray(y_pred)
    order = np.argsort(labels)
    try:
        t = order[np.searchsorted(labels[order], truth)]
        p = order[np.searchsorted(labels[order], said)]
        exact = bool((labels[t] == truth).all() and (labels[p] == said).all())
    except (TypeError, IndexError):  # labels that do not sort together: scikit-learn's general path
        exact = False
    if exact:
        k = len(labels)
        matrix = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    else:
        matrix = skm.confusion_matrix(truth, said, labels=list(classes))
    return {"labels": [plain(c) for c in classes], "matrix": matrix.tolist()}


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for JSON); anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


def regression_metrics(y_true: Any, y_pred: Any, wanted: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in wanted:
        if name == "rmse":
            out[name] = math.sqrt(skm.mean_squared_error(y_true, y_pred))
        elif name == "mae":
            out[name] = float(skm.mean_absolute_error(y_true, y_pred))
        elif name == "r2":
            out[name] = float(skm.r2_score(y_true, y_pred))
        elif name == "mape":
            out[name] = float(skm.mean_absolute_percentage_error(y_true, y_pred))
    return out


def clustering_metrics(X: np.ndarray, labels: np.ndarray, wanted: Sequence[str]) -> dict[str, float]:
    clusters = len(set(labels.tolist()) - {-1})
    if clusters < 2 or clusters >= len(X):
        return {}  # the scores are undefined for one cluster; gates on them then fail as "not measured"
    out: dict[str, float] = {}
    for name in wanted:
        if name == "silhouette":
            out[name] = float(skm.silhouette_score(X, labels, sample_size=min(len(X), 5000), random_state=0))
        elif name == "davies_bouldin":
            out[name] = float(skm.davies_bouldin_score(X, labels))
        elif name == "calinski_harabasz":
            out[name] = float(skm.calinski_harabasz_score(X, labels))
    return out


def reduction_metrics(model: Any, X: np.ndarray, embedded: np.ndarray, wanted: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in wanted:
        if name == "explained_variance" and hasattr(model, "explained_variance_ratio_"):
            out[name] = float(np.sum(model.explained_variance_ratio_))
        elif name == "reconstruction_error" and hasattr(model, "inverse_transform"):
            out[name] = float(np.mean((X - model.inverse_transform(embedded)) ** 2))
        elif name == "trustworthiness":
            k = max(1, min(5, len(X) // 2 - 1))
            out[name] = float(trustworthiness(X, embedded, n_neighbors=k))
    return out


def scoring(metric: str, classes: Sequence[Any] | None) -> Any:
    """The scikit-learn scorer for a metric of the language (tuning's cross-validation).

    Losses are negated by scikit-learn's convention (higher is better); binary precision, recall and F1 are
    about the same positive class as the evaluation's (True, 1, or the last label), whatever the labels are.
    """
    binary = classes is not None and len(classes) == 2
    if binary and metric in ("precision", "recall", "f1"):
        function = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[metric]
        return skm.make_scorer(function, pos_label=positive_label(list(classes or [])), zero_division=0)
    table = {
        "accuracy": "accuracy",
        "precision": "precision_macro",
        "recall": "recall_macro",
        "f1": "f1_macro",
        "roc_auc": "roc_auc" if binary else "roc_auc_ovr",
        "log_loss": "neg_log_loss",
        "rmse": "neg_root_mean_squared_error",
        "mae": "neg_mean_absolute_error",
        "r2": "r2",
        "mape": "neg_mean_absolute_percentage_error",
    }
    if metric not in table:
        raise ModelError(f"tuning cannot cross-validate '{metric}'; pick one of {', '.join(table)}")
    return table[metric]


def negated(metric: str) -> bool:
    """Whether scikit-learn reports this metric negated (a loss), so a study maximizes its scores."""
    return metric in ("log_loss", "rmse", "mae", "mape")


# --- gates ------------------------------------------------------------------------------------------

_OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def check_gates(gates: Sequence[Mapping[str, Any]], metrics: Mapping[str, float]) -> list[dict[str, Any]]:
    """Each gate with its measured value and whether it passed; an unmeasured metric fails its gate."""
    results = []
    for gate in gates:
        name, op, value = gate["metric"], gate.get("op", ">="), float(gate["value"])
        measured = metrics.get(name)
        passed = measured is not None and bool(_OPS[op](float(measured), value))
        results.append({"gate": f"{name} {op} {value:g}", "measured": measured, "passed": passed})
    return results


def better(metric: str, direction: str | None = None) -> Literal["minimize", "maximize"]:
    if direction in ("minimize", "maximize"):
        return direction  # type: ignore[return-value]
    return "minimize" if metric in LOWER_IS_BETTER else "maximize"
