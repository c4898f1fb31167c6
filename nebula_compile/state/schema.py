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

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
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
