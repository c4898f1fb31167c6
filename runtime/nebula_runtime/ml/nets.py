"""Neural networks in torch as scikit-learn estimators, for `algorithm: neural_network`.

`TorchClassifier` and `TorchRegressor` take every setting as a constructor parameter and
store it untouched, so `get_params`, `set_params`, `clone`, `cross_val_score` and a tuner
that sets parameters by name all work as they do for scikit-learn's own models. Two
architectures: a multi-layer perceptron over the feature rows, and a small convolutional
network that reshapes each flat row into an image (C, H, W) first.

Training is repeatable: `fit` seeds torch inside a forked RNG state (the caller's global
RNG is left as it was) and shuffles with its own `torch.Generator`, so the same seed and
data give bit-identical weights on CPU. The fitted weights live in `state_dict_` as CPU
tensors; the live module is a cache that pickling drops and `predict` rebuilds once, so a
model trained on a GPU loads and predicts on a machine without one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin  # type: ignore[import-untyped, unused-ignore]
from sklearn.exceptions import NotFittedError  # type: ignore[import-untyped, unused-ignore]
from sklearn.utils.multiclass import type_of_target  # type: ignore[import-untyped, unused-ignore]
from torch import nn

__all__ = ["EpochCallback", "TorchClassifier", "TorchRegressor"]

EpochCallback = Callable[[int, dict[str, float]], object]
"""Called after each epoch with its 0-based index and its metrics; raising stops `fit`."""

ARCHITECTURES = ("mlp", "cnn")
ACTIVATIONS: Mapping[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}
OPTIMIZERS = ("adam", "sgd", "adamw")
DEVICES = ("auto", "cpu", "cuda")

_SGD_MOMENTUM = 0.9
"""Plain SGD at the default learning rate barely moves; momentum makes `optimizer: sgd` usable."""
_MIN_IMPROVEMENT = 1e-4
"""Early stopping counts an epoch as better only when it lowers the loss by this fraction."""
_EVAL_CHUNK = 4096
"""Rows per forward pass at predict and validation time: bounded memory for any input size."""

_FITTED = (
    "_module",
    "state_dict_",
    "net_spec_",
    "device_",
    "history_",
    "n_epochs_",
    "best_epoch_",
    "n_features_in_",
    "feature_names_in_",
    "classes_",
    "y_mean_",
    "y_scale_",
)
"""What `fit` sets: cleared first, so that a fit that fails leaves no stale model behind."""


@dataclass(frozen=True)
class _NetSpec:
    """What the fitted module is made of, fixed at fit time so `set_params` later cannot break a reload."""

    architecture: str
    in_shape: tuple[int, ...]
    hidden_layers: tuple[int, ...]
    activation: str
    dropout: float
    channels: tuple[int, ...]
    kernel_size: int
    n_outputs: int


class _Net(nn.Module):
    """Convolutional blocks (CNN only), then dense hidden layers, then a linear output."""

    def __init__(self, spec: _NetSpec) -> None:
        super().__init__()
        self.in_shape = spec.in_shape
        self.convolutional = spec.architecture == "cnn"
        activation = ACTIVATIONS[spec.activation]
        features: list[nn.Module] = []
        if self.convolutional:
            in_channels, height, width = spec.in_shape
            padding = spec.kernel_size // 2
            for out_channels in spec.channels:
                features += [nn.Conv2d(in_channels, out_channels, spec.kernel_size, padding=padding), activation()]
                height += 2 * padding - spec.kernel_size + 1
                width += 2 * padding - spec.kernel_size + 1
                if height >= 2 and width >= 2:
                    features.append(nn.MaxPool2d(2))
                    height, width = height // 2, width // 2
                in_channels = out_channels
            width_in = in_channels * height * width
        else:
            width_in = spec.in_shape[0]
        self.features = nn.Sequential(*features)
        head: list[nn.Module] = []
        for units in spec.hidden_layers:
            head += [nn.Linear(width_in, units), activation()]
            if spec.dropout > 0:
                head.append(nn.Dropout(spec.dropout))
            width_in = units
        head.append(nn.Linear(width_in, spec.n_outputs))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.convolutional:
            x = self.features(x.reshape(-1, *self.in_shape)).flatten(1)
        return self.head(x)  # type: ignore[no-any-return]


def _conv_shape(in_shape: tuple[int, ...], kernel_size: int, channels: tuple[int, ...]) -> None:
    """Raise when the image is too small for the convolutions (an output of height or width 0)."""
    _, height, width = in_shape
    padding = kernel_size // 2
    for _ in channels:
        height += 2 * padding - kernel_size + 1
        width += 2 * padding - kernel_size + 1
        if height < 1 or width < 1:
            raise ValueError(f"image_shape {in_shape} is too small for kernel_size={kernel_size}")
        if height >= 2 and width >= 2:
            height, width = height // 2, width // 2


def _as_features(X: npt.ArrayLike, what: str = "X") -> npt.NDArray[np.float32]:
    """A C-contiguous 2-D float32 array of finite values, or a ValueError that says what is wrong."""
    if hasattr(X, "tocsr"):
        raise ValueError(f"{what} is a sparse matrix, which is not supported; pass {what}.toarray()")
    given = np.asarray(X)
    if np.iscomplexobj(given):
        raise ValueError(f"{what} holds complex numbers: Complex data not supported")
    try:
        array = np.ascontiguousarray(given, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be numeric: {exc}") from None
    if array.ndim != 2:
        hint = "; Reshape your data: for a single row use X.reshape(1, -1)" if array.ndim == 1 else ""
        raise ValueError(f"{what} must be 2-D (rows x features), got shape {array.shape}{hint}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{what} has shape {array.shape}: it needs at least 1 row and 1 feature")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or infinite values (or values too large for float32)")
    return array


def _as_target(y: npt.ArrayLike | None, n_rows: int, what: str = "y") -> npt.NDArray[Any]:
    if y is None:
        raise ValueError(f"fit requires y to be passed, but the target {what} is None")
    array = np.asarray(y)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.ravel()
    if array.ndim != 1:
        raise ValueError(f"{what} must be 1-D (one target per row), got shape {array.shape}")
    if array.shape[0] != n_rows:
        raise ValueError(f"{what} has {array.shape[0]} rows but its X has {n_rows}")
    return array


def _feature_names(X: object) -> npt.NDArray[np.object_] | None:
    """A data frame's column names when they are all strings (scikit-learn's `feature_names_in_` rule)."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = list(columns)
    if names and all(isinstance(name, str) for name in names):
        return np.asarray(names, dtype=object)
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _int_tuple(value: object, name: str, *, allow_empty: bool) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list of positive integers, got {value!r}")
    if not all(_is_int(v) and int(v) > 0 for v in value):
        raise ValueError(f"{name} must be a list of positive integers, got {value!r}")
    if not value and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return tuple(int(v) for v in value)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device; use device='auto' or 'cpu'")
    return torch.device(device)


