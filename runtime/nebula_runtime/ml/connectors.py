"""Read a dataset's rows from where nebula.yaml says they are.

`read(source, fmt=..., connections=..., root=...)` takes a dataset's `source` and the
connections of nebula.yaml as plain dicts (the pydantic models dumped, or the specs of
`manifest.json`) and returns the rows as a pandas DataFrame. Each connection type has
one `Connector` class, listed in `CONNECTORS` by its type: adding a kind is one class
and one entry there.

Where rows come from:

- `builtin`: a dataset bundled with scikit-learn, nothing downloaded. Features are
  snake_case (`sepal length (cm)` -> `sepal_length_cm`; digits: `pixel_0`..`pixel_63`,
  the 8x8 image row by row) and the target is the last column, with scikit-learn's
  integer codes: digits `digit`, iris `species`, wine `cultivar`, breast_cancer
  `diagnosis` (0 malignant, 1 benign), diabetes `progression` (a float).
- `path` without a connection: a file in the repository (relative to `root`); with a
  `local`, `s3`, `azure_blob` or `gcs` connection: relative to its folder, prefix or
  bucket. A glob (`*`, `?`, `[...]`; `**` crosses folders) reads every matching file
  in sorted order, one after the other. Formats: CSV, JSON (JSON Lines, an array of
  objects, or one object of columns) and Parquet, from `fmt` or the file's suffix;
  a `.gz` suffix is decompressed first.
- `table` (`name` or `schema.name`, quoted as the database needs) or `query` on a
  postgresql, mysql (MariaDB too), mssql or oracle connection, through SQLAlchemy,
  fetched with a server-side cursor in chunks; `table` or `query` (CQL) on cassandra.
- `collection` on mongodb, with an optional `query`: a JSON filter. `_id` is left out.

Secrets: a connection's secret fields are references. A reference is looked up, in
order, in the variable the Kubernetes compiler mounts it as
(`NEBULA_CONNECTION_<CONNECTION>_<FIELD PATH>`, see `emit.kubernetes.env_name`), then as
the runtime's API keys are (`auth.resolve_secret`: `{env: VAR}` from VAR;
`{secret: NAME, key: K}` from `NEBULA_SECRET_<NAME>` or the file
`$NEBULA_SECRETS_DIR/NAME[/K]`). S3 `credentials` hold JSON,
`{"aws_access_key_id": ..., "aws_secret_access_key": ..., "aws_session_token": ...}`
(the token optional); unset, boto3's default chain applies (IRSA, instance role, env).
Azure `credentials` hold a connection string or the account key (unset:
azure-identity's default credential if it is installed, else anonymous). GCS
`credentials` hold a service account's JSON key (unset: application default
credentials; `STORAGE_EMULATOR_HOST` in `environ` points the client at an emulator).

Every mistake a user can fix (a missing file, an unknown connection or table, a
server that does not answer, bad credentials, a secret that is not set, a missing
client library) raises `ConnectorError` naming the source and what to do. Messages
never hold a secret: the values read for a source are scrubbed from them, and the
driver's exception is not chained. Nothing here logs a secret.
"""

from __future__ import annotations

import functools
import glob
import gzip
import io
import json
import logging
import os
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from nebula_compile.emit.kubernetes import env_name
from nebula_runtime.auth import resolve_secret
from nebula_runtime.datacheck import sniff_format
from nebula_runtime.settings import Settings

log = logging.getLogger("nebula.runtime.ml.connectors")

PACKAGE = "nebula-gitops"
CHUNK_ROWS = 50_000
"""Rows fetched from a database at a time."""
CONNECT_TIMEOUT = 10
"""Seconds to wait for a server before saying it does not answer (a connection's options may change it)."""
RETRIES = 3
"""How often an object store's client tries a failed call again (S3, Azure)."""
RETRY_SECONDS = 30.0
"""How long Google Cloud Storage's client keeps trying a failed call."""
LOCATION_KEYS = ("table", "query", "path", "collection", "builtin")


class ConnectorError(Exception):
    """Rows could not be read, for a reason the user can fix; the message says which source and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Failure(Exception):
    """What went wrong and how to fix it; `read` adds the source and scrubs secrets."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


EXTRAS: Mapping[str, str] = {
    "scikit-learn": "ml",
    "pyarrow": "runtime",
    "pymysql": "mysql",
    "pymssql": "mssql",
    "oracledb": "oracle",
    "boto3": "s3",
    "azure-storage-blob": "azure",
    "google-cloud-storage": "gcs",
    "pymongo": "mongodb",
    "cassandra-driver": "cassandra",
}
"""Client library -> the extra of pyproject.toml that installs it (a test keeps the two in step)."""


def _missing(library: str) -> _Failure:
    extra = EXTRAS.get(library)
    command = f"pip install '{PACKAGE}[{extra}]'" if extra else f"pip install '{library}'"
    return _Failure(f"the Python package {library} is not installed", command)


