"""The OpenAPI 3.1 document describes the server: schemathesis finds no server error and no response
that breaks the document, on every operation, with generated valid and invalid input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator

from tests.runtime.conftest import Rt, make_rt

FUZZ = settings(
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=os.environ.get("NEBULA_FUZZ") != "random",
)
"""The same examples on every run, so CI is repeatable; NEBULA_FUZZ=random explores new ones (run it locally
and often, and turn what it finds into a fix and a fixed example)."""


@pytest.fixture
def sqlite_rt(tmp_path: Path) -> Iterator[Rt]:
    runtime = make_rt(f"sqlite:///{tmp_path}/state.db", tmp_path)
    yield runtime
    runtime.app.extensions["nebula"].close()


def rest_fuzz(runtime: Rt, examples: int) -> tuple[int, list[str]]:
    """Every operation with generated valid and invalid input: the operations run, and what broke the document."""
    api = schemathesis.openapi.from_wsgi("/v1/openapi.json", runtime.app)
    headers = {"X-API-Key": runtime.keys["admin"]}
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(FUZZ, max_examples=examples)
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers)

        try:
            run()
        except (Exception, BaseExceptionGroup) as err:  # collect them all (schemathesis raises a group), then report
            failures.append(f"{operation.method.upper()} {operation.path}: {str(err)[:2000]}")
    return operations, failures


def test_the_server_keeps_the_document(sqlite_rt: Rt) -> None:
    """No 5xx and every response as documented, for every operation.

    Driven here rather than through schemathesis' pytest plugin, which does not load on this pytest.
    """
    operations, failures = rest_fuzz(sqlite_rt, 12)
    assert operations == 38
    assert not failures, "\n\n".join(failures)


def test_rest_fuzzing_would_see_a_server_error(sqlite_rt: Rt, monkeypatch: pytest.MonkeyPatch) -> None:
    from nebula_runtime import services

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(services, "list_projects", broken)
    _, failures = rest_fuzz(sqlite_rt, 3)
    assert [f.split(":")[0] for f in failures] == ["GET /v1/projects"]


def test_the_document_is_openapi_3_1(sqlite_rt: Rt) -> None:
    document = sqlite_rt.client.get("/v1/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    for name, component in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(component)
        assert name
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert len(operations) == 38
    assert len({op["operationId"] for op in operations}) == len(operations)
    upload = document["paths"]["/v1/projects/{project}/data"]["post"]
    assert set(upload["responses"]) >= {"200", "401", "403", "404", "409", "413", "415", "422"}


def test_docs_page(sqlite_rt: Rt) -> None:
    page = sqlite_rt.client.get("/docs")
    assert page.status_code == 200
    assert b"/v1/openapi.json" in page.data


def graphql_fuzz(runtime: Rt, examples: int) -> list[str]:
    """Generated queries and mutations for every GraphQL field; what answered with an internal error."""
    api = schemathesis.graphql.from_wsgi("/graphql", runtime.app, headers=runtime.headers())
    failures: list[str] = []

    def no_internal_error(ctx: object, response: schemathesis.Response, case: schemathesis.Case) -> None:
        assert response.status_code < 500, response.text[:500]
        for error in response.json().get("errors") or []:  # user mistakes are fine; a server fault is not
            assert (error.get("extensions") or {}).get("code") != "internal", error

    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(FUZZ, max_examples=examples)
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=runtime.headers(), checks=[no_internal_error])

        try:
            run()
        except (Exception, BaseExceptionGroup) as err:  # schemathesis reports failures as a BaseExceptionGroup
            failures.append(f"{operation.label}: {str(err)[:1500]}")
    return failures


def test_graphql_answers_generated_queries_without_internal_errors(sqlite_rt: Rt) -> None:
    from tests.runtime.conftest import register_version

    register_version(sqlite_rt.store, "churn", "gb", 1, {"roc_auc": 0.8}, aliases=("champion",))
    assert graphql_fuzz(sqlite_rt, 15) == []


def test_graphql_fuzzing_would_see_an_internal_error(sqlite_rt: Rt, monkeypatch: pytest.MonkeyPatch) -> None:
    from nebula_runtime import services

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(services, "projects_by_id", broken)
    assert any(failure.startswith("Query.project") for failure in graphql_fuzz(sqlite_rt, 5))
