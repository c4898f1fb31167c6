"""check_rules: the language's semantic rules over a resolved spec.

Rules that one object's shape cannot express: names that must survive as
Kubernetes names, traffic that sums to 100 in every environment, algorithms
that fit their task, metrics and gates that fit the model, schedules that parse,
sources that fit their connection. Each rule is one function; RULES lists them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from croniter import croniter

from nebula_compile.diagnostics import Diagnostic, Path, Severity, did_you_mean, one_of
from nebula_compile.resolve.overlay import overlay, override_path
from nebula_compile.resolve.resolve import Resolved
from nebula_compile.source.sourcemap import SourceMap
from nebula_compile.spec import catalog
from nebula_compile.spec.models import FILE_TYPES, SQL_TYPES, Deployment, Model, Spec
from nebula_compile.spec.types import looks_like_secret

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_LABEL = 63
MAX_PREFIX = 40
_PREFIX = re.compile(r"^[a-z0-9][-a-z0-9]*$")
MAX_CRONJOB_NAME = 52
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:\s]*:[^/@\s]+@", re.IGNORECASE)


@dataclass
class Check:
    sourcemap: SourceMap
    resolved: Resolved
    diagnostics: list[Diagnostic]
    environment: str | None = None
    """Set when the spec is one environment's overlay view; paths then point into its overrides."""
    base: Spec | None = None
    raw: Mapping[str, Any] | None = None
    """The document as written, for checks over every value (secrets in URLs)."""

    @property
    def spec(self) -> Spec:
        return self.resolved.spec

    def translate(self, path: Path) -> Path:
        """A path into a project object, moved to the environment override that set that field."""
        if self.environment is None or self.base is None:
            return path
        return override_path(self.base, self.environment, path)

    def error(self, code: str, message: str, path: Path, hint: str | None = None, *, key: bool | None = None) -> None:
        path = self.translate(path)
        self.diagnostics.append(Diagnostic(code, message, self.sourcemap.span(path, key=key), hint, path=path))

    def warn(self, code: str, message: str, path: Path, hint: str | None = None) -> None:
        path = self.translate(path)
        self.diagnostics.append(Diagnostic(code, message, self.sourcemap.span(path), hint, Severity.WARNING, path=path))


def _models(spec: Spec) -> Iterator[tuple[str, str, Model, Path]]:
    for pname, project in spec.projects.items():
        for mname, model in project.models.items():
            yield pname, mname, model, ("projects", pname, "models", mname)


def _deployments(spec: Spec) -> Iterator[tuple[str, str, Deployment, Path]]:
    for pname, project in spec.projects.items():
        for dname, deployment in project.deployments.items():
            yield pname, dname, deployment, ("projects", pname, "deployments", dname)


def task_of(model: Model) -> str | None:
    if model.task is not None:
        return model.task
    tasks = catalog.ALGORITHM_TASKS[model.algorithm]
    return tasks[0] if len(tasks) == 1 else None


def metrics_of(model: Model) -> tuple[str, ...]:
    if model.metrics is not None:
        return tuple(model.metrics)
    task = task_of(model)
    return catalog.DEFAULT_METRICS[task] if task else ()


def namespace_prefix(spec: Spec, environment: str) -> str:
    prefix = spec.environments[environment].kubernetes.namespace_prefix
    return f"{environment}-" if prefix is None else prefix


# --- rules ---------------------------------------------------------------------------------------


