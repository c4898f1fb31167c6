"""The REST API: the documented calls exactly, then the rest of the surface, against SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io

from nebula_compile.api import drift_config
from tests.runtime.conftest import CONFIG, Rt, register_version

CSV = b"customer_id,tenure,charges,contract,churned\nc1,12,70.5,monthly,true\nc2,40,20.0,yearly,false\n"


def upload(rt: Rt, project: str, content: bytes, filename: str, role: str = "admin", query: str = "", **extra: object):
    return rt.post(f"/v1/projects/{project}/data{query}", role, data={"file": (io.BytesIO(content), filename), **extra})


# --- the product description's API, exactly -----------------------------------------------------------


def test_documented_create_and_get_project(rt: Rt) -> None:
    created = rt.post("/v1/projects", json={"name": "My Project", "description": "Description of my project"})
    assert created.status_code == 201
    body = created.get_json()
    assert {k: body[k] for k in ("id", "name", "description")} == {
        "id": "my-project",
        "name": "My Project",
        "description": "Description of my project",
    }
    fetched = rt.get(f"/v1/projects/{body['id']}")
    assert fetched.status_code == 200
    assert {k: fetched.get_json()[k] for k in ("id", "name", "description")} == {
        k: body[k] for k in ("id", "name", "description")
    }


def test_documented_upload_returns_data_id_and_filename(rt: Rt) -> None:
    rt.post("/v1/projects", json={"name": "My Project", "description": ""})
    response = upload(rt, "my-project", b"a,b\n1,2\n", "data.csv")
    assert response.status_code == 200
    body = response.get_json()
    assert body["filename"] == "data.csv"
    assert body["data_id"].startswith("dv_")
    again = rt.get(f"/v1/projects/my-project/data/{body['data_id']}")
    assert again.get_json()["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def test_documented_graphql_project_query(rt: Rt) -> None:
    for path in ("/graphql", "/v1/graphql"):
        response = rt.client.post(
            path, json={"query": '{ project(id: "churn") { id name description } }'}, headers=rt.headers("viewer")
        )
        assert response.status_code == 200
        assert response.get_json() == {
            "data": {"project": {"id": "churn", "name": "churn", "description": "Predict churn"}}
        }


# --- projects -----------------------------------------------------------------------------------------


def test_reconciled_projects_are_listed_with_their_settings(rt: Rt) -> None:
    page = rt.get("/v1/projects").get_json()
    assert [p["id"] for p in page["items"]] == ["churn", "fraud"]
    churn = page["items"][0]
    assert churn["managed"] is True
    assert churn["namespace"] == "dev-churn"
    assert churn["labels"] == {"team": "growth"}


def test_listing_pages_and_filters(rt: Rt) -> None:
    for index in range(5):
        assert (
            rt.post(
                "/v1/projects", json={"name": f"Team {index}", "labels": {"tier": "gold" if index % 2 else "free"}}
            ).status_code
            == 201
        )
    first = rt.get("/v1/projects?limit=3").get_json()
    assert [p["id"] for p in first["items"]] == ["churn", "fraud", "team-0"]
    second = rt.get(f"/v1/projects?limit=3&after={first['next']}").get_json()
    assert [p["id"] for p in second["items"]] == ["team-1", "team-2", "team-3"]
    last = rt.get(f"/v1/projects?limit=3&after={second['next']}").get_json()
    assert [p["id"] for p in last["items"]] == ["team-4"]
    assert last["next"] is None
    assert [p["id"] for p in rt.get("/v1/projects?managed=false&label=tier=gold").get_json()["items"]] == [
        "team-1",
        "team-3",
    ]
    assert [p["id"] for p in rt.get("/v1/projects?q=fraud").get_json()["items"]] == ["fraud"]


def test_reconciled_objects_are_read_only(rt: Rt) -> None:
    for response in (
        rt.client.patch("/v1/projects/churn", json={"description": "x"}, headers=rt.headers()),
        rt.client.delete("/v1/projects/churn", headers=rt.headers()),
    ):
        assert response.status_code == 409
        error = response.get_json()["error"]
        assert error["code"] == "conflict"
        assert "nebula.yaml" in error["message"]
        assert error["details"]["path"] == "projects.churn"
    assert rt.get("/v1/projects/churn").get_json()["description"] == "Predict churn"


def test_api_projects_can_change_and_go(rt: Rt) -> None:
    rt.post("/v1/projects", json={"name": "Scratch"})
    changed = rt.client.patch("/v1/projects/scratch", json={"description": "now described"}, headers=rt.headers())
    assert changed.get_json()["description"] == "now described"
    assert rt.client.delete("/v1/projects/scratch", headers=rt.headers()).status_code == 204
    assert rt.get("/v1/projects/scratch").status_code == 404


def test_duplicate_project_is_a_conflict(rt: Rt) -> None:
    assert rt.post("/v1/projects", json={"name": "Same"}).status_code == 201
    again = rt.post("/v1/projects", json={"name": "same"})
    assert again.status_code == 409
    assert again.get_json()["error"]["details"] == {"id": "same"}
    assert rt.post("/v1/projects", json={"name": "churn"}).status_code == 409


def test_api_created_projects_are_reported_as_drift(rt: Rt, monkeypatch: object) -> None:
    import pytest

    rt.post("/v1/projects", json={"name": "Shadow IT"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", rt.database)
        drifts, diagnostics, _ = drift_config(str(CONFIG), None, ["dev"])
    assert not diagnostics
    assert list(drifts[0].unmanaged) == ["project.shadow-it"]


# --- errors ---------------------------------------------------------------------------------------------


def test_errors_have_one_shape_and_the_right_status(rt: Rt) -> None:
    cases = [
        (rt.client.get("/v1/projects/churn"), 401),
        (rt.client.get("/v1/projects/churn", headers={"X-API-Key": "neb_deadbeef_nope"}), 401),
        (rt.get("/v1/audit", "viewer"), 403),
        (rt.get("/v1/projects/nope"), 404),
        (rt.get("/v1/projects?limit=0"), 400),
        (rt.client.post("/v1/projects", data="{", headers={**rt.headers(), "Content-Type": "application/json"}), 400),
        (rt.client.post("/v1/projects", data="name=x", headers={**rt.headers(), "Content-Type": "text/plain"}), 415),
        (rt.post("/v1/projects", json={"description": "no name"}), 422),
        (rt.post("/v1/projects", json={"name": "x", "colour": "red"}), 422),
        (rt.post("/v1/projects", json={"name": "!!!"}), 422),
        (rt.client.put("/v1/projects", headers=rt.headers()), 405),
        (rt.get("/v2/projects"), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, (status, response.get_json())
        body = response.get_json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message", "details"}
        assert body["error"]["message"]
    details = rt.post("/v1/projects", json={"description": "no name"}).get_json()["error"]["details"]
    assert details[0]["field"] == "name"


def test_every_response_carries_a_request_id(rt: Rt) -> None:
    mine = rt.client.get("/v1/projects/churn", headers={**rt.headers(), "X-Request-ID": "trace-123"})
    assert mine.headers["X-Request-ID"] == "trace-123"
    assert len(rt.get("/v1/projects/churn").headers["X-Request-ID"]) == 32


# --- datasets ------------------------------------------------------------------------------------------------


def test_datasets_and_versions(rt: Rt) -> None:
    datasets = {d["name"]: d for d in rt.get("/v1/projects/churn/datasets").get_json()["items"]}
    assert set(datasets) == {"customers", "crm"}
    assert datasets["customers"]["uploads"] is True
    assert datasets["crm"]["uploads"] is False
    assert [c["name"] for c in datasets["customers"]["columns"]][:2] == ["customer_id", "tenure"]
    first = upload(rt, "churn", CSV, "customers.csv", query="?dataset=customers").get_json()
    second = upload(rt, "churn", CSV + b"c3,1,5.5,monthly,false\n", "customers.csv").get_json()
    assert (first["number"], second["number"]) == (1, 2)
    assert second["lineage"]["parent"] == first["data_id"]
    assert second["rows"] == 3
    versions = rt.get("/v1/projects/churn/datasets/customers/versions").get_json()["items"]
    assert [v["number"] for v in versions] == [2, 1]
    one = rt.get("/v1/projects/churn/datasets/customers/versions/1").get_json()
    assert one["data_id"] == first["data_id"]
    download = rt.get("/v1/projects/churn/datasets/customers/versions/1/download")
    content = download.get_data()
    download.close()
    assert download.status_code == 200
    assert content == CSV
    assert download.headers["Digest"] == f"sha-256={hashlib.sha256(CSV).hexdigest()}"
    assert "customers.csv" in download.headers["Content-Disposition"]
    dataset = rt.get("/v1/projects/churn/datasets/customers").get_json()
    assert (dataset["versions"], dataset["latest"]) == (2, 2)


def test_same_content_again_is_the_same_version(rt: Rt) -> None:
    first = upload(rt, "churn", CSV, "a.csv").get_json()
    again = upload(rt, "churn", CSV, "b.csv").get_json()
    assert again["data_id"] == first["data_id"]
    assert again["created"] is False


# --- models, runs, deployments --------------------------------------------------------------------------------


def test_models_versions_aliases_and_runs(rt: Rt) -> None:
    run_id = register_version(rt.store, "churn", "gb", 1, {"roc_auc": 0.81}, aliases=("champion",))
    register_version(rt.store, "churn", "gb", 2, {"roc_auc": 0.84})
    model = rt.get("/v1/projects/churn/models/gb").get_json()
    assert (model["algorithm"], model["latest"], model["aliases"]) == ("gradient_boosting", 2, {"champion": 1})
    versions = rt.get("/v1/projects/churn/models/gb/versions").get_json()["items"]
    assert [(v["version"], v["aliases"]) for v in versions] == [(2, []), (1, ["champion"])]
    assert rt.get("/v1/projects/churn/models/gb/versions/1").get_json()["metrics"] == {"roc_auc": 0.81}
    run = rt.get(f"/v1/projects/churn/runs/{run_id}").get_json()
    assert [p["step"] for p in run["curves"]["loss"]] == [0, 1, 2]
    assert [r["id"] for r in rt.get("/v1/projects/churn/runs?model=gb").get_json()["items"]] == [
        "run_churn_gb_2",
        "run_churn_gb_1",
    ]
    moved = rt.client.put(
        "/v1/projects/churn/models/gb/aliases/challenger", json={"version": 2}, headers=rt.headers("scientist")
    )
    assert moved.status_code == 200
    missing = rt.client.put(
        "/v1/projects/churn/models/gb/aliases/challenger", json={"version": 9}, headers=rt.headers()
    )
    assert missing.status_code == 404
    assert rt.client.delete("/v1/projects/churn/models/gb/aliases/champion", headers=rt.headers()).status_code == 204
    assert rt.get("/v1/projects/churn/models/gb").get_json()["aliases"] == {"challenger": 2}


def test_deployment_variants_resolve_to_registered_versions(rt: Rt) -> None:
    waiting = rt.get("/v1/projects/churn/deployments/api").get_json()
    assert waiting["status"] == "waiting_for_model"
    register_version(rt.store, "churn", "gb", 1, {"roc_auc": 0.8}, aliases=("champion",))
    register_version(rt.store, "churn", "gb", 2, {"roc_auc": 0.9}, aliases=("challenger",))
    ready = rt.get("/v1/projects/churn/deployments/api").get_json()
    assert ready["status"] == "ready"
    assert [(v["name"], v["traffic"], v["version"], v["resolved_version"]) for v in ready["variants"]] == [
        ("challenger", 10, "challenger", 2),
        ("champion", 90, "champion", 1),
    ]
    assert [d["name"] for d in rt.get("/v1/projects/churn/deployments").get_json()["items"]] == ["api"]


# --- platform ----------------------------------------------------------------------------------------------------


def test_revisions_and_audit_log(rt: Rt) -> None:
    revisions = rt.get("/v1/revisions", "auditor").get_json()["items"]
    assert revisions[0]["commit"] == "c0ffee"
    assert (
        rt.get(f"/v1/revisions/{revisions[0]['id']}", "auditor").get_json()["manifest_hash"]
        == revisions[0]["manifest_hash"]
    )
    rt.post("/v1/projects", json={"name": "Audited"})
    entries = rt.get("/v1/audit?action=project.create", "auditor").get_json()["items"]
    assert entries[0]["details"] == {"project": "audited", "name": "Audited"}
    assert entries[0]["actor"] == "key:" + rt.keys["admin"].split("_")[1] + " (admin-key)"
    assert rt.get("/v1/revisions/999", "auditor").status_code == 404
    assert rt.get("/v1/revisions/2147483647", "auditor").status_code == 404  # the largest id the API takes


def test_keys_through_the_api(rt: Rt) -> None:
    made = rt.post("/v1/keys", json={"role": "viewer", "name": "dashboards", "projects": ["fraud"]})
    assert made.status_code == 201
    key = made.get_json()["key"]
    assert rt.client.get("/v1/projects/fraud", headers={"X-API-Key": key}).status_code == 200
    assert rt.client.get("/v1/projects/churn", headers={"X-API-Key": key}).status_code == 403
    listed = rt.get("/v1/keys").get_json()["items"]
    assert all("key" not in item for item in listed)
    assert rt.post("/v1/keys", json={"role": "wizard"}).status_code == 422
    blank = rt.post("/v1/keys", json={"role": "viewer", "projects": ["fraud", "\n"]})
    assert blank.status_code == 422
    assert blank.get_json()["error"]["details"][0]["field"] == "projects.1"
    assert rt.client.delete(f"/v1/keys/{made.get_json()['id']}", headers=rt.headers()).status_code == 200
    assert rt.client.get("/v1/projects/fraud", headers={"X-API-Key": key}).status_code == 401


def test_me(rt: Rt) -> None:
    assert rt.get("/v1/me", "viewer").get_json() == {
        "actor": rt.get("/v1/me", "viewer").get_json()["actor"],
        "roles": ["viewer"],
        "environment": "dev",
    }
