"""GraphQL: the same objects and relations as REST, mutations, batched loading, depth and cost limits."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from nebula_compile.state.schema import StateResource
from tests.runtime.conftest import Rt, register_version
from tests.runtime.test_rest import CSV

NESTED = """
{ projects(first: 20) {
    id
    datasets { name versions { dataId number size } }
    models { name aliases versions { version metrics run { id status curves } } }
    deployments { name status variants { name traffic version resolvedVersion modelVersion { version } } }
} }
"""


@contextmanager
def counting(rt: Rt) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(rt.store.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(rt.store.engine, "before_cursor_execute", count)


def test_relations(rt: Rt) -> None:
    rt.post("/v1/projects/churn/data", data={"file": (io.BytesIO(CSV), "customers.csv")})
    register_version(rt.store, "churn", "gb", 1, {"roc_auc": 0.8}, aliases=("champion",))
    register_version(rt.store, "churn", "gb", 2, {"roc_auc": 0.9}, aliases=("challenger",))
    response = rt.graphql(NESTED)
    assert response.status_code == 200
    body = response.get_json()
    assert "errors" not in body, body
    churn = body["data"]["projects"][0]
    customers = next(d for d in churn["datasets"] if d["name"] == "customers")
    assert [v["number"] for v in customers["versions"]] == [1]
    gb = churn["models"][0]
    assert gb["aliases"] == {"challenger": 2, "champion": 1}
    assert [v["version"] for v in gb["versions"]] == [2, 1]
    assert gb["versions"][0]["run"]["status"] == "succeeded"
    assert [p["step"] for p in gb["versions"][0]["run"]["curves"]["loss"]] == [0, 1, 2]
    api = churn["deployments"][0]
    assert api["status"] == "ready"
    assert {v["name"]: v["modelVersion"]["version"] for v in api["variants"]} == {"champion": 1, "challenger": 2}


def test_rest_and_graphql_agree(rt: Rt) -> None:
    register_version(rt.store, "churn", "gb", 1, {"roc_auc": 0.8}, aliases=("champion",))
    rest = rt.get("/v1/projects/churn/models/gb").get_json()
    graph = rt.graphql('{ project(id: "churn") { models { name algorithm latest aliases } } }').get_json()
    model = graph["data"]["project"]["models"][0]
    assert (model["name"], model["algorithm"], model["latest"], model["aliases"]) == (
        rest["name"],
        rest["algorithm"],
        rest["latest"],
        rest["aliases"],
    )


def add_projects(rt: Rt, start: int, count: int) -> None:
    """Copies of the reconciled churn project, each with its datasets, model, deployment and a registered version."""
    with rt.store.sessions.begin() as session:
        rows = (
            session.query(StateResource)
            .filter(StateResource.environment == "dev", StateResource.project == "churn")
            .all()
        )
        churn = session.get(StateResource, ("dev", "project.churn"))
        assert churn is not None
        for index in range(start, start + count):
            name = f"copy{index:02d}"
            session.add(
                StateResource(
                    environment="dev",
                    id=f"project.{name}",
                    kind="project",
                    project=None,
                    name=name,
                    hash="",
                    spec=dict(churn.spec),
                    managed=True,
                )
            )
            for row in rows:
                session.add(
                    StateResource(
                        environment="dev",
                        id=row.id.replace("churn", name, 1),
                        kind=row.kind,
                        project=name,
                        name=row.name,
                        hash="",
                        spec=dict(row.spec),
                        managed=True,
                    )
                )
    for index in range(start, start + count):
        register_version(rt.store, f"copy{index:02d}", "gb", 1, {"roc_auc": 0.8}, aliases=("champion",))


def test_nested_queries_are_batched(rt: Rt) -> None:
    add_projects(rt, 0, 2)
    with counting(rt) as few:
        small = rt.graphql(NESTED).get_json()
    add_projects(rt, 2, 12)
    with counting(rt) as many:
        large = rt.graphql(NESTED).get_json()
    assert len(small["data"]["projects"]) == 4
    assert len(large["data"]["projects"]) == 16
    assert all(
        p["models"][0]["versions"][0]["run"]["status"] == "succeeded"
        for p in large["data"]["projects"]
        if p["id"].startswith("copy")
    )
    assert len(many) == len(few), (len(few), len(many))  # one query per level, not one per row
    assert len(many) < 30


def test_depth_and_cost_limits(rt: Rt) -> None:
    deep = "{ projects { models { versions { run { id } } } } }"
    assert rt.graphql(deep).status_code == 200
    import dataclasses

    runtime = rt.app.extensions["nebula"]
    runtime.settings = dataclasses.replace(runtime.settings, graphql_max_depth=3)
    too_deep = rt.graphql(deep)
    assert too_deep.status_code == 400
    assert "exceeds maximum operation depth" in too_deep.get_json()["errors"][0]["message"]
    runtime.settings = dataclasses.replace(runtime.settings, graphql_max_depth=12, graphql_max_cost=1000)
    costly = rt.graphql("{ projects(first: 500) { datasets { versions(first: 500) { dataId } } } }")
    assert costly.status_code == 400
    assert "the limit is 1000" in costly.get_json()["errors"][0]["message"]
    assert rt.graphql("{ projects(first: 5) { id } }").status_code == 200


def test_mutations(rt: Rt) -> None:
    created = rt.graphql(
        'mutation { createProject(name: "Graph Made", description: "d") { id name managed } }'
    ).get_json()
    assert created["data"]["createProject"] == {"id": "graph-made", "name": "Graph Made", "managed": False}
    assert rt.get("/v1/projects/graph-made").status_code == 200
    refused = rt.graphql('mutation { updateProject(id: "churn", description: "x") { id } }').get_json()
    assert refused["errors"][0]["extensions"]["code"] == "conflict"
    assert "nebula.yaml" in refused["errors"][0]["message"]
    register_version(rt.store, "churn", "gb", 1, {"roc_auc": 0.8})
    moved = rt.graphql(
        'mutation { setModelAlias(project: "churn", model: "gb", alias: "champion", version: 1) { alias version } }'
    )
    assert moved.get_json()["data"]["setModelAlias"] == {"alias": "champion", "version": 1}
    denied = rt.graphql('mutation { createProject(name: "nope") { id } }', role="viewer").get_json()
    assert denied["errors"][0]["extensions"]["code"] == "forbidden"
    assert rt.graphql('mutation { deleteProject(id: "graph-made") { ok } }').get_json()["data"]["deleteProject"] == {
        "ok": True
    }


def test_bad_requests(rt: Rt) -> None:
    assert rt.client.post("/graphql", json={"query": '{ project(id: "churn") { id } }'}).status_code == 401
    assert rt.graphql("{ nope }").status_code == 400
    assert rt.graphql("{ project(id: ").status_code == 400
    no_query = rt.client.post("/graphql", json={"q": 1}, headers=rt.headers())
    assert no_query.get_json()["error"]["code"] == "bad_request"
    via_get = rt.client.get('/graphql?query={ project(id: "churn") { id } }', headers=rt.headers())
    assert via_get.get_json() == {"data": {"project": {"id": "churn"}}}
    mutation_via_get = rt.client.get(
        '/graphql?query=mutation { createProject(name: "x") { id } }', headers=rt.headers()
    )
    assert mutation_via_get.status_code == 405
    variables = rt.graphql("query P($id: ID!) { project(id: $id) { name } }", variables={"id": "fraud"}).get_json()
    assert variables == {"data": {"project": {"name": "fraud"}}}


def test_cost_counts_variables_and_fragments(rt: Rt) -> None:
    import dataclasses

    runtime = rt.app.extensions["nebula"]
    runtime.settings = dataclasses.replace(runtime.settings, graphql_max_cost=1000)
    literal = "{ projects(first: 500) { datasets { versions(first: 500) { dataId } } } }"
    variable = "query Q($n: Int) { projects(first: $n) { datasets { versions(first: $n) { dataId } } } }"
    fragment = (
        "{ projects(first: 500) { ...P } } fragment P on Project { datasets { versions(first: 500) { dataId } } }"
    )
    assert rt.graphql(literal).status_code == 400
    refused = rt.graphql(variable, variables={"n": 500})
    assert refused.status_code == 400
    assert refused.get_json()["errors"][0]["extensions"]["code"] == "too_costly"
    assert rt.graphql(variable, variables={"n": 2}).status_code == 200
    assert rt.graphql(fragment).status_code == 400
    negative = rt.graphql('{ project(id: "churn") { datasets { versions(first: -1) { dataId } } } }').get_json()
    assert negative["errors"][0]["extensions"]["code"] == "bad_request"


def test_internal_errors_are_logged_with_the_request_id(rt: Rt, monkeypatch: object) -> None:
    import logging

    import pytest

    from nebula_runtime import services

    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("the disk is on fire")

    handler = Collect()
    logger = logging.getLogger("nebula.runtime")
    logger.addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(services, "models_for", broken)
            response = rt.graphql('{ project(id: "churn") { models { name } } }')
    finally:
        logger.removeHandler(handler)
    error = response.get_json()["errors"][0]
    assert error["extensions"]["code"] == "internal"
    assert "the disk is on fire" not in error["message"]
    logged = [r for r in records if r.getMessage() == "graphql resolver failed"]
    assert logged and logged[0].request_id == response.headers["X-Request-ID"]  # type: ignore[attr-defined]
