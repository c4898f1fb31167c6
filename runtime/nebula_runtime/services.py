"""What the API does, once: REST views and GraphQL resolvers both call these functions.

Reads take lists of keys and answer with dicts, so GraphQL can load a whole level of a
nested query in one SQL query (see `graphql.Loader`). Writes run in one transaction
with their audit entry. Objects reconciled from git (`managed`) are read-only here.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select, tuple_
from sqlalchemy.exc import IntegrityError

from nebula_compile.state.schema import (
    ApiKey,
    AuditEntry,
    DatasetVersion,
    ModelAlias,
    ModelVersion,
    Revision,
    RunMetric,
    StateResource,
    TrainingRun,
)
from nebula_compile.state.store import Store
from nebula_runtime import models as m
from nebula_runtime.auth import Authenticator, Principal, generate_key, hash_key
from nebula_runtime.errors import ApiError, not_found
from nebula_runtime.settings import Settings

UPLOADS_DATASET = "uploads"
"""The dataset an API-created project's uploads land in (it has no nebula.yaml to declare one)."""


def now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """Unique and sortable by creation time."""
    return f"{prefix}_{int(time.time() * 1000):011x}{secrets.token_hex(5)}"


def slugify(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:63].strip("-")


class Reader:
    """Reads for the hottest paths on a DBAPI connection kept per thread.

    A one-row select costs about 0.7 ms through the ORM here, 0.1 ms through a pooled
    DBAPI connection and 0.03 ms on a connection the thread keeps. The connections run in
    autocommit, so a read never holds a transaction open. `sql` uses `?` placeholders;
    they become the driver's (`%s` for psycopg).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.local = threading.local()
        self.opened: list[Any] = []
        self.lock = threading.Lock()
        self.qmark = store.engine.dialect.paramstyle == "qmark"

    def _connection(self) -> Any:
        connection: Any = getattr(self.local, "connection", None)
        if connection is None:
            pooled = self.store.engine.raw_connection()  # keeps the engine's connect hooks (SQLite pragmas)
            connection = pooled.driver_connection
            if hasattr(connection, "autocommit"):
                connection.rollback()
                connection.autocommit = True
            self.local.connection = connection
            self.local.pooled = pooled
            with self.lock:
                self.opened.append(pooled)
        return connection

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not self.qmark:
            sql = sql.replace("?", "%s")
        connection = self._connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(sql, tuple(params))
                rows: list[tuple[Any, ...]] = cursor.fetchall()
            finally:
                cursor.close()
        except Exception:
            self._discard()  # a failed connection is not reused; the next read opens a new one
            raise
        return rows

    def _discard(self) -> None:
        pooled = getattr(self.local, "pooled", None)
        self.local.connection = self.local.pooled = None
        if pooled is not None:
            with self.lock:
                if pooled in self.opened:
                    self.opened.remove(pooled)
            with contextlib.suppress(Exception):
                pooled.invalidate()  # closes it and gives its place in the pool back

    def close(self) -> None:
        with self.lock:
            for pooled in self.opened:
                with contextlib.suppress(Exception):
                    pooled.invalidate()
            self.opened.clear()
        self.local = threading.local()


@dataclass
class Runtime:
    """What a request needs: the store, the settings, the served environment, the authenticator."""

    store: Store
    settings: Settings
    environment: str
    auth: Authenticator
    reader: Reader = field(init=False)

    def __post_init__(self) -> None:
        self.reader = Reader(self.store)

    def close(self) -> None:
        self.reader.close()
        self.store.close()

    @property
    def artifacts(self) -> Path:
        return Path(self.settings.artifacts)

    def audit(self, session: Any, principal: Principal, action: str, details: dict[str, Any]) -> None:
        session.add(
            AuditEntry(at=now(), actor=principal.actor, action=action, environment=self.environment, details=details)
        )


# --- projects --------------------------------------------------------------------------------------


def _project_out(row: StateResource) -> m.Project:
    return _project(row.name, row.spec, row.managed)


def _project(name: str, spec: dict[str, Any], managed: bool) -> m.Project:
    return m.Project(
        id=name,
        name=str(spec.get("display_name") or name),
        description=str(spec.get("description") or ""),
        managed=bool(managed),
        namespace=spec.get("namespace"),
        labels=dict(spec.get("labels") or {}),
        owners=list(spec.get("owners") or []),
    )


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def projects_by_id(rt: Runtime, ids: Sequence[str]) -> dict[str, m.Project]:
    names = sorted(set(ids))
    if not names:
        return {}
    rows = rt.reader.rows(
        "SELECT name, spec, managed FROM resources WHERE environment = ? AND kind = 'project' "
        f"AND name IN ({', '.join('?' for _ in names)})",
        [rt.environment, *names],
    )
    return {name: _project(name, _json(spec), managed) for name, spec, managed in rows}


def get_project(rt: Runtime, project: str) -> m.Project:
    found = projects_by_id(rt, [project]).get(project)
    if found is None:
        raise not_found("project", project)
    return found


def list_projects(rt: Runtime, principal: Principal, query: m.ProjectQuery) -> m.ProjectPage:
    visible = principal.visible_projects()
    statement = select(StateResource).where(
        StateResource.environment == rt.environment, StateResource.kind == "project"
    )
    if visible is not None:
        statement = statement.where(StateResource.name.in_(sorted(visible)))
    if query.managed is not None:
        statement = statement.where(StateResource.managed == query.managed)
    if query.after:
        statement = statement.where(StateResource.name > query.after)
    statement = statement.order_by(StateResource.name)
    needle = query.q.lower() if query.q else None
    label = query.label.split("=", 1) if query.label else None
    items: list[m.Project] = []
    if not (needle or label):
        statement = statement.limit(query.limit + 1)
    with rt.store.sessions() as session:
        # filters on JSON fields are applied here, so they work alike on SQLite and PostgreSQL
        result = session.scalars(statement.execution_options(yield_per=500))
        try:
            for row in result:
                project = _project_out(row)
                if needle and not any(
                    needle in text.lower() for text in (project.id, project.name, project.description)
                ):
                    continue
                if label and project.labels.get(label[0]) != label[1]:
                    continue
                items.append(project)
                if len(items) > query.limit:
                    break
        finally:
            result.close()
    more = len(items) > query.limit
    items = items[: query.limit]
    return m.ProjectPage(items=items, next=items[-1].id if more and items else None)


def create_project(rt: Runtime, principal: Principal, body: m.ProjectCreate) -> m.Project:
    slug = slugify(body.name)
    if not slug or not slug[0].isalpha():
        raise ApiError(
            422,
            f"the project name {body.name!r} gives no usable id: it needs a letter first and letters or digits",
            [{"field": "name", "message": "cannot derive an id (a DNS label) from this name"}],
        )
    row = StateResource(
        environment=rt.environment,
        id=f"project.{slug}",
        kind="project",
        project=None,
        name=slug,
        hash="",
        spec={"display_name": body.name, "description": body.description, "labels": dict(body.labels), "owners": []},
        managed=False,
        revision_id=None,
    )
    try:
        with rt.store.sessions.begin() as session:
            session.add(row)
            session.flush()
            rt.audit(session, principal, "project.create", {"project": slug, "name": body.name})
    except IntegrityError:
        raise ApiError(409, f"a project with the id {slug!r} exists already", {"id": slug}) from None
    return _project_out(row)


def _editable_project(session: Any, rt: Runtime, project: str) -> StateResource:
    row: StateResource | None = session.get(StateResource, (rt.environment, f"project.{project}"), with_for_update=True)
    if row is None:
        raise not_found("project", project)
    if row.managed:
        raise managed_conflict("project", project, f"projects.{project}")
    return row


def managed_conflict(kind: str, name: str, where: str) -> ApiError:
    return ApiError(
        409,
        f"{kind} {name!r} is managed by git: change `{where}` in nebula.yaml and run `nebula apply`",
        {"managed": True, "path": where},
    )


def update_project(rt: Runtime, principal: Principal, project: str, body: m.ProjectUpdate) -> m.Project:
    with rt.store.sessions.begin() as session:
        row = _editable_project(session, rt, project)
        spec = dict(row.spec)
        if body.description is not None:
            spec["description"] = body.description
        if body.labels is not None:
            spec["labels"] = dict(body.labels)
        row.spec = spec
        rt.audit(session, principal, "project.update", {"project": project, **body.model_dump(exclude_none=True)})
        return _project_out(row)


def delete_project(rt: Runtime, principal: Principal, project: str) -> None:
    with rt.store.sessions.begin() as session:
        row = _editable_project(session, rt, project)
        versions = session.scalar(
            select(func.count()).where(DatasetVersion.environment == rt.environment, DatasetVersion.project == project)
        )
        if versions:
            raise ApiError(
                409,
                f"project {project!r} holds {versions} dataset version(s); versions are immutable, so it stays",
                {"dataset_versions": versions},
            )
        session.delete(row)
        rt.audit(session, principal, "project.delete", {"project": project})


# --- datasets -------------------------------------------------------------------------------------


def _resources(rt: Runtime, kind: str, projects: Sequence[str]) -> dict[str, list[StateResource]]:
    found: dict[str, list[StateResource]] = {p: [] for p in projects}
    if not projects:
        return found
    with rt.store.sessions() as session:
        rows = session.scalars(
            select(StateResource)
            .where(
                StateResource.environment == rt.environment,
                StateResource.kind == kind,
                StateResource.project.in_(sorted(set(projects))),
            )
            .order_by(StateResource.name)
        )
        for row in rows:
            found[str(row.project)].append(row)
    return found


def _dataset_out(
    project: str, name: str, spec: dict[str, Any], managed: bool, counts: tuple[int, int | None]
) -> m.Dataset:
    columns = []
    for cname, column in (spec.get("columns") or {}).items():
        column = column if isinstance(column, dict) else {"type": column}
        columns.append(
            m.Column(
                name=cname,
                type=str(column.get("type", "string")),
                min=column.get("min"),
                max=column.get("max"),
                values=column.get("values"),
                unique=bool(column.get("unique")),
                missing=float(column.get("missing") or 0),
            )
        )
    source = dict(spec.get("source") or {"upload": True})
    return m.Dataset(
        project=project,
        name=name,
        format=spec.get("format"),
        source=source,
        columns=columns,
        classification=str(spec.get("classification") or "internal"),
        uploads=bool(source.get("upload")),
        managed=managed,
        versions=counts[0],
        latest=counts[1],
    )


def datasets_for(rt: Runtime, projects: Sequence[str]) -> dict[str, list[m.Dataset]]:
    """The datasets of each project: declared in nebula.yaml, or the implicit `uploads` one."""
    declared = _resources(rt, "dataset", projects)
    counts: dict[tuple[str, str], tuple[int, int | None]] = {}
    managed: dict[str, bool] = {}
    if projects:
        with rt.store.sessions() as session:
            for project, dataset, count, latest in session.execute(
                select(DatasetVersion.project, DatasetVersion.dataset, func.count(), func.max(DatasetVersion.number))
                .where(DatasetVersion.environment == rt.environment, DatasetVersion.project.in_(sorted(set(projects))))
                .group_by(DatasetVersion.project, DatasetVersion.dataset)
            ):
                counts[(project, dataset)] = (int(count), int(latest))
        managed = {p.id: p.managed for p in projects_by_id(rt, projects).values()}
    result: dict[str, list[m.Dataset]] = {}
    for project in projects:
        items = [
            _dataset_out(project, r.name, r.spec, True, counts.get((project, r.name), (0, None)))
            for r in declared[project]
        ]
        if not managed.get(project, True):
            items.append(
                _dataset_out(project, UPLOADS_DATASET, {}, False, counts.get((project, UPLOADS_DATASET), (0, None)))
            )
        result[project] = items
    return result


def _named(rt: Runtime, kind: str, project: str, name: str, items: Sequence[Any]) -> Any:
    """The item called `name` of a project's list; 404 for the project when it is not there, else for the item."""
    for item in items:
        if item.name == name:
            return item
    get_project(rt, project)
    raise not_found(kind, f"{project}/{name}")


