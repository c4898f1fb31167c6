"""The JSON Schema of nebula.yaml, generated from the models.

Editors use it for completion (`# yaml-language-server: $schema=...`); the test
suite fails when the committed copy in `schemas/` is out of date.
"""

from __future__ import annotations

import json
from typing import Any

from nebula_compile.spec.models import Spec

SCHEMA_ID = "urn:nebula:schema:nebula.yaml:v1"


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(mode="validation", by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "description": "Nebula: the whole ML platform in one file.",
        **schema,
    }


def render_schema() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
