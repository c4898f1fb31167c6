"""The artifact store: a local folder written atomically, or S3 (moto's standalone server here): a model trained
with its artifacts on S3 is served from there."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from nebula_runtime.ml import pipeline
from nebula_runtime.ml.artifacts import ArtifactError, ArtifactStore
from nebula_runtime.ml.registry import resolve
from nebula_runtime.ml.serving import load
from tests.ml.conftest import make_platform
from tests.ml.test_predict import ROW
from tests.runtime.conftest import free_port


def test_local_writes_are_atomic_and_keys_stay_inside(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    store.write("runs/a/model.bin", b"one")
    store.write("runs/a/model.bin", b"two")
    assert store.read("runs/a/model.bin") == b"two"
    assert [p.name for p in (tmp_path / "runs" / "a").iterdir()] == ["model.bin"]  # no temporary left over
    with pytest.raises(ArtifactError, match="leaves the store"):
        store.write("../outside", b"x")
    with pytest.raises(ArtifactError, match="not in the store"):
        store.read("runs/b/model.bin")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    for name, value in {
        "NEBULA_S3_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=url)
    client.create_bucket(Bucket="ml-artifacts")
    try:
        yield url
    finally:
        server.stop()


def test_s3_store_round_trip_with_a_local_cache(s3: str, tmp_path: Path) -> None:
    store = ArtifactStore("s3://ml-artifacts/team", cache=tmp_path / "cache")
    store.write("runs/x/profile.json", b"{}")
    assert store.exists("runs/x/profile.json") and not store.exists("runs/y/profile.json")
    client = boto3.client("s3", endpoint_url=s3)
    assert client.get_object(Bucket="ml-artifacts", Key="team/runs/x/profile.json")["Body"].read() == b"{}"
    path = store.fetch("runs/x/profile.json")
    assert path == tmp_path / "cache" / "runs" / "x" / "profile.json" and path.read_bytes() == b"{}"
    with pytest.raises(ArtifactError, match="could not be read"):
        store.fetch("runs/none/model.joblib")


def test_a_model_trained_to_s3_is_served_from_s3(s3: str, tmp_path: Path) -> None:
    platform = make_platform(tmp_path, train=False)
    with platform.workspace() as ws:
        ws.artifacts = ArtifactStore("s3://ml-artifacts/churn", cache=tmp_path / "cache")
        summary = pipeline.run_project(ws, "churn", ["churn-lr"])
    assert summary.models[0].version == 1
    listed = boto3.client("s3", endpoint_url=s3).list_objects_v2(Bucket="ml-artifacts", Prefix="churn/")
    keys = {item["Key"] for item in listed["Contents"]}
    assert "churn/registry/dev/churn/churn-lr/aliases/champion.json" in keys
    assert any(k.startswith("churn/files/md5/") for k in keys)  # the dataset version, content-addressed
    fresh = ArtifactStore("s3://ml-artifacts/churn", cache=tmp_path / "server-cache")  # as a model server sees it
    number, folder = resolve(fresh, "dev", "churn", "churn-lr", "champion")
    model = load(fresh, folder, "churn", "churn-lr", number)
    assert isinstance(model.predict([ROW])[0]["prediction"], bool)
    assert not os.path.exists(tmp_path / "artifacts")  # nothing went to the local folder