def check_names(c: Check) -> None:
    """Every name becomes part of a Kubernetes name: DNS-1123 labels, short enough."""

    def label(name: str, kind: str, path: Path, limit: int = MAX_LABEL) -> None:
        if not DNS_LABEL.match(name):
            fixed = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "name"
            c.error(
                "NEB210",
                f"{kind} name '{name}' is not a valid Kubernetes name",
                path,
                f"use lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. '{fixed}'",
                key=True,
            )
        elif len(name) > limit:
            c.error("NEB210", f"{kind} name '{name}' is {len(name)} characters; the limit is {limit}", path, key=True)

    spec = c.spec
    prefixes: dict[str, str] = {}
    for ename, environment in spec.environments.items():
        label(ename, "environment", ("environments", ename))
        prefix = namespace_prefix(spec, ename)
        where: Path = ("environments", ename, "kubernetes", "namespace_prefix")
        if environment.kubernetes.namespace_prefix is None:
            where = ("environments", ename)
        if environment.kubernetes.namespace_prefix is None and not DNS_LABEL.match(ename):
            continue  # the environment's own name is reported above
        if prefix and not _PREFIX.match(prefix):
            c.error(
                "NEB210",
                f"namespace prefix '{prefix}' of environment '{ename}' cannot start a Kubernetes name",
                where,
                "use lowercase letters, digits and '-', starting with a letter or digit, e.g. 'prod-'",
            )
        elif len(prefix) > MAX_PREFIX:
            c.error(
                "NEB210",
                f"namespace prefix '{prefix}' of environment '{ename}' is {len(prefix)} characters; the limit is {MAX_PREFIX}",
                where,
                "set a shorter kubernetes.namespace_prefix",
            )
        else:
            prefixes[ename] = prefix
    for cname in spec.connections:
        label(cname, "connection", ("connections", cname))
    for pname, project in spec.projects.items():
        base: Path = ("projects", pname)
        label(pname, "project", base)
        if DNS_LABEL.match(pname) and prefixes:
            ename, prefix = max(prefixes.items(), key=lambda item: (len(item[1]), item[0]))
            if len(prefix) + len(pname) > MAX_LABEL:
                c.error(
                    "NEB210",
                    f"namespace '{prefix}{pname}' of project '{pname}' in environment '{ename}' is "
                    f"{len(prefix) + len(pname)} characters; the limit is {MAX_LABEL}",
                    base,
                    f"shorten the project name, or the namespace prefix '{prefix}' of environment '{ename}'",
                    key=True,
                )
        for section, kind in (
            ("datasets", "dataset"),
            ("preprocessing", "preprocessing step"),
            ("notebooks", "notebook"),
            ("models", "model"),
        ):
            for name in getattr(project, section):
                label(name, kind, (*base, section, name))
        for mname, model in project.models.items():
            retraining = model.retraining
            if retraining and (retraining.schedule or retraining.on_drift) and DNS_LABEL.match(mname):
                # the CronJobs are named retrain-<model> and drift-<model>; Kubernetes caps CronJob names at 52
                prefix = "retrain-" if retraining.schedule else "drift-"
                label(mname, "model", (*base, "models", mname), MAX_CRONJOB_NAME - len(prefix))
        for dname, deployment in project.deployments.items():
            path = (*base, "deployments", dname)
            label(dname, "deployment", path)
            if DNS_LABEL.match(dname) and not dname[0].isalpha():
                c.error(
                    "NEB210", f"deployment name '{dname}' must start with a letter (it names a Service)", path, key=True
                )
            for vname in deployment.variants:
                vpath = (*path, "variants", vname)
                label(vname, "variant", vpath)
                if DNS_LABEL.match(vname) and len(dname) + 1 + len(vname) > MAX_LABEL:
                    c.error(
                        "NEB210",
                        f"'{dname}-{vname}' (deployment and variant) is longer than {MAX_LABEL} characters",
                        vpath,
                        "shorten the deployment or the variant name",
                        key=True,
                    )


def _traffic(c: Check, deployment: Deployment, path: Path, where: str) -> None:
    variants = deployment.effective_variants()
    if len(variants) > 1 and any(v.traffic is None for v in variants.values()):
        missing = sorted(n for n, v in variants.items() if v.traffic is None)
        c.error(
            "NEB211",
            f"variants {one_of(missing)} of deployment{where} have no traffic share",
            (*path, "variants", missing[0]),
            "give each variant 'traffic:' in percent",
        )
        return
    total = sum(v.traffic if v.traffic is not None else 100 for v in variants.values())
    if variants and total != 100:
        shares = ", ".join(f"{n} {v.traffic}%" for n, v in variants.items())
        c.error(
            "NEB211",
            f"traffic of deployment{where} sums to {total}%, not 100% ({shares})",
            (*path, "variants"),
            "adjust the 'traffic:' percentages so they add up to 100",
            key=True,
        )


