"""emit_serverless: packaging and configuration of serverless deployments, for the Pulumi stacks.

A deployment whose target is aws_lambda, azure_functions or gcp_functions becomes
`serverless/<project>-<deployment>.json`: the function's name, image, memory,
timeout, environment and, for an A/B split, the weighted versions. The AWS stack
in `stacks/aws` reads it to declare the Lambda function, its role and log group.
"""

from __future__ import annotations

from nebula_compile.diagnostics import Diagnostic
from nebula_compile.emit.bundle import Bundle, problem
from nebula_compile.emit.context import EmitContext
from nebula_compile.emit.images import image_ref
from nebula_compile.ir.graph import ResourceGraph, pretty_json
from nebula_compile.spec.types import duration_seconds

HANDLER = "nebula_runtime.serverless.handler"


def emit_serverless(graph: ResourceGraph, context: EmitContext) -> Bundle:
    files: dict[str, str] = {}
    found: list[Diagnostic] = []
    cloud = (graph.settings.get("cloud") or {}).get("provider")
    for deployment in graph.of_kind("deployment"):
        spec = deployment.spec
        target = spec.get("target", "kubernetes")
        if target == "kubernetes":
            continue
        if target == "aws_lambda" and cloud != "aws":
            found.append(
                problem(
                    deployment,
                    "NEB501",
                    f"deployment '{deployment.name}' targets aws_lambda, but environment '{graph.environment}' has no AWS cloud",
                    f"add 'cloud: {{region: ...}}' to environment '{graph.environment}', or limit the deployment "
                    "with 'environments:' to those that have one",
                )
            )
            continue
        if target != "aws_lambda":
            found.append(
                problem(
                    deployment,
                    "NEB502",
                    f"deployment '{deployment.name}' targets {target}: its packaging is written, but no stack deploys it yet",
                    "the AWS stack deploys aws_lambda targets; deploy this one with your cloud's own tools",
                    warning=True,
                )
            )
        settings = spec.get("serverless") or {"memory_mb": 1024, "timeout": "30s"}
        variants = {}
        for vname, variant in spec["variants"].items():
            model = graph.get(f"model.{deployment.project}.{variant['model']}")
            assert model is not None
            variants[vname] = {
                "model": variant["model"],
                "version": variant["version"],
                "weight": variant["traffic"],
                "image": image_ref(graph, model),
            }
        name = f"{graph.platform['name']}-{graph.environment}-{deployment.project}-{deployment.name}"
        if len(name) > 64:
            found.append(
                problem(
                    deployment,
                    "NEB505",
                    f"function name '{name}' is {len(name)} characters; cloud functions allow 64",
                    "shorten the platform, environment, project or deployment name",
                )
            )
            continue
        config = {
            "target": target,
            "function_name": name,
            "project": deployment.project,
            "deployment": deployment.name,
            "environment": graph.environment,
            "handler": HANDLER,
            "package_type": "image",
            "memory_mb": int(settings.get("memory_mb", 1024)),
            "timeout_seconds": int(duration_seconds(str(settings.get("timeout", "30s")))),
            "variables": {
                "NEBULA_ENVIRONMENT": graph.environment,
                "NEBULA_PROJECT": deployment.project,
                "NEBULA_DEPLOYMENT": deployment.name,
                "NEBULA_ARTIFACTS": str(graph.platform["artifacts"]),
            },
            "variants": variants,
            "source": str(deployment.source) if deployment.source else None,
        }
        files[f"serverless/{deployment.project}-{deployment.name}.json"] = pretty_json(config)
    return Bundle(files, tuple(found))