def get_dataset(rt: Runtime, project: str, dataset: str) -> m.Dataset:
    result: m.Dataset = _named(rt, "dataset", project, dataset, datasets_for(rt, [project])[project])
    return result


def _version_out(row: DatasetVersion, created: bool = True) -> m.DataVersion:
    return m.DataVersion(
        data_id=row.id,
        filename=row.filename,
        project=row.project,
        dataset=row.dataset,
        number=row.number,
        format=row.format,
        media_type=row.media_type,
        size=row.size,
        sha256=row.sha256,
        md5=row.md5,
        rows=row.rows,
        columns=row.columns,
        report=row.report,
        lineage=row.lineage,
        created_at=row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC),
        created_by=row.created_by,
        created=created,
    )


def versions_for(
    rt: Runtime, keys: Sequence[tuple[str, str]], limit: int | None = None
) -> dict[tuple[str, str], list[m.DataVersion]]:
    """Versions of each (project, dataset), newest first."""
    found: dict[tuple[str, str], list[m.DataVersion]] = {k: [] for k in keys}
    if not keys:
        return found
    with rt.store.sessions() as session:
        rows = session.scalars(
            select(DatasetVersion)
            .where(
                DatasetVersion.environment == rt.environment,
                tuple_(DatasetVersion.project, DatasetVersion.dataset).in_(sorted(set(keys))),
            )
            .order_by(DatasetVersion.project, DatasetVersion.dataset, DatasetVersion.number.desc())
        )
        for row in rows:
            bucket = found[(row.project, row.dataset)]
            if limit is None or len(bucket) < limit:
                bucket.append(_version_out(row))
    return found


