"""The Flask app factory: one Runtime (store, settings, environment, auth) per app."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from nebula_compile.state.store import StateError, Store
from nebula_runtime import __name__ as package_name
from nebula_runtime import ops
from nebula_runtime.auth import Authenticator
from nebula_runtime.errors import ApiError, from_http
from nebula_runtime.graphql import graphql_view
from nebula_runtime.rest import api
from nebula_runtime.services import Runtime
from nebula_runtime.settings import Settings, SettingsError

log = logging.getLogger("nebula.runtime")
VERSION = "0.1.0"

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Nebula API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/v1/openapi.json", dom_id: "#ui", persistAuthorization: true});</script>
</body></html>
"""


def pick_environment(store: Store, wanted: str | None) -> str:
    if wanted:
        return wanted
    known = store.environments()
    if len(known) == 1:
        return known[0]
    if not known:
        return "default"
    raise SettingsError(
        f"the state store holds the environments {', '.join(known)}; set NEBULA_ENVIRONMENT (or --env) to the one to serve"
    )


def create_app(settings: Settings | None = None, store: Store | None = None) -> Flask:
    settings = settings or Settings.from_env()
    ops.configure_logging(settings.log_level)
    try:
        # each request thread may hold a reader connection and a session: size the pool for that
        store = store or Store.open(settings.database_url, pool_size=32)
    except StateError as err:
        raise SettingsError(str(err)) from None
    environment = pick_environment(store, settings.environment)
    runtime = Runtime(store, settings, environment, Authenticator(store, settings, environment))

    app = Flask(package_name)
    app.config["MAX_CONTENT_LENGTH"] = None  # uploads check their own limit while streaming
    app.extensions["nebula"] = runtime

    @app.before_request
    def bind() -> None:
        g.runtime = runtime

    ops.install(app)
    api.install(app)
    for rule in ("/graphql", "/v1/graphql"):
        app.add_url_rule(
            rule, endpoint=f"graphql{rule.replace('/', '.')}", view_func=graphql_view, methods=["GET", "POST"]
        )

    documents: dict[tuple[str, ...], bytes] = {}  # built when first asked for, not at every worker's start

    def openapi() -> Response:
        if not settings.public_docs:
            g.principal = runtime.auth.authenticate(request.headers)
        roles = tuple(sorted(runtime.auth.access().roles))
        if roles not in documents:  # the roles of the applied nebula.yaml are the values a key may take
            document = api.openapi("Nebula", VERSION)
            document["components"]["schemas"]["KeyCreate"]["properties"]["role"]["enum"] = list(roles)
            documents.clear()
            documents[roles] = orjson.dumps(document)
        return Response(documents[roles], mimetype="application/json")

    def docs() -> Response:
        if not settings.public_docs:
            g.principal = runtime.auth.authenticate(request.headers)
        return Response(DOCS_PAGE, mimetype="text/html")

    app.add_url_rule("/v1/openapi.json", endpoint="openapi", view_func=openapi, methods=["GET"])
    app.add_url_rule("/docs", endpoint="docs", view_func=docs, methods=["GET"])

    @app.errorhandler(ApiError)
    def api_error(err: ApiError) -> Response:
        return _json(err.body(), err.status)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        return _json(from_http(err).body(), err.code or 500)

    @app.errorhandler(Exception)
    def internal(err: Exception) -> Response:
        log.exception("unhandled error", extra={"request_id": g.get("request_id")})
        body = ApiError(500, "internal error; the request id is in the X-Request-ID header and the server log").body()
        body["error"]["details"] = {"request_id": g.get("request_id")}
        return _json(body, 500)

    log.info(
        "serving", extra={"environment": environment, "database": store.engine.url.render_as_string(hide_password=True)}
    )
    return app


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(body, default=str), status=status, mimetype="application/json")
