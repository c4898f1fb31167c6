"""The AWS platform of one Nebula environment, as Pulumi ComponentResources.

Network, compute, data, registry, identity, state, edge and serverless: each a
component, so `pulumi preview` groups what it declares. Security is built in, not
optional:
- buckets are KMS-encrypted, versioned, never public and TLS-only;
- the database is encrypted, in private subnets only, with its password kept in
  Secrets Manager by RDS itself;
- images are scanned on push and their tags cannot move;
- every project's role reaches only its own prefixes and the content-addressed store.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pulumi
import pulumi_aws as aws

from stacks.aws.plan import Function, Plan

CIDR = "10.40.0.0/16"
PUBLIC_CIDRS = ("10.40.0.0/20", "10.40.16.0/20")
PRIVATE_CIDRS = ("10.40.128.0/19", "10.40.160.0/19")
EKS_VERSION = "1.33"
POSTGRES_VERSION = "16"
SERVICE_ACCOUNT = "nebula-workload"
SERVING_ACCOUNT = "nebula-serving"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def _policy(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def allow(
    name: str,
    group: pulumi.Input[str],
    source: pulumi.Input[str],
    low: int,
    high: int,
    why: str,
    opts: pulumi.ResourceOptions,
) -> aws.ec2.SecurityGroupRule:
    """One ingress rule: TCP low..high into `group` from members of `source` only."""
    return aws.ec2.SecurityGroupRule(
        name,
        type="ingress",
        protocol="tcp",
        from_port=low,
        to_port=high,
        security_group_id=group,
        source_security_group_id=source,
        description=why,
        opts=opts,
    )


def _key_policy(account: str, region: str) -> str:
    """The account administers and uses the key through IAM (the default); CloudWatch Logs may use it for this
    account's log groups, which it needs to encrypt the Lambda functions' logs."""
    return _policy(
        [
            {
                "Sid": "Account",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account}:log-group:*"}
                },
            },
        ]
    )


def _issuer(identities: Any) -> str:
    return str(identities[0].oidcs[0].issuer)


def _web_identity(values: list[str], subject: str) -> str:
    """Trust for one Kubernetes service account, through the cluster's OIDC provider (IRSA)."""
    provider, issuer = values
    host = issuer.removeprefix("https://")
    return _policy(
        [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{host}:sub": subject, f"{host}:aud": "sts.amazonaws.com"}},
            }
        ]
    )


def _read_policy(arns: list[str], prefixes: list[str]) -> str:
    """Read-only: the objects under `prefixes` of the artifact bucket, and decryption with the key."""
    artifacts, key = arns
    return _policy(
        [
            {
                "Sid": "Models",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [f"{artifacts}/{p}*" for p in prefixes],
            },
            {"Sid": "Key", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key},
        ]
    )


