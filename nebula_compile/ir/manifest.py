"""The manifest.json contract as typed models: its JSON Schema, and a reader for consumers.

`stacks/`, `plan`, `apply` and the runtime read manifests through `read_manifest`
(or validate them against `schemas/manifest.schema.json`); they never import the
compiler's passes. The version string changes when the shape does.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_SCHEMA_ID = "urn:nebula:schema:manifest:v1"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ManifestSource(_Frozen):
    file: str = Field(description="Path of the nebula.yaml file, relative to the root config's folder.")
    line: int = Field(ge=1)
    column: int = Field(ge=1)


class ManifestResource(_Frozen):
    id: str = Field(pattern=r"^[a-z]+\.", description="kind.project.name, or kind.name for platform-wide resources.")
    kind: Literal[
        "connection",
        "role",
        "binding",
        "auth",
        "project",
        "dataset",
        "preprocessing",
        "model",
        "notebook",
        "deployment",
    ]
    name: str
    project: str | None
    depends_on: list[str]
    source: ManifestSource | None
    hash: str = Field(pattern=r"^[0-9a-f]{16}$", description="Changes exactly when kind, spec or dependencies do.")
    spec: dict[str, Any] = Field(description="The resource as nebula.yaml declares it, environment overrides applied.")


class Manifest(_Frozen):
    """One environment of the platform, compiled."""

    model_config = ConfigDict(title="manifest.json")

    manifest: Literal["nebula.manifest/v1"] = "nebula.manifest/v1"
    environment: str
    revision: str | None = Field(description="Git commit of the configuration, when known.")
    hash: str = Field(pattern=r"^[0-9a-f]{16}$")
    platform: dict[str, Any]
    settings: dict[str, Any] = Field(description="The environment's own settings, resolved.")
    resources: list[ManifestResource]


def manifest_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": MANIFEST_SCHEMA_ID, **schema}


def render_manifest_schema() -> str:
    return json.dumps(manifest_schema(), indent=2, sort_keys=True) + "\n"


def read_manifest(text: str) -> Manifest:
    return Manifest.model_validate_json(text)
