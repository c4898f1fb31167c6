"""What the language knows about machine learning: which algorithm does which task,
which parameters it takes, which metrics measure which task. Data, not code."""

from __future__ import annotations

from types import MappingProxyType

ALGORITHM_TASKS = MappingProxyType(
    {
        "logistic_regression": ("classification",),
        "svm": ("classification",),
        "decision_tree": ("classification", "regression"),
        "random_forest": ("classification", "regression"),
        "gradient_boosting": ("classification", "regression"),
        "neural_network": ("classification", "regression"),
        "linear_regression": ("regression",),
        "polynomial_regression": ("regression",),
        "svr": ("regression",),
        "kmeans": ("clustering",),
        "hierarchical": ("clustering",),
        "dbscan": ("clustering",),
        "pca": ("dimensionality_reduction",),
        "tsne": ("dimensionality_reduction",),
    }
)

SUPERVISED = frozenset({"classification", "regression"})

_TREE = ("max_depth", "min_samples_split", "min_samples_leaf", "max_features", "criterion", "ccp_alpha", "class_weight")

ALGORITHM_PARAMS = MappingProxyType(
    {
        "logistic_regression": (
            "regularization",
            "C",
            "penalty",
            "solver",
            "max_iter",
            "tol",
            "class_weight",
            "fit_intercept",
        ),
        "svm": ("regularization", "C", "kernel", "gamma", "degree", "class_weight", "probability", "max_iter", "tol"),
        "decision_tree": _TREE,
        "random_forest": (*_TREE, "n_estimators", "bootstrap", "n_jobs", "max_samples"),
        "gradient_boosting": (
            "learning_rate",
            "n_estimators",
            "max_depth",
            "subsample",
            "min_samples_split",
            "min_samples_leaf",
            "max_features",
            "loss",
            "n_iter_no_change",
        ),
        "neural_network": (
            "learning_rate",
            "batch_size",
            "epochs",
            "regularization",
            "architecture",
            "hidden_layers",
            "activation",
            "dropout",
            "optimizer",
            "channels",
            "kernel_size",
            "patience",
        ),
        "linear_regression": ("regularization", "fit_intercept", "positive"),
        "polynomial_regression": ("regularization", "degree", "fit_intercept", "interaction_only", "include_bias"),
        "svr": ("regularization", "C", "kernel", "gamma", "degree", "epsilon", "max_iter", "tol"),
        "kmeans": ("n_clusters", "init", "n_init", "max_iter", "tol"),
        "hierarchical": ("n_clusters", "linkage", "metric", "distance_threshold"),
        "dbscan": ("eps", "min_samples", "metric"),
        "pca": ("n_components", "whiten", "svd_solver"),
        "tsne": ("n_components", "perplexity", "early_exaggeration", "learning_rate", "max_iter", "metric", "init"),
    }
)

TASK_METRICS = MappingProxyType(
    {
        "classification": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"),
        "regression": ("rmse", "mae", "r2", "mape"),
        "clustering": ("silhouette", "davies_bouldin", "calinski_harabasz"),
        "dimensionality_reduction": ("explained_variance", "reconstruction_error", "trustworthiness"),
    }
)

DEFAULT_METRICS = MappingProxyType(
    {
        "classification": ("accuracy", "precision", "recall", "f1", "roc_auc"),
        "regression": ("rmse", "mae", "r2"),
        "clustering": ("silhouette",),
        "dimensionality_reduction": ("explained_variance",),
    }
)

LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape", "davies_bouldin", "reconstruction_error"})

NUMERIC_COLUMNS = frozenset({"integer", "float"})
