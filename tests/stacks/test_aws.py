"""The AWS stack under Pulumi's mocks: what each example asks for exists with the right settings, and the security
invariants hold for every example; a dev environment is smaller than prod."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stacks.aws.components import build
from stacks.aws.plan import PlanError, plan
from tests.stacks.conftest import Recorder, compiled, run, walk

EXAMPLES = [
    ("examples/churn/nebula.yaml", "prod"),
    ("examples/image-classification/nebula.yaml", "prod"),
    ("nebula.yaml", "prod"),
    ("examples/multi-env/nebula.yaml", "prod"),
    ("examples/multi-env/nebula.yaml", "staging"),
]


def stack(config: str, environment: str) -> tuple[Recorder, dict[str, Any], Any]:
    manifest, serverless, _ = compiled(config, environment)
    found = plan(manifest, serverless)
    recorder, outputs = run(build, found, stack=environment, project="nebula-aws")
    return recorder, outputs, found


@pytest.fixture(
    scope="module", params=EXAMPLES, ids=[f"{c.split('/')[-2] if '/' in c else 'demo'}-{e}" for c, e in EXAMPLES]
)
def example(request: pytest.FixtureRequest) -> tuple[Recorder, dict[str, Any], Any]:
    config, environment = request.param
    return stack(config, environment)


def test_every_bucket_is_encrypted_versioned_private_and_tls_only(
    example: tuple[Recorder, dict[str, Any], Any],
) -> None:
    recorder, _, found = example
    buckets = {r.name: r.inputs["bucket"] for r in recorder.of("aws:s3/bucket:Bucket")}
    owned = {found.datasets_bucket} | ({found.artifacts_bucket} if found.owns_artifacts else set())
    assert set(buckets.values()) == owned
    for name in buckets:
        [encryption] = [
            r
            for r in recorder.of(
                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
            )
            if r.name == name
        ]
        rule = encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
        assert rule["sseAlgorithm"] == "aws:kms" and rule["kmsMasterKeyId"].startswith("arn:")
        [block] = [r for r in recorder.of("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock") if r.name == name]
        assert all(
            block.inputs[k] is True
            for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        )
        [versioning] = [r for r in recorder.of("aws:s3/bucketVersioning:BucketVersioning") if r.name == name]
        assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
        [policy] = [r for r in recorder.of("aws:s3/bucketPolicy:BucketPolicy") if r.name == name]
        statement = json.loads(policy.inputs["policy"])["Statement"][0]
        assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        [owners] = [r for r in recorder.of("aws:s3/bucketOwnershipControls:BucketOwnershipControls") if r.name == name]
        assert owners.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"  # no ACLs at all


def test_the_database_is_private_encrypted_and_holds_no_password(example: tuple[Recorder, dict[str, Any], Any]) -> None:
    recorder, outputs, _ = example
    [database] = recorder.of("aws:rds/instance:Instance")
    assert database.inputs["publiclyAccessible"] is False
    assert database.inputs["storageEncrypted"] is True and database.inputs["kmsKeyId"].startswith("arn:")
    assert database.inputs["manageMasterUserPassword"] is True  # RDS keeps it in Secrets Manager
    assert "password" not in database.inputs
    [group] = recorder.of("aws:rds/subnetGroup:SubnetGroup")
    assert all("private" in subnet for subnet in group.inputs["subnetIds"])
    [security] = [r for r in recorder.of("aws:ec2/securityGroup:SecurityGroup") if r.name == "network-db"]
    assert "ingress" not in security.inputs  # its rules are separate resources, all from security groups
    rules = [
        r.inputs for r in recorder.of("aws:ec2/securityGroupRule:SecurityGroupRule") if r.inputs["fromPort"] == 5432
    ]
    assert {r["sourceSecurityGroupId"] for r in rules} == {"network-nodes-id", "sg-cluster"}
    assert all(r["toPort"] == 5432 and "cidrBlocks" not in r and r["type"] == "ingress" for r in rules)
    assert outputs["state_secret_arn"].startswith("arn:aws:secretsmanager")


def test_images_are_scanned_and_their_tags_immutable(example: tuple[Recorder, dict[str, Any], Any]) -> None:
    recorder, _, found = example
    repositories = recorder.of("aws:ecr/repository:Repository")
    assert sorted(r.inputs["name"] for r in repositories) == sorted(n for p in found.projects for n in p.repositories)
    for repository in repositories:
        assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repository.inputs["encryptionConfigurations"][0]["encryptionType"] == "KMS"


def test_project_roles_reach_only_their_own_data(example: tuple[Recorder, dict[str, Any], Any]) -> None:
    recorder, _, found = example
    roles = {r.name: r for r in recorder.of("aws:iam/role:Role") if r.name.startswith("identity-")}
    expected = {found.role_name(p.name, serving) for p in found.projects for serving in (False, True)}
    assert {r.inputs["name"] for r in roles.values()} == expected
    for project in found.projects:  # model servers: read-only, their environment's models only
        serving = roles[f"identity-{project.name}-serving"]
        trust = json.loads(serving.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
        assert [v for k, v in trust.items() if k.endswith(":sub")] == [
            f"system:serviceaccount:{project.namespace}:nebula-serving"
        ]
        [policy] = [
            r for r in recorder.of("aws:iam/rolePolicy:RolePolicy") if r.name == f"identity-{project.name}-serving"
        ]
        statements = json.loads(policy.inputs["policy"])["Statement"]
        assert {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])} == {
            "s3:GetObject",
            "kms:Decrypt",
        }
        models = next(s for s in statements if s["Sid"] == "Models")["Resource"]
        assert all(
            f"/runs/{found.environment}/{project.name}/" in r or f"/registry/{found.environment}/{project.name}/" in r
            for r in models
        )
    for project in found.projects:
        role = roles[f"identity-{project.name}"]
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
        assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
        subjects = [v for k, v in trust["Condition"]["StringEquals"].items() if k.endswith(":sub")]
        assert subjects == [f"system:serviceaccount:{project.namespace}:nebula-workload"]
        [policy] = [r for r in recorder.of("aws:iam/rolePolicy:RolePolicy") if r.name == f"identity-{project.name}"]
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert "*" not in resources
            for resource in resources:
                if resource.startswith("arn:aws:s3:::") and "/" in resource:
                    key = resource.split("/", 1)[1]
                    owned = f"/{project.name}/" in f"/{key}" or key.startswith("files/md5/") or "/files/md5/" in key
                    assert owned, f"{project.name} may reach {resource}"
                    others = [p.name for p in found.projects if p.name != project.name]
                    assert not any(re.search(rf"(^|/){o}/", key) for o in others)


def test_no_secret_value_in_any_resource_input(example: tuple[Recorder, dict[str, Any], Any]) -> None:
    recorder, _, _ = example
    suspicious = re.compile(r"(password|secret|token|credential|private_?key)", re.IGNORECASE)
    for resource in recorder.resources:
        for path, value in walk(resource.inputs):
            leaf = path.rsplit(".", 1)[-1]
            if suspicious.search(leaf) and isinstance(value, str) and value and not value.startswith("arn:"):
                raise AssertionError(f"{resource.type} {resource.name}: {path} holds a value")
            if isinstance(value, str):
                assert "hunter2" not in value and "BEGIN PRIVATE KEY" not in value


def test_the_cluster_is_private_and_encrypted(example: tuple[Recorder, dict[str, Any], Any]) -> None:
    recorder, _, found = example
    [cluster] = recorder.of("aws:eks/cluster:Cluster")
    assert cluster.inputs["name"] == found.prefix
    assert cluster.inputs["vpcConfig"]["endpointPrivateAccess"] is True
    assert all("private" in s for s in cluster.inputs["vpcConfig"]["subnetIds"])
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"]
    assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is False  # unless nebula-aws:publicApiCidrs says who
    assert recorder.of("aws:iam/openIdConnectProvider:OpenIdConnectProvider")[0].inputs["clientIdLists"] == [
        "sts.amazonaws.com"
    ]


def test_components_group_the_resources(example: tuple[Recorder, dict[str, Any], Any]) -> None:
    recorder, _, _ = example
    kinds = {r.type for r in recorder.resources if r.type.startswith("nebula:aws:")}
    assert kinds >= {
        "nebula:aws:Network",
        "nebula:aws:Data",
        "nebula:aws:Registry",
        "nebula:aws:Compute",
        "nebula:aws:Identity",
        "nebula:aws:State",
    }


def test_a_gpu_node_group_only_where_a_model_asks_for_gpus() -> None:
    vision, _, _ = stack("examples/image-classification/nebula.yaml", "prod")
    churn, _, _ = stack("examples/churn/nebula.yaml", "prod")
    gpu = [g for g in vision.of("aws:eks/nodeGroup:NodeGroup") if g.inputs["nodeGroupName"].endswith("-gpu")]
    assert len(gpu) == 1 and gpu[0].inputs["taints"][0]["key"] == "nvidia.com/gpu"
    assert [g.inputs["nodeGroupName"] for g in churn.of("aws:eks/nodeGroup:NodeGroup")] == ["churn-prod-cpu"]


def test_edge_where_the_environment_declares_a_zone() -> None:
    recorder, outputs, _ = stack("examples/churn/nebula.yaml", "prod")
    [certificate] = recorder.of("aws:acm/certificate:Certificate")
    assert certificate.inputs["domainName"] == "ml.acme.example"
    assert certificate.inputs["subjectAlternativeNames"] == ["*.ml.acme.example"]
    assert certificate.inputs["validationMethod"] == "DNS"
    listeners = {r.inputs["port"]: r for r in recorder.of("aws:lb/listener:Listener")}
    assert listeners[443].inputs["protocol"] == "HTTPS" and listeners[443].inputs["sslPolicy"].startswith(
        "ELBSecurityPolicy-TLS13"
    )
    assert listeners[80].inputs["defaultActions"][0]["type"] == "redirect"
    names = sorted(r.inputs["name"] for r in recorder.of("aws:route53/record:Record") if r.inputs.get("type") == "A")
    assert names == ["*.ml.acme.example", "api.ml.acme.example"]
    assert outputs["api_url"] == "https://api.ml.acme.example"
    vision, vision_outputs, _ = stack("examples/image-classification/nebula.yaml", "prod")  # no dns: no edge
    assert not vision.of("aws:lb/loadBalancer:LoadBalancer") and "api_url" not in vision_outputs


def test_a_lambda_deployment_gets_its_function_role_and_log_group() -> None:
    recorder, outputs, _ = stack("examples/churn/nebula.yaml", "prod")
    [function] = recorder.of("aws:lambda/function:Function")
    assert function.inputs["name"] == "churn-prod-churn-churn-batch"
    assert function.inputs["packageType"] == "Image" and function.inputs["memorySize"] == 2048
    assert function.inputs["timeout"] == 60
    assert function.inputs["imageConfig"]["commands"] == ["nebula_runtime.serverless.handler"]
    variables = function.inputs["environment"]["variables"]
    assert json.loads(variables["NEBULA_VARIANTS"]) == {
        "main": {"model": "churn-rf", "version": "champion", "weight": 100}
    }
    [logs] = recorder.of("aws:cloudwatch/logGroup:LogGroup")
    assert logs.inputs["name"] == "/aws/lambda/churn-prod-churn-churn-batch" and logs.inputs["kmsKeyId"].startswith(
        "arn:"
    )
    [policy] = [r for r in recorder.of("aws:iam/rolePolicy:RolePolicy") if r.name.startswith("serverless-")]
    models = next(s for s in json.loads(policy.inputs["policy"])["Statement"] if s["Sid"] == "Models")
    assert models["Action"] == "s3:GetObject"
    assert all("/churn/runs/prod/churn/" in r or "/registry/prod/churn/" in r for r in models["Resource"])
    assert list(outputs["functions"]) == ["churn-prod-churn-churn-batch"]


def test_staging_is_smaller_than_prod() -> None:
    """multi-env's staging "mirrors production at a smaller size": it is not `production: true`."""
    big, _, _ = stack("examples/multi-env/nebula.yaml", "prod")
    small, _, _ = stack("examples/multi-env/nebula.yaml", "staging")
    nat = (len(big.of("aws:ec2/natGateway:NatGateway")), len(small.of("aws:ec2/natGateway:NatGateway")))
    assert nat == (2, 1)
    big_db, small_db = big.of("aws:rds/instance:Instance")[0].inputs, small.of("aws:rds/instance:Instance")[0].inputs
    assert (big_db["multiAz"], small_db["multiAz"]) == (True, False)
    assert big_db["deletionProtection"] is True and small_db["deletionProtection"] is False
    assert big_db["allocatedStorage"] > small_db["allocatedStorage"]
    big_nodes = big.of("aws:eks/nodeGroup:NodeGroup")[0].inputs["scalingConfig"]
    small_nodes = small.of("aws:eks/nodeGroup:NodeGroup")[0].inputs["scalingConfig"]
    assert big_nodes["maxSize"] > small_nodes["maxSize"] and big_nodes["minSize"] > small_nodes["minSize"]
    assert not small.of("aws:lb/loadBalancer:LoadBalancer")  # staging declares no DNS zone: no edge
    assert len(small.resources) < len(big.resources)