def versions_by_id(rt: Runtime, ids: Sequence[str]) -> dict[str, m.DataVersion]:
    if not ids:
        return {}
    with rt.store.sessions() as session:
        rows = session.scalars(
            select(DatasetVersion).where(
                DatasetVersion.environment == rt.environment, DatasetVersion.id.in_(sorted(set(ids)))
            )
        )
        return {row.id: _version_out(row) for row in rows}


def get_version(rt: Runtime, project: str, dataset: str, number: int) -> m.DataVersion:
    with rt.store.sessions() as session:
        row = session.scalar(
            select(DatasetVersion).where(
                DatasetVersion.environment == rt.environment,
                DatasetVersion.project == project,
                DatasetVersion.dataset == dataset,
                DatasetVersion.number == number,
            )
        )
    if row is None:
        raise not_found("dataset version", f"{project}/{dataset}@{number}")
    return _version_out(row)


def get_data(rt: Runtime, project: str, data_id: str) -> m.DataVersion:
    found = versions_by_id(rt, [data_id]).get(data_id)
    if found is None or found.project != project:
        raise not_found("data", data_id)
    return found


def blob_path(rt: Runtime, md5: str) -> Path:
    """Where content lives: DVC 3's remote layout, so `dvc pull` can read the folder as a remote."""
    return rt.artifacts / "files" / "md5" / md5[:2] / md5[2:]


