"""The OpenAPI 3.1 document describes the server: schemathesis finds no server error and no response
that breaks the document, on every operation, with generated valid and invalid input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator

from tests.runtime.conftest import Rt, make_rt


@pytest.fixture
def sqlite_rt(tmp_path: Path) -> Iterator[Rt]:
    runtime = make_rt(f"sqlite:///{tmp_path}/state.db", tmp_path)
    yield runtime
    runtime.app.extensions["nebula"].close()


def test_the_server_keeps_the_document(sqlite_rt: Rt) -> None:
    """Every operation, valid and invalid input: no 5xx, and every response as documented.

    Driven here rather than through schemathesis' pytest plugin, which does not load on this pytest.
    """
    api = schemathesis.openapi.from_wsgi("/v1/openapi.json", sqlite_rt.app)
    headers = {"X-API-Key": sqlite_rt.keys["admin"]}
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers)

        try:
            run()
        except Exception as err:  # collect them all, then report
            failures.append(f"{operation.method.upper()} {operation.path}: {str(err)[:2000]}")
    assert operations == 30
    assert not failures, "\n\n".join(failures)


def test_the_document_is_openapi_3_1(sqlite_rt: Rt) -> None:
    document = sqlite_rt.client.get("/v1/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    for name, component in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(component)
        assert name
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert len(operations) == 30
    assert len({op["operationId"] for op in operations}) == len(operations)
    upload = document["paths"]["/v1/projects/{project}/data"]["post"]
    assert set(upload["responses"]) >= {"200", "401", "403", "404", "409", "413", "415", "422"}


def test_docs_page(sqlite_rt: Rt) -> None:
    page = sqlite_rt.client.get("/docs")
    assert page.status_code == 200
    assert b"/v1/openapi.json" in page.data
