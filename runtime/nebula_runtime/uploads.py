"""Data uploads: streamed to disk, hashed on the way, checked, stored by content, then recorded.

The multipart body is parsed as it arrives (werkzeug's sans-IO decoder over the WSGI
input), so memory stays flat whatever the file's size. The file goes to a temporary
file beside the store while its SHA-256 and MD5 are computed; a body over the limit
stops with 413 at the first byte too many. A complete, checked file is renamed into
DVC's remote layout (`files/md5/xx/...`) and only then recorded as a dataset version,
so an upload that is cut off, too large or invalid leaves no version behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flask import g, request
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData
from werkzeug.utils import secure_filename

from nebula_runtime import models as m
from nebula_runtime.auth import Principal
from nebula_runtime.datacheck import DataError, StreamCheck, sniff_format
from nebula_runtime.errors import ApiError
from nebula_runtime.ops import UPLOAD_BYTES, UPLOADS
from nebula_runtime.services import Runtime, blob_path, datasets_for, get_project, record_version

CHUNK = 1 << 20
MAX_FIELDS = 64 << 10
"""Bytes of text fields (such as `dataset`) one upload may carry besides its file."""
TABULAR_TYPES = {
    "csv": {"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel"},
    "json": {"application/json", "application/x-ndjson", "application/jsonl", "application/json-lines", "text/plain"},
    "parquet": {"application/vnd.apache.parquet", "application/x-parquet"},
}
CUT_OFF = "the upload ended before the multipart body did (cut off?); nothing was stored"
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}


@dataclass
class Received:
    path: str
    filename: str
    media_type: str
    size: int
    sha256: str
    md5: str
    fields: dict[str, str]
    check: StreamCheck | None = None


def _write_all(out: IO[bytes], sha: Any, md5: Any, data: bytes) -> None:
    out.write(data)
    sha.update(data)
    md5.update(data)


Starter = Callable[[str, str, dict[str, str]], StreamCheck | None]


def receive(rt: Runtime, start: Starter | None = None) -> Received:
    """Stream the request's multipart body; the `file` part lands in a temporary file.

    `start(filename, media_type, fields so far)` is called when the file part begins; the
    StreamCheck it returns sees every chunk as it arrives.
    """
    if request.mimetype != "multipart/form-data":
        raise ApiError(
            415, f"send the file as multipart/form-data with a 'file' field, not {request.mimetype or 'nothing'}"
        )
    boundary = request.mimetype_params.get("boundary")
    if not boundary:
        raise ApiError(400, "the multipart body has no boundary")
    limit = rt.settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise ApiError(
            413, f"the upload is {request.content_length} bytes; this server takes at most {limit}", {"limit": limit}
        )
    staging = rt.artifacts / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    decoder = MultipartDecoder(boundary.encode("latin-1"), max_form_memory_size=4 * CHUNK, max_parts=16)
    fields: dict[str, str] = {}
    field_name: str | None = None
    field_value = bytearray()
    field_bytes = 0
    handle = None
    path = None
    check: StreamCheck | None = None
    filename = ""
    media_type = ""
    size = 0
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    done = False
    stream = request.stream
    try:
        while not done:
            chunk = stream.read(CHUNK)
            decoder.receive_data(chunk or None)
            while True:
                try:
                    event = decoder.next_event()
                except ValueError:
                    if chunk:
                        raise
                    raise ApiError(400, CUT_OFF) from None
                if isinstance(event, NeedData):
                    break
                if isinstance(event, File):
                    if event.name != "file" or handle is not None:
                        raise ApiError(400, f"unexpected file field {event.name!r}; send one file in the field 'file'")
                    filename = event.filename or ""
                    media_type = (event.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                    fd, path = tempfile.mkstemp(dir=staging, prefix="upload-")
                    handle = os.fdopen(fd, "wb", buffering=0)
                    field_name = None
                    if start is not None:
                        check = start(filename, media_type, fields)
                elif isinstance(event, Field):
                    field_name, field_value = event.name, bytearray()
                elif isinstance(event, Data):
                    if field_name is not None:
                        field_value += event.data
                        field_bytes += len(event.data)
                        if field_bytes > MAX_FIELDS:
                            raise ApiError(
                                413, f"the form's text fields pass {MAX_FIELDS} bytes", {"limit": MAX_FIELDS}
                            )
                        if not event.more_data:
                            fields[field_name] = field_value.decode("utf-8", "replace")
                            field_name = None
                    elif handle is not None:
                        size += len(event.data)
                        if size > limit:
                            raise ApiError(
                                413, f"the file is larger than this server takes ({limit} bytes)", {"limit": limit}
                            )
                        _write_all(handle, sha, md5, event.data)
                        if check is not None:
                            check.write(event.data)
                elif isinstance(event, Epilogue):
                    done = True
                    break
            if not chunk:
                break
        if not done:
            raise ApiError(400, CUT_OFF)
        if handle is None or path is None:
            raise ApiError(400, "the multipart body has no 'file' field")
        handle.close()
        return Received(path, filename, media_type, size, sha.hexdigest(), md5.hexdigest(), fields, check)
    except BaseException as err:
        if check is not None:
            check.abandon()
        if handle is not None:
            handle.close()
        if path is not None:
            os.unlink(path)
        if isinstance(err, ValueError) and not isinstance(err, ApiError):
            raise ApiError(400, f"the multipart body is malformed: {err}") from None
        raise


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def store_blob(rt: Runtime, received: Received) -> None:
    """Move the file to its content address; stored content is never replaced.

    The address is the MD5 (DVC's layout), so content already there is compared by
    SHA-256: the same file is simply dropped, and a different one with the same MD5 (a
    collision, which can be made on purpose) is refused.
    """
    target = blob_path(rt, received.md5)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(received.path, target)  # fails if the address is taken: never overwrites
    except FileExistsError:
        if _sha256_of(target) != received.sha256:
            raise ApiError(
                409,
                "the file's MD5 equals that of different stored content (an MD5 collision); it is not stored",
                {"md5": received.md5},
            ) from None
    else:
        os.chmod(target, 0o444)
    os.unlink(received.path)


def _pick_dataset(rt: Runtime, project: str, asked: str | None) -> m.Dataset:
    datasets = datasets_for(rt, [project])[project]
    uploadable = [d for d in datasets if d.uploads]
    if asked:
        for dataset in datasets:
            if dataset.name == asked:
                if not dataset.uploads:
                    where = dataset.source.get("connection") or dataset.source.get("builtin") or "its source"
                    raise ApiError(
                        409,
                        f"dataset {asked!r} reads from {where}; its versions come from ingest, not uploads "
                        f"(set `source: {{upload: true}}` in nebula.yaml to take uploads)",
                    )
                return dataset
        raise ApiError(404, f"project {project!r} has no dataset {asked!r}", {"datasets": [d.name for d in datasets]})
    if len(uploadable) == 1:
        return uploadable[0]
    if not uploadable:
        raise ApiError(
            409, f"project {project!r} has no dataset that takes uploads (`source: {{upload: true}}` in nebula.yaml)"
        )
    raise ApiError(
        400,
        f"project {project!r} has several datasets that take uploads; name one with ?dataset=NAME",
        {"datasets": [d.name for d in uploadable]},
    )


def upload(rt: Runtime, principal: Principal, project: str, dataset_name: str | None = None) -> m.DataVersion:
    try:
        version = _upload(rt, principal, project, dataset_name)
    except ApiError as err:
        UPLOADS.labels(err.code).inc()
        raise
    UPLOADS.labels("stored" if version.created else "unchanged").inc()
    if version.created:
        UPLOAD_BYTES.inc(version.size)
    return version


def _upload(rt: Runtime, principal: Principal, project: str, dataset_name: str | None) -> m.DataVersion:
    get_project(rt, project)
    asked = dataset_name or request.args.get("dataset")
    chosen: dict[str, Any] = {}

    def start(original: str, media_type: str, fields: dict[str, str]) -> StreamCheck | None:
        dataset = _pick_dataset(rt, project, asked or fields.get("dataset"))
        filename = secure_filename(os.path.basename(original.replace("\\", "/"))) or "upload"
        fmt = dataset.format or sniff_format(filename)
        allowed = TABULAR_TYPES.get(fmt or "", set()) | GENERIC_TYPES
        if fmt and media_type not in allowed:
            raise ApiError(
                415,
                f"dataset {dataset.name!r} takes {fmt.upper()} files; the file was sent as {media_type}",
                {"format": fmt, "media_type": media_type},
            )
        if dataset.format is None and dataset.columns and fmt is None:
            raise ApiError(415, f"cannot tell the format of {filename!r}; name it .csv, .json, .jsonl or .parquet")
        chosen.update(dataset=dataset, filename=filename, fmt=fmt)
        if fmt is None:
            return None
        return StreamCheck(fmt, {c.name: c.model_dump(exclude={"name"}) for c in dataset.columns})

    received = receive(rt, start)
    try:
        dataset: m.Dataset = chosen["dataset"]
        filename: str = chosen["filename"]
        fmt: str | None = chosen["fmt"]
        report: dict[str, Any] = {}
        rows = None
        columns: list[dict[str, Any]] = []
        if received.check is not None:
            try:
                checked = received.check.finish(received.path)
            except DataError as err:
                first = err.problems[0]
                raise ApiError(
                    422,
                    f"{filename} does not match dataset {dataset.name!r}: {first.message}"
                    + (f" (and {len(err.problems) - 1} more problems)" if len(err.problems) > 1 else ""),
                    [p.as_dict() for p in err.problems],
                ) from None
            rows, columns, report = checked.rows, checked.columns, checked.as_dict()
        store_blob(rt, received)
    except BaseException:
        if os.path.exists(received.path):
            os.unlink(received.path)
        raise
    return record_version(
        rt.store,
        rt.environment,
        principal.actor,
        project=project,
        dataset=dataset.name,
        filename=filename,
        media_type=received.media_type or "application/octet-stream",
        fmt=fmt,
        size=received.size,
        sha256=received.sha256,
        md5=received.md5,
        rows=rows,
        columns=columns,
        report=report,
        lineage={"source": "upload", "request_id": g.get("request_id"), "original_filename": received.filename[:255]},
    )
