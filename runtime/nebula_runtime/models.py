"""The API's request and response shapes (pydantic); the OpenAPI document is generated from them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

RoleName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=r"^[^\x00-\x20\x7f]+$")]
"""A role of nebula.yaml: printable, no spaces. Not stripped, so the document and the server agree exactly."""
ProjectId = Annotated[str, StringConstraints(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
"""A project's id: a DNS-1123 label, as nebula.yaml's names and the ids the API derives from names."""
Limit = Annotated[int, Field(ge=1, le=500, description="Items per page (1-500).")]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- projects ----------------------------------------------------------------------------------


class ProjectCreate(Request):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z]")] = Field(
        description="Any text that starts with a letter; the id is its slug (`My Project` -> `my-project`)."
    )
    description: Annotated[str, Field(max_length=10_000)] = ""
    labels: dict[
        Annotated[str, StringConstraints(max_length=63)], Annotated[str, StringConstraints(max_length=63)]
    ] = {}


class ProjectUpdate(Request):
    description: Annotated[str, Field(max_length=10_000)] | None = None
    labels: (
        dict[Annotated[str, StringConstraints(max_length=63)], Annotated[str, StringConstraints(max_length=63)]] | None
    ) = None


class Project(Out):
    id: str = Field(description="The project's name in nebula.yaml, or the slug of an API-created project.")
    name: str
    description: str
    managed: bool = Field(description="True when the project comes from nebula.yaml (read-only here).")
    namespace: str | None = None
    labels: dict[str, str] = {}
    owners: list[str] = []


class ProjectQuery(Query):
    limit: Limit = 50
    after: str | None = Field(default=None, description="Cursor: the last id of the previous page.")
    q: str | None = Field(
        default=None, max_length=200, description="Only projects whose id, name or description contain this."
    )
    managed: bool | None = Field(default=None, description="Only projects from git (true) or from the API (false).")
    label: str | None = Field(
        default=None, pattern=r"^[^=]+=.*$", description="Only projects with this label, as key=value."
    )


class ProjectPage(Out):
    items: list[Project]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page.")


# --- datasets ----------------------------------------------------------------------------------


class Column(Out):
    name: str
    type: str
    min: float | None = None
    max: float | None = None
    values: list[Any] | None = None
    unique: bool = False
    missing: float = 0.0


class Dataset(Out):
    project: str
    name: str
    format: str | None
    source: dict[str, Any]
    columns: list[Column]
    classification: str
    uploads: bool = Field(description="Whether versions arrive through uploads.")
    managed: bool
    versions: int
    latest: int | None


class DatasetList(Out):
    items: list[Dataset]


class DataVersion(Out):
    data_id: str
    filename: str
    project: str
    dataset: str
    number: int
    format: str | None
    media_type: str
    size: int
    sha256: str
    md5: str
    rows: int | None
    columns: list[dict[str, Any]]
    report: dict[str, Any]
    lineage: dict[str, Any]
    created_at: datetime
    created_by: str
    created: bool = Field(default=True, description="False when the same content was already the latest version.")


class DataVersionList(Out):
    items: list[DataVersion]


# --- models ------------------------------------------------------------------------------------


class ModelVersion(Out):
    project: str
    model: str
    version: int
    run_id: str | None
    metrics: dict[str, Any]
    params: dict[str, Any]
    artifact: str
    data_id: str | None
    commit: str | None
    aliases: list[str]
    created_at: datetime


class ModelVersionList(Out):
    items: list[ModelVersion]


class Model(Out):
    project: str
    name: str
    task: str | None
    algorithm: str | None
    dataset: str | None
    metric: str | None
    gates: list[Any]
    aliases: dict[str, int]
    latest: int | None
    managed: bool


class ModelList(Out):
    items: list[Model]


class AliasSet(Request):
    version: Annotated[int, Field(ge=1)]


class Alias(Out):
    project: str
    model: str
    alias: str
    version: int
    updated_at: datetime
    updated_by: str


# --- runs ----------------------------------------------------------------------------------------


class CurvePoint(Out):
    step: int
    value: float


class Run(Out):
    id: str
    project: str
    model: str
    status: Literal["queued", "running", "succeeded", "failed"] | str
    params: dict[str, Any]
    metrics: dict[str, Any]
    curves: dict[str, list[CurvePoint]]
    data_id: str | None
    commit: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    created_by: str


class RunList(Out):
    items: list[Run]


class RunQuery(Query):
    model: str | None = None
    status: str | None = None
    limit: Limit = 50


# --- deployments -----------------------------------------------------------------------------------


class Variant(Out):
    name: str
    model: str
    version: int | str = Field(description="As nebula.yaml asks: a version number or an alias.")
    resolved_version: int | None = Field(description="The registered version it resolves to now; null when none.")
    traffic: int


class Deployment(Out):
    project: str
    name: str
    target: str
    namespace: str | None
    replicas: int
    autoscaling: dict[str, Any] | None
    variants: list[Variant]
    status: Literal["ready", "waiting_for_model"] = Field(
        description="ready when every variant with traffic resolves to a registered version."
    )
    managed: bool


class DeploymentList(Out):
    items: list[Deployment]


# --- platform -----------------------------------------------------------------------------------------


class Revision(Out):
    id: int
    environment: str
    commit: str | None
    author: str | None
    applied_by: str
    applied_at: datetime
    manifest_hash: str
    created: int
    updated: int
    deleted: int


class PageQuery(Query):
    limit: Limit = 50
    before: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="Cursor: only entries with a smaller id (newest first)."
    )


class RevisionPage(Out):
    items: list[Revision]
    next: int | None


class AuditEntry(Out):
    id: int
    at: datetime
    actor: str
    action: str
    environment: str | None
    details: dict[str, Any]


class AuditQuery(PageQuery):
    action: str | None = None
    actor: str | None = None


class AuditPage(Out):
    items: list[AuditEntry]
    next: int | None


class KeyCreate(Request):
    role: RoleName
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)] = "api"
    projects: list[ProjectId] | None = None
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class Key(Out):
    id: str
    name: str
    role: str
    environment: str | None = Field(description="The environment whose runtime accepts it; null: every one.")
    projects: list[str] | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None


class NewKey(Key):
    key: str = Field(description="The key itself; shown this once, stored only as a hash.")


class KeyList(Out):
    items: list[Key]


class Me(Out):
    actor: str
    roles: list[str]
    environment: str


# --- predictions ------------------------------------------------------------------------------------------


class PredictRequest(Request):
    inputs: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=10_000)] | None = Field(
        default=None, description="Rows to predict, each an object of input column: value."
    )
    input: dict[str, Any] | None = Field(default=None, description="One row; short for inputs: [row].")
    key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None, description="A stable caller key (user, session): the same key always gets the same variant."
    )

    def rows(self) -> list[dict[str, Any]]:
        from nebula_runtime.errors import ApiError

        if (self.inputs is None) == (self.input is None):
            raise ApiError(422, "send exactly one of `inputs` (a list of rows) and `input` (one row)")
        return list(self.inputs) if self.inputs is not None else [self.input or {}]


class PredictionOut(Out):
    id: str = Field(description="Send it back with the true outcome to POST .../feedback.")
    prediction: Any = None
    probabilities: dict[str, float] | None = None
    embedding: list[float] | None = None


class PredictResponse(Out):
    project: str
    deployment: str
    variant: str
    model: str
    version: int
    predictions: list[PredictionOut]


class Outcome(Request):
    prediction_id: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    outcome: bool | int | float | str = Field(description="What really happened: the true label or value.")


class FeedbackRequest(Request):
    items: Annotated[list[Outcome], Field(min_length=1, max_length=1000)]


class FeedbackResponse(Out):
    recorded: int
    unknown: list[str] = Field(description="Prediction ids of this deployment that were not found.")


class ReportQuery(Query):
    window: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,4}(ms|s|m|h|d|w)$")] | None = Field(
        default=None, description="Only predictions this recent, e.g. 24h; all when unset."
    )


class VariantReport(Out):
    variant: str
    model: str
    version: int | None
    traffic: int
    requests: int
    labelled: int = Field(description="Predictions with an outcome from feedback.")
    correct: int | None
    accuracy: float | None
    rmse: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None


class AbTest(Out):
    control: str
    variant: str
    metric: str
    difference: float = Field(description="variant minus control.")
    p_value: float = Field(description="Two-sided two-proportion z-test.")
    significant: bool = Field(description="p_value < 0.05, with at least 30 outcomes in each arm.")


class AbReport(Out):
    project: str
    deployment: str
    since: datetime | None
    variants: list[VariantReport]
    tests: list[AbTest]


class FeatureDriftOut(Out):
    name: str
    kind: str
    psi: float | None
    ks_statistic: float | None
    ks_pvalue: float | None
    wasserstein: float | None
    chi2_pvalue: float | None
    score: float | None
    drifted: bool


class VariantDrift(Out):
    variant: str
    model: str
    version: int
    method: str
    threshold: float
    samples: int
    enough_data: bool
    drifted: bool
    features: list[FeatureDriftOut]


class DriftOut(Out):
    project: str
    deployment: str
    window: str
    drifted: bool
    variants: list[VariantDrift]
