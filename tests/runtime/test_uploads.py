"""Uploads: checked against the declared columns, stored by content in DVC's layout, never half-recorded."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from tests.runtime.conftest import Live, Rt
from tests.runtime.test_rest import CSV, upload

HEADER = b"customer_id,tenure,charges,contract,churned\n"


def versions(rt: Rt, project: str = "churn", dataset: str = "customers") -> list[dict[str, object]]:
    items: list[dict[str, object]] = rt.get(f"/v1/projects/{project}/datasets/{dataset}/versions").get_json()["items"]
    return items


def leftovers(rt: Rt) -> list[str]:
    staging = rt.artifacts / "tmp"
    return sorted(os.listdir(staging)) if staging.exists() else []


def rejected(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.get_json()  # type: ignore[attr-defined]
    error: dict[str, object] = response.get_json()["error"]  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("rows", "column", "rule", "row"),
    [
        (b"c1,12,70.5,monthly,true\nc2,twelve,1.0,monthly,false\n", "tenure", "type", 2),
        (b"c1,12,70.5,monthly,true\nc2,12,1.0,monthly,maybe\n", "churned", "type", 2),
        (b"c1,12,70.5,monthly,true\nc2,700,1.0,monthly,false\nc3,800,1,yearly,true\n", "tenure", "max", 2),
        (b"c1,12,-3,monthly,true\n", "charges", "min", 1),
        (b"c1,12,1,monthly,true\nc2,1,1,weekly,true\n", "contract", "values", 2),
        (b"c1,12,1,monthly,true\nc1,1,1,yearly,true\n", "customer_id", "unique", 2),
        (b"c1,,1,monthly,true\n", "tenure", "missing", None),
    ],
)
def test_a_bad_csv_names_row_column_and_rule_and_is_not_stored(
    rt: Rt, rows: bytes, column: str, rule: str, row: int | None
) -> None:
    error = rejected(upload(rt, "churn", HEADER + rows, "customers.csv"), 422)
    problem = error["details"][0]  # type: ignore[index]
    assert (problem["column"], problem["rule"], problem["row"]) == (column, rule, row)
    assert column in str(error["message"])
    assert versions(rt) == []
    assert leftovers(rt) == []
    assert not (rt.artifacts / "files").exists()


def test_counts_every_row_that_breaks_a_rule(rt: Rt) -> None:
    body = HEADER + b"".join(b"c%d,%d,1,monthly,true\n" % (i, 700 if i % 3 == 0 else 5) for i in range(30))
    problem = rejected(upload(rt, "churn", body, "c.csv"), 422)["details"][0]  # type: ignore[index]
    assert (problem["rule"], problem["count"], problem["row"]) == ("max", 10, 1)


def test_a_declared_column_missing_from_the_file(rt: Rt) -> None:
    error = rejected(upload(rt, "churn", b"customer_id,tenure\nc1,3\n", "c.csv"), 422)
    assert {p["column"] for p in error["details"]} == {"charges", "contract", "churned"}  # type: ignore[union-attr]


def test_a_csv_with_a_ragged_row(rt: Rt) -> None:
    problem = rejected(upload(rt, "churn", HEADER + b"c1,12,1,monthly,true\nc2,1\n", "c.csv"), 422)["details"][0]  # type: ignore[index]
    assert problem["row"] == 2


def test_json_lines_and_json_arrays(rt: Rt) -> None:
    lines = (
        b'{"amount": 3.5, "at": "2026-11-01T10:00:00Z", "card": "x"}\n{"amount": 1, "at": "2026-11-02", "card": "y"}\n'
    )
    stored = upload(rt, "fraud", lines, "tx.jsonl", query="?dataset=tx")
    assert stored.status_code == 200, stored.get_json()
    assert stored.get_json()["rows"] == 2
    array = json.dumps([{"amount": 2.0, "at": "2026-11-03T00:00:00+01:00", "card": "z"}]).encode()
    assert upload(rt, "fraud", array, "tx.json", query="?dataset=tx").get_json()["number"] == 2
    bad = b'{"amount": 3.5, "at": "2026-11-01", "card": "x"}\n{"amount": "lots", "at": "2026-11-02", "card": "y"}\n'
    problem = rejected(upload(rt, "fraud", bad, "tx.jsonl", query="?dataset=tx"), 422)["details"][0]  # type: ignore[index]
    assert (problem["column"], problem["row"]) == ("amount", 2)
    when = b'[{"amount": 1.0, "at": "yesterday", "card": "x"}]'
    problem = rejected(upload(rt, "fraud", when, "tx.json", query="?dataset=tx"), 422)["details"][0]  # type: ignore[index]
    assert (problem["column"], problem["rule"], problem["row"]) == ("at", "type", 1)


def test_parquet(rt: Rt, tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"level": ["info", "error"], "n": [1, 2]}), good)
    stored = upload(rt, "fraud", good.read_bytes(), "logs.parquet", query="?dataset=logs")
    assert stored.status_code == 200, stored.get_json()
    assert stored.get_json()["rows"] == 2
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"level": ["info"], "n": ["one"]}), wrong)
    problem = rejected(upload(rt, "fraud", wrong.read_bytes(), "logs.parquet", query="?dataset=logs"), 422)["details"][
        0
    ]  # type: ignore[index]
    assert (problem["column"], problem["rule"]) == ("n", "type")
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"level": ["info", "debug"], "n": [1, 2]}), outside)
    problem = rejected(upload(rt, "fraud", outside.read_bytes(), "l.parquet", query="?dataset=logs"), 422)["details"][0]  # type: ignore[index]
    assert (problem["rule"], problem["row"]) == ("values", 2)
    garbage = rejected(upload(rt, "fraud", b"not parquet at all", "l.parquet", query="?dataset=logs"), 422)
    assert garbage["details"][0]["rule"] == "syntax"  # type: ignore[index]


def multipart(content: bytes, filename: str, boundary: str = "b0undary") -> tuple[bytes, str]:
    """A multipart body built here (werkzeug's test client spools big ones to a file it does not close)."""
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'
    return head.encode() + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_too_large_is_413_and_leaves_nothing(rt: Rt) -> None:
    big = HEADER + b"c1,12,70.5,monthly,true\n" * 200_000  # 4.8 MB; the limit here is 4 MiB
    body, content_type = multipart(big, "big.csv")
    error = rejected(rt.post("/v1/projects/churn/data", data=body, content_type=content_type), 413)
    assert error["code"] == "payload_too_large"
    assert versions(rt) == []
    assert leftovers(rt) == []


def test_too_large_without_a_content_length_stops_while_streaming(rt: Rt) -> None:
    big = HEADER + b"c1,12,70.5,monthly,true\n" * 200_000
    body, content_type = multipart(big, "big.csv")
    response = rt.client.post(
        "/v1/projects/churn/data",
        input_stream=io.BytesIO(body),
        headers={**rt.headers(), "Content-Type": content_type},
        environ_overrides={"wsgi.input_terminated": True},  # as a server does for a chunked body
    )
    error = rejected(response, 413)
    assert error["code"] == "payload_too_large"
    assert versions(rt) == []
    assert leftovers(rt) == []


def test_content_type_is_checked(rt: Rt) -> None:
    not_multipart = rt.client.post(
        "/v1/projects/churn/data", data=CSV, headers={**rt.headers(), "Content-Type": "text/csv"}
    )
    assert rejected(not_multipart, 415)["code"] == "unsupported_media_type"
    image = rt.post("/v1/projects/churn/data", data={"file": (io.BytesIO(CSV), "c.csv", "image/png")})
    assert "CSV" in str(rejected(image, 415)["message"])
    unknown = rt.post(
        "/v1/projects/fraud/data?dataset=tx", data={"file": (io.BytesIO(b"{}"), "tx.bin", "application/octet-stream")}
    )
    assert unknown.status_code == 422  # declared JSON: checked as JSON whatever the name says
    assert versions(rt) == []


def test_filenames_are_sanitized(rt: Rt) -> None:
    stored = upload(rt, "churn", CSV, "../../../etc/passwd.csv").get_json()
    assert stored["filename"] == "passwd.csv"
    windows = upload(rt, "churn", CSV + b"c9,1,1,yearly,false\n", "..\\..\\boot.ini.csv").get_json()
    assert windows["filename"] == "boot.ini.csv"
    assert not any(".." in str(p) for p in rt.artifacts.rglob("*"))


def test_the_dataset_must_take_uploads(rt: Rt) -> None:
    assert rejected(upload(rt, "churn", CSV, "c.csv", query="?dataset=crm"), 409)["message"].startswith(  # type: ignore[union-attr]
        "dataset 'crm' reads from warehouse"
    )
    assert rejected(upload(rt, "churn", CSV, "c.csv", query="?dataset=nope"), 404)
    assert "?dataset=" in str(rejected(upload(rt, "fraud", CSV, "c.csv"), 400)["message"])
    assert rejected(rt.post("/v1/projects/churn/data", data={"other": (io.BytesIO(CSV), "c.csv")}), 400)
    assert rejected(rt.post("/v1/projects/nope/data", data={"file": (io.BytesIO(CSV), "c.csv")}), 404)


def test_a_cut_off_upload_leaves_no_version(rt: Rt) -> None:
    boundary = "cutcutcut"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.csv"\r\nContent-Type: text/csv\r\n\r\n'.encode()
        + CSV * 1000
    )  # the closing boundary never comes: the client went away
    response = rt.client.post(
        "/v1/projects/churn/data",
        input_stream=io.BytesIO(body),
        headers={
            **rt.headers(),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(body) + 5000),
        },
    )
    assert rejected(response, 400)["message"].startswith("the upload ended before")  # type: ignore[union-attr]
    assert versions(rt) == []
    assert leftovers(rt) == []


