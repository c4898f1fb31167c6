"""The REST routes under /v1. Each is a thin view over `services`; `http.Api` does the rest."""

from __future__ import annotations

from flask import Response, send_file

from nebula_runtime import models as m
from nebula_runtime import predictions
from nebula_runtime import services as s
from nebula_runtime.auth import Principal
from nebula_runtime.errors import ApiError
from nebula_runtime.http import Api
from nebula_runtime.services import Runtime
from nebula_runtime.uploads import upload

api = Api("/v1")


# --- projects ---------------------------------------------------------------------------------------


@api.route(
    "GET",
    "/projects",
    summary="List projects",
    permission="projects:read",
    tag="projects",
    query=m.ProjectQuery,
    response=m.ProjectPage,
)
def list_projects(rt: Runtime, principal: Principal, query: m.ProjectQuery) -> m.ProjectPage:
    """Projects this caller may read, by id; filter by text, label or origin, page with `after`."""
    return s.list_projects(rt, principal, query)


@api.route(
    "POST",
    "/projects",
    summary="Create a project",
    permission="projects:create",
    tag="projects",
    body=m.ProjectCreate,
    response=m.Project,
    status=201,
    errors=(409,),
)
def create_project(rt: Runtime, principal: Principal, body: m.ProjectCreate) -> m.Project:
    """The project is unmanaged (not in nebula.yaml): `nebula drift` reports it until git declares it."""
    return s.create_project(rt, principal, body)


@api.route(
    "GET",
    "/projects/{project}",
    summary="Get a project",
    permission="projects:read",
    tag="projects",
    response=m.Project,
)
def get_project(rt: Runtime, principal: Principal, project: str) -> m.Project:
    return s.get_project(rt, project)


@api.route(
    "PATCH",
    "/projects/{project}",
    summary="Change an API-created project",
    permission="projects:update",
    tag="projects",
    body=m.ProjectUpdate,
    response=m.Project,
    errors=(409,),
)
def update_project(rt: Runtime, principal: Principal, project: str, body: m.ProjectUpdate) -> m.Project:
    """Projects from nebula.yaml are refused with 409: change the file and apply."""
    return s.update_project(rt, principal, project, body)


@api.route(
    "DELETE",
    "/projects/{project}",
    summary="Delete an API-created project",
    permission="projects:delete",
    tag="projects",
    status=204,
    errors=(409,),
)
def delete_project(rt: Runtime, principal: Principal, project: str) -> None:
    s.delete_project(rt, principal, project)


# --- data -------------------------------------------------------------------------------------------------


@api.route(
    "POST",
    "/projects/{project}/data",
    summary="Upload a data file",
    permission="data:upload",
    tag="data",
    response=m.DataVersion,
    upload=True,
    errors=(404, 409, 413, 415, 422),
)
def upload_data(rt: Runtime, principal: Principal, project: str) -> m.DataVersion:
    """Multipart field `file`; the dataset from `?dataset=` or a `dataset` field, else the project's only
    upload dataset. The file becomes an immutable version after it passes the dataset's column checks."""
    return upload(rt, principal, project)


@api.route(
    "GET",
    "/projects/{project}/data/{data_id}",
    summary="Get an uploaded version by its data_id",
    permission="datasets:read",
    tag="data",
    response=m.DataVersion,
)
def get_data(rt: Runtime, principal: Principal, project: str, data_id: str) -> m.DataVersion:
    return s.get_data(rt, project, data_id)


@api.route(
    "GET",
    "/projects/{project}/datasets",
    summary="List a project's datasets",
    permission="datasets:read",
    tag="data",
    response=m.DatasetList,
)
def list_datasets(rt: Runtime, principal: Principal, project: str) -> m.DatasetList:
    s.get_project(rt, project)
    return m.DatasetList(items=s.datasets_for(rt, [project])[project])


@api.route(
    "GET",
    "/projects/{project}/datasets/{dataset}",
    summary="Get a dataset",
    permission="datasets:read",
    tag="data",
    response=m.Dataset,
)
def get_dataset(rt: Runtime, principal: Principal, project: str, dataset: str) -> m.Dataset:
    return s.get_dataset(rt, project, dataset)