def record_version(
    store: Store,
    environment: str,
    actor: str,
    *,
    project: str,
    dataset: str,
    filename: str,
    media_type: str,
    fmt: str | None,
    size: int,
    sha256: str,
    md5: str,
    rows: int | None,
    columns: list[dict[str, Any]],
    report: dict[str, Any],
    lineage: dict[str, Any],
) -> m.DataVersion:
    """Add the next version of a dataset (its content is stored already); the same content as the latest is not repeated.

    Uploads (the API) and ingestion (the pipeline's jobs) both come here, so every version has one shape.
    """
    for _attempt in range(50):
        try:
            with store.sessions.begin() as session:
                latest = session.scalar(
                    select(DatasetVersion)
                    .where(
                        DatasetVersion.environment == environment,
                        DatasetVersion.project == project,
                        DatasetVersion.dataset == dataset,
                    )
                    .order_by(DatasetVersion.number.desc())
                    .limit(1)
                )
                if latest is not None and latest.sha256 == sha256:
                    return _version_out(latest, created=False)
                row = DatasetVersion(
                    id=new_id("dv"),
                    environment=environment,
                    project=project,
                    dataset=dataset,
                    number=(latest.number + 1) if latest else 1,
                    filename=filename,
                    media_type=media_type,
                    format=fmt,
                    size=size,
                    sha256=sha256,
                    md5=md5,
                    rows=rows,
                    columns=columns,
                    report=report,
                    lineage={**lineage, "parent": latest.id if latest else None},
                    created_at=now(),
                    created_by=actor,
                )
                session.add(row)
                session.flush()
                session.add(
                    AuditEntry(
                        at=now(),
                        actor=actor,
                        action="data.upload" if lineage.get("source") == "upload" else "data.ingest",
                        environment=environment,
                        details={
                            "project": project,
                            "dataset": dataset,
                            "data_id": row.id,
                            "number": row.number,
                            "sha256": sha256,
                            "size": size,
                        },
                    )
                )
                return _version_out(row)
        except IntegrityError:
            time.sleep(0.005 * (1 + secrets.randbelow(10)))  # another upload took this number; take the next
    raise ApiError(503, "too many concurrent uploads to this dataset; try again")