def _first_line(text: object) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(text).__name__


def _driver_message(error: object) -> str:
    """What a database driver said, on one line: its message argument, decoded, lines joined, repeats dropped."""
    said: object = error
    args = list(getattr(error, "args", ()))
    while args:  # pymssql nests (code, message) in its one argument
        arg = args.pop()
        if isinstance(arg, tuple):
            args.extend(arg)
        elif isinstance(arg, str | bytes):
            said = arg
            break
    text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
    lines = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    message = " ".join(lines) or type(error).__name__
    return message if len(message) <= 300 else message[:297] + "..."


# --- the reading: root, environment and the secrets it revealed -------------------------------------


@dataclass
class Reading:
    """What one `read` works with; remembers every secret it revealed, to scrub them from messages."""

    root: Path
    environ: Mapping[str, str]
    revealed: set[str] = field(default_factory=set)

    def secret(self, connection: str, ref: Any, *trail: str) -> str:
        """The value behind the reference at `trail` in a connection's spec."""
        where = f"'{'.'.join(trail)}' of connection '{connection}'"
        if not isinstance(ref, Mapping) or not ({"env", "secret"} & set(ref)):
            raise _Failure(f"{where} is not a secret reference", "write it as {env: VARIABLE} or {secret: NAME}")
        mounted = env_name("NEBULA", "CONNECTION", connection, *trail)
        secrets_dir = self.environ.get("NEBULA_SECRETS_DIR") or Settings.secrets_dir
        value = self.environ.get(mounted) or resolve_secret(ref, secrets_dir, self.environ)
        if not value:
            if "env" in ref:
                looked = f"the environment variable {ref['env']}"
                fix = f"export {ref['env']}"
            else:
                name, key = str(ref["secret"]), ref.get("key")
                file = os.path.join(secrets_dir, name, str(key)) if key else os.path.join(secrets_dir, name)
                variable = env_name("NEBULA", "SECRET", "".join(c if c.isalnum() else "_" for c in name))
                looked = f"secret '{name}'" + (f" (key '{key}')" if key else "")
                fix = f"set {variable} or write the file {file}"
            raise _Failure(f"{where} comes from {looked}, which is not set", f"{fix} (in Kubernetes: {mounted})")
        self.reveal(value)
        return value

    def reveal(self, value: str) -> None:
        if value:
            self.revealed.update({value, quote(value, safe=""), quote_plus(value)})

    def scrub(self, text: str) -> str:
        for value in sorted(self.revealed, key=len, reverse=True):
            text = text.replace(value, "***")
        return text


# --- connectors ------------------------------------------------------------------------------------------


class Connector(ABC):
    """Reads rows through one connection of nebula.yaml."""

    type: ClassVar[str]
    """The connection's `type` in nebula.yaml."""

    def __init__(self, name: str, spec: Mapping[str, Any], reading: Reading) -> None:
        self.name = name
        self.spec = spec
        self.reading = reading

    @abstractmethod
    def read(self, source: Mapping[str, Any], fmt: str | None) -> pd.DataFrame:
        """The rows the source names; raises `_Failure` for what the user can fix."""

    def secret(self, *trail: str) -> str | None:
        """The secret at `trail` of the spec (e.g. `password`), None when the spec leaves it unset."""
        ref: Any = self.spec
        for part in trail:
            ref = ref.get(part) if isinstance(ref, Mapping) else None
        return None if ref is None else self.reading.secret(self.name, ref, *trail)

    def options(self) -> dict[str, Any]:
        """The connection's `options`, secret references resolved."""
        raw = self.spec.get("options") or {}
        return {k: self.secret("options", k) if isinstance(v, Mapping) else v for k, v in raw.items()}

    def needs(self, source: Mapping[str, Any], *keys: str) -> str:
        """The one of `keys` the source sets."""
        for key in keys:
            if source.get(key):
                return key
        given = [k for k in LOCATION_KEYS if source.get(k)]
        raise _Failure(
            f"a {self.type} connection cannot read {' or '.join(given) or 'a source without a location'}",
            f"give the source {' or '.join(repr(k) for k in keys)}",
        )


# --- files: local folders and object stores -------------------------------------------------------------------

_GLOB_CHARS = re.compile(r"[*?\[]")


def is_glob(path: str) -> bool:
    return bool(_GLOB_CHARS.search(path))


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over object keys: `*` and `?` stay within a folder, `**` crosses folders."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body.replace("\\", "\\\\")) + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def file_format(name: str, fmt: str | None) -> tuple[str, bool]:
    """The format of a file and whether it is gzipped."""
    gzipped = name.lower().endswith(".gz")
    found = fmt or sniff_format(name[:-3] if gzipped else name)
    if found not in ("csv", "json", "parquet"):
        raise _Failure(f"cannot tell the format of '{name}'", "set the dataset's format: csv, json or parquet")
    return found, gzipped


