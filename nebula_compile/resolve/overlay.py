"""overlay: the spec as one environment sees it, with that environment's overrides applied.

Objects restricted to other environments (`environments: [prod]`) are left out.
"""

from __future__ import annotations

from typing import Any

from nebula_compile.spec.models import Autoscaling, Deployment, Model, Notebook, Project, Retraining, Spec


def _deployment(deployment: Deployment, override: Any) -> Deployment:
    changes: dict[str, Any] = {}
    if override.replicas is not None:
        changes["replicas"] = override.replicas
    if override.resources is not None:
        changes["resources"] = override.resources
    if override.autoscaling is not None:
        if deployment.autoscaling is None:
            current: dict[str, Any] = {"min": 1, "target_cpu": 70}
        else:
            current = deployment.autoscaling.model_dump()
        current.update({k: v for k, v in override.autoscaling.model_dump().items() if v is not None})
        current.setdefault("max", current["min"])
        changes["autoscaling"] = Autoscaling.model_construct(**current)
    if override.traffic:
        variants = deployment.effective_variants()
        changes["variants"] = {
            name: variant.model_copy(update={"traffic": override.traffic.get(name, variant.traffic)})
            for name, variant in variants.items()
        }
        changes["model"] = None
        changes["version"] = None
    return deployment.model_copy(update=changes)


def _model(model: Model, override: Any) -> Model:
    changes: dict[str, Any] = {}
    if override.resources is not None:
        changes["resources"] = override.resources
    if override.retraining is not None:
        current = model.retraining.model_dump() if model.retraining else {}
        current.update({k: v for k, v in override.retraining.model_dump().items() if v is not None})
        changes["retraining"] = Retraining.model_construct(**{"on_drift": False, "min_interval": None, **current})
    return model.model_copy(update=changes)


def _notebook(notebook: Notebook, override: Any) -> Notebook | None:
    if override.enabled is False:
        return None
    if override.resources is not None:
        return notebook.model_copy(update={"resources": override.resources})
    return notebook


def overlay(spec: Spec, environment: str) -> Spec:
    """The spec for `environment`; assumes references have been resolved."""
    env = spec.environments[environment]
    projects: dict[str, Project] = {}
    for pname, project in spec.projects.items():
        override = env.overrides.get(pname)
        deployments = {
            name: d
            for name, d in project.deployments.items()
            if d.environments is None or environment in d.environments
        }
        notebooks: dict[str, Notebook] = {
            name: n for name, n in project.notebooks.items() if n.environments is None or environment in n.environments
        }
        models = dict(project.models)
        if override is not None:
            for name, deployment_override in override.deployments.items():
                if name in deployments:
                    deployments[name] = _deployment(deployments[name], deployment_override)
            for name, model_override in override.models.items():
                if name in models:
                    models[name] = _model(models[name], model_override)
            for name, notebook_override in override.notebooks.items():
                if name in notebooks:
                    changed = _notebook(notebooks[name], notebook_override)
                    if changed is None:
                        del notebooks[name]
                    else:
                        notebooks[name] = changed
        projects[pname] = project.model_copy(
            update={"deployments": deployments, "notebooks": notebooks, "models": models}
        )
    return spec.model_copy(update={"projects": projects})


# override field -> the field of the base object it changes
_OVERRIDE_FIELDS = {"variants": "traffic"}


def override_path(spec: Spec, environment: str, path: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """A path into a project object, moved to the override of `environment` that set that field.

    A problem found in an environment's view then points at the line that caused it.
    """
    if len(path) < 5 or path[0] != "projects" or environment not in spec.environments:
        return path
    _, project, section, name, field, *rest = path
    override = spec.environments[environment].overrides.get(str(project))
    target = getattr(override, str(section), {}).get(name) if override is not None else None
    field = _OVERRIDE_FIELDS.get(str(field), field)
    if target is None or field not in target.model_fields_set:
        return path
    return ("environments", environment, "overrides", project, section, name, field, *rest)
