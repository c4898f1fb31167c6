"""Preprocessing from nebula.yaml as a scikit-learn pipeline, saved inside the model.

A preprocessing step has two kinds of work. Row work (drop duplicates, drop rows
with missing values) changes which examples exist, so it runs on the training
data only (`prepare_rows`). Column work (drop columns, fill missing values,
derived features, log, scaling, normalization, one-hot and ordinal encoding) is
fitted on the training split and becomes the first part of the model's pipeline
(`build`), so the model server applies exactly what training did. Steps chain:
a step whose input is another step runs after it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from nebula_compile.spec.expressions import parse

NUMERIC = ("integer", "float")

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "log": np.log,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "round": np.round,
    "minimum": np.minimum,
    "maximum": np.maximum,
}


class PreprocessingError(ValueError):
    """A preprocessing step that cannot apply to its data; the message names the step and the column."""


def coerce(frame: pd.DataFrame, kinds: Mapping[str, str]) -> pd.DataFrame:
    """Give declared columns their declared types, the same way at training and at serving.

    Numbers become floats (missing: NaN), booleans 0/1 floats, categories and strings
    Python strings (missing: None). Columns not declared keep what the reader gave.
    """
    out = {}
    for name in frame.columns:
        column = frame[name]
        kind = kinds.get(str(name))
        if kind in NUMERIC:
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
        elif kind == "boolean":
            if pd.api.types.is_bool_dtype(column.dtype):
                out[name] = column.astype("float64")
            else:
                out[name] = column.map(_boolean).astype("float64")
        elif kind in ("string", "category"):
            text = column.astype(str).astype(object)
            out[name] = text.where(column.notna(), None)
        else:
            out[name] = column
    return pd.DataFrame(out, index=frame.index)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _boolean(value: Any) -> float:
    if _missing(value):
        return float("nan")
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "t", "y"):
            return 1.0
        if lowered in ("false", "0", "no", "f", "n"):
            return 0.0
        return float("nan")
    return 1.0 if bool(value) else 0.0


def infer_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Kinds of columns nobody declared, from what the reader found."""
    kinds = {}
    for name in frame.columns:
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype):
            kinds[str(name)] = "boolean"
        elif pd.api.types.is_integer_dtype(dtype):
            kinds[str(name)] = "integer"
        elif pd.api.types.is_numeric_dtype(dtype):
            kinds[str(name)] = "float"
        else:
            kinds[str(name)] = "string"
    return kinds


def prepare_rows(
    frame: pd.DataFrame, steps: Sequence[tuple[str, Mapping[str, Any]]], target: str | None
) -> pd.DataFrame:
    """The row work of every step, in order, then rows without a target are left out."""
    for name, step in steps:
        clean = step.get("clean") or {}
        if clean.get("drop_duplicates"):
            frame = frame.drop_duplicates(ignore_index=True)
        missing = clean.get("missing") or {}
        if missing.get("strategy") == "drop":
            subset = missing.get("columns") or None
            _known(name, "clean.missing.columns", subset or [], frame.columns)
            frame = frame.dropna(subset=subset, ignore_index=True)
    if target is not None and target in frame.columns:
        frame = frame[frame[target].notna()].reset_index(drop=True)
    return frame


def _known(step: str, field: str, columns: Sequence[str], available: Any) -> None:
    have = [str(c) for c in available]
    for column in columns:
        if column not in have:
            raise PreprocessingError(
                f"preprocessing '{step}': {field} names column '{column}', which the data does not have "
                f"(it has: {', '.join(have[:20])}{' ...' if len(have) > 20 else ''})"
            )


class DropColumns(TransformerMixin, BaseEstimator):
    """Leave out columns; a column missing from serving input is fine, it is dropped anyway."""

    def __init__(self, columns: Sequence[str] = ()) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: Any = None) -> DropColumns:
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X.drop(columns=[c for c in self.columns if c in X.columns])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([c for c in self.feature_names_in_ if c not in set(self.columns)], dtype=object)