def _json_frame(data: bytes, name: str) -> pd.DataFrame:
    text = data.decode("utf-8-sig")
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg != "Extra data":
            raise _Failure(f"'{name}' is not valid JSON: {err}", "fix the file") from None
        value = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    value.append(json.loads(line))
                except json.JSONDecodeError as line_err:
                    raise _Failure(
                        f"line {number} of '{name}' is not valid JSON: {line_err.msg}", "fix the file"
                    ) from None
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        return pd.DataFrame(value)
    rows = [value] if isinstance(value, dict) else value
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise _Failure(
            f"'{name}' holds no rows: JSON rows are objects", "write JSON Lines or an array of objects, one per row"
        )
    return pd.DataFrame(rows)


def _bytes(data: bytes | Path) -> bytes:
    return data.read_bytes() if isinstance(data, Path) else data


def parse_file(data: bytes | Path, name: str, fmt: str | None) -> pd.DataFrame:
    """Rows of one file, given its bytes or its path."""
    found, gzipped = file_format(name, fmt)
    try:
        if gzipped:
            data = gzip.decompress(_bytes(data))
        if found == "json":
            return _json_frame(_bytes(data), name)
        handle = data if isinstance(data, Path) else io.BytesIO(data)
        if found == "csv":
            return pd.read_csv(handle)
        return pd.read_parquet(handle)
    except ImportError:
        raise _missing("pyarrow") from None  # pandas reads Parquet with pyarrow
    except pd.errors.EmptyDataError:
        raise _Failure(f"'{name}' is empty", "write a header line and rows, or remove the file") from None
    except gzip.BadGzipFile as err:
        raise _Failure(f"'{name}' is not gzip data: {err}", "fix the file or drop its .gz suffix") from None
    except (pd.errors.ParserError, ValueError, EOFError) as err:
        raise _Failure(
            f"'{name}' is not valid {found}: {_first_line(err)}", "fix the file or the dataset's format"
        ) from None
    except OSError as err:
        raise _Failure(f"cannot read '{name}': {err.strerror or err}", "check the file") from None


class FileStore(Connector):
    """A place with files: lists the names matching a glob, fetches one file."""

    @abstractmethod
    def location(self) -> str:
        """The place, as messages name it."""

    def name_of(self, path: str) -> str:
        """The name in this store of a source's path."""
        return path

    @abstractmethod
    def names(self, pattern: str) -> list[str]:
        """The names matching a glob, sorted."""

    @abstractmethod
    def fetch(self, name: str) -> bytes | Path:
        """One file's bytes, or its path; `_Failure` when there is none."""

    def read(self, source: Mapping[str, Any], fmt: str | None) -> pd.DataFrame:
        name = self.name_of(str(source[self.needs(source, "path")]))
        if not is_glob(name):
            return parse_file(self.fetch(name), name, fmt)
        names = self.names(name)
        if not names:
            raise _Failure(f"no file matches '{name}' in {self.location()}", "check the path and the glob")
        return pd.concat([parse_file(self.fetch(n), n, fmt) for n in names], ignore_index=True)


class LocalConnector(FileStore):
    """A folder on this machine, relative to the repository root."""

    type = "local"

    def folder(self) -> Path:
        return self.reading.root / str(self.spec.get("path") or ".")

    def location(self) -> str:
        return f"the folder {self.folder()}"

    def names(self, pattern: str) -> list[str]:
        folder = self.folder()
        return sorted(n for n in glob.glob(pattern, root_dir=folder, recursive=True) if (folder / n).is_file())

    def fetch(self, name: str) -> Path:
        path = self.folder() / name
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise _Failure(f"the file {path} {what}", "check the path; a folder needs a glob such as 'data/*.csv'")
        return path


class RepositoryFiles(LocalConnector):
    """A `path` without a connection: a file of the repository."""

    type = "<repository>"

    def location(self) -> str:
        return f"the repository {self.reading.root}"


def join_key(prefix: str, path: str) -> str:
    """An object key: the connection's prefix is a folder that holds the source's path."""
    prefix, path = prefix.strip("/"), path.lstrip("/")
    return f"{prefix}/{path}" if prefix else path


class ObjectStore(FileStore):
    """A bucket or container: keys under the connection's prefix; a glob lists from its part before the wildcard."""

    def name_of(self, path: str) -> str:
        return join_key(str(self.spec.get("prefix") or ""), path)

    @abstractmethod
    def list_from(self, start: str) -> list[str]:
        """Every object key that starts with `start`."""

    def names(self, pattern: str) -> list[str]:
        wildcard = _GLOB_CHARS.search(pattern)
        regex = glob_regex(pattern)
        return sorted(k for k in self.list_from(pattern[: wildcard.start() if wildcard else None]) if regex.match(k))


