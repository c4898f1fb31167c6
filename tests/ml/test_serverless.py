"""The Lambda handler the AWS stack's functions run: direct invocations and HTTP events, weights and sticky keys."""

from __future__ import annotations

import base64
import json
from collections import Counter

import pytest

from nebula_runtime import serverless
from tests.ml.conftest import Platform
from tests.ml.test_predict import ROW


def environ(platform: Platform, variants: dict[str, dict[str, object]]) -> dict[str, str]:
    return {
        "NEBULA_ARTIFACTS": str(platform.artifacts),
        "NEBULA_ENVIRONMENT": "dev",
        "NEBULA_PROJECT": "churn",
        "NEBULA_DEPLOYMENT": "churn-batch",
        "NEBULA_VARIANTS": json.dumps(variants),
    }


AB = {
    "a": {"model": "churn-lr", "version": "champion", "weight": 75},
    "b": {"model": "churn-tree", "version": 1, "weight": 25},
}


def test_a_direct_invocation_is_answered_by_a_weighted_variant(trained: Platform) -> None:
    env = environ(trained, AB)
    seen = Counter(serverless.handler({"input": ROW}, None, env)["variant"] for _ in range(400))
    assert 0.67 < seen["a"] / 400 < 0.83
    answer = serverless.handler({"inputs": [ROW, ROW], "key": "customer-9"}, None, env)
    assert answer["model"] == {"a": "churn-lr", "b": "churn-tree"}[answer["variant"]] and answer["version"] == 1
    assert len(answer["predictions"]) == 2
    assert len({serverless.handler({"input": ROW, "key": "customer-9"}, None, env)["variant"] for _ in range(10)}) == 1


def test_an_http_event_gets_an_http_answer(trained: Platform) -> None:
    env = environ(trained, AB)
    body = base64.b64encode(json.dumps({"input": ROW}).encode()).decode()
    event = {"rawPath": "/", "body": body, "isBase64Encoded": True, "requestContext": {}}
    answer = serverless.handler(event, None, env)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["predictions"]
    bad = serverless.handler({"rawPath": "/", "body": "{", "requestContext": {}}, None, env)
    assert bad["statusCode"] == 400 and "not JSON" in json.loads(bad["body"])["error"]["message"]
    wrong = serverless.handler(
        {
            "rawPath": "/",
            "body": json.dumps({"input": {**ROW, "contract": 7, "tenure_months": "x"}}),
            "requestContext": {},
        },
        None,
        env,
    )
    assert wrong["statusCode"] == 422


def test_a_missing_model_or_configuration_is_named(trained: Platform) -> None:
    missing = environ(trained, {"a": {"model": "churn-perfect", "version": "champion", "weight": 100}})
    with pytest.raises(serverless.HandlerError, match="no version under the alias 'champion'"):
        serverless.handler({"input": ROW}, None, missing)
    with pytest.raises(serverless.HandlerError, match="no variant with traffic"):
        serverless.handler({"input": ROW}, None, environ(trained, {}))
