"""GraphQL over the same services as REST, with batched loading and depth and cost limits.

Batching: a list resolver hands every object it returns the keys of all its siblings;
the first child field resolved on any of them loads that field for all siblings in one
service call (one SQL query per level), and the rest are answered from the per-request
cache. So `projects { datasets { versions } models { versions { run } } }` costs a fixed
number of queries however many rows come back.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import graphene
from flask import Response, g, request
from graphene.types.generic import GenericScalar
from graphene.validation import depth_limit_validator
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    execute,
    parse,
    specified_rules,
    validate,
)

from nebula_runtime import models as m
from nebula_runtime import services as s
from nebula_runtime.auth import Principal, authorize
from nebula_runtime.errors import ApiError
from nebula_runtime.services import Runtime

log = logging.getLogger("nebula.runtime.graphql")

DEFAULT_LIST_SIZE = 50
"""Items a list field returns when its query gives no `first`."""
ASSUMED_LIST_SIZE = 10
"""What the cost limit assumes a list without `first` holds (most projects have few datasets or models)."""


class Node:
    """A service result plus the keys of its siblings, for batched child loads."""

    def __init__(self, value: Any, siblings: Sequence[Any]) -> None:
        self.value = value
        self.siblings = siblings

    def __getattr__(self, name: str) -> Any:
        return getattr(self.value, name)


def nodes(values: Sequence[Any], key: Callable[[Any], Any]) -> list[Node]:
    siblings = [key(v) for v in values]
    return [Node(v, siblings) for v in values]


class Context:
    def __init__(self, runtime: Runtime, principal: Principal) -> None:
        self.runtime = runtime
        self.principal = principal
        self.cache: dict[tuple[str, Any], Any] = {}

    def load(self, kind: str, key: Any, siblings: Sequence[Any], batch: Callable[[list[Any]], dict[Any, Any]]) -> Any:
        if (kind, key) not in self.cache:
            wanted = [k for k in dict.fromkeys(siblings) if (kind, k) not in self.cache] or [key]
            if key not in wanted:
                wanted.append(key)
            found = batch(wanted)
            for k in wanted:
                self.cache[(kind, k)] = found.get(k)
        return self.cache[(kind, key)]

    def allow(self, permission: str, project: str | None) -> None:
        authorize(self.principal, permission, project)


def _ctx(info: graphene.ResolveInfo) -> Context:
    context: Context = info.context
    return context


# --- types --------------------------------------------------------------------------------------------


class CurvePoint(graphene.ObjectType):
    step = graphene.Int(required=True)
    value = graphene.Float(required=True)


class Run(graphene.ObjectType):
    id = graphene.ID(required=True)
    model = graphene.String(required=True)
    status = graphene.String(required=True)
    params = GenericScalar()
    metrics = GenericScalar()
    curves = GenericScalar(description="Per-epoch values by name, as [{step, value}].")
    data_id = graphene.String()
    commit = graphene.String()
    error = graphene.String()
    started_at = graphene.DateTime(required=True)
    finished_at = graphene.DateTime()
    duration_seconds = graphene.Float()

    @staticmethod
    def resolve_curves(root: Node, info: graphene.ResolveInfo) -> Any:
        return {k: [p.model_dump() for p in v] for k, v in root.curves.items()}


class DataVersion(graphene.ObjectType):
    data_id = graphene.ID(required=True)
    number = graphene.Int(required=True)
    dataset = graphene.String(required=True)
    filename = graphene.String(required=True)
    format = graphene.String()
    size = graphene.Float(required=True, description="Bytes.")
    sha256 = graphene.String(required=True)
    md5 = graphene.String(required=True)
    rows = graphene.Float()
    columns = GenericScalar()
    lineage = GenericScalar()
    created_at = graphene.DateTime(required=True)
    created_by = graphene.String(required=True)


class ModelVersion(graphene.ObjectType):
    version = graphene.Int(required=True)
    model = graphene.String(required=True)
    metrics = GenericScalar()
    params = GenericScalar()
    artifact = graphene.String(required=True)
    aliases = graphene.List(graphene.NonNull(graphene.String), required=True)
    commit = graphene.String()
    created_at = graphene.DateTime(required=True)
    run = graphene.Field(Run)
    data_version = graphene.Field(DataVersion)

    @staticmethod
    def resolve_run(root: Node, info: graphene.ResolveInfo) -> Node | None:
        if root.run_id is None:
            return None
        ctx = _ctx(info)
        ctx.allow("runs:read", root.project)
        ids = [k for k in root.siblings if k]
        found = ctx.load("run", root.run_id, ids, lambda keys: s.runs_by_id(ctx.runtime, keys))
        return Node(found, ids) if found else None

    @staticmethod
    def resolve_data_version(root: Node, info: graphene.ResolveInfo) -> Node | None:
        if root.data_id is None:
            return None
        ctx = _ctx(info)
        ctx.allow("datasets:read", root.project)
        siblings = [k for k in getattr(root, "data_siblings", [root.data_id]) if k]
        found = ctx.load("data", root.data_id, siblings, lambda keys: s.versions_by_id(ctx.runtime, keys))
        return Node(found, [root.data_id]) if found else None


def _version_nodes(versions: list[m.ModelVersion], all_versions: list[m.ModelVersion]) -> list[Node]:
    runs = [v.run_id for v in all_versions]
    data = [v.data_id for v in all_versions]
    result = []
    for v in versions:
        node = Node(v, runs)
        node.__dict__["data_siblings"] = data
        result.append(node)
    return result


class Dataset(graphene.ObjectType):
    name = graphene.String(required=True)
    format = graphene.String()
    classification = graphene.String(required=True)
    uploads = graphene.Boolean(required=True)
    managed = graphene.Boolean(required=True)
    columns = GenericScalar()
    latest = graphene.Int()
    versions = graphene.List(graphene.NonNull(DataVersion), required=True, first=graphene.Int())

    @staticmethod
    def resolve_columns(root: Node, info: graphene.ResolveInfo) -> Any:
        return [c.model_dump() for c in root.columns]

    @staticmethod
    def resolve_versions(root: Node, info: graphene.ResolveInfo, first: int | None = None) -> list[Node]:
        ctx = _ctx(info)
        key = (root.project, root.name)
        found = ctx.load("versions", key, root.siblings, lambda keys: s.versions_for(ctx.runtime, keys))
        items = found or []
        return nodes(items[: bounded(first)], lambda v: v.data_id)


class Model(graphene.ObjectType):
    name = graphene.String(required=True)
    task = graphene.String()
    algorithm = graphene.String()
    dataset = graphene.String()
    metric = graphene.String()
    aliases = GenericScalar(description="Alias -> version number.")
    latest = graphene.Int()
    managed = graphene.Boolean(required=True)
    versions = graphene.List(graphene.NonNull(ModelVersion), required=True, first=graphene.Int())

    @staticmethod
    def resolve_versions(root: Node, info: graphene.ResolveInfo, first: int | None = None) -> list[Node]:
        ctx = _ctx(info)
        key = (root.project, root.name)
        found = ctx.load("model_versions", key, root.siblings, lambda keys: s.model_versions_for(ctx.runtime, keys))
        items = found or []
        every = [v for k in root.siblings for v in (ctx.cache.get(("model_versions", k)) or [])]
        return _version_nodes(items[: bounded(first)], every)


class Variant(graphene.ObjectType):
    name = graphene.String(required=True)
    model = graphene.String(required=True)
    version = graphene.String(required=True, description="As nebula.yaml asks: a number or an alias.")
    resolved_version = graphene.Int()
    traffic = graphene.Int(required=True)
    model_version = graphene.Field(ModelVersion)

    @staticmethod
    def resolve_version(root: Node, info: graphene.ResolveInfo) -> str:
        return str(root.version)

    @staticmethod
    def resolve_model_version(root: Node, info: graphene.ResolveInfo) -> Node | None:
        if root.resolved_version is None:
            return None
        ctx = _ctx(info)
        project = root.__dict__["project"]
        ctx.allow("models:read", project)
        key = (project, root.model)
        found = ctx.load("model_versions", key, root.siblings, lambda keys: s.model_versions_for(ctx.runtime, keys))
        for version in found or []:
            if version.version == root.resolved_version:
                return _version_nodes([version], [version])[0]
        return None


class Deployment(graphene.ObjectType):
    name = graphene.String(required=True)
    target = graphene.String(required=True)
    namespace = graphene.String()
    replicas = graphene.Int(required=True)
    status = graphene.String(required=True)
    managed = graphene.Boolean(required=True)
    variants = graphene.List(graphene.NonNull(Variant), required=True)

    @staticmethod
    def resolve_variants(root: Node, info: graphene.ResolveInfo) -> list[Node]:
        keys = [(root.project, v.model) for v in root.variants]
        result = []
        for variant in root.variants:
            node = Node(variant, keys)
            node.__dict__["project"] = root.project
            result.append(node)
        return result


class Project(graphene.ObjectType):
    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    description = graphene.String(required=True)
    managed = graphene.Boolean(required=True)
    namespace = graphene.String()
    labels = GenericScalar()
    owners = graphene.List(graphene.NonNull(graphene.String), required=True)
    datasets = graphene.List(graphene.NonNull(Dataset), required=True)
    models = graphene.List(graphene.NonNull(Model), required=True)
    deployments = graphene.List(graphene.NonNull(Deployment), required=True)
    runs = graphene.List(graphene.NonNull(Run), required=True, model=graphene.String(), first=graphene.Int())

    @staticmethod
    def _children(
        info: graphene.ResolveInfo,
        root: Node,
        kind: str,
        permission: str,
        batch: Callable[..., Any],
        key: Callable[[Any], Any],
    ) -> list[Node]:
        ctx = _ctx(info)
        ctx.allow(permission, root.id)
        found = ctx.load(kind, root.id, root.siblings, lambda keys: batch(ctx.runtime, keys))
        every = [item for k in root.siblings for item in (ctx.cache.get((kind, k)) or [])]
        siblings = [key(item) for item in every]
        return [Node(item, siblings) for item in found or []]

    @staticmethod
    def resolve_datasets(root: Node, info: graphene.ResolveInfo) -> list[Node]:
        return Project._children(info, root, "datasets", "datasets:read", s.datasets_for, lambda d: (d.project, d.name))

    @staticmethod
    def resolve_models(root: Node, info: graphene.ResolveInfo) -> list[Node]:
        return Project._children(info, root, "models", "models:read", s.models_for, lambda d: (d.project, d.name))

    @staticmethod
    def resolve_deployments(root: Node, info: graphene.ResolveInfo) -> list[Node]:
        return Project._children(
            info, root, "deployments", "deployments:read", s.deployments_for, lambda d: (d.project, d.name)
        )

    @staticmethod
    def resolve_runs(
        root: Node, info: graphene.ResolveInfo, model: str | None = None, first: int | None = None
    ) -> list[Node]:
        ctx = _ctx(info)
        ctx.allow("runs:read", root.id)
        limit = max(1, bounded(first))
        keys = [(p, model) for p in root.siblings]
        found = ctx.load(
            f"runs:{model}:{limit}", (root.id, model), keys, lambda ks: s.runs_for(ctx.runtime, ks, limit=limit)
        )
        return nodes(found or [], lambda r: r.id)


class Revision(graphene.ObjectType):
    id = graphene.Int(required=True)
    commit = graphene.String()
    author = graphene.String()
    applied_by = graphene.String(required=True)
    applied_at = graphene.DateTime(required=True)
    manifest_hash = graphene.String(required=True)
    created = graphene.Int(required=True)
    updated = graphene.Int(required=True)
    deleted = graphene.Int(required=True)


class Me(graphene.ObjectType):
    actor = graphene.String(required=True)
    roles = graphene.List(graphene.NonNull(graphene.String), required=True)
    environment = graphene.String(required=True)


class Query(graphene.ObjectType):
    project = graphene.Field(Project, id=graphene.ID(required=True))
    projects = graphene.List(
        graphene.NonNull(Project),
        required=True,
        first=graphene.Int(),
        after=graphene.String(),
        search=graphene.String(),
        managed=graphene.Boolean(),
    )
    data_version = graphene.Field(DataVersion, project=graphene.ID(required=True), data_id=graphene.ID(required=True))
    run = graphene.Field(Run, project=graphene.ID(required=True), id=graphene.ID(required=True))
    revisions = graphene.List(graphene.NonNull(Revision), required=True, first=graphene.Int())
    me = graphene.Field(Me, required=True)

    @staticmethod
    def resolve_project(root: None, info: graphene.ResolveInfo, id: str) -> Node | None:
        ctx = _ctx(info)
        ctx.allow("projects:read", id)
        found = s.projects_by_id(ctx.runtime, [id]).get(id)
        return Node(found, [id]) if found else None

    @staticmethod
    def resolve_projects(
        root: None,
        info: graphene.ResolveInfo,
        first: int | None = None,
        after: str | None = None,
        search: str | None = None,
        managed: bool | None = None,
    ) -> list[Node]:
        ctx = _ctx(info)
        ctx.allow("projects:read", None)
        query = m.ProjectQuery(limit=max(1, bounded(first)), after=after, q=search, managed=managed)
        page = s.list_projects(ctx.runtime, ctx.principal, query)
        return nodes(page.items, lambda p: p.id)

    @staticmethod
    def resolve_data_version(root: None, info: graphene.ResolveInfo, project: str, data_id: str) -> Node | None:
        ctx = _ctx(info)
        ctx.allow("datasets:read", project)
        return Node(s.get_data(ctx.runtime, project, data_id), [data_id])

    @staticmethod
    def resolve_run(root: None, info: graphene.ResolveInfo, project: str, id: str) -> Node:
        ctx = _ctx(info)
        ctx.allow("runs:read", project)
        return Node(s.get_run(ctx.runtime, project, id), [id])

    @staticmethod
    def resolve_revisions(root: None, info: graphene.ResolveInfo, first: int | None = None) -> list[m.Revision]:
        ctx = _ctx(info)
        ctx.allow("revisions:read", None)
        return s.revisions(ctx.runtime, m.PageQuery(limit=max(1, bounded(first)))).items

    @staticmethod
    def resolve_me(root: None, info: graphene.ResolveInfo) -> m.Me:
        ctx = _ctx(info)
        return m.Me(actor=ctx.principal.actor, roles=ctx.principal.roles, environment=ctx.runtime.environment)


class CreateProject(graphene.Mutation):
    class Arguments:
        name = graphene.String(required=True)
        description = graphene.String()

    Output = Project

    @staticmethod
    def mutate(root: None, info: graphene.ResolveInfo, name: str, description: str = "") -> Node:
        ctx = _ctx(info)
        ctx.allow("projects:create", None)
        body = _request(m.ProjectCreate, name=name, description=description)
        project = s.create_project(ctx.runtime, ctx.principal, body)
        return Node(project, [project.id])


class UpdateProject(graphene.Mutation):
    class Arguments:
        id = graphene.ID(required=True)
        description = graphene.String()
        labels = GenericScalar()

    Output = Project

    @staticmethod
    def mutate(
        root: None, info: graphene.ResolveInfo, id: str, description: str | None = None, labels: Any = None
    ) -> Node:
        ctx = _ctx(info)
        ctx.allow("projects:update", id)
        body = _request(m.ProjectUpdate, description=description, labels=labels)
        project = s.update_project(ctx.runtime, ctx.principal, id, body)
        return Node(project, [project.id])


class DeleteProject(graphene.Mutation):
    class Arguments:
        id = graphene.ID(required=True)

    ok = graphene.Boolean(required=True)

    @staticmethod
    def mutate(root: None, info: graphene.ResolveInfo, id: str) -> DeleteProject:
        ctx = _ctx(info)
        ctx.allow("projects:delete", id)
        s.delete_project(ctx.runtime, ctx.principal, id)
        return DeleteProject(ok=True)


class Alias(graphene.ObjectType):
    alias = graphene.String(required=True)
    version = graphene.Int(required=True)
    model = graphene.String(required=True)
    updated_by = graphene.String(required=True)


class SetModelAlias(graphene.Mutation):
    class Arguments:
        project = graphene.ID(required=True)
        model = graphene.String(required=True)
        alias = graphene.String(required=True)
        version = graphene.Int(required=True)

    Output = Alias

    @staticmethod
    def mutate(root: None, info: graphene.ResolveInfo, project: str, model: str, alias: str, version: int) -> m.Alias:
        ctx = _ctx(info)
        ctx.allow("models:update", project)
        body = _request(m.AliasSet, version=version)
        return s.set_alias(ctx.runtime, ctx.principal, project, model, alias, body.version)


class Mutation(graphene.ObjectType):
    create_project = CreateProject.Field()
    update_project = UpdateProject.Field()
    delete_project = DeleteProject.Field()
    set_model_alias = SetModelAlias.Field()


def _request(model: type[Any], **values: Any) -> Any:
    from pydantic import ValidationError

    from nebula_runtime.http import pydantic_details

    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        raise ApiError(422, "the arguments do not match the schema", pydantic_details(err)) from None


schema = graphene.Schema(query=Query, mutation=Mutation, auto_camelcase=True)


# --- limits and the endpoint --------------------------------------------------------------------------------


MAX_FIRST = 500


def query_cost(document: DocumentNode, variables: dict[str, Any] | None, operation_name: str | None) -> int:
    """The most fields a query can resolve: each list field multiplies what is under it by its
    `first` (a literal or a variable; 50 when absent) or, for lists without `first`, by 10.
    Fragments count where they are spread."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        operations = [d for d in operations if d.name is not None and d.name.value == operation_name]
    graphql_schema = schema.graphql_schema

    def size(node: FieldNode, definition: Any) -> int:
        if "first" not in definition.args:
            return ASSUMED_LIST_SIZE
        for argument in node.arguments or ():
            if argument.name.value == "first":
                value = argument.value
                if isinstance(value, VariableNode):
                    given = (variables or {}).get(value.name.value)
                    return max(1, min(int(given), MAX_FIRST)) if isinstance(given, int) else DEFAULT_LIST_SIZE
                if isinstance(value, IntValueNode):
                    return max(1, min(int(value.value), MAX_FIRST))
        return DEFAULT_LIST_SIZE

    def walk(selection_set: Any, parent: Any, multiplier: int, seen: frozenset[str]) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                definition = parent.fields.get(selection.name.value) if hasattr(parent, "fields") else None
                total += multiplier
                if definition is None or selection.selection_set is None:
                    continue
                kind, is_list = definition.type, False
                while isinstance(kind, GraphQLNonNull | GraphQLList):
                    is_list = is_list or isinstance(kind, GraphQLList)
                    kind = kind.of_type
                inner = multiplier * (size(selection, definition) if is_list else 1)
                total += walk(selection.selection_set, kind, inner, seen)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = graphql_schema.get_type(condition.name.value) if condition else parent
                total += walk(selection.selection_set, target, multiplier, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in seen:
                    target = graphql_schema.get_type(fragment.type_condition.name.value)
                    total += walk(fragment.selection_set, target, multiplier, seen | {name})
        return total

    cost = 0
    for operation in operations:
        mutation = operation.operation == OperationType.MUTATION
        root = graphql_schema.mutation_type if mutation else graphql_schema.query_type
        cost += walk(operation.selection_set, root, 1, frozenset())
    return cost


def bounded(first: int | None, default: int = DEFAULT_LIST_SIZE) -> int:
    """How many items a list field returns: `first` within 0..500, or the default."""
    if first is None:
        return default
    if first < 0:
        raise ApiError(400, "`first` cannot be negative")
    return min(first, MAX_FIRST)


def _error(err: GraphQLError) -> dict[str, Any]:
    data: dict[str, Any] = dict(err.formatted)
    original = err.original_error
    if isinstance(original, ApiError):
        data["message"] = original.message
        data["extensions"] = {"code": original.code, "status": original.status, "details": original.details}
    elif original is not None:
        log.error(
            "graphql resolver failed",
            exc_info=(type(original), original, original.__traceback__),
            extra={"request_id": g.get("request_id"), "path": data.get("path")},
        )
        data["message"] = "internal error; the request id is in the X-Request-ID header and the server log"
        data["extensions"] = {"code": "internal", "status": 500}
    return data


@functools.lru_cache(maxsize=1024)
def prepare(query: str, max_depth: int) -> tuple[DocumentNode | None, list[dict[str, Any]]]:
    """Parse and validate once per distinct query text: clients send the same few queries again and again,
    and validation costs several times what running a small query does."""
    try:
        document = parse(query, max_tokens=20_000)
    except GraphQLError as err:
        return None, [dict(err.formatted)]
    rules = [*specified_rules, depth_limit_validator(max_depth=max_depth)]
    problems = validate(schema.graphql_schema, document, rules)
    if problems:
        return None, [dict(e.formatted) for e in problems]
    return document, []


def graphql_view() -> Response:
    import orjson

    runtime: Runtime = g.runtime
    principal = runtime.auth.authenticate(request.headers)
    g.principal = principal
    if request.method == "GET":
        payload: Any = {"query": request.args.get("query"), "operationName": request.args.get("operationName")}
        if request.args.get("variables"):
            try:
                payload["variables"] = orjson.loads(request.args["variables"])
            except orjson.JSONDecodeError:
                raise ApiError(400, "`variables` is not JSON") from None
    else:
        if request.mimetype != "application/json":
            raise ApiError(415, 'send GraphQL as JSON: {"query": ..., "variables": ...}')
        try:
            payload = orjson.loads(request.get_data(cache=False) or b"null")
        except orjson.JSONDecodeError:
            raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        raise ApiError(400, 'no GraphQL query: send {"query": "{ ... }"}')
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise ApiError(400, "`variables` must be a JSON object")
    settings = runtime.settings
    document, problems = prepare(payload["query"], settings.graphql_max_depth)
    if problems:
        return _respond({"errors": problems}, 400)
    assert document is not None
    cost = query_cost(document, variables, payload.get("operationName"))
    if cost > settings.graphql_max_cost:
        message = (
            f"the query may resolve {cost} fields; the limit is {settings.graphql_max_cost} "
            "(ask for fewer, or pass smaller `first`)"
        )
        return _respond({"errors": [{"message": message, "extensions": {"code": "too_costly", "cost": cost}}]}, 400)
    if request.method == "GET" and any(
        isinstance(d, OperationDefinitionNode) and d.operation == OperationType.MUTATION for d in document.definitions
    ):
        raise ApiError(405, "mutations are POST only")
    result = execute(
        schema.graphql_schema,
        document,
        context_value=Context(runtime, principal),
        variable_values=variables,
        operation_name=payload.get("operationName"),
    )
    assert isinstance(result, ExecutionResult)
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [_error(e) for e in result.errors]
    return _respond(body, 200)


def _respond(body: dict[str, Any], status: int) -> Response:
    import orjson

    return Response(orjson.dumps(body, default=_default), status=status, mimetype="application/json")


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(type(value).__name__)