class S3Connector(ObjectStore):
    """An S3 bucket, or a bucket of an S3-compatible store at `endpoint_url` (MinIO, Ceph, ...)."""

    type = "s3"

    def location(self) -> str:
        return f"s3://{self.spec['bucket']}/{str(self.spec.get('prefix') or '').lstrip('/')}"

    @functools.cached_property
    def client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise _missing("boto3") from None
        keys: dict[str, str] = {}
        raw = self.secret("credentials")
        if raw is not None:
            try:
                given = json.loads(raw)
            except json.JSONDecodeError:
                given = None
            if not isinstance(given, dict) or not {"aws_access_key_id", "aws_secret_access_key"} <= set(given):
                raise _Failure(
                    f"the credentials of connection '{self.name}' are not JSON with aws_access_key_id and "
                    "aws_secret_access_key",
                    'store {"aws_access_key_id": "...", "aws_secret_access_key": "..."} in the secret, '
                    "or leave credentials unset to use the workload's IAM role",
                )
            names = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
            keys = {k: str(given[k]) for k in names if given.get(k)}
            for value in keys.values():
                self.reading.reveal(value)
        session = boto3.session.Session(region_name=self.spec.get("region"), **keys)
        retries = {"mode": "standard", "total_max_attempts": RETRIES + 1}
        config = Config(connect_timeout=CONNECT_TIMEOUT, read_timeout=60, retries=retries)
        return session.client("s3", endpoint_url=self.spec.get("endpoint_url"), config=config)

    def _call(self, action: Callable[[], Any], key: str) -> Any:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        bucket = self.spec["bucket"]
        try:
            return action()
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                raise _Failure(f"the bucket '{bucket}' does not exist", f"check connection '{self.name}'") from None
            if code in ("NoSuchKey", "404"):
                raise _Failure(f"there is no object s3://{bucket}/{key}", "check the path and the prefix") from None
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
                raise _Failure(
                    f"S3 refused access to s3://{bucket}/{key} ({code})",
                    f"check the credentials of connection '{self.name}' and what they may read",
                ) from None
            raise _Failure(f"S3 answered {code or 'an error'}: {_first_line(err)}", "check the connection") from None
        except NoCredentialsError:
            raise _Failure(
                "no AWS credentials were found",
                f"set credentials on connection '{self.name}', or run with an IAM role or AWS_* variables",
            ) from None
        except EndpointConnectionError:
            where = self.spec.get("endpoint_url") or "S3"
            raise _Failure(f"cannot reach {where}", f"check endpoint_url and region of '{self.name}'") from None
        except BotoCoreError as err:
            raise _Failure(f"S3 failed: {_first_line(err)}", f"check connection '{self.name}'") from None

    def list_from(self, start: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.spec["bucket"], Prefix=start)
        listed: list[dict[str, Any]] = self._call(lambda: list(pages), start)
        return [str(item["Key"]) for page in listed for item in page.get("Contents", [])]

    def fetch(self, name: str) -> bytes:
        client = self.client
        data: bytes = self._call(lambda: client.get_object(Bucket=self.spec["bucket"], Key=name)["Body"].read(), name)
        return data


class AzureBlobConnector(ObjectStore):
    """A container of an Azure storage account."""

    type = "azure_blob"

    def location(self) -> str:
        return f"container '{self.spec['container']}' of storage account '{self.spec['account']}'"

    @functools.cached_property
    def container(self) -> Any:
        try:
            from azure.storage.blob import BlobServiceClient, ExponentialRetry
        except ImportError:
            raise _missing("azure-storage-blob") from None
        account = str(self.spec["account"])
        retry = ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=RETRIES, random_jitter_range=1)
        settings: dict[str, Any] = {"connection_timeout": CONNECT_TIMEOUT, "retry_policy": retry}
        raw = self.secret("credentials")
        if raw is not None and ("AccountName=" in raw or "BlobEndpoint=" in raw):
            for part in raw.split(";"):
                field_name, _, value = part.partition("=")
                if field_name.strip() in ("AccountKey", "SharedAccessSignature"):
                    self.reading.reveal(value)
            try:
                service = BlobServiceClient.from_connection_string(raw, **settings)
            except ValueError:
                raise _Failure(
                    f"the credentials of connection '{self.name}' are not a valid connection string",
                    "store the storage account's connection string or its account key in the secret",
                ) from None
        else:
            credential: Any = None
            if raw is not None:
                credential = {"account_name": account, "account_key": raw}
            else:
                try:
                    from azure.identity import DefaultAzureCredential  # type: ignore[import-untyped,import-not-found,unused-ignore]

                    credential = DefaultAzureCredential()
                except ImportError:
                    credential = None  # anonymous: a public container
            service = BlobServiceClient(f"https://{account}.blob.core.windows.net", credential=credential, **settings)
        return service.get_container_client(str(self.spec["container"]))

    def _call(self, action: Callable[[], Any], key: str) -> Any:
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
        )

        try:
            return action()
        except ResourceNotFoundError as err:
            if getattr(err, "error_code", None) == "ContainerNotFound":
                raise _Failure(f"there is no {self.location()}", f"check connection '{self.name}'") from None
            raise _Failure(f"there is no blob '{key}' in {self.location()}", "check the path and the prefix") from None
        except HttpResponseError as err:
            if isinstance(err, ClientAuthenticationError) or err.status_code in (401, 403):
                raise _Failure(
                    f"Azure refused the credentials for {self.location()}",
                    f"check the credentials of connection '{self.name}' (a connection string or the account key)",
                ) from None
            code = getattr(err, "error_code", None) or err.status_code
            raise _Failure(
                f"Azure answered {getattr(code, 'value', code)} for {self.location()}",
                f"check connection '{self.name}'",
            ) from None
        except ServiceRequestError as err:
            raise _Failure(
                f"cannot reach the storage account '{self.spec['account']}': {_first_line(err)}",
                f"check the account (or the endpoint in the connection string) of '{self.name}'",
            ) from None
        except AzureError as err:
            raise _Failure(f"Azure failed: {_first_line(err)}", f"check connection '{self.name}'") from None

    def list_from(self, start: str) -> list[str]:
        container = self.container
        names: list[str] = self._call(lambda: [b.name for b in container.list_blobs(name_starts_with=start)], start)
        return names

    def fetch(self, name: str) -> bytes:
        container = self.container
        data: bytes = self._call(lambda: container.download_blob(name).readall(), name)
        return data


