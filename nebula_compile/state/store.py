"""The state store: what has been applied, per environment. SQLite by default, PostgreSQL for teams.

`Store.open(url)` runs the Alembic migrations, so a new or an older database is
brought to the current schema first. `apply_graph` writes one environment's
resource graph in one transaction: the resources, a revision row and an audit
entry, or nothing at all. `lock` serializes applies across processes and machines
through a row in the database itself; a lock whose holder died is taken over.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, delete, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from nebula_compile.state.schema import AuditEntry, Lock, Revision, StateResource

if TYPE_CHECKING:  # the runtime opens the store too; it need not load the compiler
    from nebula_compile.ir.graph import ResourceGraph

HEAD = "0003"
"""The newest migration; a database already there is opened without loading Alembic."""

STALE_AFTER = timedelta(minutes=10)
"""A lock not refreshed for this long belongs to a holder that is gone."""


class StateError(Exception):
    """A state store problem the user can act on (a bad URL, a held lock, a stale plan)."""


class LockTimeout(StateError):
    pass


@dataclass(frozen=True)
class ApplyResult:
    environment: str
    revision_id: int | None
    created: int
    updated: int
    deleted: int
    manifest_hash: str

    @property
    def changed(self) -> bool:
        return self.revision_id is not None


def _now() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def normalize_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _alive(host: str, pid: int) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell for another machine; the heartbeat decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, pool_size: int | None = None) -> Store:
        """Open (and migrate) the store; `pool_size` for a server whose threads each hold connections."""
        target = normalize_url(url)
        if target.startswith("sqlite:///"):
            path = target.removeprefix("sqlite:///")
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": pool_size} if pool_size else {}
            engine = create_engine(target, future=True, **options)
        except Exception as err:  # bad URL or missing driver: the user's to fix
            raise StateError(f"cannot open the state store: {err}") from None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        store.migrate()
        return store

    def migrate(self) -> None:
        if self.revision() == HEAD:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(resources.files("nebula_compile.state").joinpath("migrations")))
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except Exception as err:
            if isinstance(err, StateError):
                raise
            raise StateError(f"cannot reach or migrate the state store: {err}") from None

    def revision(self) -> str | None:
        """The migration the database is at; None for a new one."""
        try:
            with self.engine.connect() as connection:
                return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except Exception:  # no such table yet, or unreachable: migrate() reports the latter
            return None

    def close(self) -> None:
        self.engine.dispose()

    # --- locks ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str = "apply", timeout: float = 60.0, poll: float = 0.5) -> Iterator[None]:
        """Hold the named lock; wait up to `timeout` seconds for it, then fail naming the holder."""
        holder = f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
        deadline = time.monotonic() + timeout
        while True:
            if self._try_lock(name, holder):
                break
            current = self.lock_holder(name)
            if time.monotonic() >= deadline:
                since = current.acquired_at.isoformat(timespec="seconds") if current else "?"
                raise LockTimeout(
                    f"the state store is locked by {current.holder if current else 'another apply'} since {since}; "
                    f"gave up after {timeout:g}s"
                )
            time.sleep(poll)
        try:
            yield
        finally:
            with self.sessions.begin() as session:
                session.execute(delete(Lock).where(Lock.name == name, Lock.pid == os.getpid()))

    def lock_holder(self, name: str = "apply") -> Lock | None:
        with self.sessions() as session:
            return session.get(Lock, name)

    def _try_lock(self, name: str, holder: str) -> bool:
        now = _now()
        try:
            with self.sessions.begin() as session:
                session.add(
                    Lock(
                        name=name,
                        holder=holder,
                        host=socket.gethostname(),
                        pid=os.getpid(),
                        acquired_at=now,
                        heartbeat_at=now,
                    )
                )
            return True
        except IntegrityError:
            pass
        with self.sessions.begin() as session:
            current = session.get(Lock, name, with_for_update=True)
            if current is None:
                return False  # released meanwhile; the next round takes it
            heartbeat = (
                current.heartbeat_at if current.heartbeat_at.tzinfo else current.heartbeat_at.replace(tzinfo=UTC)
            )
            if _alive(current.host, current.pid) and now - heartbeat < STALE_AFTER:
                return False
            # the holder died (or stopped refreshing): recover the lock
            session.add(
                AuditEntry(
                    at=now, actor=holder, action="lock.recovered", environment=None, details={"from": current.holder}
                )
            )
            current.holder, current.host, current.pid = holder, socket.gethostname(), os.getpid()
            current.acquired_at = current.heartbeat_at = now
            return True

    # --- state --------------------------------------------------------------------------------

    def current_hash(self, environment: str) -> str | None:
        """The manifest hash of what was last applied to `environment`."""
        with self.sessions() as session:
            revision = session.scalars(
                select(Revision).where(Revision.environment == environment).order_by(Revision.id.desc()).limit(1)
            ).first()
            return revision.manifest_hash if revision else None

    def resources(self, environment: str, *, managed: bool | None = None) -> dict[str, StateResource]:
        with self.sessions() as session:
            query = select(StateResource).where(StateResource.environment == environment)
            if managed is not None:
                query = query.where(StateResource.managed == managed)
            return {r.id: r for r in session.scalars(query)}

    def environments(self) -> list[str]:
        """Environments the store holds resources for."""
        with self.sessions() as session:
            return sorted(set(session.scalars(select(StateResource.environment).distinct())))

    def revisions(self, environment: str | None = None) -> list[Revision]:
        with self.sessions() as session:
            query = select(Revision).order_by(Revision.id)
            if environment is not None:
                query = query.where(Revision.environment == environment)
            return list(session.scalars(query))

    def audit(self) -> list[AuditEntry]:
        with self.sessions() as session:
            return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))

    def apply_graphs(
        self, graphs: list[ResourceGraph], *, commit: str | None, author: str | None, actor: str | None = None
    ) -> list[ApplyResult]:
        """Make each environment's state equal its graph, all in one transaction; nothing where it already is."""
        actor = actor or getpass.getuser()
        results = []
        with self.sessions.begin() as session:
            for graph in graphs:
                results.append(self._apply(session, graph, commit, author, actor))
        return results

    def _apply(
        self, session: Session, graph: ResourceGraph, commit: str | None, author: str | None, actor: str
    ) -> ApplyResult:
        environment = graph.environment
        rows = {r.id: r for r in session.scalars(select(StateResource).where(StateResource.environment == environment))}
        existing = {rid: row for rid, row in rows.items() if row.managed}
        adopted = sorted(rid for rid in (r.id for r in graph) if rid in rows and not rows[rid].managed)
        last = session.scalars(
            select(Revision).where(Revision.environment == environment).order_by(Revision.id.desc()).limit(1)
        ).first()
        wanted = {r.id: r for r in graph}
        for rid in adopted:  # created through the API before; git describes it now
            rows[rid].managed = True
            rows[rid].hash = ""
            existing[rid] = rows[rid]
        created = [rid for rid in wanted if rid not in existing]
        deleted = [rid for rid in existing if rid not in wanted]
        updated = [rid for rid in wanted if rid in existing and existing[rid].hash != wanted[rid].hash]
        if last is not None and last.manifest_hash == graph.hash and not (created or deleted or updated):
            return ApplyResult(environment, None, 0, 0, 0, graph.hash)
        revision = Revision(
            environment=environment,
            commit=commit,
            author=author,
            applied_by=actor,
            applied_at=_now(),
            manifest_hash=graph.hash,
            created=len(created),
            updated=len(updated),
            deleted=len(deleted),
        )
        session.add(revision)
        session.flush()
        for rid in deleted:
            session.delete(existing[rid])
        for rid in created + updated:
            resource = wanted[rid]
            row = existing.get(rid) or StateResource(environment=environment, id=rid)
            row.kind, row.project, row.name = resource.kind, resource.project, resource.name
            row.hash, row.spec, row.managed, row.revision_id = resource.hash, dict(resource.spec), True, revision.id
            session.add(row)
        session.add(
            AuditEntry(
                at=_now(),
                actor=actor,
                action="apply",
                environment=environment,
                details={
                    "revision": revision.id,
                    "commit": commit,
                    "manifest_hash": graph.hash,
                    "created": sorted(created),
                    "updated": sorted(updated),
                    "deleted": sorted(deleted),
                    "adopted": adopted,
                },
            )
        )
        return ApplyResult(environment, revision.id, len(created), len(updated), len(deleted), graph.hash)
