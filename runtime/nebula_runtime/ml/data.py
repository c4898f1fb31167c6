"""The data stages: ingest a dataset as a content-addressed version, validate it, prepare it for training.

Ingest reads rows through a connector, writes them as Parquet (one canonical,
typed form whatever the source), stores the file by content hash in the artifact
store (DVC's remote layout, as uploads do) and records a dataset version with its
lineage and check report. The same content as the latest version is not repeated.
A dataset that takes uploads is not read: its latest uploaded version is used.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select

from nebula_compile.state.schema import DatasetVersion
from nebula_runtime import services
from nebula_runtime.datacheck import DataError, check_file, sniff_format
from nebula_runtime.ml import preprocess
from nebula_runtime.ml.artifacts import blob_key, md5_of
from nebula_runtime.ml.workspace import StageError, Workspace
from nebula_runtime.models import DataVersion


def declared_kinds(spec: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(column["type"]) for name, column in (spec.get("columns") or {}).items()}


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    """The same rows give the same bytes: no index, no pandas metadata, fixed writer settings."""
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", write_statistics=True, store_schema=False)
    return out.getvalue()


def read_source(ws: Workspace, project: str, name: str) -> pd.DataFrame:
    from nebula_runtime.ml.connectors import ConnectorError, read

    spec = ws.spec("dataset", project, name)
    try:
        return read(
            dict(spec["source"]), fmt=spec.get("format"), connections=ws.connections(), root=ws.root, environ=ws.environ
        )
    except ConnectorError as err:
        raise StageError(f"dataset '{name}' of project '{project}': {err}") from None


def latest_version(ws: Workspace, project: str, name: str) -> DatasetVersion | None:
    with ws.store.sessions() as session:
        return session.scalar(
            select(DatasetVersion)
            .where(
                DatasetVersion.environment == ws.environment,
                DatasetVersion.project == project,
                DatasetVersion.dataset == name,
            )
            .order_by(DatasetVersion.number.desc())
            .limit(1)
        )


def _pinned(ws: Workspace, project: str, name: str, pin: str) -> DatasetVersion:
    with ws.store.sessions() as session:
        query = select(DatasetVersion).where(
            DatasetVersion.environment == ws.environment,
            DatasetVersion.project == project,
            DatasetVersion.dataset == name,
        )
        if pin.isdigit():
            query = query.where(DatasetVersion.number == int(pin))
        else:
            query = query.where(DatasetVersion.sha256.startswith(pin))
        row = session.scalar(query.order_by(DatasetVersion.number.desc()).limit(1))
    if row is None:
        raise StageError(f"dataset '{name}' is pinned to version {pin!r}, which does not exist")
    return row


def store_frame(
    ws: Workspace, project: str, name: str, frame: pd.DataFrame, lineage: Mapping[str, Any], filename: str
) -> DataVersion:
    """Store rows as a dataset version (checked against the declared columns) and return it."""
    spec = ws.spec("dataset", project, name) if ws.has("dataset", project, name) else {}
    data = _parquet_bytes(frame)
    return store_bytes(ws, project, name, data, "parquet", spec.get("columns") or {}, lineage, filename)


def store_bytes(
    ws: Workspace,
    project: str,
    name: str,
    data: bytes,
    fmt: str,
    declared: Mapping[str, Any],
    lineage: Mapping[str, Any],
    filename: str,
) -> DataVersion:
    md5 = md5_of(data)
    with tempfile.NamedTemporaryFile(suffix=f".{fmt}") as handle:
        handle.write(data)
        handle.flush()
        try:
            report = check_file(handle.name, fmt, declared)
            outcome: dict[str, Any] = {"passed": True, **report.as_dict()}
            rows, columns = report.rows, report.columns
        except DataError as err:
            outcome = {"passed": False, "problems": [p.as_dict() for p in err.problems]}
            rows, columns = None, []
    key = blob_key(md5)
    if not ws.artifacts.exists(key):
        ws.artifacts.write(key, data)
    return services.record_version(
        ws.store,
        ws.environment,
        ws.actor,
        project=project,
        dataset=name,
        filename=filename,
        media_type={"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}.get(fmt, "application/json"),
        fmt=fmt,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        md5=md5,
        rows=rows,
        columns=columns,
        report=outcome,
        lineage=dict(lineage),
    )


def ingest(ws: Workspace, project: str, name: str, file: Path | None = None) -> DataVersion:
    """The `ingest` stage. With `file`, that file becomes the next version (any dataset; `nebula run --data`)."""
    spec = ws.spec("dataset", project, name)
    source = spec.get("source") or {}
    if file is not None:
        fmt = spec.get("format") or sniff_format(file.name)
        if fmt is None:
            raise StageError(f"cannot tell the format of {file}; name it .csv, .json, .jsonl or .parquet")
        try:
            data = file.read_bytes()
        except OSError as err:
            raise StageError(f"cannot read {file}: {err.strerror}") from None
        lineage: dict[str, Any] = {"source": "file", "path": str(file), "revision": ws.revision}
        version = store_bytes(ws, project, name, data, fmt, spec.get("columns") or {}, lineage, file.name)
    elif source.get("upload"):
        pinned = spec.get("version")
        row = _pinned(ws, project, name, str(pinned)) if pinned else latest_version(ws, project, name)
        if row is None:
            raise StageError(
                f"dataset '{name}' of project '{project}' takes uploads and has none yet: upload a file with "
                f"POST /v1/projects/{project}/data, or give one to this run: --data {name}=PATH"
            )
        version = services._version_out(row, created=False)
    else:
        frame = read_source(ws, project, name)
        where = {k: v for k, v in source.items() if v not in (None, False)}
        lineage = {"source": "ingest", "from": where, "revision": ws.revision}
        version = store_frame(ws, project, name, frame, lineage, f"{name}.parquet")
    ws.say(f"dataset {name}: version {version.number} ({version.rows if version.rows is not None else '?'} rows)")
    return version


def validate(ws: Workspace, project: str, name: str, version: DataVersion | None = None) -> dict[str, Any]:
    """The `validate` stage: the version's check report; a failed check stops the pipeline here."""
    if version is None:
        row = latest_version(ws, project, name)
        if row is None:
            raise StageError(f"dataset '{name}' has no version yet: run the ingest stage first")
        version = services._version_out(row, created=False)
    report = dict(version.report)
    if report.get("passed") is False:
        problems = report.get("problems") or []
        lines = [f"  column {p.get('column') or '-'}: {p.get('rule')}: {p.get('message')}" for p in problems[:10]]
        raise StageError(
            f"dataset '{name}' version {version.number} fails its checks:\n" + "\n".join(lines),
        )
    return {"dataset": name, "version": version.number, "data_id": version.data_id, **report}


