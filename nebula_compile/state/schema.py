"""The state store's tables (SQLAlchemy 2). Alembic migrations in `migrations/` create them.

- `revisions`: every apply that changed something: environment, commit, author,
  time, manifest hash.
- `resources`: the current state of each environment, one row per graph resource
  (id, kind, project, name, hash, spec). Rows the runtime API creates are marked
  unmanaged (`managed = false`) and reported by `nebula drift`.
- `audit_log`: who did what, when.
- `locks`: one row per held lock, with its holder, so a waiting apply can say who
  holds it and a lock left by a killed process can be recovered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Revision(Base):
    __tablename__ = "revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    environment: Mapped[str] = mapped_column(String(63), index=True)
    commit: Mapped[str | None] = mapped_column(String(64))
    author: Mapped[str | None] = mapped_column(String(255))
    applied_by: Mapped[str] = mapped_column(String(255))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    manifest_hash: Mapped[str] = mapped_column(String(16))
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)


class StateResource(Base):
    __tablename__ = "resources"

    environment: Mapped[str] = mapped_column(String(63), primary_key=True)
    id: Mapped[str] = mapped_column(String(512), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    project: Mapped[str | None] = mapped_column(String(63), index=True)
    name: Mapped[str] = mapped_column(String(255))
    hash: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    managed: Mapped[bool] = mapped_column(Boolean, default=True)
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("revisions.id"))


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str | None] = mapped_column(String(63))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class Lock(Base):
    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- the runtime's own records (migration 0002) ---------------------------------------------------


class ApiKey(Base):
    """An API key: only its SHA-256 is kept; `id` is the public part printed in the key itself."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(63))
    environment: Mapped[str | None] = mapped_column(String(63), nullable=True)
    """The environment whose runtime accepts the key (its roles are that environment's); None: every one."""
    projects: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DatasetVersion(Base):
    """An immutable version of a dataset, stored by content hash (DVC's `files/md5/` layout)."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("environment", "project", "dataset", "number"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    environment: Mapped[str] = mapped_column(String(63), index=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    dataset: Mapped[str] = mapped_column(String(63))
    number: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(127))
    format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    md5: Mapped[str] = mapped_column(String(32))
    rows: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(255))


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    environment: Mapped[str] = mapped_column(String(63), index=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    model: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset_version_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[str] = mapped_column(String(255))


class RunMetric(Base):
    """One point of a run's curves (loss, accuracy, ... per epoch), written while the run goes."""

    __tablename__ = "run_metrics"

    run_id: Mapped[str] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("environment", "project", "model", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    environment: Mapped[str] = mapped_column(String(63), index=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    model: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("training_runs.id"), nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    artifact: Mapped[str] = mapped_column(Text)
    dataset_version_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModelAlias(Base):
    __tablename__ = "model_aliases"

    environment: Mapped[str] = mapped_column(String(63), primary_key=True)
    project: Mapped[str] = mapped_column(String(63), primary_key=True)
    model: Mapped[str] = mapped_column(String(63), primary_key=True)
    alias: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(255))


# --- serving (migration 0003) -------------------------------------------------------------------------


class Prediction(Base):
    """One served prediction: which variant and version answered, what it was asked, what it said; the true
    outcome arrives later through the feedback endpoint. Drift and the A/B report are computed from these."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_deployment_at", "environment", "project", "deployment", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    environment: Mapped[str] = mapped_column(String(63))
    project: Mapped[str] = mapped_column(String(63))
    deployment: Mapped[str] = mapped_column(String(63))
    variant: Mapped[str] = mapped_column(String(63))
    model: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    output: Mapped[Any] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[Any] = mapped_column(JSON, nullable=True)
    outcome_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
