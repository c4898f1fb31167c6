"""The torch estimators behind `algorithm: neural_network`: they learn, repeat, persist and fit scikit-learn."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import NotFittedError
from sklearn.metrics import log_loss, r2_score
from sklearn.model_selection import cross_val_score, train_test_split

from nebula_runtime.ml.nets import TorchClassifier, TorchRegressor


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Small networks train no faster on two threads, and far slower when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def separable(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=n, n_features=8, n_informative=4, n_redundant=0, class_sep=2.0, flip_y=0.0, random_state=seed
    )
    return X.astype(np.float32), y


def smooth(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 3))
    y = 3 * np.sin(X[:, 0]) + X[:, 1] ** 2 - 0.5 * X[:, 2] + 10
    return X, y


def weight_norm(model: TorchClassifier | TorchRegressor) -> float:
    return sum(float(t.pow(2).sum()) for t in model.state_dict_.values() if t.ndim > 1) ** 0.5


def test_mlp_learns_a_separable_problem() -> None:
    X, y = separable()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    model = TorchClassifier(epochs=15).fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.9
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(X_test))


def test_cnn_learns_digits() -> None:
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    model = TorchClassifier(architecture="cnn", epochs=8, learning_rate=1e-2).fit(X_train, y_train)
    assert model.net_spec_.in_shape == (1, 8, 8)
    assert model.score(X_test, y_test) >= 0.9


def test_cnn_takes_an_explicit_image_shape_and_rejects_a_non_square_row() -> None:
    X = np.random.default_rng(0).normal(size=(40, 12))
    y = np.arange(40) % 2
    model = TorchClassifier(architecture="cnn", image_shape=(3, 4), channels=(4,), epochs=1).fit(X, y)
    assert model.net_spec_.in_shape == (1, 3, 4)
    assert model.predict(X).shape == (40,)
    with pytest.raises(ValueError, match="12 features are not a square image"):
        TorchClassifier(architecture="cnn", epochs=1).fit(X, y)
    with pytest.raises(ValueError, match=r"image_shape \(2, 5\) holds 10 values but X has 12 features"):
        TorchClassifier(architecture="cnn", image_shape=(2, 5), epochs=1).fit(X, y)


def test_regressor_fits_a_smooth_function() -> None:
    X, y = smooth()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    model = TorchRegressor(epochs=40, learning_rate=3e-3).fit(X_train, y_train)
    predicted = model.predict(X_test)
    assert predicted.shape == (len(X_test),) and predicted.dtype == np.float64
    assert r2_score(y_test, predicted) > 0.8
    assert model.y_mean_ == pytest.approx(y_train.mean())


def test_history_and_callback_report_every_epoch() -> None:
    X, y = separable(200)
    seen: list[tuple[int, dict[str, float]]] = []
    model = TorchClassifier(
        epochs=4, validation_fraction=0.25, callbacks=lambda epoch, metrics: seen.append((epoch, metrics))
    ).fit(X, y)
    keys = {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert set(model.history_) == keys
    assert all(len(values) == 4 for values in model.history_.values())
    assert [epoch for epoch, _ in seen] == [0, 1, 2, 3]
    assert all(set(metrics) == keys for _, metrics in seen)
    assert [metrics["val_loss"] for _, metrics in seen] == model.history_["val_loss"]
    assert all(0 <= a <= 1 for a in model.history_["accuracy"] + model.history_["val_accuracy"])
    assert model.history_["loss"][-1] < model.history_["loss"][0]


def test_regression_history_is_in_the_targets_units() -> None:
    X, y = smooth(300)
    model = TorchRegressor(epochs=3).fit(X[:200], y[:200], X_val=X[200:], y_val=y[200:])
    assert set(model.history_) == {"loss", "rmse", "val_loss", "val_rmse"}
    assert all(len(values) == 3 for values in model.history_.values())
    assert model.history_["val_rmse"][-1] == pytest.approx(model.history_["val_loss"][-1] ** 0.5)
    # the last epoch's validation MSE is what predict gives on the same rows
    mse = float(np.mean((model.predict(X[200:]) - y[200:]) ** 2))
    assert model.history_["val_loss"][-1] == pytest.approx(mse, rel=1e-4)


def test_same_seed_repeats_bit_for_bit_and_another_seed_differs() -> None:
    X, y = separable(200)
    params = {"epochs": 3, "dropout": 0.2, "validation_fraction": 0.2}
    first = TorchClassifier(**params).fit(X, y)
    second = TorchClassifier(**params).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert first.history_ == second.history_
    other = TorchClassifier(**params, random_state=7).fit(X, y)
    assert any(not torch.equal(first.state_dict_[k], other.state_dict_[k]) for k in first.state_dict_)


def test_fit_leaves_the_global_rng_alone() -> None:
    X, y = separable(100)
    before = torch.random.get_rng_state()
    TorchClassifier(epochs=1, dropout=0.5).fit(X, y)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_pickle_round_trip_predicts_identically_and_drops_the_callback() -> None:
    X, y = separable(200)
    model = TorchClassifier(epochs=2, callbacks=lambda epoch, metrics: None).fit(X, y)
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded.callbacks is None and loaded._module is None
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.history_ == model.history_

    X_reg, y_reg = smooth(200)
    regressor = TorchRegressor(architecture="mlp", hidden_layers=[16], epochs=2).fit(X_reg, y_reg)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(regressor)).predict(X_reg), regressor.predict(X_reg))


def test_labels_of_any_kind_round_trip() -> None:
    X, y = separable(200)
    names = np.where(y == 1, "churn", "stay")
    model = TorchClassifier(epochs=10).fit(X, names)
    assert model.classes_.tolist() == ["churn", "stay"]
    assert set(model.predict(X)) <= {"churn", "stay"}
    assert model.score(X, names) > 0.9
    assert pickle.loads(pickle.dumps(model)).predict(X[:5]).tolist() == model.predict(X[:5]).tolist()

    flags = TorchClassifier(epochs=1).fit(X, y == 1)
    assert flags.classes_.tolist() == [False, True] and flags.predict(X).dtype == bool

    three = np.array([5, 7, 9])[np.arange(200) % 3]
    assert TorchClassifier(epochs=1).fit(X, three).predict_proba(X).shape == (200, 3)


def test_validation_labels_must_be_known() -> None:
    X, y = separable(100)
    with pytest.raises(ValueError, match=r"y_val has labels not seen in y: \[2\]"):
        TorchClassifier(epochs=1).fit(X, y, X_val=X[:3], y_val=[0, 1, 2])
    with pytest.raises(ValueError, match="give both X_val and y_val"):
        TorchClassifier(epochs=1).fit(X, y, X_val=X[:3])


def test_clone_and_cross_val_score() -> None:
    X, y = separable(300)
    model = TorchClassifier(hidden_layers=[32], epochs=15, learning_rate=3e-3)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "state_dict_")
    copy.set_params(epochs=2, activation="tanh")
    assert copy.epochs == 2 and model.epochs == 15
    scores = cross_val_score(model, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85

    X_reg, y_reg = smooth(300)
    r2 = cross_val_score(TorchRegressor(epochs=15, learning_rate=3e-3), X_reg, y_reg, cv=2)
    assert r2.min() > 0.8


def test_early_stopping_stops_on_a_plateau_and_restores_the_best_weights() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    y = rng.integers(0, 2, size=300)  # labels are noise: validation loss cannot keep improving
    model = TorchClassifier(epochs=200, patience=3, learning_rate=1e-2).fit(X[:200], y[:200], X[200:], y[200:])
    assert model.n_epochs_ < 200
    assert len(model.history_["val_loss"]) == model.n_epochs_
    assert model.n_epochs_ - 1 - model.best_epoch_ == 3
    best = min(model.history_["val_loss"])
    assert model.history_["val_loss"][model.best_epoch_] == best
    assert log_loss(y[200:], model.predict_proba(X[200:])) == pytest.approx(best, rel=1e-4)


def test_regularisation_shrinks_the_weights() -> None:
    X, y = separable(200)
    plain = weight_norm(TorchClassifier(epochs=10).fit(X, y))
    assert weight_norm(TorchClassifier(epochs=10, weight_decay=0.1).fit(X, y)) < 0.9 * plain
    assert weight_norm(TorchClassifier(epochs=10, l1=1e-2).fit(X, y)) < 0.9 * plain
    assert weight_norm(TorchClassifier(epochs=10, optimizer="adamw", weight_decay=1.0).fit(X, y)) < plain


def test_sgd_and_other_activations_train() -> None:
    X, y = separable(200)
    model = TorchClassifier(optimizer="sgd", activation="gelu", learning_rate=1e-2, epochs=10).fit(X, y)
    assert model.score(X, y) > 0.85
    assert TorchRegressor(activation="sigmoid", epochs=1).fit(*smooth(50)).predict(smooth(5)[0]).shape == (5,)


def test_bad_input_gets_a_clear_message() -> None:
    X, y = separable(100)
    model = TorchClassifier(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but TorchClassifier is expecting 8 features as input"):
        model.predict(X[:, :5])
    with pytest.raises(ValueError, match=r"single row use X.reshape\(1, -1\)"):
        model.predict(X[0])
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or infinite values"):
        model.predict(bad)
    with pytest.raises(ValueError, match="X contains NaN or infinite values"):
        TorchClassifier(epochs=1).fit(bad, y)
    with pytest.raises(ValueError, match="X must be numeric"):
        model.predict([["a"] * 8])
    with pytest.raises(ValueError, match="y has 99 rows but its X has 100"):
        TorchClassifier(epochs=1).fit(X, y[:-1])
    with pytest.raises(ValueError, match="continuous target; use TorchRegressor"):
        TorchClassifier(epochs=1).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="at least 2 classes"):
        TorchClassifier(epochs=1).fit(X, np.zeros(100))
    with pytest.raises(NotFittedError):
        TorchRegressor().predict(X)


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("architecture", "rnn", "architecture must be one of 'mlp', 'cnn'"),
        ("activation", "swish", "activation must be one of"),
        ("optimizer", "lbfgs", "optimizer must be one of"),
        ("hidden_layers", [8, 0], "hidden_layers must be a list of positive integers"),
        ("dropout", 1.0, r"dropout must be a number in \[0, 1\)"),
        ("epochs", 0, "epochs must be a positive integer"),
        ("patience", 0, "patience must be None or a positive integer"),
        ("learning_rate", -1.0, "learning_rate must be a positive number"),
        ("l1", -0.1, "l1 must be a number >= 0"),
        ("callbacks", "print", "callbacks must be None or a callable"),
    ],
)
def test_bad_parameters_are_refused_at_fit(param: str, value: object, message: str) -> None:
    X, y = separable(50)
    with pytest.raises(ValueError, match=message):
        TorchClassifier(**{param: value}).fit(X, y)


def test_data_frames_keep_their_column_names() -> None:
    X, y = separable(100)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)])
    model = TorchClassifier(epochs=1).fit(frame, y)
    assert model.feature_names_in_.tolist() == list(frame.columns)
    np.testing.assert_array_equal(model.predict(frame), model.predict(X))
    with pytest.raises(ValueError, match="differ from those seen in fit"):
        model.predict(frame[frame.columns[::-1]])