@api.route(
    "GET",
    "/projects/{project}/datasets/{dataset}/versions",
    summary="List a dataset's versions",
    permission="datasets:read",
    tag="data",
    response=m.DataVersionList,
)
def list_versions(rt: Runtime, principal: Principal, project: str, dataset: str) -> m.DataVersionList:
    """Newest first."""
    s.get_dataset(rt, project, dataset)
    return m.DataVersionList(items=s.versions_for(rt, [(project, dataset)])[(project, dataset)])


@api.route(
    "POST",
    "/projects/{project}/datasets/{dataset}/versions",
    summary="Upload a new version of a dataset",
    permission="data:upload",
    tag="data",
    response=m.DataVersion,
    upload=True,
    errors=(409, 413, 415, 422),
)
def create_version(rt: Runtime, principal: Principal, project: str, dataset: str) -> m.DataVersion:
    return upload(rt, principal, project, dataset)


@api.route(
    "GET",
    "/projects/{project}/datasets/{dataset}/versions/{number}",
    summary="Get a dataset version",
    permission="datasets:read",
    tag="data",
    response=m.DataVersion,
)
def get_version(rt: Runtime, principal: Principal, project: str, dataset: str, number: int) -> m.DataVersion:
    return s.get_version(rt, project, dataset, number)


@api.route(
    "GET",
    "/projects/{project}/datasets/{dataset}/versions/{number}/download",
    summary="Download a dataset version",
    permission="datasets:read",
    tag="data",
    binary=True,
)
def download_version(rt: Runtime, principal: Principal, project: str, dataset: str, number: int) -> Response:
    version = s.get_version(rt, project, dataset, number)
    path = s.blob_path(rt, version.md5)
    if not path.is_file():
        raise ApiError(
            404, f"the content of {project}/{dataset}@{number} is missing from the artifact store", {"md5": version.md5}
        )
    response = send_file(
        path,
        mimetype=version.media_type,
        as_attachment=True,
        download_name=version.filename,
        etag=version.sha256,
        conditional=True,
        max_age=31536000,
    )
    response.headers["Digest"] = f"sha-256={version.sha256}"
    return response


# --- models and runs ---------------------------------------------------------------------------------------


@api.route(
    "GET",
    "/projects/{project}/models",
    summary="List a project's models",
    permission="models:read",
    tag="models",
    response=m.ModelList,
)
def list_models(rt: Runtime, principal: Principal, project: str) -> m.ModelList:
    s.get_project(rt, project)
    return m.ModelList(items=s.models_for(rt, [project])[project])


@api.route(
    "GET",
    "/projects/{project}/models/{model}",
    summary="Get a model, its aliases and latest version",
    permission="models:read",
    tag="models",
    response=m.Model,
)
def get_model(rt: Runtime, principal: Principal, project: str, model: str) -> m.Model:
    return s.get_model(rt, project, model)


@api.route(
    "GET",
    "/projects/{project}/models/{model}/versions",
    summary="List a model's registered versions",
    permission="models:read",
    tag="models",
    response=m.ModelVersionList,
)
def list_model_versions(rt: Runtime, principal: Principal, project: str, model: str) -> m.ModelVersionList:
    s.get_model(rt, project, model)
    return m.ModelVersionList(items=s.model_versions_for(rt, [(project, model)])[(project, model)])


@api.route(
    "GET",
    "/projects/{project}/models/{model}/versions/{version}",
    summary="Get a model version and its metrics",
    permission="models:read",
    tag="models",
    response=m.ModelVersion,
)
def get_model_version(rt: Runtime, principal: Principal, project: str, model: str, version: int) -> m.ModelVersion:
    return s.get_model_version(rt, project, model, version)


@api.route(
    "PUT",
    "/projects/{project}/models/{model}/aliases/{alias}",
    summary="Point an alias at a version",
    permission="models:update",
    tag="models",
    body=m.AliasSet,
    response=m.Alias,
)
def set_alias(rt: Runtime, principal: Principal, project: str, model: str, alias: str, body: m.AliasSet) -> m.Alias:
    """Aliases such as champion and challenger are registry state; deployments that name them follow."""
    return s.set_alias(rt, principal, project, model, alias, body.version)


@api.route(
    "DELETE",
    "/projects/{project}/models/{model}/aliases/{alias}",
    summary="Remove an alias",
    permission="models:update",
    tag="models",
    status=204,
)
def delete_alias(rt: Runtime, principal: Principal, project: str, model: str, alias: str) -> None:
    s.delete_alias(rt, principal, project, model, alias)


