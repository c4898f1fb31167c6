"""Auth: keys stored hashed and bound to roles, OIDC tokens, one RBAC check for every route."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from nebula_compile.state.schema import ApiKey
from nebula_runtime.auth import hash_key, permission_covers
from nebula_runtime.ops import JsonFormatter
from tests.runtime.conftest import Rt
from tests.runtime.test_rest import CSV

OPEN = {"/healthz", "/readyz", "/docs", "/v1/openapi.json"}
"""Routes that answer without credentials: health, readiness, and the API's own description."""

# role, method, path, expected status
MATRIX = [
    ("viewer", "GET", "/v1/projects/churn", 200),
    ("viewer", "GET", "/v1/projects/churn/datasets", 200),
    ("viewer", "POST", "/v1/projects/churn/data", 403),
    ("viewer", "POST", "/v1/projects", 403),
    ("viewer", "PUT", "/v1/projects/churn/models/gb/aliases/champion", 403),
    ("viewer", "GET", "/v1/audit", 403),
    ("viewer", "GET", "/v1/keys", 403),
    ("uploader", "POST", "/v1/projects/churn/data", 200),
    ("uploader", "GET", "/v1/projects/churn/models", 403),
    ("scientist", "POST", "/v1/projects", 201),
    ("scientist", "GET", "/v1/projects/churn/runs", 200),
    ("scientist", "GET", "/v1/projects/churn/deployments", 403),
    ("scientist", "POST", "/v1/keys", 403),
    ("auditor", "GET", "/v1/audit", 200),
    ("auditor", "GET", "/v1/revisions", 200),
    ("auditor", "GET", "/v1/projects/churn/datasets", 403),
    ("churn-viewer", "GET", "/v1/projects/churn", 200),
    ("churn-viewer", "GET", "/v1/projects/fraud", 403),
    ("churn-viewer", "GET", "/v1/projects/fraud/datasets", 403),
    ("churn-uploader", "POST", "/v1/projects/churn/data", 200),
    ("churn-uploader", "POST", "/v1/projects/fraud/data?dataset=tx", 403),
    ("admin", "GET", "/v1/keys", 200),
    ("bootstrap", "GET", "/v1/audit", 200),
]


@pytest.mark.parametrize(("role", "method", "path", "status"), MATRIX)
def test_rbac_matrix(rt: Rt, role: str, method: str, path: str, status: int) -> None:
    kwargs: dict[str, object] = {}
    if path.endswith("/data") or "/data?" in path:
        kwargs["data"] = {"file": (io.BytesIO(CSV), "customers.csv")}
    elif method in ("POST", "PUT"):
        kwargs["json"] = (
            {"name": "New one"}
            if path == "/v1/projects"
            else {"version": 1}
            if "aliases" in path
            else {"role": "viewer"}
        )
    response = rt.client.open(path, method=method, headers=rt.headers(role), **kwargs)
    assert response.status_code == status, response.get_json()
    if status == 403:
        assert response.get_json()["error"]["code"] == "forbidden"


def test_a_scoped_key_lists_only_its_projects(rt: Rt) -> None:
    assert [p["id"] for p in rt.get("/v1/projects", "churn-viewer").get_json()["items"]] == ["churn"]
    data = rt.graphql("{ projects { id } }", "churn-viewer").get_json()
    assert data["data"]["projects"] == [{"id": "churn"}]
    denied = rt.graphql('{ project(id: "fraud") { id } }', "churn-viewer").get_json()
    assert denied["errors"][0]["extensions"]["code"] == "forbidden"