class GcsConnector(ObjectStore):
    """A Google Cloud Storage bucket."""

    type = "gcs"

    def location(self) -> str:
        return f"gs://{self.spec['bucket']}/{str(self.spec.get('prefix') or '').lstrip('/')}"

    @functools.cached_property
    def client(self) -> Any:
        try:
            with warnings.catch_warnings():  # google.api_core warns when grpcio is there without grpcio-status
                warnings.simplefilter("ignore", ImportWarning)
                import google.cloud.storage as storage  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise _missing("google-cloud-storage") from None
        project = self.spec.get("project")
        emulator = self.reading.environ.get("STORAGE_EMULATOR_HOST")
        if emulator:
            from google.auth.credentials import AnonymousCredentials

            return storage.Client(
                project=project or "nebula",
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": emulator if "://" in emulator else f"http://{emulator}"},
            )
        raw = self.secret("credentials")
        credentials = None
        if raw is not None:
            from google.oauth2 import service_account

            try:
                info = json.loads(raw)
                self.reading.reveal(str(info.get("private_key") or ""))
                credentials = service_account.Credentials.from_service_account_info(info)  # type: ignore[no-untyped-call]
            except (ValueError, AttributeError, KeyError):
                raise _Failure(
                    f"the credentials of connection '{self.name}' are not a service account's JSON key",
                    "store the content of the JSON key file in the secret, or leave credentials unset",
                ) from None
        from google.auth.exceptions import DefaultCredentialsError

        try:
            return storage.Client(project=project, credentials=credentials)
        except DefaultCredentialsError as err:
            raise _Failure(
                f"no Google Cloud credentials: {_first_line(err)}",
                f"set credentials on connection '{self.name}' or run with a workload identity",
            ) from None

    def retry(self) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped,unused-ignore]

        return DEFAULT_RETRY.with_timeout(RETRY_SECONDS)

    def _call(self, action: Callable[[], Any], key: str) -> Any:
        from google.api_core import exceptions as gexc

        bucket = self.spec["bucket"]
        try:
            return action()
        except gexc.NotFound:
            raise _Failure(
                f"there is no object gs://{bucket}/{key}", f"check the path, the prefix and the bucket of '{self.name}'"
            ) from None
        except (gexc.Forbidden, gexc.Unauthorized):
            raise _Failure(
                f"Google Cloud Storage refused access to gs://{bucket}/{key}",
                f"check the credentials of connection '{self.name}' and what they may read",
            ) from None
        except gexc.RetryError as err:  # what is left when every try failed, e.g. to connect
            raise _Failure(
                f"Google Cloud Storage did not answer within {RETRY_SECONDS:g} s: {_first_line(err.cause)}",
                "check the network (and STORAGE_EMULATOR_HOST when it is set)",
            ) from None
        except gexc.GoogleAPIError as err:
            raise _Failure(f"Google Cloud Storage failed: {_first_line(err)}", "check the connection") from None
        except OSError as err:  # requests' ConnectionError, when a call is not retried
            raise _Failure(f"cannot reach Google Cloud Storage: {_first_line(err)}", "check the network") from None

    def list_from(self, start: str) -> list[str]:
        client = self.client
        bucket = self.spec["bucket"]
        retry = self.retry()
        names: list[str] = self._call(
            lambda: [b.name for b in client.list_blobs(bucket, prefix=start, timeout=60, retry=retry)], start
        )
        return names

    def fetch(self, name: str) -> bytes:
        client = self.client
        retry = self.retry()
        data: bytes = self._call(
            lambda: client.bucket(self.spec["bucket"]).blob(name).download_as_bytes(timeout=60, retry=retry), name
        )
        return data


