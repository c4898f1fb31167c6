"""Who is calling, and what they may do: API keys, OIDC bearer tokens, roles from nebula.yaml.

Keys are `neb_<id>_<secret>`. Only the SHA-256 of a key is stored (a key carries 256
random bits, so a slow hash adds nothing); the presented key is hashed and compared
with `hmac.compare_digest`. `NEBULA_API_KEY` is a bootstrap key with every permission.
Keys declared in nebula.yaml (`auth.api_keys.keys`) are secret references, read here
from the environment or the mounted secrets folder.

Permissions are `resource:action` with `*` wildcards; `write` covers create, update,
delete and upload. A grant may be limited to some projects (a binding's or a key's
`projects`). `authorize` is the one place a request is checked; every route declares
the permission it needs (see `http.Api`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select

from nebula_compile.state.schema import ApiKey, StateResource
from nebula_compile.state.store import Store
from nebula_runtime.errors import ApiError
from nebula_runtime.settings import Settings

log = logging.getLogger("nebula.runtime.auth")

KEY_PREFIX = "neb_"


class HeaderSource(Protocol):
    """A request's headers: a dict, or werkzeug's Headers."""

    def get(self, key: str) -> str | None: ...


WRITE_ACTIONS = frozenset({"create", "update", "delete", "upload", "write"})


def generate_key() -> tuple[str, str]:
    """A new key and its public id."""
    key_id = secrets.token_hex(4)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def key_id_of(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, _ = key[len(KEY_PREFIX) :].partition("_")
    return key_id if sep and len(key_id) == 8 else None


def permission_covers(grant: str, wanted: str) -> bool:
    g_res, _, g_act = grant.partition(":")
    w_res, _, w_act = wanted.partition(":")
    if g_res not in ("*", w_res):
        return False
    return g_act in ("*", w_act) or (g_act == "write" and w_act in WRITE_ACTIONS)


@dataclass(frozen=True)
class Grant:
    role: str
    permissions: tuple[str, ...]
    projects: frozenset[str] | None  # None: every project


@dataclass(frozen=True)
class Principal:
    actor: str
    """Who, as the audit log and the logs name it (never key material)."""
    grants: tuple[Grant, ...]

    @property
    def roles(self) -> list[str]:
        return sorted({g.role for g in self.grants})

    def can(self, permission: str, project: str | None = None) -> bool:
        for grant in self.grants:
            if project is not None and grant.projects is not None and project not in grant.projects:
                continue
            if project is None and grant.projects is not None and permission != "projects:read":
                continue  # a project-scoped grant gives nothing platform-wide but the (filtered) listing
            if any(permission_covers(p, permission) for p in grant.permissions):
                return True
        return False

    def visible_projects(self) -> frozenset[str] | None:
        """The projects this caller may read; None for all of them."""
        scopes: set[str] = set()
        for grant in self.grants:
            if any(permission_covers(p, "projects:read") for p in grant.permissions):
                if grant.projects is None:
                    return None
                scopes |= grant.projects
        return frozenset(scopes)


ADMIN = Grant("admin", ("*:*",), None)


def authorize(principal: Principal, permission: str, project: str | None) -> None:
    """The one check every route goes through; raises 403 naming what is missing."""
    if principal.can(permission, project):
        return
    where = f" on project {project!r}" if project else ""
    raise ApiError(
        403,
        f"{principal.actor} lacks the permission {permission!r}{where}",
        {"permission": permission, "project": project, "roles": principal.roles},
    )


def resolve_secret(ref: Mapping[str, Any], secrets_dir: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value behind `{env: VAR}` or `{secret: NAME, key: K}`; None when it is not available here."""
    environ = os.environ if environ is None else environ
    if "env" in ref:
        return environ.get(str(ref["env"])) or None
    name = str(ref.get("secret", ""))
    variable = "NEBULA_SECRET_" + "".join(c if c.isalnum() else "_" for c in name).upper()
    if environ.get(variable):
        return environ[variable]
    path = os.path.join(secrets_dir, name, str(ref["key"])) if ref.get("key") else os.path.join(secrets_dir, name)
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