def test_an_environment_without_aws_is_refused_with_a_reason() -> None:
    manifest, serverless, _ = compiled("nebula.yaml", "dev")
    with pytest.raises(PlanError, match="environment 'dev' has no AWS cloud"):
        plan(manifest, serverless)


def test_a_shared_artifact_bucket_belongs_to_the_production_stack() -> None:
    """multi-env's platform.artifacts names one bucket for every environment: staging uses it, prod declares it."""
    prod, _, found = stack("examples/multi-env/nebula.yaml", "prod")
    staging, staging_outputs, _ = stack("examples/multi-env/nebula.yaml", "staging")
    declared = {r.inputs["bucket"] for r in prod.of("aws:s3/bucket:Bucket")}
    assert found.artifacts_bucket in declared
    assert found.artifacts_bucket not in {r.inputs["bucket"] for r in staging.of("aws:s3/bucket:Bucket")}
    assert staging_outputs["artifacts_bucket"] == found.artifacts_bucket


def test_the_cluster_api_is_public_only_for_the_addresses_config_names(tmp_path: Path) -> None:
    from stacks.aws.plan import load

    _, _, files = compiled("nebula.yaml", "prod")
    (tmp_path / "manifest.json").write_text(files["manifest.json"])
    found = load(tmp_path / "manifest.json", ("203.0.113.0/24",))
    recorder, _ = run(build, found, stack="prod", project="nebula-aws")
    [cluster] = recorder.of("aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is True
    assert cluster.inputs["vpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
