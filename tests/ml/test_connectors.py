"""Data connectors against real files and servers: PostgreSQL, MariaDB, moto's S3 server, Azurite, a GCS emulator.

MongoDB, Cassandra, SQL Server and Oracle have no server here: their tests check what a
client does without one (a clear error within a short timeout, the missing library).
"""

from __future__ import annotations

import base64
import gzip
import importlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import traceback
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

import pandas as pd
import psycopg
import pymysql
import pytest
from sklearn.datasets import load_digits

from nebula_compile.spec import models
from nebula_runtime.ml import connectors
from nebula_runtime.ml.connectors import CONNECTORS, ConnectorError, glob_regex, read

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}
SECRET = "Sup3r-s3cret:p@ss/w%rd"
"""A password with characters that URLs escape: it must appear in no message, however encoded."""
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known development account key (public, in Microsoft's documentation)."""
ROWS = pd.DataFrame({"id": [1, 2, 3], "name": ["ada", "grace", "linus"], "score": [0.5, 1.5, 2.5]})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, seconds: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s")


def need(module: str) -> Any:
    """Import a test dependency; skip without it here, fail in CI where it must be installed."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def read_rows(source: Mapping[str, Any], connections: Mapping[str, Any] | None = None, **kw: Any) -> pd.DataFrame:
    kw.setdefault("fmt", None)
    kw.setdefault("root", Path.cwd())
    kw.setdefault("environ", {})
    return read(source, connections=connections or {}, **kw)


def failure(source: Mapping[str, Any], connections: Mapping[str, Any] | None = None, **kw: Any) -> str:
    """The message of the ConnectorError that reading raises, checked to leak no secret anywhere."""
    with pytest.raises(ConnectorError) as caught:
        read_rows(source, connections, **kw)
    assert_no_secret(caught.value)
    return str(caught.value)


def assert_no_secret(error: BaseException) -> None:
    assert error.__cause__ is None and error.__context__ is None  # no driver exception rides along
    printed = "".join(traceback.format_exception(error))  # what a log would show, chained exceptions included
    for form in (SECRET, "Sup3r-s3cret", "p@ss/w%rd", "p%40ss%2Fw%25rd", AZURITE_KEY[:20]):
        assert form not in printed
        assert form not in repr(error)


def same(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)


# --- the registry -------------------------------------------------------------------------------------------------


def test_every_connection_type_of_the_language_has_a_connector() -> None:
    union = get_args(get_args(models.Connection)[0])
    types = {get_args(cls.model_fields["type"].annotation)[0] for cls in union}
    assert set(CONNECTORS) == types
    assert all(cls.type == kind for kind, cls in CONNECTORS.items())


def test_glob_over_object_keys() -> None:
    assert glob_regex("d/*.csv").match("d/a.csv")
    assert not glob_regex("d/*.csv").match("d/x/a.csv")
    assert glob_regex("d/**/*.csv").match("d/x/y/a.csv")
    assert glob_regex("d/**/*.csv").match("d/a.csv")
    assert glob_regex("d/part-[0-9].json").match("d/part-7.json")
    assert not glob_regex("d/part-[!0-9].json").match("d/part-7.json")
    assert glob_regex("d/?.csv").match("d/a.csv") and not glob_regex("d/?.csv").match("d/ab.csv")


# --- files in the repository and in local folders ----------------------------------------------------------------


def write_formats(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ROWS.to_csv(folder / "rows.csv", index=False)
    (folder / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS.to_dict("records")) + "\n")
    (folder / "rows.json").write_text(json.dumps(ROWS.to_dict("records"), indent=2))
    (folder / "columns.json").write_text(json.dumps(ROWS.to_dict("list")))
    ROWS.to_parquet(folder / "rows.parquet", index=False)
    (folder / "rows.csv.gz").write_bytes(gzip.compress(ROWS.to_csv(index=False).encode()))


@pytest.mark.parametrize("name", ["rows.csv", "rows.jsonl", "rows.json", "columns.json", "rows.parquet", "rows.csv.gz"])
def test_repository_file_in_each_format(tmp_path: Path, name: str) -> None:
    write_formats(tmp_path / "data")
    same(read_rows({"path": f"data/{name}"}, root=tmp_path), ROWS)


def test_json_lines_with_a_json_suffix_and_a_format_that_overrides_the_suffix(tmp_path: Path) -> None:
    (tmp_path / "lines.json").write_text('{"id": 1}\n\n{"id": 2}\n')
    same(read_rows({"path": "lines.json"}, root=tmp_path), pd.DataFrame({"id": [1, 2]}))
    ROWS.to_csv(tmp_path / "export.txt", index=False)
    same(read_rows({"path": "export.txt"}, fmt="csv", root=tmp_path), ROWS)


def test_local_connection_reads_from_its_folder_and_globs_in_sorted_order(tmp_path: Path) -> None:
    folder = tmp_path / "lake" / "events"
    (folder / "2024").mkdir(parents=True)
    ROWS.iloc[2:].to_csv(folder / "b.csv", index=False)
    ROWS.iloc[:1].to_csv(folder / "a.csv", index=False)
    ROWS.iloc[1:2].to_csv(folder / "2024" / "a.csv", index=False)
    (folder / "notes.txt").write_text("not data")
    connections = {"lake": {"type": "local", "path": "lake"}}
    same(read_rows({"connection": "lake", "path": "events/*.csv"}, connections, root=tmp_path), ROWS.iloc[[0, 2]])
    both = read_rows({"connection": "lake", "path": "events/**/*.csv"}, connections, root=tmp_path)
    same(both, ROWS.iloc[[1, 0, 2]])  # sorted names: 2024/a.csv, a.csv, b.csv


@pytest.mark.parametrize(
    ("files", "path", "fmt", "expected"),
    [
        ({}, "data/missing.csv", None, "does not exist"),
        ({"data/a.csv": "x\n1\n"}, "data", "csv", "is a folder"),
        ({}, "data/*.csv", None, "no file matches 'data/*.csv'"),
        ({"data/a.xlsx": "x"}, "data/a.xlsx", None, "cannot tell the format of 'data/a.xlsx'"),
        ({"data/a.json": '{"id": 1'}, "data/a.json", None, "'data/a.json' is not valid JSON"),
        ({"data/a.json": '{"id": 1}\n[1]\nnope\n'}, "data/a.json", None, "line 3 of 'data/a.json'"),
        ({"data/a.json": "[1, 2]"}, "data/a.json", None, "JSON rows are objects"),
        ({"data/a.csv": ""}, "data/a.csv", None, "'data/a.csv' is empty"),
        ({"data/a.parquet": "not parquet"}, "data/a.parquet", None, "'data/a.parquet' is not valid parquet"),
        ({"data/a.csv.gz": "not gzip"}, "data/a.csv.gz", None, "not gzip data"),
    ],
)
def test_file_mistakes_name_the_source_and_the_fix(
    tmp_path: Path, files: dict[str, str], path: str, fmt: str | None, expected: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    message = failure({"path": path}, root=tmp_path, fmt=fmt)
    assert message.startswith(f"cannot read source {{path: {path}}}: ")
    assert expected in message
    assert "; " in message  # ... and what to do


def test_source_mistakes() -> None:
    assert "there is no connection 'warehouse' (none are declared)" in failure(
        {"connection": "warehouse", "table": "t"}
    )
    assert "table needs a connection" in failure({"table": "customers"})
    lake = {"lake": {"type": "local", "path": "."}}
    assert "a local connection cannot read table" in failure({"connection": "lake", "table": "t"}, lake)
    other = {"x": {"type": "ftp"}}
    assert "type 'ftp', which Nebula cannot read" in failure({"connection": "x", "path": "a.csv"}, other)
    assert "POST /v1/projects/{id}/data" in failure({"upload": True})


# --- builtin datasets ---------------------------------------------------------------------------------------------------


def test_builtin_digits_has_the_pixels_row_by_row_and_the_digit() -> None:
    frame = read_rows({"builtin": "sklearn.digits"})
    assert frame.shape == (1797, 65)
    assert list(frame.columns) == [f"pixel_{i}" for i in range(64)] + ["digit"]
    images = load_digits().images
    assert frame.iloc[5, :64].tolist() == images[5].ravel().tolist()
    assert frame.loc[10, "pixel_9"] == images[10][1][1]  # row 1, column 1 of the 8x8 image
    assert sorted(frame["digit"].unique()) == list(range(10))


def test_builtin_iris_from_the_dumped_model() -> None:
    source = models.Source(builtin="sklearn.iris").model_dump()
    frame = read_rows(source)
    assert frame.shape == (150, 5)
    assert list(frame.columns) == ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm", "species"]
    assert sorted(frame["species"].unique()) == [0, 1, 2]


@pytest.mark.parametrize(
    ("name", "shape", "target"),
    [
        ("sklearn.wine", (178, 14), "cultivar"),
        ("sklearn.breast_cancer", (569, 31), "diagnosis"),
        ("sklearn.diabetes", (442, 11), "progression"),
    ],
)
def test_other_builtins(name: str, shape: tuple[int, int], target: str) -> None:
    frame = read_rows({"builtin": name})
    assert frame.shape == shape
    assert frame.columns[-1] == target
    assert all(c == c.lower() and " " not in c and "(" not in c for c in frame.columns)


# --- secrets -----------------------------------------------------------------------------------------------------------


def pg_connection(port: int = 5432, **extra: Any) -> dict[str, Any]:
    spec = {"type": "postgresql", "host": "127.0.0.1", "port": port, "database": "test", "user": "postgres"}
    spec.update({"password": {"env": "PGPASS"}, "sslmode": "disable", "options": {}})
    spec.update(extra)
    return spec


def test_a_secret_that_is_not_set_says_where_it_was_looked_for(tmp_path: Path) -> None:
    message = failure({"connection": "warehouse", "table": "t"}, {"warehouse": pg_connection()})
    assert (
        "'password' of connection 'warehouse' comes from the environment variable PGPASS, which is not set" in message
    )
    assert "export PGPASS" in message and "NEBULA_CONNECTION_WAREHOUSE_PASSWORD" in message
    spec = pg_connection(password={"secret": "warehouse-db", "key": "password"})
    environ = {"NEBULA_SECRETS_DIR": str(tmp_path)}
    message = failure({"connection": "my-wh", "table": "t"}, {"my-wh": spec}, environ=environ)
    assert "secret 'warehouse-db' (key 'password')" in message
    assert "NEBULA_SECRET_WAREHOUSE_DB" in message and str(tmp_path / "warehouse-db" / "password") in message
    assert "NEBULA_CONNECTION_MY_WH_PASSWORD" in message


def test_a_literal_where_a_reference_belongs_is_refused_without_echoing_it() -> None:
    message = failure({"connection": "w", "table": "t"}, {"w": pg_connection(password=SECRET)})
    assert "'password' of connection 'w' is not a secret reference" in message


# --- PostgreSQL -----------------------------------------------------------------------------------------------------------


@pytest.fixture
def pg_table() -> Iterator[str]:
    """A uniquely named table in database `test`, with ROWS, dropped afterwards. Its name has capitals."""
    name = f"Nebula_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{name}" (id integer, name text, score double precision)')
        for row in ROWS.itertuples(index=False):
            conn.execute(f'INSERT INTO "{name}" VALUES (%s, %s, %s)', tuple(row))
    try:
        yield name
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{name}"')


def test_postgres_table_query_and_schema_qualified_table(pg_table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connectors, "CHUNK_ROWS", 2)  # three chunks from the server-side cursor
    connections = {"warehouse": pg_connection()}
    environ = {"PGPASS": SECRET}
    same(read_rows({"connection": "warehouse", "table": pg_table}, connections, environ=environ), ROWS)
    same(read_rows({"connection": "warehouse", "table": f"public.{pg_table}"}, connections, environ=environ), ROWS)
    query = f"SELECT id, name FROM \"{pg_table}\" WHERE name NOT LIKE '%z%' AND '10:30' <> '' ORDER BY id"
    same(read_rows({"connection": "warehouse", "query": query}, connections, environ=environ), ROWS[["id", "name"]])
    empty = read_rows({"connection": "warehouse", "query": "SELECT 1 AS one WHERE false"}, connections, environ=environ)
    assert list(empty.columns) == ["one"] and empty.empty


def test_postgres_from_dumped_models_with_the_secret_mounted_as_kubernetes_does(pg_table: str) -> None:
    spec = models.PostgresConnection(
        type="postgresql",
        host="127.0.0.1",
        database="test",
        user="postgres",
        sslmode="disable",
        password={"secret": "warehouse", "key": "password"},  # type: ignore[arg-type]
    ).model_dump()
    source = models.Source(connection="wh", table=pg_table).model_dump()
    environ = {"NEBULA_CONNECTION_WH_PASSWORD": SECRET}
    same(read_rows(source, {"wh": spec}, environ=environ), ROWS)


def test_postgres_secret_from_the_secrets_folder(pg_table: str, tmp_path: Path) -> None:
    (tmp_path / "warehouse").mkdir()
    (tmp_path / "warehouse" / "password").write_text(SECRET + "\n")
    spec = pg_connection(password={"secret": "warehouse", "key": "password"})
    environ = {"NEBULA_SECRETS_DIR": str(tmp_path)}
    same(read_rows({"connection": "wh", "table": pg_table}, {"wh": spec}, environ=environ), ROWS)


def test_postgres_mistakes(pg_table: str) -> None:
    environ = {"PGPASS": SECRET}
    message = failure({"connection": "wh", "table": "no_such_table"}, {"wh": pg_connection()}, environ=environ)
    assert "the postgresql database 'test' refused table 'no_such_table'" in message
    assert 'relation "no_such_table" does not exist' in message
    message = failure({"connection": "wh", "query": "SELEC 1"}, {"wh": pg_connection()}, environ=environ)
    assert "refused the query: syntax error" in message
    port = free_port()
    message = failure({"connection": "wh", "table": pg_table}, {"wh": pg_connection(port)}, environ=environ)
    assert f"cannot connect to the postgresql server 127.0.0.1:{port} as user 'postgres'" in message
    assert "Connection refused" in message and "check host, port, database, user and password" in message


def test_a_table_name_is_quoted_as_an_identifier_never_run_as_sql(pg_table: str) -> None:
    sneaky = f'x"; DROP TABLE "{pg_table}"; --'
    message = failure({"connection": "wh", "table": sneaky}, {"wh": pg_connection()}, environ={"PGPASS": SECRET})
    assert "does not exist" in message
    same(read_rows({"connection": "wh", "table": pg_table}, {"wh": pg_connection()}, environ={"PGPASS": "x"}), ROWS)


def test_a_secret_the_driver_echoes_is_scrubbed(pg_table: str) -> None:
    # libpq repeats an invalid option value in its message: here that value is a secret
    spec = pg_connection(options={"sslmode": {"env": "SSLMODE"}})
    message = failure({"connection": "wh", "table": pg_table}, {"wh": spec}, environ={"PGPASS": "x", "SSLMODE": SECRET})
    assert "cannot connect" in message and "***" in message


def test_nothing_logs_a_secret(pg_table: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    environ = {"PGPASS": SECRET}
    read_rows({"connection": "wh", "table": pg_table}, {"wh": pg_connection()}, environ=environ)
    failure({"connection": "wh", "table": "nope"}, {"wh": pg_connection()}, environ=environ)
    assert any("reading source {connection: wh" in r.getMessage() for r in caplog.records)
    assert not any(SECRET in r.getMessage() or "Sup3r" in r.getMessage() for r in caplog.records)


# --- MariaDB (the mysql type) -------------------------------------------------------------------------------------------


@pytest.fixture
def mariadb_table() -> Iterator[str]:
    """A uniquely named table in MariaDB's database `test`, with ROWS, dropped afterwards."""
    name = f"nebula_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(**MARIADB, autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE TABLE `{name}` (id INT, name VARCHAR(20), score DOUBLE)")
            cursor.executemany(
                f"INSERT INTO `{name}` VALUES (%s, %s, %s)", [tuple(r) for r in ROWS.itertuples(index=False)]
            )
        yield name
    finally:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS `{name}`")
        conn.close()