class FillMissing(TransformerMixin, BaseEstimator):
    """Fill missing values with a value learned on the training data (mean, median, most frequent) or a constant."""

    def __init__(self, strategy: str = "median", columns: Sequence[str] | None = None, fill_value: Any = None) -> None:
        self.strategy = strategy
        self.columns = columns
        self.fill_value = fill_value

    def fit(self, X: pd.DataFrame, y: Any = None) -> FillMissing:
        # without a list, every column gets a fill value, so serving can fill one that training never saw empty
        columns = list(self.columns) if self.columns else [str(c) for c in X.columns]
        self.fills_: dict[str, Any] = {}
        for column in columns:
            values = X[column]
            numeric = pd.api.types.is_numeric_dtype(values.dtype)
            if self.strategy == "constant":
                fill = self.fill_value if self.fill_value is not None else (0.0 if numeric else "missing")
            elif self.strategy in ("mean", "median") and not numeric:
                if self.columns:
                    raise PreprocessingError(
                        f"the {self.strategy} of text column '{column}' does not exist; "
                        "use strategy most_frequent or constant for it"
                    )
                mode = values.mode(dropna=True)
                fill = mode.iloc[0] if len(mode) else "missing"
            elif self.strategy == "mean":
                fill = float(values.mean())
            elif self.strategy == "median":
                fill = float(values.median())
            else:
                mode = values.mode(dropna=True)
                fill = mode.iloc[0] if len(mode) else (0.0 if numeric else "missing")
            self.fills_[column] = fill.item() if isinstance(fill, np.generic) else fill
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        fills = {c: v for c, v in self.fills_.items() if c in X.columns}
        return X.fillna(fills) if fills else X

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.feature_names_in_


class DeriveFeatures(TransformerMixin, BaseEstimator):
    """New columns from arithmetic over columns (nebula_compile.spec.expressions); nothing to learn."""

    def __init__(self, expressions: Mapping[str, str] | None = None) -> None:
        self.expressions = expressions

    def fit(self, X: pd.DataFrame, y: Any = None) -> DeriveFeatures:
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.copy()
        for name, text in (self.expressions or {}).items():
            expression = parse(text)

            def column(ref: str, frame: pd.DataFrame = out, new: str = name, text: str = text) -> Any:
                if ref not in frame.columns:
                    raise PreprocessingError(f"feature '{new}' = {text}: there is no column '{ref}'")
                values = frame[ref]
                if not pd.api.types.is_numeric_dtype(values.dtype):
                    raise PreprocessingError(f"feature '{new}' = {text}: column '{ref}' is not numeric")
                return values.to_numpy(dtype="float64")

            with np.errstate(all="ignore"):
                value = np.asarray(expression.evaluate(column, _FUNCTIONS), dtype="float64")
            value = np.where(np.isfinite(value), value, np.nan)  # 1/0 is missing, not infinity
            out[name] = np.broadcast_to(value, (len(out),)) if value.ndim == 0 else value
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        extra = [n for n in (self.expressions or {}) if n not in set(self.feature_names_in_)]
        return np.asarray([*self.feature_names_in_, *extra], dtype=object)


