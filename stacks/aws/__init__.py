"""The AWS stack: network, EKS, buckets, registries, IRSA roles, the state database, edge and Lambda functions
for one compiled environment. `main()` is the Pulumi program; `build(plan)` declares the resources."""

from __future__ import annotations

import pulumi

from stacks.aws.plan import Plan, PlanError, load, plan


def main() -> None:
    """The program: the manifest comes from stack config (`nebula-aws:manifest`, written by `nebula compile`)."""
    config = pulumi.Config()
    path = config.require("manifest")
    cidrs = tuple(config.get_object("publicApiCidrs") or ())
    try:
        found = load(path, cidrs)
    except PlanError as err:
        raise pulumi.RunError(str(err)) from None
    from stacks.aws.components import build

    for name, value in build(found).items():
        pulumi.export(name, value)


__all__ = ["Plan", "PlanError", "load", "main", "plan"]
