"""A registered model version, loaded for predictions: the same pipeline training fitted, its input schema,
and the reference profile drift is measured against.

Both servers use it: the runtime's `POST /v1/deployments/{name}/predict` and the
per-model server the compiled Deployments run (`python -m nebula_runtime.serve`).
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
import pandas as pd

from nebula_runtime.ml import preprocess
from nebula_runtime.ml.artifacts import ArtifactStore
from nebula_runtime.ml.estimators import plain

MAX_ROWS = 10_000


class InputError(ValueError):
    """Prediction input that does not fit the model; `details` lists each problem with its row and column."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class BodyError(ValueError):
    """A prediction request that is not `{"inputs": [rows]}` or `{"input": row}`."""


def rows_of(body: Any) -> list[Any]:
    """The rows of a prediction request body, as the model server and the Lambda handler take it."""
    if not isinstance(body, dict) or (("inputs" in body) == ("input" in body)):
        raise BodyError("send a JSON object with `inputs` (a list of rows) or `input` (one row)")
    rows = body["inputs"] if "inputs" in body else [body["input"]]
    if not isinstance(rows, list):
        raise BodyError("`inputs` must be a list of rows")
    return rows


@dataclass(frozen=True)
class Loaded:
    project: str
    model: str
    version: int
    pipeline: Any
    meta: Mapping[str, Any]
    profile: Mapping[str, Any]

    @property
    def task(self) -> str:
        return str(self.meta.get("task", "classification"))

    @property
    def inputs(self) -> dict[str, str]:
        return dict(self.meta.get("inputs") or {})

    def frame(self, rows: Sequence[Any]) -> pd.DataFrame:
        """Rows as the training frame looked: declared types, unknown columns refused, absent ones missing."""
        if not rows:
            raise InputError("no rows to predict: send {'inputs': [{column: value, ...}, ...]}")
        if len(rows) > MAX_ROWS:
            raise InputError(f"{len(rows):,} rows in one request; at most {MAX_ROWS:,}")
        inputs = self.inputs
        problems: list[dict[str, Any]] = []
        for number, row in enumerate(rows):
            if not isinstance(row, Mapping):
                problems.append({"row": number, "column": None, "message": "a row must be an object of column: value"})
                continue
            for column, value in row.items():
                kind = inputs.get(column)
                if kind is None:
                    problems.append({"row": number, "column": column, "message": "the model has no such input"})
                elif value is not None and not _fits(kind, value):
                    problems.append(
                        {"row": number, "column": column, "message": f"expected {kind}, got {type(value).__name__}"}
                    )
            if len(problems) >= 20:
                break
        if problems:
            first = problems[0]
            raise InputError(
                f"row {first['row']}" + (f", column {first['column']!r}" if first["column"] else "") + f": "
                f"{first['message']}",
                problems,
            )
        frame = pd.DataFrame([{c: row.get(c) for c in inputs} for row in rows], columns=list(inputs))
        return preprocess.coerce(frame, inputs)

    def predict(self, rows: Sequence[Any]) -> list[dict[str, Any]]:
        frame = self.frame(rows)
        try:
            if self.task == "dimensionality_reduction":
                embedded = self.pipeline.transform(frame)
                return [{"embedding": [float(v) for v in row]} for row in np.asarray(embedded)]
            classes = self.meta.get("classes")
            if self.task == "classification" and classes and hasattr(self.pipeline, "predict_proba"):
                probabilities = np.asarray(self.pipeline.predict_proba(frame))  # one pass gives both answers
                names = [str(c) for c in classes]
                return [
                    {
                        "prediction": plain(classes[int(np.argmax(row))]),
                        "probabilities": {c: round(float(p), 6) for c, p in zip(names, row, strict=True)},
                    }
                    for row in probabilities
                ]
            return [{"prediction": plain(value)} for value in self.pipeline.predict(frame)]
        except (ValueError, TypeError) as err:
            raise InputError(f"the model cannot use this input: {err}") from None


def _fits(kind: str, value: Any) -> bool:
    if kind in ("integer", "float"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        try:
            return math.isfinite(float(value))
        except OverflowError:  # an integer too large for a float
            return False
    if kind == "boolean":
        return isinstance(value, bool | int | str)
    return isinstance(value, str | int | float | bool)


def load(artifacts: ArtifactStore, folder: str, project: str, model: str, version: int) -> Loaded:
    bundle = joblib.load(io.BytesIO(artifacts.read(f"{folder}/model.joblib")))
    profile = json.loads(artifacts.read(f"{folder}/profile.json")) if artifacts.exists(f"{folder}/profile.json") else {}
    return Loaded(project, model, version, bundle["pipeline"], bundle["meta"], profile)


class Cache:
    """Loaded versions by (project, model, version): a version never changes, so it is loaded once."""

    def __init__(self, artifacts: ArtifactStore, size: int = 16) -> None:
        self.artifacts = artifacts
        self.size = size
        self._items: dict[tuple[str, str, int], Loaded] = {}
        self._lock = threading.Lock()

    def get(self, project: str, model: str, version: int, folder: str) -> Loaded:
        key = (project, model, version)
        with self._lock:
            found = self._items.get(key)
        if found is not None:
            return found
        loaded = load(self.artifacts, folder, project, model, version)
        with self._lock:
            if len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = loaded
        return loaded
