"""resolve: Spec -> Resolved, every reference bound and every cycle found.

References are names: a model names its dataset, a deployment variant its
model, a binding its role. Each must resolve within its scope (a project's
objects, or the file's connections, roles and environments); an unknown name
gets the closest match as a hint. Preprocessing steps may chain, so their
inputs form a graph that must be acyclic. The columns each step makes
available are computed here too, so a model's target or a transform's column
is checked against the dataset's declared schema.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nebula_compile.diagnostics import Diagnostic, Path, did_you_mean, one_of
from nebula_compile.source.sourcemap import SourceMap
from nebula_compile.spec.models import Column, Preprocessing, Project, Spec

EXPRESSION_FUNCTIONS = frozenset({"log", "log1p", "exp", "sqrt", "abs", "clip", "min", "max", "round"})


@dataclass(frozen=True)
class Resolved:
    """A spec whose references hold, with what resolving learned about it."""

    spec: Spec
    roots: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """(project, dataset-or-step) -> the dataset at the root of its chain."""


class _Context:
    def __init__(self, sourcemap: SourceMap) -> None:
        self.sourcemap = sourcemap
        self.diagnostics: list[Diagnostic] = []

    def report(self, code: str, message: str, path: Path, hint: str | None = None, *, key: bool | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, self.sourcemap.span(path, key=key), hint, path=path))

    def reference(self, kind: str, name: str, known: Iterable[str], path: Path, scope: str = "") -> bool:
        pool = sorted(known)
        if name in pool:
            return True
        hint = did_you_mean(name, pool) or (
            f"known {kind}s: {one_of(pool)}" if pool else f"no {kind} is declared{scope}"
        )
        self.report("NEB301", f"unknown {kind} '{name}'{scope}", path, hint)
        return False


MAX_EXPRESSION = 1000
_ALLOWED_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
    ast.Load,
    ast.Name,
    ast.Call,
)


@functools.lru_cache(maxsize=4096)
def parse_expression(expression: str) -> tuple[frozenset[str] | None, str | None]:
    """Column names an arithmetic feature expression reads, or an error message.

    Numbers, column names, + - * / // % **, comparisons (which give 0 or 1),
    parentheses and calls of the functions in EXPRESSION_FUNCTIONS; nothing else,
    so an expression can be evaluated safely and the same way by every engine.
    """
    if len(expression) > MAX_EXPRESSION:
        return None, f"the expression is {len(expression):,} characters; the limit is {MAX_EXPRESSION:,}"
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as err:
        return None, f"cannot parse expression '{expression}': {err.msg}"
    except (RecursionError, MemoryError, ValueError):
        return None, "the expression is nested too deeply"
    names: set[str] = set()
    functions: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in EXPRESSION_FUNCTIONS or node.keywords:
                return None, f"only the functions {', '.join(sorted(EXPRESSION_FUNCTIONS))} may be called"
            functions.add(id(node.func))
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                return None, f"{node.value!r} is not a number; expressions compute numbers from columns"
        elif isinstance(node, ast.Name):
            if id(node) not in functions:
                names.add(node.id)
        elif not isinstance(node, _ALLOWED_NODES):
            return None, f"'{type(node).__name__}' is not allowed in a feature expression"
    called_as_column = names & EXPRESSION_FUNCTIONS
    if called_as_column:
        return None, f"'{sorted(called_as_column)[0]}' is a function; call it, e.g. {sorted(called_as_column)[0]}(x)"
    return frozenset(names), None


def _columns(columns: Mapping[str, Column]) -> dict[str, str] | None:
    return {name: column.type for name, column in columns.items()} if columns else None


def _resolve_preprocessing(
    ctx: _Context, name: str, project: Project, base: Path
) -> tuple[dict[str, str], dict[str, dict[str, str] | None]]:
    """Bind step inputs, find cycles, and compute the columns of each step."""
    roots: dict[str, str] = {name_: name_ for name_ in project.datasets}
    columns: dict[str, dict[str, str] | None] = {n: _columns(d.columns) for n, d in project.datasets.items()}
    steps = project.preprocessing
    known = set(project.datasets) | set(steps)
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(step: str, trail: tuple[str, ...]) -> None:
        if state.get(step) == 2:
            return
        if state.get(step) == 1:
            cycle = " -> ".join((*trail[trail.index(step) :], step))
            ctx.report(
                "NEB302",
                f"preprocessing steps form a cycle: {cycle}",
                (*base, "preprocessing", step, "input"),
                "a step's input must be a dataset or an earlier step",
            )
            return
        state[step] = 1
        source = steps[step].input
        if source == step:
            ctx.report("NEB302", f"preprocessing step '{step}' reads itself", (*base, "preprocessing", step, "input"))
        elif (
            ctx.reference(
                "dataset or preprocessing step",
                source,
                known,
                (*base, "preprocessing", step, "input"),
                f" in project '{name}'",
            )
            and source in steps
        ):
            visit(source, (*trail, step))
        state[step] = 2
        if source in roots and source != step:
            roots[step] = roots[source]
            columns[step] = _step_columns(ctx, steps[step], columns.get(source), (*base, "preprocessing", step))

    for step in steps:
        visit(step, ())
    return roots, columns


def _step_columns(
    ctx: _Context, step: Preprocessing, available: dict[str, str] | None, base: Path
) -> dict[str, str] | None:
    columns = dict(available) if available is not None else None

    def check(column: str, path: Path) -> None:
        if columns is not None and column not in columns:
            ctx.reference("column", column, columns, path, f" in the input of '{base[-1]}'")

    # a step runs clean (drop, then fill), then features, then transform
    for i, column in enumerate(step.clean.drop_columns):
        check(column, (*base, "clean", "drop_columns", i))
    if columns is not None:
        for column in step.clean.drop_columns:
            columns.pop(column, None)
    missing = step.clean.missing
    if missing and missing.columns:
        for i, column in enumerate(missing.columns):
            check(column, (*base, "clean", "missing", "columns", i))
    for feature, expression in step.features.items():
        names, error = parse_expression(expression)
        if error is not None:
            ctx.report(
                "NEB224",
                error,
                (*base, "features", feature),
                "use arithmetic over column names, e.g. 'charges / (tenure + 1)'",
            )
            continue
        for column in sorted(names or ()):
            check(column, (*base, "features", feature))
        if columns is not None:
            columns[feature] = "float"
    transform = step.transform
    for field_name in ("scale", "normalize", "log", "one_hot"):
        for i, column in enumerate(getattr(transform, field_name)):
            check(column, (*base, "transform", field_name, i))
    for column in transform.ordinal:
        check(column, (*base, "transform", "ordinal", column))
    return columns


def resolve(spec: Spec, sourcemap: SourceMap) -> tuple[Resolved, tuple[Diagnostic, ...]]:
    """The references pass. Reports every unresolved name at once."""
    ctx = _Context(sourcemap)
    roots: dict[tuple[str, str], str] = {}
    environments = set(spec.environments)

    for pname, project in spec.projects.items():
        base: Path = ("projects", pname)
        scope = f" in project '{pname}'"
        for dname, dataset in project.datasets.items():
            if dataset.source.connection is not None:
                ctx.reference(
                    "connection",
                    dataset.source.connection,
                    spec.connections,
                    (*base, "datasets", dname, "source", "connection"),
                )
        step_roots, step_columns = _resolve_preprocessing(ctx, pname, project, base)
        for data_name, root in step_roots.items():
            roots[(pname, data_name)] = root
        data_names = set(project.datasets) | set(project.preprocessing)
        for mname, model in project.models.items():
            path = (*base, "models", mname)
            if not ctx.reference("dataset or preprocessing step", model.dataset, data_names, (*path, "dataset"), scope):
                continue
            available = step_columns.get(model.dataset)
            if available is None:
                continue
            if model.target is not None and model.target not in available:
                ctx.reference("column", model.target, available, (*path, "target"), f" in '{model.dataset}'")
            for i, feature in enumerate(model.features or ()):
                ctx.reference("column", feature, available, (*path, "features", i), f" in '{model.dataset}'")
        for nname, notebook in project.notebooks.items():
            path = (*base, "notebooks", nname)
            for i, dataset_name in enumerate(notebook.datasets):
                ctx.reference("dataset", dataset_name, project.datasets, (*path, "datasets", i), scope)
            for i, env in enumerate(notebook.environments or ()):
                ctx.reference("environment", env, environments, (*path, "environments", i))
        for dname, deployment in project.deployments.items():
            path = (*base, "deployments", dname)
            if deployment.model is not None:
                ctx.reference("model", deployment.model, project.models, (*path, "model"), scope)
            for vname, variant in deployment.variants.items():
                ctx.reference("model", variant.model, project.models, (*path, "variants", vname, "model"), scope)
            for i, env in enumerate(deployment.environments or ()):
                ctx.reference("environment", env, environments, (*path, "environments", i))

    for ename, environment in spec.environments.items():
        for pname, override in environment.overrides.items():
            path = ("environments", ename, "overrides", pname)
            if not ctx.reference("project", pname, spec.projects, path):
                continue
            project = spec.projects[pname]
            scope = f" in project '{pname}'"
            for dname, deployment_override in override.deployments.items():
                if not ctx.reference("deployment", dname, project.deployments, (*path, "deployments", dname), scope):
                    continue
                targets = project.deployments[dname].environments
                if targets is not None and ename not in targets:
                    ctx.report(
                        "NEB303",
                        f"deployment '{dname}' is not deployed in environment '{ename}'",
                        (*path, "deployments", dname),
                        f"it is limited to {one_of(targets)}; remove this override or add '{ename}' there",
                    )
                    continue
                variants = project.deployments[dname].effective_variants()
                for vname in deployment_override.traffic or {}:
                    ctx.reference(
                        "variant",
                        vname,
                        variants,
                        (*path, "deployments", dname, "traffic", vname),
                        f" in deployment '{dname}'",
                    )
            for mname in override.models:
                ctx.reference("model", mname, project.models, (*path, "models", mname), scope)
            for nname in override.notebooks:
                if not ctx.reference("notebook", nname, project.notebooks, (*path, "notebooks", nname), scope):
                    continue
                targets = project.notebooks[nname].environments
                if targets is not None and ename not in targets:
                    ctx.report(
                        "NEB303",
                        f"notebook '{nname}' does not run in environment '{ename}'",
                        (*path, "notebooks", nname),
                        f"it is limited to {one_of(targets)}; remove this override or add '{ename}' there",
                    )

    roles = set(spec.roles)
    for i, binding in enumerate(spec.bindings):
        ctx.reference("role", binding.role, roles, ("bindings", i, "role"))
        for j, pname in enumerate(binding.projects or ()):
            ctx.reference("project", pname, spec.projects, ("bindings", i, "projects", j))
    for kname, api_key in spec.auth.api_keys.keys.items():
        ctx.reference("role", api_key.role, roles, ("auth", "api_keys", "keys", kname, "role"))
        for j, pname in enumerate(api_key.projects or ()):
            ctx.reference("project", pname, spec.projects, ("auth", "api_keys", "keys", kname, "projects", j))
    for provider in ("oidc", "ldap", "saml"):
        settings = getattr(spec.auth, provider)
        if settings is not None:
            for claim, role in settings.role_map.items():
                ctx.reference("role", role, roles, ("auth", provider, "role_map", claim))

    return Resolved(spec, roots), tuple(ctx.diagnostics)
