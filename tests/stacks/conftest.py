"""Pulumi programs under Pulumi's own unit-test mocks (no CLI and no cloud can run here).

`run(fn, ...)` declares a stack with `pulumi.runtime.set_mocks` and returns every
resource the program registered: its type, name, inputs (as the engine receives
them, camelCase) and parent. The mocks answer like AWS would with made-up ids and
ARNs, and the two lookups the AWS stack makes (availability zones, the DNS zone).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

from nebula_compile.api import compile_path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]


@dataclass
class Recorder(pulumi.runtime.Mocks):
    resources: list[Registered] = field(default_factory=list)
    dependencies: dict[str, list[str]] = field(default_factory=dict)
    """Resource name -> the names of the resources it waits for (its depends_on)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs)))
        name = args.name
        state: dict[str, Any] = {**args.inputs, "arn": f"arn:aws:mock:::{name}"}
        if args.typ == "aws:s3/bucket:Bucket":
            state["arn"] = f"arn:aws:s3:::{args.inputs['bucket']}"
        elif args.typ == "aws:kms/key:Key":
            state["keyId"] = f"key-{name}"
        elif args.typ == "aws:eks/cluster:Cluster":
            state["identities"] = [{"oidcs": [{"issuer": "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC"}]}]
            state["vpcConfig"] = {**args.inputs["vpcConfig"], "clusterSecurityGroupId": "sg-cluster"}
            state["endpoint"] = "https://ABC.eks.amazonaws.com"
        elif args.typ == "aws:rds/instance:Instance":
            state["endpoint"] = f"{args.inputs['identifier']}.rds.amazonaws.com:5432"
            state["masterUserSecrets"] = [
                {"secretArn": f"arn:aws:secretsmanager:::secret:{name}", "secretStatus": "active"}
            ]
        elif args.typ == "aws:acm/certificate:Certificate":
            option = {"resourceRecordName": "_x.zone.", "resourceRecordType": "CNAME", "resourceRecordValue": "_y.acm."}
            state["domainValidationOptions"] = [{**option, "domainName": d} for d in ("zone", "*.zone")]
        elif args.typ == "aws:lb/loadBalancer:LoadBalancer":
            state.update(dnsName=f"{name}.elb.amazonaws.com", zoneId="ZLB")
        elif args.typ == "aws:ecr/repository:Repository":
            state["repositoryUrl"] = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{args.inputs['name']}"
        elif args.typ == "aws:iam/role:Role":
            state["name"] = args.inputs.get("name") or name
        elif args.typ == "aws:route53/record:Record":
            state["fqdn"] = args.inputs.get("name")
        return f"{name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"names": ["eu-west-1a", "eu-west-1b", "eu-west-1c"], "zoneIds": ["a", "b", "c"], "id": "azs"}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": "210987654321", "arn": "arn:aws:iam::210987654321:user/ci", "userId": "AID", "id": "x"}
        if args.token == "aws:route53/getZone:getZone":
            return {"zoneId": "Z0ZONE", "name": args.args.get("name"), "id": "Z0ZONE"}
        raise AssertionError(f"the stack made an unexpected call: {args.token}")

    def of(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]


class _Monitor(MockMonitor):
    """The mocks' engine, noting each registration's explicit dependencies (registrations come in any order)."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.recorder = recorder

    def RegisterResource(self, request: Any) -> Any:  # the engine's RPC name
        self.recorder.dependencies[request.name] = sorted(urn.rsplit("::", 1)[-1] for urn in request.dependencies)
        return super().RegisterResource(request)


def run(program: Callable[..., Any], *args: Any, stack: str = "test", project: str = "nebula") -> tuple[Recorder, Any]:
    """Run a program under the mocks; the recorder and what the program returned (outputs resolved)."""
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project=project, stack=stack, preview=False, monitor=_Monitor(recorder))
    result: dict[str, Any] = {}

    @pulumi.runtime.test
    def declare() -> Any:
        outputs = program(*args)
        return pulumi.Output.from_input(outputs).apply(lambda value: result.update(value=value))

    declare()
    return recorder, result.get("value")


def compiled(config: str, environment: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    """An example's compiled environment: its manifest, its serverless configs and all its files."""
    compilation = compile_path(str(ROOT / config), [environment])
    assert compilation.ok, compilation.diagnostics
    files = compilation.outputs[environment].files
    serverless = [json.loads(text) for path, text in sorted(files.items()) if path.startswith("serverless/")]
    return json.loads(files["manifest.json"]), serverless, files


def walk(value: Any, trail: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf of a nested input, with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{trail}.{key}" if trail else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{trail}[{index}]")
    else:
        yield trail, value
