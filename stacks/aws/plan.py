"""What the AWS stack builds for one environment, read from its compiled output: plain data, no Pulumi.

Kept apart from the resources so the sizing rules (a production environment gets
redundancy, a dev one the smallest shape that works) are readable in one place and
testable without an engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


class PlanError(ValueError):
    """The compiled environment cannot be built on AWS as it is; the message says what to change."""


@dataclass(frozen=True)
class Sizes:
    """The shapes that differ between a production environment and the others."""

    nat_gateways: int
    node_instance: str
    node_min: int
    node_desired: int
    node_max: int
    db_instance: str
    db_storage_gb: int
    db_multi_az: bool
    db_backup_days: int
    deletion_protection: bool
    log_retention_days: int
    kms_deletion_days: int


PRODUCTION = Sizes(
    nat_gateways=2,
    node_instance="m6i.xlarge",
    node_min=2,
    node_desired=3,
    node_max=10,
    db_instance="db.r6g.large",
    db_storage_gb=100,
    db_multi_az=True,
    db_backup_days=14,
    deletion_protection=True,
    log_retention_days=90,
    kms_deletion_days=30,
)
DEVELOPMENT = Sizes(
    nat_gateways=1,
    node_instance="t3.large",
    node_min=1,
    node_desired=1,
    node_max=3,
    db_instance="db.t4g.micro",
    db_storage_gb=20,
    db_multi_az=False,
    db_backup_days=1,
    deletion_protection=False,
    log_retention_days=14,
    kms_deletion_days=7,
)


@dataclass(frozen=True)
class Project:
    name: str
    namespace: str
    repositories: tuple[str, ...]
    """ECR repository names of the project's models."""


@dataclass(frozen=True)
class Function:
    """A deployment whose target is aws_lambda, as the compiler packaged it (serverless/*.json)."""

    name: str
    project: str
    deployment: str
    image: str
    memory_mb: int
    timeout_seconds: int
    variables: dict[str, str]
    variants: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Plan:
    platform: str
    environment: str
    region: str
    account_id: str | None
    production: bool
    sizes: Sizes
    gpu: bool
    zone: str | None
    artifacts_bucket: str
    artifacts_prefix: str
    datasets_bucket: str
    projects: tuple[Project, ...]
    functions: tuple[Function, ...] = field(default=())
    owns_artifacts: bool = True
    """False when platform.artifacts names a bucket every environment shares and this one is not production:
    the production stack owns it, the others only use it."""
    public_api_cidrs: tuple[str, ...] = ()
    """Who may reach the EKS API from the internet (stack config nebula-aws:publicApiCidrs); none: private only."""

    @property
    def prefix(self) -> str:
        """`<platform>-<environment>`: the start of every name, as the compiled objects expect (IRSA roles)."""
        return f"{self.platform}-{self.environment}"

    def role_name(self, project: str, serving: bool = False) -> str:
        """The IAM role a project's jobs (or, read-only, its model servers) assume; the compiled service accounts
        carry these ARNs."""
        return f"{self.prefix}-{project}{'-serving' if serving else ''}"


def _repository(image: str) -> str:
    """An image path without its registry host: `acct.dkr.ecr.region.amazonaws.com/nebula/churn-rf` -> `nebula/churn-rf`."""
    head, _, rest = image.partition("/")
    return rest if rest and ("." in head or ":" in head or head == "localhost") else image


def _gpu(resources: list[dict[str, Any]]) -> bool:
    for resource in resources:
        if resource["kind"] in ("model", "notebook"):
            spec = resource["spec"]
            if resource["kind"] == "notebook" and spec.get("enabled") is False:
                continue
            if int((spec.get("resources") or {}).get("gpu", 0)) > 0:
                return True
    return False


def plan(manifest: dict[str, Any], serverless: list[dict[str, Any]] | None = None) -> Plan:
    settings = manifest.get("settings") or {}
    platform = manifest.get("platform") or {}
    environment = str(manifest["environment"])
    cloud = settings.get("cloud") or {}
    if cloud.get("provider") != "aws" or not cloud.get("region"):
        raise PlanError(
            f"environment '{environment}' has no AWS cloud: add `cloud: {{provider: aws, region: ...}}` to it in "
            "nebula.yaml, or deploy this environment without the AWS stack"
        )
    name = str(platform.get("name") or "nebula")
    artifacts = str(platform.get("artifacts") or "")
    shared = artifacts.startswith("s3://")
    if shared:
        bucket, _, prefix = artifacts[len("s3://") :].partition("/")
    else:
        bucket, prefix = f"{name}-{environment}-artifacts", ""
    resources: list[dict[str, Any]] = manifest.get("resources") or []
    projects = []
    for project in sorted((r for r in resources if r["kind"] == "project"), key=lambda r: r["name"]):
        models = sorted(
            _repository(str(r["spec"]["image"]))
            for r in resources
            if r["kind"] == "model" and r["project"] == project["name"] and r["spec"].get("image")
        )
        projects.append(
            Project(project["name"], str(project["spec"].get("namespace") or project["name"]), tuple(models))
        )
    production = bool(settings.get("production"))
    functions = []
    for config in sorted(serverless or [], key=lambda c: str(c.get("function_name"))):
        if config.get("target") != "aws_lambda":
            continue
        variants = dict(config.get("variants") or {})
        heaviest = max(variants.values(), key=lambda v: int(v.get("weight", 0)))
        functions.append(
            Function(
                name=str(config["function_name"]),
                project=str(config["project"]),
                deployment=str(config["deployment"]),
                image=str(heaviest["image"]),
                memory_mb=int(config.get("memory_mb", 1024)),
                timeout_seconds=int(config.get("timeout_seconds", 30)),
                variables={str(k): str(v) for k, v in (config.get("variables") or {}).items()},
                variants={
                    k: {"model": v["model"], "version": v["version"], "weight": v["weight"]}
                    for k, v in variants.items()
                },
            )
        )
    return Plan(
        platform=name,
        environment=environment,
        region=str(cloud["region"]),
        account_id=cloud.get("account_id"),
        production=production,
        sizes=PRODUCTION if production else DEVELOPMENT,
        gpu=bool(settings.get("gpu_nodes")) and _gpu(resources),
        zone=(settings.get("dns") or {}).get("zone"),
        artifacts_bucket=bucket,
        artifacts_prefix=prefix.strip("/"),
        datasets_bucket=f"{name}-{environment}-datasets",
        projects=tuple(projects),
        functions=tuple(functions),
        owns_artifacts=not shared or production,
    )


def load(manifest_path: str | Path, public_api_cidrs: tuple[str, ...] = ()) -> Plan:
    """The plan of a compiled environment: its manifest.json and the serverless/*.json beside it."""
    path = Path(manifest_path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PlanError(f"cannot read {path}: {err.strerror}; run `nebula compile` first") from None
    serverless = [
        json.loads(p.read_text(encoding="utf-8")) for p in sorted((path.parent / "serverless").glob("*.json"))
    ]
    return replace(plan(manifest, serverless), public_api_cidrs=tuple(public_api_cidrs))