# --- models, runs, aliases -----------------------------------------------------------------------------


def aliases_for(rt: Runtime, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, int]]:
    found: dict[tuple[str, str], dict[str, int]] = {k: {} for k in keys}
    if not keys:
        return found
    with rt.store.sessions() as session:
        for row in session.scalars(
            select(ModelAlias)
            .where(
                ModelAlias.environment == rt.environment,
                tuple_(ModelAlias.project, ModelAlias.model).in_(sorted(set(keys))),
            )
            .order_by(ModelAlias.alias)
        ):
            found[(row.project, row.model)][row.alias] = row.version
    return found


def _model_version_out(row: ModelVersion, aliases: dict[str, int]) -> m.ModelVersion:
    return m.ModelVersion(
        project=row.project,
        model=row.model,
        version=row.version,
        run_id=row.run_id,
        metrics=row.metrics,
        params=row.params,
        artifact=row.artifact,
        data_id=row.dataset_version_id,
        commit=row.commit,
        aliases=sorted(a for a, v in aliases.items() if v == row.version),
        created_at=row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC),
    )


def model_versions_for(rt: Runtime, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[m.ModelVersion]]:
    """Registered versions of each (project, model), newest first."""
    found: dict[tuple[str, str], list[m.ModelVersion]] = {k: [] for k in keys}
    if not keys:
        return found
    aliases = aliases_for(rt, keys)
    with rt.store.sessions() as session:
        for row in session.scalars(
            select(ModelVersion)
            .where(
                ModelVersion.environment == rt.environment,
                tuple_(ModelVersion.project, ModelVersion.model).in_(sorted(set(keys))),
            )
            .order_by(ModelVersion.project, ModelVersion.model, ModelVersion.version.desc())
        ):
            key = (row.project, row.model)
            found[key].append(_model_version_out(row, aliases[key]))
    return found


def models_for(rt: Runtime, projects: Sequence[str]) -> dict[str, list[m.Model]]:
    declared = _resources(rt, "model", projects)
    keys = [(p, r.name) for p in projects for r in declared[p]]
    aliases = aliases_for(rt, keys)
    latest: dict[tuple[str, str], int] = {}
    if keys:
        with rt.store.sessions() as session:
            for project, model, version in session.execute(
                select(ModelVersion.project, ModelVersion.model, func.max(ModelVersion.version))
                .where(
                    ModelVersion.environment == rt.environment,
                    tuple_(ModelVersion.project, ModelVersion.model).in_(sorted(set(keys))),
                )
                .group_by(ModelVersion.project, ModelVersion.model)
            ):
                latest[(project, model)] = int(version)
    result: dict[str, list[m.Model]] = {}
    for project in projects:
        items = []
        for row in declared[project]:
            spec = row.spec
            training = spec.get("training") or {}
            items.append(
                m.Model(
                    project=project,
                    name=row.name,
                    task=spec.get("task"),
                    algorithm=spec.get("algorithm"),
                    dataset=spec.get("dataset"),
                    metric=(spec.get("evaluation") or {}).get("metric") or training.get("metric"),
                    gates=list((spec.get("evaluation") or {}).get("gates") or []),
                    aliases=aliases[(project, row.name)],
                    latest=latest.get((project, row.name)),
                    managed=row.managed,
                )
            )
        result[project] = items
    return result


def get_model(rt: Runtime, project: str, model: str) -> m.Model:
    result: m.Model = _named(rt, "model", project, model, models_for(rt, [project])[project])
    return result


def get_model_version(rt: Runtime, project: str, model: str, version: int) -> m.ModelVersion:
    get_model(rt, project, model)
    for item in model_versions_for(rt, [(project, model)])[(project, model)]:
        if item.version == version:
            return item
    raise not_found("model version", f"{project}/{model}@{version}")


