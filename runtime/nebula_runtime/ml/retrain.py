"""Retraining on drift: a model retrains when a deployment serving it has drifted.

`python -m nebula_runtime.jobs retrain --model M --trigger drift` (the compiled
drift-check CronJob) asks this module first. For each deployment of the project
that serves M with drift detection on, the logged predictions of the deployment's
window are compared with the reference profile of the version each variant serves,
by the deployment's method and threshold (the same comparison the runtime's drift
endpoint makes). Only a drifted deployment starts a run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from nebula_compile.spec.types import duration_seconds
from nebula_compile.state.schema import ModelAlias, ModelVersion, Prediction
from nebula_runtime.ml import drift as driftlib
from nebula_runtime.ml.workspace import Workspace

MAX_ROWS = 20_000


def _version(ws: Workspace, project: str, model: str, asked: Any) -> ModelVersion | None:
    with ws.store.sessions() as session:
        number: int | None
        if isinstance(asked, int) or str(asked).isdigit():
            number = int(asked)
        elif asked == "latest":
            number = session.scalar(
                select(ModelVersion.version)
                .where(
                    ModelVersion.environment == ws.environment,
                    ModelVersion.project == project,
                    ModelVersion.model == model,
                )
                .order_by(ModelVersion.version.desc())
                .limit(1)
            )
        else:
            alias = session.get(ModelAlias, (ws.environment, project, model, str(asked)))
            number = alias.version if alias else None
        if number is None:
            return None
        return session.scalar(
            select(ModelVersion).where(
                ModelVersion.environment == ws.environment,
                ModelVersion.project == project,
                ModelVersion.model == model,
                ModelVersion.version == number,
            )
        )


def drifted(ws: Workspace, project: str, model: str) -> list[dict[str, Any]]:
    """The drifted (deployment, variant) pairs that serve `model`, with their drifted features."""
    found: list[dict[str, Any]] = []
    for name in ws.names("deployment", project):
        spec = ws.spec("deployment", project, name)
        settings = (spec.get("monitoring") or {}).get("drift")
        if not settings:
            continue
        since = datetime.now(UTC) - timedelta(seconds=duration_seconds(str(settings.get("window", "1h"))))
        for variant, served in (spec.get("variants") or {}).items():
            if served.get("model") != model:
                continue
            version = _version(ws, project, model, served.get("version", "champion"))
            if version is None or not ws.artifacts.exists(f"{version.artifact}/profile.json"):
                continue
            profile = json.loads(ws.artifacts.read(f"{version.artifact}/profile.json"))
            with ws.store.sessions() as session:
                rows = list(
                    session.scalars(
                        select(Prediction.inputs)
                        .where(
                            Prediction.environment == ws.environment,
                            Prediction.project == project,
                            Prediction.deployment == name,
                            Prediction.variant == variant,
                            Prediction.version == version.version,
                            Prediction.at >= since,
                        )
                        .order_by(Prediction.at.desc())
                        .limit(MAX_ROWS)
                    )
                )
            columns = {feature: [row.get(feature) for row in rows] for feature in profile["features"]}
            report = driftlib.compare(
                profile,
                columns,
                str(settings.get("method", "psi")),
                float(settings.get("threshold", 0.2)),
                settings.get("features") or None,
                int(settings.get("min_samples", 100)),
            )
            if report.drifted:
                found.append(
                    {
                        "deployment": name,
                        "variant": variant,
                        "version": version.version,
                        "features": report.drifted_features,
                        "samples": report.samples,
                    }
                )
    return found


def awaiting_promotion(ws: Workspace, project: str, model: str) -> int | None:
    """A registered version newer than every version the deployments serve: a retraining that waits for a person
    (production aliases do not move on their own), so drift must not start yet another one."""
    served: list[int] = []
    for name in ws.names("deployment", project):
        for variant in (ws.spec("deployment", project, name).get("variants") or {}).values():
            if variant.get("model") == model:
                version = _version(ws, project, model, variant.get("version", "champion"))
                if version is not None:
                    served.append(version.version)
    if not served:
        return None
    with ws.store.sessions() as session:
        newest = session.scalar(
            select(ModelVersion.version)
            .where(
                ModelVersion.environment == ws.environment, ModelVersion.project == project, ModelVersion.model == model
            )
            .order_by(ModelVersion.version.desc())
            .limit(1)
        )
    return int(newest) if newest is not None and newest > max(served) else None