def mariadb_connection(password: Any = None) -> dict[str, Any]:
    spec = {"type": "mysql", "host": "127.0.0.1", "port": 3306, "database": "test", "user": "root", "options": {}}
    return {**spec, "password": password} if password else spec


def test_mariadb_table_and_query(mariadb_table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connectors, "CHUNK_ROWS", 2)
    connections = {"shop": mariadb_connection()}
    same(read_rows({"connection": "shop", "table": mariadb_table}, connections), ROWS)
    same(read_rows({"connection": "shop", "table": f"test.{mariadb_table}"}, connections), ROWS)
    query = f"SELECT name, score FROM `{mariadb_table}` WHERE name NOT LIKE '%%z%%' AND name NOT LIKE '%z' ORDER BY id"
    same(read_rows({"connection": "shop", "query": query}, connections), ROWS[["name", "score"]])


def test_mariadb_bad_credentials_and_unknown_table(mariadb_table: str) -> None:
    spec = mariadb_connection({"env": "SHOP_PASSWORD"})
    message = failure({"connection": "shop", "table": mariadb_table}, {"shop": spec}, environ={"SHOP_PASSWORD": SECRET})
    assert "cannot connect to the mysql server 127.0.0.1:3306 as user 'root': Access denied for user 'root'" in message
    message = failure({"connection": "shop", "table": "no_such_table"}, {"shop": mariadb_connection()})
    assert "the mysql database 'test' refused table 'no_such_table'" in message and "doesn't exist" in message