def set_alias(rt: Runtime, principal: Principal, project: str, model: str, alias: str, version: int) -> m.Alias:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", alias):
        raise ApiError(422, f"alias {alias!r} is not a name (lowercase letters, digits, '-')", [{"field": "alias"}])
    get_model_version(rt, project, model, version)
    with rt.store.sessions.begin() as session:
        row = session.get(ModelAlias, (rt.environment, project, model, alias), with_for_update=True)
        before = row.version if row else None
        if row is None:
            row = ModelAlias(environment=rt.environment, project=project, model=model, alias=alias)
            session.add(row)
        row.version, row.updated_at, row.updated_by = version, now(), principal.actor
        rt.audit(
            session,
            principal,
            "model.alias",
            {"project": project, "model": model, "alias": alias, "version": version, "was": before},
        )
        result = m.Alias(
            project=project,
            model=model,
            alias=alias,
            version=version,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )
    _mirror_alias(rt, project, model, alias, version)
    return result


def _mirror_alias(rt: Runtime, project: str, model: str, alias: str, version: int | None) -> None:
    """Model servers read aliases from the artifact store (nebula_runtime.ml.registry); keep it in step."""
    from nebula_runtime.ml import registry
    from nebula_runtime.ml.artifacts import ArtifactStore

    store = ArtifactStore(str(rt.settings.artifacts))
    if version is None:
        registry.remove_alias(store, rt.environment, project, model, alias)
    else:
        registry.write_alias(store, rt.environment, project, model, alias, version)


def delete_alias(rt: Runtime, principal: Principal, project: str, model: str, alias: str) -> None:
    get_model(rt, project, model)
    with rt.store.sessions.begin() as session:
        row = session.get(ModelAlias, (rt.environment, project, model, alias))
        if row is None:
            raise not_found("alias", f"{project}/{model}:{alias}")
        session.delete(row)
        rt.audit(
            session,
            principal,
            "model.alias.delete",
            {"project": project, "model": model, "alias": alias, "was": row.version},
        )
    _mirror_alias(rt, project, model, alias, None)


def _run_out(row: TrainingRun, curves: dict[str, list[m.CurvePoint]]) -> m.Run:
    started = row.started_at if row.started_at.tzinfo else row.started_at.replace(tzinfo=UTC)
    finished = (
        row.finished_at.replace(tzinfo=UTC) if row.finished_at and not row.finished_at.tzinfo else row.finished_at
    )
    return m.Run(
        id=row.id,
        project=row.project,
        model=row.model,
        status=row.status,
        params=row.params,
        metrics=row.metrics,
        curves=curves,
        data_id=row.dataset_version_id,
        commit=row.commit,
        error=row.error,
        started_at=started,
        finished_at=finished,
        duration_seconds=(finished - started).total_seconds() if finished else None,
        created_by=row.created_by,
    )


def curves_for(rt: Runtime, run_ids: Sequence[str]) -> dict[str, dict[str, list[m.CurvePoint]]]:
    found: dict[str, dict[str, list[m.CurvePoint]]] = {r: defaultdict(list) for r in run_ids}
    if not run_ids:
        return found
    with rt.store.sessions() as session:
        for row in session.scalars(
            select(RunMetric)
            .where(RunMetric.run_id.in_(sorted(set(run_ids))))
            .order_by(RunMetric.run_id, RunMetric.name, RunMetric.step)
        ):
            found[row.run_id][row.name].append(m.CurvePoint(step=row.step, value=row.value))
    return {k: dict(v) for k, v in found.items()}


def runs_for(
    rt: Runtime, keys: Sequence[tuple[str, str | None]], *, status: str | None = None, limit: int = 50
) -> dict[tuple[str, str | None], list[m.Run]]:
    """Runs of each (project, model) (model None: all of the project's), newest first."""
    found: dict[tuple[str, str | None], list[m.Run]] = {k: [] for k in keys}
    if not keys:
        return found
    projects = sorted({p for p, _ in keys})
    with rt.store.sessions() as session:
        statement = select(TrainingRun).where(
            TrainingRun.environment == rt.environment, TrainingRun.project.in_(projects)
        )
        if status:
            statement = statement.where(TrainingRun.status == status)
        rows = list(session.scalars(statement.order_by(TrainingRun.id.desc())))
    picked: list[TrainingRun] = []
    for row in rows:
        for key in ((row.project, row.model), (row.project, None)):
            if key in found and len(found[key]) < limit:
                found[key].append(row)  # type: ignore[arg-type]
                picked.append(row)
    curves = curves_for(rt, [r.id for r in picked])
    return {k: [_run_out(r, curves.get(r.id, {})) for r in v] for k, v in found.items()}  # type: ignore[arg-type]