def check_deployments(c: Check) -> None:
    """One of model/variants; traffic sums to 100 in every environment; sane autoscaling."""
    spec = c.spec
    for _pname, dname, deployment, path in _deployments(spec):
        if deployment.model is not None and deployment.variants:
            c.error(
                "NEB211",
                f"deployment '{dname}' sets both 'model' and 'variants'",
                (*path, "model"),
                "use 'model' for one model, 'variants' for an A/B split",
                key=True,
            )
            continue
        if deployment.model is None and not deployment.variants:
            c.error(
                "NEB211",
                f"deployment '{dname}' serves nothing",
                path,
                "add 'model: NAME', or 'variants:' for an A/B split",
                key=True,
            )
            continue
        if deployment.version is not None and deployment.model is None:
            c.error(
                "NEB211",
                f"'version' of deployment '{dname}' belongs with 'model'",
                (*path, "version"),
                "set 'version' inside each variant",
                key=True,
            )
        _traffic(c, deployment, path, f" '{dname}'")
        _autoscaling(c, deployment, path, f"deployment '{dname}'")
        if deployment.target != "kubernetes":
            if deployment.autoscaling is not None:
                c.warn(
                    "NEB222",
                    f"autoscaling of deployment '{dname}' is ignored for target {deployment.target}",
                    (*path, "autoscaling"),
                    "serverless functions scale by themselves",
                )
        elif deployment.serverless is not None:
            c.warn(
                "NEB222",
                f"'serverless' settings of deployment '{dname}' apply only to serverless targets",
                (*path, "serverless"),
            )


def _autoscaling(c: Check, deployment: Deployment, path: Path, where: str) -> None:
    scaling = deployment.autoscaling
    if scaling is None:
        return
    if scaling.min > scaling.max:
        c.error(
            "NEB221",
            f"autoscaling of {where} has min {scaling.min} above max {scaling.max}",
            (*path, "autoscaling"),
            "make min <= max",
        )
    elif "replicas" in deployment.model_fields_set and not scaling.min <= deployment.replicas <= scaling.max:
        c.warn(
            "NEB221",
            f"replicas {deployment.replicas} of {where} lie outside autoscaling bounds {scaling.min}..{scaling.max}",
            (*path, "replicas"),
            "the autoscaler sets the replica count; remove 'replicas' or widen the bounds",
        )