# --- SQL databases, through SQLAlchemy --------------------------------------------------------------------


class SqlConnector(Connector):
    """A SQL database: a `table` or a `query`, read in chunks with a server-side cursor."""

    driver: ClassVar[str]
    """SQLAlchemy's `dialect+driver`."""
    library: ClassVar[str]
    """The driver's package, as pip names it."""
    default_port: ClassVar[int]
    timeout_option: ClassVar[str] = "connect_timeout"
    """The driver's name for the connect timeout, set to CONNECT_TIMEOUT unless the options set it."""

    def url(self) -> sa.URL:
        return sa.URL.create(
            self.driver,
            username=self.spec.get("user"),
            password=self.secret("password"),
            host=str(self.spec["host"]),
            port=int(self.spec.get("port") or self.default_port),
            database=str(self.spec["database"]),
        )

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments of the driver's connect(): the connection's options and a connect timeout."""
        return {self.timeout_option: CONNECT_TIMEOUT, **self.options()}

    def statement(self, source: Mapping[str, Any]) -> tuple[str | sa.Select[Any], str]:
        """What to run, and how to name it in messages."""
        key = self.needs(source, "table", "query")
        if key == "query":
            return str(source["query"]), "the query"
        schema, _, name = str(source["table"]).rpartition(".")
        if not name:
            raise _Failure(f"'{source['table']}' is not a table name", "write 'table' or 'schema.table'")
        table = sa.table(name, schema=schema or None)
        return sa.select(sa.literal_column("*")).select_from(table), f"table '{source['table']}'"

    def server(self) -> str:
        user = self.spec.get("user")
        port = self.spec.get("port") or self.default_port
        return f"{self.type} server {self.spec['host']}:{port}" + (f" as user '{user}'" if user else "")

    def read(self, source: Mapping[str, Any], fmt: str | None) -> pd.DataFrame:
        statement, what = self.statement(source)
        try:
            engine = sa.create_engine(self.url(), connect_args=self.connect_args(), poolclass=NullPool)
        except (ImportError, sa_exc.NoSuchModuleError):
            raise _missing(self.library) from None
        try:
            try:
                connection = engine.connect()
            except sa_exc.DBAPIError as err:
                raise _Failure(
                    f"cannot connect to the {self.server()}: {_driver_message(err.orig)}",
                    f"check host, port, database, user and password of connection '{self.name}', "
                    "and that the server is up",
                ) from None
            with connection:
                # a query's text goes to the driver as written: no parameters, so '%' and ':' are not placeholders
                streaming = connection.execution_options(stream_results=True, no_parameters=True)
                try:
                    chunks = list(pd.read_sql(statement, streaming, chunksize=CHUNK_ROWS))
                except (sa_exc.SQLAlchemyError, pd.errors.DatabaseError) as err:
                    cause = err.__cause__ if isinstance(err, pd.errors.DatabaseError) else err
                    message = _driver_message(getattr(cause, "orig", None) or cause or err)
                    raise _Failure(
                        f"the {self.type} database '{self.spec['database']}' refused {what}: {message}",
                        "check the table name (schema.table) or the query, and what the user may read",
                    ) from None
        finally:
            engine.dispose()
        if len(chunks) == 1:
            return chunks[0]
        return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()


class PostgresConnector(SqlConnector):
    type = "postgresql"
    driver = "postgresql+psycopg"
    library = "psycopg[binary]"  # a dependency of Nebula itself
    default_port = 5432

    def connect_args(self) -> dict[str, Any]:
        return {"sslmode": self.spec.get("sslmode") or "prefer", **super().connect_args()}


class MysqlConnector(SqlConnector):
    """MySQL and MariaDB, through PyMySQL."""

    type = "mysql"
    driver = "mysql+pymysql"
    library = "pymysql"
    default_port = 3306


class MssqlConnector(SqlConnector):
    """SQL Server, through pymssql (FreeTDS ships in its wheels, no ODBC driver to install)."""

    type = "mssql"
    driver = "mssql+pymssql"
    library = "pymssql"
    default_port = 1433
    timeout_option = "login_timeout"


class OracleConnector(SqlConnector):
    """Oracle, through python-oracledb in thin mode; the connection's `database` is the service name."""

    type = "oracle"
    driver = "oracle+oracledb"
    library = "oracledb"
    default_port = 1521
    timeout_option = "tcp_connect_timeout"

    def url(self) -> sa.URL:
        return sa.URL.create(
            self.driver,
            username=self.spec.get("user"),
            password=self.secret("password"),
            host=str(self.spec["host"]),
            port=int(self.spec.get("port") or self.default_port),
            query={"service_name": str(self.spec["database"])},
        )