def runs_by_id(rt: Runtime, ids: Sequence[str]) -> dict[str, m.Run]:
    if not ids:
        return {}
    with rt.store.sessions() as session:
        rows = list(
            session.scalars(
                select(TrainingRun).where(
                    TrainingRun.environment == rt.environment, TrainingRun.id.in_(sorted(set(ids)))
                )
            )
        )
    curves = curves_for(rt, [r.id for r in rows])
    return {r.id: _run_out(r, curves.get(r.id, {})) for r in rows}


def get_run(rt: Runtime, project: str, run_id: str) -> m.Run:
    found = runs_by_id(rt, [run_id]).get(run_id)
    if found is None or found.project != project:
        raise not_found("run", run_id)
    return found


# --- deployments ------------------------------------------------------------------------------------


def resolve_version(version: int | str, registered: Sequence[m.ModelVersion], aliases: dict[str, int]) -> int | None:
    numbers = {v.version for v in registered}
    if isinstance(version, int):
        return version if version in numbers else None
    if version == "latest":
        return max(numbers) if numbers else None
    return aliases.get(version)


def deployments_for(rt: Runtime, projects: Sequence[str]) -> dict[str, list[m.Deployment]]:
    declared = _resources(rt, "deployment", projects)
    keys = sorted(
        {(p, v["model"]) for p in projects for r in declared[p] for v in (r.spec.get("variants") or {}).values()}
    )
    registered = model_versions_for(rt, keys)
    aliases = aliases_for(rt, keys)
    result: dict[str, list[m.Deployment]] = {}
    for project in projects:
        items = []
        for row in declared[project]:
            spec = row.spec
            variants = []
            for vname, variant in sorted((spec.get("variants") or {}).items()):
                key = (project, variant["model"])
                variants.append(
                    m.Variant(
                        name=vname,
                        model=variant["model"],
                        version=variant.get("version", "champion"),
                        resolved_version=resolve_version(
                            variant.get("version", "champion"), registered[key], aliases[key]
                        ),
                        traffic=int(variant.get("traffic", 100)),
                    )
                )
            ready = all(v.resolved_version is not None for v in variants if v.traffic > 0)
            items.append(
                m.Deployment(
                    project=project,
                    name=row.name,
                    target=str(spec.get("target") or "kubernetes"),
                    namespace=spec.get("namespace"),
                    replicas=int(spec.get("replicas", 1)),
                    autoscaling=spec.get("autoscaling"),
                    variants=variants,
                    status="ready" if ready else "waiting_for_model",
                    managed=row.managed,
                )
            )
        result[project] = items
    return result


def get_deployment(rt: Runtime, project: str, name: str) -> m.Deployment:
    result: m.Deployment = _named(rt, "deployment", project, name, deployments_for(rt, [project])[project])
    return result


# --- platform ---------------------------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _revision(r: Revision) -> m.Revision:
    return m.Revision(
        id=r.id,
        environment=r.environment,
        commit=r.commit,
        author=r.author,
        applied_by=r.applied_by,
        applied_at=_aware(r.applied_at),
        manifest_hash=r.manifest_hash,
        created=r.created,
        updated=r.updated,
        deleted=r.deleted,
    )


def revisions(rt: Runtime, query: m.PageQuery) -> m.RevisionPage:
    with rt.store.sessions() as session:
        statement = select(Revision).where(Revision.environment == rt.environment)
        if query.before:
            statement = statement.where(Revision.id < query.before)
        rows = list(session.scalars(statement.order_by(Revision.id.desc()).limit(query.limit + 1)))
    items = [_revision(r) for r in rows[: query.limit]]
    return m.RevisionPage(items=items, next=items[-1].id if len(rows) > query.limit else None)