def test_every_route_needs_credentials_but_health_and_docs(rt: Rt) -> None:
    checked = 0
    for rule in rt.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<int:\w+>", "1", rule.rule)
        path = re.sub(r"<\w+>", "x", path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = rt.client.open(path, method=method)
            if rule.rule in OPEN:
                assert response.status_code == 200, rule.rule
            else:
                assert response.status_code == 401, (method, rule.rule, response.status_code)
            checked += 1
    assert checked > 30


def test_every_api_route_declares_its_permission(rt: Rt) -> None:
    from nebula_runtime.rest import api

    undeclared = [r.path for r in api.routes if r.permission is None]
    assert undeclared == ["/me"]  # /me tells a caller who they are; any valid credential may ask
    deferred = sorted(r.path for r in api.routes if r.deferred)  # checked on the project the view finds
    assert deferred == sorted(
        f"/deployments/{{deployment}}/{what}" for what in ("predict", "feedback", "report", "drift")
    )
    document = rt.client.get("/v1/openapi.json").get_json()
    for path, operations in document["paths"].items():
        for operation in operations.values():
            assert "x-permission" in operation or path == "/v1/me"


def test_keys_are_stored_hashed(rt: Rt) -> None:
    with rt.store.sessions() as session:
        rows = session.scalars(select(ApiKey)).all()
    stored = {row.hash for row in rows}
    for key in (rt.keys["viewer"], rt.keys["admin"]):
        assert hash_key(key) in stored
        assert not any(key in str(value) for row in rows for value in vars(row).values())


def test_revoked_and_expired_keys_stop_working(rt: Rt) -> None:
    assert rt.get("/v1/projects/churn", "viewer").status_code == 200
    key_id = rt.keys["viewer"].split("_")[1]
    rt.client.delete(f"/v1/keys/{key_id}", headers=rt.headers())
    assert rt.get("/v1/projects/churn", "viewer").status_code == 401
    with rt.store.sessions.begin() as session:
        row = session.get(ApiKey, rt.keys["auditor"].split("_")[1])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    assert rt.get("/v1/audit", "auditor").status_code == 401
    tampered = rt.keys["admin"][:-2] + ("AA" if not rt.keys["admin"].endswith("AA") else "BB")
    assert rt.client.get("/v1/projects", headers={"X-API-Key": tampered}).status_code == 401


def test_a_key_declared_in_nebula_yaml_is_read_from_its_secret_reference(rt: Rt) -> None:
    response = rt.client.get("/v1/projects/churn", headers={"X-API-Key": "ci-key-from-the-environment"})
    assert response.status_code == 200
    assert rt.client.get("/v1/me", headers={"X-API-Key": "ci-key-from-the-environment"}).get_json()["actor"] == "key:ci"
    assert (
        rt.client.post(
            "/v1/projects", json={"name": "x"}, headers={"X-API-Key": "ci-key-from-the-environment"}
        ).status_code
        == 403
    )


def test_a_key_works_as_a_bearer_token(rt: Rt) -> None:
    """Prometheus scrapes with `authorization: {credentials: KEY}`."""
    response = rt.client.get("/metrics", headers={"Authorization": f"Bearer {rt.keys['viewer']}"})
    assert response.status_code == 200
    assert b"nebula_http_requests_total" in response.data


def test_key_material_never_reaches_the_logs(rt: Rt) -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("nebula.runtime")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        rt.get("/v1/projects/churn", "viewer")
        rt.client.get("/v1/projects/churn", headers={"X-API-Key": "neb_00000000_wrong-secret-value"})
        rt.client.get("/v1/projects/churn", headers={"Authorization": "Bearer not.a.jwt"})
        rt.post("/v1/keys", json={"role": "viewer"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert len(lines) >= 4
    text = "\n".join(lines)
    for secret in (rt.keys["viewer"], rt.keys["admin"], "wrong-secret-value", "not.a.jwt"):
        assert secret not in text
    first = json.loads(lines[0])
    assert first["actor"].startswith("key:") and first["request_id"] and first["route"] == "/v1/projects/{project}"


def test_permission_wildcards() -> None:
    assert permission_covers("*:*", "audit:read")
    assert permission_covers("models:*", "models:update")
    assert permission_covers("data:write", "data:upload")
    assert not permission_covers("models:read", "models:update")
    assert not permission_covers("datasets:*", "data:upload")


# --- OIDC --------------------------------------------------------------------------------------------------


ISSUER = "https://login.example.com/realms/ml"


@pytest.fixture
def idp() -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    """A JWKS endpoint on a local port, serving the public half of a fresh RSA key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/certs", private
    finally:
        server.shutdown()
        server.server_close()


def token(private: rsa.RSAPrivateKey, **claims: object) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": "nebula-api", "sub": "u-1", "iat": now, "exp": now + 300, **claims}
    return jwt.encode(payload, private, algorithm="RS256", headers={"kid": "k1"})


def test_oidc_tokens(rt: Rt, idp: tuple[str, rsa.RSAPrivateKey]) -> None:
    import dataclasses

    url, private = idp
    runtime = rt.app.extensions["nebula"]
    runtime.auth.settings = dataclasses.replace(runtime.auth.settings, oidc_jwks_url=url)

    def call(path: str, bearer: str) -> int:
        return int(rt.client.get(path, headers={"Authorization": f"Bearer {bearer}"}).status_code)

    admin = token(private, groups=["ml-admins"], email="root@example.com")
    assert call("/v1/audit", admin) == 200
    assert (
        rt.client.get("/v1/me", headers={"Authorization": f"Bearer {admin}"}).get_json()["actor"]
        == "user:root@example.com"
    )
    scientist = token(private, groups=["data-science"])  # bound by `group:data-science` in nebula.yaml
    assert call("/v1/projects/churn/runs", scientist) == 200
    assert call("/v1/audit", scientist) == 403
    eve = token(private, email="eve@example.com")  # bound to viewer on churn only
    assert call("/v1/projects/churn", eve) == 200
    assert call("/v1/projects/fraud", eve) == 403
    assert call("/v1/projects/churn", token(private, groups=["ml-admins"], aud="someone-else")) == 401
    assert call("/v1/projects/churn", token(private, groups=["ml-admins"], exp=int(time.time()) - 60)) == 401
    assert call("/v1/projects/churn", token(private, groups=["ml-admins"], iss="https://evil.example.com")) == 401
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert call("/v1/projects/churn", token(other, groups=["ml-admins"])) == 401
    nobody = token(private, groups=["strangers"])
    assert call("/v1/projects/churn", nobody) == 403


def test_a_key_cannot_grant_more_than_its_issuer_holds(rt: Rt) -> None:
    escalation = rt.post("/v1/keys", "keymaster", json={"role": "admin"})
    assert escalation.status_code == 403
    assert "lacks" in escalation.get_json()["error"]["message"]
    assert rt.post("/v1/keys", "keymaster", json={"role": "keymaster"}).status_code == 201  # its own role is fine
    from nebula_runtime.services import create_key

    scoped_admin = create_key(rt.store, role="admin", name="scoped-admin", projects=["churn"], created_by="test").key
    headers = {"X-API-Key": scoped_admin}
    everywhere = rt.client.post("/v1/keys", json={"role": "viewer"}, headers=headers)
    assert everywhere.status_code == 403  # a project-scoped key cannot issue one for every project
    # and a platform-wide permission is not granted by a project-scoped key at all
    assert (
        rt.client.post("/v1/keys", json={"role": "viewer", "projects": ["churn"]}, headers=headers).status_code == 403
    )


def test_a_key_is_bound_to_its_environment(rt: Rt) -> None:
    from nebula_runtime.services import create_key

    prod = create_key(rt.store, role="admin", name="prod", projects=None, created_by="test", environment="prod").key
    dev = create_key(rt.store, role="viewer", name="dev", projects=None, created_by="test", environment="dev").key
    assert rt.client.get("/v1/projects/churn", headers={"X-API-Key": prod}).status_code == 401
    assert rt.client.get("/v1/projects/churn", headers={"X-API-Key": dev}).status_code == 200
    made = rt.post("/v1/keys", json={"role": "viewer"}).get_json()
    assert made["environment"] == "dev"


def test_failed_reads_do_not_exhaust_the_connections(rt: Rt) -> None:
    for _ in range(40):  # a NUL byte makes the PostgreSQL driver refuse the query
        response = rt.get("/v1/projects/a%00b", "viewer")
        assert response.status_code in (404, 500)
    assert rt.get("/v1/projects/churn", "viewer").status_code == 200
    runtime = rt.app.extensions["nebula"]
    assert len(runtime.reader.opened) <= 1