# --- document and wide-column stores --------------------------------------------------------------------------


class MongoConnector(Connector):
    """A MongoDB collection; the source's `query`, when given, is a JSON filter."""

    type = "mongodb"

    def read(self, source: Mapping[str, Any], fmt: str | None) -> pd.DataFrame:
        collection = str(source[self.needs(source, "collection")])
        query: dict[str, Any] = {}
        if source.get("query"):
            try:
                query = json.loads(str(source["query"]))
            except json.JSONDecodeError as err:
                raise _Failure(f"the query is not JSON: {err}", 'write a filter such as {"status": "active"}') from None
            if not isinstance(query, dict):
                raise _Failure("the query is not a JSON object", 'write a filter such as {"status": "active"}')
        try:
            import pymongo
            from pymongo import errors
        except ImportError:
            raise _missing("pymongo") from None
        settings: dict[str, Any] = {
            "serverSelectionTimeoutMS": CONNECT_TIMEOUT * 1000,
            "connectTimeoutMS": CONNECT_TIMEOUT * 1000,
            "tls": bool(self.spec.get("tls", True)),
            **self.options(),
        }
        if self.spec.get("user"):
            settings["username"] = self.spec["user"]
        password = self.secret("password")
        if password is not None:
            settings["password"] = password
        if self.spec.get("replica_set"):
            settings["replicaSet"] = self.spec["replica_set"]
        hosts = list(self.spec["hosts"])
        try:
            client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(hosts, **settings)
        except (errors.ConfigurationError, TypeError, ValueError) as err:
            raise _Failure(f"connection '{self.name}' is not a valid MongoDB client setting: {err}", "fix it") from None
        try:
            cursor = client[str(self.spec["database"])][collection].find(query, {"_id": False}, batch_size=CHUNK_ROWS)
            rows = list(cursor)
        except errors.OperationFailure as err:
            if err.code in (13, 18):
                raise _Failure(
                    f"MongoDB refused user '{self.spec.get('user')}': {err.details and err.details.get('errmsg')}",
                    f"check user and password of connection '{self.name}' (and authSource in its options)",
                ) from None
            raise _Failure(f"MongoDB refused the read of '{collection}': {err.details}", "check the query") from None
        except errors.ServerSelectionTimeoutError:
            raise _Failure(
                f"no MongoDB server answered at {', '.join(hosts)} within {settings['serverSelectionTimeoutMS']} ms",
                f"check hosts, tls and replica_set of connection '{self.name}', and that the server is up",
            ) from None
        except errors.PyMongoError as err:
            raise _Failure(f"MongoDB failed: {_first_line(err)}", f"check connection '{self.name}'") from None
        finally:
            client.close()
        return pd.DataFrame(rows)


class CassandraConnector(Connector):
    """A Cassandra table (`keyspace.table` or a table of the connection's keyspace) or a CQL query."""

    type = "cassandra"

    def read(self, source: Mapping[str, Any], fmt: str | None) -> pd.DataFrame:
        key = self.needs(source, "table", "query")
        try:
            from cassandra import DriverException  # type: ignore[import-untyped,unused-ignore]
            from cassandra.auth import PlainTextAuthProvider  # type: ignore[import-untyped,unused-ignore]
            from cassandra.cluster import Cluster, NoHostAvailable  # type: ignore[import-untyped,unused-ignore]
            from cassandra.metadata import protect_name  # type: ignore[import-untyped,unused-ignore]
            from cassandra.query import SimpleStatement, dict_factory  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise _missing("cassandra-driver") from None
        keyspace = str(self.spec["keyspace"])
        if key == "table":
            space, _, table = str(source["table"]).rpartition(".")
            cql = f"SELECT * FROM {protect_name(space or keyspace)}.{protect_name(table)}"
            what = f"table '{source['table']}'"
        else:
            cql, what = str(source["query"]), "the query"
        settings: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, **self.options()}
        password = self.secret("password")
        if self.spec.get("user"):
            settings["auth_provider"] = PlainTextAuthProvider(username=self.spec["user"], password=password or "")
        hosts = [str(h) for h in self.spec["hosts"]]
        port = int(self.spec.get("port") or 9042)
        try:
            cluster = Cluster(contact_points=hosts, port=port, **settings)
        except TypeError as err:
            raise _Failure(f"connection '{self.name}' has an option Cassandra does not know: {err}", "fix it") from None
        try:
            try:
                session = cluster.connect(keyspace)
            except NoHostAvailable as err:
                reasons = "; ".join(sorted({_first_line(e) for e in err.errors.values()})) or "no host answered"
                raise _Failure(
                    f"cannot connect to Cassandra at {', '.join(hosts)} port {port}: {reasons}",
                    f"check hosts, port, keyspace, user and password of connection '{self.name}'",
                ) from None
            session.row_factory = dict_factory
            try:
                rows = list(session.execute(SimpleStatement(cql, fetch_size=CHUNK_ROWS), timeout=60))
            except DriverException as err:
                raise _Failure(
                    f"Cassandra refused {what}: {_first_line(err)}", "check the table or the query"
                ) from None
        finally:
            cluster.shutdown()
        return pd.DataFrame(rows)