def get_revision(rt: Runtime, revision: int) -> m.Revision:
    with rt.store.sessions() as session:
        row = session.scalars(
            select(Revision).where(Revision.environment == rt.environment, Revision.id == revision)
        ).one_or_none()
    if row is None:
        raise not_found("revision", str(revision))
    return _revision(row)


def audit_log(rt: Runtime, query: m.AuditQuery) -> m.AuditPage:
    with rt.store.sessions() as session:
        statement = select(AuditEntry)
        if query.before:
            statement = statement.where(AuditEntry.id < query.before)
        if query.action:
            statement = statement.where(AuditEntry.action == query.action)
        if query.actor:
            statement = statement.where(AuditEntry.actor == query.actor)
        rows = list(session.scalars(statement.order_by(AuditEntry.id.desc()).limit(query.limit + 1)))
    items = [
        m.AuditEntry(
            id=r.id, at=_aware(r.at), actor=r.actor, action=r.action, environment=r.environment, details=r.details
        )
        for r in rows[: query.limit]
    ]
    return m.AuditPage(items=items, next=items[-1].id if len(rows) > query.limit else None)


# --- keys ----------------------------------------------------------------------------------------------


def _key_out(row: ApiKey) -> m.Key:
    return m.Key(
        id=row.id,
        name=row.name,
        role=row.role,
        environment=row.environment,
        projects=row.projects,
        created_at=_aware(row.created_at),
        created_by=row.created_by,
        expires_at=_aware(row.expires_at) if row.expires_at else None,
        revoked_at=_aware(row.revoked_at) if row.revoked_at else None,
    )


def create_key(
    store: Store,
    *,
    role: str,
    name: str,
    projects: Iterable[str] | None,
    created_by: str,
    expires_in_days: int | None = None,
    known_roles: Iterable[str] | None = None,
    environment: str | None = None,
    issuer: Principal | None = None,
    permissions: Sequence[str] = (),
) -> m.NewKey:
    """Issue a key bound to `role` (and to `environment` when given); only its hash is stored.

    Through the API (`issuer` set) a caller can only hand out what it holds itself: every
    permission of the role, on every project the key reaches.
    """
    if known_roles is not None and role not in set(known_roles):
        roles = ", ".join(sorted(known_roles)) or "none"
        raise ApiError(422, f"role {role!r} is not defined in nebula.yaml (roles: {roles})", [{"field": "role"}])
    if issuer is not None:
        named = sorted(set(projects)) if projects is not None else None
        scopes: list[str | None] = [None] if named is None else list(named)
        missing = sorted({p for p in permissions for scope in scopes if not issuer.can(p, scope)})
        if missing or (named is None and issuer.visible_projects() is not None):
            where = "every project" if named is None else ", ".join(named)
            reason = f"it lacks {', '.join(missing)}" if missing else "it is limited to some projects"
            raise ApiError(
                403, f"{issuer.actor} cannot issue a key with role {role!r} on {where}: {reason}", {"missing": missing}
            )
    key_id, key = generate_key()
    row = ApiKey(
        id=key_id,
        name=name,
        role=role,
        environment=environment,
        projects=sorted(set(projects)) if projects is not None else None,
        hash=hash_key(key),
        created_at=now(),
        created_by=created_by,
        expires_at=now() + timedelta(days=expires_in_days) if expires_in_days else None,
        revoked_at=None,
    )
    with store.sessions.begin() as session:
        session.add(row)
        session.add(
            AuditEntry(
                at=now(),
                actor=created_by,
                action="key.create",
                environment=environment,
                details={"key": key_id, "name": name, "role": role, "projects": row.projects},
            )
        )
    return m.NewKey(**_key_out(row).model_dump(), key=key)


def list_keys(store: Store) -> list[m.Key]:
    with store.sessions() as session:
        return [_key_out(r) for r in session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))]


def revoke_key(store: Store, key_id: str, actor: str, environment: str | None = None) -> m.Key:
    with store.sessions.begin() as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise not_found("key", key_id)
        if row.revoked_at is None:
            row.revoked_at = now()
            session.add(
                AuditEntry(at=now(), actor=actor, action="key.revoke", environment=environment, details={"key": key_id})
            )
        return _key_out(row)
