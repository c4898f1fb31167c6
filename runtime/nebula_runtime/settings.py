"""Runtime settings: environment variables first, then a `.env` file, then defaults.

The names are the product description's (`NEBULA_API_KEY`, `DATABASE_URL`) plus
`NEBULA_*` for the rest, so one `.env` serves `docker-compose up` and `nebula serve`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dotenv import dotenv_values

GIB = 1024**3


class SettingsError(Exception):
    """A setting the user has to fix; the message names it."""


def _size(name: str, value: str) -> int:
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    text = value.strip().lower().removesuffix("b").removesuffix("i")
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "")
    try:
        result = int(float(number) * units[unit])
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a size such as 512M or 10G") from None
    if result <= 0:
        raise SettingsError(f"{name} must be positive")
    return result


def _int(name: str, value: str) -> int:
    try:
        result = int(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a whole number") from None
    if result <= 0:
        raise SettingsError(f"{name} must be positive")
    return result


def _mapping(name: str, value: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, sep, role = item.partition("=")
        if not sep or not key or not role:
            raise SettingsError(f"{name}: {item!r} is not CLAIM=ROLE")
        pairs[key.strip()] = role.strip()
    return pairs


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///.nebula/state.db"
    artifacts: str = ".nebula/artifacts"
    environment: str | None = None
    """The environment whose reconciled state is served; the only one in the store when unset."""
    api_key: str | None = field(default=None, repr=False)
    """`NEBULA_API_KEY`: a bootstrap key with every permission, for the first admin and for CI."""
    max_upload_bytes: int = 10 * GIB
    secrets_dir: str = "/var/run/secrets/nebula"
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_roles_claim: str | None = None
    oidc_role_map: Mapping[str, str] = field(default_factory=dict)
    graphql_max_depth: int = 12
    graphql_max_cost: int = 200_000
    key_cache_seconds: float = 5.0
    """How long a checked key is trusted before the database is asked again (revocation delay)."""
    log_level: str = "INFO"
    public_docs: bool = True
    """Serve `/docs` and `/v1/openapi.json` without a key (they describe the API and hold no data)."""

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv: str | None = ".env", defaults: Mapping[str, str] = {}
    ) -> Settings:
        """`defaults` (such as what nebula.yaml says), then `.env`, then the environment: the last one wins."""
        values: dict[str, str] = dict(defaults)
        if dotenv and os.path.isfile(dotenv):
            values.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        return cls().with_values(values)

    def with_values(self, values: Mapping[str, str]) -> Settings:
        changes: dict[str, Any] = {}
        text = {
            "DATABASE_URL": "database_url",
            "NEBULA_ARTIFACTS": "artifacts",
            "NEBULA_ENVIRONMENT": "environment",
            "NEBULA_API_KEY": "api_key",
            "NEBULA_SECRETS_DIR": "secrets_dir",
            "NEBULA_OIDC_ISSUER": "oidc_issuer",
            "NEBULA_OIDC_AUDIENCE": "oidc_audience",
            "NEBULA_OIDC_JWKS_URL": "oidc_jwks_url",
            "NEBULA_OIDC_ROLES_CLAIM": "oidc_roles_claim",
            "NEBULA_LOG_LEVEL": "log_level",
        }
        for env, attr in text.items():
            if values.get(env):
                changes[attr] = values[env]
        if values.get("NEBULA_MAX_UPLOAD"):
            changes["max_upload_bytes"] = _size("NEBULA_MAX_UPLOAD", values["NEBULA_MAX_UPLOAD"])
        if values.get("NEBULA_OIDC_ROLE_MAP"):
            changes["oidc_role_map"] = _mapping("NEBULA_OIDC_ROLE_MAP", values["NEBULA_OIDC_ROLE_MAP"])
        for env, attr in (
            ("NEBULA_GRAPHQL_MAX_DEPTH", "graphql_max_depth"),
            ("NEBULA_GRAPHQL_MAX_COST", "graphql_max_cost"),
        ):
            if values.get(env):
                changes[attr] = _int(env, values[env])
        if values.get("NEBULA_PUBLIC_DOCS"):
            changes["public_docs"] = values["NEBULA_PUBLIC_DOCS"].strip().lower() not in ("0", "false", "no", "off")
        return replace(self, **changes)