class _TorchEstimator(BaseEstimator):  # type: ignore[misc, unused-ignore]
    """The shared estimator: parameters, training loop, persistence and inference."""

    _task: Literal["classification", "regression"]
    _module: _Net | None = None
    """The live module for inference; a cache of `state_dict_` that pickling leaves out."""

    def __init__(
        self,
        *,
        architecture: str = "mlp",
        hidden_layers: Sequence[int] = (64, 32),
        activation: str = "relu",
        dropout: float = 0.0,
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 3,
        image_shape: Sequence[int] | None = None,
        learning_rate: float = 1e-3,
        batch_size: int = 32,
        epochs: int = 10,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        l1: float = 0.0,
        patience: int | None = None,
        validation_fraction: float = 0.0,
        random_state: int = 42,
        device: str = "auto",
        callbacks: EpochCallback | None = None,
    ) -> None:
        self.architecture = architecture
        self.hidden_layers = hidden_layers
        self.activation = activation
        self.dropout = dropout
        self.channels = channels
        self.kernel_size = kernel_size
        self.image_shape = image_shape
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.l1 = l1
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.callbacks = callbacks

    # --- parameters ------------------------------------------------------------------------

    def _check_params(self) -> None:
        choices: dict[str, tuple[object, Sequence[str]]] = {
            "architecture": (self.architecture, ARCHITECTURES),
            "activation": (self.activation, tuple(ACTIVATIONS)),
            "optimizer": (self.optimizer, OPTIMIZERS),
            "device": (self.device, DEVICES),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        _int_tuple(self.hidden_layers, "hidden_layers", allow_empty=True)
        if self.architecture == "cnn":
            _int_tuple(self.channels, "channels", allow_empty=False)
        for name, value in (
            ("kernel_size", self.kernel_size),
            ("batch_size", self.batch_size),
            ("epochs", self.epochs),
        ):
            if not (_is_int(value) and int(value) >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (self.patience is None or (_is_int(self.patience) and int(self.patience) >= 1)):
            raise ValueError(f"patience must be None or a positive integer, got {self.patience!r}")
        if not _is_int(self.random_state):
            raise ValueError(f"random_state must be an integer, got {self.random_state!r}")
        if not (_is_real(self.learning_rate) and float(self.learning_rate) > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        for name, value in (("weight_decay", self.weight_decay), ("l1", self.l1)):
            if not (_is_real(value) and float(value) >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        for name, value in (("dropout", self.dropout), ("validation_fraction", self.validation_fraction)):
            if not (_is_real(value) and 0 <= float(value) < 1):
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
        if self.callbacks is not None and not callable(self.callbacks):
            raise ValueError(f"callbacks must be None or a callable on_epoch(epoch, metrics), got {self.callbacks!r}")

    def _input_shape(self, n_features: int) -> tuple[int, ...]:
        if self.architecture == "mlp":
            return (n_features,)
        if self.image_shape is None:
            side = math.isqrt(n_features)
            if side * side != n_features:
                raise ValueError(
                    f"architecture='cnn' needs image_shape: {n_features} features are not a square image; "
                    "set image_shape=(H, W) or (C, H, W)"
                )
            shape: tuple[int, ...] = (1, side, side)
        else:
            given = _int_tuple(self.image_shape, "image_shape", allow_empty=False)
            if len(given) not in (2, 3):
                raise ValueError(f"image_shape must be (H, W) or (C, H, W), got {self.image_shape!r}")
            shape = (1, *given) if len(given) == 2 else given
            if math.prod(shape) != n_features:
                raise ValueError(
                    f"image_shape {tuple(self.image_shape)} holds {math.prod(shape)} values but X has {n_features} features"
                )
        _conv_shape(shape, int(self.kernel_size), _int_tuple(self.channels, "channels", allow_empty=False))
        return shape

    # --- training --------------------------------------------------------------------------

    def _encode_target(self, y: npt.NDArray[Any]) -> torch.Tensor:
        """Set the target's fitted attributes (classes, scale) from the training target; return it encoded."""
        raise NotImplementedError

    def _transform_target(self, y: npt.NDArray[Any], what: str) -> torch.Tensor:
        """Encode a further target (the validation set's) with the fitted attributes."""
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _epoch_metrics(self, prefix: str, loss: float, correct: float, n_rows: int) -> dict[str, float]:
        raise NotImplementedError

    def fit(
        self,
        X: npt.ArrayLike,
        y: npt.ArrayLike,
        X_val: npt.ArrayLike | None = None,
        y_val: npt.ArrayLike | None = None,
    ) -> Self:
        """Train from scratch on (X, y); validate each epoch on (X_val, y_val) or on `validation_fraction` of X."""
        self._check_params()
        for name in _FITTED:
            self.__dict__.pop(name, None)
        features = _as_features(X)
        target = _as_target(y, features.shape[0])
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        names = _feature_names(X)
        self.n_features_in_ = features.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        in_shape = self._input_shape(self.n_features_in_)
        encoded = self._encode_target(target)

        validation: tuple[npt.NDArray[np.float32], torch.Tensor] | None = None
        if X_val is not None and y_val is not None:
            val_features = _as_features(X_val, "X_val")
            if val_features.shape[1] != self.n_features_in_:
                raise ValueError(f"X_val has {val_features.shape[1]} features but X has {self.n_features_in_}")
            val_target = _as_target(y_val, val_features.shape[0], "y_val")
            validation = (val_features, self._transform_target(val_target, "y_val"))
        elif self.validation_fraction > 0:
            n_rows = features.shape[0]
            n_val = min(max(round(n_rows * float(self.validation_fraction)), 1), n_rows - 1)
            if n_val < 1:
                raise ValueError("validation_fraction needs at least 2 rows of training data")
            order = np.random.default_rng(int(self.random_state)).permutation(n_rows)
            validation = (features[order[:n_val]], encoded[order[:n_val]])
            features, encoded = features[order[n_val:]], encoded[order[n_val:]]

        spec = _NetSpec(
            architecture=self.architecture,
            in_shape=in_shape,
            hidden_layers=_int_tuple(self.hidden_layers, "hidden_layers", allow_empty=True),
            activation=self.activation,
            dropout=float(self.dropout),
            channels=_int_tuple(self.channels, "channels", allow_empty=False) if self.architecture == "cnn" else (),
            kernel_size=int(self.kernel_size),
            n_outputs=self._n_outputs(),
        )
        device = _resolve_device(self.device)
        # Weight init and dropout draw from torch's global RNG: fork it so that seeding here
        # makes training repeatable without changing the caller's random stream.
        fork_devices = (
            [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
        )
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(int(self.random_state))
            module = self._train(spec, device, features, encoded, validation)
        module.eval()
        self.net_spec_ = spec
        self.device_ = device.type
        self.state_dict_ = {name: tensor.detach().to("cpu", copy=True) for name, tensor in module.state_dict().items()}
        self._module = module
        return self

    def _train(
        self,
        spec: _NetSpec,
        device: torch.device,
        features: npt.NDArray[np.float32],
        target: torch.Tensor,
        validation: tuple[npt.NDArray[np.float32], torch.Tensor] | None,
    ) -> _Net:
        module = _Net(spec).to(device)
        weights = [p for p in module.parameters() if p.ndim > 1]
        biases = [p for p in module.parameters() if p.ndim <= 1]
        # Regularisation applies to weights only (as scikit-learn's MLP does): biases shift, they do not overfit.
        groups = [
            {"params": weights, "weight_decay": float(self.weight_decay)},
            {"params": biases, "weight_decay": 0.0},
        ]
        lr = float(self.learning_rate)
        optimizer: torch.optim.Optimizer
        if self.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=_SGD_MOMENTUM)
        elif self.optimizer == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=lr)
        else:
            optimizer = torch.optim.Adam(groups, lr=lr)

        x_train = torch.from_numpy(features).to(device)
        y_train = target.to(device)
        val = None if validation is None else (torch.from_numpy(validation[0]).to(device), validation[1].to(device))
        shuffle = torch.Generator().manual_seed(int(self.random_state))
        n_rows, batch_size, l1 = x_train.shape[0], int(self.batch_size), float(self.l1)
        callback = self.callbacks
        history: dict[str, list[float]] = {}
        patience = None if self.patience is None else int(self.patience)
        best_loss, best_epoch, best_state = math.inf, 0, None

        for epoch in range(int(self.epochs)):
            module.train()
            order = torch.randperm(n_rows, generator=shuffle).to(device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device)
            for start in range(0, n_rows, batch_size):
                rows = order[start : start + batch_size]
                x_batch, y_batch = x_train[rows], y_train[rows]
                output = module(x_batch)
                loss = self._loss(output, y_batch)
                objective = loss + l1 * sum(w.abs().sum() for w in weights) if l1 > 0 else loss
                optimizer.zero_grad(set_to_none=True)
                torch.autograd.backward(objective)
                optimizer.step()
                with torch.no_grad():
                    loss_sum += loss.detach() * rows.shape[0]
                    if self._task == "classification":
                        correct += (output.argmax(1) == y_batch).sum()
            metrics = self._epoch_metrics("", float(loss_sum) / n_rows, float(correct), n_rows)
            if val is not None:
                val_loss, val_correct = self._evaluate(module, *val)
                metrics |= self._epoch_metrics("val_", val_loss, val_correct, val[0].shape[0])
            for name, value in metrics.items():
                history.setdefault(name, []).append(value)
            self.history_ = history
            self.n_epochs_ = epoch + 1
            if callback is not None:
                callback(epoch, dict(metrics))
            if patience is not None:
                monitored = metrics["val_loss" if val is not None else "loss"]
                if monitored < best_loss - _MIN_IMPROVEMENT * abs(best_loss) or best_state is None:
                    best_loss, best_epoch = monitored, epoch
                    best_state = {name: t.detach().clone() for name, t in module.state_dict().items()}
                elif epoch - best_epoch >= patience:
                    break
        if best_state is not None:
            module.load_state_dict(best_state)
            self.best_epoch_ = best_epoch
        else:
            self.best_epoch_ = self.n_epochs_ - 1
        return module

    def _evaluate(self, module: _Net, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """Mean loss and count of right answers (classification) over a whole set, in eval mode."""
        module.eval()
        loss_sum, correct = 0.0, 0.0
        with torch.no_grad():
            for start in range(0, x.shape[0], _EVAL_CHUNK):
                output = module(x[start : start + _EVAL_CHUNK])
                target = y[start : start + _EVAL_CHUNK]
                loss_sum += float(self._loss(output, target)) * target.shape[0]
                if self._task == "classification":
                    correct += float((output.argmax(1) == target).sum())
        return loss_sum / x.shape[0], correct

    # --- persistence -----------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # The module may sit on a GPU and the callback may be a closure: neither belongs in a pickle.
        state = dict(super().__getstate__())
        state.pop("_module", None)
        state["callbacks"] = None
        return state

    # --- inference -------------------------------------------------------------------------

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "state_dict_", None) is not None

    def _inference_module(self) -> _Net:
        module = self._module
        if module is not None:
            return module
        if getattr(self, "state_dict_", None) is None:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit first")
        # Built on the meta device then given the stored tensors: no init work, no draw on the global RNG.
        with torch.device("meta"):
            module = _Net(self.net_spec_)
        module.load_state_dict(self.state_dict_, assign=True)
        if self.device_ == "cuda" and torch.cuda.is_available():
            module = module.to("cuda")
        module.eval()
        self._module = module
        return module

    def _forward(self, X: npt.ArrayLike) -> torch.Tensor:
        """The network's raw outputs for X, on the CPU."""
        module = self._inference_module()
        features = _as_features(X)
        if features.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {features.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        fitted_names = getattr(self, "feature_names_in_", None)
        names = _feature_names(X)
        if fitted_names is not None and names is not None and not np.array_equal(names, fitted_names):
            raise ValueError(
                f"X's columns {list(names)} differ from those seen in fit {list(fitted_names)} (same names, same order)"
            )
        device = next(module.parameters()).device
        with torch.inference_mode():
            inputs = torch.from_numpy(features)
            if inputs.shape[0] <= _EVAL_CHUNK:
                output: torch.Tensor = module(inputs.to(device))
                return output.cpu()
            return torch.cat([module(chunk.to(device)).cpu() for chunk in torch.split(inputs, _EVAL_CHUNK)])


class TorchClassifier(ClassifierMixin, _TorchEstimator):  # type: ignore[misc, unused-ignore]
    """A torch network for classification: softmax outputs, one per class, trained with cross-entropy.

    Labels may be of any sortable kind (ints, strings, bools); `classes_` holds them sorted
    and `predict` returns them. Per-epoch metrics: loss, accuracy, val_loss, val_accuracy.
    """

    _task = "classification"

    def _encode_target(self, y: npt.NDArray[Any]) -> torch.Tensor:
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"y must hold class labels, got a {kind} target; use TorchRegressor for numbers")
        classes, codes = np.unique(y, return_inverse=True)
        if classes.shape[0] < 2:
            raise ValueError(f"y must hold at least 2 classes, got only {classes.tolist()}")
        self.classes_ = classes
        return torch.from_numpy(codes.reshape(-1).astype(np.int64))

    def _transform_target(self, y: npt.NDArray[Any], what: str) -> torch.Tensor:
        codes = np.searchsorted(self.classes_, y)
        known = (codes < self.classes_.shape[0]) & (self.classes_[np.minimum(codes, self.classes_.shape[0] - 1)] == y)
        if not known.all():
            unknown = np.unique(y[~known])[:5].tolist()
            raise ValueError(f"{what} has labels not seen in y: {unknown}")
        return torch.from_numpy(codes.astype(np.int64))

    def _n_outputs(self) -> int:
        return int(self.classes_.shape[0])

    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output, target)

    def _epoch_metrics(self, prefix: str, loss: float, correct: float, n_rows: int) -> dict[str, float]:
        return {f"{prefix}loss": loss, f"{prefix}accuracy": correct / n_rows}

    def predict_proba(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Class probabilities, one column per class in `classes_` order."""
        return self._forward(X).double().softmax(dim=1).numpy()

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[Any]:
        """The most probable class of each row, as one of the original labels."""
        best = self._forward(X).argmax(dim=1).numpy()
        return self.classes_[best]  # type: ignore[no-any-return]


class TorchRegressor(RegressorMixin, _TorchEstimator):  # type: ignore[misc, unused-ignore]
    """A torch network for regression of one target, trained with mean squared error.

    The target is standardised for training (`y_mean_`, `y_scale_`) and `predict` undoes it.
    Per-epoch metrics in the target's own units: loss and val_loss (MSE), rmse and val_rmse.
    """

    _task = "regression"

    def _encode_target(self, y: npt.NDArray[Any]) -> torch.Tensor:
        values = self._numbers(y, "y")
        self.y_mean_ = float(values.mean())
        scale = float(values.std())
        self.y_scale_ = scale if scale > 0 else 1.0
        return self._transform_target(values, "y")

    def _transform_target(self, y: npt.NDArray[Any], what: str) -> torch.Tensor:
        values = self._numbers(y, what)
        return torch.from_numpy(((values - self.y_mean_) / self.y_scale_).astype(np.float32))

    @staticmethod
    def _numbers(y: npt.NDArray[Any], what: str) -> npt.NDArray[np.float64]:
        try:
            values = y.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what} must be numeric: {exc}") from None
        if not np.isfinite(values).all():
            raise ValueError(f"{what} contains NaN or infinite values")
        return values

    def _n_outputs(self) -> int:
        return 1

    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(output.squeeze(1), target)

    def _epoch_metrics(self, prefix: str, loss: float, correct: float, n_rows: int) -> dict[str, float]:
        mse = loss * self.y_scale_**2
        return {f"{prefix}loss": mse, f"{prefix}rmse": math.sqrt(mse)}

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The predicted target of each row, in the target's units, as a 1-D array."""
        return self._forward(X).squeeze(1).double().numpy() * self.y_scale_ + self.y_mean_
