"""The registry's pointer files in the artifact store, so a model server needs no database.

`registry/<environment>/<project>/<model>/versions/<n>.json` names the artifact
folder of version n (written once, at registration); `.../aliases/<alias>.json`
names the version an alias points at (rewritten, atomically, when it moves: at
registration and through the API). The state store stays the source of truth; these
mirror it for the model servers, which read only the artifact store.
"""

from __future__ import annotations

import json

from nebula_runtime.ml.artifacts import ArtifactError, ArtifactStore


def _base(environment: str, project: str, model: str) -> str:
    return f"registry/{environment}/{project}/{model}"


def write_version(store: ArtifactStore, environment: str, project: str, model: str, version: int, folder: str) -> None:
    body = {"version": version, "artifact": folder}
    store.write(f"{_base(environment, project, model)}/versions/{version}.json", json.dumps(body).encode())


def write_alias(store: ArtifactStore, environment: str, project: str, model: str, alias: str, version: int) -> None:
    store.write(f"{_base(environment, project, model)}/aliases/{alias}.json", json.dumps({"version": version}).encode())


def remove_alias(store: ArtifactStore, environment: str, project: str, model: str, alias: str) -> None:
    store.write(f"{_base(environment, project, model)}/aliases/{alias}.json", json.dumps({"version": None}).encode())


def resolve(store: ArtifactStore, environment: str, project: str, model: str, version: str | int) -> tuple[int, str]:
    """(version number, artifact folder) for a version number or an alias."""
    base = _base(environment, project, model)
    text = str(version)
    if not text.isdigit():
        try:
            pointed = json.loads(store.read(f"{base}/aliases/{text}.json"))["version"]
        except ArtifactError:
            pointed = None
        if pointed is None:
            raise ArtifactError(
                f"model '{project}/{model}' has no version under the alias '{text}' in {environment} "
                f"(looked in {store.location}); train and register it first"
            )
        text = str(pointed)
    try:
        folder = json.loads(store.read(f"{base}/versions/{text}.json"))["artifact"]
    except ArtifactError:
        raise ArtifactError(
            f"model '{project}/{model}' version {text} is not registered in {environment} (looked in {store.location})"
        ) from None
    return int(text), str(folder)
