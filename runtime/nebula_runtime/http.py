"""The REST surface as data: every route declares its permission, body, query and response.

One dispatcher runs every route: authenticate, `authorize` (the one RBAC check, with the
route's `{project}` as scope), parse and validate the query and body with the route's
pydantic models, call the view, serialize the response with the response model. The
OpenAPI 3.1 document is generated from the same declarations, so it cannot drift from
what the server does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from flask import Flask, Response, g, request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from nebula_runtime.auth import authorize
from nebula_runtime.errors import CODES, ApiError

_PARAM = re.compile(r"\{(\w+)\}")
INT_PARAMS = frozenset({"number", "version", "revision"})
MAX_INT = 2**31 - 1
PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "alias": {"type": "string", "pattern": r"^[a-z][a-z0-9-]{0,62}$", "description": "An alias such as champion."},
}
ALWAYS = (400, 401, 403)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    view: Callable[..., Any]
    permission: str | None
    summary: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    errors: tuple[int, ...]
    upload: bool
    binary: bool
    description: str
    deferred: bool = False
    """The project is known only once the view has found the object (a deployment by name across projects):
    the view checks `permission` on it, not the dispatcher."""

    @property
    def endpoint(self) -> str:
        return self.view.__name__

    @property
    def flask_rule(self) -> str:
        return _PARAM.sub(lambda m: f"<int:{m[1]}>" if m[1] in INT_PARAMS else f"<{m[1]}>", self.path)


def pydantic_details(err: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or None, "message": e["msg"], "type": e["type"]}
        for e in err.errors(include_url=False, include_input=False)
    ]


class Api:
    def __init__(self, prefix: str = "/v1") -> None:
        self.prefix = prefix
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        permission: str | None,
        tag: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
        upload: bool = False,
        binary: bool = False,
        deferred: bool = False,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(view: Callable[..., Any]) -> Callable[..., Any]:
            doc = (view.__doc__ or "").strip()
            self.routes.append(
                Route(
                    method,
                    path,
                    view,
                    permission,
                    summary,
                    tag,
                    body,
                    query,
                    response,
                    status,
                    errors,
                    upload,
                    binary,
                    doc,
                    deferred,
                )
            )
            return view

        return register

    # --- serving ----------------------------------------------------------------------------

    def install(self, app: Flask) -> None:
        for route in self.routes:
            app.add_url_rule(
                self.prefix + route.flask_rule,
                endpoint=f"api.{route.endpoint}",
                view_func=self._dispatcher(route),
                methods=[route.method],
            )

    def _dispatcher(self, route: Route) -> Callable[..., Any]:
        def dispatch(**params: Any) -> Any:
            runtime = g.runtime
            principal = runtime.auth.authenticate(request.headers)
            g.principal = principal
            if route.permission is not None and not route.deferred:
                authorize(principal, route.permission, params.get("project"))
            for name in INT_PARAMS.intersection(params):
                if params[name] > MAX_INT:
                    raise ApiError(404, f"no {name} {params[name]}")
            kwargs = dict(params)
            if route.query is not None:
                try:
                    kwargs["query"] = route.query.model_validate(request.args.to_dict())
                except ValidationError as err:
                    raise ApiError(400, "invalid query parameters", pydantic_details(err)) from None
            if route.body is not None:
                kwargs["body"] = _json_body(route.body)
            result = route.view(runtime, principal, **kwargs)
            if isinstance(result, Response):
                return result
            if result is None:
                return Response(status=204)
            return Response(result.model_dump_json(), status=route.status, mimetype="application/json")

        dispatch.__name__ = route.endpoint
        return dispatch

    # --- the document ------------------------------------------------------------------------

    def openapi(self, title: str, version: str) -> dict[str, Any]:
        models: dict[tuple[type[BaseModel], Literal["validation", "serialization"]], None] = {}
        for route in self.routes:
            if route.body is not None:
                models[(route.body, "validation")] = None
            if route.response is not None:
                models[(route.response, "serialization")] = None
        key_map, defs = models_json_schema(list(models), ref_template="#/components/schemas/{model}")
        schemas = dict(defs.get("$defs", {}))
        schemas["Error"] = {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "details"],
                    "properties": {
                        "code": {"type": "string", "enum": sorted(set(CODES.values()))},
                        "message": {"type": "string"},
                        "details": {},
                    },
                }
            },
        }
        paths: dict[str, dict[str, Any]] = {}
        for route in self.routes:
            operation: dict[str, Any] = {
                "operationId": route.endpoint,
                "summary": route.summary,
                "tags": [route.tag],
                "responses": {},
            }
            if route.description:
                operation["description"] = route.description
            if route.permission:
                operation["x-permission"] = route.permission
            parameters = [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": PARAM_SCHEMAS.get(name)
                    or (
                        {"type": "integer", "minimum": 0, "maximum": MAX_INT}
                        if name in INT_PARAMS
                        else {"type": "string", "minLength": 1}
                    ),
                }
                for name in _PARAM.findall(route.path)
            ]
            if route.query is not None:
                schema = route.query.model_json_schema()
                required = set(schema.get("required", []))
                for name, prop in schema.get("properties", {}).items():
                    prop = {k: v for k, v in prop.items() if k != "title"}
                    description = prop.pop("description", None)
                    parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
                    if description:
                        parameter["description"] = description
                    parameters.append(parameter)
            if parameters:
                operation["parameters"] = parameters
            if route.body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": key_map[(route.body, "validation")]}},
                }
            if route.upload:
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {"type": "string", "contentMediaType": "application/octet-stream"},
                                    "dataset": {"type": "string"},
                                },
                            }
                        }
                    },
                }
            if route.response is not None:
                content = {"application/json": {"schema": key_map[(route.response, "serialization")]}}
                operation["responses"][str(route.status)] = {"description": route.summary, "content": content}
            elif route.binary:
                operation["responses"][str(route.status)] = {
                    "description": route.summary,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
                        }
                    },
                }
            else:
                operation["responses"][str(route.status)] = {"description": route.summary}
            errors = set(ALWAYS) | set(route.errors)
            if route.body is not None:
                errors |= {415, 422}
            if "{" in route.path:
                errors.add(404)
            for status in sorted(errors):
                operation["responses"][str(status)] = {
                    "description": CODES[status].replace("_", " "),
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            paths.setdefault(self.prefix + route.path, {})[route.method.lower()] = operation
        return {
            "openapi": "3.1.0",
            "info": {
                "title": title,
                "version": version,
                "description": "Nebula's runtime API: projects, datasets and their versions, models, "
                "runs, deployments, revisions and the audit log, served from the state that `nebula apply` "
                "reconciled. Objects from git are read-only here; change nebula.yaml instead.",
            },
            "servers": [{"url": "/"}],
            "security": [{"ApiKey": []}, {"Bearer": []}],
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                    "Bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An OIDC access token or an API key.",
                    },
                },
            },
        }


def _json_body(model: type[BaseModel]) -> BaseModel:
    if request.mimetype != "application/json":
        raise ApiError(415, f"send JSON (Content-Type: application/json), not {request.mimetype or 'nothing'}")
    data = request.get_data(cache=False)
    try:
        return model.model_validate_json(data or b"null")
    except ValidationError as err:
        details = pydantic_details(err)
        if any(d["type"] == "json_invalid" for d in details):
            raise ApiError(400, "the body is not valid JSON", details) from None
        raise ApiError(422, "the body does not match the schema", details) from None