@api.route(
    "GET",
    "/projects/{project}/runs",
    summary="List training runs",
    permission="runs:read",
    tag="runs",
    query=m.RunQuery,
    response=m.RunList,
)
def list_runs(rt: Runtime, principal: Principal, project: str, query: m.RunQuery) -> m.RunList:
    s.get_project(rt, project)
    key = (project, query.model)
    return m.RunList(items=s.runs_for(rt, [key], status=query.status, limit=query.limit)[key])


@api.route(
    "GET",
    "/projects/{project}/runs/{run_id}",
    summary="Get a run with its curves",
    permission="runs:read",
    tag="runs",
    response=m.Run,
)
def get_run(rt: Runtime, principal: Principal, project: str, run_id: str) -> m.Run:
    """Curves (loss, accuracy, validation loss and accuracy per epoch) grow while the run goes."""
    return s.get_run(rt, project, run_id)


# --- deployments -------------------------------------------------------------------------------------------------


@api.route(
    "GET",
    "/projects/{project}/deployments",
    summary="List deployments",
    permission="deployments:read",
    tag="deployments",
    response=m.DeploymentList,
)
def list_deployments(rt: Runtime, principal: Principal, project: str) -> m.DeploymentList:
    s.get_project(rt, project)
    return m.DeploymentList(items=s.deployments_for(rt, [project])[project])


@api.route(
    "GET",
    "/projects/{project}/deployments/{deployment}",
    summary="Get a deployment: variants, traffic, status",
    permission="deployments:read",
    tag="deployments",
    response=m.Deployment,
)
def get_deployment(rt: Runtime, principal: Principal, project: str, deployment: str) -> m.Deployment:
    return s.get_deployment(rt, project, deployment)


# --- predictions ------------------------------------------------------------------------------------------------


@api.route(
    "POST",
    "/deployments/{deployment}/predict",
    summary="Predict with a deployment (A/B routed)",
    permission="predictions:predict",
    deferred=True,  # on the deployment's project, once the name is found (keys may be project-scoped)
    tag="predictions",
    body=m.PredictRequest,
    response=m.PredictResponse,
    errors=(409, 422),
)
def predict(rt: Runtime, principal: Principal, deployment: str, body: m.PredictRequest) -> m.PredictResponse:
    """Route to a variant by the traffic weights (sticky for `key`); the answer names the variant and version.

    Each prediction has an id: send it back with the true outcome to the feedback endpoint."""
    return predictions.predict(rt, principal, deployment, body)


@api.route(
    "POST",
    "/projects/{project}/deployments/{deployment}/predict",
    summary="Predict with a project's deployment (A/B routed)",
    permission="predictions:predict",
    tag="predictions",
    body=m.PredictRequest,
    response=m.PredictResponse,
    errors=(409, 422),
)
def predict_in_project(
    rt: Runtime, principal: Principal, project: str, deployment: str, body: m.PredictRequest
) -> m.PredictResponse:
    return predictions.predict(rt, principal, deployment, body, project)


@api.route(
    "POST",
    "/deployments/{deployment}/feedback",
    summary="Record true outcomes of predictions",
    permission="predictions:predict",
    deferred=True,  # on the deployment's project, once the name is found (keys may be project-scoped)
    tag="predictions",
    body=m.FeedbackRequest,
    response=m.FeedbackResponse,
    errors=(409,),
)
def feedback(rt: Runtime, principal: Principal, deployment: str, body: m.FeedbackRequest) -> m.FeedbackResponse:
    """Outcomes feed live accuracy (the nebula_live_accuracy metric) and the A/B report."""
    return predictions.feedback(rt, principal, deployment, body)


@api.route(
    "POST",
    "/projects/{project}/deployments/{deployment}/feedback",
    summary="Record true outcomes of a project's deployment's predictions",
    permission="predictions:predict",
    tag="predictions",
    body=m.FeedbackRequest,
    response=m.FeedbackResponse,
    errors=(409,),
)
def feedback_in_project(
    rt: Runtime, principal: Principal, project: str, deployment: str, body: m.FeedbackRequest
) -> m.FeedbackResponse:
    return predictions.feedback(rt, principal, deployment, body, project)


@api.route(
    "GET",
    "/deployments/{deployment}/report",
    summary="A/B report: per-variant requests, accuracy, latency and a significance test",
    permission="deployments:read",
    deferred=True,  # on the deployment's project, once the name is found (keys may be project-scoped)
    tag="predictions",
    query=m.ReportQuery,
    response=m.AbReport,
    errors=(409,),
)
def report(rt: Runtime, principal: Principal, deployment: str, query: m.ReportQuery) -> m.AbReport:
    return predictions.ab_report(rt, principal, deployment, query)