# --- S3, on moto's standalone server -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a local S3-compatible server (moto's) with bucket `nebula-data`."""
    server_module = need("moto.server")
    boto3 = need("boto3")
    port = free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
        )
        client.create_bucket(Bucket="nebula-data")
        client.put_object(Bucket="nebula-data", Key="exports/rows.csv", Body=ROWS.to_csv(index=False).encode())
        for i in (2, 0, 1):
            part = ROWS.iloc[[i]].to_json(orient="records", lines=True).encode()
            client.put_object(Bucket="nebula-data", Key=f"exports/parts/part-{i}.jsonl", Body=part)
        client.put_object(Bucket="nebula-data", Key="exports/parts/deeper/part-9.jsonl", Body=b'{"id": 9}\n')
        yield url
    finally:
        server.stop()


def s3_connection(url: str, **extra: Any) -> dict[str, Any]:
    spec = {"type": "s3", "bucket": "nebula-data", "prefix": "exports/", "region": "us-east-1", "endpoint_url": url}
    return {**spec, "credentials": {"env": "S3_KEYS"}, **extra}


S3_KEYS = {"S3_KEYS": json.dumps({"aws_access_key_id": "AKIDNEBULA", "aws_secret_access_key": SECRET})}


def test_s3_file_and_glob(s3_server: str) -> None:
    connections = {"exports": s3_connection(s3_server)}
    same(read_rows({"connection": "exports", "path": "rows.csv"}, connections, environ=S3_KEYS), ROWS)
    parts = read_rows({"connection": "exports", "path": "parts/part-*.jsonl"}, connections, environ=S3_KEYS)
    same(parts, ROWS)  # part-0, part-1, part-2 in that order; deeper/ is not matched by *
    assert len(read_rows({"connection": "exports", "path": "parts/**.jsonl"}, connections, environ=S3_KEYS)) == 4