class ToMatrix(TransformerMixin, BaseEstimator):
    """The last preprocessing stage: every column must be a number now; booleans become 0/1."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> ToMatrix:
        text = [str(c) for c in X.columns if not _is_numeric(X[c])]
        if text:
            raise PreprocessingError(
                f"column(s) {', '.join(repr(c) for c in text)} hold text; a model needs numbers: list them under "
                "preprocessing transform.one_hot or transform.ordinal, or drop them with clean.drop_columns"
            )
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise PreprocessingError(f"the input lacks column(s) {', '.join(missing)}")
        try:
            return X[list(self.feature_names_in_)].to_numpy(dtype="float64")
        except (TypeError, ValueError) as err:
            raise PreprocessingError(f"a column that held numbers in training holds text now: {err}") from None

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.feature_names_in_


def _is_numeric(column: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype))


def _log1p(values: Any) -> Any:
    return np.log1p(np.clip(values, 0, None))


def step_pipeline(name: str, step: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """One preprocessing step's column work, as (name, transformer) pipeline stages."""
    clean = step.get("clean") or {}
    transform = step.get("transform") or {}
    stages: list[tuple[str, Any]] = []
    if clean.get("drop_columns"):
        stages.append((f"{name}.drop", DropColumns(list(clean["drop_columns"]))))
    missing = clean.get("missing") or {}
    if missing and missing.get("strategy", "median") != "drop":
        stages.append(
            (
                f"{name}.fill",
                FillMissing(missing.get("strategy", "median"), missing.get("columns"), missing.get("fill_value")),
            )
        )
    if step.get("features"):
        stages.append((f"{name}.features", DeriveFeatures(dict(step["features"]))))
        if missing and missing.get("strategy", "median") != "drop":  # 1/0 in a derived feature is missing too
            strategy = missing.get("strategy", "median")
            stages.append(
                (f"{name}.fill-features", FillMissing(strategy, list(step["features"]), missing.get("fill_value")))
            )
    parts: list[tuple[str, Any, list[str]]] = []
    if transform.get("log"):
        parts.append(("log", FunctionTransformer(_log1p, feature_names_out="one-to-one"), list(transform["log"])))
    if transform.get("scale"):
        parts.append(("scale", StandardScaler(), list(transform["scale"])))
    if transform.get("normalize"):
        parts.append(("normalize", MinMaxScaler(), list(transform["normalize"])))
    if transform.get("one_hot"):
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64)
        parts.append(("one_hot", encoder, list(transform["one_hot"])))
    if transform.get("ordinal"):
        ordinal = dict(transform["ordinal"])
        encoder = OrdinalEncoder(
            categories=[list(v) for v in ordinal.values()], handle_unknown="use_encoded_value", unknown_value=-1
        )
        parts.append(("ordinal", encoder, list(ordinal)))
    if parts:
        columns = ColumnTransformer(
            [(part, estimator, cols) for part, estimator, cols in parts],
            remainder="passthrough",
            verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        stages.append((f"{name}.transform", columns))
    return stages


def build(
    steps: Sequence[tuple[str, Mapping[str, Any]]], features: Sequence[str] | None, target: str | None
) -> Pipeline:
    """The column work of the given steps (root first) as an unfitted pipeline ending in a numeric matrix.

    `features` limits the model's input columns (after the steps); the target never enters.
    """
    stages: list[tuple[str, Any]] = [("input", DropColumns([target] if target else []))]
    for name, step in steps:
        stages.extend(step_pipeline(name, step))
    if features:
        stages.append(("features", SelectColumns(list(features))))
    stages.append(("matrix", ToMatrix()))
    return Pipeline(stages)


class SelectColumns(TransformerMixin, BaseEstimator):
    """Keep exactly these columns, in this order (a model's `features`)."""

    def __init__(self, columns: Sequence[str] = ()) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: Any = None) -> SelectColumns:
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise PreprocessingError(
                f"features {', '.join(repr(c) for c in missing)} are not columns after preprocessing "
                f"(there are: {', '.join(str(c) for c in X.columns)})"
            )
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X[list(self.columns)]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(list(self.columns), dtype=object)


def check_columns(steps: Sequence[tuple[str, Mapping[str, Any]]], columns: Sequence[str]) -> None:
    """Every column a step names exists by the time the step runs: one clear error before any fitting."""
    have = list(columns)
    for name, step in steps:
        clean = step.get("clean") or {}
        _known(name, "clean.drop_columns", clean.get("drop_columns") or [], have)
        have = [c for c in have if c not in set(clean.get("drop_columns") or [])]
        missing = clean.get("missing") or {}
        _known(name, "clean.missing.columns", missing.get("columns") or [], have)
        for new, text in (step.get("features") or {}).items():
            for ref in parse(text).columns:
                if ref not in have:
                    raise PreprocessingError(f"preprocessing '{name}': feature '{new}' = {text} reads '{ref}', absent")
            have.append(new)
        transform = step.get("transform") or {}
        for field in ("log", "scale", "normalize", "one_hot"):
            _known(name, f"transform.{field}", transform.get(field) or [], have)
        _known(name, "transform.ordinal", list(transform.get("ordinal") or {}), have)