CONNECTORS: Mapping[str, type[Connector]] = {
    c.type: c
    for c in (
        LocalConnector,
        S3Connector,
        AzureBlobConnector,
        GcsConnector,
        PostgresConnector,
        MysqlConnector,
        MssqlConnector,
        OracleConnector,
        MongoConnector,
        CassandraConnector,
    )
}
"""Connection type -> the class that reads through it."""


# --- datasets that ship with scikit-learn --------------------------------------------------------------------

BUILTINS: Mapping[str, tuple[str, str]] = {
    "sklearn.digits": ("load_digits", "digit"),
    "sklearn.iris": ("load_iris", "species"),
    "sklearn.breast_cancer": ("load_breast_cancer", "diagnosis"),
    "sklearn.wine": ("load_wine", "cultivar"),
    "sklearn.diabetes": ("load_diabetes", "progression"),
}
"""Builtin name -> (scikit-learn loader, target column)."""


def snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def read_builtin(name: str) -> pd.DataFrame:
    if name not in BUILTINS:
        raise _Failure(f"there is no builtin dataset '{name}'", f"use one of {', '.join(BUILTINS)}")
    try:
        from sklearn import datasets
    except ImportError:
        raise _missing("scikit-learn") from None
    loader, target = BUILTINS[name]
    bunch = getattr(datasets, loader)()
    data = bunch.data
    if name == "sklearn.digits":
        columns = [f"pixel_{i}" for i in range(data.shape[1])]  # images.reshape(n, 64): row by row
    else:
        columns = [snake_case(str(f)) for f in bunch.feature_names]
    frame = pd.DataFrame(data, columns=columns)
    frame[target] = bunch.target
    return frame


# --- the one entry point ------------------------------------------------------------------------------------


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(source: Mapping[str, Any]) -> str:
    """A source as messages name it, e.g. `source {connection: warehouse, table: crm.customers}`."""
    parts = [f"{k}: {_clip(str(source[k]))}" for k in ("connection", *LOCATION_KEYS) if source.get(k)]
    if source.get("upload"):
        parts.append("upload: true")
    return "source {" + ", ".join(parts) + "}"


def _connector(source: Mapping[str, Any], connections: Mapping[str, Mapping[str, Any]], reading: Reading) -> Connector:
    name = source.get("connection")
    if not name:
        if source.get("path"):
            return RepositoryFiles("<repository>", {"type": "local", "path": "."}, reading)
        given = [k for k in LOCATION_KEYS if source.get(k)]
        raise _Failure(
            f"{' and '.join(given) or 'this source'} needs a connection",
            "add 'connection: NAME' naming one of nebula.yaml's connections",
        )
    if name not in connections:
        known = f"declared: {', '.join(sorted(connections))}" if connections else "none are declared"
        raise _Failure(f"there is no connection '{name}' ({known})", "declare it under connections: in nebula.yaml")
    spec = connections[name]
    kind = str(spec.get("type"))
    if kind not in CONNECTORS:
        raise _Failure(
            f"connection '{name}' has type '{kind}', which Nebula cannot read", f"use {', '.join(CONNECTORS)}"
        )
    return CONNECTORS[kind](str(name), spec, reading)


def read(
    source: Mapping[str, Any],
    *,
    fmt: str | None,
    connections: Mapping[str, Mapping[str, Any]],
    root: Path,
    environ: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The rows of a dataset's source; `ConnectorError` for what the user can fix."""
    reading = Reading(Path(root), os.environ if environ is None else environ)
    where = describe(source)
    log.info("reading %s", where)
    try:
        if source.get("builtin"):
            return read_builtin(str(source["builtin"]))
        if source.get("upload") and not any(source.get(k) for k in LOCATION_KEYS):
            raise _Failure(
                "rows of an upload dataset arrive through POST /v1/projects/{id}/data",
                "read its uploaded versions from the dataset store",
            )
        return _connector(source, connections, reading).read(source, fmt)
    except _Failure as failure:
        message = f"cannot read {where}: {failure.problem}" + (f"; {failure.fix}" if failure.fix else "")
    # raised outside the handler, the error carries no driver exception (whose text may hold a secret) as context
    raise ConnectorError(reading.scrub(message))