def _project_policy(arns: list[str], project: str, prefixes: list[str]) -> str:
    """A project's objects: its prefixes of the artifact bucket, its folder of the dataset bucket, the key."""
    artifacts, datasets, key = arns
    return _policy(
        [
            {
                "Sid": "Objects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": [f"{artifacts}/{p}*" for p in prefixes] + [f"{datasets}/{project}/*"],
            },
            {
                "Sid": "List",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": [artifacts, datasets],
                "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes] + [f"{project}/*"]}},
            },
            {"Sid": "Key", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key},
        ]
    )


class Network(pulumi.ComponentResource):
    """A VPC over two availability zones: public subnets for the load balancer and NAT, private ones for the rest."""

    def __init__(self, name: str, plan: Plan, tags: dict[str, str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("nebula:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones_output(state="available").names
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=CIDR,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": plan.prefix},
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=tags, opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            tags=tags,
            opts=child,
        )
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        nats: list[aws.ec2.NatGateway] = []
        for index, cidr in enumerate(PUBLIC_CIDRS):
            subnet = aws.ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zones[index],
                map_public_ip_on_launch=False,
                tags={**tags, "kubernetes.io/role/elb": "1"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}", subnet_id=subnet.id, route_table_id=public_routes.id, opts=child
            )
            self.public_subnets.append(subnet)
            if index < plan.sizes.nat_gateways:  # production: one per zone; dev: one for both
                address = aws.ec2.Eip(f"{name}-nat-{index}", domain="vpc", tags=tags, opts=child)
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{index}", allocation_id=address.id, subnet_id=subnet.id, tags=tags, opts=child
                    )
                )
        for index, cidr in enumerate(PRIVATE_CIDRS):
            nat = nats[min(index, len(nats) - 1)]
            routes = aws.ec2.RouteTable(
                f"{name}-private-{index}",
                vpc_id=self.vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags=tags,
                opts=child,
            )
            subnet = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zones[index],
                map_public_ip_on_launch=False,
                tags={**tags, "kubernetes.io/role/internal-elb": "1"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}", subnet_id=subnet.id, route_table_id=routes.id, opts=child
            )
            self.private_subnets.append(subnet)
        # security groups: each allows only what its component needs
        self.balancer = aws.ec2.SecurityGroup(
            f"{name}-lb",
            vpc_id=self.vpc.id,
            description="Nebula load balancer: HTTPS (and HTTP, redirected) in",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": ["0.0.0.0/0"],
                    "description": "https",
                },
                {
                    "protocol": "tcp",
                    "from_port": 80,
                    "to_port": 80,
                    "cidr_blocks": ["0.0.0.0/0"],
                    "description": "to https",
                },
            ],
            egress=[
                {
                    "protocol": "tcp",
                    "from_port": 1024,
                    "to_port": 65535,
                    "cidr_blocks": [CIDR],
                    "description": "to pods",
                }
            ],
            tags=tags,
            opts=child,
        )
        self.nodes = aws.ec2.SecurityGroup(
            f"{name}-nodes",
            vpc_id=self.vpc.id,
            description="Nebula cluster nodes",
            ingress=[
                {"protocol": "-1", "from_port": 0, "to_port": 0, "self": True, "description": "node to node"},
                {
                    "protocol": "tcp",
                    "from_port": 1024,
                    "to_port": 65535,
                    "security_groups": [self.balancer.id],
                    "description": "from the load balancer",
                },
            ],
            egress=[
                {"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"], "description": "out"}
            ],
            tags=tags,
            opts=child,
        )
        self.database = aws.ec2.SecurityGroup(
            f"{name}-db",
            vpc_id=self.vpc.id,
            description="Nebula state store: PostgreSQL from the cluster only",
            egress=[],
            tags=tags,
            opts=child,
        )  # its ingress rules are separate resources: one here, one once the cluster (and its group) exists
        allow(f"{name}-db-from-nodes", self.database.id, self.nodes.id, 5432, 5432, "postgres from nodes", child)
        self.register_outputs({"vpc_id": self.vpc.id})


class Data(pulumi.ComponentResource):
    """A KMS key and the dataset and artifact buckets: encrypted with it, versioned, private, TLS-only."""

    def __init__(self, name: str, plan: Plan, tags: dict[str, str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("nebula:aws:Data", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = plan.account_id or aws.get_caller_identity_output().account_id
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"Nebula {plan.prefix}: data, artifacts, images, state, logs",
            policy=pulumi.Output.from_input(account).apply(functools.partial(_key_policy, region=plan.region)),
            enable_key_rotation=True,
            deletion_window_in_days=plan.sizes.kms_deletion_days,
            tags=tags,
            opts=child,
        )
        aws.kms.Alias(f"{name}-key", name=f"alias/{plan.prefix}", target_key_id=self.key.key_id, opts=child)
        self.buckets: dict[str, aws.s3.Bucket] = {}
        owned = [("datasets", plan.datasets_bucket)]
        if plan.owns_artifacts:
            owned.append(("artifacts", plan.artifacts_bucket))
        for role, bucket_name in owned:
            bucket = aws.s3.Bucket(
                f"{name}-{role}", bucket=bucket_name, force_destroy=not plan.production, tags=tags, opts=child
            )
            aws.s3.BucketOwnershipControls(
                f"{name}-{role}", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
            )
            aws.s3.BucketPublicAccessBlock(
                f"{name}-{role}",
                bucket=bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
                opts=child,
            )
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{name}-{role}",
                bucket=bucket.id,
                rules=[
                    {
                        "apply_server_side_encryption_by_default": {
                            "sse_algorithm": "aws:kms",
                            "kms_master_key_id": self.key.arn,
                        },
                        "bucket_key_enabled": True,
                    }
                ],
                opts=child,
            )
            aws.s3.BucketVersioning(
                f"{name}-{role}", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
            )
            aws.s3.BucketPolicy(
                f"{name}-{role}",
                bucket=bucket.id,
                policy=bucket.arn.apply(
                    lambda arn: _policy(
                        [
                            {
                                "Sid": "TlsOnly",
                                "Effect": "Deny",
                                "Principal": "*",
                                "Action": "s3:*",
                                "Resource": [arn, f"{arn}/*"],
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ]
                    )
                ),
                opts=child,
            )
            self.buckets[role] = bucket
        # a bucket that every environment of the platform shares is the production stack's; others only use it
        self.artifacts_arn: pulumi.Output[str] = (
            self.buckets["artifacts"].arn
            if plan.owns_artifacts
            else pulumi.Output.from_input(f"arn:aws:s3:::{plan.artifacts_bucket}")
        )
        self.register_outputs({"key": self.key.arn})


class Registry(pulumi.ComponentResource):
    """One ECR repository per model: scanned on push, tags immutable, encrypted with the platform key."""

    def __init__(
        self, name: str, plan: Plan, key: aws.kms.Key, tags: dict[str, str], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nebula:aws:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repositories: dict[str, aws.ecr.Repository] = {}
        for project in plan.projects:
            for repository in project.repositories:
                self.repositories[repository] = aws.ecr.Repository(
                    f"{name}-{repository.replace('/', '-')}",
                    name=repository,
                    image_tag_mutability="IMMUTABLE",
                    image_scanning_configuration={"scan_on_push": True},
                    encryption_configurations=[{"encryption_type": "KMS", "kms_key": key.arn}],
                    force_delete=not plan.production,
                    tags={**tags, "nebula/project": project.name},
                    opts=child,
                )
        self.register_outputs({})


class Compute(pulumi.ComponentResource):
    """EKS in the private subnets with a CPU node group, a GPU node group when a model or notebook asks for GPUs,
    and the OIDC provider that lets service accounts assume IAM roles (IRSA)."""

    def __init__(
        self,
        name: str,
        plan: Plan,
        network: Network,
        key: aws.kms.Key,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("nebula:aws:Compute", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def role(suffix: str, service: str, policies: list[str]) -> aws.iam.Role:
            made = aws.iam.Role(
                f"{name}-{suffix}",
                assume_role_policy=_policy(
                    [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
                ),
                tags=tags,
                opts=child,
            )
            for policy in policies:
                aws.iam.RolePolicyAttachment(
                    f"{name}-{suffix}-{policy.rsplit('/', 1)[-1]}", role=made.name, policy_arn=policy, opts=child
                )
            return made

        managed = "arn:aws:iam::aws:policy/"
        cluster_role = role("cluster", "eks.amazonaws.com", [f"{managed}AmazonEKSClusterPolicy"])
        node_role = role(
            "nodes",
            "ec2.amazonaws.com",
            [
                f"{managed}AmazonEKSWorkerNodePolicy",
                f"{managed}AmazonEKS_CNI_Policy",
                f"{managed}AmazonEC2ContainerRegistryReadOnly",
            ],
        )
        private = [s.id for s in network.private_subnets]
        self.cluster = aws.eks.Cluster(
            f"{name}-cluster",
            name=plan.prefix,
            role_arn=cluster_role.arn,
            version=EKS_VERSION,
            vpc_config={
                "subnet_ids": private,
                "security_group_ids": [network.nodes.id],
                "endpoint_private_access": True,
                "endpoint_public_access": bool(plan.public_api_cidrs),
                "public_access_cidrs": list(plan.public_api_cidrs) or None,
            },
            encryption_config={"resources": ["secrets"], "provider": {"key_arn": key.arn}},
            access_config={"authentication_mode": "API"},
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=tags,
            opts=child,
        )
        sizes = plan.sizes
        aws.eks.NodeGroup(
            f"{name}-cpu",
            cluster_name=self.cluster.name,
            node_group_name=f"{plan.prefix}-cpu",
            node_role_arn=node_role.arn,
            subnet_ids=private,
            instance_types=[sizes.node_instance],
            scaling_config={"min_size": sizes.node_min, "desired_size": sizes.node_desired, "max_size": sizes.node_max},
            labels={"nebula/pool": "cpu"},
            tags=tags,
            opts=child,
        )
        if plan.gpu:
            aws.eks.NodeGroup(
                f"{name}-gpu",
                cluster_name=self.cluster.name,
                node_group_name=f"{plan.prefix}-gpu",
                node_role_arn=node_role.arn,
                subnet_ids=private,
                instance_types=["g5.xlarge"],
                ami_type="AL2023_x86_64_NVIDIA",
                scaling_config={"min_size": 0, "desired_size": 1 if plan.production else 0, "max_size": 4},
                taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
                labels={"nebula/pool": "gpu"},
                tags=tags,
                opts=child,
            )
        issuer = self.cluster.identities.apply(_issuer)
        self.issuer = issuer
        self.oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"], tags=tags, opts=child
        )
        self.register_outputs({"cluster": self.cluster.name})


class Identity(pulumi.ComponentResource):
    """Per project, the IAM role its service account assumes (IRSA), reaching only that project's data."""

    def __init__(
        self,
        name: str,
        plan: Plan,
        compute: Compute,
        data: Data,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("nebula:aws:Identity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.roles: dict[str, aws.iam.Role] = {}
        self.serving_roles: dict[str, aws.iam.Role] = {}
        artifacts = data.artifacts_arn
        datasets = data.buckets["datasets"].arn
        base = f"{plan.artifacts_prefix}/" if plan.artifacts_prefix else ""
        env = plan.environment
        for project in plan.projects:
            models = [f"{base}runs/{env}/{project.name}/", f"{base}registry/{env}/{project.name}/"]
            for serving in (False, True):
                account = SERVING_ACCOUNT if serving else SERVICE_ACCOUNT
                trust = pulumi.Output.all(compute.oidc.arn, compute.issuer).apply(
                    functools.partial(_web_identity, subject=f"system:serviceaccount:{project.namespace}:{account}")
                )
                suffix = "-serving" if serving else ""
                role = aws.iam.Role(
                    f"{name}-{project.name}{suffix}",
                    name=plan.role_name(project.name, serving),
                    assume_role_policy=trust,
                    tags={**tags, "nebula/project": project.name},
                    opts=child,
                )
                if serving:  # model servers only read their environment's registered models
                    policy = pulumi.Output.all(artifacts, data.key.arn).apply(
                        functools.partial(_read_policy, prefixes=models)
                    )
                    self.serving_roles[project.name] = role
                else:  # jobs write runs, versions and content-addressed data
                    prefixes = [*models, f"{base}files/md5/"]  # files/md5: content-addressed, shared, never replaced
                    policy = pulumi.Output.all(artifacts, datasets, data.key.arn).apply(
                        functools.partial(_project_policy, project=project.name, prefixes=prefixes)
                    )
                    self.roles[project.name] = role
                aws.iam.RolePolicy(f"{name}-{project.name}{suffix}", role=role.id, policy=policy, opts=child)
        self.register_outputs({})


class State(pulumi.ComponentResource):
    """RDS PostgreSQL for the runtime's state store: encrypted, private, its password managed by RDS in Secrets
    Manager (never in the stack's config or state)."""

    def __init__(
        self,
        name: str,
        plan: Plan,
        network: Network,
        key: aws.kms.Key,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("nebula:aws:State", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets", subnet_ids=[s.id for s in network.private_subnets], tags=tags, opts=child
        )
        sizes = plan.sizes
        self.database = aws.rds.Instance(
            f"{name}-postgres",
            identifier=f"{plan.prefix}-state",
            engine="postgres",
            engine_version=POSTGRES_VERSION,
            instance_class=sizes.db_instance,
            allocated_storage=sizes.db_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=key.arn,
            db_name="nebula",
            username="nebula",
            manage_master_user_password=True,
            master_user_secret_kms_key_id=key.arn,
            iam_database_authentication_enabled=True,
            publicly_accessible=False,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[network.database.id],
            multi_az=sizes.db_multi_az,
            backup_retention_period=sizes.db_backup_days,
            deletion_protection=sizes.deletion_protection,
            skip_final_snapshot=not plan.production,
            final_snapshot_identifier=f"{plan.prefix}-state-final" if plan.production else None,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            tags=tags,
            opts=child,
        )
        self.register_outputs({"endpoint": self.database.endpoint})


class Edge(pulumi.ComponentResource):
    """For an environment with a DNS zone: an ACM certificate (DNS-validated), an HTTPS load balancer in the public
    subnets for the runtime and the model endpoints, and Route 53 records for api.<zone> and *.<zone>."""

    def __init__(
        self, name: str, plan: Plan, network: Network, tags: dict[str, str], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nebula:aws:Edge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zone_name = str(plan.zone)
        zone = aws.route53.get_zone_output(name=zone_name, private_zone=False)
        certificate = aws.acm.Certificate(
            f"{name}-cert",
            domain_name=zone_name,
            subject_alternative_names=[f"*.{zone_name}"],
            validation_method="DNS",
            tags=tags,
            opts=child,
        )
        records = []
        for index in range(2):  # the zone and its wildcard share one validation record; both are declared
            option = certificate.domain_validation_options[index]
            records.append(
                aws.route53.Record(
                    f"{name}-validation-{index}",
                    zone_id=zone.zone_id,
                    name=option.resource_record_name,
                    type=option.resource_record_type,
                    records=[option.resource_record_value],
                    ttl=300,
                    allow_overwrite=True,
                    opts=child,
                )
            )
        validated = aws.acm.CertificateValidation(
            f"{name}-cert",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[r.fqdn for r in records],
            opts=child,
        )
        self.balancer = aws.lb.LoadBalancer(
            f"{name}-lb",
            name=f"{plan.prefix}"[:32],
            internal=False,
            load_balancer_type="application",
            subnets=[s.id for s in network.public_subnets],
            security_groups=[network.balancer.id],
            drop_invalid_header_fields=True,
            enable_deletion_protection=plan.sizes.deletion_protection,
            tags=tags,
            opts=child,
        )
        targets = aws.lb.TargetGroup(
            f"{name}-gateway",
            port=80,
            protocol="HTTP",
            target_type="ip",
            vpc_id=network.vpc.id,
            health_check={"path": "/healthz", "matcher": "200"},
            tags=tags,
            opts=child,
        )
        aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=self.balancer.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=validated.certificate_arn,
            default_actions=[{"type": "forward", "target_group_arn": targets.arn}],
            opts=child,
        )
        aws.lb.Listener(
            f"{name}-http",
            load_balancer_arn=self.balancer.arn,
            port=80,
            protocol="HTTP",
            default_actions=[
                {"type": "redirect", "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}
            ],
            opts=child,
        )
        for label in ("api", "*"):
            aws.route53.Record(
                f"{name}-{'wildcard' if label == '*' else label}",
                zone_id=zone.zone_id,
                name=f"{label}.{zone_name}",
                type="A",
                aliases=[
                    {"name": self.balancer.dns_name, "zone_id": self.balancer.zone_id, "evaluate_target_health": True}
                ],
                opts=child,
            )
        self.target_group = targets
        self.register_outputs({"dns_name": self.balancer.dns_name})


class Serverless(pulumi.ComponentResource):
    """A Lambda function per aws_lambda deployment, with its own role (logs, and read access to its project's
    models only) and an encrypted log group."""

    def __init__(
        self, name: str, plan: Plan, data: Data, tags: dict[str, str], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("nebula:aws:Serverless", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.functions: dict[str, aws.lambda_.Function] = {}
        base = f"{plan.artifacts_prefix}/" if plan.artifacts_prefix else ""
        for function in plan.functions:
            self.functions[function.name] = self._function(name, plan, function, data, base, tags, child)
        self.register_outputs({})

    def _function(
        self,
        name: str,
        plan: Plan,
        function: Function,
        data: Data,
        base: str,
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> aws.lambda_.Function:
        logs = aws.cloudwatch.LogGroup(
            f"{name}-{function.name}",
            name=f"/aws/lambda/{function.name}",
            retention_in_days=plan.sizes.log_retention_days,
            kms_key_id=data.key.arn,
            tags=tags,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-{function.name}",
            assume_role_policy=_policy(
                [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
            ),
            tags={**tags, "nebula/project": function.project},
            opts=child,
        )
        policy = pulumi.Output.all(logs.arn, data.artifacts_arn, data.key.arn).apply(
            lambda arns: _policy(
                [
                    {
                        "Sid": "Logs",
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": f"{arns[0]}:*",
                    },
                    {
                        "Sid": "Models",
                        "Effect": "Allow",
                        "Action": "s3:GetObject",
                        "Resource": [
                            f"{arns[1]}/{base}runs/{plan.environment}/{function.project}/*",
                            f"{arns[1]}/{base}registry/{plan.environment}/{function.project}/*",
                        ],
                    },
                    {"Sid": "Key", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": arns[2]},
                ]
            )
        )
        aws.iam.RolePolicy(f"{name}-{function.name}", role=role.id, policy=policy, opts=child)
        aws.iam.RolePolicyAttachment(  # tracing is on; X-Ray takes segments only through this AWS-managed policy
            f"{name}-{function.name}-xray",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess",
            opts=child,
        )
        variables = {
            **function.variables,
            "NEBULA_VARIANTS": json.dumps(function.variants, sort_keys=True),
        }
        return aws.lambda_.Function(
            f"{name}-{function.name}",
            name=function.name,
            package_type="Image",
            image_uri=function.image,
            role=role.arn,
            memory_size=function.memory_mb,
            timeout=function.timeout_seconds,
            image_config={
                "entry_points": ["python", "-m", "awslambdaric"],
                "commands": ["nebula_runtime.serverless.handler"],
            },
            environment={"variables": variables},
            kms_key_arn=data.key.arn,
            tracing_config={"mode": "Active"},
            logging_config={"log_format": "JSON", "log_group": logs.name},
            tags={**tags, "nebula/project": function.project, "nebula/deployment": function.deployment},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs]),
        )


def build(plan: Plan) -> dict[str, Any]:
    """Declare the environment's platform; returns the stack's outputs."""
    tags = {"nebula/platform": plan.platform, "nebula/environment": plan.environment, "managed-by": "pulumi"}
    network = Network("network", plan, tags)
    data = Data("data", plan, tags)
    registry = Registry("registry", plan, data.key, tags)
    compute = Compute("compute", plan, network, data.key, tags)
    identity = Identity("identity", plan, compute, data, tags)
    state = State("state", plan, network, data.key, tags)
    # managed node groups put pods in the cluster's own security group: let it reach the state store
    pods = compute.cluster.vpc_config.apply(lambda c: str(c.cluster_security_group_id))
    allow(
        "state-from-pods",
        network.database.id,
        pods,
        5432,
        5432,
        "postgres from the cluster's pods",
        pulumi.ResourceOptions(),
    )
    outputs: dict[str, Any] = {
        "vpc_id": network.vpc.id,
        "cluster_name": compute.cluster.name,
        "cluster_endpoint": compute.cluster.endpoint,
        "artifacts_bucket": plan.artifacts_bucket,
        "datasets_bucket": data.buckets["datasets"].bucket,
        "kms_key_arn": data.key.arn,
        "repositories": {name: repo.repository_url for name, repo in registry.repositories.items()},
        "project_roles": {name: role.arn for name, role in identity.roles.items()},
        "state_endpoint": state.database.endpoint,
        "state_secret_arn": state.database.master_user_secrets.apply(lambda s: s[0].secret_arn if s else None),
    }
    if plan.zone:
        edge = Edge("edge", plan, network, tags)
        allow("pods-from-lb", pods, network.balancer.id, 80, 65535, "from the load balancer", pulumi.ResourceOptions())
        outputs["load_balancer"] = edge.balancer.dns_name
        outputs["gateway_target_group"] = edge.target_group.arn  # bind it to the gateway's pods (TargetGroupBinding)
        outputs["api_url"] = f"https://api.{plan.zone}"
    if plan.functions:
        serverless = Serverless("serverless", plan, data, tags)
        outputs["functions"] = {name: fn.arn for name, fn in serverless.functions.items()}
    return outputs