def check_models(c: Check) -> None:
    """Algorithm fits task; params fit algorithm; metrics, gates and tuning fit the model."""
    for pname, mname, model, path in _models(c.spec):
        tasks = catalog.ALGORITHM_TASKS[model.algorithm]
        if model.task is None and len(tasks) > 1:
            c.error(
                "NEB213",
                f"model '{mname}' needs a task: {model.algorithm} does {' or '.join(tasks)}",
                path,
                f"add 'task: {tasks[0]}'",
                key=True,
            )
            continue
        task = task_of(model)
        if task not in tasks:
            fitting = sorted(a for a, t in catalog.ALGORITHM_TASKS.items() if task in t)
            c.error(
                "NEB213",
                f"algorithm '{model.algorithm}' does not do {task}",
                (*path, "algorithm"),
                f"for {task} use one of {one_of(fitting)}",
            )
            continue
        assert task is not None
        framework = model.framework or ("torch" if model.algorithm == "neural_network" else "sklearn")
        if framework == "torch" and model.algorithm != "neural_network":
            c.error(
                "NEB226",
                f"framework torch runs neural_network models only, not {model.algorithm}",
                (*path, "framework"),
                "remove 'framework' to use scikit-learn",
            )
        if task in catalog.SUPERVISED and model.target is None:
            c.error(
                "NEB218",
                f"model '{mname}' does {task} and needs a target column",
                path,
                "add 'target: COLUMN'",
                key=True,
            )
        elif task not in catalog.SUPERVISED and model.target is not None:
            c.warn("NEB218", f"model '{mname}' does {task}, which ignores 'target'", (*path, "target"))
        accepted = catalog.ALGORITHM_PARAMS[model.algorithm]
        for name in model.params.given():
            if name not in accepted:
                c.error(
                    "NEB216",
                    f"{model.algorithm} takes no parameter '{name}'",
                    (*path, "params", name),
                    did_you_mean(name, accepted) or f"it takes {one_of(accepted, 20)}",
                    key=True,
                )
        valid_metrics = catalog.TASK_METRICS[task]
        for i, metric in enumerate(model.metrics or ()):
            if metric not in valid_metrics:
                c.error(
                    "NEB214",
                    f"metric '{metric}' does not measure {task}",
                    (*path, "metrics", i),
                    f"{task} metrics: {one_of(valid_metrics)}",
                )
        declared = metrics_of(model)
        for i, gate in enumerate(model.gates):
            if gate.metric not in declared:
                hint = (
                    did_you_mean(gate.metric, declared) or f"declared metrics: {one_of(declared)}; add it to 'metrics:'"
                )
                c.error(
                    "NEB215",
                    f"gate '{gate}' names metric '{gate.metric}', which model '{mname}' does not compute",
                    (*path, "gates", i),
                    hint,
                )
        if model.resources.gpu and framework == "sklearn":
            c.warn(
                "NEB225",
                f"model '{mname}' asks for {model.resources.gpu} GPU(s), but scikit-learn does not use GPUs",
                (*path, "resources", "gpu"),
            )
        if model.tuning is not None:
            _tuning(c, model, path, task, accepted, declared)
        if model.retraining is not None and model.retraining.schedule is not None:
            _cron(c, model.retraining.schedule, (*path, "retraining", "schedule"))
        if model.retraining is not None and model.retraining.on_drift:
            watched = any(
                d.monitoring.drift is not None and any(v.model == mname for v in d.effective_variants().values())
                for d in c.spec.projects[pname].deployments.values()
            )
            if not watched:
                c.warn(
                    "NEB227",
                    f"model '{mname}' retrains on drift, but no deployment of it monitors drift",
                    (*path, "retraining", "on_drift"),
                    "add 'monitoring: {drift: {}}' to a deployment that serves it",
                )


def _tuning(
    c: Check, model: Model, path: Path, task: str, accepted: tuple[str, ...], declared: tuple[str, ...]
) -> None:
    tuning = model.tuning
    assert tuning is not None
    tpath = (*path, "tuning")
    if tuning.metric is not None and tuning.metric not in catalog.TASK_METRICS[task]:
        c.error(
            "NEB214",
            f"tuning metric '{tuning.metric}' does not measure {task}",
            (*tpath, "metric"),
            f"{task} metrics: {one_of(catalog.TASK_METRICS[task])}",
        )
    for name, dimension in tuning.space.items():
        dpath = (*tpath, "space", name)
        if name not in accepted:
            c.error(
                "NEB217",
                f"{model.algorithm} takes no parameter '{name}' to tune",
                dpath,
                did_you_mean(name, accepted) or f"it takes {one_of(accepted, 20)}",
                key=True,
            )
        if isinstance(dimension, list):
            if not dimension:
                c.error("NEB217", f"search space for '{name}' lists no values", dpath)
            continue
        if dimension.low >= dimension.high:
            c.error(
                "NEB217", f"search range for '{name}' is empty: low {dimension.low:g} >= high {dimension.high:g}", dpath
            )
        if dimension.log and dimension.low <= 0:
            c.error("NEB217", f"a log-scale range for '{name}' needs low > 0", dpath)
        if tuning.strategy == "grid" and dimension.step is None:
            c.error(
                "NEB217",
                f"grid search needs discrete values for '{name}'",
                dpath,
                "give a list of values, or 'step:' for the range",
            )