def test_s3_mistakes(s3_server: str) -> None:
    connections = {"exports": s3_connection(s3_server)}
    message = failure({"connection": "exports", "path": "missing.csv"}, connections, environ=S3_KEYS)
    assert "there is no object s3://nebula-data/exports/missing.csv" in message
    message = failure({"connection": "exports", "path": "*.parquet"}, connections, environ=S3_KEYS)
    assert "no file matches 'exports/*.parquet' in s3://nebula-data/exports/" in message
    other = {"exports": s3_connection(s3_server, bucket="no-such-bucket")}
    assert "the bucket 'no-such-bucket' does not exist" in failure(
        {"connection": "exports", "path": "rows.csv"}, other, environ=S3_KEYS
    )
    message = failure({"connection": "exports", "path": "rows.csv"}, connections, environ={"S3_KEYS": SECRET})
    assert "are not JSON with aws_access_key_id and aws_secret_access_key" in message
    closed = {"exports": s3_connection(f"http://127.0.0.1:{free_port()}")}
    assert "cannot reach http://127.0.0.1:" in failure(
        {"connection": "exports", "path": "rows.csv"}, closed, environ=S3_KEYS
    )


# --- Azure Blob, on Azurite -------------------------------------------------------------------------------------------------


def azurite_command() -> str | None:
    for candidate in (
        os.environ.get("NEBULA_AZURITE_BLOB"),
        shutil.which("azurite-blob"),
        str(Path.home() / ".cache" / "nebula-azurite" / "node_modules" / ".bin" / "azurite-blob"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A connection string to Azurite's blob service, with container `nebula` holding data/*.csv."""
    command = azurite_command()
    if command is None:
        hint = "npm install --prefix ~/.cache/nebula-azurite azurite (or set NEBULA_AZURITE_BLOB)"
        if os.environ.get("CI"):
            pytest.fail(f"Azurite is not installed: {hint}")
        pytest.skip(f"Azurite is not installed: {hint}")
    blob = need("azure.storage.blob")
    port = free_port()
    folder = tmp_path_factory.mktemp("azurite")
    flags = ["--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry", "--silent", "--loose"]
    process = subprocess.Popen(
        [command, "--blobHost", "127.0.0.1", "--blobPort", str(port), *flags],
        cwd=folder,  # where Azurite would leave any file
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 30, process)
        endpoint = f"http://127.0.0.1:{port}/devstoreaccount1"
        text = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
        container = blob.BlobServiceClient.from_connection_string(text).get_container_client("nebula")
        container.create_container()
        container.upload_blob("data/b.csv", ROWS.iloc[1:].to_csv(index=False).encode())
        container.upload_blob("data/a.csv", ROWS.iloc[:1].to_csv(index=False).encode())
        container.upload_blob("data/rows.parquet", ROWS.to_parquet(index=False))
        yield text
    finally:
        process.terminate()
        process.wait(10)


def azure_connection(**extra: Any) -> dict[str, Any]:
    spec = {"type": "azure_blob", "account": "devstoreaccount1", "container": "nebula", "prefix": "data"}
    return {**spec, "credentials": {"secret": "azure-storage"}, **extra}


def test_azure_blob_file_and_glob(azurite: str) -> None:
    connections = {"lake": azure_connection()}
    environ = {"NEBULA_SECRET_AZURE_STORAGE": azurite}
    same(read_rows({"connection": "lake", "path": "rows.parquet"}, connections, environ=environ), ROWS)
    same(read_rows({"connection": "lake", "path": "*.csv"}, connections, environ=environ), ROWS)


def test_azure_blob_mistakes(azurite: str) -> None:
    environ = {"NEBULA_SECRET_AZURE_STORAGE": azurite}
    message = failure({"connection": "lake", "path": "missing.csv"}, {"lake": azure_connection()}, environ=environ)
    assert "there is no blob 'data/missing.csv' in container 'nebula' of storage account 'devstoreaccount1'" in message
    message = failure(
        {"connection": "lake", "path": "a.csv"}, {"lake": azure_connection(container="other")}, environ=environ
    )
    assert "there is no container 'other'" in message
    wrong_key = base64.b64encode(SECRET.encode() * 4).decode()
    wrong = azurite.replace(AZURITE_KEY, wrong_key)
    message = failure(
        {"connection": "lake", "path": "a.csv"},
        {"lake": azure_connection()},
        environ={"NEBULA_SECRET_AZURE_STORAGE": wrong},
    )
    assert "Azure refused the credentials for container 'nebula'" in message
    assert wrong_key[:12] not in message and "AccountKey" not in message


def test_azure_blob_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    need("azure.storage.blob")
    monkeypatch.setattr(connectors, "RETRIES", 0)
    endpoint = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    text = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    )
    started = time.monotonic()
    message = failure(
        {"connection": "lake", "path": "a.csv"},
        {"lake": azure_connection()},
        environ={"NEBULA_SECRET_AZURE_STORAGE": text},
    )
    assert time.monotonic() - started < 5
    assert "cannot reach the storage account 'devstoreaccount1'" in message


# --- Google Cloud Storage, on an emulator -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[str]:
    """STORAGE_EMULATOR_HOST of an in-memory GCS emulator with bucket `nebula-gcs`."""
    server_module = need("gcp_storage_emulator.server")
    port = free_port()
    server = server_module.create_server("127.0.0.1", port, in_memory=True, default_bucket="nebula-gcs")
    server.start()
    try:
        wait_for_port(port, 10)
        host = f"http://127.0.0.1:{port}"
        with warnings.catch_warnings():  # google.api_core warns when grpcio is there without grpcio-status
            warnings.simplefilter("ignore", ImportWarning)
            storage = need("google.cloud.storage")
        credentials = importlib.import_module("google.auth.credentials").AnonymousCredentials()
        client = storage.Client(project="demo", credentials=credentials, client_options={"api_endpoint": host})
        bucket = client.bucket("nebula-gcs")
        bucket.blob("ml/rows.csv").upload_from_string(ROWS.to_csv(index=False))
        bucket.blob("ml/more/1.json").upload_from_string(ROWS.iloc[:2].to_json(orient="records"))
        bucket.blob("ml/more/2.json").upload_from_string(ROWS.iloc[2:].to_json(orient="records"))
        yield host
    finally:
        server.stop()


def test_gcs_file_glob_and_missing_object(gcs_emulator: str) -> None:
    connections = {"gcs": {"type": "gcs", "bucket": "nebula-gcs", "prefix": "ml", "project": "demo"}}
    environ = {"STORAGE_EMULATOR_HOST": gcs_emulator}
    same(read_rows({"connection": "gcs", "path": "rows.csv"}, connections, environ=environ), ROWS)
    same(read_rows({"connection": "gcs", "path": "more/*.json"}, connections, environ=environ), ROWS)
    message = failure({"connection": "gcs", "path": "nope.csv"}, connections, environ=environ)
    assert "there is no object gs://nebula-gcs/ml/nope.csv" in message


def test_gcs_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    need("google.cloud.storage")
    monkeypatch.setattr(connectors, "RETRY_SECONDS", 0.5)
    connections = {"gcs": {"type": "gcs", "bucket": "nebula-gcs"}}
    environ = {"STORAGE_EMULATOR_HOST": f"127.0.0.1:{free_port()}"}
    started = time.monotonic()
    message = failure({"connection": "gcs", "path": "*.csv"}, connections, environ=environ)
    assert time.monotonic() - started < 5
    assert "Google Cloud Storage did not answer within 0.5 s" in message and "Connection refused" in message


def test_gcs_credentials_that_are_not_a_key_file() -> None:
    need("google.cloud.storage")
    connections = {"gcs": {"type": "gcs", "bucket": "b", "credentials": {"env": "GCS_KEY"}}}
    message = failure({"connection": "gcs", "path": "a.csv"}, connections, environ={"GCS_KEY": SECRET})
    assert "are not a service account's JSON key" in message


# --- MongoDB and Cassandra: no server here --------------------------------------------------------------------------------


def test_mongodb_without_a_server_fails_fast_and_clearly() -> None:
    need("pymongo")
    port = free_port()
    spec = {"type": "mongodb", "hosts": [f"127.0.0.1:{port}"], "database": "crm", "user": "reader"}
    spec |= {"password": {"env": "MONGO_PW"}, "tls": False, "options": {"serverSelectionTimeoutMS": 300}}
    started = time.monotonic()
    message = failure({"connection": "m", "collection": "customers"}, {"m": spec}, environ={"MONGO_PW": SECRET})
    assert time.monotonic() - started < 5
    assert f"no MongoDB server answered at 127.0.0.1:{port} within 300 ms" in message
    message = failure({"connection": "m", "collection": "c", "query": "{status: 1}"}, {"m": spec})
    assert "the query is not JSON" in message


def test_cassandra_without_a_server_fails_fast_and_clearly() -> None:
    need("cassandra.cluster")
    port = free_port()
    spec = {"type": "cassandra", "hosts": ["127.0.0.1"], "port": port, "keyspace": "shop", "user": "reader"}
    spec |= {"password": {"env": "CASS_PW"}, "options": {"connect_timeout": 2}}
    started = time.monotonic()
    message = failure({"connection": "c", "table": "orders"}, {"c": spec}, environ={"CASS_PW": SECRET})
    assert time.monotonic() - started < 5
    assert f"cannot connect to Cassandra at 127.0.0.1 port {port}" in message and "Connection refused" in message
    message = failure(
        {"connection": "c", "table": "orders"}, {"c": spec | {"options": {"bogus": 1}}}, environ={"CASS_PW": "x"}
    )
    assert "has an option Cassandra does not know" in message


@pytest.mark.parametrize(("kind", "library"), [("mssql", "pymssql"), ("oracle", "oracledb")])
def test_sql_servers_without_a_server(kind: str, library: str) -> None:
    port = free_port()
    spec = {"type": kind, "host": "127.0.0.1", "port": port, "database": "sales", "user": "reader"}
    spec |= {"password": {"env": "DB_PW"}, "options": {}}
    message = failure({"connection": "db", "table": "dbo.orders"}, {"db": spec}, environ={"DB_PW": SECRET})
    try:
        importlib.import_module(library)
    except ImportError:
        assert f"pip install 'nebula-gitops[{kind}]'" in message
    else:
        assert f"cannot connect to the {kind} server 127.0.0.1:{port} as user 'reader'" in message


# --- optional libraries ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hidden", "spec", "source", "extra"),
    [
        ("boto3", {"type": "s3", "bucket": "bkt"}, {"path": "a.csv"}, "s3"),
        ("azure.storage.blob", {"type": "azure_blob", "account": "a", "container": "c"}, {"path": "a.csv"}, "azure"),
        ("google.cloud.storage", {"type": "gcs", "bucket": "b"}, {"path": "a.csv"}, "gcs"),
        ("pymongo", {"type": "mongodb", "hosts": ["h"], "database": "d"}, {"collection": "c"}, "mongodb"),
        ("cassandra.cluster", {"type": "cassandra", "hosts": ["h"], "keyspace": "k"}, {"table": "t"}, "cassandra"),
        ("pymysql", {"type": "mysql", "host": "h", "database": "d"}, {"table": "t"}, "mysql"),
        ("pymssql", {"type": "mssql", "host": "h", "database": "d"}, {"table": "t"}, "mssql"),
        ("oracledb", {"type": "oracle", "host": "h", "database": "d"}, {"table": "t"}, "oracle"),
    ],
)
def test_a_missing_client_library_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, hidden: str, spec: dict[str, Any], source: dict[str, Any], extra: str
) -> None:
    monkeypatch.setitem(sys.modules, hidden, None)  # `import hidden` now raises ImportError
    message = failure({"connection": "x", **source}, {"x": spec})
    assert "is not installed" in message and f"pip install 'nebula-gitops[{extra}]'" in message


def test_the_extras_that_messages_name_install_those_libraries() -> None:
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    for library, extra in connectors.EXTRAS.items():
        assert extra in extras, f"pyproject.toml has no extra [{extra}] (for {library})"
        names = {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in extras[extra]}
        assert library in names, f"the extra [{extra}] does not install {library}"


def test_builtin_without_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert "pip install 'nebula-gitops[ml]'" in failure({"builtin": "sklearn.iris"})