def test_a_client_that_disconnects_mid_upload_leaves_no_version(live: Live) -> None:
    import socket

    host, port = live.url.removeprefix("http://").split(":")
    boundary = "xyz"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.csv"\r\n\r\n'.encode() + CSV
    request = (
        f"POST /v1/projects/churn/data HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {live.rt.keys['admin']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 1000000\r\n\r\n"
    ).encode()
    before = bad_requests(live)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request + head)
    # the worker notices the short body (its counter says so); nothing may be recorded
    deadline = time.monotonic() + 20
    while bad_requests(live) < before + 1:
        assert time.monotonic() < deadline, "the server never finished the cut-off upload"
        time.sleep(0.05)
    assert versions(live.rt) == []
    assert leftovers(live.rt) == []


def bad_requests(live: Live) -> float:
    text = requests.get(f"{live.url}/metrics", headers={"X-API-Key": live.rt.keys["viewer"]}, timeout=5).text
    found = re.search(r'^nebula_uploads_total\{result="bad_request"\} ([\d.]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_fifty_concurrent_uploads_are_all_stored_intact(live: Live) -> None:
    bodies = [
        HEADER + b"".join(b"c%d-%d,%d,%d.5,yearly,false\n" % (n, i, i % 500, i) for i in range(200 + n))
        for n in range(50)
    ]

    def send(body: bytes) -> dict[str, object]:
        response = requests.post(
            f"{live.url}/v1/projects/churn/data",
            files={"file": ("customers.csv", body, "text/csv")},
            headers={"X-API-Key": live.rt.keys["uploader"]},
            timeout=60,
        )
        response.raise_for_status()
        result: dict[str, object] = response.json()
        return result

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(send, bodies))
    assert sorted(int(r["number"]) for r in results) == list(range(1, 51))  # type: ignore[call-overload]
    for body, result in zip(bodies, results, strict=True):
        assert result["sha256"] == hashlib.sha256(body).hexdigest()
        download = requests.get(
            f"{live.url}/v1/projects/churn/datasets/customers/versions/{result['number']}/download",
            headers={"X-API-Key": live.rt.keys["viewer"]},
            timeout=30,
        )
        assert hashlib.sha256(download.content).hexdigest() == result["sha256"]
    assert leftovers(live.rt) == []