def load(ws: Workspace, version: DataVersion) -> pd.DataFrame:
    """A stored version's rows, typed by the dataset's declared columns."""
    path = ws.artifacts.fetch(blob_key(version.md5))
    fmt = version.format or sniff_format(version.filename)
    if fmt == "parquet":
        frame = pd.DataFrame(pq.read_table(path).to_pandas())
    elif fmt == "csv":
        frame = pd.read_csv(path, keep_default_na=True)
    elif fmt == "json":
        text = path.read_text(encoding="utf-8").lstrip()
        frame = pd.DataFrame(pd.read_json(io.StringIO(text), lines=not text.startswith("[")))
    else:
        raise StageError(f"version {version.number} of '{version.dataset}' has no tabular format")
    return frame


def training_frame(ws: Workspace, project: str, source: str) -> tuple[pd.DataFrame, DataVersion, dict[str, str]]:
    """The rows a model trains on: the root dataset's pinned version (`version:` in nebula.yaml) or its latest,
    typed by the declared columns.

    Returns the rows, the version they came from and the kinds of the raw input columns.
    """
    root = ws.root_dataset(project, source)
    pinned = ws.spec("dataset", project, root).get("version")
    row = _pinned(ws, project, root, str(pinned)) if pinned else latest_version(ws, project, root)
    if row is None:
        raise StageError(f"dataset '{root}' of project '{project}' has no version yet: run `nebula run {project}`")
    version = services._version_out(row, created=False)
    validate(ws, project, root, version)
    raw = load(ws, version)
    kinds = {**preprocess.infer_kinds(raw), **declared_kinds(ws.spec("dataset", project, root))}
    frame = preprocess.coerce(raw, kinds)
    return frame, version, kinds
