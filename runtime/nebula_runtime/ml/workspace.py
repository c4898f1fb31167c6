"""What every stage of the pipeline works in: the compiled manifest, the state store, the artifact store.

A Kubernetes Job gets the manifest from its ConfigMap and the store from
DATABASE_URL; `nebula run` builds the same Workspace from nebula.yaml compiled
in memory. Either way the stages see resources exactly as the compiler lowered
them (defaults filled, references resolved, the environment's overrides applied).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nebula_compile.state.store import Store
from nebula_runtime.ml.artifacts import ArtifactStore

Progress = Callable[[str], None]


class StageError(RuntimeError):
    """A stage that cannot go on because of what it was given (data, config); printed without a traceback."""


@dataclass
class Workspace:
    manifest: Mapping[str, Any]
    store: Store
    artifacts: ArtifactStore
    root: Path
    actor: str = "nebula-jobs"
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    say: Progress = field(default=lambda message: None)
    _by_id: dict[str, Mapping[str, Any]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._by_id = {r["id"]: r for r in self.manifest["resources"]}

    @property
    def environment(self) -> str:
        return str(self.manifest["environment"])

    @property
    def revision(self) -> str | None:
        value = self.manifest.get("revision")
        return str(value) if value else None

    def spec(self, kind: str, project: str, name: str) -> Mapping[str, Any]:
        resource = self._by_id.get(f"{kind}.{project}.{name}")
        if resource is None:
            known = sorted(
                r["name"] for r in self.manifest["resources"] if r["kind"] == kind and r["project"] == project
            )
            raise StageError(
                f"project '{project}' has no {kind} '{name}'" + (f"; it has: {', '.join(known)}" if known else "")
            )
        return resource["spec"]  # type: ignore[no-any-return]

    def has(self, kind: str, project: str, name: str) -> bool:
        return f"{kind}.{project}.{name}" in self._by_id

    def names(self, kind: str, project: str) -> list[str]:
        return sorted(r["name"] for r in self.manifest["resources"] if r["kind"] == kind and r["project"] == project)

    def projects(self) -> list[str]:
        return sorted(r["name"] for r in self.manifest["resources"] if r["kind"] == "project")

    def connections(self) -> dict[str, Mapping[str, Any]]:
        return {r["name"]: r["spec"] for r in self.manifest["resources"] if r["kind"] == "connection"}

    def lineage(self, project: str, name: str) -> list[tuple[str, Mapping[str, Any]]]:
        """The preprocessing steps a model's (or step's) data passes through, root first; [] for a raw dataset."""
        steps: list[tuple[str, Mapping[str, Any]]] = []
        seen: set[str] = set()
        while self.has("preprocessing", project, name):
            if name in seen:
                raise StageError(f"preprocessing '{name}' of project '{project}' depends on itself")
            seen.add(name)
            spec = self.spec("preprocessing", project, name)
            steps.append((name, spec))
            name = str(spec["input"])
        return list(reversed(steps))

    def root_dataset(self, project: str, name: str) -> str:
        while self.has("preprocessing", project, name):
            name = str(self.spec("preprocessing", project, name)["input"])
        self.spec("dataset", project, name)
        return name


def load_manifest(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            manifest: dict[str, Any] = json.load(handle)
    except OSError as err:
        raise StageError(f"cannot read the manifest {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise StageError(f"{path} is not a compiled manifest (line {err.lineno}: {err.msg})") from None
    if "resources" not in manifest or "environment" not in manifest:
        raise StageError(f"{path} is not a compiled manifest: run `nebula compile` and pass build/<env>/manifest.json")
    return manifest


@contextmanager
def opened(
    manifest: Mapping[str, Any],
    *,
    database_url: str | None = None,
    artifacts: str | None = None,
    root: Path | None = None,
    say: Progress | None = None,
    actor: str = "nebula-jobs",
) -> Iterator[Workspace]:
    """A workspace over the manifest, with the store and artifacts from the arguments, the environment, or the
    platform section of the manifest (in that order)."""
    platform = manifest.get("platform") or {}
    url = database_url or os.environ.get("DATABASE_URL") or platform.get("state")
    if not isinstance(url, str) or not url:
        raise StageError("no state store: set DATABASE_URL or platform.state in nebula.yaml")
    location = artifacts or os.environ.get("NEBULA_ARTIFACTS") or str(platform.get("artifacts") or ".nebula/artifacts")
    store = Store.open(url)
    try:
        yield Workspace(
            manifest,
            store,
            ArtifactStore(location),
            root or Path.cwd(),
            actor=actor,
            say=say or (lambda message: None),
        )
    finally:
        store.close()
