"""The resource graph: what one environment of the platform consists of.

It is the one contract between the compiler and everything downstream (emitters,
`stacks/`, `plan`, `apply`, the runtime), serialized as `manifest.json`. Each
resource has a stable id (`kind.project.name`), its environment-resolved spec as
plain JSON values, the ids it depends on, the source position it came from, and a
content hash that changes exactly when the resource does.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from nebula_compile.diagnostics import Path, Span

MANIFEST_VERSION = "nebula.manifest/v1"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def pretty_json(value: Any) -> str:
    """Indented, key-sorted JSON with a final newline: how every JSON file of the output is written."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode("utf-8") + "\n"


def content_hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Source:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Resource:
    id: str
    kind: str
    name: str
    project: str | None
    spec: Mapping[str, Any]
    depends_on: tuple[str, ...] = ()
    source: Source | None = None
    hash: str = ""
    span: Span | None = field(default=None, compare=False)
    """Where the resource is written, as diagnostics point at it (not part of the manifest)."""
    path: Path = field(default=(), compare=False)
    """Its path in the configuration, to locate a field of it (not part of the manifest)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "project": self.project,
            "depends_on": list(self.depends_on),
            "source": None
            if self.source is None
            else {"file": self.source.file, "line": self.source.line, "column": self.source.column},
            "hash": self.hash,
            "spec": self.spec,
        }


def make_resource(
    kind: str,
    name: str,
    project: str | None,
    spec: Mapping[str, Any],
    depends_on: tuple[str, ...] = (),
    source: Source | None = None,
    span: Span | None = None,
    path: Path = (),
) -> Resource:
    rid = f"{kind}.{project}.{name}" if project is not None else f"{kind}.{name}"
    deps = tuple(sorted(set(depends_on)))
    digest = content_hash({"kind": kind, "spec": spec, "depends_on": deps})
    return Resource(rid, kind, name, project, spec, deps, source, digest, span, path)


@dataclass(frozen=True)
class ResourceGraph:
    environment: str
    settings: Mapping[str, Any]
    """The environment's own settings (namespace prefix, cloud, DNS, ...), resolved."""
    platform: Mapping[str, Any]
    resources: tuple[Resource, ...]
    revision: str | None = None
    _index: dict[str, Resource] = field(default_factory=dict, repr=False, compare=False)
    _by_kind: dict[tuple[str | None, str], list[Resource]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for resource in self.resources:
            self._index[resource.id] = resource
            self._by_kind.setdefault((None, resource.kind), []).append(resource)
            if resource.project is not None:
                self._by_kind.setdefault((resource.project, resource.kind), []).append(resource)

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def get(self, rid: str) -> Resource | None:
        return self._index.get(rid)

    def of_kind(self, kind: str) -> list[Resource]:
        return list(self._by_kind.get((None, kind), ()))

    def project_resources(self, project: str, kind: str) -> list[Resource]:
        return list(self._by_kind.get((project, kind), ()))

    @functools.cached_property
    def hash(self) -> str:
        return self._hash_of(self.resources)

    def _hash_of(self, resources: tuple[Resource, ...] | list[Resource]) -> str:
        return content_hash(
            {
                "environment": self.environment,
                "settings": self.settings,
                "platform": self.platform,
                "resources": [[r.id, r.hash] for r in resources],
            }
        )

    def to_json(self, resources: list[Resource] | None = None) -> dict[str, Any]:
        """The manifest; with `resources`, a manifest holding only those (a project's share).

        A share's hash covers the share alone, so one project's change leaves the
        manifests given to other projects' jobs untouched.
        """
        digest = self.hash if resources is None else self._hash_of(resources)
        return {
            "manifest": MANIFEST_VERSION,
            "environment": self.environment,
            "revision": self.revision,
            "hash": digest,
            "platform": self.platform,
            "settings": self.settings,
            "resources": [r.to_json() for r in (self.resources if resources is None else resources)],
        }

    def dumps(self) -> str:
        return pretty_json(self.to_json())
