"""Small value types of the language: secrets, durations, quantities, gates, permissions.

Each carries its own error type, so the validate pass can turn a pydantic error
into a diagnostic that says what to write instead.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError


class Base(BaseModel):
    """Every object of the language: immutable, strict, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)


# --- secrets ---------------------------------------------------------------------------


class SecretFromStore(Base):
    """A secret kept in the platform's secret store (External Secrets on Kubernetes)."""

    secret: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9./_]*[a-z0-9])?$", max_length=253)]
    key: str | None = Field(default=None, description="Property inside the secret, when it holds several.")


class SecretFromEnv(Base):
    """A secret read from an environment variable of the process that needs it."""

    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def _refuse_literal_secret(value: Any) -> Any:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        raise PydanticCustomError(
            "literal_secret",
            "a credential is written here as a literal value",
        )
    return value


def _secret_kind(value: Any) -> str:
    if isinstance(value, SecretFromEnv) or (isinstance(value, dict) and "env" in value and "secret" not in value):
        return "<env>"
    return "<secret>"


SecretRef = Annotated[
    Union[Annotated[SecretFromStore, Tag("<secret>")], Annotated[SecretFromEnv, Tag("<env>")]],
    Discriminator(_secret_kind),
    BeforeValidator(_refuse_literal_secret),
]
"""`{secret: NAME}` or `{env: VAR}`; never the value itself."""


_SECRET_NAME = re.compile(r"password|passwd|secret|token|api[_-]?key|private[_-]?key|credential")


def looks_like_secret(name: str) -> bool:
    """Whether a key or variable name says it holds a credential (`passfile`, `secret_name` do not)."""
    lowered = name.lower()
    if lowered.endswith(("file", "path", "dir", "name", "_env", "mode")):
        return False  # where a secret is, not the secret
    return bool(_SECRET_NAME.search(lowered))


# --- durations and quantities ------------------------------------------------------------

_DURATION = re.compile(r"^(?:[0-9]+(?:ms|s|m|h|d|w))+$")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(text: str) -> float:
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def _check_duration(value: Any) -> Any:
    if not isinstance(value, str) or not _DURATION.match(value) or duration_seconds(value) <= 0:
        raise PydanticCustomError(
            "duration",
            "'{value}' is not a duration",
            {"value": value},
        )
    return value


Duration = Annotated[
    str,
    BeforeValidator(_check_duration),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern, "examples": ["30s", "5m", "1h", "7d"]}),
]

_CPU = re.compile(r"^(?:[0-9]+m|[0-9]+(?:\.[0-9]{1,3})?)$")
_MEMORY = re.compile(r"^[0-9]+(?:\.[0-9]+)?(?:Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")


def _check_cpu(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int | float) or not _CPU.match(str(value)):
        raise PydanticCustomError("quantity", "'{value}' is not a CPU quantity", {"value": value})
    if float(str(value).removesuffix("m")) <= 0:
        raise PydanticCustomError("quantity", "a CPU quantity must be positive", {"value": value})
    return str(value)


def _check_memory(value: Any) -> Any:
    if not isinstance(value, str) or not _MEMORY.match(value):
        raise PydanticCustomError("quantity", "'{value}' is not a memory quantity", {"value": value})
    return value


Cpu = Annotated[
    str,
    BeforeValidator(_check_cpu),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": _CPU.pattern}, {"type": "number", "exclusiveMinimum": 0}]}),
]
Memory = Annotated[
    str,
    BeforeValidator(_check_memory),
    WithJsonSchema({"type": "string", "pattern": _MEMORY.pattern, "examples": ["512Mi", "4Gi"]}),
]

# --- names ----------------------------------------------------------------------------------

Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]

# --- ML vocabulary ----------------------------------------------------------------------------

Task = Literal["classification", "regression", "clustering", "dimensionality_reduction"]
Algorithm = Literal[
    "logistic_regression",
    "svm",
    "decision_tree",
    "random_forest",
    "gradient_boosting",
    "neural_network",
    "linear_regression",
    "polynomial_regression",
    "svr",
    "kmeans",
    "hierarchical",
    "dbscan",
    "pca",
    "tsne",
]
Metric = Literal[
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "rmse",
    "mae",
    "r2",
    "mape",
    "silhouette",
    "davies_bouldin",
    "calinski_harabasz",
    "explained_variance",
    "reconstruction_error",
    "trustworthiness",
]

_GATE = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=|>|<|==)\s*(-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*$")


class Gate(Base):
    """A promotion gate such as `roc_auc >= 0.8`: a version registers only if it holds."""

    metric: str
    op: Literal[">=", "<=", ">", "<", "=="]
    value: float

    def holds(self, observed: float) -> bool:
        return {
            ">=": observed >= self.value,
            "<=": observed <= self.value,
            ">": observed > self.value,
            "<": observed < self.value,
            "==": observed == self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def _parse_gate(value: Any) -> Any:
    if isinstance(value, str):
        match = _GATE.match(value)
        if not match:
            raise PydanticCustomError("gate", "'{value}' is not a gate", {"value": value})
        return {"metric": match.group(1), "op": match.group(2), "value": float(match.group(3))}
    return value


GateExpr = Annotated[
    Gate,
    BeforeValidator(_parse_gate),
    WithJsonSchema({"type": "string", "pattern": _GATE.pattern, "examples": ["roc_auc >= 0.8"]}),
]

# --- permissions -------------------------------------------------------------------------------

RESOURCES = (
    "*",
    "projects",
    "datasets",
    "data",
    "models",
    "runs",
    "deployments",
    "predictions",
    "notebooks",
    "roles",
    "keys",
    "audit",
    "revisions",
)
ACTIONS = ("*", "read", "write", "create", "update", "delete", "train", "deploy", "predict", "upload")
_PERMISSION = re.compile(r"^([a-z*]+):([a-z*]+)$")


def _check_permission(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("permission", "a permission is a string such as 'projects:read'")
    match = _PERMISSION.match(value)
    if not match or match.group(1) not in RESOURCES or match.group(2) not in ACTIONS:
        raise PydanticCustomError("permission", "'{value}' is not a permission", {"value": value})
    return value


Permission = Annotated[
    str,
    AfterValidator(_check_permission),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^("
            + "|".join(r.replace("*", r"\*") for r in RESOURCES)
            + "):("
            + "|".join(a.replace("*", r"\*") for a in ACTIONS)
            + ")$",
        }
    ),
]
