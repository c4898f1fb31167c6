"""The AWS Lambda handler of deployments whose target is aws_lambda: `nebula_runtime.serverless.handler`.

The function runs the model's image with this handler as its command (the AWS stack
sets it). Its environment names the deployment and its variants
(`NEBULA_VARIANTS`: `{"variant": {"model", "version", "weight"}}`, from the compiled
`serverless/<project>-<deployment>.json`); models are loaded from the artifact store
(`NEBULA_ARTIFACTS`) through the registry's pointer files, once per warm container.

It answers a direct invocation (`{"inputs": [...]}` or `{"input": {...}}`, with an
optional `"key"` for sticky routing) with the prediction object, and an API Gateway
or function URL request (the body holds that JSON) with an HTTP response.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

from nebula_runtime.ml.artifacts import ArtifactError, ArtifactStore
from nebula_runtime.ml.registry import resolve
from nebula_runtime.ml.serving import BodyError, InputError, Loaded, load, rows_of

_loaded: dict[tuple[str, ...], tuple[float, Loaded]] = {}
ALIAS_SECONDS = 60.0
"""A version named by an alias is looked up again after this long, so a promotion reaches warm containers."""
_lock = threading.Lock()


class HandlerError(Exception):
    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.details = status, details


def _variants(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    try:
        variants = json.loads(environ.get("NEBULA_VARIANTS") or "{}")
    except json.JSONDecodeError as err:
        raise HandlerError(500, f"NEBULA_VARIANTS is not JSON: {err}") from None
    live = {name: v for name, v in variants.items() if int(v.get("weight", 0)) > 0}
    if not live:
        raise HandlerError(500, "the function has no variant with traffic (NEBULA_VARIANTS)")
    return live


def choose(variants: Mapping[str, Mapping[str, Any]], key: str | None, deployment: str, project: str = "") -> str:
    """The same rule as the runtime (predictions.choose): weights over the variants in name order, sticky for a key
    by a hash of project/deployment/key."""
    names = sorted(variants)
    total = sum(int(variants[n]["weight"]) for n in names)
    if key is None:
        point = secrets.randbelow(total * 100) / 100
    else:
        digest = hashlib.sha256(f"{project}/{deployment}/{key}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") % (total * 100) / 100
    for name in names:
        weight = int(variants[name]["weight"])
        if point < weight:
            return name
        point -= weight
    return names[-1]


def _model(environ: Mapping[str, str], spec: Mapping[str, Any]) -> Loaded:
    cache_key = (
        environ.get("NEBULA_ARTIFACTS") or "",
        environ.get("NEBULA_ENVIRONMENT") or "",
        environ.get("NEBULA_PROJECT") or "",
        str(spec.get("model")),
        str(spec.get("version")),
    )
    pinned = str(spec.get("version")).isdigit()
    with _lock:
        found = _loaded.get(cache_key)
    if found is not None and (pinned or time.monotonic() - found[0] < ALIAS_SECONDS):
        return found[1]
    store = ArtifactStore(environ.get("NEBULA_ARTIFACTS") or ".nebula/artifacts")
    project = environ.get("NEBULA_PROJECT") or ""
    try:
        number, folder = resolve(
            store,
            environ.get("NEBULA_ENVIRONMENT") or "dev",
            project,
            str(spec["model"]),
            spec.get("version", "champion"),
        )
        unchanged = found is not None and found[1].version == number
        model = (
            found[1] if found is not None and unchanged else load(store, folder, project, str(spec["model"]), number)
        )
    except ArtifactError as err:
        raise HandlerError(503, str(err)) from None
    with _lock:
        _loaded[cache_key] = (time.monotonic(), model)
    return model


def predict(body: Any, environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        rows = rows_of(body)
    except BodyError as err:
        raise HandlerError(400, str(err)) from None
    key = body.get("key")
    variants = _variants(environ)
    deployment = environ.get("NEBULA_DEPLOYMENT") or "function"
    variant = choose(variants, str(key) if key is not None else None, deployment, environ.get("NEBULA_PROJECT") or "")
    model = _model(environ, variants[variant])
    try:
        outputs = model.predict(rows)
    except InputError as err:
        raise HandlerError(422, str(err), err.details) from None
    return {
        "deployment": deployment,
        "variant": variant,
        "model": model.model,
        "version": model.version,
        "predictions": outputs,
    }


def handler(event: Mapping[str, Any], context: Any = None, environ: Mapping[str, str] | None = None) -> Any:
    environ = os.environ if environ is None else environ
    http = "body" in event and ("requestContext" in event or "httpMethod" in event or "rawPath" in event)
    try:
        if http:
            raw = event.get("body") or ""
            if event.get("isBase64Encoded"):
                raw = base64.b64decode(raw).decode("utf-8")
            try:
                body = json.loads(raw)
            except json.JSONDecodeError as err:
                raise HandlerError(400, f"the body is not JSON: {err.msg} at character {err.pos}") from None
        else:
            body = dict(event)
        result: dict[str, Any] = predict(body, environ)
        status = 200
    except HandlerError as err:
        if not http:
            raise
        result, status = {"error": {"message": str(err), "details": err.details}}, err.status
    if not http:
        return result
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(result)}