def test_the_store_is_a_dvc_remote(rt: Rt, tmp_path: Path) -> None:
    stored = upload(rt, "churn", CSV, "customers.csv").get_json()
    repo = tmp_path / "analysis"
    repo.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=repo, env=env, check=True)
    subprocess.run([*dvc, "remote", "add", "-d", "nebula", str(rt.artifacts)], cwd=repo, env=env, check=True)
    (repo / "customers.csv.dvc").write_text(
        f"outs:\n- md5: {stored['md5']}\n  size: {stored['size']}\n  hash: md5\n  path: customers.csv\n",
        encoding="utf-8",
    )
    pulled = subprocess.run([*dvc, "pull", "-q"], cwd=repo, env=env, capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stderr
    assert (repo / "customers.csv").read_bytes() == CSV


def test_stored_content_is_never_replaced(rt: Rt) -> None:
    """Content lives at its MD5; a different file that claims the same address (a collision) is refused."""
    digest = hashlib.md5(CSV).hexdigest()
    blob = rt.artifacts / "files" / "md5" / digest[:2] / digest[2:]
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"something else entirely")
    error = rejected(upload(rt, "churn", CSV, "customers.csv"), 409)
    assert "collision" in str(error["message"])
    assert blob.read_bytes() == b"something else entirely"
    assert versions(rt) == []
    assert leftovers(rt) == []
    blob.unlink()
    assert upload(rt, "churn", CSV, "customers.csv").status_code == 200


def test_text_fields_and_long_lines_are_bounded(rt: Rt) -> None:
    big_field = rt.post("/v1/projects/churn/data", data={"note": "x" * 100_000, "file": (io.BytesIO(CSV), "c.csv")})
    assert rejected(big_field, 413)["details"] == {"limit": 65536}
    long_header = b"a" * (2 << 20) + b"\n1\n"
    body, content_type = multipart(long_header, "wide.csv")
    problem = rejected(rt.post("/v1/projects/my/data", data=body, content_type=content_type), 404)
    assert problem
    rt.post("/v1/projects", json={"name": "My"})
    wide = rejected(rt.post("/v1/projects/my/data", data=body, content_type=content_type), 422)
    assert "header line is longer" in str(wide["message"])
    long_cell = (
        HEADER.replace(b"\n", b",note\n") + b"c1,1,1,monthly,true," + b"y" * 200_000 + b"\nc2,x,1,monthly,true,z\n"
    )
    body, content_type = multipart(long_cell, "c.csv")
    problem = rejected(rt.post("/v1/projects/churn/data", data=body, content_type=content_type), 422)["details"][0]  # type: ignore[index]
    assert (problem["column"], problem["row"]) == ("tenure", 2)
    fine = HEADER.replace(b"\n", b",note\n") + b"c1,1,1,monthly,true," + b"y" * 200_000 + b"\n"
    body, content_type = multipart(fine, "c.csv")
    assert rt.post("/v1/projects/churn/data", data=body, content_type=content_type).status_code == 200