@api.route(
    "GET",
    "/projects/{project}/deployments/{deployment}/report",
    summary="A/B report of a project's deployment",
    permission="deployments:read",
    tag="predictions",
    query=m.ReportQuery,
    response=m.AbReport,
    errors=(409,),
)
def report_in_project(
    rt: Runtime, principal: Principal, project: str, deployment: str, query: m.ReportQuery
) -> m.AbReport:
    return predictions.ab_report(rt, principal, deployment, query, project)


@api.route(
    "GET",
    "/deployments/{deployment}/drift",
    summary="Input drift per variant and feature over the deployment's window",
    permission="deployments:read",
    deferred=True,  # on the deployment's project, once the name is found (keys may be project-scoped)
    tag="predictions",
    response=m.DriftOut,
    errors=(409,),
)
def drift(rt: Runtime, principal: Principal, deployment: str) -> m.DriftOut:
    """Live inputs against the training profile saved at registration, by the deployment's drift method."""
    return predictions.drift(rt, principal, deployment)


@api.route(
    "GET",
    "/projects/{project}/deployments/{deployment}/drift",
    summary="Input drift of a project's deployment",
    permission="deployments:read",
    tag="predictions",
    response=m.DriftOut,
    errors=(409,),
)
def drift_in_project(rt: Runtime, principal: Principal, project: str, deployment: str) -> m.DriftOut:
    return predictions.drift(rt, principal, deployment, project)


# --- platform -------------------------------------------------------------------------------------------------------


@api.route(
    "GET",
    "/revisions",
    summary="Applied revisions, newest first",
    permission="revisions:read",
    tag="platform",
    query=m.PageQuery,
    response=m.RevisionPage,
)
def list_revisions(rt: Runtime, principal: Principal, query: m.PageQuery) -> m.RevisionPage:
    return s.revisions(rt, query)


@api.route(
    "GET",
    "/revisions/{revision}",
    summary="Get a revision",
    permission="revisions:read",
    tag="platform",
    response=m.Revision,
)
def get_revision(rt: Runtime, principal: Principal, revision: int) -> m.Revision:
    return s.get_revision(rt, revision)


@api.route(
    "GET",
    "/audit",
    summary="The audit log, newest first",
    permission="audit:read",
    tag="platform",
    query=m.AuditQuery,
    response=m.AuditPage,
)
def audit(rt: Runtime, principal: Principal, query: m.AuditQuery) -> m.AuditPage:
    return s.audit_log(rt, query)


@api.route(
    "GET",
    "/keys",
    summary="List API keys (never the keys themselves)",
    permission="keys:read",
    tag="platform",
    response=m.KeyList,
)
def list_keys(rt: Runtime, principal: Principal) -> m.KeyList:
    return m.KeyList(items=s.list_keys(rt.store))


@api.route(
    "POST",
    "/keys",
    summary="Issue an API key bound to a role",
    permission="keys:create",
    tag="platform",
    body=m.KeyCreate,
    response=m.NewKey,
    status=201,
)
def create_key(rt: Runtime, principal: Principal, body: m.KeyCreate) -> m.NewKey:
    """The key is in this response only; the server keeps its hash."""
    return s.create_key(
        rt.store,
        role=body.role,
        name=body.name,
        projects=body.projects,
        created_by=principal.actor,
        expires_in_days=body.expires_in_days,
        known_roles=rt.auth.access().roles,
        environment=rt.environment,
        issuer=principal,
        permissions=rt.auth.access().roles.get(body.role, ()),
    )


@api.route(
    "DELETE", "/keys/{key_id}", summary="Revoke an API key", permission="keys:delete", tag="platform", response=m.Key
)
def revoke_key(rt: Runtime, principal: Principal, key_id: str) -> m.Key:
    revoked = s.revoke_key(rt.store, key_id, principal.actor, rt.environment)
    rt.auth.cache.clear()  # this process stops trusting it now; others within key_cache_seconds
    return revoked


@api.route("GET", "/me", summary="Who the credentials belong to", permission=None, tag="platform", response=m.Me)
def me(rt: Runtime, principal: Principal) -> m.Me:
    return m.Me(actor=principal.actor, roles=principal.roles, environment=rt.environment)