class _Ttl:
    """A value recomputed at most every `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.entries: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any, compute: Any) -> Any:
        now = time.monotonic()
        entry = self.entries.get(key)
        if entry is not None and now - entry[0] < self.seconds:
            return entry[1]
        value = compute()
        with self.lock:
            if len(self.entries) > 10_000:
                self.entries.clear()
            self.entries[key] = (now, value)
        return value

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


@dataclass(frozen=True)
class AccessConfig:
    """Roles, bindings and auth settings as last applied to the served environment."""

    roles: Mapping[str, tuple[str, ...]]
    bindings: tuple[tuple[str, str, frozenset[str] | None], ...]  # subject, role, projects
    auth: Mapping[str, Any]


class Authenticator:
    def __init__(self, store: Store, settings: Settings, environment: str) -> None:
        self.store = store
        self.settings = settings
        self.environment = environment
        self.cache = _Ttl(settings.key_cache_seconds)
        self._bootstrap = hash_key(settings.api_key) if settings.api_key else None
        self._jwks: Any = None
        self._jwks_lock = threading.Lock()

    # --- reconciled access config ---------------------------------------------------------

    def access(self) -> AccessConfig:
        result: AccessConfig = self.cache.get("access", self._load_access)
        return result

    def _load_access(self) -> AccessConfig:
        with self.store.sessions() as session:
            rows = session.scalars(
                select(StateResource).where(
                    StateResource.environment == self.environment,
                    StateResource.kind.in_(("role", "binding", "auth")),
                )
            ).all()
        roles = {r.name: tuple(r.spec.get("permissions", ())) for r in rows if r.kind == "role"}
        bindings = tuple(
            (
                str(r.spec["subject"]),
                str(r.spec["role"]),
                frozenset(r.spec["projects"]) if r.spec.get("projects") is not None else None,
            )
            for r in rows
            if r.kind == "binding"
        )
        auth = next((r.spec for r in rows if r.kind == "auth"), {})
        return AccessConfig(roles, bindings, auth)

    def grant(self, role: str, projects: Iterable[str] | None) -> Grant:
        permissions = self.access().roles.get(role, ())
        return Grant(role, permissions, frozenset(projects) if projects is not None else None)

    # --- the request ------------------------------------------------------------------------

    def header_name(self) -> str:
        return str(self.access().auth.get("api_keys", {}).get("header") or "X-API-Key")

    def authenticate(self, headers: HeaderSource) -> Principal:
        key = headers.get(self.header_name()) or headers.get("X-API-Key")
        authorization = headers.get("Authorization") or ""
        if not key and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
            if token.startswith(KEY_PREFIX) or (self._bootstrap and "." not in token):
                key = token  # Prometheus and other scrapers send a key as a bearer token
            else:
                return self._oidc(token)
        if not key:
            raise ApiError(
                401,
                f"missing credentials: send an API key in the {self.header_name()} header "
                "or an OIDC token as 'Authorization: Bearer ...'",
            )
        principal: Principal | None = self.cache.get(("key", hash_key(key)), lambda: self._key(key))
        if principal is None:
            raise ApiError(401, "the API key is not valid (unknown, revoked or expired)")
        return principal

    def _key(self, key: str) -> Principal | None:
        digest = hash_key(key)
        if self._bootstrap and hmac.compare_digest(digest, self._bootstrap):
            return Principal("bootstrap-key", (ADMIN,))
        key_id = key_id_of(key)
        if key_id is not None:
            with self.store.sessions() as session:
                row = session.get(ApiKey, key_id)
            if row is not None and hmac.compare_digest(digest, row.hash):
                now = datetime.now(UTC)
                expires = (
                    row.expires_at.replace(tzinfo=UTC)
                    if row.expires_at and not row.expires_at.tzinfo
                    else row.expires_at
                )
                if row.revoked_at is not None or (expires is not None and expires <= now):
                    return None
                if row.environment is not None and row.environment != self.environment:
                    return None  # a key for another environment's runtime (its roles are that one's)
                return Principal(f"key:{row.id} ({row.name})", (self.grant(row.role, row.projects),))
        api_keys = self.access().auth.get("api_keys", {})
        if api_keys.get("enabled", True):
            for name, declared in sorted(api_keys.get("keys", {}).items()):
                value = resolve_secret(declared.get("key", {}), self.settings.secrets_dir)
                if value and hmac.compare_digest(digest, hash_key(value)):
                    return Principal(f"key:{name}", (self.grant(declared["role"], declared.get("projects")),))
        return None

    # --- OIDC ----------------------------------------------------------------------------------

    def _oidc_settings(self) -> dict[str, Any]:
        declared = dict(self.access().auth.get("oidc") or {})
        s = self.settings
        overrides = {
            "issuer": s.oidc_issuer,
            "audience": s.oidc_audience,
            "jwks_url": s.oidc_jwks_url,
            "roles_claim": s.oidc_roles_claim,
            "role_map": dict(s.oidc_role_map) or None,
        }
        declared.update({k: v for k, v in overrides.items() if v})
        return declared

    def _jwks_client(self, config: Mapping[str, Any]) -> Any:
        import jwt

        with self._jwks_lock:
            if self._jwks is None:
                url = config.get("jwks_url")
                if not url:
                    discovery = str(config["issuer"]).rstrip("/") + "/.well-known/openid-configuration"
                    with urllib.request.urlopen(discovery, timeout=5) as response:
                        url = json.load(response)["jwks_uri"]
                self._jwks = jwt.PyJWKClient(url, cache_keys=True, lifespan=300)
            return self._jwks

    def _oidc(self, token: str) -> Principal:
        import jwt

        config = self._oidc_settings()
        if not config.get("issuer"):
            raise ApiError(401, "bearer tokens are not accepted: no OIDC issuer is configured (auth.oidc)")
        try:
            signing_key = self._jwks_client(config).get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"],
                audience=config.get("audience") or config.get("client_id"),
                issuer=config["issuer"],
                options={"require": ["exp", "iss", "sub"]},
            )
        except jwt.PyJWTError as err:
            raise ApiError(401, f"the bearer token is not valid: {err}") from None
        except OSError as err:
            raise ApiError(503, f"cannot reach the OIDC provider's keys: {err}") from None
        user = str(claims.get("email") or claims["sub"])
        groups = claims.get(config.get("roles_claim") or "groups") or []
        if isinstance(groups, str):
            groups = [groups]
        role_map = config.get("role_map") or {}
        grants = [self.grant(role_map[g], None) for g in groups if g in role_map]
        subjects = {f"user:{user}", f"user:{claims['sub']}", *(f"group:{g}" for g in groups)}
        grants += [
            self.grant(role, projects) for subject, role, projects in self.access().bindings if subject in subjects
        ]
        return Principal(f"user:{user}", tuple(grants))
