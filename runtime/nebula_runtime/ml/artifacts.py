"""The artifact store: a local folder by default, S3 when `platform.artifacts` is `s3://bucket/prefix`.

Keys are relative paths (`models/churn/churn-lr/3/model.joblib`, `files/md5/ab/cdef...`).
Writes are atomic (a temporary name, then a rename; S3 puts are atomic by
nature) and content is never replaced in place: a model version's folder is
written once. Reads of S3 objects go through a local cache folder, so a model
server downloads its model once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


class ArtifactError(RuntimeError):
    """An artifact that is not there or cannot be written; the message names the key and the store."""


class ArtifactStore:
    def __init__(self, location: str, *, cache: Path | None = None, client: Any = None) -> None:
        self.location = location
        parsed = urlparse(location)
        self.s3 = parsed.scheme == "s3"
        if self.s3:
            self.bucket = parsed.netloc
            self.prefix = parsed.path.strip("/")
            self._client = client
            self.cache = cache or Path(tempfile.gettempdir()) / "nebula-artifacts" / self.bucket / self.prefix
        else:
            self.root = Path(location[len("file://") :] if location.startswith("file://") else location)
            self.cache = self.root

    def __repr__(self) -> str:
        return f"ArtifactStore({self.location!r})"

    def _s3(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError as err:  # pragma: no cover - boto3 is installed with the runtime's s3 extra
                raise ArtifactError("an s3:// artifact store needs boto3: pip install 'nebula-gitops[s3]'") from err
            self._client = boto3.client("s3", endpoint_url=os.environ.get("NEBULA_S3_ENDPOINT_URL") or None)
        return self._client

    def _key(self, key: str) -> str:
        clean = key.strip("/")
        if ".." in Path(clean).parts:
            raise ArtifactError(f"artifact key {key!r} leaves the store")
        return f"{self.prefix}/{clean}" if self.s3 and self.prefix else clean

    def write(self, key: str, data: bytes) -> str:
        """Store bytes under key, atomically; returns the key."""
        name = self._key(key)
        if self.s3:
            self._s3().put_object(Bucket=self.bucket, Key=name, Body=data)
            return key
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return key

    def write_many(self, items: dict[str, bytes]) -> None:
        """Several objects at once (a run's artifacts): written, made durable together, then each renamed into
        place; a reader sees each one whole or not at all."""
        if self.s3 or len(items) < 2:
            for key, data in items.items():
                self.write(key, data)
            return
        staged: list[tuple[str, Path]] = []
        try:
            for key, data in items.items():
                target = self.root / self._key(key)
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
                staged.append((temporary, target))
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            with ThreadPoolExecutor(max_workers=len(staged)) as pool:  # the file system commits them together
                list(pool.map(_fsync, [temporary for temporary, _ in staged]))
            for temporary, target in staged:
                os.replace(temporary, target)
        except BaseException:
            for temporary, _ in staged:
                Path(temporary).unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        name = self._key(key)
        if self.s3:
            try:
                self._s3().head_object(Bucket=self.bucket, Key=name)
            except Exception:
                return False
            return True
        return (self.root / name).exists()

    def read(self, key: str) -> bytes:
        return self.fetch(key).read_bytes()

    def fetch(self, key: str) -> Path:
        """A local path holding the artifact (S3: downloaded once into the cache)."""
        name = self._key(key)
        if not self.s3:
            path = self.root / name
            if not path.exists():
                raise ArtifactError(f"artifact '{key}' is not in the store {self.location}")
            return path
        path = self.cache / key.strip("/")
        if path.exists() and "/aliases/" not in f"/{key}":  # everything else is written once; an alias moves
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        try:
            self._s3().download_file(self.bucket, name, temporary)
            os.replace(temporary, path)
        except Exception as err:
            Path(temporary).unlink(missing_ok=True)
            raise ArtifactError(f"artifact '{key}' could not be read from {self.location}: {err}") from None
        return path


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def md5_of(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def blob_key(md5: str) -> str:
    """DVC 3's remote layout, as uploads use: the artifact folder doubles as a DVC remote."""
    return f"files/md5/{md5[:2]}/{md5[2:]}"