_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_CRON_NAMES = {
    **{
        m: i + 1
        for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
    },
    **{d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}
_CRON_PART = re.compile(r"^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?$")


def cron_error(expression: str) -> str | None:
    """Why a schedule is not one that Kubernetes CronJobs (standard five-field cron) accept."""
    fields = expression.split()
    if len(fields) != 5:
        return f"it has {len(fields)} fields, not 5"
    for text, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.lower().split(","):
            match = _CRON_PART.match(part)
            if not match:
                return f"the {name} field '{text}' is not valid (L, W, # and ? are not supported)"
            bounds = match.group(1)
            if match.group(2) is not None and not 0 < int(match.group(2)) <= high:
                return f"the step in the {name} field '{text}' is out of range"
            if bounds == "*":
                continue
            for value in bounds.split("-"):
                number = _CRON_NAMES.get(value) if not value.isdigit() else int(value)
                if number is None:
                    return f"'{value}' in the {name} field is not a number or a name (L, W, # and ? are not supported)"
                if not low <= number <= high:
                    return f"'{value}' is out of range for the {name} field ({low}-{high})"
    if not croniter.is_valid(expression):
        return "it does not parse"
    try:
        croniter(expression).get_next(float)
    except Exception:
        return "it never fires"
    if fields[2] != "*" and fields[3] != "*" and all(p.isdigit() for p in fields[2].split(",") + fields[3].split(",")):
        days = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
        if all(int(d) > days[int(m)] for d in fields[2].split(",") for m in fields[3].split(",")):
            return "that day never occurs in that month"
    return None


def _cron(c: Check, expression: str, path: Path) -> None:
    reason = cron_error(expression)
    if reason is not None:
        c.error(
            "NEB212",
            f"'{expression}' is not a cron schedule: {reason}",
            path,
            "write five fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * 1'",
        )


def check_datasets(c: Check) -> None:
    """Sources fit their connection; formats are known; column constraints make sense."""
    spec = c.spec
    for pname, project in spec.projects.items():
        for dname, dataset in project.datasets.items():
            path: Path = ("projects", pname, "datasets", dname)
            source = dataset.source
            keys = source.location_keys()
            if len(keys) != 1:
                c.error(
                    "NEB219",
                    f"source of dataset '{dname}' must say where rows come from once; it sets {one_of(keys) if keys else 'nothing'}",
                    (*path, "source"),
                    "set exactly one of table, query, path, collection, builtin, upload",
                )
                continue
            kind = keys[0]
            connection = spec.connections.get(source.connection) if source.connection else None
            ctype = connection.type if connection is not None else None
            if kind in ("table", "query"):
                if source.connection is None:
                    c.error(
                        "NEB219",
                        f"'{kind}' of dataset '{dname}' needs a connection",
                        (*path, "source"),
                        "add 'connection: NAME' naming a SQL connection",
                    )
                elif ctype is not None and ctype not in SQL_TYPES and not (ctype == "cassandra" and kind == "table"):
                    c.error(
                        "NEB219",
                        f"'{kind}' needs a SQL connection; '{source.connection}' is {ctype}",
                        (*path, "source", kind),
                        key=True,
                    )
            elif kind == "collection" and ctype not in ("mongodb", None):
                c.error(
                    "NEB219",
                    f"'collection' needs a mongodb connection; '{source.connection}' is {ctype}",
                    (*path, "source", kind),
                    key=True,
                )
            elif kind == "collection" and source.connection is None:
                c.error("NEB219", f"'collection' of dataset '{dname}' needs a mongodb connection", (*path, "source"))
            elif kind == "path":
                if ctype is not None and ctype not in FILE_TYPES:
                    c.error(
                        "NEB219",
                        f"'path' needs a file store connection (s3, azure_blob, gcs, local); '{source.connection}' is {ctype}",
                        (*path, "source", "path"),
                        key=True,
                    )
                suffix = (source.path or "").rsplit(".", 1)[-1].lower()
                if dataset.format is None and suffix not in ("csv", "json", "parquet", "jsonl"):
                    c.error(
                        "NEB219",
                        f"cannot tell the format of '{source.path}'",
                        (*path, "source", "path"),
                        "add 'format: csv', 'json' or 'parquet'",
                    )
            elif kind in ("builtin", "upload") and source.connection is not None:
                c.error("NEB219", f"'{kind}' datasets take no connection", (*path, "source", "connection"), key=True)
            if kind == "upload" and dataset.format is None:
                c.warn(
                    "NEB219",
                    f"dataset '{dname}' accepts uploads in any of csv, json, parquet",
                    path,
                    "set 'format:' to check uploads against one format",
                )
            for column_name, column in dataset.columns.items():
                cpath = (*path, "columns", column_name)
                numeric = column.type in catalog.NUMERIC_COLUMNS
                if (column.min is not None or column.max is not None) and not numeric:
                    c.error(
                        "NEB220",
                        f"column '{column_name}' of type {column.type} cannot have min/max",
                        cpath,
                        "min and max apply to integer and float columns",
                    )
                if column.min is not None and column.max is not None and column.min > column.max:
                    c.error("NEB220", f"column '{column_name}' has min {column.min:g} above max {column.max:g}", cpath)
                if column.values is not None and column.type not in ("category", "string", "integer"):
                    c.error(
                        "NEB220",
                        f"column '{column_name}' of type {column.type} cannot list values",
                        (*cpath, "values"),
                        "use type: category",
                    )
                if column.type == "category" and not column.values:
                    c.warn("NEB220", f"category column '{column_name}' lists no values, so any value passes", cpath)
            if any(col.pii for col in dataset.columns.values()) and dataset.classification not in ("pii", "restricted"):
                c.warn(
                    "NEB220",
                    f"dataset '{dname}' has PII columns but is classified '{dataset.classification}'",
                    path,
                    "set 'classification: pii'",
                )


def _strings(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    stack: list[tuple[Path, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            stack.extend(((*where, k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend(((*where, i), v) for i, v in enumerate(item))


def check_secrets(c: Check) -> None:
    """No credential is written in the clear: not in a URL, not in free-form options."""
    for path, text in sorted(_strings(c.raw or {}, ()), key=lambda item: [str(p) for p in item[0]]):
        if "://" in text and _URL_PASSWORD.match(text):
            c.error(
                "NEB204",
                f"'{path[-1]}' holds a URL with a password in it",
                path,
                "keep the password out of the URL: use a secret reference such as {env: DATABASE_URL} where the "
                "field takes one, or the connection's 'password: {secret: NAME}'",
            )
    for cname, connection in c.spec.connections.items():
        for key, value in getattr(connection, "options", {}).items():
            if isinstance(value, str | int | float) and not isinstance(value, bool) and looks_like_secret(key):
                c.error(
                    "NEB204",
                    f"option '{key}' of connection '{cname}' looks like a secret written as a literal",
                    ("connections", cname, "options", key),
                    f"write {key}: {{secret: NAME}} or {key}: {{env: VAR}}",
                )


RULES: tuple[Callable[[Check], None], ...] = (
    check_names,
    check_datasets,
    check_models,
    check_deployments,
    check_secrets,
)

ENVIRONMENT_RULES: tuple[Callable[[Check], None], ...] = (check_names, check_models, check_deployments)
"""Rules over what an environment can override; they run again on each environment's view."""


def check_rules(
    resolved: Resolved, sourcemap: SourceMap, raw: Mapping[str, Any] | None = None
) -> tuple[Diagnostic, ...]:
    """The semantic pass: every rule runs, all findings are reported together.

    Rules run on the spec as written, then the overridable ones on each
    environment's view; a finding that only a view has is reported once, with
    the environment named and the position of the override that caused it.
    """
    check = Check(sourcemap, resolved, [], raw=raw)
    for rule in RULES:
        rule(check)
    found = list(check.diagnostics)
    seen = {(d.code, d.message) for d in found}
    spec = resolved.spec
    for environment, settings in spec.environments.items():
        if not settings.overrides:
            continue
        view = Check(sourcemap, replace(resolved, spec=overlay(spec, environment)), [], environment, spec)
        for rule in ENVIRONMENT_RULES:
            rule(view)
        for diagnostic in view.diagnostics:
            if (diagnostic.code, diagnostic.message) in seen:
                continue
            seen.add((diagnostic.code, diagnostic.message))
            found.append(replace(diagnostic, message=f"{diagnostic.message} (in environment '{environment}')"))
    return tuple(found)
